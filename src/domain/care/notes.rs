//! Doctors' notes about a patient. The text is sealed (AES-256-GCM, the key id inside)
//! before it reaches the database, with the note id as authenticated context. Only the
//! patient and their doctors (a doctor who has seen them or whom they chose) may read a
//! note (the rule is `care::access`: a doctor reads what their own clinic wrote, and other
//! clinics' notes only while the patient shares their record); every read is audited,
//! and so is every refusal.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::care::access;
use crate::domain::care::care_plans::{self, Extraction, Plan};
use crate::error::{Code, Error, Result};
use crate::notify::outbox;
use crate::on_db;

pub const MAX_CHARS: usize = 20_000;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Note {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
    pub doctor_name: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// A stored note and the plan extracted from it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Submitted {
    pub note: Note,
    pub plan: Plan,
}

/// Checks a note's text as `submit` does, so that a bad note is refused before any model
/// reads it: line breaks and tabs are text, other control characters are refused, named.
pub fn check_text(text: &str) -> Result<String> {
    let mut checks = crate::domain::validate::Checks::new();
    let text = checks.text("text", text, 1, MAX_CHARS);
    checks.finish()?;
    Ok(text)
}

/// Passes for a doctor treating the patient (checked before a note is sent to a model).
pub async fn require_writer(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<()> {
    access::writer(db, actor, patient_id, "note.write")
        .await
        .map(|_| ())
}

/// Stores a doctor's note about their patient and the plan extracted from it (the
/// caller ran the extraction), superseding that doctor's previous plan, in one
/// transaction.
pub async fn submit(
    db: &Db,
    actor: &Actor,
    patient_id: Uuid,
    text: &str,
    extraction: &Extraction,
) -> Result<Submitted> {
    actor.principal()?;
    let doctor = access::writer(db, actor, patient_id, "note.write").await?;
    let text = check_text(text)?;
    extraction.validate().map_err(|e| {
        Error::new(
            Code::ValidationFailed,
            format!("The extracted plan is not valid: {e}"),
        )
    })?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let patient = outbox::contact(&mut tx, patient_id).await?;
    let (id, plan_id) = write(
        &mut tx, db, actor, &doctor, &patient, &text, extraction, now,
    )
    .await?;
    tx.commit().await?;
    Ok(Submitted {
        note: Note {
            id,
            patient_id,
            doctor_id: doctor.id,
            doctor_name: doctor.display_name,
            text,
            created_at: now,
        },
        plan: care_plans::get(db, plan_id).await?,
    })
}

/// Stores a note by `doctor` and the plan extracted from it in the caller's transaction
/// (a note's own, or a signed visit record's), superseding that doctor's previous plan for
/// the patient. Returns the note's and the plan's ids.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write(
    tx: &mut crate::db::Tx,
    db: &Db,
    actor: &Actor,
    doctor: &access::Treating,
    patient: &outbox::Contact,
    text: &str,
    extraction: &Extraction,
    now: chrono::DateTime<Utc>,
) -> Result<(Uuid, Uuid)> {
    let p = actor.principal()?;
    let patient_id = patient.user_id;
    let id = Uuid::now_v7();
    let policy = db.policy();
    let sealed = policy.sealer.seal(text.as_bytes(), id.as_bytes());
    let key_id = i64::from(policy.sealer.current_key_id());
    let tz = patient.time_zone.unwrap_or(doctor.time_zone).tz();
    const SQL: &str = "INSERT INTO notes (id, patient_id, doctor_id, clinic_id, author_id, sealed, key_id, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
    crate::exec_tx!(
        tx,
        SQL,
        id,
        patient_id,
        doctor.id,
        doctor.clinic_id,
        p.user_id,
        sealed,
        key_id,
        now
    )?;
    audit::record(
        tx,
        actor,
        Entry {
            action: "note.created",
            subject: format!("note:{id}"),
            clinic_id: Some(doctor.clinic_id),
            details: json!({"patient": patient_id, "chars": text.chars().count()}),
        },
    )
    .await?;
    let plan_id =
        care_plans::replace(tx, db, actor, id, patient, doctor.id, tz, extraction, now).await?;
    Ok((id, plan_id))
}

#[derive(sqlx::FromRow)]
struct NoteRow {
    id: Uuid,
    patient_id: Uuid,
    clinic_id: Uuid,
    doctor_id: Uuid,
    doctor_name: String,
    sealed: Vec<u8>,
    created_at: DateTime<Utc>,
}

impl NoteRow {
    fn open(self, db: &Db) -> Result<Note> {
        let plain = db
            .policy()
            .sealer
            .open(&self.sealed, self.id.as_bytes())
            .map_err(|e| Error::internal(format!("note {}: {e}", self.id)))?;
        Ok(Note {
            id: self.id,
            patient_id: self.patient_id,
            doctor_id: self.doctor_id,
            doctor_name: self.doctor_name,
            text: String::from_utf8_lossy(&plain).into_owned(),
            created_at: self.created_at,
        })
    }
}

macro_rules! select_notes {
    ($tail:literal) => {
        concat!("SELECT n.id, n.patient_id, n.clinic_id, n.doctor_id, d.display_name AS doctor_name, n.sealed, n.created_at \
    FROM notes n JOIN doctors d ON d.id = n.doctor_id WHERE n.deleted_at IS NULL ", $tail)
    };
}

/// The notes about a patient that the caller may read, newest first; one audit record
/// per note read.
pub async fn list(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<Vec<Note>> {
    let scope = access::read_scope(db, actor, patient_id, "note.read").await?;
    let rows = on_db!(db, |pool| sqlx::query_as::<_, NoteRow>(select_notes!(
        "AND n.patient_id = $1 ORDER BY n.created_at DESC LIMIT 200"
    ))
    .bind(patient_id)
    .fetch_all(pool)
    .await)?;
    let notes = rows
        .into_iter()
        .filter(|r| scope.covers(r.clinic_id))
        .map(|r| r.open(db))
        .collect::<Result<Vec<_>>>()?;
    audit_reads(db, actor, &notes).await?;
    Ok(notes)
}

/// One note, for its patient and the doctors who may read it (audited).
pub async fn get(db: &Db, actor: &Actor, id: Uuid) -> Result<Note> {
    actor.principal()?;
    let row = on_db!(db, |pool| sqlx::query_as::<_, NoteRow>(select_notes!(
        "AND n.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await)?
    .ok_or_else(|| Error::not_found("note"))?;
    access::require_read(db, actor, row.patient_id, row.clinic_id, "note.read").await?;
    let note = row.open(db)?;
    audit_reads(db, actor, std::slice::from_ref(&note)).await?;
    Ok(note)
}

async fn audit_reads(db: &Db, actor: &Actor, notes: &[Note]) -> Result<()> {
    if notes.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for n in notes {
        audit::record(
            &mut tx,
            actor,
            Entry {
                action: "note.read",
                subject: format!("note:{}", n.id),
                clinic_id: None,
                details: json!({"patient": n.patient_id}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
