//! Holding, confirming, booking, moving and cancelling appointments. Every write takes an
//! optional `Idempotency-Key` header: a retry with the same key and body gets the first
//! answer, and never books twice.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::idempotency;
use crate::domain::scheduling::appointments::{self, Appointment, Hold, Visit};
use crate::domain::scheduling::waitlist::{self, Offer};
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Path, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(hold, release))
        .routes(routes!(desk_hold, desk_release))
        .routes(routes!(confirm))
        .routes(routes!(book_for))
        .routes(routes!(my_appointments))
        .routes(routes!(get_appointment))
        .routes(routes!(reschedule))
        .routes(routes!(cancel))
        .routes(routes!(mark))
        .routes(routes!(doctor_day))
        .routes(routes!(clinic_day))
        .routes(routes!(join_waitlist))
        .routes(routes!(waitlist_for))
        .routes(routes!(my_offers))
        .routes(routes!(accept_offer))
}

/// Runs a booking write once per `Idempotency-Key` (when the client sends one).
async fn once<T, F>(
    s: &AppState,
    actor: &Actor,
    headers: &HeaderMap,
    operation: &str,
    request: serde_json::Value,
    status: StatusCode,
    op: impl FnOnce() -> F,
) -> Result<Response>
where
    T: Serialize + serde::de::DeserializeOwned,
    F: std::future::Future<Output = Result<T>>,
{
    let Some(key) = headers.get("idempotency-key") else {
        return Ok((status, Json(op().await?)).into_response());
    };
    let key = key.to_str().unwrap_or("\u{0}");
    let user = actor.principal()?.user_id;
    let answer = idempotency::once(&s.db, user, key, operation, request, op).await?;
    let mut response = match answer.outcome {
        Ok(value) => (status, Json(value)).into_response(),
        Err(e) => e.into_response(),
    };
    if answer.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Holds a free slot for the signed-in patient (default 5 minutes); confirm it to book.
#[utoipa::path(post, path = "/slots/{id}/hold", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path),
    ("Idempotency-Key" = Option<String>, Header, description = "Retry key: 1 to 200 visible ASCII characters", pattern = "^[!-~]{1,200}$")), responses(
    (status = 201, body = Hold),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Taken, too soon, or too many holds", body = Problem, content_type = "application/problem+json"),
))]
async fn hold(
    State(s): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let minutes = s.config.hold_minutes;
    once(
        &s,
        &actor,
        &headers,
        "hold",
        serde_json::json!({"slot": id}),
        StatusCode::CREATED,
        || appointments::hold(&s.db, &actor, id, minutes),
    )
    .await
}

/// Lets go of the caller's hold.
#[utoipa::path(delete, path = "/slots/{id}/hold", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn release(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    appointments::release(&s.db, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Holds a free slot for the front desk (the clinic's staff) for 10 minutes while it talks
/// to the patient; `POST /slots/{id}/book` by the same person then books it.
#[utoipa::path(post, path = "/slots/{id}/desk-hold", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 201, body = Hold),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Taken or too soon", body = Problem, content_type = "application/problem+json"),
))]
async fn desk_hold(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Hold>)> {
    let hold = appointments::hold_for_desk(&s.db, &actor, id).await?;
    Ok((StatusCode::CREATED, Json(hold)))
}

/// The desk lets go of its hold.
#[utoipa::path(delete, path = "/slots/{id}/desk-hold", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204),
))]
async fn desk_release(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    appointments::release_desk_hold(&s.db, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// What the visit is for, in the patient's words (optional).
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::reason)]
    pub reason: String,
}

