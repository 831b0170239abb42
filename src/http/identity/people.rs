//! `/api/v1/me` and `/api/v1/admin/users`: accounts and roles; the signed-in user's
//! invitations to clinic roles and the clinics they share their record with.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::care::access::{self, Share};
use crate::domain::erasure::{self, Erased, Export};
use crate::domain::identity::invitations::{self, Invitation};
use crate::domain::identity::people::UserView;
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Path};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, delete_me))
        .routes(routes!(export_me))
        .routes(routes!(my_invitations))
        .routes(routes!(accept_invitation))
        .routes(routes!(my_shares))
        .routes(routes!(share_record, unshare_record))
}

/// Everything the service keeps about the signed-in person, as JSON (audited).
#[utoipa::path(get, path = "/me/export", tag = "people", security(("bearer" = [])), responses(
    (status = 200, body = Export),
))]
async fn export_me(State(s): State<AppState>, actor: Actor) -> Result<Json<Export>> {
    Ok(Json(erasure::export(&s.db, &actor).await?))
}

/// Confirms who is asking before the account is erased.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmIdentity {
    /// The account's password…
    #[serde(default)]
    pub password: Option<String>,
    /// …or, for an account without one, a sign-in code mailed by
    /// `POST /api/v1/auth/login/code/start`.
    #[serde(default)]
    pub code: Option<String>,
}

/// Erases the signed-in account: contact data and what the person wrote outside the
/// clinical record are removed, future visits cancelled (their times offered to the
/// waitlist), reminders stopped, every login ended; the clinical record stays sealed for
/// `RECORD_RETENTION_DAYS`, then is purged.
#[utoipa::path(delete, path = "/me", tag = "people", security(("bearer" = [])), request_body = ConfirmIdentity, responses(
    (status = 200, body = Erased),
    (status = 409, description = "The last system admin", body = Problem, content_type = "application/problem+json"),
))]
async fn delete_me(
    State(s): State<AppState>,
    actor: Actor,
    Json(confirm): Json<ConfirmIdentity>,
) -> Result<Json<Erased>> {
    s.identity
        .reauthenticate(&actor, confirm.password.as_deref(), confirm.code.as_deref())
        .await?;
    Ok(Json(erasure::erase_own(&s.db, &actor).await?))
}

/// The signed-in account's invitations to clinic roles that can still be accepted.
#[utoipa::path(get, path = "/invitations", tag = "people", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Invitation>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn my_invitations(State(s): State<AppState>, actor: Actor) -> Result<Json<Vec<Invitation>>> {
    Ok(Json(invitations::mine(&s.db, &actor).await?))
}

/// Accepts an invitation to a clinic role (only the invited account, signed in; audited).
#[utoipa::path(post, path = "/invitations/{id}/accept", tag = "people", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Invitation),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such invitation for this account, or it expired or was used", body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn accept_invitation(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Invitation>> {
    Ok(Json(invitations::accept(&s.db, &actor, id).await?))
}

/// The clinics the signed-in patient shares their whole record with.
#[utoipa::path(get, path = "/me/record-shares", tag = "people", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Share>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn my_shares(State(s): State<AppState>, actor: Actor) -> Result<Json<Vec<Share>>> {
    Ok(Json(access::shares(&s.db, &actor).await?))
}

/// Shares the signed-in patient's whole record with a clinic: its doctors who treat them
/// then read notes and plans other clinics wrote. Revocable; audited.
#[utoipa::path(put, path = "/me/record-shares/{id}", tag = "people", security(("bearer" = [])), params(("id" = Uuid, Path, description = "The clinic")), responses(
    (status = 200, body = Share),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn share_record(
    State(s): State<AppState>,
    actor: Actor,
    Path(clinic_id): Path<Uuid>,
) -> Result<Json<Share>> {
    Ok(Json(access::share(&s.db, &actor, clinic_id).await?))
}

/// Stops sharing the signed-in patient's record with a clinic (audited).
#[utoipa::path(delete, path = "/me/record-shares/{id}", tag = "people", security(("bearer" = [])), params(("id" = Uuid, Path, description = "The clinic")), responses(
    (status = 204),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn unshare_record(
    State(s): State<AppState>,
    actor: Actor,
    Path(clinic_id): Path<Uuid>,
) -> Result<StatusCode> {
    access::unshare(&s.db, &actor, clinic_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/me", tag = "people", security(("bearer" = [])), responses(
    (status = 200, body = UserView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn me(State(s): State<AppState>, actor: Actor) -> Result<Json<UserView>> {
    Ok(Json(s.identity.me(&actor).await?))
}
