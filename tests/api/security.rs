//! What an outside audit tried, kept as regression tests: who reaches a patient's clinical
//! data across clinics, and joining a clinic's team only by consent.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    another_clinics_admin_cannot_reach_a_patients_notes,
    an_existing_account_joins_a_clinic_only_when_it_accepts,
    line_breaks_are_text_and_hidden_characters_are_named,
    far_dates_are_a_bad_request_naming_the_range,
    an_admin_of_two_clinics_sees_both_clinics_audit,
    answers_are_not_cached,
    a_chat_answers_only_the_client_that_started_it,
    what_a_patient_writes_is_sealed_and_a_deleted_chat_leaves_no_copies,
    a_patient_exports_then_erases_their_account_and_no_copy_is_left,
);

const NOTE: &str = "Apply the cream every 12 hours for 3 days. Buy a thermometer.";

async fn book_as(app: &TestApp, token: &str, doctor: Uuid) {
    let slot = app.free_slots(doctor, "").await[2]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_as(token, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await
        .assert_ok(201);
    app.post_as(
        token,
        &format!("/api/v1/slots/{slot}/confirm"),
        json!({"reason": "check-up"}),
    )
    .await
    .assert_ok(201);
}

fn note_ids(body: &Value) -> Vec<String> {
    body.as_array()
        .expect("notes")
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The audit's sequence: clinic Y's admin adds patient A to Y's team, makes their own
/// account a doctor at Y with a zero-notice schedule, books A in, and reads A's notes
/// written at clinic X. Each step that should be refused is, and it ends in 403. Then the
/// ways that are right: A books at Y herself (Y's doctor reads only Y's notes), and A
/// shares her record with Y (Y's doctor reads X's note until she revokes the share).
async fn another_clinics_admin_cannot_reach_a_patients_notes(app: TestApp) {
    let care = app.care_setup().await;
    let written = app.submit_note(&care, NOTE).await;
    let note_x = written.assert_ok(201)["note"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let notes_path = format!("/api/v1/patients/{}/notes", care.patient_id);
    let steps_path = format!("/api/v1/patients/{}/actionable-steps", care.patient_id);
    let y = app.approved_clinic("Clinic Y", "Europe/Lisbon").await;

    // 1. Adding A to Y's team is an invitation A has not accepted, and says nothing of
    //    her account: the answer is the same as for an address nobody has.
    let staff_path = format!("/api/v1/clinics/{}/staff", y.id);
    let invited = app
        .post_as(
            &y.admin,
            &staff_path,
            json!({"email": "pat@example.org", "display_name": "Ann", "role": "clinic_staff"}),
        )
        .await;
    let fresh = app
        .post_as(
            &y.admin,
            &staff_path,
            json!({"email": "nobody-yet@example.org", "display_name": "Bea", "role": "clinic_staff"}),
        )
        .await;
    for answer in [&invited, &fresh] {
        let body = answer.assert_ok(201);
        assert!(body["user_id"].is_null(), "{body:#}");
        assert_eq!(body["joined"], false);
    }
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&invited.body), keys(&fresh.body));
    let me = app.get_as(&care.patient, "/api/v1/me").await;
    assert!(
        !me.assert_ok(200)["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["role"] == "clinic_staff"),
        "{:#}",
        me.body
    );
    let team = app.get_as(&y.admin, &staff_path).await;
    assert!(
        !team
            .assert_ok(200)
            .to_string()
            .contains(&care.patient_id.to_string()),
        "the team list shows no id of an invited account: {:#}",
        team.body
    );

    // 2. The admin's own account becomes a doctor at Y, with a schedule at zero notice.
    let created = app
        .post_as(
            &y.admin,
            &format!("/api/v1/clinics/{}/doctors", y.id),
            json!({"display_name": "Dr. Y", "email": "admin@clinicy.example.org", "languages": ["en"],
                   "fee_cents": 100, "specialties": ["dermatology"]}),
        )
        .await;
    let doctor_y: Uuid = created.assert_ok(201)["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(created.body.get("user_id").is_none(), "{:#}", created.body);
    app.request(
        Method::PUT,
        &format!("/api/v1/doctors/{doctor_y}/schedule"),
        Some(&y.admin),
        Some(json!({"rules": TestApp::all_week(), "slot_minutes": 30, "min_notice_minutes": 0, "horizon_days": 7})),
    )
    .await
    .assert_ok(200);

    // 3. Y's desk cannot book a patient Y does not know: as absent as no account.
    let slot = app.free_slots(doctor_y, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_as(
        &y.admin,
        &format!("/api/v1/slots/{slot}/book"),
        json!({"patient_id": care.patient_id, "reason": "x"}),
    )
    .await
    .assert_problem(404, "not_found");

    // 4. It ends in 403: notes, one note, the plan's steps.
    for path in [
        notes_path.clone(),
        format!("/api/v1/notes/{note_x}"),
        steps_path.clone(),
    ] {
        app.get_as(&y.admin, &path)
            .await
            .assert_problem(403, "forbidden");
    }

    // When A books at Y herself, Y's doctor reads what Y wrote, and nothing of X's.
    book_as(&app, &care.patient, doctor_y).await;
    let seen = app.get_as(&y.admin, &notes_path).await;
    assert!(note_ids(seen.assert_ok(200)).is_empty(), "{:#}", seen.body);
    app.get_as(&y.admin, &format!("/api/v1/notes/{note_x}"))
        .await
        .assert_problem(403, "forbidden");
    let steps = app.get_as(&y.admin, &steps_path).await;
    assert!(
        steps.assert_ok(200)["plans"].as_array().unwrap().is_empty(),
        "{:#}",
        steps.body
    );
    // X's own doctor still reads it, and the patient.
    for token in [&care.doctor, &care.patient] {
        let seen = app.get_as(token, &notes_path).await;
        assert_eq!(note_ids(seen.assert_ok(200)), vec![note_x.clone()]);
    }

    // Only A can share her record with Y (no such call for Y's staff), and she can revoke it.
    let share_path = format!("/api/v1/me/record-shares/{}", y.id);
    let shared = app
        .request(Method::PUT, &share_path, Some(&care.patient), None)
        .await;
    assert_eq!(shared.assert_ok(200)["clinic_id"], y.id.to_string());
    let seen = app.get_as(&y.admin, &notes_path).await;
    assert_eq!(note_ids(seen.assert_ok(200)), vec![note_x.clone()]);
    app.get_as(&y.admin, &format!("/api/v1/notes/{note_x}"))
        .await
        .assert_ok(200);
    let shares = app.get_as(&care.patient, "/api/v1/me/record-shares").await;
    assert_eq!(shares.assert_ok(200).as_array().unwrap().len(), 1);
    let revoked = app
        .request(Method::DELETE, &share_path, Some(&care.patient), None)
        .await;
    assert_eq!(revoked.status.as_u16(), 204);
    app.request(Method::DELETE, &share_path, Some(&care.patient), None)
        .await
        .assert_problem(404, "not_found");
    let seen = app.get_as(&y.admin, &notes_path).await;
    assert!(note_ids(seen.assert_ok(200)).is_empty());
    app.get_as(&y.admin, &format!("/api/v1/notes/{note_x}"))
        .await
        .assert_problem(403, "forbidden");

    for (action, at_least) in [
        ("record.shared", 1),
        ("record.unshared", 1),
        ("note.read", 4),
    ] {
        let n = app
            .scalar_i64_str("SELECT COUNT(*) FROM audit WHERE action = $1", action)
            .await;
        assert!(n >= at_least, "{action}: {n}");
    }
    let denied = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE action = $1 AND CAST(details AS TEXT) LIKE '%denied%'",
            "note.read",
        )
        .await;
    assert!(denied >= 4, "refusals are audited: {denied}");
}

/// An account that exists gets an invitation, not a role: only it can accept (signed in),
/// once, and until then it is listed like any invitee. A clinic admin cannot hand a role
/// to an outsider by id either.
async fn an_existing_account_joins_a_clinic_only_when_it_accepts(app: TestApp) {
    let clinic = app.approved_clinic("Harbour Clinic", "Europe/Lisbon").await;
    let (pat_id, pat) = app.user_with("pat@example.org", &[]).await;
    let (_, other) = app.user_with("other@example.org", &[]).await;
    let staff_path = format!("/api/v1/clinics/{}/staff", clinic.id);
    app.post_as(
        &clinic.admin,
        &staff_path,
        json!({"email": "pat@example.org", "display_name": "Pat Desk", "role": "clinic_staff"}),
    )
    .await
    .assert_ok(201);
    let (subject, body) = app.last_mail("pat@example.org").await.expect("mail");
    assert_eq!(subject, "Join Harbour Clinic");
    let pending = app.get_as(&pat, "/api/v1/invitations").await;
    let pending = pending.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(pending.len(), 1);
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(pending[0]["role"], "clinic_staff");
    assert!(body.contains(&id), "the mail names the invitation: {body}");
    let listed = app.get_as(&clinic.admin, &staff_path).await;
    let entry = listed
        .assert_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "pat@example.org")
        .cloned()
        .expect("listed as invited");
    assert_eq!(entry["joined"], false);
    assert!(entry["user_id"].is_null());
    assert_eq!(entry["display_name"], "Pat Desk");
    // Nothing at the clinic yet.
    app.get_as(
        &pat,
        &format!("/api/v1/clinics/{}/appointments?date=2026-12-01", clinic.id),
    )
    .await
    .assert_problem(403, "forbidden");

    // Nobody else accepts it, not even the admin who sent it.
    for token in [&other, &clinic.admin] {
        app.post_as(
            token,
            &format!("/api/v1/invitations/{id}/accept"),
            json!({}),
        )
        .await
        .assert_problem(404, "not_found");
    }
    let accepted = app
        .post_as(&pat, &format!("/api/v1/invitations/{id}/accept"), json!({}))
        .await;
    assert_eq!(accepted.assert_ok(200)["clinic_id"], clinic.id.to_string());
    app.post_as(&pat, &format!("/api/v1/invitations/{id}/accept"), json!({}))
        .await
        .assert_problem(404, "not_found");
    app.get_as(
        &pat,
        &format!("/api/v1/clinics/{}/appointments?date=2026-12-01", clinic.id),
    )
    .await
    .assert_ok(200);
    let listed = app.get_as(&clinic.admin, &staff_path).await;
    assert!(
        listed
            .assert_ok(200)
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == pat_id.to_string() && m["joined"] == true),
        "{:#}",
        listed.body
    );

    // A role by id only for the clinic's own team.
    let (outsider, _) = app.user_with("outsider@example.org", &[]).await;
    app.post_as(
        &clinic.admin,
        &format!("/api/v1/admin/users/{outsider}/roles"),
        json!({"role": "clinic_staff", "clinic_id": clinic.id}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(
        &clinic.admin,
        &format!("/api/v1/admin/users/{pat_id}/roles"),
        json!({"role": "doctor", "clinic_id": clinic.id}),
    )
    .await
    .assert_ok(200);
    let accepted_audit = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE action = $1",
            "invitation.accepted",
        )
        .await;
    assert!(accepted_audit >= 2, "this one and the clinic admin's own");
}

/// Slow clients: 1,100 connections that never finish their headers do not stop the service
/// answering, and each is closed once the header timeout has passed; a body that trickles
/// in is cut off at the body timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_timed_out_and_do_not_starve_the_service() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        &[
            ("HTTP_HEADER_TIMEOUT_MS", "1500"),
            ("HTTP_BODY_TIMEOUT_MS", "1500"),
        ],
    )
    .await;
    let mut slow = Vec::new();
    for _ in 0..1_100 {
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    let mut trickle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    trickle
        .write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"email\"")
        .await
        .unwrap();
    let opened = std::time::Instant::now();

    // Within 1 s (a second try allowed: the other tests share these two cores).
    let mut answered = None;
    for _ in 0..2 {
        if let Ok(r) = app
            .client
            .get(app.url("/healthz"))
            .timeout(std::time::Duration::from_secs(1))
            .send()
            .await
        {
            answered = Some(r.status().as_u16());
            break;
        }
    }
    assert_eq!(
        answered,
        Some(200),
        "/healthz answers within 1 s while 1,100 slow connections are open"
    );

    // Every slow connection is closed by the server (end of stream, or an error answer
    // then the end) soon after the header timeout; none stays open.
    let closed = |mut s: tokio::net::TcpStream| async move {
        let mut buf = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .is_ok()
    };
    let results = futures::future::join_all(slow.into_iter().map(closed)).await;
    let open = results.iter().filter(|ok| !**ok).count();
    assert_eq!(open, 0, "{open} slow connections were never closed");
    assert!(
        closed(trickle).await,
        "a request body that never completes is cut off"
    );
    let took = opened.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(1_400),
        "closed by the timeout, not at once: {took:?}"
    );
    // The service still answers (on a new connection: the client's pooled one was idle
    // past the timeout too, and closed).
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    let health = fresh.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// Beyond the connection cap a new connection gets a clear 503 and is closed; the service
/// answers again once connections end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_clearly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        &[
            ("HTTP_MAX_CONNECTIONS", "20"),
            ("HTTP_HEADER_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
    }
    // Give the server a moment to accept them all (it answers the 21st at once).
    let mut refused = String::new();
    for _ in 0..50 {
        let mut extra = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        extra
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            extra.read_to_end(&mut buf),
        )
        .await;
        refused = String::from_utf8_lossy(&buf).into_owned();
        if refused.starts_with("HTTP/1.1 503") {
            break;
        }
    }
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    assert!(
        refused.contains("\"code\":\"service_unavailable\""),
        "{refused}"
    );
    drop(idle);
    // Once they are gone, new connections are served.
    let mut served = false;
    for _ in 0..50 {
        if let Ok(r) = app.client.get(app.url("/healthz")).send().await
            && r.status() == 200
        {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served);
}

