//! Clinical records: the patient's profile and front-desk identity (`profiles`), visit
//! records with their addenda (`records`), prescriptions, lab orders and results (`labs`),
//! and the chart that shows them together. Who reads and writes any of it is decided by
//! `care::access`; every read of clinical data is audited.

pub mod chart;
pub mod icd10;
pub mod labs;
pub mod prescriptions;
pub mod profiles;
pub mod records;
pub mod vitals;

use serde_json::Value;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::error::Result;

/// Records one audited read of a patient's clinical data.
pub(crate) async fn audit_read(
    db: &Db,
    actor: &Actor,
    action: &'static str,
    patient_id: Uuid,
    details: Value,
) -> Result<()> {
    let mut tx = db.begin().await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action,
            subject: format!("patient:{patient_id}"),
            clinic_id: None,
            details,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
