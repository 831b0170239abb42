//! Doctors' notes about a patient. The text is sealed (AES-256-GCM, the key id inside)
//! before it reaches the database, with the note id as authenticated context. Only the
//! patient and their doctors (a doctor who has seen them or whom they chose) may read a
//! note; every read is audited, and so is every refusal.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::{Actor, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::care_plans::{self, Extraction, Plan};
use crate::error::{Code, Error, Result};
use crate::notify::outbox;
use crate::{on_db, on_tx};

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

/// The doctor profile through which a user treats a patient: one they have an appointment
/// with (booked or past; a cancelled booking does not count) or that they chose.
#[derive(sqlx::FromRow)]
struct Treating {
    id: Uuid,
    clinic_id: Uuid,
    display_name: String,
    time_zone: String,
}

async fn treating(db: &Db, user_id: Uuid, patient_id: Uuid) -> Result<Option<Treating>> {
    const SQL: &str = "SELECT d.id, d.clinic_id, d.display_name, c.time_zone FROM doctors d JOIN clinics c ON c.id = d.clinic_id \
        WHERE d.user_id = $1 AND d.deleted_at IS NULL AND ( \
        EXISTS (SELECT 1 FROM appointments a WHERE a.doctor_id = d.id AND a.patient_id = $2 AND a.status <> 'cancelled') \
        OR EXISTS (SELECT 1 FROM patient_doctors pd WHERE pd.doctor_id = d.id AND pd.patient_id = $2)) \
        ORDER BY d.created_at LIMIT 1";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Treating>(SQL)
        .bind(user_id)
        .bind(patient_id)
        .fetch_optional(pool)
        .await)?)
}

/// Records a refused access and returns the refusal.
async fn refuse(db: &Db, actor: &Actor, action: &'static str, patient_id: Uuid) -> Error {
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
        "Only the patient and their doctors can see this.",
    )
}

/// Passes for the patient themself and their doctors; anyone else gets `forbidden`, and
/// the attempt is audited as `{action}_denied`-style `denied` outcome.
pub(crate) async fn require_reader(
    db: &Db,
    actor: &Actor,
    patient_id: Uuid,
    action: &'static str,
) -> Result<()> {
    let p = actor.principal()?;
    if p.user_id == patient_id {
        return Ok(());
    }
    if treating(db, p.user_id, patient_id).await?.is_some() {
        return Ok(());
    }
    Err(refuse(db, actor, action, patient_id).await)
}

/// Passes for a doctor treating the patient (checked before a note is sent to a model).
pub async fn require_writer(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<()> {
    let p = actor.principal()?;
    match treating(db, p.user_id, patient_id).await? {
        Some(_) if p.has_role(Role::Doctor) => Ok(()),
        _ => Err(refuse(db, actor, "note.write", patient_id).await),
    }
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
    let p = actor.principal()?;
    let doctor = match treating(db, p.user_id, patient_id).await? {
        Some(d) if p.has_role(Role::Doctor) => d,
        _ => return Err(refuse(db, actor, "note.write", patient_id).await),
    };
    let mut checks = crate::domain::validate::Checks::new();
    let text = checks.text("text", text, 1, MAX_CHARS);
    checks.finish()?;
    extraction.validate().map_err(|e| {
        Error::new(
            Code::ValidationFailed,
            format!("The extracted plan is not valid: {e}"),
        )
    })?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let policy = db.policy();
    let sealed = policy.sealer.seal(text.as_bytes(), id.as_bytes());
    let key_id = i64::from(policy.sealer.current_key_id());
    let mut tx = db.begin().await?;
    let patient = outbox::contact(&mut tx, patient_id).await?;
    let tz =
        crate::domain::clinics::tz_of(patient.time_zone.as_deref().unwrap_or(&doctor.time_zone));
    const SQL: &str = "INSERT INTO notes (id, patient_id, doctor_id, clinic_id, author_id, sealed, key_id, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
    on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(id)
        .bind(patient_id)
        .bind(doctor.id)
        .bind(doctor.clinic_id)
        .bind(p.user_id)
        .bind(sealed)
        .bind(key_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "note.created",
            subject: format!("note:{id}"),
            clinic_id: Some(doctor.clinic_id),
            details: json!({"patient": patient_id, "chars": text.chars().count()}),
        },
    )
    .await?;
    let plan_id = care_plans::replace(
        &mut tx, db, actor, id, &patient, doctor.id, tz, extraction, now,
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

#[derive(sqlx::FromRow)]
struct NoteRow {
    id: Uuid,
    patient_id: Uuid,
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
        concat!("SELECT n.id, n.patient_id, n.doctor_id, d.display_name AS doctor_name, n.sealed, n.created_at \
    FROM notes n JOIN doctors d ON d.id = n.doctor_id WHERE n.deleted_at IS NULL ", $tail)
    };
}

/// Every note about a patient, newest first; one audit record per note read.
pub async fn list(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<Vec<Note>> {
    require_reader(db, actor, patient_id, "note.read").await?;
    let rows = on_db!(db, |pool| sqlx::query_as::<_, NoteRow>(select_notes!(
        "AND n.patient_id = $1 ORDER BY n.created_at DESC LIMIT 200"
    ))
    .bind(patient_id)
    .fetch_all(pool)
    .await)?;
    let notes = rows
        .into_iter()
        .map(|r| r.open(db))
        .collect::<Result<Vec<_>>>()?;
    audit_reads(db, actor, &notes).await?;
    Ok(notes)
}

/// One note, for its patient and their doctors (audited).
pub async fn get(db: &Db, actor: &Actor, id: Uuid) -> Result<Note> {
    actor.principal()?;
    let row = on_db!(db, |pool| sqlx::query_as::<_, NoteRow>(select_notes!(
        "AND n.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await)?
    .ok_or_else(|| Error::not_found("note"))?;
    require_reader(db, actor, row.patient_id, "note.read").await?;
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