/// A note and a chat message with line breaks (CRLF from a textarea) are text; a bell
/// character or a right-to-left override is refused with its name, before any model reads
/// the note; a display name with an invisible or directional character is refused.
async fn line_breaks_are_text_and_hidden_characters_are_named(app: TestApp) {
    let care = app.care_setup().await;
    let written = app
        .submit_note(
            &care,
            "Apply the cream every 12 hours for 3 days.\r\n\tBuy a thermometer.",
        )
        .await;
    assert_eq!(
        written.assert_ok(201)["note"]["text"],
        "Apply the cream every 12 hours for 3 days.\n\tBuy a thermometer."
    );
    for (text, named) in [
        ("Take rest \u{7} daily", "U+0007"),
        ("Take \u{202E}tser daily", "U+202E"),
    ] {
        let refused = app.submit_note(&care, text).await;
        refused.assert_problem(422, "validation_failed");
        let message = refused.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
    let notes = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM notes WHERE CAST(patient_id AS TEXT) <> $1",
            "",
        )
        .await;
    assert_eq!(notes, 1, "nothing stored for refused notes");

    let chat = app
        .post(
            "/api/v1/chat/sessions",
            json!({"consent": true, "time_zone": "Europe/Lisbon"}),
        )
        .await;
    let session = chat.assert_ok(201)["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/api/v1/chat/sessions/{session}/messages"),
        json!({"text": "Hello,\nI have a rash on my arm."}),
    )
    .await
    .assert_ok(200);

    for name in ["Ana\u{202E}atsoC", "Ana\u{200B}Costa", "Ana\nCosta"] {
        app.post(
            "/api/v1/auth/register",
            json!({"email": "zw@example.org", "password": "correct horse battery", "display_name": name}),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
}

/// Dates far in the future were a panic and a 500; they are a 400 that says what is allowed.
async fn far_dates_are_a_bad_request_naming_the_range(app: TestApp) {
    let clinic = app.approved_clinic("Date Clinic", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Far", TestApp::all_week(), 0)
        .await;
    for path in [
        format!("/api/v1/doctors/{doctor}/slots?from=%2B262142-12-20"),
        format!("/api/v1/doctors/{doctor}/slots?from=2026-12-01&to=%2B262142-12-20"),
        "/api/v1/specialties/dermatology/slots?from=%2B262142-12-20".to_owned(),
        "/api/v1/doctors?specialty=dermatology&from=%2B262142-12-20".to_owned(),
    ] {
        let far = app.get(&path).await;
        far.assert_problem(400, "invalid_query");
        assert!(
            far.body["detail"].as_str().unwrap().contains("2199-12-31"),
            "{path}: {:#}",
            far.body
        );
    }
    let (_, patient) = app.user_with("far@example.org", &[]).await;
    app.get_as(&patient, "/api/v1/reminders?from=%2B262142-12-20T00:00:00Z")
        .await
        .assert_problem(400, "invalid_query");
}

/// An admin of two clinics sees the audit records of both.
async fn an_admin_of_two_clinics_sees_both_clinics_audit(app: TestApp) {
    let a = app.approved_clinic("Audit A", "Europe/Lisbon").await;
    let b = app.approved_clinic("Audit B", "Europe/Lisbon").await;
    // A's admin is invited to run B too, and accepts.
    app.post_as(
        &b.root,
        &format!("/api/v1/clinics/{}/staff", b.id),
        json!({"email": "admin@audita.example.org", "display_name": "Admin A", "role": "clinic_admin"}),
    )
    .await
    .assert_ok(201);
    assert_eq!(app.accept_invitations(&a.admin).await, 1);
    let records = app.get_as(&a.admin, "/api/v1/admin/audit?limit=500").await;
    let clinics: std::collections::HashSet<String> = records
        .assert_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["clinic_id"].as_str().map(str::to_owned))
        .collect();
    assert!(clinics.contains(&a.id.to_string()), "{clinics:?}");
    assert!(clinics.contains(&b.id.to_string()), "{clinics:?}");
    let only_b = app
        .get_as(&a.admin, &format!("/api/v1/admin/audit?clinic_id={}", b.id))
        .await;
    assert!(
        only_b
            .assert_ok(200)
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["clinic_id"] == b.id.to_string())
    );
    let c = app.approved_clinic("Audit C", "Europe/Lisbon").await;
    app.get_as(&a.admin, &format!("/api/v1/admin/audit?clinic_id={}", c.id))
        .await
        .assert_problem(403, "forbidden");
}

