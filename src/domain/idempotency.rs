//! `Idempotency-Key` for booking writes: the first request with a key runs and its answer
//! is stored; a retry with the same key and body gets that answer again, and the same key
//! with a different body is refused.

use std::future::Future;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::on_db;

/// A reservation older than this is taken to be from a request that died mid-way.
const ABANDONED_AFTER: i64 = 60;

/// A stored (or fresh) answer: HTTP status and JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub replayed: bool,
}

pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::validation(vec![crate::error::FieldError {
            field: "Idempotency-Key".into(),
            message: "must be 1 to 200 visible ASCII characters".into(),
        }]));
    }
    Ok(())
}

fn request_hash(operation: &str, request: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(operation.as_bytes());
    h.update([0]);
    h.update(request.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `op` at most once per (`user`, `key`). `op`'s success is answered with
/// `success_status`; its client errors are stored too, as problem bodies; a failure of
/// ours is not stored, so a retry runs again.
pub async fn once<T, F>(
    db: &Db,
    user: Uuid,
    key: &str,
    operation: &str,
    request: serde_json::Value,
    success_status: u16,
    op: impl FnOnce() -> F,
) -> Result<Answer>
where
    T: Serialize,
    F: Future<Output = Result<T>>,
{
    check_key(key)?;
    let hash = request_hash(operation, &request);
    let now = Utc::now();
    const RESERVE: &str = "INSERT INTO idempotency_keys (user_id, key, operation, request_hash, response_status, response_body, created_at) \
        VALUES ($1, $2, $3, $4, 0, 'null', $5) ON CONFLICT (user_id, key) DO NOTHING";
    const TAKE_OVER: &str = "UPDATE idempotency_keys SET created_at = $4 WHERE user_id = $1 AND key = $2 AND request_hash = $3 \
        AND response_status = 0 AND created_at < $5";
    let reserved = on_db!(db, |pool| sqlx::query(RESERVE)
        .bind(user)
        .bind(key)
        .bind(operation)
        .bind(&hash)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    if reserved == 0 {
        let (stored_hash, status, body) = stored(db, user, key).await?;
        if stored_hash != hash {
            return Err(Error::new(
                Code::IdempotencyKeyReused,
                "This Idempotency-Key was used with a different request.",
            ));
        }
        if status != 0 {
            return Ok(Answer {
                status: u16::try_from(status).unwrap_or(500),
                body,
                replayed: true,
            });
        }
        let stale = now - Duration::seconds(ABANDONED_AFTER);
        let taken = on_db!(db, |pool| sqlx::query(TAKE_OVER)
            .bind(user)
            .bind(key)
            .bind(&hash)
            .bind(now)
            .bind(stale)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if taken == 0 {
            return Err(Error::new(
                Code::IdempotencyInProgress,
                "A request with this Idempotency-Key is still running; retry shortly.",
            ));
        }
    }
    let (status, body) = match op().await {
        Ok(value) => (
            success_status,
            serde_json::to_value(value).map_err(Error::internal)?,
        ),
        Err(e @ Error::Client { .. }) => {
            let problem = problem_body(&e);
            save(
                db,
                user,
                key,
                i64::from(e.code().status().as_u16()),
                &problem,
            )
            .await?;
            return Err(e);
        }
        Err(e) => {
            forget(db, user, key).await?;
            return Err(e);
        }
    };
    save(db, user, key, i64::from(status), &body).await?;
    Ok(Answer {
        status,
        body,
        replayed: false,
    })
}

fn problem_body(e: &Error) -> serde_json::Value {
    let code = e.code();
    let (detail, errors) = match e {
        Error::Client { detail, fields, .. } => (
            detail.to_string(),
            serde_json::to_value(fields).unwrap_or_default(),
        ),
        _ => (String::new(), serde_json::Value::Null),
    };
    serde_json::json!({
        "type": format!("urn:clinic:problem:{}", code.as_str()),
        "title": code.status().canonical_reason().unwrap_or("Error"),
        "status": code.status().as_u16(),
        "detail": detail,
        "code": code,
        "errors": errors,
    })
}

/// Stored answers carry what the patient wrote (a booking's reason, names): they are kept
/// sealed, as `{"sealed": "<base64>"}`, with the user and key as authenticated context.
fn aad(user: Uuid, key: &str) -> Vec<u8> {
    format!("idempotency:{user}:{key}").into_bytes()
}

async fn stored(db: &Db, user: Uuid, key: &str) -> Result<(String, i64, serde_json::Value)> {
    const SQL: &str = "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE user_id = $1 AND key = $2";
    let (hash, status, body): (String, i64, sqlx::types::Json<serde_json::Value>) =
        on_db!(db, |pool| sqlx::query_as(SQL)
            .bind(user)
            .bind(key)
            .fetch_one(pool)
            .await)?;
    let body = match body.0.get("sealed").and_then(|v| v.as_str()) {
        None => body.0,
        Some(sealed) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(sealed)
                .map_err(|e| Error::internal(format!("idempotency answer: {e}")))?;
            let plain = db
                .policy()
                .sealer
                .open(&bytes, &aad(user, key))
                .map_err(|e| Error::internal(format!("idempotency answer: {e}")))?;
            serde_json::from_slice(&plain).map_err(Error::internal)?
        }
    };
    Ok((hash, status, body))
}

async fn save(db: &Db, user: Uuid, key: &str, status: i64, body: &serde_json::Value) -> Result<()> {
    const SQL: &str = "UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE user_id = $1 AND key = $2";
    let sealed = db
        .policy()
        .sealer
        .seal(body.to_string().as_bytes(), &aad(user, key));
    let stored = serde_json::json!({"sealed": URL_SAFE_NO_PAD.encode(sealed)});
    on_db!(db, |pool| sqlx::query(SQL)
        .bind(user)
        .bind(key)
        .bind(status)
        .bind(sqlx::types::Json(&stored))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Forgets the stored answers of a user's keys that start with `prefix` (a deleted
/// conversation's commits).
pub async fn forget_prefixed(db: &Db, user: Uuid, prefix: &str) -> Result<u64> {
    const SQL: &str =
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key LIKE ($2 || '%') ESCAPE '!'";
    let pattern = prefix
        .replace('!', "!!")
        .replace('%', "!%")
        .replace('_', "!_");
    Ok(on_db!(db, |pool| sqlx::query(SQL)
        .bind(user)
        .bind(pattern)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?)
}

async fn forget(db: &Db, user: Uuid, key: &str) -> Result<()> {
    const SQL: &str =
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND response_status = 0";
    on_db!(db, |pool| sqlx::query(SQL)
        .bind(user)
        .bind(key)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
