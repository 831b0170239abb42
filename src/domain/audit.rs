//! The audit trail: append-only, each record chained to the one before by a SHA-256
//! hash, written in the same transaction as the change it describes.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::{CHECKPOINT_PURPOSE, Db, Tx, TxConn};
use crate::domain::actor::Actor;
use crate::error::{Error, Result};
use crate::{on_db, on_tx};

const GENESIS: &str = "genesis";

/// What happened, to what.
pub struct Entry {
    /// A dotted verb such as `clinic.approved` or `appointment.booked`.
    pub action: &'static str,
    /// The record acted on, as `kind:id`.
    pub subject: String,
    pub clinic_id: Option<Uuid>,
    /// Facts worth keeping; never personal data beyond ids.
    pub details: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct AuditRecord {
    pub seq: i64,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub subject: String,
    pub clinic_id: Option<Uuid>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    fn expected_hash(&self) -> String {
        chain_hash(
            &self.prev_hash,
            self.seq,
            self.id,
            self.at,
            self.actor_id,
            &self.action,
            &self.subject,
            self.clinic_id,
            &self.details,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn chain_hash(
    prev: &str,
    seq: i64,
    id: Uuid,
    at: DateTime<Utc>,
    actor: Option<Uuid>,
    action: &str,
    subject: &str,
    clinic: Option<Uuid>,
    details: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev.to_owned(),
        seq.to_string(),
        id.to_string(),
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        actor.map(|a| a.to_string()).unwrap_or_default(),
        action.to_owned(),
        subject.to_owned(),
        clinic.map(|c| c.to_string()).unwrap_or_default(),
        details.to_owned(),
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends a record inside the caller's transaction.
pub async fn record(tx: &mut Tx, actor: &Actor, entry: Entry) -> Result<()> {
    record_as(tx, actor.user_id(), entry).await
}

/// [`record`] for an account that is not (yet) the caller: a sign-in, a failed one.
pub async fn record_as(tx: &mut Tx, actor_id: Option<Uuid>, entry: Entry) -> Result<()> {
    let row = Row {
        // Microseconds: what both databases keep, so the hash can be recomputed from the row.
        at: Utc::now().trunc_subsecs(6),
        id: Uuid::now_v7(),
        actor_id,
        details: entry.details.to_string(),
        entry,
    };
    if let TxConn::Postgres(t) = tx.conn_mut() {
        // PostgreSQL links the record at commit (migration 0023's deferred trigger), so
        // the chain's lock is held for the commit only; its place in the chain is read
        // back after the commit, for the audit log.
        const PENDING: &str = "INSERT INTO audit_pending (id, at, actor_id, action, subject, clinic_id, details) \
            VALUES ($1, $2, $3, $4, $5, $6, $7)";
        sqlx::query(PENDING)
            .bind(row.id)
            .bind(row.at)
            .bind(row.actor_id)
            .bind(row.entry.action)
            .bind(&row.entry.subject)
            .bind(row.entry.clinic_id)
            .bind(&row.details)
            .execute(&mut **t)
            .await?;
        tx.audit_unlinked.push((row.id, row.log_line(None)));
        return Ok(());
    }
    // SQLite's write lock already serialises writers. First on the tail this process last
    // saw: the append checks it is still the tail.
    let guess = tx.audit_tail.lock().ok().and_then(|tail| tail.clone());
    if let Some((seq, prev)) = guess
        && append(tx, &row, seq + 1, &prev, true).await?
    {
        return Ok(());
    }
    const LAST: &str = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
    let last: Option<(i64, String)> = on_tx!(tx, |conn| sqlx::query_as(LAST)
        .fetch_optional(&mut *conn)
        .await)?;
    let (seq, prev) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    append(tx, &row, seq, &prev, false).await?;
    Ok(())
}

/// Records a fact that changes nothing else (a tool the assistant called, an alarm it
/// raised) in a transaction of its own, shared with the others that arrive meanwhile: the
/// caller waits until its record is committed, and one commit carries them all (so a
/// hundred chats at once do not take a hundred turns at the database's writer).
pub async fn record_alone(db: &Db, actor_id: Option<Uuid>, entry: Entry) -> Result<()> {
    let queue = db
        .fixed(ALONE, async { Ok::<_, Error>(Queue::default()) })
        .await?;
    let (done, answer) = tokio::sync::oneshot::channel();
    let lead = match queue.waiting.lock() {
        Ok(mut waiting) => {
            waiting.records.push((actor_id, entry, done));
            !std::mem::replace(&mut waiting.writing, true)
        }
        Err(_) => return Err(Error::internal("the audit queue is poisoned")),
    };
    if lead {
        // Its own task: a caller that goes away never strands the others' records.
        let db = db.clone();
        tokio::spawn(async move { write_queued(&db, &queue).await });
    }
    match answer.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::internal(format!("recording: {e}"))),
        Err(_) => Err(Error::internal("the audit writer stopped")),
    }
}

const ALONE: &str = "audit records alone";
/// At most this many records in one transaction.
const ALONE_BATCH: usize = 256;

type Queued = (
    Option<Uuid>,
    Entry,
    tokio::sync::oneshot::Sender<std::result::Result<(), String>>,
);

#[derive(Default)]
struct Queue {
    waiting: std::sync::Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    records: Vec<Queued>,
    /// A task is writing; it takes what arrives until nothing is left.
    writing: bool,
}

async fn write_queued(db: &Db, queue: &Queue) {
    loop {
        let batch: Vec<Queued> = match queue.waiting.lock() {
            Ok(mut waiting) => {
                if waiting.records.is_empty() {
                    waiting.writing = false;
                    return;
                }
                let n = waiting.records.len().min(ALONE_BATCH);
                waiting.records.drain(..n).collect()
            }
            Err(_) => return,
        };
        let mut answers = Vec::with_capacity(batch.len());
        let mut entries = Vec::with_capacity(batch.len());
        for (actor_id, entry, done) in batch {
            entries.push((actor_id, entry));
            answers.push(done);
        }
        let written = write_entries(db, entries).await.map_err(|e| e.to_string());
        if let Err(e) = &written {
            tracing::error!(error = %e, records = answers.len(), "audit records failed");
        }
        for done in answers {
            let _ = done.send(written.clone());
        }
    }
}

async fn write_entries(db: &Db, entries: Vec<(Option<Uuid>, Entry)>) -> Result<()> {
    let mut tx = db.begin().await?;
    for (actor_id, entry) in entries {
        record_as(&mut tx, actor_id, entry).await?;
    }
    tx.commit().await?;
    Ok(())
}

struct Row {
    at: DateTime<Utc>,
    id: Uuid,
    actor_id: Option<Uuid>,
    details: String,
    entry: Entry,
}

impl Row {
    /// The record's line in `logs/audit.log`; its place in the chain (`seq`, `prev_hash`,
    /// `hash`) is added by [`crate::db::Tx::commit`] where it is known only after the commit.
    fn log_line(&self, link: Option<(i64, &str, &str)>) -> serde_json::Value {
        let mut line = serde_json::json!({
            "id": self.id, "at": self.at, "actor_id": self.actor_id, "action": self.entry.action,
            "subject": self.entry.subject, "clinic_id": self.entry.clinic_id, "details": self.entry.details,
        });
        if let Some(link) = link {
            crate::db::link_line(&mut line, link);
        }
        line
    }
}

/// Inserts the record as `seq` after `prev` (SQLite); `guarded`, only if `prev` is still the
/// tail (otherwise nothing is written and it answers false).
async fn append(tx: &mut Tx, row: &Row, seq: i64, prev: &str, guarded: bool) -> Result<bool> {
    let hash = chain_hash(
        prev,
        seq,
        row.id,
        row.at,
        row.actor_id,
        row.entry.action,
        &row.entry.subject,
        row.entry.clinic_id,
        &row.details,
    );
    const INSERT: &str = "INSERT INTO audit (seq, id, at, actor_id, action, subject, clinic_id, details, prev_hash, hash) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    const GUARDED: &str = "INSERT INTO audit (seq, id, at, actor_id, action, subject, clinic_id, details, prev_hash, hash) \
        SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
        WHERE NOT EXISTS (SELECT 1 FROM audit WHERE seq >= $1) \
        AND EXISTS (SELECT 1 FROM audit WHERE seq = $1 - 1 AND hash = $9)";
    let written = crate::exec_tx!(
        tx,
        if guarded { GUARDED } else { INSERT },
        seq,
        row.id,
        row.at,
        row.actor_id,
        row.entry.action,
        &row.entry.subject,
        row.entry.clinic_id,
        &row.details,
        prev,
        &hash
    )?;
    if written == 1 {
        tx.audit_lines
            .push(row.log_line(Some((seq, prev, &hash))).to_string());
        tx.audit_head = Some((seq, hash.clone()));
        if let Ok(mut tail) = tx.audit_tail.lock() {
            *tail = Some((seq, hash));
        }
    }
    Ok(written == 1)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    /// Exact action, e.g. `clinic.approved`.
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Records with a smaller sequence number (for paging back).
    pub before_seq: Option<i64>,
    /// One clinic's records (a clinic admin: one of theirs).
    pub clinic_id: Option<Uuid>,
    /// 1 to 500; default 100.
    pub limit: Option<i64>,
}

/// Newest first. System admins see everything; clinic admins the records of every clinic
/// they administer (or of one of them, with `clinic_id`).
pub async fn list(db: &Db, actor: &Actor, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
    let scopes: Vec<Option<Uuid>> = if actor.is_system_admin() {
        vec![filter.clinic_id]
    } else {
        let mine: Vec<Uuid> = actor.principal()?.administered_clinics().collect();
        match filter.clinic_id {
            _ if mine.is_empty() => return Err(Error::forbidden()),
            Some(clinic) if mine.contains(&clinic) => vec![Some(clinic)],
            Some(_) => return Err(Error::forbidden()),
            None => mine.into_iter().map(Some).collect(),
        }
    };
    const SQL: &str = "SELECT seq, id, at, actor_id, action, subject, clinic_id, details, prev_hash, hash FROM audit \
        WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR action = $2) \
        AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4) AND ($5 IS NULL OR seq < $5) \
        AND ($6 IS NULL OR clinic_id = $6) ORDER BY seq DESC LIMIT $7";
    let limit = filter.limit.unwrap_or(100).clamp(1, 500);
    // One query per clinic (an admin holds few), merged newest first.
    let mut records = Vec::new();
    for scope in scopes {
        records.extend(on_db!(db, |pool| sqlx::query_as::<_, AuditRecord>(SQL)
            .bind(filter.actor_id)
            .bind(filter.action.as_deref())
            .bind(filter.from)
            .bind(filter.to)
            .bind(filter.before_seq)
            .bind(scope)
            .bind(limit)
            .fetch_all(pool)
            .await)?);
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.seq));
    records.truncate(usize::try_from(limit).unwrap_or(100));
    Ok(records)
}

/// The checkpoints in the audit log whose signature holds, by sequence number.
fn checkpoints(db: &Db) -> Vec<(i64, String)> {
    let Some(text) = db
        .audit_log_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
    else {
        return Vec::new();
    };
    let key = &db.policy().audit_key;
    let mut found: Vec<(i64, String)> = text
        .lines()
        .filter(|l| l.starts_with("{\"checkpoint\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let seq = v["checkpoint"]["seq"].as_i64()?;
            let hash = v["checkpoint"]["hash"].as_str()?.to_owned();
            let mac = v["mac"].as_str()?;
            key.matches(CHECKPOINT_PURPOSE, &format!("{seq}:{hash}"), mac)
                .then_some((seq, hash))
        })
        .collect();
    found.sort_by_key(|(seq, _)| *seq);
    found.dedup_by_key(|(seq, _)| *seq);
    found
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChainReport {
    pub records: i64,
    pub intact: bool,
    /// The first record whose hash or link does not match, or that a checkpoint names and
    /// the database no longer has as it was.
    pub first_broken_seq: Option<i64>,
    /// Signed checkpoints of `logs/audit.log` compared with the database.
    pub checkpoints: i64,
    /// What is wrong, in words: an edited record, a rewritten chain, a truncated chain.
    pub problem: Option<String>,
}

/// Recomputes the chain from the start, and compares it with the signed checkpoints this
/// service wrote to its audit log: records edited in place break the chain; a chain
/// rewritten with every later hash recomputed, or with its last records deleted, no
/// longer matches the checkpoints (system admins).
pub async fn verify(db: &Db, actor: &Actor) -> Result<ChainReport> {
    actor.require_system_admin()?;
    const SQL: &str = "SELECT seq, id, at, actor_id, action, subject, clinic_id, details, prev_hash, hash FROM audit \
        WHERE seq > $1 ORDER BY seq LIMIT 1000";
    let marks = checkpoints(db);
    let mut pending = marks.iter().peekable();
    let mut after = 0i64;
    let mut prev = GENESIS.to_owned();
    let mut expected_seq = 1i64;
    let mut records = 0i64;
    let broken = |records, seq, problem: String| ChainReport {
        records,
        intact: false,
        first_broken_seq: Some(seq),
        checkpoints: marks.len() as i64,
        problem: Some(problem),
    };
    loop {
        let batch = on_db!(db, |pool| sqlx::query_as::<_, AuditRecord>(SQL)
            .bind(after)
            .fetch_all(pool)
            .await)?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for r in &batch {
            records += 1;
            if r.seq != expected_seq || r.prev_hash != prev || r.hash != r.expected_hash() {
                let seq = r.seq.min(expected_seq);
                return Ok(broken(
                    records,
                    seq,
                    format!("record {seq} was changed or removed: the chain breaks there"),
                ));
            }
            if let Some((_, hash)) = pending.next_if(|(seq, _)| *seq == r.seq)
                && *hash != r.hash
            {
                return Ok(broken(
                    records,
                    r.seq,
                    format!(
                        "record {} is not the one checkpointed: the chain was rewritten at or before it",
                        r.seq
                    ),
                ));
            }
            prev.clone_from(&r.hash);
            expected_seq += 1;
        }
    }
    if let Some((seq, _)) = pending.next() {
        return Ok(broken(
            records,
            expected_seq,
            format!(
                "the chain ends at record {} but a checkpoint names record {seq}: records were deleted",
                expected_seq - 1
            ),
        ));
    }
    Ok(ChainReport {
        records,
        intact: true,
        first_broken_seq: None,
        checkpoints: marks.len() as i64,
        problem: None,
    })
}
