//! Everything under `/api/v1/admin`: applications to join and clinic status, users and
//! roles, the audit trail, the notification outbox, the model-call figures and the
//! clinical records doctors removed. The domain
//! checks who may do each (system admins; clinic admins for their own clinic's users and
//! audit).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::{Actor, Grant, Role};
use crate::domain::audit::{self, AuditFilter, AuditRecord, ChainReport};
use crate::domain::clinical::records::{self, Removed};
use crate::domain::clinics::{self, ClinicRequest};
use crate::domain::identity::people::{self, UserView};
use crate::domain::orchestration::{self, Stats, StatsQuery};
use crate::domain::outbox::{self, Notification};
use crate::error::{Problem, Result};
use crate::http::clinics::{ClinicView, view};
use crate::http::extract::{Json, Path, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_requests))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(suspend))
        .routes(routes!(reactivate))
        .routes(routes!(list_users))
        .routes(routes!(grant_role))
        .routes(routes!(revoke_role))
        .routes(routes!(deactivate_user))
        .routes(routes!(audit_log))
        .routes(routes!(verify_audit))
        .routes(routes!(list_outbox))
        .routes(routes!(retry_notification))
        .routes(routes!(orchestration_stats))
        .routes(routes!(removed_records))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatusFilter {
    /// `pending`, `approved` or `rejected`.
    pub status: Option<String>,
}

/// Applications to join (system admins).
#[utoipa::path(get, path = "/admin/clinic-requests", tag = "clinics", security(("bearer" = [])), params(StatusFilter), responses(
    (status = 200, body = Vec<ClinicRequest>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn list_requests(
    State(s): State<AppState>,
    actor: Actor,
    Query(f): Query<StatusFilter>,
) -> Result<Json<Vec<ClinicRequest>>> {
    Ok(Json(
        clinics::list_requests(&s.db, &actor, f.status.as_deref()).await?,
    ))
}

/// Approves an application: the clinic is created and its contact invited as clinic admin.
#[utoipa::path(post, path = "/admin/clinic-requests/{id}/approve", tag = "clinics", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 200, body = ClinicView),
    (status = 409, description = "Already decided", body = Problem, content_type = "application/problem+json"),
))]
async fn approve(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<ClinicView>> {
    let clinic = clinics::approve(&s.db, &s.mailer, &actor, id).await?;
    Ok(Json(view(&s, clinic).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (optional; kept in the audit log).
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::reason)]
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Why, as the applicant is told.
    #[schema(schema_with = crate::domain::validate::schema::decision_reason)]
    pub reason: String,
}

/// Rejects an application with a reason.
#[utoipa::path(post, path = "/admin/clinic-requests/{id}/reject", tag = "clinics", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RejectBody, responses(
    (status = 200, body = ClinicRequest),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn reject(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<RejectBody>,
) -> Result<Json<ClinicRequest>> {
    Ok(Json(
        clinics::reject(&s.db, &s.mailer, &actor, id, &b.reason).await?,
    ))
}

/// Suspends a clinic: hidden from patients, no new bookings.
#[utoipa::path(post, path = "/admin/clinics/{id}/suspend", tag = "clinics", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReasonBody, responses((status = 200, body = ClinicView)))]
async fn suspend(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<ReasonBody>,
) -> Result<Json<ClinicView>> {
    let clinic = clinics::set_status(&s.db, &actor, id, false, &b.reason).await?;
    Ok(Json(view(&s, clinic).await?))
}

/// Reactivates a suspended clinic.
#[utoipa::path(post, path = "/admin/clinics/{id}/reactivate", tag = "clinics", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReasonBody, responses((status = 200, body = ClinicView)))]
async fn reactivate(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<ReasonBody>,
) -> Result<Json<ClinicView>> {
    let clinic = clinics::set_status(&s.db, &actor, id, true, &b.reason).await?;
    Ok(Json(view(&s, clinic).await?))
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

/// The audit trail, newest first (system admins; clinic admins see their clinic's).
#[utoipa::path(get, path = "/admin/audit", tag = "audit", security(("bearer" = [])), params(AuditFilter), responses(
    (status = 200, body = Vec<AuditRecord>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn audit_log(
    State(s): State<AppState>,
    actor: Actor,
    Query(f): Query<AuditFilter>,
) -> Result<Json<Vec<AuditRecord>>> {
    Ok(Json(audit::list(&s.db, &actor, &f).await?))
}

/// Recomputes the audit hash chain and reports the first broken link.
#[utoipa::path(get, path = "/admin/audit/verify", tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = ChainReport),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn verify_audit(State(s): State<AppState>, actor: Actor) -> Result<Json<ChainReport>> {
    Ok(Json(audit::verify(&s.db, &actor).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// `pending`, `sending`, `sent`, `dead` or `cancelled`.
    #[param(pattern = "^(pending|sending|sent|dead|cancelled)$")]
    pub status: Option<String>,
    #[serde(default = "fifty")]
    pub limit: i64,
}

fn fifty() -> i64 {
    50
}

/// The notification outbox, newest first (system admins): failures and dead letters.
#[utoipa::path(get, path = "/admin/outbox", tag = "admin", security(("bearer" = [])), params(OutboxQuery), responses(
    (status = 200, body = Vec<Notification>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn list_outbox(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<OutboxQuery>,
) -> Result<Json<Vec<Notification>>> {
    Ok(Json(
        outbox::list(&s.db, &actor, q.status.as_deref(), q.limit).await?,
    ))
}

/// Sends a dead-lettered notification again.
#[utoipa::path(post, path = "/admin/outbox/{id}/retry", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn retry_notification(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    outbox::retry(&s.db, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// LLM call figures per provider and day: attempts, outcomes, latency p50/p95, tokens,
/// retries, errors by class (system admins).
#[utoipa::path(get, path = "/admin/orchestration/stats", tag = "chat", security(("bearer" = [])), params(StatsQuery), responses(
    (status = 200, body = Stats),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn orchestration_stats(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Stats>> {
    Ok(Json(orchestration::stats(&s.db, &actor, &q).await?))
}

/// Visit records doctors removed, newest first (system admins): who, when and why, not
/// their clinical content. The retention job purges them.
#[utoipa::path(get, path = "/admin/records/removed", tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Removed>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn removed_records(State(s): State<AppState>, actor: Actor) -> Result<Json<Vec<Removed>>> {
    Ok(Json(records::removed(&s.db, &actor).await?))
}
