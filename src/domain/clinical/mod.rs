//! Clinical records: the patient's profile and front-desk identity (`profiles`), visit
//! records with their addenda (`records`), prescriptions, lab orders and results (`labs`),
//! and the chart that shows them together. Who reads and writes any of it is decided by
//! `care::access`; every read of clinical data is audited.

pub mod chart;
pub mod files;
pub mod icd10;
pub mod labs;
pub mod prescriptions;
pub mod profiles;
pub mod records;
pub mod transcripts;
pub mod vitals;

use serde_json::Value;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::{Actor, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::care::access::{self, Treating};
use crate::error::Result;
use crate::on_db;

/// Records one audited read of a patient's clinical data.
pub(crate) async fn audit_read(
    db: &Db,
    actor: &Actor,
    action: &'static str,
    patient_id: Uuid,
    details: Value,
) -> Result<()> {
    // A read changes nothing else: its record shares a commit with others at the time.
    audit::record_alone(
        db,
        actor.user_id(),
        Entry {
            action,
            subject: format!("patient:{patient_id}"),
            clinic_id: None,
            details,
        },
    )
    .await
}

/// The caller's doctor profile at a clinic, when they hold the doctor role there.
pub(crate) async fn doctor_at(db: &Db, actor: &Actor, clinic_id: Uuid) -> Result<Option<Treating>> {
    let p = actor.principal()?;
    if !p.has_role_in(Role::Doctor, clinic_id) {
        return Ok(None);
    }
    const SQL: &str = "SELECT d.id, d.clinic_id, d.display_name, c.time_zone FROM doctors d JOIN clinics c ON c.id = d.clinic_id \
        WHERE d.user_id = $1 AND d.clinic_id = $2 AND d.deleted_at IS NULL";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Treating>(SQL)
        .bind(p.user_id)
        .bind(clinic_id)
        .fetch_optional(pool)
        .await)?)
}

/// The caller's doctor profile at `clinic_id`, when they treat the patient there; anyone
/// else is refused (audited as `action`).
pub(crate) async fn require_clinic_doctor(
    db: &Db,
    actor: &Actor,
    patient_id: Uuid,
    clinic_id: Uuid,
    action: &'static str,
) -> Result<Uuid> {
    match doctor_at(db, actor, clinic_id).await? {
        Some(doctor) => {
            access::require_read(db, actor, patient_id, clinic_id, action).await?;
            Ok(doctor.id)
        }
        None => Err(access::refuse(db, actor, action, patient_id).await),
    }
}
