//! Chart benchmark: a patient with 200 signed visits (each with a diagnosis and a
//! prescription), 1,000 lab values over 100 orders and 50 files, seeded through the domain
//! layer; then a doctor opens the chart again and again. Prints the median and p99 of
//! opening it (every record and addendum unsealed, one audit entry) and of opening it and
//! writing its JSON, as the HTTP handler does.
//!
//! `cargo bench --bench chart` (SQLite, a fresh file).

use std::time::{Duration, Instant};

use chrono::Utc;
use clinic::config::DatabaseUrl;
use clinic::db::Db;
use clinic::domain::actor::{Actor, Grant, Principal, Role};
use clinic::domain::clinical::{chart, files, labs, records};
use clinic::domain::clinics::doctors::{self, DoctorForm};
use clinic::domain::clinics::specialties;
use clinic::domain::identity::people::{self, NewUser};
use clinic::storage::LocalFiles;
use serde_json::json;

#[path = "world.rs"]
mod world;
use world::AnyResult;

const VISITS: usize = 200;
const ORDERS: usize = 100;
const VALUES_PER_ORDER: usize = 10;
const FILES: usize = 50;
const OPENS: usize = 300;

fn as_user(user_id: uuid::Uuid, grant: Grant) -> Actor {
    Actor::User(Principal {
        user_id,
        session_id: uuid::Uuid::nil(),
        email: String::new(),
        grants: vec![grant],
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> AnyResult<()> {
    clinic::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let db = Db::connect(&DatabaseUrl::new(url), 5).await?;
    db.migrate().await?;
    specialties::seed(&db).await?;
    let store = LocalFiles::new(dir.path().join("files"));
    let (clinic_ids, _) = world::clinics_and_doctors(&db, 1, 0, 1).await?;
    let clinic_id = clinic_ids[0];
    let mailer = clinic::notify::mail::Mailer::new(db.clone(), "Bench <b@clinic.localhost>", None)?;
    let form = DoctorForm {
        display_name: "Dr. Chart".into(),
        bio: String::new(),
        languages: vec!["en".into()],
        fee_cents: 5000,
        currency: None,
        specialties: vec![specialties::all(&db).await?[0].slug.clone()],
        email: Some("dr.chart@bench.example.org".into()),
    };
    let doctor = doctors::create(&db, &mailer, &Actor::System, clinic_id, form).await?;
    let doctor_user = doctor.user_id.ok_or("the doctor has an account")?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let patient_id = people::insert(
        &mut tx,
        NewUser {
            email: "patient@bench.example.org",
            display_name: "Bench Patient",
            password_hash: None,
            verified: true,
            language: Default::default(),
        },
        now,
    )
    .await?;
    people::insert_grant(&mut tx, patient_id, Grant::global(Role::Patient), now).await?;
    tx.commit().await?;
    let patient = as_user(patient_id, Grant::global(Role::Patient));
    doctors::select(&db, &patient, doctor.id).await?;
    let dr = as_user(doctor_user, Grant::in_clinic(Role::Doctor, clinic_id));

    println!(
        "seeding {VISITS} visits, {} lab values, {FILES} files…",
        ORDERS * VALUES_PER_ORDER
    );
    let started = Instant::now();
    let mut record_ids = Vec::new();
    for i in 0..VISITS {
        let body: records::RecordBody = serde_json::from_value(json!({
            "visited_at": now - chrono::Duration::days((VISITS - i) as i64 * 3),
            "chief_complaint": format!("Visit {i}: cough and tiredness for a few days"),
            "vitals": {"systolic_mmhg": 120 + (i % 20), "diastolic_mmhg": 80, "heart_rate_bpm": 70, "temperature_c": 36.8,
                       "weight_kg": 70, "height_cm": 170},
            "findings": "Chest clear on both sides; throat slightly red; no lymph nodes felt.",
            "diagnoses": [{"text": "Acute upper respiratory infection", "code": "J06.9"}],
            "plan": "Rest, fluids, paracetamol as needed; come back if a fever lasts more than three days.",
            "prescriptions": [{"medicine": "paracetamol", "dose": "500 mg", "route": "oral", "quantity": 20,
                               "instructions": "Up to four times a day when needed"}]
        }))?;
        let record = records::create(&db, &dr, patient_id, &body).await?;
        records::sign(&db, &dr, record.id).await?;
        record_ids.push(record.id);
    }
    for (i, record) in record_ids.iter().take(ORDERS).enumerate() {
        let order: labs::OrderBody =
            serde_json::from_value(json!({"tests": [{"name": format!("Panel {i}")}]}))?;
        let order = labs::order(&db, &dr, *record, &order).await?;
        let values: Vec<_> = (0..VALUES_PER_ORDER)
            .map(|v| json!({"code": format!("X-{v}"), "name": format!("Analyte {v}"), "value": 4.0 + v as f64,
                            "unit": "mmol/L", "low": 3.0, "high": 10.0}))
            .collect();
        let results: labs::ResultsBody = serde_json::from_value(json!({"values": values}))?;
        labs::enter_results(&db, &dr, order[0].id, &results).await?;
        labs::review(&db, &dr, order[0].id).await?;
    }
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    for (i, record) in record_ids.iter().take(FILES).enumerate() {
        files::upload(
            &db,
            &store,
            &dr,
            files::Attach::Record(*record),
            &format!("report-{i}.pdf"),
            Some("application/pdf"),
            pdf,
            1 << 20,
        )
        .await?;
    }
    println!("seeded in {:.1} s\n", started.elapsed().as_secs_f64());

    let first = chart::open(&db, &dr, patient_id).await?;
    let size = serde_json::to_vec(&first)?.len();
    println!(
        "chart: {} records, {} lab orders ({} values), {} files, {} prescriptions; {:.0} KiB of JSON",
        first.records.len(),
        first.labs.len(),
        first.labs.iter().map(|o| o.results.len()).sum::<usize>(),
        first.files,
        first.prescriptions.len(),
        size as f64 / 1024.0
    );
    let mut open = Vec::with_capacity(OPENS);
    let mut open_json = Vec::with_capacity(OPENS);
    for i in 0..OPENS {
        let t = Instant::now();
        let c = chart::open(&db, &dr, patient_id).await?;
        let opened = t.elapsed();
        let bytes = serde_json::to_vec(&c)?;
        std::hint::black_box(bytes);
        if i % 2 == 0 {
            open.push(opened);
        } else {
            open_json.push(t.elapsed());
        }
    }
    let (p50, p99) = percentiles(open);
    println!("open the chart (domain):        p50 {p50:.2} ms, p99 {p99:.2} ms");
    let (p50, p99) = percentiles(open_json);
    println!("open and write its JSON:        p50 {p50:.2} ms, p99 {p99:.2} ms");
    Ok(())
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99))
}
