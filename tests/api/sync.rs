//! The front desk offline over the API: the snapshot (whole and since), a batch made
//! offline applied in the order it was made with every answer (applied, already applied,
//! conflict with alternatives, refused), replays, a reused id, audit with both times, and
//! two desks syncing one slot at once.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    offline_commands_apply_once_in_the_order_made_and_conflicts_come_with_alternatives,
    two_desks_syncing_one_slot_at_once_book_it_once,
);

fn command(kind: &str, made_minutes_ago: i64, fields: Value) -> Value {
    let mut c = json!({"id": Uuid::now_v7(), "kind": kind,
        "made_at": Utc::now() - Duration::minutes(made_minutes_ago)});
    for (k, v) in fields.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// The free slots of a doctor in the snapshot.
fn free_of(snapshot: &Value, doctor: &str) -> Vec<Value> {
    snapshot["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["free"] == true && s["doctor_id"] == doctor)
        .cloned()
        .collect()
}

async fn offline_commands_apply_once_in_the_order_made_and_conflicts_come_with_alternatives(
    app: TestApp,
) {
    let care = app.care_setup().await;
    let clinic = care.clinic.id;
    let (_, desk) = app
        .user_with(
            "desk@example.org",
            &[json!({"role": "clinic_staff", "clinic_id": clinic})],
        )
        .await;
    // A second doctor working the same hours, for a patient double-booked across doctors.
    let second: Uuid = app
        .post_as(
            &care.clinic.admin,
            &format!("/api/v1/clinics/{clinic}/doctors"),
            json!({"display_name": "Dr. Rui Lopes", "languages": ["en"], "fee_cents": 5000,
                   "specialties": ["dermatology"]}),
        )
        .await
        .str("id")
        .parse()
        .unwrap();
    app.request(
        reqwest::Method::PUT,
        &format!("/api/v1/doctors/{second}/schedule"),
        Some(&care.clinic.admin),
        Some(json!({"rules": TestApp::all_week(), "slot_minutes": 30, "min_notice_minutes": 0, "horizon_days": 14})),
    )
    .await
    .assert_ok(200);

    // The snapshot: only the clinic's staff.
    let url = format!("/api/v1/sync/snapshot?clinic_id={clinic}");
    app.get_as(&care.patient, &url)
        .await
        .assert_problem(403, "forbidden");
    let snapshot = app.get_as(&desk, &url).await.assert_ok(200).clone();
    assert_eq!(snapshot["full"], true);
    assert_eq!(snapshot["days"].as_array().unwrap().len(), 2);
    assert_eq!(snapshot["doctors"].as_array().unwrap().len(), 2);
    assert!(
        snapshot["patients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == care.patient_id.to_string()),
        "the booked patient is among the recent ones"
    );
    let doctor = care.doctor_id.to_string();
    let free = free_of(&snapshot, &doctor);
    assert!(free.len() >= 6, "{}", free.len());
    let (a, b, c) = (&free[1], &free[2], &free[3]);
    let twin = free_of(&snapshot, &second.to_string())
        .into_iter()
        .find(|s| s["starts_at"] == a["starts_at"])
        .expect("the second doctor has the same time free");

    // Online, meanwhile: the patient takes B; a visit at C is booked and then cancelled.
    let take = |slot: &Value| slot["id"].as_str().unwrap().to_owned();
    app.post_as(
        &care.patient,
        &format!("/api/v1/slots/{}/hold", take(b)),
        json!({}),
    )
    .await
    .assert_ok(201);
    app.post_as(
        &care.patient,
        &format!("/api/v1/slots/{}/confirm", take(b)),
        json!({}),
    )
    .await
    .assert_ok(201);
    app.post_as(
        &care.patient,
        &format!("/api/v1/slots/{}/hold", take(c)),
        json!({}),
    )
    .await
    .assert_ok(201);
    let cancelled = app
        .post_as(
            &care.patient,
            &format!("/api/v1/slots/{}/confirm", take(c)),
            json!({}),
        )
        .await
        .str("id");
    app.post_as(
        &desk,
        &format!("/api/v1/appointments/{cancelled}/cancel"),
        json!({"reason": "Phoned to cancel"}),
    )
    .await
    .assert_ok(200);

    // What the desk did offline, made in this order.
    let walk_in = Uuid::now_v7();
    let other = app.approved_clinic("Elsewhere", "Europe/Lisbon").await;
    let made = vec![
        command(
            "walk_in",
            60,
            json!({"patient_id": walk_in, "name": "Walk In", "phone": "+351912000111"}),
        ),
        command(
            "book",
            59,
            json!({"slot_id": take(a), "patient_id": walk_in, "reason": "Rash"}),
        ),
        command(
            "book",
            58,
            json!({"slot_id": take(b), "patient_id": care.patient_id}),
        ),
        command("check_in", 57, json!({"appointment_id": care.appointment})),
        command("cancel", 56, json!({"appointment_id": cancelled})),
        command(
            "book",
            55,
            json!({"slot_id": twin["id"], "patient_id": walk_in}),
        ),
        command("check_in", 54, json!({"appointment_id": Uuid::now_v7()})),
        command(
            "book",
            60 * 100,
            json!({"slot_id": take(&free[4]), "patient_id": care.patient_id}),
        ),
    ];
    // Sent in another order: applied in the order they were made.
    let mut sent = made.clone();
    sent.reverse();
    let batch = json!({"clinic_id": clinic, "commands": sent});
    let answers = app.post_as(&desk, "/api/v1/sync", batch.clone()).await;
    let answers = answers.assert_ok(200).as_array().unwrap().clone();
    let mut order: Vec<&Value> = made.iter().collect();
    order.sort_by_key(|c| c["made_at"].as_str().unwrap().to_owned());
    let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
    assert_eq!(ids, order.iter().map(|c| &c["id"]).collect::<Vec<_>>());
    let answer_to = |c: &Value| {
        answers
            .iter()
            .find(|a| a["id"] == c["id"])
            .cloned()
            .unwrap()
    };
    let status = |c: &Value| {
        let a = answer_to(c);
        (
            a["status"].as_str().unwrap().to_owned(),
            a["code"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(status(&made[0]).0, "applied");
    assert_eq!(answer_to(&made[0])["patient_id"], walk_in.to_string());
    assert_eq!(status(&made[1]).0, "applied", "{answers:#?}");
    let booked = answer_to(&made[1])["appointment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // B was taken online: the three nearest free times of that doctor instead.
    assert_eq!(status(&made[2]), ("conflict".into(), "slot_taken".into()));
    let alternatives = answer_to(&made[2])["alternatives"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(alternatives.len(), 3, "{alternatives:#?}");
    assert!(
        alternatives
            .iter()
            .all(|s| s["slot_id"] != b["id"] && s["slot_id"] != a["id"])
    );
    assert_eq!(status(&made[3]).0, "applied");
    assert_eq!(
        status(&made[4]),
        ("conflict".into(), "cancelled_meanwhile".into())
    );
    assert_eq!(status(&made[5]), ("conflict".into(), "patient_busy".into()));
    assert_eq!(status(&made[6]), ("refused".into(), "not_found".into()));
    assert_eq!(status(&made[7]), ("refused".into(), "too_old".into()));

    // What was applied is there, online.
    let visit = app
        .get_as(&desk, &format!("/api/v1/appointments/{booked}"))
        .await;
    assert_eq!(visit.assert_ok(200)["status"], "booked");
    assert_eq!(visit.body["patient_id"], walk_in.to_string());
    let checked = app
        .get_as(&desk, &format!("/api/v1/appointments/{}", care.appointment))
        .await;
    assert_eq!(checked.assert_ok(200)["status"], "checked_in");
    // Audited with both times.
    const AUDITED: &str =
        "SELECT COUNT(*) FROM audit WHERE action = 'sync.applied' AND clinic_id = $1";
    assert_eq!(app.count(AUDITED, clinic).await, 3);
    const TIMES: &str = "SELECT details FROM audit WHERE action = 'sync.applied' AND subject = $1";
    let details: String = clinic::on_db!(&app.db, |pool| sqlx::query_scalar(TIMES)
        .bind(format!("appointment:{booked}"))
        .fetch_one(pool)
        .await)
    .unwrap();
    assert!(
        details.contains("made_offline_at") && details.contains("applied_at"),
        "{details}"
    );

    // The same batch again: nothing happens twice.
    let again = app.post_as(&desk, "/api/v1/sync", batch).await;
    let again = again.assert_ok(200).as_array().unwrap().clone();
    let replayed = |c: &Value| {
        again.iter().find(|a| a["id"] == c["id"]).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for applied in [&made[0], &made[1], &made[3]] {
        assert_eq!(replayed(applied), "already_applied");
    }
    assert_eq!(replayed(&made[2]), "conflict");
    assert_eq!(app.count(AUDITED, clinic).await, 3);
    const VISITS: &str = "SELECT COUNT(*) FROM appointments WHERE patient_id = $1";
    assert_eq!(app.count(VISITS, walk_in).await, 1);
    // The walk-in gave a phone, no email: no mail is queued for the placeholder address.
    const MAILS: &str = "SELECT COUNT(*) FROM outbox WHERE user_id = $1 AND channel = 'email'";
    assert_eq!(app.count(MAILS, walk_in).await, 0);
    // The same id with another body is refused.
    let mut reused = made[3].clone();
    reused["kind"] = json!("no_show");
    let refused = app
        .post_as(
            &desk,
            "/api/v1/sync",
            json!({"clinic_id": clinic, "commands": [reused]}),
        )
        .await;
    assert_eq!(refused.assert_ok(200)[0]["status"], "refused");
    assert_eq!(refused.body[0]["code"], "id_reused");

    // The desk resolves the conflict with an alternative.
    let pick = command(
        "book",
        1,
        json!({"slot_id": alternatives[0]["slot_id"], "patient_id": care.patient_id}),
    );
    let resolved = app
        .post_as(
            &desk,
            "/api/v1/sync",
            json!({"clinic_id": clinic, "commands": [pick]}),
        )
        .await;
    assert_eq!(resolved.assert_ok(200)[0]["status"], "applied");

    // Another clinic's staff, and commands for another clinic, are refused.
    app.post_as(
        &other.admin,
        "/api/v1/sync",
        json!({"clinic_id": clinic, "commands": []}),
    )
    .await
    .assert_problem(403, "forbidden");
    let (_, other_desk) = app
        .user_with(
            "desk2@example.org",
            &[json!({"role": "clinic_staff", "clinic_id": other.id})],
        )
        .await;
    let elsewhere = command("check_in", 1, json!({"appointment_id": care.appointment}));
    let elsewhere = app
        .post_as(
            &other_desk,
            "/api/v1/sync",
            json!({"clinic_id": other.id, "commands": [elsewhere]}),
        )
        .await;
    assert_eq!(elsewhere.assert_ok(200)[0]["status"], "refused");
    // Bad input: a walk-in with neither email nor phone is refused with the reason.
    let nameless = command(
        "walk_in",
        1,
        json!({"patient_id": Uuid::now_v7(), "name": "No Contact"}),
    );
    let nameless = app
        .post_as(
            &desk,
            "/api/v1/sync",
            json!({"clinic_id": clinic, "commands": [nameless]}),
        )
        .await;
    assert_eq!(nameless.assert_ok(200)[0]["code"], "validation_failed");

    // Since the first snapshot: the visits changed meanwhile, and the new patient.
    let since = snapshot["generated_at"].as_str().unwrap();
    let later = app
        .get_as(&desk, &format!("{url}&since={}", since.replace('+', "%2B")))
        .await;
    let later = later.assert_ok(200);
    assert_eq!(later["full"], false);
    let changed: Vec<&str> = later["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&booked.as_str()), "{changed:?}");
    assert!(changed.contains(&cancelled.as_str()), "{changed:?}");
    assert!(
        later["patients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == walk_in.to_string() && p["email"] == "")
    );
}

async fn two_desks_syncing_one_slot_at_once_book_it_once(app: TestApp) {
    let care = app.care_setup().await;
    let clinic = care.clinic.id;
    let mut desks = Vec::new();
    for n in 0..2 {
        let (_, token) = app
            .user_with(
                &format!("desk{n}@example.org"),
                &[json!({"role": "clinic_staff", "clinic_id": clinic})],
            )
            .await;
        desks.push(token);
    }
    let url = format!("/api/v1/sync/snapshot?clinic_id={clinic}");
    let snapshot = app.get_as(&desks[0], &url).await.assert_ok(200).clone();
    let slot = free_of(&snapshot, &care.doctor_id.to_string())[0]["id"].clone();
    // Each desk registered its own walk-in offline and booked them into the same time.
    let batches: Vec<Value> = (0..2)
        .map(|n| {
            let patient = Uuid::now_v7();
            json!({"clinic_id": clinic, "commands": [
                command("walk_in", 10, json!({"patient_id": patient, "name": format!("Walk In {n}"),
                    "email": format!("walkin{n}@example.org")})),
                command("book", 9, json!({"slot_id": slot, "patient_id": patient})),
            ]})
        })
        .collect();
    let (first, second) = tokio::join!(
        app.post_as(&desks[0], "/api/v1/sync", batches[0].clone()),
        app.post_as(&desks[1], "/api/v1/sync", batches[1].clone()),
    );
    let booked: Vec<String> = [first, second]
        .iter()
        .map(|a| a.assert_ok(200)[1]["status"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = booked.clone();
    sorted.sort();
    assert_eq!(sorted, ["applied", "conflict"], "{booked:?}");
    const LIVE: &str =
        "SELECT COUNT(*) FROM appointments WHERE slot_id = $1 AND status <> 'cancelled'";
    let slot: Uuid = slot.as_str().unwrap().parse().unwrap();
    assert_eq!(app.count(LIVE, slot).await, 1);

    // One command sent by both desks at once (a resend racing the first send): applied once.
    let shared = json!({"clinic_id": clinic, "commands": [
        command("check_in", 1, json!({"appointment_id": care.appointment}))]});
    let (x, y) = tokio::join!(
        app.post_as(&desks[0], "/api/v1/sync", shared.clone()),
        app.post_as(&desks[1], "/api/v1/sync", shared.clone()),
    );
    let mut outcomes: Vec<String> = [x, y]
        .iter()
        .map(|a| a.assert_ok(200)[0]["status"].as_str().unwrap().to_owned())
        .collect();
    outcomes.sort();
    assert!(
        outcomes == ["already_applied", "applied"] || outcomes == ["applied", "conflict"],
        "{outcomes:?}"
    );
    const AUDITED: &str =
        "SELECT COUNT(*) FROM audit WHERE action = 'appointment.checked_in' AND subject = $1";
    let subject = format!("appointment:{}", care.appointment);
    let n: i64 = clinic::on_db!(&app.db, |pool| sqlx::query_scalar(AUDITED)
        .bind(&subject)
        .fetch_one(pool)
        .await)
    .unwrap();
    assert_eq!(n, 1);
}
