//! The web over plain HTTP: secure headers, console sessions (cookies, renewal, CSRF,
//! cross-origin posts), role scoping, CSV reports, and CORS for the widget per clinic.

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp};
use crate::on_both_backends;

on_both_backends!(
    the_console_needs_a_session_and_refuses_forged_forms,
    each_role_sees_only_its_part_of_the_console,
    the_widget_api_answers_only_origins_a_clinic_lists,
    sign_in_returns_only_to_a_path_of_this_site,
    a_doctor_writes_signs_and_orders_labs_from_the_chart_page,
    a_patient_checks_in_a_reminder_and_cancels_a_visit_on_the_portal,
    an_invited_receptionist_signs_in_with_a_mailed_code_and_sets_a_password,
    the_home_page_says_how_to_start_or_lists_the_demo_accounts,
    the_front_desk_runs_a_day_and_the_admin_sets_up_the_clinic,
    a_pharmacist_stocks_sells_and_dispenses_from_the_pages,
    the_desk_invoices_a_visit_takes_payment_and_the_patient_sees_it,
    the_offline_desk_is_installable_and_syncs_under_the_session_with_its_csrf_token,
);

/// A browser-like client: no redirects followed, cookies carried by hand.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Vec<String>,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
            base: format!("http://{}", app.addr),
            cookies: Vec::new(),
        }
    }

    fn keep(&mut self, headers: &HeaderMap) {
        for c in headers.get_all(SET_COOKIE) {
            let pair = c.to_str().unwrap().split(';').next().unwrap().to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            self.cookies.retain(|k| !k.starts_with(&format!("{name}=")));
            self.cookies.push(pair);
        }
    }

    async fn get(&mut self, path: &str) -> (u16, HeaderMap, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookies.join("; "))
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        self.keep(&headers);
        (status, headers, r.text().await.unwrap())
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, HeaderMap, String) {
        let own = self.base.clone();
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookies.join("; "))
            .header("origin", origin.unwrap_or(&own))
            .form(form)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        self.keep(&headers);
        (status, headers, r.text().await.unwrap())
    }

    /// A form with one file, as a browser sends `enctype="multipart/form-data"`.
    async fn upload(
        &mut self,
        path: &str,
        csrf: &str,
        name: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> (u16, HeaderMap, String) {
        let file = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name(name.to_owned())
            .mime_str(media_type)
            .unwrap();
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf.to_owned())
            .part("file", file);
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookies.join("; "))
            .header("origin", self.base.clone())
            .multipart(form)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        self.keep(&headers);
        (status, headers, r.text().await.unwrap())
    }

    async fn sign_in(&mut self, email: &str) -> String {
        let (status, headers, body) = self
            .post(
                "/admin/login",
                &[("email", email), ("password", PASSWORD), ("next", "")],
                None,
            )
            .await;
        assert_eq!(status, 303, "{body}");
        headers["location"].to_str().unwrap().to_owned()
    }

    fn csrf(page: &str) -> String {
        let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        page[at..at + page[at..].find('"').unwrap()].to_owned()
    }
}

async fn the_console_needs_a_session_and_refuses_forged_forms(app: TestApp) {
    let root = app.root().await;
    let _ = root;
    let mut b = Browser::new(&app);
    // Pages carry the policy; the widget is plain script.
    let (status, headers, page) = b.get("/").await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(page.contains("/widget.js"));
    let (status, headers, js) = b.get("/widget.js").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.contains("attachShadow"));

    // No session: to the sign-in page, and back afterwards.
    let (status, headers, _) = b.get("/admin/audit").await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/admin/login?next=%2Fadmin%2Faudit");
    let (status, _, body) = b
        .post(
            "/admin/login",
            &[
                ("email", "root@example.org"),
                ("password", "wrong-password"),
                ("next", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("role=\"alert\""));
    let home = b.sign_in("root@example.org").await;
    assert_eq!(home, "/admin");
    assert!(b.cookies.iter().any(|c| c.starts_with("clinic_access=")));
    let (status, _, page) = b.get("/admin/clinic-requests").await;
    assert_eq!(status, 200, "{page}");
    let csrf = Browser::csrf(&page);

    // A form without the page's token, or posted from another site, changes nothing.
    let request = app
        .post(
            "/api/v1/clinic-requests",
            json!({"name": "Faro Clinic", "address": "1 Rua", "time_zone": "Europe/Lisbon", "contact_name": "A",
                   "contact_email": "faro@example.org", "contact_phone": "+351 289 000 000", "specialties": ["dermatology"]}),
        )
        .await;
    let id = request.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let approve = format!("/admin/clinic-requests/{id}/approve");
    let (status, _, _) = b.post(&approve, &[("csrf", "forged")], None).await;
    assert_eq!(status, 403);
    let (status, _, _) = b
        .post(&approve, &[("csrf", &csrf)], Some("https://evil.example"))
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM clinic_requests WHERE status = $1",
            "pending"
        )
        .await,
        1
    );
    let (status, headers, _) = b.post(&approve, &[("csrf", &csrf)], None).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/admin/clinic-requests");
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM clinic_requests WHERE status = $1",
            "approved"
        )
        .await,
        1
    );
    let (_, _, audit) = b.get("/admin/audit?action=clinic.approved").await;
    assert!(
        audit.contains("clinic.approved") && audit.contains("intact"),
        "{audit}"
    );
    // Who acted is named, not shown as an id.
    assert!(audit.contains("&lt;root@example.org&gt;</a>"), "{audit}");

    // Signing out ends the login: the old cookie no longer opens the console.
    let stolen = b.cookies.clone();
    let (status, _, _) = b.post("/admin/logout", &[("csrf", &csrf)], None).await;
    assert_eq!(status, 303);
    let mut replay = Browser::new(&app);
    replay.cookies = stolen
        .into_iter()
        .filter(|c| c.starts_with("clinic_access="))
        .collect();
    let (status, _, _) = replay.get("/admin").await;
    assert_eq!(status, 303, "a revoked login is sent to sign in");
}

async fn each_role_sees_only_its_part_of_the_console(app: TestApp) {
    let lisbon = app.approved_clinic("Lisbon Skin", "Europe/Lisbon").await;
    let porto = app.approved_clinic("Porto Skin", "Europe/Lisbon").await;
    let _ = porto;
    // A patient has no console: signing in leads to their own portal.
    app.user_with("pat@example.org", &[]).await;
    let mut patient = Browser::new(&app);
    assert_eq!(patient.sign_in("pat@example.org").await, "/me");
    let (status, _, page) = patient.get("/me").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("My QR code") && page.contains("<svg"),
        "{page}"
    );
    let (status, _, _) = patient.get("/admin").await;
    assert_eq!(status, 403);
    let (status, _, _) = patient.get("/admin/reports").await;
    assert_eq!(status, 403);

    // A clinic admin reports on their clinic only, and cannot manage users.
    let mut admin = Browser::new(&app);
    admin.sign_in("admin@lisbonskin.example.org").await;
    let (status, _, page) = admin.get("/admin/reports").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Lisbon Skin") && !page.contains("Porto Skin"),
        "{page}"
    );
    let (status, headers, csv) = admin
        .get(&format!(
            "/admin/reports.csv?clinic={}&kind=hours",
            lisbon.id
        ))
        .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(csv.starts_with("hour,appointments\n00:00,0\n"), "{csv}");
    assert_eq!(csv.lines().count(), 25);
    let porto_id = app
        .scalar_i64_str("SELECT COUNT(*) FROM clinics WHERE name = $1", "Porto Skin")
        .await;
    assert_eq!(porto_id, 1);
    let (status, _, _) = admin.get("/admin/users").await;
    assert_eq!(status, 403);
    let (status, _, _) = admin.get("/admin/orchestration").await;
    assert_eq!(status, 403);

    // A system admin creates and deletes a user from the console.
    app.root().await;
    let mut root = Browser::new(&app);
    root.sign_in("root@example.org").await;
    let (_, _, page) = root.get("/admin/users").await;
    let csrf = Browser::csrf(&page);
    let (status, _, body) = root
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("email", "new.doc@example.org"),
                ("display_name", "New Doc"),
                ("role", "clinic_staff"),
                ("clinic_id", &lisbon.id.to_string()),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(app.last_mail("new.doc@example.org").await.is_some());
    let (_, _, page) = root.get("/admin/users").await;
    assert!(page.contains("new.doc@example.org"));
    let id = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM users WHERE email = $1",
            "new.doc@example.org",
        )
        .await;
    assert_eq!(id, 1);
    let row = page
        .split("data-user=\"")
        .find(|r| r.contains("new.doc@example.org"))
        .unwrap();
    let user_id = &row[..36];
    let (status, _, _) = root
        .post(
            &format!("/admin/users/{user_id}/delete"),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM users WHERE email = $1",
            "new.doc@example.org"
        )
        .await,
        0,
        "the address is erased"
    );
}

