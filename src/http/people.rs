//! `/api/v1/me` and `/api/v1/admin/users`: accounts and roles.

use axum::extract::State;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::domain::actor::{Actor, Grant, Role};
use crate::domain::people::{self, UserView};
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Path, Query};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_users))
        .routes(routes!(grant_role))
        .routes(routes!(revoke_role))
        .routes(routes!(deactivate_user))
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
))]
async fn deactivate_user(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<UserView>> {
    Ok(Json(people::deactivate(&s.db, &actor, id).await?))
}