/// Answers that may carry health data are never cached.
async fn answers_are_not_cached(app: TestApp) {
    let (_, patient) = app.user_with("cache@example.org", &[]).await;
    let me = app.get_as(&patient, "/api/v1/me").await;
    me.assert_ok(200);
    assert_eq!(me.headers["cache-control"], "no-store");
    assert!(
        me.headers.get("strict-transport-security").is_none(),
        "not over plain http"
    );
}

/// Anyone may apply to join, but not thirty times in a burst.
#[tokio::test]
async fn the_open_application_form_is_rate_limited() {
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        &[
            ("AUTH_RATE_LIMIT_BURST", "10"),
            ("AUTH_RATE_LIMIT_REPLENISH_MS", "6000"),
        ],
    )
    .await;
    let mut limited = 0;
    for i in 0..30 {
        let a = app
            .post(
                "/api/v1/clinic-requests",
                json!({"name": format!("Burst {i}"), "address": "1 Main Street", "time_zone": "UTC", "contact_name": "Spam",
                       "contact_email": format!("burst{i}@example.org"), "contact_phone": "+351 210 000 000", "specialties": ["dermatology"]}),
            )
            .await;
        if a.status.as_u16() == 429 {
            assert_eq!(a.body["code"], "rate_limited");
            limited += 1;
        }
    }
    assert!(limited >= 15, "only {limited} of 30 refused");
}

