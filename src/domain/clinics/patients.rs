//! A clinic's patients: whom a clinic knows. Staff act for those patients only, and the
//! records work searches among them.

use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::error::Result;
use crate::{on_db, on_tx};

/// Whom a clinic knows, as one SQL condition with the clinic as `$1` and the patient as
/// the given expression (`"$2"`, `"u.id"`): registered at its desk, an appointment there
/// (in any state), one of its doctors chosen, or their record shared with it.
#[macro_export]
macro_rules! known_to_clinic {
    ($patient:literal) => {
        concat!(
            "(EXISTS (SELECT 1 FROM clinic_patients cp WHERE cp.clinic_id = $1 AND cp.patient_id = ", $patient, ") \
             OR EXISTS (SELECT 1 FROM appointments a WHERE a.clinic_id = $1 AND a.patient_id = ", $patient, ") \
             OR EXISTS (SELECT 1 FROM patient_doctors pd JOIN doctors d ON d.id = pd.doctor_id WHERE d.clinic_id = $1 AND pd.patient_id = ", $patient, ") \
             OR EXISTS (SELECT 1 FROM record_shares s WHERE s.clinic_id = $1 AND s.patient_id = ", $patient, "))"
        )
    };
}

const KNOWS: &str = concat!("SELECT 1 WHERE ", crate::known_to_clinic!("$2"));

/// Whether the patient has a relationship with the clinic ([`known_to_clinic!`]), inside a
/// transaction that acts on it. A clinic's staff act for such patients only; to anyone
/// else a patient the clinic does not know is as absent as one who does not exist.
pub async fn knows(tx: &mut Tx, clinic_id: Uuid, patient_id: Uuid) -> Result<bool> {
    let known: Option<i32> = on_tx!(tx, |conn| sqlx::query_scalar(KNOWS)
        .bind(clinic_id)
        .bind(patient_id)
        .fetch_optional(&mut *conn)
        .await)?;
    Ok(known.is_some())
}

/// Registers the patient at the clinic (once): the clinic knows them from then on.
pub async fn register(
    tx: &mut Tx,
    clinic_id: Uuid,
    patient_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    const SQL: &str = "INSERT INTO clinic_patients (clinic_id, patient_id, created_at) VALUES ($1, $2, $3) \
        ON CONFLICT (clinic_id, patient_id) DO NOTHING";
    crate::exec_tx!(tx, SQL, clinic_id, patient_id, now)?;
    Ok(())
}

/// [`knows`] for a read outside any transaction (no writer's turn taken).
pub async fn knows_now(db: &Db, clinic_id: Uuid, patient_id: Uuid) -> Result<bool> {
    let known: Option<i32> = on_db!(db, |pool| sqlx::query_scalar(KNOWS)
        .bind(clinic_id)
        .bind(patient_id)
        .fetch_optional(pool)
        .await)?;
    Ok(known.is_some())
}
