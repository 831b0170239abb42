//! Clinics, applications to join, specialties, doctors and their schedules.

pub mod team;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::clinics::doctors::{self, Doctor, DoctorFilter, DoctorForm, PatientSummary};
use crate::domain::clinics::specialties::{self, SpecialtyMatch};
use crate::domain::clinics::{self, Clinic, ClinicApplication, ClinicPatch, ClinicRequest};
use crate::domain::scheduling::schedules::{DateOverride, ScheduleForm};
use crate::domain::scheduling::slots::{
    self, Slot, SlotQuery, SpecialtySlot, SyncReport, TimeOffForm,
};
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Path, Query};
use crate::state::AppState;

/// Anonymous applications to join, apart so that they can be rate limited.
pub fn application_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(apply))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clinics))
        .routes(routes!(get_clinic, update_clinic))
        .routes(routes!(search_specialties))
        .routes(routes!(specialty_slots))
        .routes(routes!(browse_doctors))
        .routes(routes!(create_doctor))
        .routes(routes!(get_doctor, update_doctor))
        .routes(routes!(preview_schedule))
        .routes(routes!(set_schedule))
        .routes(routes!(set_override))
        .routes(routes!(add_time_off))
        .routes(routes!(doctor_slots))
        .routes(routes!(select_doctor))
        .routes(routes!(doctor_patients))
}

/// A clinic as patients and staff see it.
#[derive(Serialize, ToSchema)]
pub struct ClinicView {
    #[serde(flatten)]
    pub clinic: Clinic,
    pub specialties: Vec<String>,
    /// Where the logo is served, when the clinic has one.
    pub logo_url: Option<String>,
}

pub(crate) async fn view(s: &AppState, clinic: Clinic) -> Result<ClinicView> {
    let specialties = clinics::specialties_of(&s.db, clinic.id).await?;
    let logo_url = clinic
        .logo_path
        .as_ref()
        .map(|_| format!("/api/v1/clinics/{}/logo", clinic.id));
    Ok(ClinicView {
        clinic,
        specialties,
        logo_url,
    })
}

