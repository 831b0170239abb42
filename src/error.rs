//! The crate's one error type and its RFC 9457 `application/problem+json` form.
//!
//! Every client-visible failure carries a stable machine-readable [`Code`]; the table in
//! [`Code::status`] is the single place that maps codes to HTTP statuses.

use std::borrow::Cow;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable error codes. Clients match on these; never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    MalformedJson,
    InvalidBody,
    InvalidPath,
    InvalidQuery,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    Unauthenticated,
    InvalidToken,
    TokenExpired,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    InvalidCode,
    CodeExpired,
    CodeLocked,
    InvalidMfaChallenge,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    EmailNotVerified,
    AccountLocked,
    AccountDeactivated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    RoleAlreadyGranted,
    ConsentRequired,
    NothingPending,
    SlotTaken,
    HoldExpired,
    TooManyHolds,
    TooLate,
    CutoffPassed,
    IdempotencyKeyReused,
    IdempotencyInProgress,
    RateLimited,
    Internal,
    ServiceUnavailable,
    /// A model's answer could not be read as what was asked (after repairs).
    ExtractionFailed,
    /// A patient QR code that is forged, expired, revoked or made for another clinic.
    InvalidQrToken,
    /// A signed record is never edited (amend it with an addendum) nor signed again.
    RecordSigned,
    /// A lab order is not in the state this step needs (e.g. reviewing before results).
    InvalidTransition,
    /// Not enough unexpired stock for what was asked.
    InsufficientStock,
    /// More than the prescription (with its refills) still allows.
    ExceedsPrescription,
}

impl Code {
    pub fn status(self) -> StatusCode {
        use Code::*;
        match self {
            MalformedJson | InvalidPath | InvalidQuery => StatusCode::BAD_REQUEST,
            InvalidBody | ValidationFailed | ConsentRequired | InvalidQrToken => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RecordSigned | InvalidTransition | InsufficientStock | ExceedsPrescription => {
                StatusCode::CONFLICT
            }
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Unauthenticated | InvalidToken | TokenExpired | InvalidCredentials
            | InvalidRefreshToken | RefreshTokenReused | InvalidMfaChallenge => {
                StatusCode::UNAUTHORIZED
            }
            InvalidCode | CodeExpired => StatusCode::BAD_REQUEST,
            CodeLocked | AccountLocked => StatusCode::LOCKED,
            EmailNotVerified | AccountDeactivated | Forbidden => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict | RoleAlreadyGranted | MfaAlreadyEnabled | MfaNotEnabled => {
                StatusCode::CONFLICT
            }
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            NothingPending
            | SlotTaken
            | HoldExpired
            | TooManyHolds
            | TooLate
            | CutoffPassed
            | IdempotencyInProgress => StatusCode::CONFLICT,
            IdempotencyKeyReused => StatusCode::CONFLICT,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ExtractionFailed => StatusCode::BAD_GATEWAY,
        }
    }

    /// The wire name (serde's snake_case form, checked by a unit test).
    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            MalformedJson => "malformed_json",
            InvalidBody => "invalid_body",
            InvalidPath => "invalid_path",
            InvalidQuery => "invalid_query",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            ValidationFailed => "validation_failed",
            Unauthenticated => "unauthenticated",
            InvalidToken => "invalid_token",
            TokenExpired => "token_expired",
            InvalidCredentials => "invalid_credentials",
            InvalidRefreshToken => "invalid_refresh_token",
            RefreshTokenReused => "refresh_token_reused",
            InvalidCode => "invalid_code",
            CodeExpired => "code_expired",
            CodeLocked => "code_locked",
            InvalidMfaChallenge => "invalid_mfa_challenge",
            MfaAlreadyEnabled => "mfa_already_enabled",
            MfaNotEnabled => "mfa_not_enabled",
            EmailNotVerified => "email_not_verified",
            AccountLocked => "account_locked",
            AccountDeactivated => "account_deactivated",
            Forbidden => "forbidden",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            Conflict => "conflict",
            RoleAlreadyGranted => "role_already_granted",
            ConsentRequired => "consent_required",
            NothingPending => "nothing_pending",
            SlotTaken => "slot_taken",
            HoldExpired => "hold_expired",
            TooManyHolds => "too_many_holds",
            TooLate => "too_late",
            CutoffPassed => "cutoff_passed",
            IdempotencyKeyReused => "idempotency_key_reused",
            IdempotencyInProgress => "idempotency_in_progress",
            RateLimited => "rate_limited",
            Internal => "internal",
            ServiceUnavailable => "service_unavailable",
            ExtractionFailed => "extraction_failed",
            InvalidQrToken => "invalid_qr_token",
            RecordSigned => "record_signed",
            InvalidTransition => "invalid_transition",
            InsufficientStock => "insufficient_stock",
            ExceedsPrescription => "exceeds_prescription",
        }
    }

    #[cfg(test)]
    const ALL: &[Code] = &[
        Code::MalformedJson,
        Code::InvalidBody,
        Code::InvalidPath,
        Code::InvalidQuery,
        Code::PayloadTooLarge,
        Code::ValidationFailed,
        Code::Unauthenticated,
        Code::InvalidToken,
        Code::TokenExpired,
        Code::InvalidCredentials,
        Code::InvalidRefreshToken,
        Code::RefreshTokenReused,
        Code::InvalidCode,
        Code::CodeExpired,
        Code::CodeLocked,
        Code::InvalidMfaChallenge,
        Code::MfaAlreadyEnabled,
        Code::MfaNotEnabled,
        Code::EmailNotVerified,
        Code::AccountLocked,
        Code::AccountDeactivated,
        Code::Forbidden,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::Conflict,
        Code::RoleAlreadyGranted,
        Code::SlotTaken,
        Code::HoldExpired,
        Code::TooManyHolds,
        Code::TooLate,
        Code::CutoffPassed,
        Code::IdempotencyKeyReused,
        Code::IdempotencyInProgress,
        Code::RateLimited,
        Code::Internal,
        Code::ServiceUnavailable,
        Code::ExtractionFailed,
        Code::InvalidQrToken,
        Code::RecordSigned,
        Code::InvalidTransition,
        Code::InsufficientStock,
        Code::ExceedsPrescription,
    ];
}

