//! A clinic's patients: whom a clinic knows. Staff act for those patients only, and the
//! records work searches among them.

use uuid::Uuid;

use crate::db::Tx;
use crate::error::Result;
use crate::on_tx;

/// Whether the patient has a relationship with the clinic: registered at its desk, an
/// appointment there (in any state), one of its doctors chosen, or their record shared
/// with it. A clinic's staff act
/// for such patients only; to anyone else a patient the clinic does not know is as absent
/// as one who does not exist.
pub async fn knows(tx: &mut Tx, clinic_id: Uuid, patient_id: Uuid) -> Result<bool> {
    const SQL: &str = "SELECT 1 WHERE EXISTS (SELECT 1 FROM clinic_patients cp WHERE cp.clinic_id = $1 AND cp.patient_id = $2) \
        OR EXISTS (SELECT 1 FROM appointments a WHERE a.clinic_id = $1 AND a.patient_id = $2) \
        OR EXISTS (SELECT 1 FROM patient_doctors pd JOIN doctors d ON d.id = pd.doctor_id WHERE d.clinic_id = $1 AND pd.patient_id = $2) \
        OR EXISTS (SELECT 1 FROM record_shares s WHERE s.clinic_id = $1 AND s.patient_id = $2)";
    let known: Option<i32> = on_tx!(tx, |conn| sqlx::query_scalar(SQL)
        .bind(clinic_id)
        .bind(patient_id)
        .fetch_optional(&mut *conn)
        .await)?;
    Ok(known.is_some())
}