/// Applies to join (anyone); a system admin decides.
#[utoipa::path(post, path = "/clinic-requests", tag = "clinics", request_body = ClinicApplication, responses(
    (status = 201, body = ClinicRequest),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn apply(
    State(s): State<AppState>,
    actor: Actor,
    Json(form): Json<ClinicApplication>,
) -> Result<(StatusCode, Json<ClinicRequest>)> {
    Ok((
        StatusCode::CREATED,
        Json(clinics::apply(&s.db, &actor, form).await?),
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ClinicFilter {
    /// Specialty slug.
    pub specialty: Option<String>,
    /// Part of the name.
    pub q: Option<String>,
}

/// Active clinics.
#[utoipa::path(get, path = "/clinics", tag = "clinics", params(ClinicFilter), responses((status = 200, body = Vec<ClinicView>)))]
async fn list_clinics(
    State(s): State<AppState>,
    Query(f): Query<ClinicFilter>,
) -> Result<Json<Vec<ClinicView>>> {
    let mut out = Vec::new();
    for clinic in clinics::list(&s.db, f.specialty.as_deref(), f.q.as_deref()).await? {
        out.push(view(&s, clinic).await?);
    }
    Ok(Json(out))
}

/// One active clinic.
#[utoipa::path(get, path = "/clinics/{id}", tag = "clinics", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ClinicView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_clinic(State(s): State<AppState>, Path(id): Path<Uuid>) -> Result<Json<ClinicView>> {
    let clinic = clinics::get_active(&s.db, id).await?;
    Ok(Json(view(&s, clinic).await?))
}

/// Updates the clinic's profile and cancellation policy (its admins).
#[utoipa::path(patch, path = "/clinics/{id}", tag = "clinics", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ClinicPatch, responses(
    (status = 200, body = ClinicView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn update_clinic(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(patch): Json<ClinicPatch>,
) -> Result<Json<ClinicView>> {
    let clinic = clinics::update(&s.db, &actor, id, patch).await?;
    Ok(Json(view(&s, clinic).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SpecialtyQuery {
    /// Words to match: a specialty, a kind of doctor, or symptoms ("itchy rash").
    pub q: Option<String>,
}

/// Specialties ranked for a query (all of them without one).
#[utoipa::path(get, path = "/specialties", tag = "specialties", params(SpecialtyQuery), responses((status = 200, body = Vec<SpecialtyMatch>)))]
async fn search_specialties(
    State(s): State<AppState>,
    Query(q): Query<SpecialtyQuery>,
) -> Result<Json<Vec<SpecialtyMatch>>> {
    Ok(Json(
        specialties::search(&s.db, q.q.as_deref().unwrap_or("")).await?,
    ))
}

/// Free slots of a specialty across clinics, soonest first.
#[utoipa::path(get, path = "/specialties/{slug}/slots", tag = "booking", params(("slug" = String, Path), SlotQuery), responses(
    (status = 200, body = Vec<SpecialtySlot>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn specialty_slots(
    State(s): State<AppState>,
    uri: axum::http::Uri,
    Path(slug): Path<String>,
    Query(q): Query<SlotQuery>,
) -> Result<Response> {
    let read = slots::free_for_specialty(&s.db, &slug, &q, chrono::Utc::now());
    s.listings.answer(&s.db, uri.to_string(), read).await
}

/// Doctors patients can book, filtered.
#[utoipa::path(get, path = "/doctors", tag = "doctors", params(DoctorFilter), responses((status = 200, body = Vec<Doctor>)))]
async fn browse_doctors(
    State(s): State<AppState>,
    Query(f): Query<DoctorFilter>,
) -> Result<Json<Vec<Doctor>>> {
    Ok(Json(doctors::browse(&s.db, &f).await?))
}

/// Adds a doctor to a clinic (its admins); with an email, the doctor is invited.
#[utoipa::path(post, path = "/clinics/{id}/doctors", tag = "doctors", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = DoctorForm, responses(
    (status = 201, body = Doctor),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn create_doctor(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(form): Json<DoctorForm>,
) -> Result<(StatusCode, Json<Doctor>)> {
    Ok((
        StatusCode::CREATED,
        Json(doctors::create(&s.db, &s.mailer, &actor, id, form).await?),
    ))
}

/// Changes a doctor's profile: name, bio, languages, fee, specialties (the clinic's admins).
#[utoipa::path(put, path = "/doctors/{id}", tag = "doctors", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = doctors::DoctorProfile, responses(
    (status = 200, body = Doctor),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn update_doctor(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(form): Json<doctors::DoctorProfile>,
) -> Result<Json<Doctor>> {
    Ok(Json(doctors::update(&s.db, &actor, id, form).await?))
}

/// What saving this schedule would leave uncovered, without saving it: the booked (or
/// held) times it no longer has (the clinic's staff).
#[utoipa::path(post, path = "/doctors/{id}/schedule/preview", tag = "schedules", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ScheduleForm, responses(
    (status = 200, body = Vec<slots::Conflict>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn preview_schedule(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(form): Json<ScheduleForm>,
) -> Result<Json<Vec<slots::Conflict>>> {
    Ok(Json(
        slots::preview(&s.db, &actor, id, slots::Change::Schedule(&form)).await?,
    ))
}

/// One doctor.
#[utoipa::path(get, path = "/doctors/{id}", tag = "doctors", params(("id" = Uuid, Path)), responses(
    (status = 200, body = Doctor),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_doctor(State(s): State<AppState>, Path(id): Path<Uuid>) -> Result<Json<Doctor>> {
    Ok(Json(doctors::find(&s.db, id).await?))
}

/// Replaces the weekly schedule; slots follow, booked ones are kept and reported.
#[utoipa::path(put, path = "/doctors/{id}/schedule", tag = "schedules", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ScheduleForm, responses(
    (status = 200, body = SyncReport),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn set_schedule(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(form): Json<ScheduleForm>,
) -> Result<Json<SyncReport>> {
    Ok(Json(slots::set_schedule(&s.db, &actor, id, form).await?))
}

/// Sets one date's hours, or closes it.
#[utoipa::path(put, path = "/doctors/{id}/overrides", tag = "schedules", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = DateOverride, responses((status = 200, body = SyncReport)))]
async fn set_override(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(o): Json<DateOverride>,
) -> Result<Json<SyncReport>> {
    Ok(Json(slots::set_override(&s.db, &actor, id, o).await?))
}

/// Blocks a span of time (holiday, training).
#[utoipa::path(post, path = "/doctors/{id}/time-off", tag = "schedules", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = TimeOffForm, responses((status = 200, body = SyncReport)))]
async fn add_time_off(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(f): Json<TimeOffForm>,
) -> Result<Json<SyncReport>> {
    Ok(Json(slots::add_time_off(&s.db, &actor, id, f).await?))
}

/// Free slots of one doctor, soonest first.
#[utoipa::path(get, path = "/doctors/{id}/slots", tag = "booking", params(("id" = Uuid, Path), SlotQuery), responses(
    (status = 200, body = Vec<Slot>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn doctor_slots(
    State(s): State<AppState>,
    uri: axum::http::Uri,
    Path(id): Path<Uuid>,
    Query(q): Query<SlotQuery>,
) -> Result<Response> {
    let read = slots::free_for_doctor(&s.db, id, &q, chrono::Utc::now());
    s.listings.answer(&s.db, uri.to_string(), read).await
}

/// The signed-in patient chooses this doctor as theirs.
#[utoipa::path(post, path = "/doctors/{id}/select", tag = "doctors", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Doctor),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn select_doctor(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Doctor>> {
    Ok(Json(doctors::select(&s.db, &actor, id).await?))
}

/// The doctor's patients (the doctor, or the clinic's staff).
#[utoipa::path(get, path = "/doctors/{id}/patients", tag = "doctors", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<PatientSummary>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn doctor_patients(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<PatientSummary>>> {
    Ok(Json(doctors::patients(&s.db, &actor, id).await?))
}
