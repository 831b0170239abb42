//! Who may read a patient's clinical data: notes, care plans and their steps, the profile's
//! clinical part, visit records, prescriptions, labs, files and transcripts. One rule, for
//! REST, pages and the agent's tools:
//!
//! - the patient reads everything about themself;
//! - a doctor reads what was written in a clinic where they hold a doctor profile (and the
//!   doctor role) with a care relationship to the patient: an appointment that was not
//!   cancelled, the patient chose them, or they wrote a visit record about the patient (a
//!   walk-in at a clinic that knows the patient);
//! - what other clinics wrote, that doctor reads only while the patient shares their record
//!   with a clinic where the doctor treats them (a share the patient grants and revokes).
//!
//! Clinic staff and admins as such read nothing clinical, and nothing a clinic's staff can
//! do alone widens a doctor's reach beyond their own clinic. Refusals are audited here;
//! reads are audited by the module that reads.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::{Actor, Role};
use crate::domain::audit::{self, Entry};
use crate::error::{Code, Error, Result};
use crate::on_db;
use crate::zone::TimeZone;

/// Which of a patient's records a reader may see, by the clinic that wrote them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The patient themself, or a doctor at a clinic the patient shares their record with.
    Whole,
    /// A doctor: what these clinics (where they treat the patient) wrote.
    Clinics(Vec<Uuid>),
}

impl Scope {
    pub fn covers(&self, clinic_id: Uuid) -> bool {
        match self {
            Self::Whole => true,
            Self::Clinics(clinics) => clinics.contains(&clinic_id),
        }
    }
}

/// A clinic where a user treats a patient through one of their doctor profiles.
#[derive(sqlx::FromRow)]
struct TreatingAt {
    clinic_id: Uuid,
    shared: bool,
}

/// The doctor profile through which a user treats a patient, for writing.
#[derive(sqlx::FromRow)]
pub(crate) struct Treating {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub display_name: String,
    pub time_zone: TimeZone,
}

/// A doctor profile has a care relationship with the patient: a booking with it that was
/// not cancelled, the patient chose it, or it wrote a visit record about them (a walk-in).
macro_rules! cares_for {
    () => {
        "d.user_id = $1 AND d.deleted_at IS NULL AND ( \
         EXISTS (SELECT 1 FROM appointments a WHERE a.doctor_id = d.id AND a.patient_id = $2 AND a.status <> 'cancelled') \
         OR EXISTS (SELECT 1 FROM patient_doctors pd WHERE pd.doctor_id = d.id AND pd.patient_id = $2) \
         OR EXISTS (SELECT 1 FROM visit_records r WHERE r.doctor_id = d.id AND r.patient_id = $2 AND r.deleted_at IS NULL))"
    };
}

/// What `actor` may read about the patient; `forbidden` (audited as `action` denied) when
/// nothing.
pub async fn read_scope(
    db: &Db,
    actor: &Actor,
    patient_id: Uuid,
    action: &'static str,
) -> Result<Scope> {
    let p = actor.principal()?;
    if p.user_id == patient_id {
        return Ok(Scope::Whole);
    }
    const SQL: &str = concat!(
        "SELECT d.clinic_id, EXISTS (SELECT 1 FROM record_shares s WHERE s.patient_id = $2 AND s.clinic_id = d.clinic_id) AS shared \
         FROM doctors d WHERE ",
        cares_for!()
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, TreatingAt>(SQL)
        .bind(p.user_id)
        .bind(patient_id)
        .fetch_all(pool)
        .await)?;
    let rows: Vec<TreatingAt> = rows
        .into_iter()
        .filter(|r| p.has_role_in(Role::Doctor, r.clinic_id))
        .collect();
    if rows.iter().any(|r| r.shared) {
        return Ok(Scope::Whole);
    }
    if rows.is_empty() {
        return Err(refuse(db, actor, action, patient_id).await);
    }
    Ok(Scope::Clinics(
        rows.into_iter().map(|r| r.clinic_id).collect(),
    ))
}

/// Passes when `actor` may read a record about the patient written at `clinic_id`.
pub async fn require_read(
    db: &Db,
    actor: &Actor,
    patient_id: Uuid,
    clinic_id: Uuid,
    action: &'static str,
) -> Result<()> {
    if read_scope(db, actor, patient_id, action)
        .await?
        .covers(clinic_id)
    {
        Ok(())
    } else {
        Err(refuse(db, actor, action, patient_id).await)
    }
}