/// Confirms the caller's hold: the appointment is booked.
#[utoipa::path(post, path = "/slots/{id}/confirm", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path),
    ("Idempotency-Key" = Option<String>, Header, description = "Retry key: 1 to 200 visible ASCII characters", pattern = "^[!-~]{1,200}$")), request_body = ConfirmBody, responses(
    (status = 201, body = Appointment),
    (status = 409, description = "The hold lapsed", body = Problem, content_type = "application/problem+json"),
))]
async fn confirm(
    State(s): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(b): Json<ConfirmBody>,
) -> Result<Response> {
    let request = serde_json::json!({"slot": id, "body": &b});
    once(
        &s,
        &actor,
        &headers,
        "confirm",
        request,
        StatusCode::CREATED,
        || appointments::confirm(&s.db, &actor, id, &b.reason),
    )
    .await
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookForBody {
    pub patient_id: Uuid,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::reason)]
    pub reason: String,
}

/// Books a free slot for a patient (clinic staff).
#[utoipa::path(post, path = "/slots/{id}/book", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path),
    ("Idempotency-Key" = Option<String>, Header, description = "Retry key: 1 to 200 visible ASCII characters", pattern = "^[!-~]{1,200}$")), request_body = BookForBody, responses(
    (status = 201, body = Appointment),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn book_for(
    State(s): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(b): Json<BookForBody>,
) -> Result<Response> {
    let request = serde_json::json!({"slot": id, "body": &b});
    once(
        &s,
        &actor,
        &headers,
        "book_for",
        request,
        StatusCode::CREATED,
        || appointments::book_for(&s.db, &actor, id, b.patient_id, &b.reason),
    )
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MineQuery {
    /// Include past and cancelled visits.
    #[serde(default)]
    pub include_past: bool,
}

/// The signed-in patient's appointments.
#[utoipa::path(get, path = "/appointments/mine", tag = "booking", security(("bearer" = [])), params(MineQuery), responses(
    (status = 200, body = Vec<Appointment>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn my_appointments(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<MineQuery>,
) -> Result<Json<Vec<Appointment>>> {
    Ok(Json(
        appointments::mine(&s.db, &actor, q.include_past).await?,
    ))
}

/// One appointment (its patient, its doctor, or the clinic's staff).
#[utoipa::path(get, path = "/appointments/{id}", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Appointment),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_appointment(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Appointment>> {
    Ok(Json(appointments::get(&s.db, &actor, id).await?))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    /// A free slot at the same clinic.
    pub slot_id: Uuid,
}

/// Moves the appointment to another free slot; the old one is freed in the same step.
#[utoipa::path(post, path = "/appointments/{id}/reschedule", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path),
    ("Idempotency-Key" = Option<String>, Header, description = "Retry key: 1 to 200 visible ASCII characters", pattern = "^[!-~]{1,200}$")), request_body = RescheduleBody, responses(
    (status = 200, body = Appointment),
    (status = 409, description = "Taken, or past the cutoff", body = Problem, content_type = "application/problem+json"),
))]
async fn reschedule(
    State(s): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(b): Json<RescheduleBody>,
) -> Result<Response> {
    let request = serde_json::json!({"appointment": id, "body": &b});
    once(
        &s,
        &actor,
        &headers,
        "reschedule",
        request,
        StatusCode::OK,
        || appointments::reschedule(&s.db, &actor, id, b.slot_id),
    )
    .await
}

