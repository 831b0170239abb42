//! The outbox as system admins see it: what was sent, what is waiting, what died, and
//! sending a dead-lettered message again. The sending itself is `notify`'s.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::error::{Code, Error, Result};
use crate::on_db;

crate::text_enum! {
    /// A notification: waiting, being sent, sent, given up on, or withdrawn.
    pub enum OutboxStatus {
        Pending = "pending",
        Sending = "sending",
        Sent = "sent",
        Dead = "dead",
        Cancelled = "cancelled",
    }
}

/// A notification as admins see it (no body).
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Notification {
    pub id: Uuid,
    pub kind: String,
    pub channel: String,
    pub recipient: String,
    pub about: String,
    pub due_at: DateTime<Utc>,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The outbox for system admins, newest first, optionally one status only.
pub async fn list(
    db: &Db,
    actor: &Actor,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<Notification>> {
    actor.require_system_admin()?;
    if let Some(Err(e)) = status.map(str::parse::<OutboxStatus>) {
        return Err(Error::new(Code::InvalidQuery, format!("status: {e}")));
    }
    const SQL: &str = "SELECT id, kind, channel, recipient, about, due_at, status, attempts, last_error, sent_at, created_at \
        FROM outbox WHERE ($1 IS NULL OR status = $1) ORDER BY created_at DESC LIMIT $2";
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Notification>(SQL)
        .bind(status)
        .bind(limit.clamp(1, 500))
        .fetch_all(pool)
        .await)?;
    Ok(rows)
}

/// Sends a dead-lettered notification again (system admins).
pub async fn retry(db: &Db, actor: &Actor, id: Uuid) -> Result<()> {
    actor.require_system_admin()?;
    const SQL: &str = "UPDATE outbox SET status = 'pending', attempts = 0, due_at = $2, updated_at = $2 WHERE id = $1 AND status = 'dead'";
    let done = crate::exec!(db, SQL, id, Utc::now())?;
    if done == 0 {
        return Err(Error::new(
            Code::Conflict,
            "Only dead-lettered notifications can be retried.",
        ));
    }
    Ok(())
}