/// Behind https, browsers are told to stay on https.
#[tokio::test]
async fn over_https_the_service_sends_strict_transport_security() {
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        &[("PUBLIC_URL", "https://clinic.example")],
    )
    .await;
    let health = app.get("/healthz").await;
    let hsts = health.headers["strict-transport-security"]
        .to_str()
        .unwrap();
    assert!(hsts.starts_with("max-age="), "{hsts}");
}

fn median(mut v: Vec<std::time::Duration>) -> std::time::Duration {
    v.sort();
    v[v.len() / 2]
}

/// Whether an address has an account shows neither in the answers nor in their timing:
/// registering a taken address takes as long as a new one (the password is hashed either
/// way; compared as a ratio of medians), and failed sign-ins lock an address the same way
/// whether or not an account has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_do_not_tell_which_addresses_have_accounts() {
    // The production cost of argon2, which is what made the difference.
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        &[("ARGON2_MEMORY_KIB", "19456"), ("ARGON2_ITERATIONS", "2")],
    )
    .await;
    app.verified_patient("taken@example.org").await;
    let register = |email: String| {
        let app = &app;
        async move {
            let started = std::time::Instant::now();
            let a = app
                .post(
                    "/api/v1/auth/register",
                    json!({"email": email, "password": "correct horse battery", "display_name": "Someone"}),
                )
                .await;
            (started.elapsed(), a)
        }
    };
    let (mut taken, mut fresh) = (Vec::new(), Vec::new());
    for i in 0..11 {
        let (t, a) = register("taken@example.org".into()).await;
        a.assert_ok(202);
        taken.push(t);
        let (t, b) = register(format!("fresh{i}@example.org")).await;
        b.assert_ok(202);
        assert_eq!(a.body, b.body);
        fresh.push(t);
    }
    let (taken, fresh) = (median(taken), median(fresh));
    let ratio = fresh.as_secs_f64() / taken.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "registering a new address takes {fresh:?}, a taken one {taken:?} (ratio {ratio:.2})"
    );

    // Five wrong passwords lock an address, whether or not it has an account.
    for email in ["taken@example.org", "nobody@example.org"] {
        for _ in 0..5 {
            app.post(
                "/api/v1/auth/login",
                json!({"email": email, "password": "wrong password!"}),
            )
            .await
            .assert_problem(401, "invalid_credentials");
        }
        let locked = app
            .post(
                "/api/v1/auth/login",
                json!({"email": email, "password": "wrong password!"}),
            )
            .await;
        locked.assert_problem(423, "account_locked");
    }
}

