//! The pharmacy over REST: catalogue, deliveries, adjustments, the stock ledger,
//! prescriptions to dispense, dispensing and sales, and alerts.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::pharmacy::alerts::{self, Alerts};
use crate::domain::pharmacy::dispensing::{self, Dispensable, DispenseForm, Dispensing};
use crate::domain::pharmacy::report::{self, StockReport};
use crate::domain::pharmacy::{
    self, Adjustment, Batch, Delivery, LedgerEntry, Medicine, MedicineForm,
};
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Path, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(catalogue, add_medicine))
        .routes(routes!(update_medicine))
        .routes(routes!(batches, receive))
        .routes(routes!(adjust))
        .routes(routes!(ledger))
        .routes(routes!(to_dispense))
        .routes(routes!(dispense))
        .routes(routes!(alerts_now))
        .routes(routes!(stock_report))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StockQuery {
    /// First local date of the movements (default 30 days before `to`).
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub from: Option<chrono::NaiveDate>,
    /// Last local date, included (default today).
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub to: Option<chrono::NaiveDate>,
    /// `csv` for one row per medicine.
    pub format: Option<String>,
}

/// Stock on hand and its value at cost and at price per medicine, with the ledger's
/// movements over the dates by kind (the clinic's pharmacists and admins); `format=csv`.
#[utoipa::path(get, path = "/clinics/{id}/reports/stock", tag = "pharmacy", security(("bearer" = [])), params(("id" = Uuid, Path), StockQuery), responses(
    (status = 200, body = StockReport),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn stock_report(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<StockQuery>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let (from, to) = crate::http::billing::report_dates(q.from, q.to)?;
    let report = report::stock(&s.db, &actor, id, from, to).await?;
    Ok(match q.format.as_deref() {
        Some("csv") => (
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report.csv()?,
        )
            .into_response(),
        _ => Json(report).into_response(),
    })
}

/// The clinic's medicine catalogue with stock on hand (its pharmacists and admins).
#[utoipa::path(get, path = "/clinics/{id}/medicines", tag = "pharmacy", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<Medicine>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn catalogue(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Medicine>>> {
    Ok(Json(pharmacy::catalogue(&s.db, &actor, id).await?))
}

/// Adds a medicine to the catalogue (pharmacists and admins).
#[utoipa::path(post, path = "/clinics/{id}/medicines", tag = "pharmacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = MedicineForm, responses(
    (status = 201, body = Medicine),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Already in the catalogue", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn add_medicine(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(form): Json<MedicineForm>,
) -> Result<(StatusCode, Json<Medicine>)> {
    let m = pharmacy::add_medicine(&s.db, &actor, id, form).await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// Changes a catalogue entry: prices, threshold, retiring it.
#[utoipa::path(put, path = "/medicines/{id}", tag = "pharmacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = MedicineForm, responses(
    (status = 200, body = Medicine),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn update_medicine(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(form): Json<MedicineForm>,
) -> Result<Json<Medicine>> {
    Ok(Json(
        pharmacy::update_medicine(&s.db, &actor, id, form).await?,
    ))
}

/// A medicine's batches, soonest expiry first.
#[utoipa::path(get, path = "/medicines/{id}/batches", tag = "pharmacy", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<Batch>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn batches(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Batch>>> {
    Ok(Json(pharmacy::batches(&s.db, &actor, id).await?))
}

/// Receives a delivery of one batch (pharmacists); an expired batch is refused.
#[utoipa::path(post, path = "/medicines/{id}/batches", tag = "pharmacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = Delivery, responses(
    (status = 201, body = Batch),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn receive(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(d): Json<Delivery>,
) -> Result<(StatusCode, Json<Batch>)> {
    let b = pharmacy::receive(&s.db, &actor, id, d).await?;
    Ok((StatusCode::CREATED, Json(b)))
}

/// Corrects a batch: a count with a reason, a write-off of expired units, or a return.
#[utoipa::path(post, path = "/batches/{id}/adjustments", tag = "pharmacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = Adjustment, responses(
    (status = 200, body = Batch),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Would take the batch below zero", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn adjust(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(a): Json<Adjustment>,
) -> Result<Json<Batch>> {
    Ok(Json(pharmacy::adjust(&s.db, &actor, id, a).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    pub medicine_id: Option<Uuid>,
    /// At most this many, newest first (default 200, at most 1000).
    pub limit: Option<i64>,
}

/// The stock ledger: every movement, newest first (pharmacists and admins).
#[utoipa::path(get, path = "/clinics/{id}/stock-ledger", tag = "pharmacy", security(("bearer" = [])), params(("id" = Uuid, Path), LedgerQuery), responses(
    (status = 200, body = Vec<LedgerEntry>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn ledger(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<LedgerQuery>,
) -> Result<Json<Vec<LedgerEntry>>> {
    Ok(Json(
        pharmacy::ledger(&s.db, &actor, id, q.medicine_id, q.limit.unwrap_or(200)).await?,
    ))
}

/// A patient's signed prescriptions written at this clinic, with what each still allows
/// (its pharmacists; audited).
#[utoipa::path(get, path = "/clinics/{id}/patients/{patient}/dispensable", tag = "pharmacy", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("patient" = Uuid, Path)), responses(
    (status = 200, body = Vec<Dispensable>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn to_dispense(
    State(s): State<AppState>,
    actor: Actor,
    Path((id, patient)): Path<(Uuid, Uuid)>,
) -> Result<Json<Vec<Dispensable>>> {
    Ok(Json(
        dispensing::prescriptions_of(&s.db, &actor, id, patient).await?,
    ))
}

/// Dispenses against a prescription, or sells over the counter (no prescription, for a
/// medicine that needs none): first-expiry-first-out across unexpired batches.
#[utoipa::path(post, path = "/clinics/{id}/dispensings", tag = "pharmacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = DispenseForm, responses(
    (status = 201, body = Dispensing),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Not enough unexpired stock, or more than the prescription allows", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn dispense(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(f): Json<DispenseForm>,
) -> Result<(StatusCode, Json<Dispensing>)> {
    let d = dispensing::dispense(&s.db, &actor, id, f).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Days ahead for expiring batches (default 30, 1–365).
    pub days: Option<u64>,
}

/// Low stock, batches expiring soon, and expired batches to write off.
#[utoipa::path(get, path = "/clinics/{id}/pharmacy-alerts", tag = "pharmacy", security(("bearer" = [])), params(("id" = Uuid, Path), AlertQuery), responses(
    (status = 200, body = Alerts),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn alerts_now(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Alerts>> {
    Ok(Json(alerts::list(&s.db, &actor, id, q.days).await?))
}
