//! Clinical records: profiles and QR identity, patient search, visit records, prescriptions,
//! lab orders and results, files, the chart, and the catalogues (ICD-10, lab tests).

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::clinical::chart::{self, Chart};
use crate::domain::clinical::files::{self, FileMeta};
use crate::domain::clinical::icd10::{self, Icd10};
use crate::domain::clinical::labs::{self, LabOrder, LabTest, OrderBody, ResultsBody};
use crate::domain::clinical::prescriptions::{self, Prescription};
use crate::domain::clinical::profiles::{self, PatientPage, PatientQuery, Profile, ProfileBody};
use crate::domain::clinical::records::{self, Record, RecordBody, RecordDraft, Signed};
use crate::domain::clinical::transcripts::{self, Source, Transcript};
use crate::error::{Code, Error, Problem, Result};
use crate::http::extract::{Json, Path, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_profile, put_my_profile))
        .routes(routes!(my_qr, revoke_qr))
        .routes(routes!(identify))
        .routes(routes!(search_patients))
        .routes(routes!(patient_profile))
        .routes(routes!(patient_chart))
        .routes(routes!(create_record, list_records))
        .routes(routes!(get_record, update_record, remove_record))
        .routes(routes!(sign_record))
        .routes(routes!(amend_record))
        .routes(routes!(order_labs))
        .routes(routes!(list_labs))
        .routes(routes!(get_lab_order))
        .routes(routes!(lab_collected))
        .routes(routes!(lab_results))
        .routes(routes!(lab_review))
        .routes(routes!(list_prescriptions))
        .routes(routes!(upload_record_file))
        .routes(routes!(upload_lab_file))
        .routes(routes!(download_file, remove_file))
        .routes(routes!(transcribe_audio))
        .routes(routes!(get_transcript, paste_transcript))
        .routes(routes!(draft_from_transcript))
        .routes(routes!(lab_tests))
        .routes(routes!(icd10_search))
}

// ---- Profile and QR -------------------------------------------------------------------

/// The signed-in patient's profile.
#[utoipa::path(get, path = "/me/profile", tag = "records", security(("bearer" = [])), responses(
    (status = 200, body = Profile),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn my_profile(State(s): State<AppState>, actor: Actor) -> Result<Json<Profile>> {
    Ok(Json(profiles::mine(&s.db, &actor).await?))
}

/// The patient replaces their profile (what is absent is cleared; audited).
#[utoipa::path(put, path = "/me/profile", tag = "records", security(("bearer" = [])), request_body = ProfileBody, responses(
    (status = 200, body = Profile),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn put_my_profile(
    State(s): State<AppState>,
    actor: Actor,
    Json(b): Json<ProfileBody>,
) -> Result<Json<Profile>> {
    Ok(Json(profiles::update_mine(&s.db, &actor, &b).await?))
}

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QrFormat {
    #[default]
    Svg,
    Png,
    /// The token itself, as JSON (for an app that draws its own code).
    Json,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QrQuery {
    /// `svg` (default), `png` or `json`.
    pub format: Option<QrFormat>,
    /// Make a code that opens the patient at this clinic only.
    pub clinic_id: Option<Uuid>,
}

/// A QR code for the front desk: a sealed token good for 15 minutes (not the user id).
#[utoipa::path(get, path = "/me/qr", tag = "records", security(("bearer" = [])), params(QrQuery), responses(
    (status = 200, description = "An SVG or PNG image of the code, or its token as JSON", content_type = "image/svg+xml"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn my_qr(
    State(s): State<AppState>,
    actor: Actor,
    Query(q): Query<QrQuery>,
) -> Result<Response> {
    let token = profiles::qr_token(&s.db, &actor, q.clinic_id).await?;
    let (mime, body) = match q.format.unwrap_or_default() {
        QrFormat::Json => return Ok(Json(token).into_response()),
        QrFormat::Svg => ("image/svg+xml", qr_svg(&token.token)?.into_bytes()),
        QrFormat::Png => ("image/png", qr_png(&token.token)?),
    };
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static(mime)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// Revokes every QR code the patient has shown.
#[utoipa::path(delete, path = "/me/qr", tag = "records", security(("bearer" = [])), responses(
    (status = 204, description = "Every earlier code is refused from now on"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn revoke_qr(State(s): State<AppState>, actor: Actor) -> Result<StatusCode> {
    profiles::revoke_qr(&s.db, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The code as SVG.
pub fn qr_svg(token: &str) -> Result<String> {
    let code = qrcode::QrCode::new(token.as_bytes()).map_err(Error::internal)?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .build())
}

/// The code as an 8-bit grey PNG, 8 pixels a module, with the standard quiet zone.
pub fn qr_png(token: &str) -> Result<Vec<u8>> {
    const SCALE: usize = 8;
    const QUIET: usize = 4;
    let code = qrcode::QrCode::new(token.as_bytes()).map_err(Error::internal)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let side = u32::try_from(side).map_err(Error::internal)?;
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels))
        .map_err(Error::internal)?;
    Ok(out)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyBody {
    /// The clinic at whose desk the code is scanned.
    pub clinic_id: Uuid,
    /// The token the QR code holds.
    #[schema(min_length = 1, max_length = 2000)]
    pub token: String,
}

/// A clinic's staff open the patient whose QR code they scanned (or pasted): the patient
/// is registered at the clinic and their administrative profile returned.
#[utoipa::path(post, path = "/patients/identify", tag = "records", security(("bearer" = [])), request_body = IdentifyBody, responses(
    (status = 200, body = Profile),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "Forged, expired, revoked or another clinic's code", body = Problem, content_type = "application/problem+json"),
))]
async fn identify(
    State(s): State<AppState>,
    actor: Actor,
    Json(b): Json<IdentifyBody>,
) -> Result<Json<Profile>> {
    Ok(Json(
        profiles::identify(&s.db, &actor, b.clinic_id, &b.token).await?,
    ))
}