/// A chat is bound to the secret its creator got: whoever learns only its id can neither
/// read, write, confirm nor delete it, signed in or not; once the creator signs in, it is
/// theirs alone.
async fn a_chat_answers_only_the_client_that_started_it(app: TestApp) {
    let started = app
        .post(
            "/api/v1/chat/sessions",
            json!({"consent": true, "time_zone": "Europe/Lisbon"}),
        )
        .await;
    let id = started.assert_ok(201)["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = started.body["session_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 40, "{secret}");
    let path = format!("/api/v1/chat/sessions/{id}/messages");
    app.post(
        &path,
        json!({"text": "My knee hurts, I need an appointment"}),
    )
    .await
    .assert_ok(200);

    let (_, thief) = app.user_with("thief@example.org", &[]).await;
    let raw = |token: Option<&str>, secret: Option<&str>, method: Method, path: String| {
        let app = &app;
        let token = token.map(str::to_owned);
        let secret = secret.map(str::to_owned);
        async move {
            let mut req = app.client.request(method, app.url(&path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(s) = secret {
                req = req.header("x-chat-secret", s);
            }
            req.json(&json!({"text": "yes"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for token in [None, Some(thief.as_str())] {
        for secret in [None, Some("not-the-secret")] {
            assert_eq!(raw(token, secret, Method::POST, path.clone()).await, 404);
            assert_eq!(
                raw(
                    token,
                    secret,
                    Method::POST,
                    format!("/api/v1/chat/sessions/{id}/confirm")
                )
                .await,
                404
            );
        }
    }
    // A delete without the secret removes nothing.
    raw(
        Some(&thief),
        None,
        Method::DELETE,
        format!("/api/v1/chat/sessions/{id}"),
    )
    .await;
    app.post(&path, json!({"text": "Is there anything this week?"}))
        .await
        .assert_ok(200);

    // The creator signs in during the chat: it is now theirs; the secret alone no longer
    // opens it for anyone else.
    let (_, owner) = app.user_with("owner@example.org", &[]).await;
    app.post_as(&owner, &path, json!({"text": "Thank you"}))
        .await
        .assert_ok(200);
    assert_eq!(
        raw(Some(&thief), Some(&secret), Method::POST, path.clone()).await,
        404
    );
    assert_eq!(
        raw(None, Some(&secret), Method::POST, path.clone()).await,
        404
    );
    // …and it needs no secret from them any more: their sign-in is the proof.
    assert_eq!(
        raw(Some(&owner), None, Method::POST, path.clone()).await,
        200
    );

    // A client that keeps cookies gets the secret as one, scoped to its conversation.
    let started = app
        .client
        .post(app.url("/api/v1/chat/sessions"))
        .json(&json!({"consent": true}))
        .send()
        .await
        .unwrap();
    let cookie = started.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let id: Value = started.json().await.unwrap();
    let id = id["session_id"].as_str().unwrap().to_owned();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = app
        .client
        .post(app.url(&format!("/api/v1/chat/sessions/{id}/messages")))
        .header("cookie", pair)
        .json(&json!({"text": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status().as_u16(), 200);
    assert_eq!(
        raw(
            None,
            None,
            Method::POST,
            format!("/api/v1/chat/sessions/{id}/messages")
        )
        .await,
        404
    );
}

/// What a patient writes about their health is sealed wherever it is stored (a visit's
/// reason, a cancellation's reason, a waitlist note, a replayable answer); deleting the
/// conversation that booked removes its stored answers, and the booking stays.
async fn what_a_patient_writes_is_sealed_and_a_deleted_chat_leaves_no_copies(app: TestApp) {
    const MARKER: &str = "Zebrafish-rash-7Q";
    let contains = |table: &'static str| {
        let app = &app;
        async move {
            let sql: &'static str = match table {
                "appointments" => {
                    "SELECT COUNT(*) FROM appointments WHERE reason LIKE $1 OR cancel_reason LIKE $1"
                }
                "idempotency_keys" => {
                    "SELECT COUNT(*) FROM idempotency_keys WHERE CAST(response_body AS TEXT) LIKE $1"
                }
                _ => "SELECT COUNT(*) FROM waitlist WHERE note LIKE $1",
            };
            app.scalar_i64_str(sql, &format!("%{MARKER}%")).await
        }
    };
    app.with_demo().await;
    let (_, token) = app.user_with("sealed@example.org", &[]).await;

    // Over REST, with an Idempotency-Key: the answer has the reason; the tables do not.
    let doctors = app.get("/api/v1/doctors?specialty=dermatology").await;
    let doctor: Uuid = doctors.assert_ok(200)[0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Far enough ahead that the patient may still cancel it (the clinic's cutoff).
    let later = chrono::Utc::now() + chrono::Duration::hours(3);
    let slot = app
        .free_slots(doctor, "")
        .await
        .into_iter()
        .find(|s| {
            s["starts_at"]
                .as_str()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                .is_some_and(|t| t > later)
        })
        .expect("a free time beyond the cutoff")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_as(&token, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await
        .assert_ok(201);
    let booked = app
        .client
        .post(app.url(&format!("/api/v1/slots/{slot}/confirm")))
        .bearer_auth(&token)
        .header("idempotency-key", "rest-1")
        .json(&json!({"reason": format!("{MARKER} on my arm")}))
        .send()
        .await
        .unwrap();
    assert_eq!(booked.status().as_u16(), 201);
    let booked: Value = booked.json().await.unwrap();
    assert_eq!(booked["reason"], format!("{MARKER} on my arm"));
    let id = booked["id"].as_str().unwrap();
    let read = app
        .get_as(&token, &format!("/api/v1/appointments/{id}"))
        .await;
    assert_eq!(read.assert_ok(200)["reason"], format!("{MARKER} on my arm"));
    app.post_as(
        &token,
        &format!("/api/v1/appointments/{id}/cancel"),
        json!({"reason": format!("{MARKER} got better")}),
    )
    .await
    .assert_ok(200);
    app.post_as(
        &token,
        "/api/v1/waitlist",
        json!({"specialty": "dermatology", "note": format!("{MARKER} again")}),
    )
    .await
    .assert_ok(201);
    for table in ["appointments", "idempotency_keys", "waitlist"] {
        assert_eq!(
            contains(table).await,
            0,
            "{table} holds the text in the clear"
        );
    }

    // Through the chat: the commit's stored answer goes with the conversation.
    let session = app.chat_start(Some(&token)).await;
    let listed = app
        .say(
            Some(&token),
            &session,
            &format!("{MARKER}: I need a dermatologist, any day next week"),
        )
        .await;
    let pick = listed.assert_ok(200)["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "pick_slot")
        .cloned()
        .expect("a time offered");
    app.say(Some(&token), &session, pick["message"].as_str().unwrap())
        .await
        .assert_ok(200);
    let done = app.say(Some(&token), &session, "yes").await;
    assert!(
        done.assert_ok(200)["committed"].is_object(),
        "{:#}",
        done.body
    );
    let stored = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM idempotency_keys WHERE key LIKE $1",
            &format!("chat:{session}:%"),
        )
        .await;
    assert_eq!(stored, 1);
    assert_eq!(contains("appointments").await, 0);
    app.request(
        Method::DELETE,
        &format!("/api/v1/chat/sessions/{session}"),
        Some(&token),
        None,
    )
    .await;
    let stored = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM idempotency_keys WHERE key LIKE $1",
            &format!("chat:{session}:%"),
        )
        .await;
    assert_eq!(
        stored, 0,
        "the deleted conversation's stored answers are gone"
    );
    let mine = app.get_as(&token, "/api/v1/appointments/mine").await;
    assert_eq!(
        mine.assert_ok(200)
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "booked")
            .count(),
        1,
        "the booking the patient kept stays"
    );
}

/// How many rows of any table hold `needle` anywhere, as text (sealed values do not).
async fn rows_holding(app: &TestApp, needle: &str) -> Vec<String> {
    let like = format!("%{needle}%");
    let mut found = Vec::new();
    match &app.db.pool() {
        clinic::db::Pool::Sqlite(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            for t in tables {
                let cols: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_table_info('{t}')"
                )))
                .fetch_all(pool)
                .await
                .unwrap();
                let cond = cols
                    .iter()
                    .map(|c| format!("CAST(\"{c}\" AS TEXT) LIKE $1"))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM \"{t}\" WHERE {cond}"
                )))
                .bind(&like)
                .fetch_one(pool)
                .await
                .unwrap();
                if n > 0 {
                    found.push(format!("{t}: {n}"));
                }
            }
        }
        clinic::db::Pool::Postgres(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
                 AND table_type = 'BASE TABLE' AND table_name NOT LIKE '_sqlx%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            for t in tables {
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM \"{t}\" AS x WHERE CAST(x AS TEXT) LIKE $1"
                )))
                .bind(&like)
                .fetch_one(pool)
                .await
                .unwrap();
                if n > 0 {
                    found.push(format!("{t}: {n}"));
                }
            }
        }
    }
    found
}

