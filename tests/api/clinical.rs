//! Clinical records over the API: the patient's profile and QR identity at the front desk,
//! patient search, visit records (draft → signed → addenda, removal), prescriptions that
//! become reminders, lab orders and results with abnormal flags, the chart, and who may
//! read or write each of them.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::care::Care;
use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    a_doctor_drafts_signs_and_amends_a_visit_record_and_the_patient_reads_it_once_signed,
    bad_clinical_input_is_refused_by_field_and_nothing_is_written,
    only_the_patients_doctors_read_records_and_another_clinic_can_neither_read_nor_write,
    lab_orders_move_through_their_steps_flag_abnormal_values_and_tell_the_patient_once_reviewed,
    a_patient_keeps_a_profile_and_the_front_desk_finds_them_by_qr_code_or_search,
    a_walk_in_is_recorded_and_a_removed_record_leaves_every_normal_read,
    files_are_what_their_bytes_say_sealed_at_rest_and_served_only_as_downloads,
);

impl TestApp {
    pub async fn count(&self, sql: &'static str, arg: Uuid) -> i64 {
        clinic::on_db!(&self.db, |pool| sqlx::query_scalar::<_, i64>(sql)
            .bind(arg)
            .fetch_one(pool)
            .await)
        .expect(sql)
    }

    async fn put_as(&self, token: &str, path: &str, body: Value) -> crate::helpers::Answer {
        self.request(Method::PUT, path, Some(token), Some(body))
            .await
    }

    async fn new_record(&self, care: &Care, body: Value) -> crate::helpers::Answer {
        self.post_as(
            &care.doctor,
            &format!("/api/v1/patients/{}/records", care.patient_id),
            body,
        )
        .await
    }
}

fn a_visit(care: &Care) -> Value {
    json!({
        "appointment_id": care.appointment,
        "chief_complaint": "Wheezing at night for two weeks",
        "vitals": {"systolic_mmhg": 128, "diastolic_mmhg": 82, "heart_rate_bpm": 76, "temperature_c": 36.8,
                   "spo2_percent": 96, "weight_kg": 70, "height_cm": 175},
        "findings": "Expiratory wheeze, both lungs",
        "diagnoses": [{"text": "Asthma", "code": "j459"}],
        "plan": "Inhaled salbutamol as needed; review in two weeks",
        "follow_up_days": 3,
        "prescriptions": [
            {"medicine": "amoxicillin", "dose": "500 mg", "route": "oral", "times_per_day": 2, "duration_days": 7,
             "quantity": 14},
            {"medicine": "salbutamol", "dose": "100 mcg", "route": "inhaled", "quantity": 1, "refills": 2,
             "instructions": "Two puffs when short of breath"}
        ]
    })
}