/// The doctor profile through which `actor` writes about the patient: a doctor (by role
/// at that clinic) who treats them there. Anyone else is refused (audited as `action`).
pub(crate) async fn writer(
    db: &Db,
    actor: &Actor,
    patient_id: Uuid,
    action: &'static str,
) -> Result<Treating> {
    let p = actor.principal()?;
    const SQL: &str = concat!(
        "SELECT d.id, d.clinic_id, d.display_name, c.time_zone FROM doctors d JOIN clinics c ON c.id = d.clinic_id WHERE ",
        cares_for!(),
        " ORDER BY d.created_at"
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Treating>(SQL)
        .bind(p.user_id)
        .bind(patient_id)
        .fetch_all(pool)
        .await)?;
    match rows
        .into_iter()
        .find(|d| p.has_role_in(Role::Doctor, d.clinic_id))
    {
        Some(d) => Ok(d),
        None => Err(refuse(db, actor, action, patient_id).await),
    }
}

/// Records a refused access and returns the refusal.
pub(crate) async fn refuse(
    db: &Db,
    actor: &Actor,
    action: &'static str,
    patient_id: Uuid,
) -> Error {
    let recorded = async {
        let mut tx = db.begin().await?;
        audit::record(
            &mut tx,
            actor,
            Entry {
                action,
                subject: format!("patient:{patient_id}"),
                clinic_id: None,
                details: json!({"outcome": "denied"}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<(), Error>(())
    };
    if let Err(e) = recorded.await {
        return e;
    }
    Error::new(
        Code::Forbidden,
        "Only the patient and their doctors at the clinic that wrote it can see this.",
    )
}

/// A clinic the patient shares their whole record with.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Share {
    pub clinic_id: Uuid,
    pub clinic_name: String,
    pub since: DateTime<Utc>,
}

/// The clinics the signed-in patient shares their record with.
pub async fn shares(db: &Db, actor: &Actor) -> Result<Vec<Share>> {
    let p = actor.principal()?;
    const SQL: &str = "SELECT s.clinic_id, c.name AS clinic_name, s.created_at AS since \
        FROM record_shares s JOIN clinics c ON c.id = s.clinic_id WHERE s.patient_id = $1 ORDER BY s.created_at";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Share>(SQL)
        .bind(p.user_id)
        .fetch_all(pool)
        .await)?)
}

/// The patient shares their whole record with a clinic: its doctors who treat them read
/// what other clinics wrote. Only the patient can do this; audited. Sharing twice is one share.
pub async fn share(db: &Db, actor: &Actor, clinic_id: Uuid) -> Result<Share> {
    let p = actor.principal()?;
    crate::domain::clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO record_shares (patient_id, clinic_id, created_at) VALUES ($1, $2, $3) \
        ON CONFLICT (patient_id, clinic_id) DO NOTHING";
    let added = crate::exec_tx!(&mut tx, SQL, p.user_id, clinic_id, now)?;
    if added == 1 {
        audit::record(
            &mut tx,
            actor,
            Entry {
                action: "record.shared",
                subject: format!("patient:{}", p.user_id),
                clinic_id: Some(clinic_id),
                details: json!({}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    shares(db, actor)
        .await?
        .into_iter()
        .find(|s| s.clinic_id == clinic_id)
        .ok_or_else(|| Error::not_found("share"))
}

/// The patient stops sharing their record with a clinic (audited); `not_found` when they
/// did not share it.
pub async fn unshare(db: &Db, actor: &Actor, clinic_id: Uuid) -> Result<()> {
    let p = actor.principal()?;
    let mut tx = db.begin().await?;
    const SQL: &str = "DELETE FROM record_shares WHERE patient_id = $1 AND clinic_id = $2";
    let removed = crate::exec_tx!(&mut tx, SQL, p.user_id, clinic_id)?;
    if removed == 0 {
        return Err(Error::not_found("share"));
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "record.unshared",
            subject: format!("patient:{}", p.user_id),
            clinic_id: Some(clinic_id),
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clinic_scope_covers_only_its_clinics() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(Scope::Whole.covers(a));
        assert!(Scope::Clinics(vec![a]).covers(a));
        assert!(!Scope::Clinics(vec![a]).covers(b));
        assert!(!Scope::Clinics(vec![]).covers(a));
    }
}
