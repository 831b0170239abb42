//! The front desk offline (`/desk/offline`): an installable page (manifest and service
//! worker) that keeps the day list, patient search, check-in, completed, no-show, cancel,
//! booking and new walk-in patients working without a network. Its script keeps a snapshot
//! of today and tomorrow and a queue of commands in IndexedDB and sends the queue to
//! `POST /desk/sync` when the network is back; conflicts are shown to resolve. The JSON
//! routes here are the API's domain calls (`scheduling::sync`) under the console's
//! session, with its CSRF token in a header.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tera::Context;
use uuid::Uuid;

use crate::domain::scheduling::sync::{self, OfflineBatch};
use crate::state::AppState;
use crate::web::desk::pick_clinic;
use crate::web::pages::{error_page, render};
use crate::web::session::SignedIn;

const SCRIPT: &str = include_str!("assets/desk-offline.js");
const WORKER: &str = include_str!("assets/desk-sw.js");
const MANIFEST: &str = include_str!("assets/desk.webmanifest");
const ICON: &str = include_str!("assets/desk-icon.svg");

fn service(s: &AppState) -> &str {
    &s.config.agent.service_name
}

#[derive(Deserialize, Default)]
pub struct OfflineQuery {
    clinic: Option<Uuid>,
}

pub async fn page(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Query(q): Query<OfflineQuery>,
) -> Response {
    match pick_clinic(&s, &user, q.clinic).await {
        Ok((all, clinic)) => {
            let mut c = Context::new();
            c.insert("clinics", &all);
            c.insert("clinic", &clinic);
            render(
                "offline.html",
                "Front desk (offline-ready)",
                service(&s),
                Some(&user),
                c,
            )
        }
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

/// A JSON answer, or the problem as JSON (the script shows its detail).
fn json<T: serde::Serialize>(r: crate::error::Result<T>) -> Response {
    match r {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub struct SnapshotQuery {
    clinic: Uuid,
    since: Option<DateTime<Utc>>,
    days: Option<u32>,
}

pub async fn snapshot(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Query(q): Query<SnapshotQuery>,
) -> Response {
    json(sync::snapshot(&s.db, &user.actor, q.clinic, q.since, q.days.unwrap_or(2)).await)
}

/// The queued commands; the console's CSRF token comes in `X-CSRF-Token`.
pub async fn apply(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    headers: HeaderMap,
    axum::Json(batch): axum::Json<OfflineBatch>,
) -> Response {
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(e) = user.check_csrf(token) {
        return e.into_response();
    }
    json(sync::apply(&s.db, &user.actor, batch).await)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // The worker itself is checked on every visit, so a new version takes over.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn worker() -> Response {
    asset("text/javascript; charset=utf-8", WORKER)
}

pub async fn manifest() -> Response {
    asset("application/manifest+json", MANIFEST)
}

pub async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}