async fn a_doctor_drafts_signs_and_amends_a_visit_record_and_the_patient_reads_it_once_signed(
    app: TestApp,
) {
    let care = app.care_setup().await;
    let created = app.new_record(&care, a_visit(&care)).await;
    let record = created.assert_ok(201).clone();
    let id = record["id"].as_str().unwrap().to_owned();
    assert_eq!(record["status"], "draft");
    assert_eq!(record["kind"], "in_person");
    assert_eq!(record["vitals"]["bmi"], 22.9);
    assert_eq!(record["diagnoses"][0]["code"], "J45.9");
    assert_eq!(record["diagnoses"][0]["code_title"], "Asthma, unspecified");
    assert_eq!(record["prescriptions"].as_array().unwrap().len(), 2);

    // A draft is the doctor's: the patient does not see it yet.
    let patient_list = format!("/api/v1/patients/{}/records", care.patient_id);
    let mine = app.get_as(&care.patient, &patient_list).await;
    assert_eq!(mine.assert_ok(200).as_array().unwrap().len(), 0);
    app.get_as(&care.patient, &format!("/api/v1/records/{id}"))
        .await
        .assert_problem(404, "not_found");

    // The draft is edited; an appointment cannot get a second record.
    let mut edited = a_visit(&care);
    edited["findings"] = json!("Expiratory wheeze, worse on the left");
    let updated = app
        .put_as(&care.doctor, &format!("/api/v1/records/{id}"), edited)
        .await;
    assert_eq!(
        updated.assert_ok(200)["findings"],
        "Expiratory wheeze, worse on the left"
    );
    app.new_record(&care, a_visit(&care))
        .await
        .assert_problem(409, "conflict");

    // Signing: the regular prescription becomes reminders, the follow-up a suggested time.
    let signed = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/records/{id}/sign"),
            json!({}),
        )
        .await;
    let signed = signed.assert_ok(200).clone();
    assert_eq!(signed["record"]["status"], "signed");
    assert!(signed["plan_id"].is_string(), "{signed:#}");
    assert_eq!(signed["follow_up"]["kind"], "suggested", "{signed:#}");
    const SUGGESTED: &str =
        "SELECT COUNT(*) FROM outbox WHERE kind = 'follow_up_suggested' AND user_id = $1";
    assert_eq!(app.count(SUGGESTED, care.patient_id).await, 1);
    let reminders = app.get_as(&care.patient, "/api/v1/reminders").await;
    let reminders = reminders.assert_ok(200).as_array().unwrap().clone();
    assert!(
        reminders.iter().any(|r| r["action"]
            .as_str()
            .unwrap_or("")
            .contains("amoxicillin 500 mg")),
        "{reminders:#?}"
    );

    // A signed record is never edited nor signed again; it is amended.
    app.post_as(
        &care.doctor,
        &format!("/api/v1/records/{id}/sign"),
        json!({}),
    )
    .await
    .assert_problem(409, "record_signed");
    app.put_as(
        &care.doctor,
        &format!("/api/v1/records/{id}"),
        a_visit(&care),
    )
    .await
    .assert_problem(409, "record_signed");
    let amended = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/records/{id}/addenda"),
            json!({"reason": "Spirometry came back", "text": "FEV1 78% of predicted"}),
        )
        .await;
    let amended = amended.assert_ok(201);
    assert_eq!(amended["addenda"][0]["reason"], "Spirometry came back");
    assert_eq!(amended["findings"], "Expiratory wheeze, worse on the left");

    // The patient reads the signed record, its prescriptions and the addendum.
    let mine = app.get_as(&care.patient, &patient_list).await;
    let mine = mine.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["addenda"].as_array().unwrap().len(), 1);
    let prescriptions = app
        .get_as(
            &care.patient,
            &format!("/api/v1/patients/{}/prescriptions", care.patient_id),
        )
        .await;
    let prescriptions = prescriptions.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(prescriptions.len(), 2);
    assert!(prescriptions.iter().all(|p| p["signed_at"].is_string()));

    // Narrative text is sealed at rest; reads are audited.
    const RAW: &str = "SELECT sealed FROM visit_records WHERE id = $1";
    let raw: Vec<u8> = clinic::on_db!(&app.db, |pool| sqlx::query_scalar(RAW)
        .bind(id.parse::<Uuid>().unwrap())
        .fetch_one(pool)
        .await)
    .unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("wheeze"));
    const READS: &str = "SELECT COUNT(*) FROM audit WHERE action = 'record.read' AND actor_id = $1";
    assert!(app.count(READS, care.patient_id).await >= 1);
}

async fn bad_clinical_input_is_refused_by_field_and_nothing_is_written(app: TestApp) {
    let care = app.care_setup().await;
    let mut hot = a_visit(&care);
    hot["vitals"]["temperature_c"] = json!(400);
    let refused = app.new_record(&care, hot).await;
    refused.assert_problem(422, "validation_failed");
    assert!(format!("{}", refused.body).contains("vitals.temperature_c"));

    let mut unknown = a_visit(&care);
    unknown["diagnoses"] = json!([{"text": "Asthma", "code": "J45.99"}]);
    let refused = app.new_record(&care, unknown).await;
    refused.assert_problem(422, "validation_failed");
    assert!(format!("{}", refused.body).contains("diagnoses[0].code"));

    let mut both = a_visit(&care);
    both["prescriptions"][0]["every_hours"] = json!(12);
    let refused = app.new_record(&care, both).await;
    refused.assert_problem(422, "validation_failed");
    assert!(format!("{}", refused.body).contains("prescriptions[0].every_hours"));

    let mut stray = a_visit(&care);
    stray["vitals"]["pulse"] = json!(70);
    let refused = app.new_record(&care, stray).await;
    assert_eq!(refused.status.as_u16(), 422, "{:#}", refused.body);

    const RECORDS: &str = "SELECT COUNT(*) FROM visit_records WHERE patient_id = $1";
    const PRESCRIPTIONS: &str = "SELECT COUNT(*) FROM prescriptions WHERE patient_id = $1";
    assert_eq!(app.count(RECORDS, care.patient_id).await, 0);
    assert_eq!(app.count(PRESCRIPTIONS, care.patient_id).await, 0);
}

