//! `/api/v1/me` and `/api/v1/admin/users`: accounts and roles; the signed-in user's
//! invitations to clinic roles and the clinics they share their record with.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::domain::actor::{Actor, Grant, Role};
use crate::domain::care_access::{self, Share};
use crate::domain::erasure::{self, Erased, Export};
use crate::domain::invitations::{self, Invitation};
use crate::domain::people::{self, UserView};
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Path, Query};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, delete_me))
        .routes(routes!(export_me))
        .routes(routes!(list_users))
        .routes(routes!(grant_role))
        .routes(routes!(revoke_role))
        .routes(routes!(deactivate_user))
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
    Ok(Json(care_access::shares(&s.db, &actor).await?))
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
    Ok(Json(care_access::share(&s.db, &actor, clinic_id).await?))
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
    care_access::unshare(&s.db, &actor, clinic_id).await?;
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// 1 to 200; default 50.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Users: all of them for a system admin; a clinic admin sees their clinic's people.
#[utoipa::path(get, path = "/admin/users", tag = "people", security(("bearer" = [])), params(Page), responses(
    (status = 200, body = Vec<UserView>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn list_users(
    State(s): State<AppState>,
    actor: Actor,
    Query(page): Query<Page>,
) -> Result<Json<Vec<UserView>>> {
    Ok(Json(
        people::list(
            &s.db,
            &actor,
            page.limit.unwrap_or(50),
            page.offset.unwrap_or(0),
        )
        .await?,
    ))
}

/// Grants a role. System admins grant any role; clinic admins grant `clinic_staff` and
/// `doctor` in their own clinic.
#[utoipa::path(post, path = "/admin/users/{id}/roles", tag = "people", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")), request_body = Grant, responses(
    (status = 200, body = UserView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn grant_role(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(grant): Json<Grant>,
) -> Result<Json<UserView>> {
    Ok(Json(people::grant_role(&s.db, &actor, id, grant).await?))
}

#[derive(Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClinicScope {
    /// The clinic of a clinic role.
    pub clinic_id: Option<Uuid>,
}

/// Takes a role away.
#[utoipa::path(delete, path = "/admin/users/{id}/roles/{role}", tag = "people", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id"), ("role" = Role, Path, description = "Role name"), ClinicScope), responses(
    (status = 200, body = UserView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn revoke_role(
    State(s): State<AppState>,
    actor: Actor,
    Path((id, role)): Path<(Uuid, Role)>,
    Query(scope): Query<ClinicScope>,
) -> Result<Json<UserView>> {
    let grant = Grant {
        role,
        clinic_id: scope.clinic_id,
    };
    Ok(Json(people::revoke_role(&s.db, &actor, id, grant).await?))
}

/// Deactivates an account and ends its logins (system admins).
#[utoipa::path(post, path = "/admin/users/{id}/deactivate", tag = "people", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")), responses(
    (status = 200, body = UserView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "One's own account", body = Problem, content_type = "application/problem+json"),
))]
async fn deactivate_user(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<UserView>> {
    Ok(Json(people::deactivate(&s.db, &actor, id).await?))
}