/// The clinic's staff search the patients the clinic knows, by name or email, phone or
/// date of birth.
#[utoipa::path(get, path = "/clinics/{id}/patients", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path), PatientQuery), responses(
    (status = 200, body = PatientPage),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn search_patients(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<PatientQuery>,
) -> Result<Json<PatientPage>> {
    Ok(Json(profiles::search(&s.db, &actor, id, &q).await?))
}

/// A patient's profile: the clinical part for their doctors, the administrative part for
/// the staff of a clinic that knows them.
#[utoipa::path(get, path = "/patients/{id}/profile", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Profile),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn patient_profile(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Profile>> {
    Ok(Json(profiles::get(&s.db, &actor, id).await?))
}

/// The patient's chart: profile, visits with prescriptions, labs (one audited read).
#[utoipa::path(get, path = "/patients/{id}/chart", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Chart),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn patient_chart(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Chart>> {
    Ok(Json(chart::open(&s.db, &actor, id).await?))
}

// ---- Visit records ----------------------------------------------------------------------

/// A doctor opens a draft record: for their appointment with the patient, or a walk-in at
/// a clinic that knows the patient.
#[utoipa::path(post, path = "/patients/{id}/records", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = RecordBody, responses(
    (status = 201, body = Record),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn create_record(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<RecordBody>,
) -> Result<(StatusCode, Json<Record>)> {
    let record = records::create(&s.db, &actor, id, &b).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// A patient's visit records, newest first (the patient: signed ones; audited).
#[utoipa::path(get, path = "/patients/{id}/records", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<Record>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn list_records(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Record>>> {
    Ok(Json(records::list(&s.db, &actor, id).await?))
}

#[utoipa::path(get, path = "/records/{id}", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Record),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_record(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Record>> {
    Ok(Json(records::get(&s.db, &actor, id).await?))
}