/// One invalid field of a request, named by its JSON path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A failure the client caused and can act on.
    #[error("{code:?}: {detail}")]
    Client {
        code: Code,
        detail: Cow<'static, str>,
        fields: Vec<FieldError>,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A failure of ours; the detail is logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn new(code: Code, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::Client {
            code,
            detail: detail.into(),
            fields: Vec::new(),
        }
    }

    pub fn validation(fields: Vec<FieldError>) -> Self {
        Self::Client {
            code: Code::ValidationFailed,
            detail: "Some fields are invalid.".into(),
            fields,
        }
    }

    pub fn forbidden() -> Self {
        Self::new(Code::Forbidden, "You are not allowed to do this.")
    }

    pub fn not_found(what: &'static str) -> Self {
        Self::new(Code::NotFound, format!("No such {what}."))
    }

    pub fn internal(context: impl std::fmt::Display) -> Self {
        Self::Internal(context.to_string())
    }

    /// What a person reads on a page: the detail and each field's problem; never the
    /// internals of a failure of ours.
    pub fn for_people(&self) -> String {
        match self {
            Self::Client { detail, fields, .. } if fields.is_empty() => detail.to_string(),
            Self::Client { fields, .. } => fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
            Self::Database(_) | Self::Internal(_) if self.code() == Code::ServiceUnavailable => {
                "The service is busy; try again in a moment.".into()
            }
            Self::Database(_) | Self::Internal(_) => {
                "Something went wrong on our side; please try again.".into()
            }
        }
    }

    /// The stable code this error is reported under.
    pub fn code(&self) -> Code {
        match self {
            Self::Client { code, .. } => *code,
            Self::Database(e) if is_pool_exhausted(e) => Code::ServiceUnavailable,
            Self::Database(_) | Self::Internal(_) => Code::Internal,
        }
    }

    /// Maps a unique-constraint violation named `constraint` to `code`; other errors pass.
    pub fn on_unique(self, constraint: &str, code: Code, detail: &'static str) -> Self {
        match &self {
            Self::Database(sqlx::Error::Database(db))
                if db.is_unique_violation() && violates(db.as_ref(), constraint) =>
            {
                Self::new(code, detail)
            }
            _ => self,
        }
    }
}

fn violates(db: &dyn sqlx::error::DatabaseError, constraint: &str) -> bool {
    // PostgreSQL names the constraint. SQLite does not, so there the caller's statement
    // is trusted to have only the one unique constraint it names.
    db.constraint().is_none_or(|name| name == constraint)
}

/// No connection, or no turn to write, within the wait: the service is busy, not broken.
fn is_pool_exhausted(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        // SQLITE_BUSY and its extended codes: another process held the write lock too long.
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("5" | "261" | "517")),
        _ => false,
    }
}

/// The RFC 9457 body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:clinic:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code.
    pub code: Code,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        let (detail, fields) = match self {
            Self::Client { detail, fields, .. } => (detail.into_owned(), fields),
            other => {
                tracing::error!(error = %other, "request failed");
                let detail = if code == Code::ServiceUnavailable {
                    "The service is busy; try again shortly."
                } else {
                    "Something went wrong on our side; it has been logged."
                };
                (detail.to_owned(), Vec::new())
            }
        };
        problem_response(code, detail, fields)
    }
}

pub fn problem_response(code: Code, detail: String, errors: Vec<FieldError>) -> Response {
    let status = code.status();
    let body = Problem {
        type_uri: format!("urn:clinic:problem:{}", code.as_str()),
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        code,
        errors,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                // axum reports `path.to.field: what went wrong`; keep the path as the field.
                let message = serde_detail(&e);
                let (field, message) = match message.split_once(": ") {
                    Some((path, rest)) if !path.contains(' ') => (path.to_owned(), rest.to_owned()),
                    _ => ("body".to_owned(), message),
                };
                Self::Client {
                    code: Code::InvalidBody,
                    detail: "The JSON body does not match the expected shape.".into(),
                    fields: vec![FieldError { field, message }],
                }
            }
            JsonRejection::JsonSyntaxError(e) => Self::new(
                Code::MalformedJson,
                format!("The body is not valid JSON: {}", serde_detail(&e)),
            ),
            JsonRejection::MissingJsonContentType(_) => Self::new(
                Code::MalformedJson,
                "Send the body as Content-Type: application/json.",
            ),
            JsonRejection::BytesRejection(_) => Self::new(
                Code::PayloadTooLarge,
                "The request body is too large or unreadable.",
            ),
            other => Self::new(Code::MalformedJson, other.body_text()),
        }
    }
}

/// The innermost serde message (axum prefixes its own wording).
fn serde_detail(e: &dyn std::error::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Self::new(Code::InvalidPath, rejection.body_text())
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(Code::InvalidQuery, rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for code in Code::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
    }
}
