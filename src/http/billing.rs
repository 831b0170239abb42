//! Billing over REST: tax rates, invoice drafts, issuing, payments, credit notes, the
//! clinic's list and the patient's own.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::billing::lab_prices::{self, LabPrice, LabPriceItem};
use crate::domain::billing::{self, DraftForm, Invoice, InvoiceQuery, PaymentForm, TaxRate};
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Path, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_rates, put_rates))
        .routes(routes!(get_lab_prices, put_lab_prices))
        .routes(routes!(list, create))
        .routes(routes!(get_invoice, delete_draft))
        .routes(routes!(issue))
        .routes(routes!(pdf))
        .routes(routes!(pay))
        .routes(routes!(credit))
        .routes(routes!(mine))
        .routes(routes!(revenue))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxRates {
    pub rates: Vec<TaxRate>,
}

/// The clinic's tax rates by line kind (public: they are on every invoice).
#[utoipa::path(get, path = "/clinics/{id}/tax-rates", tag = "billing", params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<TaxRate>),
))]
async fn get_rates(State(s): State<AppState>, Path(id): Path<Uuid>) -> Result<Json<Vec<TaxRate>>> {
    Ok(Json(billing::tax_rates(&s.db, id).await?))
}

/// Replaces the clinic's tax rates (its admins).
#[utoipa::path(put, path = "/clinics/{id}/tax-rates", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = TaxRates, responses(
    (status = 200, body = Vec<TaxRate>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn put_rates(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<TaxRates>,
) -> Result<Json<Vec<TaxRate>>> {
    Ok(Json(
        billing::set_tax_rates(&s.db, &actor, id, b.rates).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabPrices {
    #[schema(max_items = 500)]
    pub prices: Vec<LabPriceItem>,
}

/// What lab tests cost at the clinic (public, like its price list).
#[utoipa::path(get, path = "/clinics/{id}/lab-prices", tag = "billing", params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<LabPrice>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_lab_prices(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<LabPrice>>> {
    Ok(Json(lab_prices::list(&s.db, id).await?))
}

/// Replaces the clinic's lab prices (its admins): one per catalogue test code, and
/// `custom` for tests ordered by name.
#[utoipa::path(put, path = "/clinics/{id}/lab-prices", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = LabPrices, responses(
    (status = 200, body = Vec<LabPrice>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn put_lab_prices(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<LabPrices>,
) -> Result<Json<Vec<LabPrice>>> {
    Ok(Json(
        lab_prices::replace(&s.db, &actor, id, b.prices).await?,
    ))
}

/// The clinic's invoices and credit notes (its front desk, admins and pharmacists).
#[utoipa::path(get, path = "/clinics/{id}/invoices", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path), InvoiceQuery), responses(
    (status = 200, body = Vec<Invoice>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn list(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<InvoiceQuery>,
) -> Result<Json<Vec<Invoice>>> {
    Ok(Json(billing::list(&s.db, &actor, id, &q).await?))
}

/// Opens a draft: a visit (its consultation priced from the price list), dispensings,
/// other lines; each line taxed at the clinic's rate for its kind.
#[utoipa::path(post, path = "/clinics/{id}/invoices", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = DraftForm, responses(
    (status = 201, body = Invoice),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "A dispensing or lab order already billed", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn create(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(f): Json<DraftForm>,
) -> Result<(StatusCode, Json<Invoice>)> {
    let inv = billing::create_draft(&s.db, &actor, id, f).await?;
    Ok((StatusCode::CREATED, Json(inv)))
}

/// One invoice (its clinic's billing people, or its patient once issued).
#[utoipa::path(get, path = "/invoices/{id}", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Invoice),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_invoice(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Invoice>> {
    Ok(Json(billing::get(&s.db, &actor, id).await?))
}

/// Deletes a draft; an issued invoice stays (void it with a credit note).
#[utoipa::path(delete, path = "/invoices/{id}", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn delete_draft(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    billing::delete_draft(&s.db, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a draft with the clinic's next number for the year (gap-free); it cannot change
/// after.
#[utoipa::path(post, path = "/invoices/{id}/issue", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Invoice),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Not a draft", body = Problem, content_type = "application/problem+json"),
))]
async fn issue(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Invoice>> {
    Ok(Json(
        billing::issue(&s.db, s.files.as_ref(), &actor, id).await?,
    ))
}

/// Records a payment (partial ones too); more than is owed is refused.
#[utoipa::path(post, path = "/invoices/{id}/payments", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = PaymentForm, responses(
    (status = 200, body = Invoice),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "More than owed, or nothing to pay", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn pay(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(f): Json<PaymentForm>,
) -> Result<Json<Invoice>> {
    Ok(Json(billing::pay(&s.db, &actor, id, f).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditBody {
    #[schema(schema_with = crate::domain::validate::schema::reason)]
    pub reason: String,
}

/// Voids an issued or paid invoice by a credit note that names it (numbered like
/// invoices); answers with the credit note.
#[utoipa::path(post, path = "/invoices/{id}/credit-note", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = CreditBody, responses(
    (status = 201, body = Invoice),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "A draft, or already void", body = Problem, content_type = "application/problem+json"),
))]
async fn credit(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<CreditBody>,
) -> Result<(StatusCode, Json<Invoice>)> {
    let note = billing::credit(&s.db, &actor, id, &b.reason).await?;
    Ok((StatusCode::CREATED, Json(note)))
}

/// The signed-in patient's invoices and credit notes, with what they owe.
#[utoipa::path(get, path = "/me/invoices", tag = "billing", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Invoice>),
))]
async fn mine(State(s): State<AppState>, actor: Actor) -> Result<Json<Vec<Invoice>>> {
    Ok(Json(billing::mine(&s.db, &actor).await?))
}

