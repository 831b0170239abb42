//! Doctors' notes, care plans, reminders and check-ins, and notification settings.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::care::care_plans::{self, ActionableSteps, StoredChecklistItem};
use crate::domain::care::notes::{self, Note, Submitted};
use crate::domain::care::reminders::{self, Reminder};
use crate::domain::identity::people;
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Path, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit_note, list_notes))
        .routes(routes!(get_note))
        .routes(routes!(actionable_steps))
        .routes(routes!(my_reminders))
        .routes(routes!(check_in))
        .routes(routes!(tick))
        .routes(routes!(notification_settings))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// The note, as the doctor wrote it (1 to 20,000 characters; line breaks and tabs are
    /// kept, other control characters and bidirectional overrides are refused).
    #[schema(schema_with = crate::domain::validate::schema::note)]
    pub text: String,
}

/// A doctor's note about their patient: stored sealed, its checklist and plan extracted
/// by the model, the plan scheduled as reminders; the doctor's previous plan for this
/// patient is superseded.
#[utoipa::path(post, path = "/patients/{id}/notes", tag = "care", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = NoteBody, responses(
    (status = 201, body = Submitted),
    (status = 403, description = "Not this patient's doctor", body = Problem, content_type = "application/problem+json"),
    (status = 502, description = "The model's answer could not be read", body = Problem, content_type = "application/problem+json"),
))]
async fn submit_note(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<NoteBody>,
) -> Result<(StatusCode, Json<Submitted>)> {
    // Who may write, and what, is checked before the model is asked, and again when storing.
    notes::require_writer(&s.db, &actor, id).await?;
    let text = notes::check_text(&b.text)?;
    let extraction = s.agent.extract_plan(&text).await?;
    let submitted = notes::submit(&s.db, &actor, id, &text, &extraction).await?;
    Ok((StatusCode::CREATED, Json(submitted)))
}

/// A patient's notes, newest first (the patient and their doctors; every read audited).
#[utoipa::path(get, path = "/patients/{id}/notes", tag = "care", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<Note>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn list_notes(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Note>>> {
    Ok(Json(notes::list(&s.db, &actor, id).await?))
}

#[utoipa::path(get, path = "/notes/{id}", tag = "care", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Note),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_note(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Note>> {
    Ok(Json(notes::get(&s.db, &actor, id).await?))
}

/// The patient's current checklists and plans (one per doctor) and the next reminders.
#[utoipa::path(get, path = "/patients/{id}/actionable-steps", tag = "care", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = ActionableSteps),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn actionable_steps(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<ActionableSteps>> {
    Ok(Json(care_plans::actionable_steps(&s.db, &actor, id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReminderQuery {
    /// From this instant (default: one day ago).
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub from: Option<DateTime<Utc>>,
    /// Until this instant (default: a week after `from`; at most 400 days).
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub to: Option<DateTime<Utc>>,
}

/// The signed-in patient's plan reminders.
#[utoipa::path(get, path = "/reminders", tag = "care", security(("bearer" = [])), params(ReminderQuery), responses(
    (status = 200, body = Vec<Reminder>),
))]
async fn my_reminders(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<ReminderQuery>,
) -> Result<Json<Vec<Reminder>>> {
    crate::domain::validate::query_instants([("from", q.from), ("to", q.to)])?;
    let from = q.from.unwrap_or_else(|| Utc::now() - Duration::days(1));
    let to =
        q.to.unwrap_or(from + Duration::days(8))
            .min(from + Duration::days(400));
    Ok(Json(reminders::mine(&s.db, &actor, from, to).await?))
}

/// The patient did what the reminder asked.
#[utoipa::path(post, path = "/reminders/{id}/check-in", tag = "care", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Reminder),
    (status = 409, description = "Not due yet, or already done", body = Problem, content_type = "application/problem+json"),
))]
async fn check_in(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Reminder>> {
    Ok(Json(reminders::check_in(&s.db, &actor, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TickBody {
    /// `false` un-ticks it.
    #[serde(default = "yes")]
    pub done: bool,
}

fn yes() -> bool {
    true
}

/// Ticks a checklist item off.
#[utoipa::path(post, path = "/checklist-items/{id}/done", tag = "care", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = TickBody, responses(
    (status = 200, body = StoredChecklistItem),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn tick(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<TickBody>,
) -> Result<Json<StoredChecklistItem>> {
    Ok(Json(care_plans::tick(&s.db, &actor, id, b.done).await?))
}

/// How the signed-in user wants notifications, and their time zone for reminders.
#[utoipa::path(put, path = "/me/notifications", tag = "care", security(("bearer" = [])),
    request_body = people::NotificationSettings, responses(
    (status = 200, body = people::NotificationSettings),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn notification_settings(
    State(s): State<AppState>,
    actor: Actor,
    Json(b): Json<people::NotificationSettings>,
) -> Result<Json<people::NotificationSettings>> {
    Ok(Json(people::set_notifications(&s.db, &actor, b).await?))
}
