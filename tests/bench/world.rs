//! The benches' shared seed: clinics in four zones, and doctors with a weekly schedule
//! (Monday to Saturday, 09:00-17:00, 30-minute slots) published for the next days.

use clinic::db::Db;
use clinic::domain::actor::Actor;
use clinic::domain::clinics::doctors::{self, DoctorForm};
use clinic::domain::clinics::specialties;
use clinic::domain::clinics::{self, ClinicApplication};
use clinic::domain::scheduling::schedules::ScheduleForm;
use clinic::domain::scheduling::slots;
use clinic::notify::mail::Mailer;
use serde_json::json;
use uuid::Uuid;

pub type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A migrated database with the specialties and one approved clinic: a fresh SQLite file
/// in `dir`, or `BENCH_DATABASE_URL` (an empty database) when it is set.
#[allow(dead_code)] // the benches that open their database otherwise
pub async fn one_clinic(dir: &tempfile::TempDir) -> AnyResult<(Db, Uuid)> {
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.path().display()));
    let db = Db::connect(&clinic::config::DatabaseUrl::new(url), 5).await?;
    db.migrate().await?;
    specialties::seed(&db).await?;
    let (clinic_ids, _) = clinics_and_doctors(&db, 1, 0, 1).await?;
    let clinic_id = *clinic_ids.first().ok_or("a clinic")?;
    Ok((db, clinic_id))
}

const ZONES: [&str; 4] = [
    "Europe/Lisbon",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Tokyo",
];

/// `clinic_count` approved clinics offering every specialty and `doctor_count` doctors
/// spread over them and over the specialties, each with `days` days of slots: the ids.
pub async fn clinics_and_doctors(
    db: &Db,
    clinic_count: usize,
    doctor_count: usize,
    days: i64,
) -> AnyResult<(Vec<Uuid>, Vec<Uuid>)> {
    let system = Actor::System;
    let mailer = Mailer::new(db.clone(), "Bench <bench@clinic.localhost>", None)?;
    let catalogue = specialties::all(db).await?;
    let mut clinic_ids = Vec::new();
    for i in 0..clinic_count {
        let application = ClinicApplication {
            name: format!("Bench Clinic {i}"),
            address: format!("{i} Bench Street"),
            time_zone: ZONES[i % ZONES.len()].into(),
            contact_name: "Admin".into(),
            contact_email: format!("admin{i}@bench.example.org"),
            contact_phone: "+351 210 000 000".into(),
            specialties: catalogue.iter().map(|s| s.slug.clone()).collect(),
        };
        let request = clinics::apply(db, &system, application).await?;
        clinic_ids.push(clinics::approve(db, &mailer, &system, request.id).await?.id);
    }
    let rules = json!(["mon", "tue", "wed", "thu", "fri", "sat"].map(|d| json!({
        "weekday": d, "start": "09:00", "end": "17:00"
    })));
    let schedule: ScheduleForm = serde_json::from_value(json!({
        "rules": rules, "slot_minutes": 30, "min_notice_minutes": 60, "horizon_days": days
    }))?;
    let mut doctor_ids = Vec::with_capacity(doctor_count);
    for i in 0..doctor_count {
        let specialty = &catalogue[i % catalogue.len()];
        let form = DoctorForm {
            display_name: format!("Dr. Bench {i}"),
            bio: String::new(),
            languages: vec!["en".into()],
            fee_cents: 5000 + (i as i64 % 10) * 1000,
            currency: None,
            specialties: vec![specialty.slug.clone()],
            email: None,
        };
        let doctor =
            doctors::create(db, &mailer, &system, clinic_ids[i % clinic_count], form).await?;
        slots::set_schedule(db, &system, doctor.id, schedule.clone()).await?;
        doctor_ids.push(doctor.id);
    }
    Ok((clinic_ids, doctor_ids))
}
