//! Per-session chat context, saved after every turn: one AES-256-GCM sealed JSON file per
//! session under `sessions/` (the embedded default), or a table when several replicas
//! share PostgreSQL. Idle sessions expire.

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::crypto::seal::Sealer;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::llm::Message;
use crate::on_db;
use crate::tools::Proposal;
use crate::tools::browse::SlotChoice;
use crate::zone::TimeZone;

pub const IDLE_EXPIRY_MINUTES: i64 = 30;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub id: Uuid,
    /// The signed-in user it belongs to; an anonymous session is bound to the first user
    /// who signs in while using it.
    pub user_id: Option<Uuid>,
    pub consent_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub last_active: DateTime<Utc>,
    pub time_zone: TimeZone,
    /// The conversation since `summary` (no system prompt).
    pub messages: Vec<Message>,
    /// What was said before `messages`, in short.
    pub summary: String,
    /// The single side effect waiting for the user's yes.
    pub pending: Option<Proposal>,
    /// Answers of committed proposals, so a retried confirm answers the same.
    #[serde(default)]
    pub committed: Vec<(Uuid, Value)>,
    /// The slot buttons last offered.
    #[serde(default)]
    pub offered: Vec<SlotChoice>,
    /// The clinic whose site the chat is on: the agent searches and books only there.
    #[serde(default)]
    pub clinic_id: Option<Uuid>,
    /// The language of the user's interface (ISO 639-1), when their client said.
    #[serde(default)]
    pub language: Option<String>,
    /// SHA-256 of the secret the client that started the conversation holds.
    #[serde(default)]
    pub secret_digest: Option<String>,
    /// What the dialogue policy remembers.
    #[serde(default)]
    pub state: crate::agent::policy::DialogueState,
    /// Where this turn's time goes (not stored).
    #[serde(skip)]
    pub clock: TurnClock,
}

/// One turn's time: from the request to the saved context, and the parts of it spent in
/// the model and in the domain (tools, the commit); the rest is the service's own.
#[derive(Clone, Debug, Default)]
pub struct TurnClock {
    pub started: Option<std::time::Instant>,
    pub model: std::time::Duration,
    pub domain: std::time::Duration,
}

/// The stored form of a conversation's secret (256 random bits: a plain hash suffices).
pub fn secret_digest(secret: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(secret.trim().as_bytes()))
}

/// Compares a presented secret with the stored digest in constant time.
pub fn secret_matches(secret: &str, digest: &str) -> bool {
    use subtle::ConstantTimeEq;
    secret_digest(secret)
        .as_bytes()
        .ct_eq(digest.as_bytes())
        .into()
}

impl Session {
    pub fn new(user_id: Option<Uuid>, time_zone: TimeZone, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::new_v4(),
            user_id,
            consent_at: now,
            created_at: now,
            last_active: now,
            time_zone,
            messages: Vec::new(),
            summary: String::new(),
            pending: None,
            committed: Vec::new(),
            offered: Vec::new(),
            clinic_id: None,
            language: None,
            secret_digest: None,
            state: Default::default(),
            clock: TurnClock::default(),
        }
    }

    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now - self.last_active > Duration::minutes(IDLE_EXPIRY_MINUTES)
    }
}

/// Where sealed sessions are kept.
pub enum SessionStore {
    Files { dir: PathBuf, sealer: Sealer },
    Table { db: Db, sealer: Sealer },
}

fn not_found() -> Error {
    Error::new(
        Code::NotFound,
        "No such chat session; it may have expired. Start a new one.",
    )
}

impl SessionStore {
    fn sealer(&self) -> &Sealer {
        match self {
            Self::Files { sealer, .. } | Self::Table { sealer, .. } => sealer,
        }
    }

    fn path(dir: &std::path::Path, id: Uuid) -> PathBuf {
        dir.join(format!("{id}.session"))
    }

