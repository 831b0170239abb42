//! The notification outbox: every message to a patient is a row written in the same
//! transaction as the change it tells about, sent later by the dispatcher
//! ([`crate::notify::dispatch`]). One row is one message on one channel; its body is
//! sealed, so the table holds no medical text in the clear.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{Db, Policy, Tx};
use crate::error::{Error, Result};
use crate::notify::language::Language;
use crate::zone::TimeZone;
use crate::{on_db, on_tx};

/// What a notification says. `ics` is a calendar attachment (appointment messages);
/// `attachment` a file sent with a mail (an invoice's PDF).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub subject: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ics: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
}

/// A file sent with a mail, its bytes in base64 (inside the sealed message).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub media_type: String,
    pub base64: String,
}

impl Attachment {
    pub fn new(name: &str, media_type: &str, bytes: &[u8]) -> Self {
        use base64::Engine;
        Self {
            name: name.to_owned(),
            media_type: media_type.to_owned(),
            base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    pub fn bytes(&self) -> Result<Vec<u8>> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.base64)
            .map_err(|e| Error::internal(format!("attachment {}: {e}", self.name)))
    }
}

/// Where a user wants to hear from us.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Contact {
    pub user_id: Uuid,
    pub email: String,
    pub phone: Option<String>,
    /// `email`, `sms` or `whatsapp`.
    pub notify_channel: String,
    pub time_zone: Option<TimeZone>,
    pub display_name: String,
    /// What we write to them in.
    #[sqlx(try_from = "String")]
    pub language: Language,
}

pub async fn contact(tx: &mut Tx, user_id: Uuid) -> Result<Contact> {
    const SQL: &str = "SELECT id AS user_id, email, phone, notify_channel, time_zone, display_name, language FROM users WHERE id = $1";
    on_tx!(tx, |conn| sqlx::query_as::<_, Contact>(SQL)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await)?
    .ok_or_else(|| Error::not_found("user"))
}

/// Queues `message` for `to` on their channel (email when they gave no phone), and for
/// the webhook when one is configured, to leave at `due_at`.
pub async fn enqueue(
    tx: &mut Tx,
    policy: &Policy,
    kind: &str,
    about: &str,
    to: &Contact,
    message: &Message,
    due_at: DateTime<Utc>,
) -> Result<()> {
    enqueue_all(tx, policy, to, kind, message, &[(about.to_owned(), due_at)]).await
}

