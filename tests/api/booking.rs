//! Booking: hold → confirm, staff booking, reschedule, cancel, visits, idempotency, and
//! no double booking under concurrency.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    a_patient_holds_and_confirms_and_nobody_else_can_take_the_slot,
    a_lapsed_hold_cannot_be_confirmed_and_frees_the_slot,
    an_idempotency_key_replays_the_first_answer,
    patients_cannot_cancel_after_the_cutoff_but_staff_can,
    rescheduling_claims_the_new_slot_and_frees_the_old,
    patients_see_only_their_own_appointments,
    a_schedule_change_keeps_bookings_and_reports_them,
    a_schedule_change_keeps_cancelled_visits_history_and_reopens_their_time,
    the_visit_moves_through_check_in_to_completion,
    sixty_four_clients_racing_for_twenty_slots_get_twenty_bookings,
    concurrent_reschedules_onto_one_slot_move_exactly_one,
    listings_show_this_services_writes_at_once_and_another_replicas_within_a_second,
    a_specialty_lists_the_soonest_times_of_all_its_doctors_whoever_has_them,
);

async fn book(app: &TestApp, token: &str, slot: &str) -> crate::helpers::Answer {
    let held = app
        .post_as(token, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await;
    if held.status != 201 {
        return held;
    }
    app.post_as(
        token,
        &format!("/api/v1/slots/{slot}/confirm"),
        json!({"reason": "check-up"}),
    )
    .await
}

async fn a_patient_holds_and_confirms_and_nobody_else_can_take_the_slot(app: TestApp) {
    let clinic = app.approved_clinic("Lisbon Skin", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Ana Costa", TestApp::all_week(), 60)
        .await;
    let slots = app.free_slots(doctor, "").await;
    assert!(!slots.is_empty());
    let first_start: chrono::DateTime<chrono::Utc> =
        slots[0]["starts_at"].as_str().unwrap().parse().unwrap();
    assert!(
        first_start >= chrono::Utc::now() + chrono::Duration::minutes(60),
        "minimum notice respected"
    );
    let slot = slots[0]["id"].as_str().unwrap();

    // Browsing works anonymously; holding needs a login.
    app.post(&format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await
        .assert_problem(401, "unauthenticated");
    let (_, ana) = app.user_with("ana@example.org", &[]).await;
    let (_, bo) = app.user_with("bo@example.org", &[]).await;
    let hold = app
        .post_as(&ana, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await;
    assert_eq!(hold.assert_ok(201)["doctor_name"], "Dr. Ana Costa");
    assert_eq!(hold.body["time_zone"], "Europe/Lisbon");
    app.post_as(&bo, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await
        .assert_problem(409, "slot_taken");
    app.post_as(&bo, &format!("/api/v1/slots/{slot}/confirm"), json!({}))
        .await
        .assert_problem(409, "hold_expired");
    // A held slot is not offered to others.
    assert!(
        app.free_slots(doctor, "")
            .await
            .iter()
            .all(|s| s["id"] != slot)
    );

    let booked = app
        .post_as(
            &ana,
            &format!("/api/v1/slots/{slot}/confirm"),
            json!({"reason": "itchy rash"}),
        )
        .await;
    assert_eq!(booked.assert_ok(201)["status"], "booked");
    assert_eq!(booked.body["reason"], "itchy rash");
    app.post_as(&ana, &format!("/api/v1/slots/{slot}/confirm"), json!({}))
        .await
        .assert_problem(409, "hold_expired");
    app.post_as(&bo, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await
        .assert_problem(409, "slot_taken");

    let mine = app.get_as(&ana, "/api/v1/appointments/mine").await;
    assert_eq!(mine.assert_ok(200).as_array().unwrap().len(), 1);
    let audit = app
        .get_as(
            &clinic.root,
            "/api/v1/admin/audit?action=appointment.booked",
        )
        .await;
    assert_eq!(audit.assert_ok(200).as_array().unwrap().len(), 1);
    let chain = app.get_as(&clinic.root, "/api/v1/admin/audit/verify").await;
    assert_eq!(chain.assert_ok(200)["intact"], true, "{:#}", chain.body);
}

async fn a_lapsed_hold_cannot_be_confirmed_and_frees_the_slot(app: TestApp) {
    let clinic = app.approved_clinic("Porto Skin", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Rui", TestApp::all_week(), 0)
        .await;
    let slot = app.free_slots(doctor, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, ana) = app.user_with("ana@example.org", &[]).await;
    let (_, bo) = app.user_with("bo@example.org", &[]).await;
    app.post_as(&ana, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await
        .assert_ok(201);
    // Five minutes pass.
    app.execute("UPDATE slots SET hold_expires_at = updated_at WHERE status = 'held'")
        .await;
    app.post_as(&ana, &format!("/api/v1/slots/{slot}/confirm"), json!({}))
        .await
        .assert_problem(409, "hold_expired");
    assert!(
        app.free_slots(doctor, "")
            .await
            .iter()
            .any(|s| s["id"] == slot.as_str()),
        "a lapsed hold is offered again"
    );
    book(&app, &bo, &slot).await.assert_ok(201);
    // The sweeper tidies lapsed holds too.
    let other = app.free_slots(doctor, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_as(&ana, &format!("/api/v1/slots/{other}/hold"), json!({}))
        .await
        .assert_ok(201);
    app.execute("UPDATE slots SET hold_expires_at = updated_at WHERE status = 'held'")
        .await;
    let released =
        clinic::domain::scheduling::slots::release_expired_holds(&app.db, chrono::Utc::now())
            .await
            .unwrap();
    assert_eq!(released, 1);
}

async fn an_idempotency_key_replays_the_first_answer(app: TestApp) {
    let clinic = app.approved_clinic("Faro Skin", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Eva", TestApp::all_week(), 0)
        .await;
    let slot = app.free_slots(doctor, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, ana) = app.user_with("ana@example.org", &[]).await;
    app.post_as(&ana, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await
        .assert_ok(201);
    let send = |key: &'static str, reason: &'static str| {
        let req = app
            .client
            .post(app.url(&format!("/api/v1/slots/{slot}/confirm")))
            .bearer_auth(&ana)
            .header("idempotency-key", key)
            .json(&json!({"reason": reason}));
        async move { req.send().await.unwrap() }
    };
    let first = send("confirm-1", "rash").await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    // A double click or a retried request: the same appointment, not a second one.
    let again = send("confirm-1", "rash").await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    // The same key with a different body is refused.
    let other = send("confirm-1", "something else").await;
    assert_eq!(other.status(), 409);
    let other: serde_json::Value = other.json().await.unwrap();
    assert_eq!(other["code"], "idempotency_key_reused");
    // A new key on the spent hold gets the real answer, and that answer is kept too.
    let late = send("confirm-2", "rash").await;
    assert_eq!(late.status(), 409);
    let late_again = send("confirm-2", "rash").await;
    assert_eq!(late_again.status(), 409);
    assert_eq!(late_again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        late_again.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM appointments WHERE status = $1",
            "booked"
        )
        .await,
        1
    );
    let bad = app
        .client
        .post(app.url(&format!("/api/v1/slots/{slot}/hold")))
        .bearer_auth(&ana)
        .header("idempotency-key", "x".repeat(300))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
}

async fn patients_cannot_cancel_after_the_cutoff_but_staff_can(app: TestApp) {
    let clinic = app.approved_clinic("Braga Skin", "UTC").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Sol", TestApp::all_week(), 0)
        .await;
    let slots = app.free_slots(doctor, "limit=200").await;
    let soon = slots[0]["id"].as_str().unwrap().to_owned();
    let later = slots.iter().find(|s| {
        let t: chrono::DateTime<chrono::Utc> = s["starts_at"].as_str().unwrap().parse().unwrap();
        t > chrono::Utc::now() + chrono::Duration::hours(4)
    });
    let later = later.expect("a slot 4 hours ahead")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, ana) = app.user_with("ana@example.org", &[]).await;
    let soon_appt = book(&app, &ana, &soon).await.str("id");
    let later_appt = book(&app, &ana, &later).await.str("id");

    // The clinic's cutoff is two hours by default.
    let refused = app
        .post_as(
            &ana,
            &format!("/api/v1/appointments/{soon_appt}/cancel"),
            json!({}),
        )
        .await;
    refused.assert_problem(409, "cutoff_passed");
    let cancelled = app
        .post_as(
            &ana,
            &format!("/api/v1/appointments/{later_appt}/cancel"),
            json!({"reason": "feeling better"}),
        )
        .await;
    assert_eq!(cancelled.assert_ok(200)["status"], "cancelled");
    assert!(
        app.free_slots(doctor, "limit=200")
            .await
            .iter()
            .any(|s| s["id"] == later.as_str()),
        "the slot is free again"
    );
    app.post_as(
        &ana,
        &format!("/api/v1/appointments/{later_appt}/cancel"),
        json!({}),
    )
    .await
    .assert_problem(409, "conflict");

    let by_staff = app
        .post_as(
            &clinic.admin,
            &format!("/api/v1/appointments/{soon_appt}/cancel"),
            json!({"reason": "doctor ill"}),
        )
        .await;
    assert_eq!(by_staff.assert_ok(200)["status"], "cancelled");

    // A clinic can change its policy.
    let patched = app
        .request(
            Method::PATCH,
            &format!("/api/v1/clinics/{}", clinic.id),
            Some(&clinic.admin),
            Some(json!({"cancellation_cutoff_minutes": 0})),
        )
        .await;
    assert_eq!(patched.assert_ok(200)["cancellation_cutoff_minutes"], 0);
}

async fn rescheduling_claims_the_new_slot_and_frees_the_old(app: TestApp) {
    let clinic = app.approved_clinic("Coimbra Skin", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Teo", TestApp::all_week(), 0)
        .await;
    let slots = app.free_slots(doctor, "limit=200").await;
    let far: Vec<&serde_json::Value> = slots
        .iter()
        .filter(|s| {
            let t: chrono::DateTime<chrono::Utc> =
                s["starts_at"].as_str().unwrap().parse().unwrap();
            t > chrono::Utc::now() + chrono::Duration::hours(4)
        })
        .collect();
    let (old, new, taken) = (
        far[0]["id"].as_str().unwrap(),
        far[1]["id"].as_str().unwrap(),
        far[2]["id"].as_str().unwrap(),
    );
    let (_, ana) = app.user_with("ana@example.org", &[]).await;
    let (_, bo) = app.user_with("bo@example.org", &[]).await;
    let appt = book(&app, &ana, old).await.str("id");
    book(&app, &bo, taken).await.assert_ok(201);

    app.post_as(
        &ana,
        &format!("/api/v1/appointments/{appt}/reschedule"),
        json!({"slot_id": taken}),
    )
    .await
    .assert_problem(409, "slot_taken");
    let moved = app
        .post_as(
            &ana,
            &format!("/api/v1/appointments/{appt}/reschedule"),
            json!({"slot_id": new}),
        )
        .await;
    assert_eq!(moved.assert_ok(200)["slot_id"], new);
    let free = app.free_slots(doctor, "limit=200").await;
    assert!(free.iter().any(|s| s["id"] == old), "the old slot is free");
    assert!(!free.iter().any(|s| s["id"] == new));
    app.post_as(
        &bo,
        &format!("/api/v1/appointments/{appt}/reschedule"),
        json!({"slot_id": old}),
    )
    .await
    .assert_problem(404, "not_found");
}

async fn patients_see_only_their_own_appointments(app: TestApp) {
    let clinic = app.approved_clinic("Evora Skin", "Europe/Lisbon").await;
    let other = app.approved_clinic("Other Clinic", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Lia", TestApp::all_week(), 0)
        .await;
    let slots = app.free_slots(doctor, "").await;
    let (_, ana) = app.user_with("ana@example.org", &[]).await;
    let (_, bo) = app.user_with("bo@example.org", &[]).await;
    let appt = book(&app, &ana, slots[0]["id"].as_str().unwrap())
        .await
        .str("id");

    app.get_as(&bo, &format!("/api/v1/appointments/{appt}"))
        .await
        .assert_problem(404, "not_found");
    app.post_as(
        &bo,
        &format!("/api/v1/appointments/{appt}/cancel"),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    assert!(
        app.get_as(&bo, "/api/v1/appointments/mine")
            .await
            .assert_ok(200)
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.get_as(&ana, &format!("/api/v1/appointments/{appt}"))
        .await
        .assert_ok(200);
    app.get_as(&clinic.admin, &format!("/api/v1/appointments/{appt}"))
        .await
        .assert_ok(200);
    // Another clinic's admin sees nothing and may change nothing here.
    app.get_as(&other.admin, &format!("/api/v1/appointments/{appt}"))
        .await
        .assert_problem(404, "not_found");
    app.request(
        Method::PATCH,
        &format!("/api/v1/clinics/{}", clinic.id),
        Some(&other.admin),
        Some(json!({"name": "Mine now"})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(
        &other.admin,
        &format!("/api/v1/clinics/{}/doctors", clinic.id),
        json!({"display_name": "Dr. X", "specialties": ["dermatology"]}),
    )
    .await
    .assert_problem(403, "forbidden");
    let date = slots[0]["local_date"].as_str().unwrap();
    app.get_as(
        &other.admin,
        &format!("/api/v1/clinics/{}/appointments?date={date}", clinic.id),
    )
    .await
    .assert_problem(403, "forbidden");
    let day = app
        .get_as(
            &clinic.admin,
            &format!("/api/v1/clinics/{}/appointments?date={date}", clinic.id),
        )
        .await;
    assert_eq!(day.assert_ok(200).as_array().unwrap().len(), 1);
}

async fn a_schedule_change_keeps_bookings_and_reports_them(app: TestApp) {
    let clinic = app.approved_clinic("Setubal Skin", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Ivo", TestApp::all_week(), 0)
        .await;
    let slot = app.free_slots(doctor, "").await[5].clone();
    let (_, ana) = app.user_with("ana@example.org", &[]).await;
    let appt = book(&app, &ana, slot["id"].as_str().unwrap())
        .await
        .str("id");

    // Now only Saturdays 10:00–11:00, in 20-minute slots.
    let report = app
        .request(
            Method::PUT,
            &format!("/api/v1/doctors/{doctor}/schedule"),
            Some(&clinic.admin),
            Some(json!({"rules": [{"weekday": "sat", "start": "10:00", "end": "11:00"}], "slot_minutes": 20, "min_notice_minutes": 0, "horizon_days": 14})),
        )
        .await;
    let report = report.assert_ok(200);
    assert!(report["removed"].as_u64().unwrap() > 100, "{report:#}");
    let conflicts = report["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{report:#}");
    assert_eq!(conflicts[0]["appointment_id"], appt.as_str());
    assert_eq!(conflicts[0]["status"], "booked");
    // The booking stands; the free slots follow the new rules.
    assert_eq!(
        app.get_as(&ana, &format!("/api/v1/appointments/{appt}"))
            .await
            .assert_ok(200)["status"],
        "booked"
    );
    let free = app.free_slots(doctor, "limit=200").await;
    assert!(!free.is_empty());
    assert!(
        free.iter()
            .all(|s| [600, 620, 640].contains(&s["local_minute"].as_i64().unwrap())),
        "{free:?}"
    );
    // A closed day removes that day's free slots.
    let date = free[0]["local_date"].as_str().unwrap();
    let closed = app
        .request(
            Method::PUT,
            &format!("/api/v1/doctors/{doctor}/overrides"),
            Some(&clinic.admin),
            Some(json!({"date": date, "reason": "holiday"})),
        )
        .await;
    assert_eq!(closed.assert_ok(200)["removed"], 3);
    let bad = app
        .request(Method::PUT, &format!("/api/v1/doctors/{doctor}/schedule"), Some(&clinic.admin), Some(json!({"rules": [{"weekday": "someday", "start": "10:00", "end": "09:00"}], "slot_minutes": 20})))
        .await;
    bad.assert_problem(422, "validation_failed");
}

async fn the_visit_moves_through_check_in_to_completion(app: TestApp) {
    let clinic = app.approved_clinic("Aveiro Skin", "UTC").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Rita", TestApp::all_week(), 0)
        .await;
    let slot = app.free_slots(doctor, "").await[0].clone();
    let (patient_id, ana) = app.user_with("ana@example.org", &[]).await;
    // Another clinic's admin cannot book here; the slot stays free.
    let outsider = app.approved_clinic("Elsewhere", "UTC").await;
    app.post_as(
        &outsider.admin,
        &format!("/api/v1/slots/{}/book", slot["id"].as_str().unwrap()),
        json!({"patient_id": patient_id}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(
        &clinic.admin,
        &format!("/api/v1/slots/{}/book", slot["id"].as_str().unwrap()),
        json!({"patient_id": uuid::Uuid::now_v7()}),
    )
    .await
    .assert_problem(404, "not_found");
    // A patient the clinic does not know is as absent as one without an account: staff
    // cannot book (nor learn of) any account by its id.
    app.post_as(
        &clinic.admin,
        &format!("/api/v1/slots/{}/book", slot["id"].as_str().unwrap()),
        json!({"patient_id": patient_id, "reason": "walk-in"}),
    )
    .await
    .assert_problem(404, "not_found");
    // Once she chose one of its doctors, the desk books her walk-in.
    app.post_as(&ana, &format!("/api/v1/doctors/{doctor}/select"), json!({}))
        .await
        .assert_ok(200);
    let booked = app
        .post_as(
            &clinic.admin,
            &format!("/api/v1/slots/{}/book", slot["id"].as_str().unwrap()),
            json!({"patient_id": patient_id, "reason": "walk-in"}),
        )
        .await;
    let appt = booked.assert_ok(201)["id"].as_str().unwrap().to_owned();
    app.post_as(
        &ana,
        &format!("/api/v1/slots/{}/book", slot["id"].as_str().unwrap()),
        json!({"patient_id": patient_id}),
    )
    .await
    .assert_problem(403, "forbidden");
    let status = |s: &'static str| json!({"status": s});
    app.post_as(
        &ana,
        &format!("/api/v1/appointments/{appt}/status"),
        status("checked_in"),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(
        &clinic.admin,
        &format!("/api/v1/appointments/{appt}/status"),
        status("no_show"),
    )
    .await
    .assert_problem(409, "conflict");
    let checked = app
        .post_as(
            &clinic.admin,
            &format!("/api/v1/appointments/{appt}/status"),
            status("checked_in"),
        )
        .await;
    assert_eq!(checked.assert_ok(200)["status"], "checked_in");
    let done = app
        .post_as(
            &clinic.admin,
            &format!("/api/v1/appointments/{appt}/status"),
            status("completed"),
        )
        .await;
    assert_eq!(done.assert_ok(200)["status"], "completed");
    app.post_as(
        &clinic.admin,
        &format!("/api/v1/appointments/{appt}/status"),
        status("checked_in"),
    )
    .await
    .assert_problem(409, "conflict");
    let date = slot["local_date"].as_str().unwrap();
    let day = app
        .get_as(
            &clinic.admin,
            &format!("/api/v1/doctors/{doctor}/appointments?date={date}"),
        )
        .await;
    assert_eq!(day.assert_ok(200).as_array().unwrap().len(), 1);
    // The patient picks this doctor; the doctor's patient list shows them.
    app.post_as(&ana, &format!("/api/v1/doctors/{doctor}/select"), json!({}))
        .await
        .assert_ok(200);
    let patients = app
        .get_as(&clinic.admin, &format!("/api/v1/doctors/{doctor}/patients"))
        .await;
    let patients = patients.assert_ok(200).as_array().unwrap();
    assert_eq!(patients.len(), 1);
    assert!(patients[0]["selected_at"].is_string());
    app.get_as(&ana, &format!("/api/v1/doctors/{doctor}/patients"))
        .await
        .assert_problem(403, "forbidden");
}

async fn sixty_four_clients_racing_for_twenty_slots_get_twenty_bookings(app: TestApp) {
    let clinic = app.approved_clinic("Race Clinic", "UTC").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Fast", TestApp::all_week(), 0)
        .await;
    let slots: Vec<String> = app
        .free_slots(doctor, "limit=20")
        .await
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slots.len(), 20);
    let mut tokens = Vec::new();
    for i in 0..64 {
        tokens.push(app.user_with(&format!("racer{i}@example.org"), &[]).await.1);
    }
    let attempts = tokens.iter().enumerate().map(|(i, token)| {
        let slot = slots[i % 20].clone();
        let app = &app;
        async move { book(app, token, &slot).await }
    });
    let answers = futures::future::join_all(attempts).await;
    let won = answers.iter().filter(|a| a.status == 201).count();
    let lost: Vec<_> = answers.iter().filter(|a| a.status != 201).collect();
    assert_eq!(
        won,
        20,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for a in &lost {
        a.assert_problem(409, a.body["code"].as_str().unwrap());
        assert!(
            ["slot_taken", "hold_expired"].contains(&a.body["code"].as_str().unwrap()),
            "{:#}",
            a.body
        );
    }
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM appointments WHERE status = $1",
            "booked"
        )
        .await,
        20
    );
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(DISTINCT slot_id) FROM appointments WHERE status = $1",
            "booked"
        )
        .await,
        20
    );
    println!(
        "race: 64 clients, 20 slots: {won} booked, {} refused with 409",
        lost.len()
    );
}

async fn concurrent_reschedules_onto_one_slot_move_exactly_one(app: TestApp) {
    let clinic = app.approved_clinic("Move Clinic", "UTC").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Move", TestApp::all_week(), 0)
        .await;
    let slots: Vec<String> = app
        .free_slots(doctor, "limit=200")
        .await
        .iter()
        .skip(20)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    // 16 patients with an appointment each (well past the cutoff), all moving to one slot.
    let target = slots[100].clone();
    let mut movers = Vec::new();
    for (i, slot) in slots.iter().take(16).enumerate() {
        let (_, token) = app.user_with(&format!("mover{i}@example.org"), &[]).await;
        let appt = book(&app, &token, slot).await.str("id");
        movers.push((token, appt));
    }
    let attempts = movers.iter().map(|(token, appt)| {
        let app = &app;
        let target = target.clone();
        async move {
            app.post_as(
                token,
                &format!("/api/v1/appointments/{appt}/reschedule"),
                json!({"slot_id": target}),
            )
            .await
        }
    });
    let answers = futures::future::join_all(attempts).await;
    assert_eq!(
        answers.iter().filter(|a| a.status == 200).count(),
        1,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.status != 200)
            .all(|a| a.body["code"] == "slot_taken")
    );
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM appointments WHERE status = $1",
            "booked"
        )
        .await,
        16
    );
    let on_target: i64 = {
        let id: Uuid = target.parse().unwrap();
        const SQL: &str =
            "SELECT COUNT(*) FROM appointments WHERE slot_id = $1 AND status <> 'cancelled'";
        let (n,): (i64,) = clinic::on_db!(&app.db, |pool| sqlx::query_as(SQL)
            .bind(id)
            .fetch_one(pool)
            .await)
        .unwrap();
        n
    };
    assert_eq!(on_target, 1);
}

async fn listings_show_this_services_writes_at_once_and_another_replicas_within_a_second(
    app: TestApp,
) {
    let clinic = app.approved_clinic("Lisbon Cache", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Rui Cache", TestApp::all_week(), 60)
        .await;
    let offered = |slots: &[Value], id: &str| slots.iter().any(|s| s["id"] == id);
    let before = app.free_slots(doctor, "").await;
    let held = before[0]["id"].as_str().unwrap().to_owned();
    let blocked = before[1]["id"].as_str().unwrap().to_owned();
    let (_, ana) = app.user_with("ana@example.org", &[]).await;

    // This service's own writes show at the next listing.
    app.post_as(&ana, &format!("/api/v1/slots/{held}/hold"), json!({}))
        .await
        .assert_ok(201);
    assert!(!offered(&app.free_slots(doctor, "").await, &held));
    let released = app
        .request(
            Method::DELETE,
            &format!("/api/v1/slots/{held}/hold"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(released.status, 204);
    assert!(offered(&app.free_slots(doctor, "").await, &held));

    // Another replica's write shows within SLOT_LISTING_CACHE_MS (1 s); meanwhile the
    // time may still be listed, but holding it checks the database.
    let replica = app.replica().await;
    let id: Uuid = blocked.parse().unwrap();
    clinic::on_db!(&replica, |pool| sqlx::query(
        "UPDATE slots SET status = 'blocked' WHERE id = $1"
    )
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ()))
    .unwrap();
    app.post_as(&ana, &format!("/api/v1/slots/{blocked}/hold"), json!({}))
        .await
        .assert_problem(409, "slot_taken");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(!offered(&app.free_slots(doctor, "").await, &blocked));
    assert!(offered(&app.free_slots(doctor, "").await, &held));
}

/// A cancelled visit still names its slot: a schedule that drops that time keeps the slot
/// (blocked, never offered) instead of failing, and one that wants the time back offers it.
async fn a_schedule_change_keeps_cancelled_visits_history_and_reopens_their_time(app: TestApp) {
    let clinic = app.approved_clinic("Faro Skin", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Gil", TestApp::all_week(), 0)
        .await;
    // Far enough ahead that the patient may still cancel.
    let slot = app.free_slots(doctor, "").await[20]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, ana) = app.user_with("ana@faro.example.org", &[]).await;
    let appt = book(&app, &ana, &slot).await.str("id");
    app.post_as(
        &ana,
        &format!("/api/v1/appointments/{appt}/cancel"),
        json!({"reason": "better now"}),
    )
    .await
    .assert_ok(200);
    let schedule = |rules: Value| {
        let app = &app;
        let admin = clinic.admin.clone();
        async move {
            app.request(
                Method::PUT,
                &format!("/api/v1/doctors/{doctor}/schedule"),
                Some(&admin),
                Some(json!({"rules": rules, "slot_minutes": 30, "min_notice_minutes": 0, "horizon_days": 14})),
            )
            .await
        }
    };
    let narrowed = schedule(json!([{"weekday": "sat", "start": "10:00", "end": "11:00"}])).await;
    let narrowed = narrowed.assert_ok(200);
    assert!(narrowed["removed"].as_u64().unwrap() > 100, "{narrowed:#}");
    assert_eq!(narrowed["conflicts"], json!([]));
    assert!(
        !app.free_slots(doctor, "limit=200")
            .await
            .iter()
            .any(|s| s["id"] == slot.as_str())
    );
    // The cancelled visit is still readable.
    let read = app
        .get_as(&ana, &format!("/api/v1/appointments/{appt}"))
        .await;
    assert_eq!(read.assert_ok(200)["status"], "cancelled");
    // The whole week again: the same slot is offered.
    schedule(TestApp::all_week()).await.assert_ok(200);
    assert!(
        app.free_slots(doctor, "limit=200")
            .await
            .iter()
            .any(|s| s["id"] == slot.as_str())
    );
}

/// The specialty search reads a few times per doctor first; it must still answer the
/// soonest times of the specialty when one doctor has all of them, honour each doctor's
/// own notice, and go on to the others' when it asks for more.
async fn a_specialty_lists_the_soonest_times_of_all_its_doctors_whoever_has_them(app: TestApp) {
    let clinic = app.approved_clinic("Braga Skin", "Europe/Lisbon").await;
    // One works around the clock from an hour ahead; one from a day ahead; one only on
    // Monday mornings.
    let busy = app
        .doctor_with_schedule(&clinic, "Dr. Sempre", TestApp::all_week(), 60)
        .await;
    let later = app
        .doctor_with_schedule(&clinic, "Dr. Amanha", TestApp::all_week(), 24 * 60)
        .await;
    let mondays = app
        .doctor_with_schedule(
            &clinic,
            "Dr. Segunda",
            json!([{"weekday": "mon", "start": "09:00", "end": "12:00"}]),
            0,
        )
        .await;
    for limit in [5, 20, 60, 200] {
        let query = format!("limit={limit}");
        let mut expected: Vec<(String, String)> = Vec::new();
        for doctor in [busy, later, mondays] {
            for s in app.free_slots(doctor, &query).await {
                expected.push((
                    s["starts_at"].as_str().unwrap().to_owned(),
                    s["id"].as_str().unwrap().to_owned(),
                ));
            }
        }
        expected.sort();
        let starts: Vec<String> = expected
            .iter()
            .take(limit)
            .map(|(t, _)| t.clone())
            .collect();
        let listed = app
            .get(&format!("/api/v1/specialties/dermatology/slots?{query}"))
            .await;
        let listed = listed.assert_ok(200).as_array().unwrap().clone();
        let listed_starts: Vec<String> = listed
            .iter()
            .map(|s| s["starts_at"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed_starts, starts, "limit {limit}");
        // Every time listed is one its doctor lists.
        for s in &listed {
            let id = s["id"].as_str().unwrap();
            assert!(expected.iter().any(|(_, e)| e == id), "limit {limit}: {id}");
        }
        if limit == 200 {
            let doctors: std::collections::HashSet<&str> = listed
                .iter()
                .map(|s| s["doctor_id"].as_str().unwrap())
                .collect();
            assert!(
                doctors.len() >= 2,
                "the later doctor's times follow the first's"
            );
        }
    }
    // A language keeps the doctors who speak it, by its exact code.
    app.request(
        reqwest::Method::PUT,
        &format!("/api/v1/doctors/{mondays}"),
        Some(&clinic.admin),
        Some(json!({"display_name": "Dr. Segunda", "languages": ["de"], "fee_cents": 6000, "specialties": ["dermatology"]})),
    )
    .await
    .assert_ok(200);
    let doctors_for = |language: &'static str| {
        let app = &app;
        async move {
            let listed = app
                .get(&format!(
                    "/api/v1/specialties/dermatology/slots?limit=200&language={language}"
                ))
                .await;
            let mut doctors: Vec<String> = listed
                .assert_ok(200)
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["doctor_id"].as_str().unwrap().to_owned())
                .collect();
            doctors.sort();
            doctors.dedup();
            doctors
        }
    };
    assert_eq!(doctors_for("DE").await, vec![mondays.to_string()]);
    let mut speakers = vec![busy.to_string(), later.to_string()];
    speakers.sort();
    assert_eq!(doctors_for("pt").await, speakers);
    assert!(
        doctors_for("%25").await.is_empty(),
        "no pattern matches every doctor"
    );
    assert!(
        doctors_for("e").await.is_empty(),
        "a part of a code is no code"
    );
}