    pub async fn save(&self, session: &Session) -> Result<()> {
        let json = serde_json::to_vec(session)
            .map_err(|e| Error::internal(format!("session json: {e}")))?;
        let sealed = self.sealer().seal(&json, session.id.as_bytes());
        match self {
            Self::Files { dir, .. } => {
                let path = Self::path(dir, session.id);
                let partial = path.with_extension("partial");
                let dir = dir.clone();
                // One trip to the blocking pool for the three calls (a turn waits on it).
                let write = tokio::task::spawn_blocking(move || {
                    if !dir.is_dir() {
                        std::fs::create_dir_all(&dir)?;
                    }
                    std::fs::write(&partial, &sealed)?;
                    std::fs::rename(&partial, &path)
                });
                match write.await {
                    Ok(done) => done.map_err(|e| Error::internal(format!("saving a session: {e}"))),
                    Err(e) => Err(Error::internal(format!("saving a session: {e}"))),
                }
            }
            Self::Table { db, .. } => {
                const SQL: &str = "INSERT INTO chat_sessions (id, sealed, updated_at) VALUES ($1, $2, $3) \
                    ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at";
                on_db!(db, |pool| sqlx::query(SQL)
                    .bind(session.id)
                    .bind(&sealed)
                    .bind(Utc::now())
                    .execute(pool)
                    .await
                    .map(|_| ()))?;
                Ok(())
            }
        }
    }

    /// The session, unless it does not exist or has been idle too long (then it is removed).
    pub async fn load(&self, id: Uuid, now: DateTime<Utc>) -> Result<Session> {
        let sealed = match self {
            Self::Files { dir, .. } => match tokio::fs::read(Self::path(dir, id)).await {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
                Err(e) => return Err(Error::internal(format!("reading a session: {e}"))),
            },
            Self::Table { db, .. } => {
                const SQL: &str = "SELECT sealed FROM chat_sessions WHERE id = $1";
                let row: Option<(Vec<u8>,)> = on_db!(db, |pool| sqlx::query_as(SQL)
                    .bind(id)
                    .fetch_optional(pool)
                    .await)?;
                row.ok_or_else(not_found)?.0
            }
        };
        let json = self
            .sealer()
            .open(&sealed, id.as_bytes())
            .map_err(|e| Error::internal(format!("opening session {id}: {e}")))?;
        let session: Session = serde_json::from_slice(&json)
            .map_err(|e| Error::internal(format!("session {id}: {e}")))?;
        if session.expired(now) {
            self.delete(id).await?;
            return Err(Error::new(
                Code::NotFound,
                "This chat session has expired; start a new one.",
            ));
        }
        Ok(session)
    }

    pub async fn delete(&self, id: Uuid) -> Result<()> {
        match self {
            Self::Files { dir, .. } => match tokio::fs::remove_file(Self::path(dir, id)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::internal(format!("removing a session: {e}")))
                }
                _ => Ok(()),
            },
            Self::Table { db, .. } => {
                const SQL: &str = "DELETE FROM chat_sessions WHERE id = $1";
                on_db!(db, |pool| sqlx::query(SQL)
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|_| ()))?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sealed_session_round_trips_and_expires_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::Files {
            dir: dir.path().to_path_buf(),
            sealer: Sealer::new(&[3u8; 32], &[]),
        };
        let now = Utc::now();
        let mut s = Session::new(None, "Europe/Lisbon".parse().unwrap(), now);
        s.messages.push(Message::user("my itchy rash"));
        store.save(&s).await.unwrap();
        let raw = std::fs::read(dir.path().join(format!("{}.session", s.id))).unwrap();
        assert!(!raw.windows(5).any(|w| w == b"itchy"));
        let back = store.load(s.id, now + Duration::minutes(29)).await.unwrap();
        assert_eq!(back.messages, s.messages);
        let expired = store
            .load(s.id, now + Duration::minutes(31))
            .await
            .unwrap_err();
        assert_eq!(expired.code(), Code::NotFound);
        assert!(
            store.load(s.id, now).await.is_err(),
            "an expired session is removed"
        );
        // Another key cannot open it.
        store.save(&s).await.unwrap();
        let other = SessionStore::Files {
            dir: dir.path().to_path_buf(),
            sealer: Sealer::new(&[4u8; 32], &[]),
        };
        assert_eq!(
            other.load(s.id, now).await.unwrap_err().code(),
            Code::Internal
        );
    }
}