/// A second clinic with its own doctor (signed in), who has never seen the patient.
async fn other_clinic_doctor(app: &TestApp) -> (Uuid, String) {
    let clinic = app.approved_clinic("Other Clinic", "Europe/Lisbon").await;
    app.verified_patient("dr.other@example.org").await;
    let created = app
        .post_as(
            &clinic.admin,
            &format!("/api/v1/clinics/{}/doctors", clinic.id),
            json!({"display_name": "Dr. Other", "email": "dr.other@example.org", "languages": ["en"],
                   "fee_cents": 5000, "specialties": ["dermatology"]}),
        )
        .await;
    created.assert_ok(201);
    let token = app.access_token("dr.other@example.org").await;
    assert_eq!(app.accept_invitations(&token).await, 1);
    (clinic.id, app.access_token("dr.other@example.org").await)
}

async fn only_the_patients_doctors_read_records_and_another_clinic_can_neither_read_nor_write(
    app: TestApp,
) {
    let care = app.care_setup().await;
    let id = app.new_record(&care, a_visit(&care)).await.assert_ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_as(
        &care.doctor,
        &format!("/api/v1/records/{id}/sign"),
        json!({}),
    )
    .await
    .assert_ok(200);
    let (_, other) = other_clinic_doctor(&app).await;
    let patient = care.patient_id;
    for path in [
        format!("/api/v1/patients/{patient}/records"),
        format!("/api/v1/patients/{patient}/chart"),
        format!("/api/v1/patients/{patient}/labs"),
        format!("/api/v1/patients/{patient}/prescriptions"),
        format!("/api/v1/records/{id}"),
    ] {
        app.get_as(&other, &path)
            .await
            .assert_problem(403, "forbidden");
    }
    // Nor write: a walk-in for a patient their clinic does not know, an order on the record.
    app.post_as(
        &other,
        &format!("/api/v1/patients/{patient}/records"),
        json!({"chief_complaint": "Rash"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(
        &other,
        &format!("/api/v1/records/{id}/lab-orders"),
        json!({"tests": [{"code": "4548-4"}]}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(
        &other,
        &format!("/api/v1/records/{id}/addenda"),
        json!({"reason": "Not my patient", "text": "x"}),
    )
    .await
    .assert_problem(403, "forbidden");
    // The clinic's admin is staff: the administrative profile, nothing clinical.
    app.get_as(
        &care.clinic.admin,
        &format!("/api/v1/patients/{patient}/records"),
    )
    .await
    .assert_problem(403, "forbidden");
    let profile = app
        .get_as(
            &care.clinic.admin,
            &format!("/api/v1/patients/{patient}/profile"),
        )
        .await;
    let profile = profile.assert_ok(200);
    assert!(profile["clinical"].is_null(), "{profile:#}");
    // The patient's own doctor reads the chart.
    let chart = app
        .get_as(&care.doctor, &format!("/api/v1/patients/{patient}/chart"))
        .await;
    let chart = chart.assert_ok(200);
    assert_eq!(chart["records"].as_array().unwrap().len(), 1);
    assert_eq!(chart["prescriptions"].as_array().unwrap().len(), 2);
    assert!(chart["profile"]["clinical"].is_object());
    // Each refusal was audited.
    const DENIED: &str = "SELECT COUNT(*) FROM audit WHERE action = 'record.read' \
        AND details LIKE '%denied%' AND actor_id = (SELECT user_id FROM doctors WHERE display_name = 'Dr. Other' AND id <> $1)";
    assert!(app.count(DENIED, care.doctor_id).await >= 1);
}

async fn lab_orders_move_through_their_steps_flag_abnormal_values_and_tell_the_patient_once_reviewed(
    app: TestApp,
) {
    let care = app.care_setup().await;
    let id = app.new_record(&care, a_visit(&care)).await.assert_ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let catalogue = app.get("/api/v1/lab-tests").await;
    assert!(
        catalogue
            .assert_ok(200)
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["code"] == "57698-3")
    );
    let ordered = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/records/{id}/lab-orders"),
            json!({"tests": [{"code": "57698-3"}, {"name": "Urine culture"}]}),
        )
        .await;
    let ordered = ordered.assert_ok(201).as_array().unwrap().clone();
    assert_eq!(ordered.len(), 2);
    let lipids = ordered
        .iter()
        .find(|o| o["test_code"] == "57698-3")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_as(
        &care.doctor,
        &format!("/api/v1/records/{id}/lab-orders"),
        json!({"tests": [{"code": "99999-9"}]}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Steps in order only.
    app.post_as(
        &care.doctor,
        &format!("/api/v1/lab-orders/{lipids}/review"),
        json!({}),
    )
    .await
    .assert_problem(409, "invalid_transition");
    let collected = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/lab-orders/{lipids}/collected"),
            json!({}),
        )
        .await;
    assert_eq!(collected.assert_ok(200)["status"], "collected");
    let resulted = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/lab-orders/{lipids}/results"),
            json!({"values": [
                {"code": "2093-3", "value": 185},
                {"code": "13457-7", "value": 190},
                {"code": "2085-9", "value": 52},
                {"code": "2571-8", "value": 120.5}
            ]}),
        )
        .await;
    let resulted = resulted.assert_ok(200).clone();
    assert_eq!(resulted["status"], "resulted");
    assert_eq!(resulted["abnormal"], true);
    let ldl = resulted["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["code"] == "13457-7")
        .unwrap()
        .clone();
    assert_eq!(ldl["flag"], "high");
    assert_eq!(ldl["unit"], "mg/dL");
    assert_eq!(ldl["ref_high"], 130.0);
    const ABNORMAL: &str = "SELECT COUNT(*) FROM outbox WHERE kind = 'lab_abnormal' AND user_id = \
        (SELECT user_id FROM doctors WHERE id = $1)";
    assert_eq!(app.count(ABNORMAL, care.doctor_id).await, 1);
    app.post_as(
        &care.doctor,
        &format!("/api/v1/lab-orders/{lipids}/results"),
        json!({"values": [{"code": "2093-3", "value": 150}]}),
    )
    .await
    .assert_problem(409, "invalid_transition");

    // The patient sees the order, not its values, until the doctor has reviewed them.
    let labs_path = format!("/api/v1/patients/{}/labs", care.patient_id);
    let before = app.get_as(&care.patient, &labs_path).await;
    let before = before.assert_ok(200).as_array().unwrap().clone();
    let mine = before.iter().find(|o| o["id"] == lipids.as_str()).unwrap();
    assert_eq!(mine["results"].as_array().unwrap().len(), 0);
    let reviewed = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/lab-orders/{lipids}/review"),
            json!({}),
        )
        .await;
    assert_eq!(reviewed.assert_ok(200)["status"], "reviewed");
    const READY: &str =
        "SELECT COUNT(*) FROM outbox WHERE kind = 'lab_results_ready' AND user_id = $1";
    assert_eq!(app.count(READY, care.patient_id).await, 1);
    let after = app.get_as(&care.patient, &labs_path).await;
    let after = after.assert_ok(200).as_array().unwrap().clone();
    let mine = after.iter().find(|o| o["id"] == lipids.as_str()).unwrap();
    assert_eq!(mine["results"].as_array().unwrap().len(), 4);
    assert_eq!(mine["abnormal"], true);
    // The chart counts the abnormal order.
    let chart = app
        .get_as(
            &care.doctor,
            &format!("/api/v1/patients/{}/chart", care.patient_id),
        )
        .await;
    assert_eq!(chart.assert_ok(200)["abnormal_labs"], 1);
}

async fn a_patient_keeps_a_profile_and_the_front_desk_finds_them_by_qr_code_or_search(
    app: TestApp,
) {
    let care = app.care_setup().await;
    let profile = json!({
        "date_of_birth": "1984-03-09",
        "sex": "female",
        "blood_group": "O-",
        "insurance_id": "PT-123456",
        "emergency_contacts": [{"name": "Rui Silva", "relation": "brother", "phone": "+351912345678"}],
        "clinical": {"allergies": ["penicillin"], "chronic_conditions": ["asthma"],
                     "medical_history": "Appendectomy in 2001", "current_medication": ["salbutamol"]},
        "language": "pt"
    });
    let saved = app
        .put_as(&care.patient, "/api/v1/me/profile", profile.clone())
        .await;
    let saved = saved.assert_ok(200);
    assert_eq!(saved["blood_group"], "O-");
    assert_eq!(saved["language"], "pt");
    assert_eq!(saved["clinical"]["allergies"][0], "penicillin");
    let mut future = profile.clone();
    future["date_of_birth"] = json!("2199-01-01");
    app.put_as(&care.patient, "/api/v1/me/profile", future)
        .await
        .assert_problem(422, "validation_failed");

    // The QR code: an SVG or PNG image of a sealed token, not the user id.
    let client = reqwest::Client::new();
    let svg = client
        .get(app.url("/api/v1/me/qr"))
        .bearer_auth(&care.patient)
        .send()
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    let png = client
        .get(app.url("/api/v1/me/qr?format=png"))
        .bearer_auth(&care.patient)
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(&png.bytes().await.unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    let token = app
        .get_as(&care.patient, "/api/v1/me/qr?format=json")
        .await
        .str("token");
    assert!(!token.contains(&care.patient_id.to_string()));

    // The front desk of the patient's clinic scans it; anyone else's desk is refused.
    let (_, desk) = app
        .user_with(
            "desk@example.org",
            &[json!({"role": "clinic_staff", "clinic_id": care.clinic.id.to_string()})],
        )
        .await;
    let found = app
        .post_as(
            &desk,
            "/api/v1/patients/identify",
            json!({"clinic_id": care.clinic.id, "token": token}),
        )
        .await;
    let found = found.assert_ok(200);
    assert_eq!(found["patient_id"], care.patient_id.to_string());
    assert!(found["clinical"].is_null());
    assert_eq!(found["insurance_id"], "PT-123456");
    app.post_as(
        &care.patient,
        "/api/v1/patients/identify",
        json!({"clinic_id": care.clinic.id, "token": token}),
    )
    .await
    .assert_problem(403, "forbidden");
    let mut forged = token.clone();
    forged.replace_range(10..11, if &token[10..11] == "A" { "B" } else { "A" });
    app.post_as(
        &desk,
        "/api/v1/patients/identify",
        json!({"clinic_id": care.clinic.id, "token": forged}),
    )
    .await
    .assert_problem(422, "invalid_qr_token");
    let other = app.approved_clinic("Elsewhere", "Europe/Lisbon").await;
    let bound = app
        .get_as(
            &care.patient,
            &format!("/api/v1/me/qr?format=json&clinic_id={}", other.id),
        )
        .await
        .str("token");
    app.post_as(
        &desk,
        "/api/v1/patients/identify",
        json!({"clinic_id": care.clinic.id, "token": bound}),
    )
    .await
    .assert_problem(422, "invalid_qr_token");
    // Revoked: every earlier code is refused.
    app.request(Method::DELETE, "/api/v1/me/qr", Some(&care.patient), None)
        .await
        .assert_ok(204);
    app.post_as(
        &desk,
        "/api/v1/patients/identify",
        json!({"clinic_id": care.clinic.id, "token": token}),
    )
    .await
    .assert_problem(422, "invalid_qr_token");

    // Search among the clinic's patients: by date of birth, by name; others are absent.
    app.user_with("stranger@example.org", &[]).await;
    let search = |query: &str| {
        let path = format!("/api/v1/clinics/{}/patients?{query}", care.clinic.id);
        let desk = desk.clone();
        let app = &app;
        async move { app.get_as(&desk, &path).await }
    };
    let by_birth = search("date_of_birth=1984-03-09").await;
    let by_birth = by_birth.assert_ok(200)["patients"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(by_birth.len(), 1);
    assert_eq!(by_birth[0]["patient_id"], care.patient_id.to_string());
    let by_name = search("q=pat%40").await;
    assert_eq!(
        by_name.assert_ok(200)["patients"].as_array().unwrap().len(),
        1
    );
    let stranger = search("q=stranger").await;
    assert_eq!(
        stranger.assert_ok(200)["patients"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    search("").await.assert_problem(400, "invalid_query");
    app.get_as(
        &care.patient,
        &format!("/api/v1/clinics/{}/patients?q=pat", care.clinic.id),
    )
    .await
    .assert_problem(403, "forbidden");
}

async fn a_walk_in_is_recorded_and_a_removed_record_leaves_every_normal_read(app: TestApp) {
    let care = app.care_setup().await;
    // A patient who never booked: registered at the desk by QR code, then seen as a walk-in.
    let (walk_in, walk_in_token) = app.user_with("walkin@example.org", &[]).await;
    let (_, desk) = app
        .user_with(
            "desk2@example.org",
            &[json!({"role": "clinic_staff", "clinic_id": care.clinic.id.to_string()})],
        )
        .await;
    let path = format!("/api/v1/patients/{walk_in}/records");
    app.post_as(
        &care.doctor,
        &path,
        json!({"chief_complaint": "Cut finger"}),
    )
    .await
    .assert_problem(403, "forbidden");
    let token = app
        .get_as(&walk_in_token, "/api/v1/me/qr?format=json")
        .await
        .str("token");
    app.post_as(
        &desk,
        "/api/v1/patients/identify",
        json!({"clinic_id": care.clinic.id, "token": token}),
    )
    .await
    .assert_ok(200);
    let created = app
        .post_as(
            &care.doctor,
            &path,
            json!({"chief_complaint": "Cut finger", "vitals": {"heart_rate_bpm": 88}}),
        )
        .await;
    let created = created.assert_ok(201);
    assert_eq!(created["kind"], "walk_in");
    let id = created["id"].as_str().unwrap().to_owned();

    // Removing needs a reason; then the record is gone from every normal read.
    app.request(
        Method::DELETE,
        &format!("/api/v1/records/{id}"),
        Some(&care.doctor),
        Some(json!({"reason": ""})),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.request(
        Method::DELETE,
        &format!("/api/v1/records/{id}"),
        Some(&care.doctor),
        Some(json!({"reason": "Entered for the wrong patient"})),
    )
    .await
    .assert_ok(204);
    app.get_as(&care.doctor, &format!("/api/v1/records/{id}"))
        .await
        .assert_problem(404, "not_found");
    const LIVE: &str =
        "SELECT COUNT(*) FROM visit_records WHERE patient_id = $1 AND deleted_at IS NULL";
    const KEPT: &str = "SELECT COUNT(*) FROM visit_records WHERE patient_id = $1 \
        AND deleted_at IS NOT NULL AND deleted_reason = 'Entered for the wrong patient'";
    assert_eq!(app.count(LIVE, walk_in).await, 0);
    assert_eq!(app.count(KEPT, walk_in).await, 1);
    // System admins see it for audit.
    let removed = app
        .get_as(&care.clinic.root, "/api/v1/admin/records/removed")
        .await;
    let removed = removed.assert_ok(200).as_array().unwrap().clone();
    assert!(removed.iter().any(|r| r["id"] == id.as_str()));
    app.get_as(&care.doctor, "/api/v1/admin/records/removed")
        .await
        .assert_problem(403, "forbidden");
}

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

impl TestApp {
    /// Sends raw bytes as a file (`content_type` as declared).
    async fn send_file(
        &self,
        token: &str,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> crate::helpers::Answer {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("upload");
        crate::helpers::answer(response).await
    }

    async fn fetch_file(&self, token: &str, id: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/v1/files/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("download")
    }
}

/// Uploads a PDF to a new record and a PNG to a lab order on it; checks what the patient,
/// the doctor and another clinic's doctor can fetch. Returns the record id and the files'.
async fn files_round_trip(app: &TestApp) -> (String, String, String) {
    let care = app.care_setup().await;
    let record = app.new_record(&care, a_visit(&care)).await.assert_ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uploaded = app
        .send_file(
            &care.doctor,
            &format!("/api/v1/records/{record}/files?name=spirometry%20report.pdf"),
            "application/pdf",
            PDF.to_vec(),
        )
        .await;
    let uploaded = uploaded.assert_ok(201).clone();
    assert_eq!(uploaded["media_type"], "application/pdf");
    assert_eq!(uploaded["size"], PDF.len());
    assert_eq!(uploaded["name"], "spirometry report.pdf");
    let pdf = uploaded["id"].as_str().unwrap().to_owned();

    // Mislabelled, unknown or too large: refused, nothing kept.
    app.send_file(
        &care.doctor,
        &format!("/api/v1/records/{record}/files?name=scan.pdf"),
        "application/pdf",
        PNG.to_vec(),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    app.send_file(
        &care.doctor,
        &format!("/api/v1/records/{record}/files?name=page.html"),
        "text/html",
        b"<html><script>alert(1)</script></html>".to_vec(),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    let mut big = PDF.to_vec();
    big.resize(10 * 1024 * 1024 + 1, b' ');
    let refused = app
        .send_file(
            &care.doctor,
            &format!("/api/v1/records/{record}/files?name=big.pdf"),
            "application/pdf",
            big,
        )
        .await;
    assert_eq!(refused.status.as_u16(), 413, "{:#}", refused.body);
    const KEPT: &str = "SELECT COUNT(*) FROM clinical_files WHERE patient_id = $1";
    assert_eq!(app.count(KEPT, care.patient_id).await, 1);

    // A lab report on an order, for the patient only once the results are reviewed.
    let order = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/records/{record}/lab-orders"),
            json!({"tests": [{"code": "4548-4"}]}),
        )
        .await;
    let order = order.assert_ok(201)[0]["id"].as_str().unwrap().to_owned();
    let scan = app
        .send_file(
            &care.doctor,
            &format!("/api/v1/lab-orders/{order}/files?name=a1c.png"),
            "image/png",
            PNG.to_vec(),
        )
        .await;
    let scan = scan.assert_ok(201)["id"].as_str().unwrap().to_owned();

    // The patient reads neither before the record is signed and the results reviewed.
    assert_eq!(app.fetch_file(&care.patient, &pdf).await.status(), 404);
    app.post_as(
        &care.doctor,
        &format!("/api/v1/records/{record}/sign"),
        json!({}),
    )
    .await
    .assert_ok(200);
    let got = app.fetch_file(&care.patient, &pdf).await;
    assert_eq!(got.status(), 200);
    let headers = got.headers().clone();
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"spirometry report.pdf\""),
        "{disposition}"
    );
    assert_eq!(&got.bytes().await.unwrap()[..], PDF);
    assert_eq!(app.fetch_file(&care.patient, &scan).await.status(), 404);
    app.post_as(
        &care.doctor,
        &format!("/api/v1/lab-orders/{order}/results"),
        json!({"values": [{"code": "4548-4", "value": 6.1}]}),
    )
    .await
    .assert_ok(200);
    app.post_as(
        &care.doctor,
        &format!("/api/v1/lab-orders/{order}/review"),
        json!({}),
    )
    .await
    .assert_ok(200);
    let got = app.fetch_file(&care.patient, &scan).await;
    assert_eq!(got.status(), 200);
    assert_eq!(&got.bytes().await.unwrap()[..], PNG);
    let labs = app
        .get_as(
            &care.patient,
            &format!("/api/v1/patients/{}/labs", care.patient_id),
        )
        .await;
    assert_eq!(labs.assert_ok(200)[0]["files"][0]["id"], scan.as_str());

    // Another clinic's doctor reads nothing; every read was audited.
    let (_, other) = other_clinic_doctor(app).await;
    assert_eq!(app.fetch_file(&other, &pdf).await.status(), 403);
    const READS: &str = "SELECT COUNT(*) FROM audit WHERE action = 'file.read' AND actor_id = $1";
    assert_eq!(app.count(READS, care.patient_id).await, 2);
    (record, pdf, scan)
}

async fn files_are_what_their_bytes_say_sealed_at_rest_and_served_only_as_downloads(app: TestApp) {
    let (_, pdf, _) = files_round_trip(&app).await;
    // On disk the bytes are sealed.
    let mut stored = Vec::new();
    for entry in walk(&app.data_dir().join("uploads")) {
        stored.push(std::fs::read(entry).unwrap());
    }
    assert_eq!(stored.len(), 2);
    assert!(
        stored
            .iter()
            .all(|b| !String::from_utf8_lossy(b).contains("%PDF") && !b.starts_with(b"\x89PNG"))
    );
    // Removed: gone from reads, kept for audit.
    let doctor = app.access_token("dr.costa@example.org").await;
    app.request(
        Method::DELETE,
        &format!("/api/v1/files/{pdf}"),
        Some(&doctor),
        Some(json!({"reason": "Wrong patient's report"})),
    )
    .await
    .assert_ok(204);
    assert_eq!(app.fetch_file(&doctor, &pdf).await.status(), 404);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The same flows with the files in an S3 bucket: a real S3-compatible server (moto, from
/// PyPI; `tests/run` installs it) started by the test. Removed files are purged from the
/// bucket by the retention job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto (Python): `tests/run` installs it and runs this"]
async fn files_live_in_an_s3_bucket_when_configured() {
    clinic::install_crypto_provider();
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = std::env::var("MOTO_SERVER")
        .unwrap_or_else(|_| format!("{root}/target/fuzz-venv/bin/moto_server"));
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} is missing: `tests/run` installs moto"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if http.get(&endpoint).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "moto_server answers");
    let bucket = http
        .put(format!("{endpoint}/clinic-files"))
        .send()
        .await
        .unwrap();
    assert!(bucket.status().is_success(), "bucket created");
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        &[
            ("FILE_STORE", "s3://clinic-files/replicas"),
            ("S3_ENDPOINT", &endpoint),
            ("S3_ALLOW_HTTP", "true"),
            ("S3_ACCESS_KEY_ID", "testing"),
            ("S3_SECRET_ACCESS_KEY", "testing"),
        ],
    )
    .await;
    let (_, pdf, _) = files_round_trip(&app).await;
    assert!(
        walk(&app.data_dir().join("uploads")).is_empty(),
        "nothing on local disk"
    );
    let listing = http
        .get(format!(
            "{endpoint}/clinic-files?list-type=2&prefix=replicas/clinical/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(listing.matches("<Key>").count(), 2, "{listing}");
    let key = listing
        .split("<Key>")
        .nth(1)
        .and_then(|k| k.split("</Key>").next())
        .unwrap()
        .to_owned();
    let object = http
        .get(format!("{endpoint}/clinic-files/{key}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&object).contains("%PDF"), "sealed");

    // Removed, then past the retention period: the job takes the bytes out of the bucket.
    let doctor = app.access_token("dr.costa@example.org").await;
    app.request(
        Method::DELETE,
        &format!("/api/v1/files/{pdf}"),
        Some(&doctor),
        Some(json!({"reason": "Scanned twice"})),
    )
    .await
    .assert_ok(204);
    let later = chrono::Utc::now() + chrono::Duration::days(365 * 30);
    clinic::domain::erasure::purge_expired_records(&app.db, app.state.files.as_ref(), later)
        .await
        .unwrap();
    let listing = http
        .get(format!(
            "{endpoint}/clinic-files?list-type=2&prefix=replicas/clinical/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(listing.matches("<Key>").count(), 1, "{listing}");
    let _ = server.kill();
    let _ = server.wait();
}
