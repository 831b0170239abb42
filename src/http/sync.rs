//! The front desk's offline work over REST: the snapshot it works from and the batch of
//! commands it made without a network.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::scheduling::sync::{self, OfflineAnswer, OfflineBatch, Snapshot};
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(apply))
        // A day's work offline is more than the API's usual body.
        .layer(axum::extract::DefaultBodyLimit::max(sync::MAX_BATCH_BYTES))
        .routes(routes!(snapshot))
}

/// Applies the desk's offline commands in the order they were made, each with the online
/// rules; one answer per command (applied, already applied, conflict with alternatives,
/// or refused). Resending a batch changes nothing twice.
#[utoipa::path(post, path = "/sync", tag = "sync", security(("bearer" = [])), request_body = OfflineBatch, responses(
    (status = 200, body = Vec<OfflineAnswer>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn apply(
    State(s): State<AppState>,
    actor: Actor,
    Json(batch): Json<OfflineBatch>,
) -> Result<Json<Vec<OfflineAnswer>>> {
    Ok(Json(sync::apply(&s.db, &actor, batch).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    pub clinic_id: Uuid,
    /// The `generated_at` of the last snapshot: only visits and patients changed since.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Days from today (default 2: today and tomorrow, at most 7).
    #[param(minimum = 1, maximum = 7)]
    pub days: Option<u32>,
}

/// Today's and tomorrow's visits and free times of the clinic's doctors and its recent
/// patients (its staff), whole or changed since the last one.
#[utoipa::path(get, path = "/sync/snapshot", tag = "sync", security(("bearer" = [])), params(SnapshotQuery), responses(
    (status = 200, body = Snapshot),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn snapshot(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<SnapshotQuery>,
) -> Result<Json<Snapshot>> {
    let days = q.days.unwrap_or(2);
    if !(1..=sync::MAX_SNAPSHOT_DAYS).contains(&days) {
        return Err(crate::error::Error::new(
            crate::error::Code::InvalidQuery,
            "days must be between 1 and 7",
        ));
    }
    Ok(Json(
        sync::snapshot(&s.db, &actor, q.clinic_id, q.since, days).await?,
    ))
}
