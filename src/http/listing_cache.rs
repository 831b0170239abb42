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
    entries: quick_cache::sync::Cache<String, Entry, Size>,
    ttl: Duration,
}

/// An entry weighs its key and answer in bytes.
#[derive(Clone)]
struct Size;

impl quick_cache::Weighter<String, Entry> for Size {
    fn weight(&self, key: &String, entry: &Entry) -> u64 {
        (key.len() + entry.body.len()) as u64
    }
}

#[derive(Clone)]
struct Entry {
    /// [`Db::writes`] when it was read.
    writes: u64,
    at: Instant,
    body: Bytes,
}

impl ListingCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: quick_cache::sync::Cache::with_weighter(ITEMS, BYTES, Size),
            ttl,
        }
    }

    /// The JSON answer for `key` (the request's path and query): from memory when still
    /// good, else from `read`, kept for the next caller.
    pub async fn answer<T, F>(&self, db: &Db, key: String, read: F) -> Result<Response>
    where
        T: Serialize,
        F: Future<Output = Result<T>>,
    {
        if self.ttl.is_zero() {
            return Ok(axum::Json(read.await?).into_response());
        }
        let writes = db.writes();
        if let Some(e) = self.entries.get(&key)
            && e.writes == writes
            && e.at.elapsed() < self.ttl
        {
            return Ok(json(e.body));
        }
        let at = Instant::now();
        let value = read.await?;
        let body = Bytes::from(serde_json::to_vec(&value).map_err(crate::error::Error::internal)?);
        self.entries.insert(
            key,
            Entry {
                writes,
                at,
                body: body.clone(),
            },
        );
        Ok(json(body))
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