/// The record's doctor replaces their draft (a signed record: `record_signed`).
#[utoipa::path(put, path = "/records/{id}", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = RecordBody, responses(
    (status = 200, body = Record),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn update_record(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<RecordBody>,
) -> Result<Json<Record>> {
    Ok(Json(records::update(&s.db, &actor, id, &b).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovalReason {
    /// Why (3 to 1,000 characters).
    #[schema(schema_with = crate::domain::validate::schema::amendment_reason)]
    pub reason: String,
}

/// The record's doctor removes it: hidden from every read, kept for audit, purged by the
/// retention job.
#[utoipa::path(delete, path = "/records/{id}", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = RemovalReason, responses(
    (status = 204, description = "Removed"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn remove_record(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<RemovalReason>,
) -> Result<StatusCode> {
    records::remove(&s.db, &actor, id, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The record's doctor signs it: prescriptions become reminders, a follow-up is suggested.
#[utoipa::path(post, path = "/records/{id}/sign", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Signed),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Already signed", body = Problem, content_type = "application/problem+json"),
))]
async fn sign_record(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Signed>> {
    Ok(Json(records::sign(&s.db, &actor, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddendumBody {
    /// Why the record is amended.
    #[schema(schema_with = crate::domain::validate::schema::amendment_reason)]
    pub reason: String,
    #[schema(schema_with = crate::domain::validate::schema::addendum)]
    pub text: String,
}

/// A doctor treating the patient at the record's clinic amends a signed record.
#[utoipa::path(post, path = "/records/{id}/addenda", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = AddendumBody, responses(
    (status = 201, body = Record),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "A draft is edited, not amended", body = Problem, content_type = "application/problem+json"),
))]
async fn amend_record(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<AddendumBody>,
) -> Result<(StatusCode, Json<Record>)> {
    let record = records::amend(&s.db, &actor, id, &b.reason, &b.text).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// A patient's signed prescriptions, newest first (audited).
#[utoipa::path(get, path = "/patients/{id}/prescriptions", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<Prescription>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn list_prescriptions(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Prescription>>> {
    Ok(Json(prescriptions::list(&s.db, &actor, id).await?))
}

// ---- Labs -----------------------------------------------------------------------------------

/// A doctor orders tests on a record (catalogue codes or custom tests by name).
#[utoipa::path(post, path = "/records/{id}/lab-orders", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = OrderBody, responses(
    (status = 201, body = Vec<LabOrder>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn order_labs(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<OrderBody>,
) -> Result<(StatusCode, Json<Vec<LabOrder>>)> {
    let orders = labs::order(&s.db, &actor, id, &b).await?;
    Ok((StatusCode::CREATED, Json(orders)))
}

/// A patient's lab orders with results, newest first (the patient: results once reviewed).
#[utoipa::path(get, path = "/patients/{id}/labs", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Vec<LabOrder>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
async fn list_labs(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<LabOrder>>> {
    Ok(Json(labs::list(&s.db, &actor, id).await?))
}

#[utoipa::path(get, path = "/lab-orders/{id}", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = LabOrder),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_lab_order(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<LabOrder>> {
    Ok(Json(labs::get(&s.db, &actor, id).await?))
}

/// The sample was taken.
#[utoipa::path(post, path = "/lab-orders/{id}/collected", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = LabOrder),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn lab_collected(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<LabOrder>> {
    Ok(Json(labs::collected(&s.db, &actor, id).await?))
}

/// Results entered; abnormal values are flagged to the ordering doctor.
#[utoipa::path(post, path = "/lab-orders/{id}/results", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ResultsBody, responses(
    (status = 200, body = LabOrder),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn lab_results(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<ResultsBody>,
) -> Result<Json<LabOrder>> {
    Ok(Json(labs::enter_results(&s.db, &actor, id, &b).await?))
}

/// The doctor reviewed the results; the patient is told and may read them.
#[utoipa::path(post, path = "/lab-orders/{id}/review", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = LabOrder),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn lab_review(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<LabOrder>> {
    Ok(Json(labs::review(&s.db, &actor, id).await?))
}

// ---- Files -----------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    /// The file's name, e.g. `spirometry.pdf`.
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\s\x00-\x1F\x7F/\\]([^\x00-\x1F\x7F/\\]*[^\s\x00-\x1F\x7F/\\])?$"
    )]
    pub name: String,
}

async fn upload(
    s: &AppState,
    actor: &Actor,
    to: files::Attach,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<FileMeta>)> {
    let max = s.config.max_file_bytes;
    let bytes = axum::body::to_bytes(body, max + 1)
        .await
        .map_err(|_| files::too_large(max))?;
    let declared = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let meta = files::upload(
        &s.db,
        s.files.as_ref(),
        actor,
        to,
        name,
        declared,
        &bytes,
        max,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(meta)))
}

