//! Staff shifts and the clinic's opening hours: set by its admins, coverage and conflicts
//! for its admins and staff, and everyone's own shifts.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::scheduling::shifts::{
    self, Coverage, DaysQuery, OnShift, OpeningSpan, Shift, ShiftChange, ShiftException, ShiftForm,
};
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Path, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_hours, put_hours))
        .routes(routes!(list_shifts, create_shift))
        .routes(routes!(update_shift, delete_shift))
        .routes(routes!(set_exception))
        .routes(routes!(clear_exception))
        .routes(routes!(coverage))
        .routes(routes!(my_shifts))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpeningHours {
    pub hours: Vec<OpeningSpan>,
}

/// When the clinic is open, per weekday in its local time (public).
#[utoipa::path(get, path = "/clinics/{id}/opening-hours", tag = "shifts", params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<OpeningSpan>),
))]
async fn get_hours(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<OpeningSpan>>> {
    Ok(Json(shifts::opening_hours(&s.db, id).await?))
}

/// Replaces the opening hours (the clinic's admins).
#[utoipa::path(put, path = "/clinics/{id}/opening-hours", tag = "shifts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = OpeningHours, responses(
    (status = 200, body = Vec<OpeningSpan>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn put_hours(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(body): Json<OpeningHours>,
) -> Result<Json<Vec<OpeningSpan>>> {
    Ok(Json(
        shifts::set_opening_hours(&s.db, &actor, id, body.hours).await?,
    ))
}

/// The clinic's weekly shifts with their coming exceptions (its admins and staff).
#[utoipa::path(get, path = "/clinics/{id}/shifts", tag = "shifts", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<Shift>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn list_shifts(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Shift>>> {
    Ok(Json(shifts::list(&s.db, &actor, id).await?))
}

/// Adds a weekly shift for a doctor or a member of staff (the clinic's admins). The answer
/// lists the doctor's appointments still without them on shift.
#[utoipa::path(post, path = "/clinics/{id}/shifts", tag = "shifts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ShiftForm, responses(
    (status = 201, body = ShiftChange),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "Bad times, someone without that role here, or an overlap with their other shifts", body = Problem, content_type = "application/problem+json"),
))]
async fn create_shift(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(form): Json<ShiftForm>,
) -> Result<(StatusCode, Json<ShiftChange>)> {
    let change = shifts::create(&s.db, &actor, id, form).await?;
    Ok((StatusCode::CREATED, Json(change)))
}

/// Changes a shift's weekday, hours or dates (its person and role stay). The answer lists
/// the doctor's appointments the change leaves without them on shift: reported, never moved.
#[utoipa::path(put, path = "/shifts/{id}", tag = "shifts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ShiftForm, responses(
    (status = 200, body = ShiftChange),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn update_shift(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(form): Json<ShiftForm>,
) -> Result<Json<ShiftChange>> {
    Ok(Json(shifts::update(&s.db, &actor, id, form).await?))
}

/// Removes a shift (and its exceptions); the answer lists the appointments left uncovered.
#[utoipa::path(delete, path = "/shifts/{id}", tag = "shifts", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = ShiftChange),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn delete_shift(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<ShiftChange>> {
    Ok(Json(shifts::delete(&s.db, &actor, id).await?))
}

/// One day of a shift off (no `start`/`end`) or at other hours.
#[utoipa::path(post, path = "/shifts/{id}/exceptions", tag = "shifts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ShiftException, responses(
    (status = 200, body = ShiftChange),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "Bad times, or the shift does not fall on that date", body = Problem, content_type = "application/problem+json"),
))]
async fn set_exception(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(e): Json<ShiftException>,
) -> Result<Json<ShiftChange>> {
    Ok(Json(
        shifts::set_exception(&s.db, &actor, id, e, false).await?,
    ))
}

/// The day works as the weekly shift says again.
#[utoipa::path(delete, path = "/shifts/{id}/exceptions/{date}", tag = "shifts", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("date" = NaiveDate, Path)), responses(
    (status = 200, body = ShiftChange),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn clear_exception(
    State(s): State<AppState>,
    actor: Actor,
    Path((id, date)): Path<(Uuid, NaiveDate)>,
) -> Result<Json<ShiftChange>> {
    let e = ShiftException {
        local_date: date,
        start_local: None,
        end_local: None,
        reason: String::new(),
    };
    Ok(Json(
        shifts::set_exception(&s.db, &actor, id, e, true).await?,
    ))
}

/// Who is on each day, the opening hours no front-desk person or no doctor covers, and
/// the doctors' bookings and bookable times outside their shifts (admins and staff).
#[utoipa::path(get, path = "/clinics/{id}/shifts/coverage", tag = "shifts", security(("bearer" = [])), params(("id" = Uuid, Path), DaysQuery), responses(
    (status = 200, body = Coverage),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn coverage(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<DaysQuery>,
) -> Result<Json<Coverage>> {
    Ok(Json(shifts::coverage(&s.db, &actor, id, &q).await?))
}

/// The signed-in person's own shifts at every clinic.
#[utoipa::path(get, path = "/me/shifts", tag = "shifts", security(("bearer" = [])), params(DaysQuery), responses(
    (status = 200, body = Vec<OnShift>),
))]
async fn my_shifts(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<DaysQuery>,
) -> Result<Json<Vec<OnShift>>> {
    Ok(Json(shifts::mine(&s.db, &actor, &q).await?))
}