async fn the_widget_api_answers_only_origins_a_clinic_lists(app: TestApp) {
    let clinic = app.approved_clinic("Lisbon Skin", "Europe/Lisbon").await;
    let preflight = |origin: &'static str| {
        let client = app.client.clone();
        let url = app.url("/api/v1/chat/sessions");
        async move {
            client
                .request(reqwest::Method::OPTIONS, url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type,authorization",
                )
                .send()
                .await
                .unwrap()
        }
    };
    let before = preflight("https://lisbon-skin.example").await;
    assert!(
        before
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let patched = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/clinics/{}", clinic.id),
            Some(&clinic.admin),
            Some(json!({"widget_origins": ["https://lisbon-skin.example/"]})),
        )
        .await;
    assert_eq!(
        patched.assert_ok(200)["widget_origins"],
        json!(["https://lisbon-skin.example"])
    );
    let after = preflight("https://lisbon-skin.example").await;
    assert_eq!(
        after.headers()["access-control-allow-origin"],
        "https://lisbon-skin.example"
    );
    assert!(
        after.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let other = preflight("https://evil.example").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
    app.request(
        reqwest::Method::PATCH,
        &format!("/api/v1/clinics/{}", clinic.id),
        Some(&clinic.admin),
        Some(json!({"widget_origins": ["javascript:alert(1)"]})),
    )
    .await
    .assert_problem(422, "validation_failed");
}

/// An access token that no longer opens (expired, or cleared) is renewed from the refresh
/// cookie without a new sign-in; a used refresh token does not work twice (past the
/// grace window for tabs refreshing at once, here none).
#[tokio::test]
async fn a_lapsed_console_session_is_renewed_from_its_refresh_cookie() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    app.root().await;
    let mut b = Browser::new(&app);
    b.sign_in("root@example.org").await;
    let refresh = b
        .cookies
        .iter()
        .find(|c| c.starts_with("clinic_refresh="))
        .cloned()
        .unwrap();
    b.cookies = vec!["clinic_access=lapsed".into(), refresh.clone()];
    let (status, headers, _) = b.get("/admin").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get_all(SET_COOKIE).iter().count(),
        2,
        "both cookies renewed"
    );
    assert!(!b.cookies.contains(&refresh));
    // The old refresh token was used up: replaying it signs nobody in.
    let mut thief = Browser::new(&app);
    thief.cookies = vec![refresh];
    let (status, _, _) = thief.get("/admin").await;
    assert_eq!(status, 303);
}

