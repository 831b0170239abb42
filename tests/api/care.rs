//! Doctors' notes → checklist and plan (offline extractor and a scripted model server),
//! sealed notes and who may read them, supersede, reminders (DST, missed check-ins), the
//! notification outbox and its dispatcher over SMTP, a Twilio-compatible API and a signed
//! webhook, and waitlist offers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp};
use crate::model_server::{ModelServer, Reply, Step};
use crate::on_both_backends;
use crate::smtp::SmtpServer;

on_both_backends!(
    a_doctor_note_becomes_a_plan_with_reminders_and_stays_sealed,
    only_the_patient_and_their_doctors_read_notes_and_refusals_are_audited,
    a_newer_note_supersedes_the_plan_and_its_future_reminders,
    a_missed_check_in_extends_the_plan_up_to_the_limit,
    daily_reminders_keep_their_local_time_across_dst,
    a_cancelled_time_is_offered_to_the_waitlist_and_passes_on_when_it_lapses,
    two_dispatchers_send_each_notification_exactly_once,
);

/// A clinic, a doctor with a login, and a patient who has booked with that doctor.
pub struct Care {
    pub clinic: crate::scheduling::Clinic,
    pub doctor_id: Uuid,
    pub doctor: String,
    pub patient_id: Uuid,
    pub patient: String,
    pub appointment: String,
}

impl TestApp {
    pub async fn care_setup(&self) -> Care {
        let clinic = self.approved_clinic("Care Clinic", "Europe/Lisbon").await;
        self.verified_patient("dr.costa@example.org").await;
        let created = self
            .post_as(
                &clinic.admin,
                &format!("/api/v1/clinics/{}/doctors", clinic.id),
                json!({"display_name": "Dr. Ana Costa", "email": "dr.costa@example.org", "languages": ["en"],
                       "fee_cents": 6000, "specialties": ["dermatology"]}),
            )
            .await;
        let doctor_id: Uuid = created.str_at("id").parse().unwrap();
        self.request(
            reqwest::Method::PUT,
            &format!("/api/v1/doctors/{doctor_id}/schedule"),
            Some(&clinic.admin),
            Some(json!({"rules": TestApp::all_week(), "slot_minutes": 30, "min_notice_minutes": 0, "horizon_days": 14})),
        )
        .await
        .assert_ok(200);
        let (patient_id, patient) = self.user_with("pat@example.org", &[]).await;
        let slot = self.free_slots(doctor_id, "").await[4]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.post_as(&patient, &format!("/api/v1/slots/{slot}/hold"), json!({}))
            .await
            .assert_ok(201);
        let booked = self
            .post_as(
                &patient,
                &format!("/api/v1/slots/{slot}/confirm"),
                json!({"reason": "rash"}),
            )
            .await;
        let appointment = booked.str_at("id");
        let doctor = self.access_token("dr.costa@example.org").await;
        assert_eq!(self.accept_invitations(&doctor).await, 1);
        Care {
            clinic,
            doctor_id,
            doctor,
            patient_id,
            patient,
            appointment,
        }
    }

    /// Moves the patient's first reminder to `minutes_ago` minutes ago, so it is due now.
    pub async fn first_reminder_due(&self, patient_id: Uuid, minutes_ago: i64) -> Uuid {
        const FIRST: &str =
            "SELECT id FROM reminders WHERE patient_id = $1 ORDER BY due_at LIMIT 1";
        let first: Uuid = clinic::on_db!(&self.db, |pool| sqlx::query_scalar(FIRST)
            .bind(patient_id)
            .fetch_one(pool)
            .await)
        .unwrap();
        const DUE: &str = "UPDATE reminders SET due_at = $2 WHERE id = $1";
        clinic::on_db!(&self.db, |pool| sqlx::query(DUE)
            .bind(first)
            .bind(Utc::now() - chrono::Duration::minutes(minutes_ago))
            .execute(pool)
            .await
            .map(|_| ()))
        .unwrap();
        first
    }

    pub async fn submit_note(&self, care: &Care, text: &str) -> crate::helpers::Answer {
        self.post_as(
            &care.doctor,
            &format!("/api/v1/patients/{}/notes", care.patient_id),
            json!({"text": text}),
        )
        .await
    }

    async fn rows(&self, sql: &'static str, arg: Uuid) -> Vec<(Uuid, String)> {
        clinic::on_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(arg)
            .fetch_all(pool)
            .await)
        .expect(sql)
    }
}

trait At {
    fn str_at(&self, key: &str) -> String;
}

impl At for crate::helpers::Answer {
    #[track_caller]
    fn str_at(&self, key: &str) -> String {
        assert!(self.status.is_success(), "{:#}", self.body);
        self.str(key)
    }
}

const NOTE: &str = "Take amoxicillin 500 mg twice daily for 7 days. Apply the cream every 12 hours for 3 days. \
    Buy a thermometer. Book a follow-up in 3 weeks.";

