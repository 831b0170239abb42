//! Staff shifts over the API: opening hours, weekly shifts with exceptions, coverage gaps
//! and conflicts with bookings (reported, never moved), overlaps refused, DST kept, and
//! who may see and change what. Also the desk's hold and the waitlist for a patient.

use chrono::{Datelike, Duration, NaiveDate, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    shifts_show_gaps_and_report_visits_left_without_their_doctor,
    shifts_keep_local_hours_across_daylight_saving,
    the_desk_holds_a_time_books_it_for_the_patient_and_waitlists_them,
);

const WEEK: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn weekday_of(date: NaiveDate) -> &'static str {
    WEEK[date.weekday().num_days_from_monday() as usize]
}

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> crate::helpers::Answer {
    app.request(Method::PUT, path, Some(token), Some(body))
        .await
}

/// Tomorrow at the clinic (Lisbon).
fn tomorrow() -> NaiveDate {
    (Utc::now().with_timezone(&chrono_tz::Europe::Lisbon) + Duration::days(1)).date_naive()
}

async fn shifts_show_gaps_and_report_visits_left_without_their_doctor(app: TestApp) {
    let clinic = app.approved_clinic("Shift Clinic", "Europe/Lisbon").await;
    let other = app.approved_clinic("Other Clinic", "Europe/Lisbon").await;
    let rules: Vec<Value> = WEEK
        .iter()
        .map(|d| json!({"weekday": d, "start": "09:00", "end": "17:00"}))
        .collect();
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Rota", json!(rules), 0)
        .await;
    let (desk_id, desk) = app
        .user_with(
            "desk@shift.example.org",
            &[json!({"role": "clinic_staff", "clinic_id": clinic.id})],
        )
        .await;
    let (patient_id, _) = app.user_with("pat@shift.example.org", &[]).await;
    let hours_path = format!("/api/v1/clinics/{}/opening-hours", clinic.id);
    // A specialty named twice, even apart, counts once.
    let twice = app
        .post_as(&clinic.admin, &format!("/api/v1/clinics/{}/doctors", clinic.id),
            json!({"display_name": "Dr. Twice", "specialties": ["dermatology", "cardiology", "dermatology"]}))
        .await;
    assert_eq!(
        twice.assert_ok(201)["specialties"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Opening hours: checked, then saved; public to read.
    put(&app, &clinic.admin, &hours_path, json!({"hours": [{"weekday": "mon", "start": "20:00", "end": "08:00"}, {"weekday": "funday", "start": "08:00", "end": "09:00"}]}))
        .await
        .assert_problem(422, "validation_failed");
    put(&app, &desk, &hours_path, json!({"hours": []}))
        .await
        .assert_problem(403, "forbidden");
    let all_days: Vec<Value> = WEEK
        .iter()
        .map(|d| json!({"weekday": d, "start": "08:00", "end": "20:00"}))
        .collect();
    put(&app, &clinic.admin, &hours_path, json!({"hours": all_days}))
        .await
        .assert_ok(200);
    assert_eq!(
        app.get(&hours_path)
            .await
            .assert_ok(200)
            .as_array()
            .unwrap()
            .len(),
        7
    );

    // The desk works 08:00–14:00 and the doctor 09:00–13:00, every day.
    let shifts_path = format!("/api/v1/clinics/{}/shifts", clinic.id);
    let mut doctor_shift = std::collections::HashMap::new();
    for day in WEEK {
        app.post_as(&clinic.admin, &shifts_path, json!({"role": "clinic_staff", "user_id": desk_id, "weekday": day, "start": "08:00", "end": "14:00"}))
            .await
            .assert_ok(201);
        let made = app
            .post_as(&clinic.admin, &shifts_path, json!({"role": "doctor", "doctor_id": doctor, "weekday": day, "start": "09:00", "end": "13:00"}))
            .await;
        doctor_shift.insert(
            day,
            made.assert_ok(201)["shift"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Overlaps with the same person's shifts are refused, overnight ones included.
    app.post_as(&clinic.admin, &shifts_path, json!({"role": "clinic_staff", "user_id": desk_id, "weekday": "tue", "start": "13:00", "end": "16:00"}))
        .await
        .assert_problem(422, "validation_failed");
    let night = app
        .post_as(&clinic.admin, &shifts_path, json!({"role": "clinic_staff", "user_id": desk_id, "weekday": "sun", "start": "22:00", "end": "06:00"}))
        .await;
    assert_eq!(night.assert_ok(201)["shift"]["overnight"], true);
    let clash = app
        .post_as(&clinic.admin, &shifts_path, json!({"role": "clinic_staff", "user_id": desk_id, "weekday": "mon", "start": "05:00", "end": "07:00"}))
        .await;
    clash.assert_problem(422, "validation_failed");
    assert!(
        clash.body.to_string().contains("overlaps"),
        "{:#}",
        clash.body
    );
    // Someone without the role here, a doctor of another clinic, other people's clinics.
    app.post_as(&clinic.admin, &shifts_path, json!({"role": "clinic_staff", "user_id": patient_id, "weekday": "mon", "start": "08:00", "end": "09:00"}))
        .await
        .assert_problem(422, "validation_failed");
    let foreign = app
        .doctor_with_schedule(&other, "Dr. Elsewhere", TestApp::all_week(), 0)
        .await;
    app.post_as(&clinic.admin, &shifts_path, json!({"role": "doctor", "doctor_id": foreign, "weekday": "mon", "start": "08:00", "end": "09:00"}))
        .await
        .assert_problem(422, "validation_failed");
    app.post_as(&desk, &shifts_path, json!({"role": "clinic_staff", "user_id": desk_id, "weekday": "mon", "start": "15:00", "end": "16:00"}))
        .await
        .assert_problem(403, "forbidden");
    app.get_as(&other.admin, &shifts_path)
        .await
        .assert_problem(403, "forbidden");
    let some_shift = doctor_shift["mon"].clone();
    app.request(
        Method::DELETE,
        &format!("/api/v1/shifts/{some_shift}"),
        Some(&other.admin),
        None,
    )
    .await
    .assert_problem(404, "not_found");

    // A visit tomorrow at 15:00, outside the doctor's 09:00–13:00 shift.
    let day = tomorrow();
    let slots = app
        .free_slots(
            doctor,
            &format!("from={day}&to={}", day + Duration::days(1)),
        )
        .await;
    let at_three = slots
        .iter()
        .find(|s| s["local_minute"] == 15 * 60)
        .expect("a 15:00 slot")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let booked = app
        .post_as(
            &clinic.admin,
            &format!("/api/v1/slots/{at_three}/book"),
            json!({"patient_id": patient_id, "reason": "follow-up"}),
        )
        .await;
    // The clinic does not know this patient yet: staff cannot book for them.
    booked.assert_problem(404, "not_found");
    let pat = app.access_token("pat@shift.example.org").await;
    app.post_as(&pat, &format!("/api/v1/slots/{at_three}/hold"), json!({}))
        .await
        .assert_ok(201);
    let appointment = app
        .post_as(
            &pat,
            &format!("/api/v1/slots/{at_three}/confirm"),
            json!({"reason": "follow-up"}),
        )
        .await;
    let appointment = appointment.assert_ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Coverage for tomorrow: who is on, the gaps per role, and the conflicts.
    let coverage = app
        .get_as(
            &clinic.admin,
            &format!(
                "/api/v1/clinics/{}/shifts/coverage?from={day}&days=1",
                clinic.id
            ),
        )
        .await;
    let c = coverage.assert_ok(200);
    assert_eq!(c["hours_set"], true);
    let d = &c["days"][0];
    assert_eq!(d["date"], day.to_string());
    assert_eq!(d["open"], json!(["08:00–20:00"]));
    let gaps: Vec<(String, String, String)> = d["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["role"].as_str().unwrap().into(),
                g["start"].as_str().unwrap().into(),
                g["end"].as_str().unwrap().into(),
            )
        })
        .collect();
    let gap = |r: &str, a: &str, b: &str| (r.to_owned(), a.to_owned(), b.to_owned());
    assert_eq!(
        gaps,
        [
            gap("front_desk", "14:00", "20:00"),
            gap("doctor", "08:00", "09:00"),
            gap("doctor", "13:00", "20:00")
        ]
    );
    let names: Vec<&str> = d["on_shift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Dr. Rota") && names.len() == 2, "{names:?}");
    let conflicts = c["conflicts"].as_array().unwrap();
    let visit = conflicts
        .iter()
        .find(|k| k["kind"] == "appointment_without_doctor")
        .expect("the 15:00 visit is reported");
    assert_eq!(visit["appointment_id"], appointment.as_str());
    assert_eq!(
        (visit["start"].as_str(), visit["end"].as_str()),
        (Some("15:00"), Some("15:30"))
    );
    // The free times 13:00–17:00 around it are bookable outside the shift, in two runs.
    let runs: Vec<(&str, &str, u64)> = conflicts
        .iter()
        .filter(|k| k["kind"] == "bookable_outside_shift")
        .map(|k| {
            (
                k["start"].as_str().unwrap(),
                k["end"].as_str().unwrap(),
                k["slots"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(runs, [("13:00", "15:00", 4), ("15:30", "17:00", 3)]);
    // The desk sees the coverage too; its own shifts under /me.
    app.get_as(
        &desk,
        &format!("/api/v1/clinics/{}/shifts/coverage?days=1", clinic.id),
    )
    .await
    .assert_ok(200);
    let mine = app.get_as(&desk, "/api/v1/me/shifts?days=7").await;
    let mine = mine.assert_ok(200).as_array().unwrap().clone();
    assert!(mine.len() >= 7, "{mine:?}");
    assert!(mine.iter().all(|o| o["user_id"] == desk_id.to_string()));
    app.get_as(
        &desk,
        &format!("/api/v1/clinics/{}/shifts/coverage?days=100", clinic.id),
    )
    .await
    .assert_problem(400, "invalid_query");

    // Widening tomorrow's doctor shift to 17:00 covers the visit.
    let wd = weekday_of(day);
    let shift = &doctor_shift[wd];
    let widened = put(&app, &clinic.admin, &format!("/api/v1/shifts/{shift}"), json!({"role": "doctor", "doctor_id": doctor, "weekday": wd, "start": "09:00", "end": "17:00"})).await;
    assert_eq!(widened.assert_ok(200)["uncovered_appointments"], json!([]));
    // A day off tomorrow leaves it uncovered: reported, and the visit stays booked.
    let off = app
        .post_as(
            &clinic.admin,
            &format!("/api/v1/shifts/{shift}/exceptions"),
            json!({"date": day, "reason": "training"}),
        )
        .await;
    let uncovered = off.assert_ok(200)["uncovered_appointments"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(uncovered.len(), 1, "{uncovered:?}");
    assert_eq!(uncovered[0]["appointment_id"], appointment.as_str());
    assert_eq!(off.body["shift"]["exceptions"][0]["date"], day.to_string());
    let still = app
        .get_as(&pat, &format!("/api/v1/appointments/{appointment}"))
        .await;
    assert_eq!(still.assert_ok(200)["status"], "booked");
    let after = app
        .get_as(
            &clinic.admin,
            &format!(
                "/api/v1/clinics/{}/shifts/coverage?from={day}&days=1",
                clinic.id
            ),
        )
        .await;
    assert_eq!(
        after.assert_ok(200)["days"][0]["on_shift"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // An exception on a day the shift does not fall on is refused; clearing restores it.
    app.post_as(
        &clinic.admin,
        &format!("/api/v1/shifts/{shift}/exceptions"),
        json!({"date": day + Duration::days(1)}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let back = app
        .request(
            Method::DELETE,
            &format!("/api/v1/shifts/{shift}/exceptions/{day}"),
            Some(&clinic.admin),
            None,
        )
        .await;
    assert_eq!(back.assert_ok(200)["uncovered_appointments"], json!([]));
    // Removing the shift leaves the visit uncovered again.
    let gone = app
        .request(
            Method::DELETE,
            &format!("/api/v1/shifts/{shift}"),
            Some(&clinic.admin),
            None,
        )
        .await;
    assert_eq!(gone.assert_ok(200)["shift"], Value::Null);
    assert_eq!(
        gone.body["uncovered_appointments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Every change is in the audit log.
    let audited = app
        .scalar_i64_str("SELECT COUNT(*) FROM audit WHERE action LIKE $1", "shift.%")
        .await;
    assert!(audited >= 17, "{audited}");
}

async fn shifts_keep_local_hours_across_daylight_saving(app: TestApp) {
    let clinic = app.approved_clinic("Summer Clinic", "Europe/Lisbon").await;
    let (desk_id, _) = app
        .user_with(
            "desk@summer.example.org",
            &[json!({"role": "clinic_staff", "clinic_id": clinic.id})],
        )
        .await;
    let shifts_path = format!("/api/v1/clinics/{}/shifts", clinic.id);
    for day in WEEK {
        app.post_as(&clinic.admin, &shifts_path, json!({"role": "clinic_staff", "user_id": desk_id, "weekday": day, "start": "08:00", "end": "14:00"}))
            .await
            .assert_ok(201);
    }
    // The clocks go forward on Sunday 28 March 2027 in Lisbon (UTC+0 → UTC+1).
    let coverage = app
        .get_as(
            &clinic.admin,
            &format!(
                "/api/v1/clinics/{}/shifts/coverage?from=2027-03-27&days=3",
                clinic.id
            ),
        )
        .await;
    let days = coverage.assert_ok(200)["days"].as_array().unwrap().clone();
    let start = |i: usize| {
        days[i]["on_shift"][0]["starts_at"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let local = |i: usize| days[i]["on_shift"][0]["start"].as_str().unwrap().to_owned();
    assert!(start(0).starts_with("2027-03-27T08:00:00"), "{}", start(0));
    assert!(start(2).starts_with("2027-03-29T07:00:00"), "{}", start(2));
    assert_eq!((local(0), local(2)), ("08:00".into(), "08:00".into()));
    // Without opening hours there are no gaps to show, and it says so.
    assert_eq!(coverage.body["hours_set"], false);
    assert_eq!(days[0]["gaps"], json!([]));
    let _ = Uuid::nil();
}

async fn the_desk_holds_a_time_books_it_for_the_patient_and_waitlists_them(app: TestApp) {
    let clinic = app.approved_clinic("Desk Clinic", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Desk", TestApp::all_week(), 0)
        .await;
    let (_, desk) = app
        .user_with(
            "desk@desk.example.org",
            &[json!({"role": "clinic_staff", "clinic_id": clinic.id})],
        )
        .await;
    let (patient_id, pat) = app.user_with("pat@desk.example.org", &[]).await;
    let (_, other) = app.user_with("other@desk.example.org", &[]).await;
    let day = tomorrow();
    let slots = app
        .free_slots(
            doctor,
            &format!("from={day}&to={}", day + Duration::days(1)),
        )
        .await;
    let (first, second) = (
        slots[0]["id"].as_str().unwrap(),
        slots[1]["id"].as_str().unwrap(),
    );
    // The patient books once (the clinic now knows them), then the desk books again.
    app.post_as(&pat, &format!("/api/v1/slots/{first}/hold"), json!({}))
        .await
        .assert_ok(201);
    app.post_as(&pat, &format!("/api/v1/slots/{first}/confirm"), json!({}))
        .await
        .assert_ok(201);
    let held = app
        .post_as(
            &desk,
            &format!("/api/v1/slots/{second}/desk-hold"),
            json!({}),
        )
        .await;
    held.assert_ok(201);
    // Nobody else takes the held time meanwhile, patients nor other desks' bookings.
    app.post_as(&other, &format!("/api/v1/slots/{second}/hold"), json!({}))
        .await
        .assert_problem(409, "slot_taken");
    app.post_as(
        &clinic.admin,
        &format!("/api/v1/slots/{second}/book"),
        json!({"patient_id": patient_id}),
    )
    .await
    .assert_problem(409, "slot_taken");
    // Patients cannot hold for the desk.
    app.post_as(
        &pat,
        &format!(
            "/api/v1/slots/{}/desk-hold",
            slots[2]["id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await
    .assert_problem(403, "forbidden");
    let booked = app
        .post_as(
            &desk,
            &format!("/api/v1/slots/{second}/book"),
            json!({"patient_id": patient_id, "reason": "by phone"}),
        )
        .await;
    assert_eq!(booked.assert_ok(201)["patient_id"], patient_id.to_string());
    // Waitlist for the patient, once; not for a patient the clinic does not know.
    let path = format!("/api/v1/patients/{patient_id}/waitlist");
    app.post_as(
        &desk,
        &path,
        json!({"doctor_id": doctor, "note": "mornings"}),
    )
    .await
    .assert_ok(201);
    app.post_as(&desk, &path, json!({"doctor_id": doctor}))
        .await
        .assert_problem(409, "conflict");
    let (stranger, _) = app.user_with("stranger@desk.example.org", &[]).await;
    app.post_as(
        &desk,
        &format!("/api/v1/patients/{stranger}/waitlist"),
        json!({"doctor_id": doctor}),
    )
    .await
    .assert_problem(404, "not_found");
    app.post_as(&pat, &path, json!({"doctor_id": doctor}))
        .await
        .assert_problem(403, "forbidden");
}