/// After signing in, `next` sends the browser back only to a path of this site: a tab, a
/// line break or a backslash could turn it into another site (or broke the answer).
async fn sign_in_returns_only_to_a_path_of_this_site(app: TestApp) {
    app.root().await;
    for (next, expected) in [
        ("/\t/evil.example", "/admin"),
        ("/\n/x", "/admin"),
        ("//evil.example", "/admin"),
        ("/\\evil.example", "/admin"),
        ("https://evil.example/", "/admin"),
        ("/admin/audit", "/admin/audit"),
    ] {
        let mut b = Browser::new(&app);
        let (status, headers, body) = b
            .post(
                "/admin/login",
                &[
                    ("email", "root@example.org"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
                None,
            )
            .await;
        assert_eq!(status, 303, "{next:?}: {body}");
        assert_eq!(headers["location"], expected, "{next:?}");
    }
}

/// The `data-*` id of the first element with `attribute` whose `data-status` is `status`.
fn id_with_status(page: &str, attribute: &str, status: &str) -> String {
    let marker = format!("{attribute}=\"");
    page.match_indices(&marker)
        .map(|(at, _)| &page[at + marker.len()..])
        .find(|rest| {
            rest.contains(&format!("\" data-status=\"{status}\""))
                && rest[36..].starts_with(&format!("\" data-status=\"{status}\""))
        })
        .map(|rest| rest[..36].to_owned())
        .unwrap_or_else(|| panic!("no {attribute} with status {status}"))
}

async fn a_doctor_writes_signs_and_orders_labs_from_the_chart_page(app: TestApp) {
    let care = app.care_setup().await;
    let mut b = Browser::new(&app);
    b.sign_in("dr.costa@example.org").await;
    let chart = format!("/doctor/patients/{}", care.patient_id);
    let (status, _, page) = b.get(&chart).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("New visit record"));
    let csrf = Browser::csrf(&page);

    // A temperature of 400 °C is refused, named, and nothing is written.
    let (status, _, refused) = b
        .post(
            &format!("{chart}/records"),
            &[
                ("csrf", &csrf),
                ("chief_complaint", "Sore throat"),
                ("vitals.temperature_c", "400"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.contains("temperature_c"), "{refused}");
    let (_, _, page) = b.get(&chart).await;
    assert!(!page.contains("data-record="), "nothing written");

    // Two diagnoses and two prescriptions in one form (rows left empty are skipped).
    let form = [
        ("csrf", csrf.as_str()),
        ("chief_complaint", "Sore throat for three days"),
        ("vitals.temperature_c", "38.4"),
        ("vitals.systolic_mmhg", "122"),
        ("vitals.diastolic_mmhg", "78"),
        ("vitals.weight_kg", "70"),
        ("vitals.height_cm", "175"),
        ("diagnosis.0", "Acute pharyngitis"),
        ("icd10.0", "J02.9"),
        ("diagnosis.1", "Mild dehydration"),
        ("icd10.1", ""),
        ("plan", "Fluids and rest"),
        ("medicine.0", "ibuprofen"),
        ("dose.0", "400 mg"),
        ("route.0", "oral"),
        ("times_per_day.0", "3"),
        ("duration_days.0", "5"),
        ("quantity.0", "15"),
        ("medicine.1", "chlorhexidine spray"),
        ("dose.1", "2 sprays"),
        ("route.1", "topical"),
        ("every_hours.1", "8"),
        ("duration_days.1", "5"),
        ("quantity.1", "1"),
        ("instructions.1", "after meals"),
        ("medicine.2", ""),
    ];
    let (status, headers, body) = b.post(&format!("{chart}/records"), &form, None).await;
    assert_eq!(status, 303, "{body}");
    // Back on the chart, which says what was done.
    let back = headers["location"].to_str().unwrap().to_owned();
    assert_eq!(back, format!("{chart}?done=record_saved"));
    let (_, _, page) = b.get(&back).await;
    assert!(
        page.contains("The visit record is saved as a draft."),
        "{page}"
    );
    let (_, _, page) = b.get(&format!("{chart}?done=nonsense")).await;
    assert!(!page.contains("class=\"flash\""), "{page}");
    assert!(page.contains("Sore throat for three days"));
    assert!(page.contains("J02.9 Acute pharyngitis"), "{page}");
    assert!(page.contains("<li>Mild dehydration</li>"), "{page}");
    assert!(page.contains("BMI 22.9"), "{page}");
    assert!(
        page.contains("chlorhexidine spray 2 sprays, every 8 h for 5 days"),
        "{page}"
    );
    let record = id_with_status(&page, "data-record", "draft");
    // The draft's own form holds what was saved.
    assert!(
        page.contains("name=\"medicine.1\" value=\"chlorhexidine spray\""),
        "{page}"
    );

    // The draft is edited: a changed plan; the second prescription dropped.
    let mut edited: Vec<(&str, &str)> = form
        .iter()
        .copied()
        .filter(|(k, _)| !k.ends_with(".1") || k.starts_with("diagnosis") || k.starts_with("icd10"))
        .collect();
    edited.retain(|(k, _)| *k != "plan");
    edited.push(("plan", "Fluids, rest and salt gargles"));
    let (status, _, body) = b
        .post(&format!("/doctor/records/{record}"), &edited, None)
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = b.get(&chart).await;
    assert!(page.contains("Fluids, rest and salt gargles"), "{page}");
    assert!(!page.contains("chlorhexidine spray 2 sprays"), "{page}");

    // A transcript pasted onto the draft; the assistant drafts the fields from it into the
    // record's form, and nothing changes until the doctor saves.
    let said = "Patient: I have had a cough and wheezing for two weeks.\nDoctor: Your temperature is 37.9 and your oxygen saturation is 95.\nDoctor: Take salbutamol two puffs when short of breath. Come back in two weeks.";
    let (status, _, body) = b
        .post(
            &format!("/doctor/records/{record}/transcript"),
            &[("csrf", &csrf), ("text", said)],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = b.get(&chart).await;
    assert!(page.contains("Transcript (pasted"), "{page}");
    assert!(page.contains("cough and wheezing"), "{page}");
    let (status, _, drafted) = b
        .post(
            &format!("/doctor/records/{record}/transcript/draft"),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, 200, "{drafted}");
    assert!(drafted.contains("Drafted by the assistant"), "{drafted}");
    assert!(
        drafted.contains("name=\"vitals.temperature_c\" inputmode=\"decimal\" value=\"37.9\""),
        "{drafted}"
    );
    assert!(
        drafted.contains("name=\"vitals.spo2_percent\" inputmode=\"decimal\" value=\"95\""),
        "{drafted}"
    );
    let (_, _, page) = b.get(&chart).await;
    assert!(!page.contains("Drafted by the assistant"), "{page}");
    assert!(page.contains("38.4 °C"), "the record is unchanged: {page}");

    // Attachments are recognised by content: a text file calling itself a PDF is refused.
    let (status, _, refused) = b
        .upload(
            &format!("/doctor/records/{record}/files"),
            &csrf,
            "notes.pdf",
            "application/pdf",
            b"just some text",
        )
        .await;
    assert_eq!(status, 415, "{refused}");
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n".to_vec();
    let (status, _, body) = b
        .upload(
            &format!("/doctor/records/{record}/files"),
            &csrf,
            "throat swab.pdf",
            "application/pdf",
            &pdf,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    // Without the form's token, nothing is attached.
    let (status, _, _) = b
        .upload(
            &format!("/doctor/records/{record}/files"),
            "forged",
            "other.pdf",
            "application/pdf",
            &pdf,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, body) = b
        .post(
            &format!("/doctor/records/{record}/sign"),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    // A signed record takes an addendum (who, when, why), never an edit.
    let (status, _, body) = b
        .post(&format!("/doctor/records/{record}"), &edited, None)
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _, body) = b
        .post(
            &format!("/doctor/records/{record}/addenda"),
            &[
                ("csrf", &csrf),
                ("reason", "Swab result"),
                ("text", "Rapid strep test negative."),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = b.get(&chart).await;
    assert!(
        page.contains("(Swab result):</small> Rapid strep test negative."),
        "{page}"
    );
    let patient = care.patient_id.to_string();
    let (status, _, body) = b
        .post(
            &format!("/doctor/records/{record}/labs"),
            &[("csrf", &csrf), ("patient", &patient), ("code", "4548-4")],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = b.get(&chart).await;
    assert!(page.contains(&format!("data-record=\"{record}\" data-status=\"signed\"")));
    let order = id_with_status(&page, "data-order", "ordered");
    let (status, _, body) = b
        .post(
            &format!("/doctor/lab-orders/{order}/results"),
            &[("csrf", &csrf), ("value.4548-4", "7.2")],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = b.get(&chart).await;
    assert!(page.contains("1 abnormal"), "{page}");
    assert!(
        page.contains("<tr class=\"flag-high\"><td>Hemoglobin A1c</td>"),
        "{page}"
    );
    let (status, _, _) = b
        .post(
            &format!("/doctor/lab-orders/{order}/review"),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = b.get(&chart).await;
    assert!(page.contains(&format!("data-order=\"{order}\" data-status=\"reviewed\"")));
    // The lab's report is attached to the order; files download from the pages, for the
    // doctor and the patient.
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";
    let (status, _, body) = b
        .upload(
            &format!("/doctor/lab-orders/{order}/files"),
            &csrf,
            "hba1c.png",
            "image/png",
            png,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = b.get(&chart).await;
    let at = page.find("href=\"/files/").expect("a file link") + 13;
    let link = format!("/files/{}", &page[at..at + 36]);
    let (status, headers, _) = b.get(&link).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let (status, _, _) = Browser::new(&app).get(&link).await;
    assert_eq!(status, 303, "signed out: to the sign-in page");

    // The patient's portal shows the signed record and the reviewed value, marked high.
    let mut portal = Browser::new(&app);
    assert_eq!(portal.sign_in("pat@example.org").await, "/me");
    let (status, _, page) = portal.get("/me").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Sore throat for three days"), "{page}");
    assert!(
        page.contains("<tr class=\"flag-high\"><td>Hemoglobin A1c</td>"),
        "{page}"
    );
    assert!(
        page.contains("ibuprofen 400 mg, 3× a day for 5 days"),
        "{page}"
    );
    // The patient edits their profile on the page (a bad phone is refused, nothing saved).
    let portal_csrf = Browser::csrf(&page);
    let mut profile = vec![
        ("csrf", portal_csrf.as_str()),
        ("date_of_birth", "1980-04-02"),
        ("sex", "female"),
        ("blood_group", "O+"),
        ("language", "pt"),
        ("allergies", "penicillin\nlatex"),
        ("chronic_conditions", "asthma"),
        ("current_medication", ""),
        ("medical_history", "Appendectomy in 2001"),
        ("contact_name.0", "Rui Lima"),
        ("contact_relation.0", "brother"),
        ("contact_phone.0", "12345"),
    ];
    let (status, _, refused) = portal.post("/me/profile", &profile, None).await;
    assert_eq!(status, 422, "{refused}");
    profile.pop();
    profile.push(("contact_phone.0", "+351912345678"));
    let (status, _, body) = portal.post("/me/profile", &profile, None).await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = portal.get("/me").await;
    assert!(page.contains("penicillin, latex"), "{page}");
    assert!(page.contains("Rui Lima (brother) +351912345678"), "{page}");
    assert!(page.contains("<option value=\"O+\" selected>"), "{page}");
    let mine = app.get_as(&care.patient, "/api/v1/me/profile").await;
    assert_eq!(mine.assert_ok(200)["clinical"]["allergies"][1], "latex");
    assert_eq!(mine.body["language"], "pt");
    // Revoking makes every earlier QR code stop working.
    let token = app.get_as(&care.patient, "/api/v1/me/qr?format=json").await;
    let token = token.assert_ok(200)["token"].as_str().unwrap().to_owned();
    let (status, _, _) = portal
        .post("/me/qr/revoke", &[("csrf", &portal_csrf)], None)
        .await;
    assert_eq!(status, 303);
    let (_, desk) = app
        .user_with(
            "desk@example.org",
            &[json!({"role": "clinic_staff", "clinic_id": care.clinic.id.to_string()})],
        )
        .await;
    let identify = app
        .post_as(
            &desk,
            "/api/v1/patients/identify",
            json!({"clinic_id": care.clinic.id, "token": token}),
        )
        .await;
    identify.assert_problem(422, "invalid_qr_token");

    // And over the API.
    let records = app
        .get_as(
            &care.patient,
            &format!("/api/v1/patients/{patient}/records"),
        )
        .await;
    assert_eq!(records.assert_ok(200)[0]["diagnoses"][0]["code"], "J02.9");
}

async fn a_patient_checks_in_a_reminder_and_cancels_a_visit_on_the_portal(app: TestApp) {
    let care = app.care_setup().await;
    app.submit_note(
        &care,
        "Take amoxicillin 500 mg twice daily for 7 days. Buy a thermometer.",
    )
    .await
    .assert_ok(201);
    // The first reminder falls due now.
    let first = app.first_reminder_due(care.patient_id, 30).await;

    let mut portal = Browser::new(&app);
    assert_eq!(portal.sign_in("pat@example.org").await, "/me");
    let (status, _, page) = portal.get("/me").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Take amoxicillin 500 mg, 2× a day for 7 days"),
        "{page}"
    );
    assert!(page.contains("Buy a thermometer"), "{page}");
    assert!(
        page.contains(&format!("data-reminder=\"{first}\"")),
        "{page}"
    );
    let csrf = Browser::csrf(&page);
    // Checked in with one tap; a second tap is refused (already done).
    let (status, _, body) = portal
        .post(
            &format!("/me/reminders/{first}/check-in"),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    const STATUS: &str = "SELECT status FROM reminders WHERE id = $1";
    let done: String = clinic::on_db!(&app.db, |pool| sqlx::query_scalar(STATUS)
        .bind(first)
        .fetch_one(pool)
        .await)
    .unwrap();
    assert_eq!(done, "done");
    let (status, _, _) = portal
        .post(
            &format!("/me/reminders/{first}/check-in"),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, 409);
    let (_, _, page) = portal.get("/me").await;
    assert!(
        !page.contains(&format!("data-reminder=\"{first}\"")),
        "{page}"
    );
    // The doctor sees it on the chart: one checked in, none missed yet.
    let mut doctor = Browser::new(&app);
    doctor.sign_in("dr.costa@example.org").await;
    let (_, _, chart) = doctor
        .get(&format!("/doctor/patients/{}", care.patient_id))
        .await;
    assert!(chart.contains("14: 1 checked in, 0 missed"), "{chart}");

    // The booked visit is listed with its cutoff, and cancelled from the page.
    let visit = care.appointment.clone();
    assert!(
        page.contains(&format!("data-appointment=\"{visit}\"")),
        "{page}"
    );
    assert!(page.contains("possible until"), "{page}");
    let (status, _, body) = portal
        .post(
            &format!("/me/appointments/{visit}/cancel"),
            &[("csrf", "forged")],
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = portal
        .post(
            &format!("/me/appointments/{visit}/cancel"),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = portal.get("/me").await;
    assert!(page.contains("No upcoming appointments."), "{page}");
    let mine = app.appointments_of(&care.patient).await;
    assert!(
        mine.iter()
            .all(|a| a["id"] != visit.as_str() || a["status"] == "cancelled"),
        "{mine:?}"
    );
}

async fn an_invited_receptionist_signs_in_with_a_mailed_code_and_sets_a_password(app: TestApp) {
    let clinic = app.approved_clinic("Desk Clinic", "Europe/Lisbon").await;
    app.post_as(
        &clinic.admin,
        &format!("/api/v1/clinics/{}/staff", clinic.id),
        json!({"email": "rita@example.org", "display_name": "Rita Reception", "role": "clinic_staff"}),
    )
    .await
    .assert_ok(201);
    let (_, invitation) = app.last_mail("rita@example.org").await.expect("invitation");
    assert!(invitation.contains("Email me a code"), "{invitation}");

    // Signing in with a mailed code: a wrong code is refused, the mailed one signs in once.
    let mut b = Browser::new(&app);
    let (_, _, page) = b.get("/admin/login").await;
    assert!(page.contains("href=\"/admin/login?mode=code\""), "{page}");
    assert!(page.contains("href=\"/admin/password\""), "{page}");
    let (status, _, page) = b
        .post(
            "/admin/login/code/start",
            &[("email", "rita@example.org"), ("next", "")],
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"code\""), "{page}");
    // An unknown address gets the same answer (nothing says who has an account).
    let (status, _, unknown) = b
        .post(
            "/admin/login/code/start",
            &[("email", "nobody@example.org"), ("next", "")],
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        unknown.contains("If nobody@example.org has an account"),
        "{unknown}"
    );
    let code = app.last_code("rita@example.org").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, _, page) = b
        .post(
            "/admin/login/code",
            &[("email", "rita@example.org"), ("code", wrong), ("next", "")],
            None,
        )
        .await;
    assert_eq!(status, 401, "{page}");
    let (status, _, page) = b
        .post(
            "/admin/login/code",
            &[("email", "rita@example.org"), ("code", &code), ("next", "")],
            None,
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let (status, _, _) = b.get("/me").await;
    assert_eq!(status, 200, "signed in");

    // Setting a password from the page the invitation points to.
    let mut c = Browser::new(&app);
    let (status, _, page) = c.get("/admin/password?email=rita%40example.org").await;
    assert_eq!(status, 200);
    assert!(page.contains("value=\"rita@example.org\""), "{page}");
    let (_, _, page) = c
        .post(
            "/admin/password/start",
            &[("email", "rita@example.org")],
            None,
        )
        .await;
    assert!(page.contains("name=\"new_password\""), "{page}");
    let code = app.last_code("rita@example.org").await;
    let new = "a long new passphrase 42";
    let set = [
        ("email", "rita@example.org"),
        ("code", code.as_str()),
        ("new_password", new),
    ];
    let (status, headers, body) = c.post("/admin/password", &set, None).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(headers["location"], "/admin/login?done=password");
    let (_, _, page) = c.get("/admin/login?done=password").await;
    assert!(page.contains("Your password is set"), "{page}");
    // The code works once.
    let (status, _, _) = c.post("/admin/password", &set, None).await;
    assert!(status >= 400, "{status}");
    let (status, _, body) = c
        .post(
            "/admin/login",
            &[
                ("email", "rita@example.org"),
                ("password", new),
                ("next", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    // Setting it ended the earlier login (the one signed in by code).
    let (status, _, _) = b.get("/me").await;
    assert_eq!(status, 303, "the earlier login ended");
}

async fn the_home_page_says_how_to_start_or_lists_the_demo_accounts(app: TestApp) {
    let mut b = Browser::new(&app);
    let (status, _, page) = b.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("This installation is new"), "{page}");
    assert!(page.contains("clinic serve --demo"), "{page}");
    assert!(!page.contains("Demo accounts"), "{page}");

    app.with_demo().await;
    let (_, _, page) = b.get("/").await;
    assert!(!page.contains("This installation is new"), "{page}");
    assert!(page.contains("Demo accounts"), "{page}");
    for email in [
        "admin@demo.clinic",
        "patient@demo.clinic",
        "doctor@demo.clinic",
        "brooklyn-admin@demo.clinic",
    ] {
        assert!(
            page.contains(&format!("<code>{email}</code>")),
            "{email}: {page}"
        );
    }
    // Each clinic has its own page, whose widget is that clinic's.
    let at = page.find("href=\"/?clinic=").expect("a clinic link") + 6;
    let link = &page[at..at + page[at..].find('"').unwrap()];
    let (status, _, clinic_page) = b.get(link).await;
    assert_eq!(status, 200);
    assert!(clinic_page.contains("data-clinic=\""), "{clinic_page}");
    // The demo patient signs in from the listed link and lands on their page.
    let (status, headers, _) = b
        .post(
            "/admin/login",
            &[
                ("email", "patient@demo.clinic"),
                ("password", "demo-password"),
                ("next", "/me"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/me");
    let (status, _, _) = b.get("/?clinic=0190a0a0-0000-7000-8000-000000000000").await;
    assert_eq!(status, 404);
    // The sign-in page keeps where to go next when one signs in by code instead.
    let (status, _, login) = Browser::new(&app).get("/admin/login?next=%2Fdoctor").await;
    assert_eq!(status, 200);
    assert!(
        login.contains("/admin/login?mode=code&amp;next=%2Fdoctor"),
        "{login}"
    );
}

/// The form redirect's target.
fn location(headers: &HeaderMap) -> String {
    headers["location"].to_str().unwrap().to_owned()
}

async fn the_front_desk_runs_a_day_and_the_admin_sets_up_the_clinic(app: TestApp) {
    let clinic = app.approved_clinic("Desk Pages", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Counter", TestApp::all_week(), 0)
        .await;
    app.user_with(
        "desk@deskpages.example.org",
        &[json!({"role": "clinic_staff", "clinic_id": clinic.id})],
    )
    .await;
    let (patient, pat) = app.user_with("pat@deskpages.example.org", &[]).await;
    let day = (chrono::Utc::now().with_timezone(&chrono_tz::Europe::Lisbon)
        + chrono::Duration::days(1))
    .date_naive();
    let slots = app
        .free_slots(
            doctor,
            &format!("from={day}&to={}", day + chrono::Duration::days(1)),
        )
        .await;
    let id = |i: usize| slots[i]["id"].as_str().unwrap().to_owned();
    app.post_as(&pat, &format!("/api/v1/slots/{}/hold", id(0)), json!({}))
        .await
        .assert_ok(201);
    let first = app
        .post_as(
            &pat,
            &format!("/api/v1/slots/{}/confirm", id(0)),
            json!({"reason": "mole check"}),
        )
        .await;
    let first = first.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let status_of = |a: String| {
        let (app, pat) = (&app, pat.clone());
        async move {
            let r = app.get_as(&pat, &format!("/api/v1/appointments/{a}")).await;
            r.assert_ok(200)["status"].as_str().unwrap().to_owned()
        }
    };

    // Staff sign in to the desk, see the day and find the patient.
    let mut desk = Browser::new(&app);
    assert_eq!(desk.sign_in("desk@deskpages.example.org").await, "/desk");
    let (status, _, page) = desk.get(&format!("/desk?date={day}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Dr. Counter") && page.contains("mole check"),
        "{page}"
    );
    assert!(
        page.contains(&format!("data-appointment=\"{first}\"")),
        "{page}"
    );
    let csrf = Browser::csrf(&page);
    let (_, _, found) = desk.get("/desk?q=test+pat").await;
    assert!(
        found.contains(&format!("data-patient=\"{patient}\"")),
        "{found}"
    );
    let (_, _, none) = desk.get("/desk?q=nobody-here").await;
    assert!(!none.contains("data-patient="), "{none}");

    // Hold a time while talking to the patient, then book it for them.
    let clinic_id = clinic.id.to_string();
    let patient_id = patient.to_string();
    let date = day.to_string();
    let (status, headers, body) = desk
        .post(
            "/desk/hold",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic_id),
                ("patient", &patient_id),
                ("slot", &id(1)),
                ("date", &date),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let held_page = location(&headers);
    assert!(
        held_page.contains(&format!("held={}", id(1))),
        "{held_page}"
    );
    assert!(
        !app.free_slots(
            doctor,
            &format!("from={day}&to={}", day + chrono::Duration::days(1))
        )
        .await
        .iter()
        .any(|s| s["id"] == id(1).as_str())
    );
    let (status, _, page) = desk.get(&held_page).await;
    assert_eq!(status, 200);
    assert!(page.contains("Book it for"), "{page}");
    let (status, headers, body) = desk
        .post(
            "/desk/book",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic_id),
                ("patient", &patient_id),
                ("slot", &id(1)),
                ("reason", "phoned in"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(location(&headers).ends_with("done=booked"));
    let mine = app.get_as(&pat, "/api/v1/appointments/mine").await;
    let mine = mine.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(mine.len(), 2);
    let second = mine.iter().find(|a| a["id"] != first.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Check in, move, cancel, waitlist: each the API's rule.
    let back = format!("/desk?clinic={clinic_id}&date={date}");
    let (status, headers, _) = desk
        .post(
            &format!("/desk/appointments/{first}/mark"),
            &[("csrf", &csrf), ("to", "checked_in"), ("back", &back)],
            None,
        )
        .await;
    assert_eq!(status, 303);
    assert!(location(&headers).starts_with("/desk?clinic="));
    assert_eq!(status_of(first.clone()).await, "checked_in");
    let (status, _, page) = desk
        .post(
            &format!("/desk/appointments/{first}/mark"),
            &[("csrf", &csrf), ("to", "lunch")],
            None,
        )
        .await;
    assert_eq!(status, 422, "{page}");
    let (status, _, page) = desk
        .get(&format!("/desk/book?reschedule={second}&date={date}"))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Move to"), "{page}");
    let (status, headers, _) = desk
        .post(
            &format!("/desk/appointments/{second}/reschedule"),
            &[("csrf", &csrf), ("slot", &id(2))],
            None,
        )
        .await;
    assert_eq!(status, 303);
    assert!(location(&headers).ends_with("done=moved"));
    let (status, _, _) = desk
        .post(
            &format!("/desk/appointments/{second}/cancel"),
            &[
                ("csrf", &csrf),
                ("reason", "patient phoned"),
                ("back", &back),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(status_of(second.clone()).await, "cancelled");
    let doctor_id = doctor.to_string();
    let (status, headers, _) = desk
        .post(
            "/desk/waitlist",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic_id),
                ("patient", &patient_id),
                ("doctor", &doctor_id),
                ("note", "any morning"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303);
    assert!(location(&headers).ends_with("done=waitlisted"));
    // A forged form does nothing; patients have no desk; the desk has no setup pages.
    let (status, _, _) = desk
        .post(
            &format!("/desk/appointments/{first}/mark"),
            &[("csrf", "forged"), ("to", "completed")],
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(status_of(first.clone()).await, "checked_in");
    let (status, _, _) = desk.get("/admin/shifts").await;
    assert_eq!(status, 403);
    let mut patient_browser = Browser::new(&app);
    patient_browser.sign_in("pat@deskpages.example.org").await;
    let (status, _, _) = patient_browser.get("/desk").await;
    assert_eq!(status, 403);

    // The admin sets the clinic up: profile, prices.
    let mut admin = Browser::new(&app);
    admin.sign_in("admin@deskpages.example.org").await;
    let (status, _, page) = admin.get("/admin/clinic").await;
    assert_eq!(status, 200, "{page}");
    let csrf = Browser::csrf(&page);
    let (status, headers, body) = admin
        .post(
            "/admin/clinic/profile",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic_id),
                ("name", "Desk Pages"),
                ("address", "2 Side Street"),
                ("description", ""),
                ("contact_email", "desk@deskpages.example.org"),
                ("contact_phone", "+351 210 000 001"),
                ("cutoff_hours", "12"),
                (
                    "widget_origins",
                    "https://deskpages.example\nhttps://www.deskpages.example",
                ),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(location(&headers).ends_with("done=profile"));
    let public = app.get(&format!("/api/v1/clinics/{clinic_id}")).await;
    let public = public.assert_ok(200);
    assert_eq!(public["cancellation_cutoff_minutes"], 720);
    assert_eq!(public["address"], "2 Side Street");
    assert_eq!(public["widget_origins"].as_array().unwrap().len(), 2);
    let (status, _, body) = admin
        .post(
            "/admin/clinic/prices",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic_id),
                ("visit_type.0", "first_visit"),
                ("doctor.0", ""),
                ("amount.0", "60.50"),
                ("currency.0", "eur"),
                ("visit_type.1", ""),
                ("doctor.1", ""),
                ("amount.1", ""),
                ("currency.1", "EUR"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let prices = app
        .get(&format!("/api/v1/clinics/{clinic_id}/prices"))
        .await;
    assert_eq!(prices.assert_ok(200)[0]["amount_cents"], 6050);
    let (status, _, _) = admin
        .post(
            "/admin/clinic/prices",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic_id),
                ("visit_type.0", "first_visit"),
                ("amount.0", "sixty"),
                ("currency.0", "EUR"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 422);

    // A schedule that leaves the checked-in visit outside it is shown before it is saved.
    let (status, _, page) = admin.get(&format!("/admin/doctors/{doctor}")).await;
    assert_eq!(status, 200, "{page}");
    let narrow = [
        ("csrf", csrf.as_str()),
        ("weekday.0", "mon"),
        ("start.0", "09:00"),
        ("end.0", "10:00"),
        ("breaks.0", ""),
        ("slot_minutes", "30"),
        ("buffer_minutes", "0"),
        ("min_notice_minutes", "0"),
        ("horizon_days", "14"),
    ];
    let (status, _, page) = admin
        .post(&format!("/admin/doctors/{doctor}/schedule"), &narrow, None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Save anyway") && page.contains("name=\"confirmed\""),
        "{page}"
    );
    let still_free = app
        .free_slots(
            doctor,
            &format!("from={day}&to={}", day + chrono::Duration::days(1)),
        )
        .await;
    assert!(still_free.len() > 10, "nothing saved yet");
    let mut confirmed = narrow.to_vec();
    confirmed.push(("confirmed", "yes"));
    let (status, headers, body) = admin
        .post(
            &format!("/admin/doctors/{doctor}/schedule"),
            &confirmed,
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(location(&headers).ends_with("done=schedule"));
    assert_eq!(
        status_of(first.clone()).await,
        "checked_in",
        "kept, never moved"
    );

    // Shifts: opening hours and a doctor's shift from the page.
    let (status, _, page) = admin.get("/admin/shifts").await;
    assert_eq!(status, 200, "{page}");
    let (status, _, _) = admin
        .post(
            "/admin/shifts/hours",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic_id),
                ("open.mon.0", "08:00"),
                ("close.mon.0", "20:00"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303);
    let person = format!("doctor:{doctor}");
    let (status, headers, body) = admin
        .post(
            "/admin/shifts",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic_id),
                ("person", &person),
                ("weekday", "mon"),
                ("start", "09:00"),
                ("end", "13:00"),
                ("valid_from", ""),
                ("valid_until", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(location(&headers).contains("uncovered="), "{:?}", headers);
    let (_, _, page) = admin
        .get(&format!("/admin/shifts?clinic={clinic_id}"))
        .await;
    assert!(
        page.contains("data-shift=") && page.contains("Dr. Counter"),
        "{page}"
    );
    assert!(
        page.contains("no doctor"),
        "Monday's gaps are shown: {page}"
    );
}

/// Every notification of `kind` queued for `email`, opened as the dispatcher would.
async fn queued_bodies(app: &TestApp, email: &str, kind: &str) -> Vec<String> {
    const SQL: &str = "SELECT id, kind, channel, recipient, about, sealed, due_at, attempts FROM outbox \
        WHERE recipient = $1 AND kind = $2 AND channel = 'email' ORDER BY due_at";
    let rows = clinic::on_db!(&app.db, |pool| sqlx::query_as::<
        _,
        clinic::notify::outbox::Claimed,
    >(SQL)
    .bind(email)
    .bind(kind)
    .fetch_all(pool)
    .await)
    .unwrap();
    rows.into_iter()
        .map(|r| r.open(app.db.policy()).expect("the message opens").body)
        .collect()
}

/// The path of the first `base…` link in `text`.
fn link_path(text: &str, base: &str) -> String {
    let at = text
        .find(base)
        .unwrap_or_else(|| panic!("no link in {text}"));
    let rest = &text[at + base.len()..];
    rest.split_whitespace().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_in_messages_check_in_and_manage_visits_on_sqlite() {
    links_in_messages_check_in_and_manage_visits(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_in_messages_check_in_and_manage_visits_on_postgres() {
    if Backend::postgres_url().is_none() {
        eprintln!("TEST_DATABASE_URL is not set; PostgreSQL run skipped");
        return;
    }
    links_in_messages_check_in_and_manage_visits(Backend::Postgres).await;
}

/// A reminder's signed link checks in without signing in (once, only what is due, never
/// when altered); a booking's confirmation links to the visit in the portal, where the
/// patient moves it; the portal also sets how reminders reach them and deletes the account.
async fn links_in_messages_check_in_and_manage_visits(backend: Backend) {
    let site = "https://clinic.example";
    let app = TestApp::spawn_with(backend, &[("PUBLIC_URL", site)]).await;
    let care = app.care_setup().await;
    let visit = care.appointment.clone();
    let booked = queued_bodies(&app, "pat@example.org", "appointment_confirmation").await;
    assert!(
        booked[0].contains(&format!(
            "To cancel or move it: {site}/me/appointments/{visit}"
        )),
        "{booked:?}"
    );
    app.submit_note(&care, "Take amoxicillin 500 mg twice daily for 7 days.")
        .await
        .assert_ok(201);
    let first = app.first_reminder_due(care.patient_id, 30).await;
    let reminders = queued_bodies(&app, "pat@example.org", "plan_reminder").await;
    assert!(!reminders.is_empty());
    assert!(
        reminders
            .iter()
            .all(|b| b.contains("tap to check in: https://clinic.example/r/")),
        "{reminders:?}"
    );
    let path = format!("/r/{}", link_path(&reminders[0], &format!("{site}/r/")));

    // Without signing in: the link shows the step and checks in the one due, once.
    let mut anyone = Browser::new(&app);
    let (status, _, page) = anyone.get(&path).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("amoxicillin") && page.contains("I did it"),
        "{page}"
    );
    let (status, _, page) = anyone.post(&path, &[], None).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("it is checked in"), "{page}");
    const STATUS: &str = "SELECT status FROM reminders WHERE id = $1";
    let done: String = clinic::on_db!(&app.db, |pool| sqlx::query_scalar(STATUS)
        .bind(first)
        .fetch_one(pool)
        .await)
    .unwrap();
    assert_eq!(done, "done");
    let (status, _, _) = anyone.post(&path, &[], None).await;
    assert_eq!(status, 409, "nothing else is due");
    // An altered link does nothing; nor does one posted from another site.
    let mut forged = path.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let (status, _, _) = anyone.get(&forged).await;
    assert_eq!(status, 401);
    let (status, _, _) = anyone.post(&path, &[], Some("https://evil.example")).await;
    assert_eq!(status, 403);

    // The confirmation's link: the patient moves the visit from the portal.
    let mut portal = Browser::new(&app);
    portal.sign_in("pat@example.org").await;
    let (status, _, page) = portal.get(&format!("/me/appointments/{visit}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Move it to another time"), "{page}");
    let csrf = Browser::csrf(&page);
    let at = page.find("name=\"slot\" value=\"").expect("a free time") + 19;
    let slot = page[at..at + 36].to_owned();
    let (status, headers, body) = portal
        .post(
            &format!("/me/appointments/{visit}/move"),
            &[("csrf", &csrf), ("slot", &slot)],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(location(&headers).contains("done=moved"));
    let moved = app
        .get_as(&care.patient, &format!("/api/v1/appointments/{visit}"))
        .await;
    assert_eq!(moved.assert_ok(200)["slot_id"], slot.as_str());
    // Nobody else's visit opens there.
    app.user_with("other@example.org", &[]).await;
    let mut other = Browser::new(&app);
    other.sign_in("other@example.org").await;
    let (status, _, _) = other.get(&format!("/me/appointments/{visit}")).await;
    assert_eq!(status, 404);

    // How reminders reach the patient.
    let (status, _, body) = portal
        .post(
            "/me/notifications",
            &[
                ("csrf", &csrf),
                ("channel", "sms"),
                ("phone", "+351912345678"),
                ("time_zone", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = portal.get("/me").await;
    assert!(page.contains("value=\"+351912345678\""), "{page}");
    let (status, _, _) = portal
        .post(
            "/me/notifications",
            &[
                ("csrf", &csrf),
                ("channel", "sms"),
                ("phone", "12"),
                ("time_zone", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, 422);

    // Deleting the account: the password first, then everything goes and the login ends.
    let (status, _, _) = portal
        .post(
            "/me/delete",
            &[
                ("csrf", &csrf),
                ("password", "wrong password"),
                ("understood", "yes"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, headers, page) = portal
        .post(
            "/me/delete",
            &[
                ("csrf", &csrf),
                ("password", PASSWORD),
                ("understood", "yes"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("are deleted"), "{page}");
    assert!(headers.get_all(SET_COOKIE).iter().count() >= 2);
    app.post(
        "/api/v1/auth/login",
        json!({"email": "pat@example.org", "password": PASSWORD}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
}

async fn a_pharmacist_stocks_sells_and_dispenses_from_the_pages(app: TestApp) {
    let care = app.care_setup().await;
    let clinic = care.clinic.id.to_string();
    app.user_with(
        "pharm@example.org",
        &[json!({"role": "pharmacist", "clinic_id": care.clinic.id})],
    )
    .await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("pharm@example.org").await, "/pharmacy");
    let (status, _, page) = b.get("/pharmacy").await;
    assert_eq!(status, 200, "{page}");
    let csrf = Browser::csrf(&page);
    // The catalogue: an over-the-counter medicine and a prescription one.
    for (name, rx) in [("Paracetamol", ""), ("Amoxicillin", "yes")] {
        let (status, _, body) = b
            .post(
                "/pharmacy/medicines",
                &[
                    ("csrf", &csrf),
                    ("clinic", &clinic),
                    ("name", name),
                    ("form", "tablet"),
                    ("strength", "500 mg"),
                    ("unit", "tablet"),
                    ("unit_cost", "0.10"),
                    ("unit_price", "0.25"),
                    ("currency", "EUR"),
                    ("low_stock_threshold", "5"),
                    ("prescription_only", rx),
                ],
                None,
            )
            .await;
        assert_eq!(status, 303, "{body}");
    }
    let (_, _, page) = b.get("/pharmacy").await;
    assert!(page.contains("0.25 EUR"), "{page}");
    let id_of = |page: &str, name: &str| {
        let at = page.find(&format!(">{name} 500 mg</a>")).expect(name);
        let start = page[..at].rfind("/pharmacy/medicines/").unwrap() + 20;
        page[start..start + 36].to_owned()
    };
    let (para, amox) = (id_of(&page, "Paracetamol"), id_of(&page, "Amoxicillin"));
    // Deliveries on the medicine's page.
    let expiry = (chrono::Utc::now() + chrono::Duration::days(90))
        .date_naive()
        .to_string();
    for id in [&para, &amox] {
        let (status, _, body) = b
            .post(
                &format!("/pharmacy/medicines/{id}/receive"),
                &[
                    ("csrf", &csrf),
                    ("batch_number", "B-1"),
                    ("expiry_date", &expiry),
                    ("quantity", "20"),
                    ("location", "A"),
                ],
                None,
            )
            .await;
        assert_eq!(status, 303, "{body}");
    }
    let (_, _, page) = b.get(&format!("/pharmacy/medicines/{para}")).await;
    assert!(page.contains("20 tablet in stock"), "{page}");
    // The catalogue entry changes from its page: a new price.
    let (status, _, body) = b
        .post(
            &format!("/pharmacy/medicines/{para}"),
            &[
                ("csrf", &csrf),
                ("name", "Paracetamol"),
                ("form", "tablet"),
                ("strength", "500 mg"),
                ("unit", "tablet"),
                ("unit_cost", "0.1"),
                ("unit_price", "0.3"),
                ("currency", "EUR"),
                ("low_stock_threshold", "5"),
                ("prescription_only", ""),
                ("retired", ""),
                ("generic_name", ""),
                ("dosage_guidance", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = b.get("/pharmacy").await;
    assert!(page.contains("0.30 EUR"), "{page}");
    // Over the counter; the prescription medicine is not sold that way.
    let (status, headers, _) = b
        .post(
            "/pharmacy/dispense",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic),
                ("medicine", &para),
                ("quantity", "3"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303);
    assert!(location(&headers).ends_with("done=sold"));
    let (status, _, _) = b
        .post(
            "/pharmacy/dispense",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic),
                ("medicine", &amox),
                ("quantity", "1"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 422);
    // A signed prescription is found by the patient's name and dispensed.
    let record = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/patients/{}/records", care.patient_id),
            json!({"appointment_id": care.appointment, "chief_complaint": "Sore throat", "diagnoses": [{"text": "Tonsillitis"}],
                   "prescriptions": [{"medicine": "amoxicillin", "dose": "500 mg", "route": "oral", "quantity": 14}]}),
        )
        .await;
    let record = record.assert_ok(201)["id"].as_str().unwrap().to_owned();
    app.post_as(
        &care.doctor,
        &format!("/api/v1/records/{record}/sign"),
        json!({}),
    )
    .await
    .assert_ok(200);
    let (_, _, found) = b.get(&format!("/pharmacy?clinic={clinic}&q=test")).await;
    assert!(
        found.contains(&format!("data-patient=\"{}\"", care.patient_id)),
        "{found}"
    );
    let (_, _, page) = b
        .get(&format!(
            "/pharmacy?clinic={clinic}&patient={}",
            care.patient_id
        ))
        .await;
    assert!(page.contains("data-prescription="), "{page}");
    assert!(
        page.contains(&format!("<option value=\"{amox}\" selected>")),
        "the prescribed medicine is suggested: {page}"
    );
    let at = page.find("name=\"prescription\" value=\"").unwrap() + 27;
    let rx = page[at..at + 36].to_owned();
    let (status, headers, body) = b
        .post(
            "/pharmacy/dispense",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic),
                ("prescription", &rx),
                ("medicine", &amox),
                ("quantity", "14"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(location(&headers).ends_with("done=dispensed"));
    let (_, _, page) = b
        .get(&format!(
            "/pharmacy?clinic={clinic}&patient={}",
            care.patient_id
        ))
        .await;
    assert!(
        page.contains("14 / 14") && page.contains("all given"),
        "{page}"
    );
    // A count correction needs a reason; below its threshold (6 − 2 < 5) the medicine is an
    // alert.
    let (_, _, page) = b.get(&format!("/pharmacy/medicines/{amox}")).await;
    let at = page.find("data-batch=\"").unwrap() + 12;
    let batch = page[at..at + 36].to_owned();
    let (status, _, _) = b
        .post(
            &format!("/pharmacy/batches/{batch}/adjust"),
            &[
                ("csrf", &csrf),
                ("kind", "adjusted"),
                ("quantity", "-2"),
                ("reason", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, 422);
    let (status, _, _) = b
        .post(
            &format!("/pharmacy/batches/{batch}/adjust"),
            &[
                ("csrf", &csrf),
                ("kind", "adjusted"),
                ("quantity", "-2"),
                ("reason", "broken blister"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = b.get("/pharmacy").await;
    assert!(page.contains("Amoxicillin 500 mg: 4 tablet left"), "{page}");
    // Front-desk staff and patients have no pharmacy.
    let mut patient = Browser::new(&app);
    patient.sign_in("pat@example.org").await;
    let (status, _, _) = patient.get("/pharmacy").await;
    assert_eq!(status, 403);
}

async fn the_desk_invoices_a_visit_takes_payment_and_the_patient_sees_it(app: TestApp) {
    let care = app.care_setup().await;
    let clinic = care.clinic.id.to_string();
    app.user_with(
        "desk@example.org",
        &[json!({"role": "clinic_staff", "clinic_id": care.clinic.id})],
    )
    .await;
    let visit = care.appointment.clone();
    let mut desk = Browser::new(&app);
    desk.sign_in("desk@example.org").await;
    let (_, _, page) = desk.get("/desk").await;
    let csrf = Browser::csrf(&page);
    desk.post(
        &format!("/desk/appointments/{visit}/mark"),
        &[("csrf", &csrf), ("to", "checked_in")],
        None,
    )
    .await;
    let (status, _, page) = desk
        .get(&format!("/desk/invoices?appointment={visit}"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Invoice the visit of Test Patient"), "{page}");
    let (status, headers, body) = desk
        .post(
            "/desk/invoices",
            &[
                ("csrf", &csrf),
                ("clinic", &clinic),
                ("appointment", &visit),
                ("visit_type", ""),
                ("description", "Dressing"),
                ("quantity", "2"),
                ("unit_price", "2.50"),
                ("discount", "1.00"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let invoice = location(&headers);
    let (_, _, page) = desk.get(&invoice).await;
    assert!(
        page.contains("Invoice (draft)") && page.contains("Dressing"),
        "{page}"
    );
    // The doctor's fee (60.00) and the dressing (5.00 − 1.00), no tax rates set.
    assert!(page.contains("<td class=\"total\">64.00</td>"), "{page}");
    let (status, _, _) = desk
        .post(&format!("{invoice}/issue"), &[("csrf", &csrf)], None)
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = desk.get(&invoice).await;
    assert!(page.contains("Invoice CAR-"), "{page}");
    let (status, _, _) = desk
        .post(
            &format!("{invoice}/pay"),
            &[
                ("csrf", &csrf),
                ("method", "card"),
                ("amount", "100.00"),
                ("reference", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, 409, "more than owed");
    let (status, _, _) = desk
        .post(
            &format!("{invoice}/pay"),
            &[
                ("csrf", &csrf),
                ("method", "card"),
                ("amount", "64.00"),
                ("reference", "POS 1"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = desk.get(&invoice).await;
    assert!(page.contains("data-status=\"paid\""), "{page}");
    // The patient sees it in the portal and opens it, without the desk's actions.
    let mut portal = Browser::new(&app);
    portal.sign_in("pat@example.org").await;
    let (_, _, me) = portal.get("/me").await;
    assert!(me.contains("My invoices") && me.contains("CAR-"), "{me}");
    let (status, _, page) = portal.get(&invoice).await;
    assert_eq!(status, 200);
    assert!(
        !page.contains("Take a payment") && !page.contains("credit note"),
        "{page}"
    );
    // Voided by a credit note from its page.
    let (status, headers, _) = desk
        .post(
            &format!("{invoice}/credit"),
            &[("csrf", &csrf), ("reason", "wrong patient")],
            None,
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, note) = desk.get(&location(&headers)).await;
    assert!(
        note.contains("Credit note CAR-") && note.contains("-64.00"),
        "{note}"
    );
}

async fn the_offline_desk_is_installable_and_syncs_under_the_session_with_its_csrf_token(
    app: TestApp,
) {
    let care = app.care_setup().await;
    let clinic = care.clinic.id;
    app.user_with(
        "desk@example.org",
        &[json!({"role": "clinic_staff", "clinic_id": clinic})],
    )
    .await;
    // Signed out, the page sends to the sign-in; its files are public and never stale.
    let mut desk = Browser::new(&app);
    let (status, _, _) = desk.get("/desk/offline").await;
    assert_eq!(status, 303);
    for (path, kind) in [
        ("/desk/offline.js", "text/javascript"),
        ("/desk/sw.js", "text/javascript"),
        ("/desk/manifest.webmanifest", "application/manifest+json"),
        ("/desk/icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = desk.get(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        assert!(!body.is_empty());
    }
    let (_, _, manifest) = desk.get("/desk/manifest.webmanifest").await;
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["start_url"], "/desk/offline");
    assert_eq!(manifest["scope"], "/desk/");

    desk.sign_in("desk@example.org").await;
    let (status, headers, page) = desk.get(&format!("/desk/offline?clinic={clinic}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<link rel="manifest" href="/desk/manifest.webmanifest">"#));
    assert!(page.contains(&format!(r#"data-clinic="{clinic}""#)));
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let csrf = page
        .split(r#"data-csrf=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    // The snapshot under the session.
    let (status, _, body) = desk
        .get(&format!("/desk/sync/snapshot?clinic={clinic}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(snapshot["clinic_id"], clinic.to_string());
    // A batch: without the page's token it is refused; with it, applied.
    let batch = json!({"clinic_id": clinic, "commands": [{"id": uuid::Uuid::now_v7(),
        "made_at": chrono::Utc::now(), "kind": "check_in", "appointment_id": care.appointment}]});
    let send = |token: &str| {
        desk.client
            .post(format!("{}/desk/sync", desk.base))
            .header("cookie", desk.cookies.join("; "))
            .header("origin", desk.base.clone())
            .header("x-csrf-token", token.to_owned())
            .json(&batch)
            .send()
    };
    let refused = send("forged").await.unwrap();
    assert_eq!(refused.status(), 403);
    let answers: serde_json::Value = send(&csrf).await.unwrap().json().await.unwrap();
    assert_eq!(answers[0]["status"], "applied", "{answers}");
    let visit = app
        .get_as(
            &app.access_token("desk@example.org").await,
            &format!("/api/v1/appointments/{}", care.appointment),
        )
        .await;
    assert_eq!(visit.assert_ok(200)["status"], "checked_in");
    // A patient signed in gets no snapshot.
    let mut patient = Browser::new(&app);
    patient.sign_in("pat@example.org").await;
    let (status, _, _) = patient
        .get(&format!("/desk/sync/snapshot?clinic={clinic}"))
        .await;
    assert_eq!(status, 403);
}
