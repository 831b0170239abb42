//! Liveness and readiness probes.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Code, Error, Result};
use crate::http::extract::Json;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        database: None,
    })
}

/// The process can serve requests: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Health),
    (status = 503, description = "The database does not answer", body = crate::error::Problem, content_type = "application/problem+json"),
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>> {
    match state.db.ping().await {
        Ok(()) => Ok(Json(Health {
            status: "ready",
            database: Some(state.db.backend()),
        })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(Error::new(
                Code::ServiceUnavailable,
                "The database does not answer.",
            ))
        }
    }
}