async fn a_doctor_note_becomes_a_plan_with_reminders_and_stays_sealed(app: TestApp) {
    let care = app.care_setup().await;
    let submitted = app.submit_note(&care, NOTE).await;
    let body = submitted.assert_ok(201);
    assert_eq!(body["note"]["text"], NOTE);
    let plan = &body["plan"];
    assert_eq!(plan["status"], "active");
    let items: Vec<(&str, Value, Value, Value)> = plan["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["action"].as_str().unwrap(),
                p["times_per_day"].clone(),
                p["every_hours"].clone(),
                p["occurrences"].clone(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            ("Take amoxicillin 500 mg", json!(2), Value::Null, json!(14)),
            ("Apply the cream", Value::Null, json!(12), json!(6)),
        ]
    );
    let tasks: Vec<&str> = plan["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["task"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["Buy a thermometer", "Book a follow-up"]);
    let note_id: Uuid = body["note"]["id"].as_str().unwrap().parse().unwrap();
    let plan_id: Uuid = plan["id"].as_str().unwrap().parse().unwrap();

    // The database holds no plaintext: not the note, not the plan, not the messages.
    let (sealed,): (Vec<u8>,) = clinic::on_db!(&app.db, |pool| sqlx::query_as(
        "SELECT sealed FROM notes WHERE id = $1"
    )
    .bind(note_id)
    .fetch_one(pool)
    .await)
    .unwrap();
    assert!(sealed.len() > NOTE.len());
    let needle = b"amoxicillin";
    assert!(!sealed.windows(needle.len()).any(|w| w == needle));
    let dump: Vec<(Vec<u8>,)> = clinic::on_db!(&app.db, |pool| sqlx::query_as(
        "SELECT sealed FROM care_plans UNION ALL SELECT sealed FROM outbox"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    assert!(
        dump.iter()
            .all(|(b,)| !b.windows(needle.len()).any(|w| w == needle))
    );

    // The patient's view: actionable steps and reminders; check in; tick a task.
    let steps = app
        .get_as(
            &care.patient,
            &format!("/api/v1/patients/{}/actionable-steps", care.patient_id),
        )
        .await;
    let steps = steps.assert_ok(200);
    assert_eq!(steps["plans"][0]["id"], plan_id.to_string());
    assert!(!steps["upcoming"].as_array().unwrap().is_empty());
    let reminders = app.get_as(&care.patient, "/api/v1/reminders").await;
    let reminders = reminders.assert_ok(200).as_array().unwrap().clone();
    assert!(reminders.len() >= 4, "{reminders:?}");
    let first = &reminders[0];
    assert_eq!(first["status"], "scheduled");
    let id = first["id"].as_str().unwrap();
    let due: DateTime<Utc> = first["due_at"].as_str().unwrap().parse().unwrap();
    // Pull it into the grace window, then check in.
    let checked = if due > Utc::now() + chrono::Duration::hours(2) {
        app.post_as(
            &care.patient,
            &format!("/api/v1/reminders/{id}/check-in"),
            json!({}),
        )
        .await
        .assert_problem(409, "conflict");
        let rid: Uuid = id.parse().unwrap();
        clinic::on_db!(&app.db, |pool| sqlx::query(
            "UPDATE reminders SET due_at = $2 WHERE id = $1"
        )
        .bind(rid)
        .bind(Utc::now())
        .execute(pool)
        .await
        .map(|_| ()))
        .unwrap();
        app.post_as(
            &care.patient,
            &format!("/api/v1/reminders/{id}/check-in"),
            json!({}),
        )
        .await
    } else {
        app.post_as(
            &care.patient,
            &format!("/api/v1/reminders/{id}/check-in"),
            json!({}),
        )
        .await
    };
    assert_eq!(checked.assert_ok(200)["status"], "done");
    // Another patient cannot check in on it.
    let (_, other) = app.user_with("other@example.org", &[]).await;
    app.post_as(
        &other,
        &format!("/api/v1/reminders/{id}/check-in"),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    let task = steps["plans"][0]["checklist"][0]["id"].as_str().unwrap();
    let ticked = app
        .post_as(
            &care.patient,
            &format!("/api/v1/checklist-items/{task}/done"),
            json!({}),
        )
        .await;
    assert!(ticked.assert_ok(200)["done_at"].is_string());
    app.post_as(
        &other,
        &format!("/api/v1/checklist-items/{task}/done"),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");

    // Every reminder has a notification waiting; the follow-up task has one too.
    let waiting = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM outbox WHERE kind = $1 AND status = 'pending'",
            "plan_reminder",
        )
        .await;
    assert_eq!(waiting, 14 + 6 - 1, "one was checked in and withdrawn");
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM outbox WHERE kind = $1",
            "checklist_due"
        )
        .await,
        1
    );
}

async fn only_the_patient_and_their_doctors_read_notes_and_refusals_are_audited(app: TestApp) {
    let care = app.care_setup().await;
    let note = app.submit_note(&care, NOTE).await;
    let note_id = note.assert_ok(201)["note"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let notes_path = format!("/api/v1/patients/{}/notes", care.patient_id);
    let steps_path = format!("/api/v1/patients/{}/actionable-steps", care.patient_id);

    // The patient and their doctor read it.
    let mine = app.get_as(&care.patient, &notes_path).await;
    assert_eq!(mine.assert_ok(200)[0]["text"], NOTE);
    let one = app
        .get_as(&care.doctor, &format!("/api/v1/notes/{note_id}"))
        .await;
    assert_eq!(one.assert_ok(200)["text"], NOTE);

    // Another patient, a doctor who never saw them, the clinic's admin: refused.
    let (_, stranger) = app.user_with("stranger@example.org", &[]).await;
    app.verified_patient("dr.other@example.org").await;
    app.post_as(
        &care.clinic.admin,
        &format!("/api/v1/clinics/{}/doctors", care.clinic.id),
        json!({"display_name": "Dr. Other", "email": "dr.other@example.org", "languages": ["en"], "fee_cents": 1, "specialties": ["dermatology"]}),
    )
    .await
    .assert_ok(201);
    let other_doctor = app.access_token("dr.other@example.org").await;
    assert_eq!(app.accept_invitations(&other_doctor).await, 1);
    for token in [&stranger, &other_doctor, &care.clinic.admin] {
        app.get_as(token, &notes_path)
            .await
            .assert_problem(403, "forbidden");
        app.get_as(token, &format!("/api/v1/notes/{note_id}"))
            .await
            .assert_problem(403, "forbidden");
        app.get_as(token, &steps_path)
            .await
            .assert_problem(403, "forbidden");
    }
    // Nor may they write one.
    app.post_as(
        &other_doctor,
        &notes_path,
        json!({"text": "Take a walk daily"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(&stranger, &notes_path, json!({"text": "Take a walk daily"}))
        .await
        .assert_problem(403, "forbidden");
    app.get(&notes_path)
        .await
        .assert_problem(401, "unauthenticated");

    // Reads and refusals are in the audit log.
    let reads = app
        .scalar_i64_str("SELECT COUNT(*) FROM audit WHERE action = $1", "note.read")
        .await;
    let denied = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE action IN ('note.read', 'care_plan.read', 'note.write') AND details LIKE $1",
            "%denied%",
        )
        .await;
    assert_eq!(reads - denied_reads(&app).await, 2, "two granted reads");
    assert_eq!(denied, 3 * 3 + 2, "every refusal recorded");
}

async fn denied_reads(app: &TestApp) -> i64 {
    app.scalar_i64_str(
        "SELECT COUNT(*) FROM audit WHERE action = 'note.read' AND details LIKE $1",
        "%denied%",
    )
    .await
}

async fn a_newer_note_supersedes_the_plan_and_its_future_reminders(app: TestApp) {
    let care = app.care_setup().await;
    let first = app.submit_note(&care, NOTE).await;
    let first_plan: Uuid = first.assert_ok(201)["plan"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let second = app
        .submit_note(&care, "Take ibuprofen 400 mg three times a day for 2 days.")
        .await;
    let second_plan = second.assert_ok(201)["plan"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let statuses = app
        .rows(
            "SELECT id, status FROM care_plans WHERE patient_id = $1 ORDER BY created_at",
            care.patient_id,
        )
        .await;
    assert_eq!(
        statuses,
        [
            (first_plan, "superseded".to_owned()),
            (second_plan.parse().unwrap(), "active".to_owned())
        ]
    );
    // The old plan's reminders and messages are withdrawn; history is kept.
    let old = app
        .rows(
            "SELECT id, status FROM reminders WHERE plan_id = $1",
            first_plan,
        )
        .await;
    assert_eq!(old.len(), 20);
    assert!(old.iter().all(|(_, s)| s == "cancelled"), "{old:?}");
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND kind = $1",
            "plan_reminder"
        )
        .await,
        6
    );
    let steps = app
        .get_as(
            &care.patient,
            &format!("/api/v1/patients/{}/actionable-steps", care.patient_id),
        )
        .await;
    let plans = steps.assert_ok(200)["plans"].as_array().unwrap().clone();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0]["plan"][0]["action"], "Take ibuprofen 400 mg");
    let notes = app
        .get_as(
            &care.patient,
            &format!("/api/v1/patients/{}/notes", care.patient_id),
        )
        .await;
    assert_eq!(notes.assert_ok(200).as_array().unwrap().len(), 2);
    let superseded = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE action = $1",
            "care_plan.superseded",
        )
        .await;
    assert_eq!(superseded, 1);
}

async fn a_missed_check_in_extends_the_plan_up_to_the_limit(app: TestApp) {
    let care = app.care_setup().await;
    let submitted = app
        .submit_note(&care, "Take the tablet once daily for 5 days.")
        .await;
    let plan_id: Uuid = submitted.assert_ok(201)["plan"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let before = app
        .rows(
            "SELECT id, status FROM reminders WHERE plan_id = $1 ORDER BY seq",
            plan_id,
        )
        .await;
    assert_eq!(before.len(), 5);
    let last_due = |rows: Vec<(Uuid, DateTime<Utc>)>| rows.last().map(|r| r.1);
    let dues = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            let rows: Vec<(Uuid, DateTime<Utc>)> = clinic::on_db!(&db, |pool| sqlx::query_as(
                "SELECT id, due_at FROM reminders WHERE plan_id = $1 ORDER BY seq"
            )
            .bind(plan_id)
            .fetch_all(pool)
            .await)
            .unwrap();
            rows
        }
    };
    let end_before = last_due(dues(&app).await).unwrap();

    // The first reminder's time passes with no check-in (beyond the 2-hour grace).
    let overdue = Utc::now() - chrono::Duration::hours(3);
    let move_due = |id: Uuid| {
        let db = app.db.clone();
        async move {
            clinic::on_db!(&db, |pool| sqlx::query(
                "UPDATE reminders SET due_at = $2 WHERE id = $1"
            )
            .bind(id)
            .bind(overdue)
            .execute(pool)
            .await
            .map(|_| ()))
            .unwrap();
        }
    };
    move_due(before[0].0).await;
    let (missed, extended) = clinic::domain::care::reminders::sweep_missed(&app.db, Utc::now())
        .await
        .unwrap();
    assert_eq!((missed.done, missed.failed, extended), (1, 0, 1));
    let after = dues(&app).await;
    assert_eq!(after.len(), 6, "one occurrence added");
    assert_eq!(
        after[5].1 - end_before,
        chrono::Duration::days(1),
        "the day after the last one"
    );
    // Running again (another replica) changes nothing.
    assert_eq!(
        clinic::domain::care::reminders::sweep_missed(&app.db, Utc::now())
            .await
            .map(|(missed, extended)| (missed.done, extended))
            .unwrap(),
        (0, 0)
    );
    // Up to the limit (3): three more misses add two more occurrences.
    for (id, _) in &before[1..4] {
        move_due(*id).await;
    }
    let (missed, extended) = clinic::domain::care::reminders::sweep_missed(&app.db, Utc::now())
        .await
        .unwrap();
    assert_eq!((missed.done, missed.failed, extended), (3, 0, 2));
    assert_eq!(dues(&app).await.len(), 8);
    let steps = app
        .get_as(
            &care.patient,
            &format!("/api/v1/patients/{}/actionable-steps", care.patient_id),
        )
        .await;
    let item = &steps.assert_ok(200)["plans"][0]["plan"][0];
    assert_eq!(
        (item["occurrences"].clone(), item["extensions"].clone()),
        (json!(8), json!(3))
    );
    let statuses = app
        .rows(
            "SELECT id, status FROM reminders WHERE plan_id = $1 AND status = 'missed'",
            plan_id,
        )
        .await;
    assert_eq!(statuses.len(), 4);
}

async fn daily_reminders_keep_their_local_time_across_dst(app: TestApp) {
    let care = app.care_setup().await;
    app.request(
        reqwest::Method::PUT,
        "/api/v1/me/notifications",
        Some(&care.patient),
        Some(json!({"channel": "email", "time_zone": "America/New_York"})),
    )
    .await
    .assert_ok(200);
    // 220 days always span at least one change of offset in New York.
    app.submit_note(&care, "Take the drops twice daily for 220 days.")
        .await
        .assert_ok(201);
    let from = Utc::now() - chrono::Duration::days(1);
    let to = from + chrono::Duration::days(230);
    let reminders = app
        .get_as(
            &care.patient,
            &format!(
                "/api/v1/reminders?from={}&to={}",
                from.format("%Y-%m-%dT%H:%M:%SZ"),
                to.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        )
        .await;
    let reminders = reminders.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(reminders.len(), 440);
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let mut offsets = std::collections::BTreeSet::new();
    for r in &reminders {
        assert_eq!(r["time_zone"], "America/New_York");
        let at: DateTime<Utc> = r["due_at"].as_str().unwrap().parse().unwrap();
        let local = at.with_timezone(&tz);
        let hm = local.format("%H:%M").to_string();
        assert!(hm == "08:00" || hm == "20:00", "{r}");
        assert!(r["local_time"].as_str().unwrap().ends_with(&hm));
        offsets.insert(local.format("%z").to_string());
    }
    assert_eq!(offsets.len(), 2, "crossed a DST change: {offsets:?}");
    // Bad settings are named.
    app.request(
        reqwest::Method::PUT,
        "/api/v1/me/notifications",
        Some(&care.patient),
        Some(json!({"channel": "sms", "time_zone": "Mars/Olympus"})),
    )
    .await
    .assert_problem(422, "validation_failed");
}

async fn a_cancelled_time_is_offered_to_the_waitlist_and_passes_on_when_it_lapses(app: TestApp) {
    let care = app.care_setup().await;
    let (_, first) = app.user_with("first@example.org", &[]).await;
    let (_, second) = app.user_with("second@example.org", &[]).await;
    for token in [&first, &second] {
        app.post_as(
            token,
            "/api/v1/waitlist",
            json!({"doctor_id": care.doctor_id}),
        )
        .await
        .assert_ok(201);
    }
    // The patient cancels; the first on the waitlist gets the time, on hold.
    app.post_as(
        &care.patient,
        &format!("/api/v1/appointments/{}/cancel", care.appointment),
        json!({"reason": "better"}),
    )
    .await
    .assert_ok(200);
    let offers = app.get_as(&first, "/api/v1/waitlist/offers").await;
    let offer = offers.assert_ok(200)[0].clone();
    assert_eq!(offer["status"], "offered");
    let slot = offer["slot_id"].as_str().unwrap();
    app.post_as(&second, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await
        .assert_problem(409, "slot_taken");
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM outbox WHERE kind = $1",
            "waitlist_offer"
        )
        .await,
        1
    );
    // Nobody answers; the offer lapses and passes to the second patient.
    let offer_id: Uuid = offer["id"].as_str().unwrap().parse().unwrap();
    clinic::on_db!(&app.db, |pool| sqlx::query(
        "UPDATE waitlist_offers SET expires_at = $2 WHERE id = $1"
    )
    .bind(offer_id)
    .bind(Utc::now() - chrono::Duration::minutes(1))
    .execute(pool)
    .await
    .map(|_| ()))
    .unwrap();
    assert_eq!(
        clinic::jobs::run(&clinic::jobs::ExpireOffers, &app.db, Utc::now())
            .await
            .unwrap(),
        clinic::jobs::Batch { done: 1, failed: 0 }
    );
    app.post_as(
        &first,
        &format!("/api/v1/waitlist/offers/{offer_id}/accept"),
        json!({}),
    )
    .await
    .assert_problem(409, "hold_expired");
    let offers = app.get_as(&second, "/api/v1/waitlist/offers").await;
    let offer = offers.assert_ok(200)[0].clone();
    assert_eq!(offer["slot_id"], slot);
    let booked = app
        .post_as(
            &second,
            &format!(
                "/api/v1/waitlist/offers/{}/accept",
                offer["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(booked.assert_ok(201)["slot_id"], slot);
    assert_eq!(booked.body["status"], "booked");
}

/// An HTTP server that records what it is sent: a Twilio-compatible messages API and a
/// webhook receiver. It answers with the statuses queued, then 201.
#[derive(Clone, Default)]
pub struct Inbox {
    pub received: Arc<Mutex<Vec<(String, HeaderMap, String)>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl Inbox {
    pub async fn start() -> (Self, String) {
        let inbox = Self::default();
        async fn take(
            State(inbox): State<Inbox>,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: String,
        ) -> StatusCode {
            inbox
                .received
                .lock()
                .unwrap()
                .push((uri.path().to_owned(), headers, body));
            let mut statuses = inbox.statuses.lock().unwrap();
            let status = if statuses.is_empty() {
                201
            } else {
                statuses.remove(0)
            };
            StatusCode::from_u16(status).unwrap()
        }
        let app = Router::new()
            .route("/{*path}", post(take))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (inbox, url)
    }

    pub fn answer_with(&self, statuses: &[u16]) {
        self.statuses.lock().unwrap().extend_from_slice(statuses);
    }

    pub fn bodies(&self) -> Vec<(String, HeaderMap, String)> {
        self.received.lock().unwrap().clone()
    }
}

fn form(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

async fn two_dispatchers_send_each_notification_exactly_once(app: TestApp) {
    let (inbox, url) = Inbox::start().await;
    // Two dispatchers with the SMS API configured, the second on another pool (a replica).
    let notify = clinic::config::NotifyConfig {
        appointment_reminders: Vec::new(),
        twilio: Some(clinic::config::TwilioConfig {
            base_url: url.clone(),
            account_sid: "AC123".into(),
            auth_token: "secret-token".to_owned().into(),
            sms_from: "+15550001111".into(),
            whatsapp_from: None,
        }),
        webhook: None,
        max_attempts: 6,
        retry_min: std::time::Duration::from_secs(30),
        retry_max: std::time::Duration::from_secs(60),
        poll: std::time::Duration::from_secs(3600),
        lease: std::time::Duration::from_secs(120),
    };
    let replica = app.replica().await.with_policy(app.db.policy().clone());
    let one = clinic::notify::dispatch::Dispatcher::new(
        app.db.clone(),
        app.state.mailer.clone(),
        notify.clone(),
    )
    .unwrap();
    let two = clinic::notify::dispatch::Dispatcher::new(
        replica,
        app.state.mailer.clone(),
        notify.clone(),
    )
    .unwrap();

    // 120 reminders due now, for a patient who wants SMS.
    let (patient, token) = app.user_with("sms@example.org", &[]).await;
    app.request(
        reqwest::Method::PUT,
        "/api/v1/me/notifications",
        Some(&token),
        Some(json!({"channel": "sms", "phone": "+351912345678"})),
    )
    .await
    .assert_ok(200);
    // As configured with an SMS provider (else SMS users get email).
    let mut policy = app.db.policy().clone();
    policy.sms = true;
    let mut tx = app.db.begin().await.unwrap();
    let to = clinic::notify::outbox::contact(&mut tx, patient)
        .await
        .unwrap();
    for i in 0..120 {
        let message = clinic::notify::outbox::Message {
            subject: "Reminder".into(),
            body: format!("message {i}"),
            ics: None,
            attachment: None,
        };
        clinic::notify::outbox::enqueue(
            &mut tx,
            &policy,
            "plan_reminder",
            &format!("test:{i}"),
            &to,
            &message,
            Utc::now(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let run = |d: clinic::notify::dispatch::Dispatcher| async move {
        let mut sent = 0;
        loop {
            let pass = d.run_once(7).await.unwrap();
            sent += pass.sent;
            if pass.claimed == 0 {
                return sent;
            }
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(run(one.clone())), tokio::spawn(run(two)));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, 120);
    if app.backend == Backend::Postgres {
        assert!(a > 0 && b > 0, "both dispatchers worked: {a} and {b}");
    }
    let received = inbox.bodies();
    assert_eq!(received.len(), 120, "each message sent exactly once");
    let mut seen = std::collections::HashSet::new();
    for (path, headers, body) in &received {
        assert_eq!(path, "/2010-04-01/Accounts/AC123/Messages.json");
        let auth = headers["authorization"].to_str().unwrap();
        assert!(auth.starts_with("Basic "), "{auth}");
        let f = form(body);
        assert_eq!(f["To"], "+351912345678");
        assert_eq!(f["From"], "+15550001111");
        assert!(seen.insert(f["Body"].clone()), "sent twice: {}", f["Body"]);
    }
    assert_eq!(
        app.scalar_i64_str("SELECT COUNT(*) FROM outbox WHERE status = $1", "sent")
            .await,
        120
    );

    // Failures: a 500 is retried, then dead-lettered after the attempts run out; a 400
    // is dead at once. Admins see them.
    let mut tx = app.db.begin().await.unwrap();
    for i in 0..2 {
        clinic::notify::outbox::enqueue(
            &mut tx,
            &policy,
            "plan_reminder",
            &format!("failing:{i}"),
            &to,
            &clinic::notify::outbox::Message {
                subject: "Reminder".into(),
                body: format!("failing {i}"),
                ics: None,
                attachment: None,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut notify = notify.clone();
    notify.max_attempts = 2;
    notify.retry_min = std::time::Duration::from_millis(1);
    notify.retry_max = std::time::Duration::from_millis(5);
    let d =
        clinic::notify::dispatch::Dispatcher::new(app.db.clone(), app.state.mailer.clone(), notify)
            .unwrap();
    inbox.answer_with(&[500, 400, 500]);
    let first = d.run_once(10).await.unwrap();
    assert_eq!((first.claimed, first.failed, first.dead), (2, 1, 1));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = d.run_once(10).await.unwrap();
    assert_eq!((second.claimed, second.dead), (1, 1));
    let root = app.root().await;
    let dead = app.get_as(&root, "/api/v1/admin/outbox?status=dead").await;
    let dead = dead.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .all(|n| n["last_error"].as_str().unwrap().contains("HTTP"))
    );
    app.get_as(&token, "/api/v1/admin/outbox")
        .await
        .assert_problem(403, "forbidden");
    // An admin sends one again.
    let id = dead[0]["id"].as_str().unwrap();
    app.post_as(
        &root,
        &format!("/api/v1/admin/outbox/{id}/retry"),
        json!({}),
    )
    .await
    .assert_ok(204);
    assert_eq!(d.run_once(10).await.unwrap().sent, 1);

    // WhatsApp goes through the same API, with the whatsapp: prefix on both numbers.
    let whatsapp = clinic::notify::outbox::Contact {
        notify_channel: "whatsapp".into(),
        ..to.clone()
    };
    let mut tx = app.db.begin().await.unwrap();
    clinic::notify::outbox::enqueue(
        &mut tx,
        &policy,
        "plan_reminder",
        "whatsapp",
        &whatsapp,
        &clinic::notify::outbox::Message {
            subject: "Reminder".into(),
            body: "by whatsapp".into(),
            ics: None,
            attachment: None,
        },
        Utc::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(one.run_once(10).await.unwrap().sent, 1);
    let (_, _, body) = inbox.bodies().pop().unwrap();
    let f = form(&body);
    assert_eq!(f["To"], "whatsapp:+351912345678");
    assert_eq!(f["From"], "whatsapp:+15550001111");

    // Without an SMS provider configured, the same patient is told by email.
    let mut tx = app.db.begin().await.unwrap();
    clinic::notify::outbox::enqueue(
        &mut tx,
        app.db.policy(),
        "plan_reminder",
        "fallback",
        &to,
        &clinic::notify::outbox::Message::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM outbox WHERE about = $1 AND channel = 'email' AND recipient = 'sms@example.org'",
            "fallback"
        )
        .await,
        1
    );
}

/// Booking sends a confirmation with a calendar file over SMTP, and the webhook gets a
/// signed copy of every notification.
#[tokio::test]
async fn a_booking_confirmation_goes_out_by_smtp_with_a_calendar_file_and_a_signed_webhook() {
    let smtp = SmtpServer::start().await;
    let (hooks, hook_url) = Inbox::start().await;
    let smtp_url: secrecy::SecretString = format!("smtp://127.0.0.1:{}", smtp.port).into();
    let hook = format!("{hook_url}/hooks/clinic");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("WEBHOOK_URL", &hook),
            ("WEBHOOK_SECRET", "webhook-secret-123"),
        ],
    )
    .await;
    let care = app.care_setup().await;
    // The dispatcher sends over SMTP (account codes above were read from the outbox).
    let mailer = clinic::notify::mail::Mailer::new(
        app.db.clone(),
        "Clinic <desk@clinic.test>",
        Some(&smtp_url),
    )
    .unwrap();
    let dispatcher = clinic::notify::dispatch::Dispatcher::new(
        app.db.clone(),
        mailer,
        app.state.config.notify.clone(),
    )
    .unwrap();
    let pass = dispatcher.run_once(50).await.unwrap();
    // Confirmation by mail and webhook; reminders are not due yet.
    assert_eq!((pass.claimed, pass.sent), (2, 2), "{pass:?}");
    let mails: Vec<_> = smtp
        .messages()
        .into_iter()
        .filter(|m| m.to == ["pat@example.org"] && m.data.contains("appointment is booked"))
        .collect();
    assert_eq!(mails.len(), 1);
    let data = &mails[0].data;
    assert!(data.contains("text/calendar"), "{data}");
    assert!(data.contains("BEGIN:VCALENDAR"), "{data}");
    assert!(
        data.contains(&format!("UID:{}@clinic", care.appointment)),
        "{data}"
    );

    let received = hooks.bodies();
    assert_eq!(received.len(), 1);
    let (path, headers, body) = &received[0];
    assert_eq!(path, "/hooks/clinic");
    let ts = headers["x-clinic-timestamp"].to_str().unwrap();
    let sig = headers["x-clinic-signature"].to_str().unwrap();
    assert_eq!(
        sig,
        format!(
            "v1={}",
            clinic::notify::dispatch::sign(b"webhook-secret-123", ts, body)
        )
    );
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["kind"], "appointment_confirmation");
    assert_eq!(event["about"], format!("appointment:{}", care.appointment));

    // Cancelling withdraws the calendar event: the same UID, a higher SEQUENCE, CANCEL.
    app.post_as(
        &care.patient,
        &format!("/api/v1/appointments/{}/cancel", care.appointment),
        json!({}),
    )
    .await
    .assert_ok(200);
    dispatcher.run_once(50).await.unwrap();
    let sequence = |data: &str| -> u64 {
        data.lines()
            .find_map(|l| l.trim().strip_prefix("SEQUENCE:"))
            .expect("a SEQUENCE")
            .trim()
            .parse()
            .unwrap()
    };
    let cancelled: Vec<_> = smtp
        .messages()
        .into_iter()
        .filter(|m| m.to == ["pat@example.org"] && m.data.contains("METHOD:CANCEL"))
        .collect();
    assert_eq!(cancelled.len(), 1);
    let withdrawn = &cancelled[0].data;
    assert!(withdrawn.contains("method=CANCEL"), "{withdrawn}");
    assert!(withdrawn.contains("STATUS:CANCELLED"), "{withdrawn}");
    assert!(
        withdrawn.contains(&format!("UID:{}@clinic", care.appointment)),
        "{withdrawn}"
    );
    assert!(sequence(withdrawn) >= sequence(data), "{withdrawn}");

    // Reminders are not written at booking; they are queued when due, 24 h and 2 h
    // before, each exactly once, even with two replicas running the job.
    let day_after = (Utc::now() + chrono::Duration::days(3)).date_naive();
    let later = app
        .free_slots(care.doctor_id, &format!("from={day_after}"))
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_as(
        &care.patient,
        &format!("/api/v1/slots/{later}/hold"),
        json!({}),
    )
    .await
    .assert_ok(201);
    let booked = app
        .post_as(
            &care.patient,
            &format!("/api/v1/slots/{later}/confirm"),
            json!({}),
        )
        .await;
    let visit = booked.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let starts: DateTime<Utc> = booked.body["starts_at"].as_str().unwrap().parse().unwrap();
    let pending = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            let (n,): (i64,) = clinic::on_db!(&db, |pool| sqlx::query_as(
                "SELECT COUNT(*) FROM outbox WHERE kind = 'appointment_reminder' AND channel = 'email' AND status = 'pending'"
            )
            .fetch_one(pool)
            .await)
            .unwrap();
            n
        }
    };
    use clinic::domain::scheduling::appointments::send_due_reminders;
    let replica = app.replica().await.with_policy(app.db.policy().clone());
    assert_eq!(
        send_due_reminders(&app.db, Utc::now()).await.unwrap().done,
        0
    );
    let day_before = starts - chrono::Duration::hours(24) + chrono::Duration::seconds(1);
    let (a, b) = tokio::join!(
        send_due_reminders(&app.db, day_before),
        send_due_reminders(&replica, day_before)
    );
    assert_eq!(
        a.unwrap().done + b.unwrap().done,
        1,
        "the 24-hour reminder, once"
    );
    assert_eq!(pending(&app).await, 1);
    assert_eq!(
        send_due_reminders(&app.db, day_before).await.unwrap().done,
        0
    );
    let two_hours = starts - chrono::Duration::hours(2) + chrono::Duration::seconds(1);
    assert_eq!(
        send_due_reminders(&app.db, two_hours).await.unwrap().done,
        1
    );
    assert_eq!(
        send_due_reminders(&app.db, starts - chrono::Duration::minutes(5))
            .await
            .unwrap()
            .done,
        0
    );
    assert_eq!(pending(&app).await, 2);
    // Cancelling withdraws what was not sent yet, and no reminder follows.
    app.post_as(
        &care.patient,
        &format!("/api/v1/appointments/{visit}/cancel"),
        json!({}),
    )
    .await
    .assert_ok(200);
    assert_eq!(pending(&app).await, 0);
    let _ = care.appointment;
}

/// Extraction through an OpenAI-compatible server: a valid answer; an invalid one the
/// model repairs when told what is wrong; and garbage, which stores nothing.
#[tokio::test]
async fn extraction_through_a_model_is_validated_repaired_or_refused() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if backend == Backend::Postgres && Backend::postgres_url().is_none() {
            continue;
        }
        let valid = json!({"checklist": [{"task": "Buy a thermometer", "due_in_days": null}],
            "plan": [{"action": "Take amoxicillin 500 mg", "times_per_day": 3, "every_hours": null, "duration_days": 5}]});
        let server = ModelServer::start(vec![
            Step::reply(Reply::text(&format!("```json\n{valid}\n```"))),
            // Both a frequency and an interval: invalid; then repaired.
            Step::reply(Reply::text(
                &json!({"checklist": [], "plan": [{"action": "Use the inhaler", "times_per_day": 2, "every_hours": 12}]}).to_string(),
            )),
            Step::reply(Reply::text(
                &json!({"checklist": [], "plan": [{"action": "Use the inhaler", "times_per_day": 2}]}).to_string(),
            )),
            Step::reply(Reply::text("I think the patient should rest.")),
            Step::reply(Reply::text("{\"plan\": \"twice\"}")),
            Step::reply(Reply::text("Sorry, no.")),
        ])
        .await;
        let base = format!("{}/v1", server.url);
        let app = TestApp::spawn_with(
            backend,
            &[
                ("OPENAI_BASE_URL", base.as_str()),
                ("LLM_MODEL", "scripted-model"),
                ("LLM_TIMEOUT_MS", "2000"),
            ],
        )
        .await;
        let care = app.care_setup().await;
        let a = app
            .submit_note(
                &care,
                "Amoxicillin 500 mg three times a day for five days; buy a thermometer.",
            )
            .await;
        let plan = &a.assert_ok(201)["plan"];
        assert_eq!(plan["plan"][0]["action"], "Take amoxicillin 500 mg");
        assert_eq!(plan["plan"][0]["times_per_day"], 3);
        assert_eq!(plan["checklist"][0]["task"], "Buy a thermometer");
        let requests = server.requests();
        let system = requests[0]["messages"][0]["content"].as_str().unwrap();
        assert!(
            system.contains("\"times_per_day\""),
            "the schema is in the prompt"
        );
        assert_eq!(
            requests[0]["messages"][1]["content"],
            "Amoxicillin 500 mg three times a day for five days; buy a thermometer."
        );

        let b = app.submit_note(&care, "Inhaler twice a day.").await;
        assert_eq!(
            b.assert_ok(201)["plan"]["plan"][0]["action"],
            "Use the inhaler"
        );
        let repair = server.requests()[2].clone();
        let last = repair["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(last.contains("not both"), "{last}");

        let active_before = app
            .rows(
                "SELECT id, status FROM care_plans WHERE patient_id = $1 AND status = 'active'",
                care.patient_id,
            )
            .await;
        let c = app.submit_note(&care, "Rest.").await;
        c.assert_problem(502, "extraction_failed");
        assert_eq!(server.requests().len(), 6, "one try and two repairs");
        let active_after = app
            .rows(
                "SELECT id, status FROM care_plans WHERE patient_id = $1 AND status = 'active'",
                care.patient_id,
            )
            .await;
        assert_eq!(active_before, active_after, "no plan change");
        let notes = app
            .rows(
                "SELECT id, 'note' FROM notes WHERE patient_id = $1",
                care.patient_id,
            )
            .await;
        assert_eq!(notes.len(), 2);
        let calls = app
            .scalar_i64_str(
                "SELECT COUNT(*) FROM orchestration_calls WHERE pipeline = $1",
                "extract",
            )
            .await;
        assert_eq!(calls, 6);
    }
}