/// A doctor attaches a file to a record: the raw bytes of a PDF, JPEG or PNG (recognised by
/// content; at most `MAX_FILE_MB`).
#[utoipa::path(post, path = "/records/{id}/files", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path), FileQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the bytes of a PDF, JPEG or PNG (sent as application/octet-stream or as its own type)"),
    responses(
    (status = 201, body = FileMeta),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 413, body = Problem, content_type = "application/problem+json"),
    (status = 415, body = Problem, content_type = "application/problem+json"),
))]
async fn upload_record_file(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<FileMeta>)> {
    upload(
        &s,
        &actor,
        files::Attach::Record(id),
        &q.name,
        &headers,
        body,
    )
    .await
}

/// A doctor attaches a report or scan to a lab order.
#[utoipa::path(post, path = "/lab-orders/{id}/files", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path), FileQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the bytes of a PDF, JPEG or PNG (sent as application/octet-stream or as its own type)"),
    responses(
    (status = 201, body = FileMeta),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 413, body = Problem, content_type = "application/problem+json"),
    (status = 415, body = Problem, content_type = "application/problem+json"),
))]
async fn upload_lab_file(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<FileMeta>)> {
    upload(
        &s,
        &actor,
        files::Attach::LabOrder(id),
        &q.name,
        &headers,
        body,
    )
    .await
}

/// A file's bytes, always as a download (the patient: once its record is signed and, for a
/// lab file, the results reviewed; audited).
#[utoipa::path(get, path = "/files/{id}", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, description = "The file, as an attachment", content_type = "application/octet-stream"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn download_file(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let (meta, bytes) = files::download(&s.db, s.files.as_ref(), &actor, id).await?;
    let disposition = attachment(&meta.name);
    let media = HeaderValue::from_str(&meta.media_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (CONTENT_TYPE, media),
            (CONTENT_DISPOSITION, disposition),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        bytes,
    )
        .into_response())
}