/// The invoice as a PDF (its clinic's billing people, or its patient once issued).
#[utoipa::path(get, path = "/invoices/{id}/pdf", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, content_type = "application/pdf", body = Vec<u8>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn pdf(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<axum::response::Response> {
    let (name, bytes) = billing::pdf_of(&s.db, s.files.as_ref(), &actor, id).await?;
    Ok(pdf_response(&name, bytes))
}

/// A PDF download.
pub fn pdf_response(name: &str, bytes: Vec<u8>) -> axum::response::Response {
    use axum::http::HeaderValue;
    use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
    use axum::response::IntoResponse;
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/pdf")),
            (CONTENT_DISPOSITION, crate::http::clinical::attachment(name)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        bytes,
    )
        .into_response()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RevenueQuery {
    /// First local date (default 30 days before `to`).
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub from: Option<chrono::NaiveDate>,
    /// Last local date, included (default today).
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub to: Option<chrono::NaiveDate>,
    /// Per `day`, `week` or `month` (default `month`).
    pub period: Option<ReportPeriod>,
    /// `csv` for the periods as CSV.
    pub format: Option<String>,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportPeriod {
    Day,
    Week,
    Month,
}

/// A report's dates: checked, `to` defaulting to today and `from` to 30 days before it.
pub fn report_dates(
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
) -> Result<(chrono::NaiveDate, chrono::NaiveDate)> {
    crate::domain::validate::query_dates([("from", from), ("to", to)])?;
    let to = to.unwrap_or_else(|| chrono::Utc::now().date_naive());
    Ok((from.unwrap_or(to - chrono::Days::new(30)), to))
}

/// Revenue per period (invoiced less credit notes, and paid), per doctor, and what is
/// still owed (the clinic's admins); `format=csv` for the periods as CSV.
#[utoipa::path(get, path = "/clinics/{id}/reports/revenue", tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path), RevenueQuery), responses(
    (status = 200, body = billing::report::Revenue),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn revenue(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<RevenueQuery>,
) -> Result<axum::response::Response> {
    use crate::domain::clinics::reports::Period;
    use axum::response::IntoResponse;
    let (from, to) = report_dates(q.from, q.to)?;
    let period = match q.period.unwrap_or(ReportPeriod::Month) {
        ReportPeriod::Day => Period::Day,
        ReportPeriod::Week => Period::Week,
        ReportPeriod::Month => Period::Month,
    };
    let report = billing::report::revenue(&s.db, &actor, id, from, to, period).await?;
    Ok(match q.format.as_deref() {
        Some("csv") => (
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report.csv(),
        )
            .into_response(),
        _ => Json(report).into_response(),
    })
}
