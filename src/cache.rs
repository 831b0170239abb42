//! Public slot listings answered from memory while nothing has been written since.
//!
//! A listing is the most requested answer and the cheapest to get wrong only briefly: an
//! entry is served while this process has committed no write since it was read (any
//! write, so a hold, a booking or a schedule change here shows at once) and for at most
//! `SLOT_LISTING_CACHE_MS`, which bounds how long another replica's write can go unseen.
//! Holding and booking always check the database, so a stale listing can at worst offer
//! a time that is then answered "just taken".

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::Db;
use crate::error::Result;

/// About how many listings are kept, and the bytes they may take at most (keys and
/// answers): distinct queries cannot grow the memory past it; the least used go first.
const ITEMS: usize = 10_000;
const BYTES: u64 = 32 * 1024 * 1024;

pub struct ListingCache {
    /// Answers by (write count, period, request): a write or a period's end moves
    /// requests to a key not yet read, and the old ones age out.
    entries: quick_cache::sync::Cache<String, Bytes, Size>,
    ttl: Duration,
    started: Instant,
}

/// An entry weighs its key and answer in bytes.
#[derive(Clone)]
struct Size;

impl quick_cache::Weighter<String, Bytes> for Size {
    fn weight(&self, key: &String, body: &Bytes) -> u64 {
        (key.len() + body.len()) as u64
    }
}

impl ListingCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: quick_cache::sync::Cache::with_weighter(ITEMS, BYTES, Size),
            ttl,
            started: Instant::now(),
        }
    }

    /// The JSON answer for `request` (its path and query): from memory when read since
    /// this process's last write and within the current period of the cache's lifetime,
    /// else from `read`. Requests for the same listing that arrive while it is read wait
    /// for that one read instead of each running it.
    pub async fn answer<T, F>(&self, db: &Db, request: String, read: F) -> Result<Response>
    where
        T: Serialize,
        F: Future<Output = Result<T>>,
    {
        if self.ttl.is_zero() {
            return Ok(axum::Json(read.await?).into_response());
        }
        let period = self.started.elapsed().as_nanos() / self.ttl.as_nanos().max(1);
        let key = format!("{}:{period}:{request}", db.writes());
        match self.entries.get_value_or_guard_async(&key).await {
            Ok(body) => Ok(json(body)),
            // On an error the guard is dropped and a waiting request reads instead.
            Err(guard) => {
                let value = read.await?;
                let body =
                    Bytes::from(serde_json::to_vec(&value).map_err(crate::error::Error::internal)?);
                let _ = guard.insert(body.clone());
                Ok(json(body))
            }
        }
    }
}

fn json(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
