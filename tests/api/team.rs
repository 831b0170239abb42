//! Running a clinic: inviting its team, its price list and its logo.

use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    an_invited_receptionist_signs_in_by_code_and_works_at_that_clinic_only,
    the_price_list_is_replaced_whole_and_checked,
    a_logo_is_checked_by_its_bytes_stored_and_served,
);

async fn an_invited_receptionist_signs_in_by_code_and_works_at_that_clinic_only(app: TestApp) {
    let clinic = app.approved_clinic("Team Clinic", "Europe/Lisbon").await;
    let other = app.approved_clinic("Other Clinic", "Europe/Lisbon").await;
    let staff_path = format!("/api/v1/clinics/{}/staff", clinic.id);

    let invited = app
        .post_as(
            &clinic.admin,
            &staff_path,
            json!({"email": "Rita@Example.org", "display_name": "Rita Reception", "role": "clinic_staff"}),
        )
        .await;
    assert_eq!(invited.assert_ok(201)["email"], "rita@example.org");
    assert_eq!(invited.body["role"], "clinic_staff");
    assert_eq!(invited.body["joined"], false);
    let (subject, _) = app.last_mail("rita@example.org").await.expect("invitation");
    assert_eq!(subject, "Join Team Clinic");

    // A clinic admin cannot make admins, nor invite into another clinic; a patient cannot invite.
    app.post_as(
        &clinic.admin,
        &staff_path,
        json!({"email": "boss@example.org", "display_name": "Boss", "role": "clinic_admin"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(
        &other.admin,
        &staff_path,
        json!({"email": "spy@example.org", "display_name": "Spy", "role": "clinic_staff"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(
        &clinic.admin,
        &staff_path,
        json!({"email": "doc@example.org", "display_name": "Doc", "role": "doctor"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post_as(
        &clinic.admin,
        &staff_path,
        json!({"email": "not-an-address", "display_name": "X", "role": "clinic_staff"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    assert_eq!(app.mail_count("spy@example.org").await, 0);
    // A system admin can add a second clinic admin.
    app.post_as(
        &clinic.root,
        &staff_path,
        json!({"email": "second-admin@example.org", "display_name": "Second Admin", "role": "clinic_admin"}),
    )
    .await
    .assert_ok(201);

    // The receptionist proves the address with a mailed code and is signed in as staff.
    app.post(
        "/api/v1/auth/login/code/start",
        json!({"email": "rita@example.org"}),
    )
    .await
    .assert_ok(202);
    let code = app.last_code("rita@example.org").await;
    let signed_in = app
        .post(
            "/api/v1/auth/login/code",
            json!({"email": "rita@example.org", "code": code}),
        )
        .await;
    assert_eq!(
        signed_in.assert_ok(200)["status"],
        "authenticated",
        "{:#}",
        signed_in.body
    );
    let rita = signed_in.str("access_token");
    let roles = signed_in.body["user"]["roles"].as_array().unwrap().clone();
    assert!(
        roles.contains(&json!({"role": "clinic_staff", "clinic_id": clinic.id})),
        "{roles:?}"
    );

    let team = app.get_as(&rita, &staff_path).await;
    let team: Vec<(String, String, bool)> = team
        .assert_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
                m["joined"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        team.contains(&("rita@example.org".into(), "clinic_staff".into(), true)),
        "{team:?}"
    );
    assert!(
        team.contains(&(
            "second-admin@example.org".into(),
            "clinic_admin".into(),
            false
        )),
        "{team:?}"
    );
    app.get_as(&rita, &format!("/api/v1/clinics/{}/staff", other.id))
        .await
        .assert_problem(403, "forbidden");
    app.get_as(
        &rita,
        &format!("/api/v1/clinics/{}/appointments?date=2026-12-01", clinic.id),
    )
    .await
    .assert_ok(200);
    app.get_as(
        &rita,
        &format!("/api/v1/clinics/{}/appointments?date=2026-12-01", other.id),
    )
    .await
    .assert_problem(403, "forbidden");
    let audited = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE action = $1",
            "staff.invited",
        )
        .await;
    assert_eq!(audited, 2);
}

async fn the_price_list_is_replaced_whole_and_checked(app: TestApp) {
    let clinic = app.approved_clinic("Price Clinic", "Europe/Lisbon").await;
    let other = app.approved_clinic("Elsewhere", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Priced", TestApp::all_week(), 0)
        .await;
    let stranger = app
        .doctor_with_schedule(&other, "Dr. Stranger", TestApp::all_week(), 0)
        .await;
    let path = format!("/api/v1/clinics/{}/prices", clinic.id);
    let put = |token: &str, body: serde_json::Value| {
        let token = token.to_owned();
        let path = path.clone();
        let app = &app;
        async move {
            app.request(Method::PUT, &path, Some(&token), Some(body))
                .await
        }
    };

    let saved = put(
        &clinic.admin,
        json!({"prices": [
            {"visit_type": "first_visit", "amount_cents": 8000, "currency": "eur"},
            {"visit_type": "follow_up", "amount_cents": 5000, "currency": "EUR"},
            {"visit_type": "first_visit", "doctor_id": doctor, "amount_cents": 9500, "currency": "EUR"},
        ]}),
    )
    .await;
    let list = saved.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["currency"], "EUR");
    assert_eq!(list[2]["doctor_name"], "Dr. Priced");
    assert_eq!(list[2]["amount_cents"], 9500);
    // Anyone can read it.
    assert_eq!(
        app.get(&path)
            .await
            .assert_ok(200)
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Every bad line is named; nothing changes.
    let bad = put(
        &clinic.admin,
        json!({"prices": [
            {"visit_type": "Follow Up!", "amount_cents": -1, "currency": "euro"},
            {"visit_type": "check_up", "amount_cents": 100, "currency": "EUR"},
            {"visit_type": "check_up", "amount_cents": 200, "currency": "EUR"},
            {"visit_type": "check_up", "doctor_id": stranger, "amount_cents": 200, "currency": "EUR"},
        ]}),
    )
    .await;
    bad.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "prices[0].visit_type",
        "prices[0].amount_cents",
        "prices[0].currency",
        "prices[2]",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    let foreign = put(
        &clinic.admin,
        json!({"prices": [{"visit_type": "check_up", "doctor_id": stranger, "amount_cents": 200, "currency": "EUR"}]}),
    )
    .await;
    foreign.assert_problem(422, "validation_failed");
    assert_eq!(foreign.body["errors"][0]["field"], "prices[0].doctor_id");
    assert_eq!(app.get(&path).await.body.as_array().unwrap().len(), 3);

    // Only this clinic's admins may change it.
    put(&other.admin, json!({"prices": []}))
        .await
        .assert_problem(403, "forbidden");
    let (_, patient) = app.user_with("pat@example.org", &[]).await;
    put(&patient, json!({"prices": []}))
        .await
        .assert_problem(403, "forbidden");
    put(&clinic.admin, json!({"prices": []}))
        .await
        .assert_ok(200);
    assert!(app.get(&path).await.body.as_array().unwrap().is_empty());
}

/// A 1×1 transparent PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

async fn upload(
    app: &TestApp,
    token: &str,
    clinic: uuid::Uuid,
    content_type: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/v1/clinics/{clinic}/logo")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .expect("upload")
}

fn stored_logos(app: &TestApp) -> usize {
    std::fs::read_dir(app.data_dir().join("uploads/logos"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn a_logo_is_checked_by_its_bytes_stored_and_served(app: TestApp) {
    let clinic = app.approved_clinic("Logo Clinic", "Europe/Lisbon").await;
    let other = app.approved_clinic("Not Yours", "Europe/Lisbon").await;
    let logo_path = format!("/api/v1/clinics/{}/logo", clinic.id);
    app.get(&logo_path).await.assert_problem(404, "not_found");

    let bad = [
        (
            "image/svg+xml",
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec(),
            415,
            "unsupported_media_type",
        ),
        ("image/jpeg", PNG.to_vec(), 415, "unsupported_media_type"),
        (
            "image/png",
            b"not an image at all".to_vec(),
            415,
            "unsupported_media_type",
        ),
        ("image/png", Vec::new(), 422, "invalid_body"),
        (
            "image/png",
            [PNG, &vec![0u8; 600 * 1024]].concat(),
            413,
            "payload_too_large",
        ),
    ];
    for (content_type, bytes, status, code) in bad {
        let r = upload(&app, &clinic.admin, clinic.id, content_type, bytes).await;
        assert_eq!(r.status().as_u16(), status, "{content_type}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{content_type}"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], code, "{content_type}: {body:#}");
    }
    let r = upload(&app, &other.admin, clinic.id, "image/png", PNG.to_vec()).await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(stored_logos(&app), 0, "nothing stored for refused uploads");

    for _ in 0..2 {
        let r = upload(&app, &clinic.admin, clinic.id, "image/png", PNG.to_vec()).await;
        assert_eq!(r.status().as_u16(), 200);
        let view: serde_json::Value = r.json().await.unwrap();
        assert_eq!(view["logo_url"], logo_path.as_str());
    }
    assert_eq!(stored_logos(&app), 1, "a replaced logo is removed");

    let served = app.client.get(app.url(&logo_path)).send().await.unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    let clinic_view = app.get(&format!("/api/v1/clinics/{}", clinic.id)).await;
    assert_eq!(clinic_view.assert_ok(200)["logo_url"], logo_path.as_str());
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE action = $1",
            "clinic.logo_set"
        )
        .await,
        2
    );
}