/// A patient takes their data with them, then erases the account: their future visits
/// are cancelled and the times offered again, no table keeps their address, phone, name
/// or anything they typed (the sealed clinical record stays until the retention period
/// ends, then a job purges it), and nothing logged afterwards names them.
async fn a_patient_exports_then_erases_their_account_and_no_copy_is_left(app: TestApp) {
    const MARKER: &str = "Quokka-itch-41";
    const PHONE: &str = "+351912345678";
    let care = app.care_setup().await;
    app.submit_note(&care, NOTE).await.assert_ok(201);
    let patient = &care.patient;
    app.request(
        Method::PUT,
        "/api/v1/me/notifications",
        Some(patient),
        Some(json!({"channel": "sms", "phone": PHONE})),
    )
    .await
    .assert_ok(200);
    app.post_as(
        patient,
        "/api/v1/waitlist",
        json!({"doctor_id": care.doctor_id, "note": format!("{MARKER} waiting")}),
    )
    .await
    .assert_ok(201);
    let slot = app.free_slots(care.doctor_id, "").await[7]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_as(patient, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await
        .assert_ok(201);
    app.post_as(
        patient,
        &format!("/api/v1/slots/{slot}/confirm"),
        json!({"reason": format!("{MARKER} on the elbow")}),
    )
    .await
    .assert_ok(201);

    let export = app.get_as(patient, "/api/v1/me/export").await;
    let export = export.assert_ok(200);
    assert_eq!(export["account"]["email"], "pat@example.org");
    assert_eq!(export["appointments"].as_array().unwrap().len(), 2);
    assert_eq!(export["notes"].as_array().unwrap().len(), 1);
    assert_eq!(export["waitlist"][0]["note"], format!("{MARKER} waiting"));

    // Erasing needs the password again.
    app.request(Method::DELETE, "/api/v1/me", Some(patient), Some(json!({})))
        .await
        .assert_problem(422, "validation_failed");
    app.request(
        Method::DELETE,
        "/api/v1/me",
        Some(patient),
        Some(json!({"password": "not my password"})),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    let log = app.data_dir().join("logs/audit.log");
    let logged_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as usize;
    let erased = app
        .request(
            Method::DELETE,
            "/api/v1/me",
            Some(patient),
            Some(json!({"password": crate::helpers::PASSWORD})),
        )
        .await;
    assert_eq!(erased.assert_ok(200)["cancelled_visits"], 2);

    // Gone: signed out everywhere, cannot sign in, the times are free again.
    app.get_as(patient, "/api/v1/me")
        .await
        .assert_problem(401, "invalid_token");
    let login = app
        .post(
            "/api/v1/auth/login",
            json!({"email": "pat@example.org", "password": crate::helpers::PASSWORD}),
        )
        .await;
    assert_eq!(login.status.as_u16(), 401);
    let free: Vec<String> = app
        .free_slots(care.doctor_id, "")
        .await
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        free.contains(&slot),
        "the cancelled visit's time is free again"
    );
    let named = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM users WHERE display_name = $1",
            "Deleted user",
        )
        .await;
    assert_eq!(named, 1, "the name is gone with the address");
    for needle in ["pat@example.org", MARKER, PHONE] {
        let left = rows_holding(&app, needle).await;
        assert!(left.is_empty(), "{needle:?} is still in {left:?}");
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let after = logged.get(logged_before..).unwrap_or_default();
    for needle in ["pat@example.org", MARKER, PHONE] {
        assert!(!after.contains(needle), "the audit log names {needle:?}");
    }

    // The clinical record stays, sealed, for the retention period; then it is purged.
    let notes = || async {
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM notes WHERE CAST(patient_id AS TEXT) <> $1",
            "",
        )
        .await
    };
    assert_eq!(notes().await, 1);
    let purged = clinic::domain::erasure::purge_expired_records(
        &app.db,
        app.state.files.as_ref(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(purged.done, 0, "still within the retention period");
    let later = chrono::Utc::now() + chrono::Duration::days(3651);
    let purged =
        clinic::domain::erasure::purge_expired_records(&app.db, app.state.files.as_ref(), later)
            .await
            .unwrap();
    assert_eq!(purged, clinic::jobs::Batch { done: 1, failed: 0 });
    assert_eq!(notes().await, 0);

    // The last system admin cannot erase themself: someone must be left to run the service.
    let root = app.root().await;
    app.request(
        Method::DELETE,
        "/api/v1/me",
        Some(&root),
        Some(json!({"password": crate::helpers::PASSWORD})),
    )
    .await
    .assert_problem(409, "conflict");
}