/// Queues one message for `to` several times in one INSERT, each `(about, due_at)`: the
/// reminders of a plan item.
pub async fn enqueue_all(
    tx: &mut Tx,
    policy: &Policy,
    to: &Contact,
    kind: &str,
    message: &Message,
    times: &[(String, DateTime<Utc>)],
) -> Result<()> {
    // SMS and WhatsApp when the person asked for it and a provider is configured.
    let (channel, recipient) = match (to.notify_channel.as_str(), &to.phone) {
        ("sms", Some(phone)) if policy.sms => ("sms", phone.as_str()),
        ("whatsapp", Some(phone)) if policy.sms => ("whatsapp", phone.as_str()),
        _ => ("email", to.email.as_str()),
    };
    // An address under `.invalid` (a walk-in registered without an email) never receives
    // mail: nothing is queued for it.
    let mut channels = Vec::new();
    if !(channel == "email" && recipient.ends_with(".invalid")) {
        channels.push((channel, recipient));
    }
    if policy.webhook {
        channels.push(("webhook", "webhook"));
    }
    let now = Utc::now();
    let plain = serde_json::to_vec(message).map_err(|e| Error::internal(e.to_string()))?;
    let mut rows = Vec::with_capacity(times.len() * channels.len());
    for (about, due_at) in times {
        for (channel, recipient) in &channels {
            let id = Uuid::now_v7();
            let sealed = policy.sealer.seal(&plain, id.as_bytes());
            rows.push((id, about, *channel, *recipient, sealed, *due_at));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    const HEAD: &str = "INSERT INTO outbox (id, kind, channel, recipient, user_id, about, sealed, due_at, status, created_at, updated_at) ";
    on_tx!(tx, |conn| {
        let mut q = sqlx::QueryBuilder::new(HEAD);
        q.push_values(
            &rows,
            |mut b, (id, about, channel, recipient, sealed, due_at)| {
                b.push_bind(*id)
                    .push_bind(kind)
                    .push_bind(*channel)
                    .push_bind(*recipient)
                    .push_bind(to.user_id)
                    .push_bind(about.as_str())
                    .push_bind(sealed.as_slice())
                    .push_bind(*due_at)
                    .push_bind("pending")
                    .push_bind(now)
                    .push_bind(now);
            },
        );
        q.build()
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Withdraws what is still waiting to be sent about something (a cancelled visit, a
/// superseded plan). Returns how many messages were withdrawn.
pub async fn cancel_about(tx: &mut Tx, about: &str, kinds: &[&str]) -> Result<u64> {
    const SQL: &str = "UPDATE outbox SET status = 'cancelled', updated_at = $2 WHERE about = $1 AND status = 'pending' AND kind = $3";
    let now = Utc::now();
    let mut n = 0;
    for kind in kinds {
        n += crate::exec_tx!(tx, SQL, about, now, *kind)?;
    }
    Ok(n)
}

/// One notification claimed by a dispatcher.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub kind: String,
    pub channel: String,
    pub recipient: String,
    pub about: String,
    pub sealed: Vec<u8>,
    pub due_at: DateTime<Utc>,
    pub attempts: i64,
}

impl Claimed {
    pub fn open(&self, policy: &Policy) -> Result<Message> {
        let plain = policy
            .sealer
            .open(&self.sealed, self.id.as_bytes())
            .map_err(|e| Error::internal(format!("notification {}: {e}", self.id)))?;
        serde_json::from_slice(&plain).map_err(|e| Error::internal(e.to_string()))
    }
}

/// The claim: due rows (or rows whose lease lapsed, a dispatcher having died mid-send)
/// become `sending` under a lease. On PostgreSQL `FOR UPDATE SKIP LOCKED` lets replicas
/// claim side by side without ever taking the same row; SQLite has one writer at a time.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET status = 'sending', lease_until = $2, attempts = attempts + 1, updated_at = $1 ",
            "WHERE id IN (SELECT id FROM outbox WHERE (status = 'pending' AND due_at <= $1) ",
            "OR (status = 'sending' AND lease_until < $1) ORDER BY due_at LIMIT $3",
            $lock,
            ") RETURNING id, kind, channel, recipient, about, sealed, due_at, attempts"
        )
    };
}

pub async fn claim(
    db: &Db,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    batch: i64,
) -> Result<Vec<Claimed>> {
    let mut tx = db.begin().await?;
    let rows = match tx.conn_mut() {
        crate::db::TxConn::Sqlite(conn) => {
            sqlx::query_as::<_, Claimed>(claim_sql!(""))
                .bind(now)
                .bind(now + lease)
                .bind(batch)
                .fetch_all(&mut **conn)
                .await?
        }
        crate::db::TxConn::Postgres(conn) => {
            sqlx::query_as::<_, Claimed>(claim_sql!(" FOR UPDATE SKIP LOCKED"))
                .bind(now)
                .bind(now + lease)
                .bind(batch)
                .fetch_all(&mut **conn)
                .await?
        }
    };
    tx.commit().await?;
    Ok(rows)
}

/// Records a delivery. Only the holder of the lease can finish a row.
pub async fn sent(db: &Db, id: Uuid, now: DateTime<Utc>) -> Result<()> {
    const SQL: &str = "UPDATE outbox SET status = 'sent', sent_at = $2, lease_until = NULL, last_error = NULL, updated_at = $2 \
        WHERE id = $1 AND status = 'sending'";
    on_db!(db, |pool| sqlx::query(SQL)
        .bind(id)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Records a failed attempt: tried again at `retry_at`, or dead-lettered when `None`.
pub async fn failed(
    db: &Db,
    id: Uuid,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    const RETRY: &str = "UPDATE outbox SET status = 'pending', due_at = $3, lease_until = NULL, last_error = $2, updated_at = $4 \
        WHERE id = $1 AND status = 'sending'";
    const DEAD: &str = "UPDATE outbox SET status = 'dead', lease_until = NULL, last_error = $2, updated_at = $3 \
        WHERE id = $1 AND status = 'sending'";
    let error: String = error.chars().take(500).collect();
    match retry_at {
        Some(at) => on_db!(db, |pool| sqlx::query(RETRY)
            .bind(id)
            .bind(&error)
            .bind(at)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))?,
        None => on_db!(db, |pool| sqlx::query(DEAD)
            .bind(id)
            .bind(&error)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))?,
    }
    Ok(())
}