/// `Content-Disposition` for a download of a file named `name`: plain characters in the
/// quoted name, the whole name in `filename*`.
pub fn attachment(name: &str) -> HeaderValue {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    let value = format!(
        "attachment; filename=\"{plain}\"; filename*=UTF-8''{}",
        encoded.replace('+', "%20")
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// A doctor removes a file: hidden from every read, kept for audit, purged by the retention
/// job.
#[utoipa::path(delete, path = "/files/{id}", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = RemovalReason, responses(
    (status = 204, description = "Removed"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn remove_file(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<RemovalReason>,
) -> Result<StatusCode> {
    files::remove(&s.db, &actor, id, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- Transcripts ------------------------------------------------------------------------------

/// Audio a consultation may be recorded in, by what its bytes are.
const AUDIO: [&str; 9] = [
    "audio/mpeg",
    "audio/x-wav",
    "audio/ogg",
    "audio/x-flac",
    "audio/m4a",
    "audio/aac",
    "audio/mp4",
    "video/webm",
    "video/mp4",
];

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AudioQuery {
    /// The recording's file name, e.g. `visit.webm` (default `audio`).
    #[param(min_length = 1, max_length = 200, pattern = r"^[A-Za-z0-9._-]+$")]
    pub name: Option<String>,
}

/// A recording over `max` bytes (`MAX_AUDIO_MB`).
pub fn audio_too_large(max: usize) -> Error {
    Error::new(
        Code::PayloadTooLarge,
        format!("A recording may be at most {} MiB.", max / (1024 * 1024)),
    )
}

/// The media type of a recording, read from its content (MP3, WAV, OGG, FLAC, M4A, WebM).
pub fn audio_type(audio: &[u8]) -> Result<&'static str> {
    infer::get(audio)
        .map(|t| t.mime_type())
        .filter(|m| AUDIO.contains(m))
        .ok_or_else(|| {
            Error::new(
                Code::UnsupportedMediaType,
                "A recording must be MP3, WAV, OGG, FLAC, M4A or WebM audio (read from its content).",
            )
        })
}

/// A doctor sends the consultation's audio (MP3, WAV, OGG, FLAC, M4A, WebM; at most
/// `MAX_AUDIO_MB`): the transcription server turns it into the record's transcript. The
/// audio is not kept.
#[utoipa::path(post, path = "/records/{id}/transcript/audio", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path), AudioQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the bytes of an MP3, WAV, OGG, FLAC, M4A or WebM recording (any declared type)"),
    responses(
    (status = 201, body = Transcript),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 413, body = Problem, content_type = "application/problem+json"),
    (status = 415, body = Problem, content_type = "application/problem+json"),
    (status = 502, description = "The server refused the audio", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "No transcription server answered", body = Problem, content_type = "application/problem+json"),
))]
async fn transcribe_audio(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Query(q): Query<AudioQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Transcript>)> {
    transcripts::require_writer(&s.db, &actor, id).await?;
    let max = s.config.llm.max_audio_bytes;
    let audio = axum::body::to_bytes(body, max + 1)
        .await
        .map_err(|_| audio_too_large(max))?;
    let mime = audio_type(&audio)?;
    let name = q.name.unwrap_or_else(|| "audio".into());
    let (text, model) = s.agent.transcribe(&audio, &name, mime).await?;
    let transcript =
        transcripts::store(&s.db, &actor, id, Source::Audio, &text, Some(&model)).await?;
    Ok((StatusCode::CREATED, Json(transcript)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscriptBody {
    /// The consultation's transcript (1 to 100,000 characters).
    #[schema(
        min_length = 1,
        max_length = 100000,
        pattern = r"^[^\s\x00-\x08\x0B\x0C\x0E-\x1F\x7F]([^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*[^\s\x00-\x08\x0B\x0C\x0E-\x1F\x7F])?$"
    )]
    pub text: String,
}

/// A doctor pastes the consultation's transcript.
#[utoipa::path(put, path = "/records/{id}/transcript", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = TranscriptBody, responses(
    (status = 201, body = Transcript),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn paste_transcript(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
    Json(b): Json<TranscriptBody>,
) -> Result<(StatusCode, Json<Transcript>)> {
    let transcript = transcripts::store(&s.db, &actor, id, Source::Pasted, &b.text, None).await?;
    Ok((StatusCode::CREATED, Json(transcript)))
}

/// The record's latest transcript (the patient: once the record is signed; audited).
#[utoipa::path(get, path = "/records/{id}/transcript", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Transcript),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_transcript(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<Transcript>> {
    Ok(Json(transcripts::latest(&s.db, &actor, id).await?))
}

/// The model drafts the record's fields from its latest transcript, for the doctor to
/// review, change and sign; nothing is stored.
#[utoipa::path(post, path = "/records/{id}/transcript/draft", tag = "records", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = RecordDraft),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 502, description = "The model's answer could not be read", body = Problem, content_type = "application/problem+json"),
))]
async fn draft_from_transcript(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<Uuid>,
) -> Result<Json<RecordDraft>> {
    transcripts::require_writer(&s.db, &actor, id).await?;
    let transcript = transcripts::latest(&s.db, &actor, id).await?;
    Ok(Json(s.agent.draft_record(&transcript.text).await?))
}

// ---- Catalogues ------------------------------------------------------------------------------

/// The lab tests and panels a doctor can order, with units and reference ranges.
#[utoipa::path(get, path = "/lab-tests", tag = "records", responses(
    (status = 200, body = Vec<LabTest>),
))]
async fn lab_tests() -> Result<Json<&'static [LabTest]>> {
    Ok(Json(labs::catalogue()?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Icd10Query {
    /// A code prefix (`J45`) or words of the title (`asthma`).
    #[param(min_length = 1, max_length = 100)]
    pub q: String,
}

/// ICD-10 (WHO 2019) codes by code prefix or title words, at most 20.
#[utoipa::path(get, path = "/icd10", tag = "records", params(Icd10Query), responses(
    (status = 200, body = Vec<Icd10>),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
async fn icd10_search(Query(q): Query<Icd10Query>) -> Result<Json<Vec<Icd10>>> {
    if q.q.chars().count() > 100 {
        return Err(Error::new(Code::InvalidQuery, "q: at most 100 characters"));
    }
    Ok(Json(icd10::search(&q.q, 20).into_iter().cloned().collect()))
}