/// Cancels; patients up to the clinic's cutoff, staff any time.
#[utoipa::path(post, path = "/appointments/{id}/cancel", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path),
    ("Idempotency-Key" = Option<String>, Header, description = "Retry key: 1 to 200 visible ASCII characters", pattern = "^[!-~]{1,200}$")), request_body = ConfirmBody, responses(
    (status = 200, body = Appointment),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn cancel(
    State(s): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(b): Json<ConfirmBody>,
) -> Result<Response> {
    let request = serde_json::json!({"appointment": id, "body": &b});
    once(
        &s,
        &actor,
        &headers,
        "cancel",
        request,
        StatusCode::OK,
        || appointments::cancel(&s.db, &actor, id, &b.reason),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkBody {
    pub status: Visit,
}

/// Marks the visit checked in, completed or no-show (staff, or the doctor).
#[utoipa::path(post, path = "/appointments/{id}/status", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = MarkBody, responses(
    (status = 200, body = Appointment),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn mark(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<MarkBody>,
) -> Result<Json<Appointment>> {
    Ok(Json(appointments::mark(&s.db, &actor, id, b.status).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DayQuery {
    /// Clinic-local date, `YYYY-MM-DD`.
    pub date: NaiveDate,
}

/// A doctor's appointments on a day (the doctor, or the clinic's staff).
#[utoipa::path(get, path = "/doctors/{id}/appointments", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path), DayQuery),
    responses((status = 200, body = Vec<Appointment>)))]
async fn doctor_day(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<DayQuery>,
) -> Result<Json<Vec<Appointment>>> {
    Ok(Json(
        appointments::doctor_day(&s.db, &actor, id, q.date).await?,
    ))
}

/// A clinic's appointments on a day (its staff).
#[utoipa::path(get, path = "/clinics/{id}/appointments", tag = "booking", security(("bearer" = [])), params(("id" = Uuid, Path), DayQuery),
    responses((status = 200, body = Vec<Appointment>)))]
async fn clinic_day(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<DayQuery>,
) -> Result<Json<Vec<Appointment>>> {
    Ok(Json(
        appointments::clinic_day(&s.db, &actor, id, q.date).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistBody {
    /// Wait for this doctor…
    pub doctor_id: Option<Uuid>,
    /// …or for any doctor of this specialty (slug).
    pub specialty: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::short_note)]
    pub note: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistForBody {
    pub doctor_id: Uuid,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::short_note)]
    pub note: String,
}

/// Puts a patient the clinic knows on the waitlist for one of its doctors (its staff).
#[utoipa::path(post, path = "/patients/{id}/waitlist", tag = "care", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = WaitlistForBody, responses(
    (status = 201, body = waitlist::WaitlistEntry),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such doctor, or a patient the clinic does not know", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Already waiting", body = Problem, content_type = "application/problem+json"),
))]
async fn waitlist_for(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(body): Json<WaitlistForBody>,
) -> Result<(StatusCode, Json<waitlist::WaitlistEntry>)> {
    let entry = waitlist::join_for(&s.db, &actor, id, body.doctor_id, &body.note).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Puts the signed-in patient on the waitlist: when a matching time is freed, it is
/// held for the first in line and offered to them.
#[utoipa::path(post, path = "/waitlist", tag = "care", security(("bearer" = [])), request_body = WaitlistBody, responses(
    (status = 201, body = waitlist::WaitlistEntry),
    (status = 404, description = "No such doctor or specialty", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Already waiting", body = Problem, content_type = "application/problem+json"),
))]
async fn join_waitlist(
    State(s): State<AppState>,
    actor: Actor,
    Json(b): Json<WaitlistBody>,
) -> Result<(StatusCode, Json<waitlist::WaitlistEntry>)> {
    let entry = waitlist::join(&s.db, &actor, b.doctor_id, b.specialty.as_deref(), &b.note).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Freed times offered to the signed-in patient from the waitlist.
#[utoipa::path(get, path = "/waitlist/offers", tag = "care", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Offer>),
))]
async fn my_offers(State(s): State<AppState>, actor: Actor) -> Result<Json<Vec<Offer>>> {
    Ok(Json(waitlist::my_offers(&s.db, &actor).await?))
}

/// Books an offered time.
#[utoipa::path(post, path = "/waitlist/offers/{id}/accept", tag = "care", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 201, body = Appointment),
    (status = 409, description = "The offer lapsed", body = Problem, content_type = "application/problem+json"),
))]
async fn accept_offer(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Appointment>)> {
    Ok((
        StatusCode::CREATED,
        Json(waitlist::accept(&s.db, &actor, id).await?),
    ))
}
