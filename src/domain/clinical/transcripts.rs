//! Transcripts of consultations: text a Whisper-compatible server made from the audio (the
//! audio itself is not kept), or text the doctor pasted. A transcript is sealed at rest,
//! hangs on its visit record (the latest one counts), and is read under the record's rule
//! (the patient: once the record is signed); every read is audited.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::care::access;
use crate::domain::clinical::{audit_read, require_clinic_doctor};
use crate::domain::validate::Checks;
use crate::error::{Error, Result};
use crate::on_db;

/// The longest transcript kept, in characters.
pub const MAX_CHARS: usize = 100_000;

crate::text_enum! {
    /// Where a transcript's text came from.
    pub enum Source {
        Audio = "audio",
        Pasted = "pasted",
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Transcript {
    pub id: Uuid,
    pub record_id: Uuid,
    pub source: Source,
    pub text: String,
    /// The speech-to-text model, for audio.
    pub model: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Target {
    patient_id: Uuid,
    clinic_id: Uuid,
    status: String,
}

async fn target(db: &Db, record_id: Uuid) -> Result<Target> {
    const SQL: &str = "SELECT patient_id, clinic_id, status FROM visit_records WHERE id = $1 AND deleted_at IS NULL";
    on_db!(db, |pool| sqlx::query_as::<_, Target>(SQL)
        .bind(record_id)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("record"))
}

/// Passes for a doctor treating the patient at the record's clinic (checked before any
/// audio is sent to a server).
pub async fn require_writer(db: &Db, actor: &Actor, record_id: Uuid) -> Result<()> {
    let t = target(db, record_id).await?;
    require_clinic_doctor(db, actor, t.patient_id, t.clinic_id, "transcript.write")
        .await
        .map(|_| ())
}

fn context(id: Uuid) -> Vec<u8> {
    format!("transcript:{id}").into_bytes()
}

/// Checks a transcript's text; returns it trimmed.
pub fn check_text(text: &str) -> Result<String> {
    let mut checks = Checks::new();
    let text = checks.text("text", text, 1, MAX_CHARS);
    checks.finish()?;
    Ok(text)
}

/// Keeps a transcript on a record (a doctor treating the patient there; audited).
pub async fn store(
    db: &Db,
    actor: &Actor,
    record_id: Uuid,
    source: Source,
    text: &str,
    model: Option<&str>,
) -> Result<Transcript> {
    let t = target(db, record_id).await?;
    require_clinic_doctor(db, actor, t.patient_id, t.clinic_id, "transcript.write").await?;
    let p = actor.principal()?;
    let text = check_text(text)?;
    let id = Uuid::now_v7();
    let sealer = &db.policy().sealer;
    let sealed = sealer.seal(text.as_bytes(), &context(id));
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO transcripts (id, record_id, patient_id, clinic_id, source, sealed, key_id, model, created_by, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    crate::exec_tx!(
        &mut tx,
        SQL,
        id,
        record_id,
        t.patient_id,
        t.clinic_id,
        source,
        sealed,
        i64::from(sealer.current_key_id()),
        model,
        p.user_id,
        now
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "transcript.stored",
            subject: format!("record:{record_id}"),
            clinic_id: Some(t.clinic_id),
            details: json!({"patient": t.patient_id, "source": source.as_str(), "chars": text.chars().count()}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Transcript {
        id,
        record_id,
        source,
        text,
        model: model.map(str::to_owned),
        created_at: now,
    })
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    record_id: Uuid,
    source: Source,
    sealed: Vec<u8>,
    model: Option<String>,
    created_at: DateTime<Utc>,
}

fn open(db: &Db, row: Row) -> Result<Transcript> {
    let plain = db
        .policy()
        .sealer
        .open(&row.sealed, &context(row.id))
        .map_err(|e| Error::internal(format!("transcript {}: {e}", row.id)))?;
    Ok(Transcript {
        id: row.id,
        record_id: row.record_id,
        source: row.source,
        text: String::from_utf8_lossy(&plain).into_owned(),
        model: row.model,
        created_at: row.created_at,
    })
}

/// The latest transcript of each of the patient's records that `shown` holds, for a chart
/// whose reader the caller has checked and whose read it audits.
pub(crate) async fn latest_of(
    db: &Db,
    patient_id: Uuid,
    shown: &[Uuid],
) -> Result<Vec<Transcript>> {
    const SQL: &str = "SELECT id, record_id, source, sealed, model, created_at FROM transcripts \
        WHERE patient_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC";
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Row>(SQL)
        .bind(patient_id)
        .fetch_all(pool)
        .await)?;
    let mut seen = std::collections::HashSet::new();
    rows.into_iter()
        .filter(|r| shown.contains(&r.record_id) && seen.insert(r.record_id))
        .map(|r| open(db, r))
        .collect()
}

/// The record's latest transcript, for whoever may read the record (audited).
pub async fn latest(db: &Db, actor: &Actor, record_id: Uuid) -> Result<Transcript> {
    let p = actor.principal()?;
    let t = target(db, record_id).await?;
    access::require_read(db, actor, t.patient_id, t.clinic_id, "transcript.read").await?;
    if p.user_id == t.patient_id && t.status != "signed" {
        return Err(Error::not_found("transcript"));
    }
    const SQL: &str = "SELECT id, record_id, source, sealed, model, created_at FROM transcripts \
        WHERE record_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 1";
    let row = on_db!(db, |pool| sqlx::query_as::<_, Row>(SQL)
        .bind(record_id)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("transcript"))?;
    let transcript = open(db, row)?;
    audit_read(
        db,
        actor,
        "transcript.read",
        t.patient_id,
        json!({"transcript": transcript.id}),
    )
    .await?;
    Ok(transcript)
}
