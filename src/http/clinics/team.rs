//! Running a clinic: its team (invitations), its price list and its logo.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::clinics::branding::{self, MAX_LOGO_BYTES};
use crate::domain::clinics::prices::{self, Price, PriceItem};
use crate::domain::clinics::staff::{self, StaffInvite, StaffMember};
use crate::error::{Code, Error, Problem, Result};
use crate::http::clinics::{ClinicView, view};
use crate::http::extract::{Json, Path};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_staff, invite_staff))
        .routes(routes!(list_prices, replace_prices))
        .routes(routes!(get_logo, put_logo))
}

/// The clinic's team: admins, receptionists and doctors with accounts (its staff).
#[utoipa::path(get, path = "/clinics/{id}/staff", tag = "clinics", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<StaffMember>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn list_staff(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<StaffMember>>> {
    Ok(Json(staff::list(&s.db, &actor, id).await?))
}

/// Invites someone to the team by email (the clinic's admins; `clinic_admin` by system admins).
#[utoipa::path(post, path = "/clinics/{id}/staff", tag = "clinics", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = StaffInvite, responses(
    (status = 201, body = StaffMember),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn invite_staff(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(form): Json<StaffInvite>,
) -> Result<(StatusCode, Json<StaffMember>)> {
    let member = staff::invite(&s.db, &s.mailer, &actor, id, form).await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// The clinic's prices per visit type, clinic-wide and per doctor (public).
#[utoipa::path(get, path = "/clinics/{id}/prices", tag = "clinics", params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<Price>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn list_prices(State(s): State<AppState>, Path(id): Path<Uuid>) -> Result<Json<Vec<Price>>> {
    Ok(Json(prices::list(&s.db, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceList {
    pub prices: Vec<PriceItem>,
}

/// Replaces the whole price list (the clinic's admins).
#[utoipa::path(put, path = "/clinics/{id}/prices", tag = "clinics", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = PriceList, responses(
    (status = 200, body = Vec<Price>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn replace_prices(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(list): Json<PriceList>,
) -> Result<Json<Vec<Price>>> {
    Ok(Json(prices::replace(&s.db, &actor, id, list.prices).await?))
}

/// The clinic's logo image.
#[utoipa::path(get, path = "/clinics/{id}/logo", tag = "clinics", params(("id" = Uuid, Path)), responses(
    (status = 200, description = "PNG, JPEG or WebP image", content_type = "image/*"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_logo(State(s): State<AppState>, Path(id): Path<Uuid>) -> Result<Response> {
    let (bytes, mime) = branding::logo(&s.db, s.files.as_ref(), id).await?;
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static(mime)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Uploads the logo as the raw request body (PNG, JPEG or WebP, at most 512 KiB; the
/// clinic's admins).
#[utoipa::path(put, path = "/clinics/{id}/logo", tag = "clinics", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body(content = Vec<u8>, content_type = "image/png", description = "the image bytes; image/jpeg and image/webp too"),
    responses(
    (status = 200, body = ClinicView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 413, body = Problem, content_type = "application/problem+json"),
    (status = 415, body = Problem, content_type = "application/problem+json"),
))]
async fn put_logo(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ClinicView>> {
    let bytes = axum::body::to_bytes(body, MAX_LOGO_BYTES + 1)
        .await
        .map_err(|_| {
            Error::new(
                Code::PayloadTooLarge,
                format!("A logo may be at most {} KiB.", MAX_LOGO_BYTES / 1024),
            )
        })?;
    let declared = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let clinic = branding::set_logo(&s.db, s.files.as_ref(), &actor, id, declared, &bytes).await?;
    Ok(Json(view(&s, clinic).await?))
}
