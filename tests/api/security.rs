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
