//! `Idempotency-Key` for booking writes: the first request with a key runs and its answer
//! is stored; a retry with the same key and body gets that answer again, and the same key
//! with a different body is refused.

use std::future::Future;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::Db;
use crate::error::{Code, Error, FieldError, Result};
use crate::on_db;

/// A reservation older than this is taken to be from a request that died mid-way.
const ABANDONED_AFTER: i64 = 60;

/// A write's outcome, and whether it is the first answer given again.
#[derive(Debug)]
pub struct Answer<T> {
    pub outcome: Result<T>,
    pub replayed: bool,
}

/// What is kept of an answer for replays: the value, or the client error it met. Failures
/// of ours are never kept, so a retry runs again.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kept<T> {
    Ok(T),
    Err {
        code: Code,
        detail: String,
        #[serde(default)]
        errors: Vec<FieldError>,
    },
}

impl<T> From<Kept<T>> for Result<T> {
    fn from(kept: Kept<T>) -> Self {
        match kept {
            Kept::Ok(value) => Ok(value),
            Kept::Err {
                code,
                detail,
                errors,
            } => Err(Error::Client {
                code,
                detail: detail.into(),
                fields: errors,
            }),
        }
    }
}

/// `response_status` of a reservation whose request is still running.
const RUNNING: i64 = 0;
/// `response_status` of an answer kept as [`Kept`]. Rows written before answers were kept
/// typed hold the HTTP status they were answered with (100 and up) and the bare body.
const KEPT: i64 = 1;

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

/// Runs `op` at most once per (`user`, `key`): a retry with the same request gets the
/// first outcome again, a client error included; the same key with another request is
/// refused. `op`'s failures of ours are not kept, so a retry runs again.
pub async fn once<T, F>(
    db: &Db,
    user: Uuid,
    key: &str,
    operation: &str,
    request: serde_json::Value,
    op: impl FnOnce() -> F,
) -> Result<Answer<T>>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = Result<T>>,
{
    check_key(key)?;
    let hash = request_hash(operation, &request);
    let now = Utc::now();
    const RESERVE: &str = "INSERT INTO idempotency_keys (user_id, key, operation, request_hash, response_status, response_body, created_at) \
        VALUES ($1, $2, $3, $4, 0, 'null', $5) ON CONFLICT (user_id, key) DO NOTHING";
    const TAKE_OVER: &str = "UPDATE idempotency_keys SET created_at = $4 WHERE user_id = $1 AND key = $2 AND request_hash = $3 \
        AND response_status = 0 AND created_at < $5";
    let reserved = crate::exec!(db, RESERVE, user, key, operation, &hash, now)?;
    if reserved == 0 {
        let (stored_hash, status, body) = stored(db, user, key).await?;
        if stored_hash != hash {
            return Err(Error::new(
                Code::IdempotencyKeyReused,
                "This Idempotency-Key was used with a different request.",
            ));
        }
        if status != RUNNING {
            return Ok(Answer {
                outcome: kept(status, body)?.into(),
                replayed: true,
            });
        }
        let stale = now - Duration::seconds(ABANDONED_AFTER);
        let taken = crate::exec!(db, TAKE_OVER, user, key, &hash, now, stale)?;
        if taken == 0 {
            return Err(Error::new(
                Code::IdempotencyInProgress,
                "A request with this Idempotency-Key is still running; retry shortly.",
            ));
        }
    }
    let outcome = op().await;
    let kept = match &outcome {
        Ok(value) => Kept::Ok(value),
        Err(Error::Client {
            code,
            detail,
            fields,
        }) => Kept::Err {
            code: *code,
            detail: detail.to_string(),
            errors: fields.clone(),
        },
        Err(_) => {
            forget(db, user, key).await?;
            return Ok(Answer {
                outcome,
                replayed: false,
            });
        }
    };
    let body = serde_json::to_value(&kept).map_err(Error::internal)?;
    save(db, user, key, KEPT, &body).await?;
    Ok(Answer {
        outcome,
        replayed: false,
    })
}

/// A kept answer read back; rows from before typed answers hold an HTTP status and the
/// bare value or problem body.
fn kept<T: DeserializeOwned>(status: i64, body: serde_json::Value) -> Result<Kept<T>> {
    #[derive(Deserialize)]
    struct Problem {
        code: Code,
        #[serde(default)]
        detail: String,
        #[serde(default)]
        errors: Option<Vec<FieldError>>,
    }
    let read = |e: serde_json::Error| Error::internal(format!("kept answer: {e}"));
    match status {
        KEPT => serde_json::from_value(body).map_err(read),
        200..=299 => Ok(Kept::Ok(serde_json::from_value(body).map_err(read)?)),
        _ => {
            let p: Problem = serde_json::from_value(body).map_err(read)?;
            Ok(Kept::Err {
                code: p.code,
                detail: p.detail,
                errors: p.errors.unwrap_or_default(),
            })
        }
    }
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
    crate::exec!(db, SQL, user, key, status, sqlx::types::Json(&stored))?;
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
    Ok(crate::exec!(db, SQL, user, pattern)?)
}

async fn forget(db: &Db, user: Uuid, key: &str) -> Result<()> {
    const SQL: &str =
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND response_status = 0"; // RUNNING
    crate::exec!(db, SQL, user, key)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_kept_before_they_were_typed_still_replay() {
        let ok: Result<serde_json::Value> = kept(201, json!({"id": 7})).unwrap().into();
        assert_eq!(ok.unwrap(), json!({"id": 7}));
        let problem = json!({"type": "urn:clinic:problem:hold_expired", "title": "Conflict", "status": 409,
            "detail": "The hold lapsed.", "code": "hold_expired", "errors": null});
        let err: Result<serde_json::Value> = kept(409, problem).unwrap().into();
        let err = err.unwrap_err();
        assert_eq!(err.code(), Code::HoldExpired);
        assert_eq!(err.to_string(), "HoldExpired: The hold lapsed.");
    }

    #[test]
    fn a_kept_client_error_comes_back_as_that_error() {
        let body = serde_json::to_value(Kept::<u8>::Err {
            code: Code::SlotTaken,
            detail: "Taken.".into(),
            errors: Vec::new(),
        })
        .unwrap();
        let back: Result<u8> = kept(KEPT, body).unwrap().into();
        assert_eq!(back.unwrap_err().code(), Code::SlotTaken);
        let body = serde_json::to_value(Kept::Ok(5u8)).unwrap();
        let back: Result<u8> = kept(KEPT, body).unwrap().into();
        assert_eq!(back.unwrap(), 5);
    }
}
