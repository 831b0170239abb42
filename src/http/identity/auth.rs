//! `/api/v1/auth`: registration, sign-in, second factors, tokens.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::actor::Actor;
use crate::domain::identity::people::UserView;
use crate::domain::identity::{
    CodeSent, LoginOutcome, RecoveryCodes, Registration, TokenPair, TotpSetup,
};
use crate::error::{Problem, Result};
use crate::http::extract::Json;
use crate::notify::language::Language;
use crate::state::AppState;

/// Routes that take a first factor or mail a code: rate limited per client address.
pub fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(login))
        .routes(routes!(login_mfa))
        .routes(routes!(start_code_login))
        .routes(routes!(code_login))
        .routes(routes!(start_password_reset))
        .routes(routes!(password_reset))
}

/// Routes for an existing login.
pub fn session_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(setup_totp))
        .routes(routes!(enable_totp))
        .routes(routes!(enable_email_mfa))
        .routes(routes!(disable_mfa))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The address the verification code goes to, e.g. `ana@example.org`.
    #[schema(schema_with = crate::domain::validate::schema::email)]
    pub email: String,
    /// At least 10 characters.
    #[schema(schema_with = crate::domain::validate::schema::password)]
    pub password: String,
    /// How the clinic addresses you, e.g. `Ana Silva`.
    #[schema(schema_with = crate::domain::validate::schema::own_name)]
    pub display_name: String,
    /// The language of your mail and notifications: `en` (the default), `pt` or `es`.
    #[serde(default)]
    #[schema(nullable)]
    pub language: Option<Language>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    #[schema(schema_with = crate::domain::validate::schema::email)]
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailCodeRequest {
    #[schema(schema_with = crate::domain::validate::schema::email)]
    pub email: String,
    /// The 6-digit code from the mail.
    pub code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaLoginRequest {
    /// From the `mfa_required` answer of a sign-in.
    pub mfa_token: String,
    /// A TOTP code, a recovery code (`xxxx-xxxx-xxxx`), or the mailed code.
    pub code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(schema_with = crate::domain::validate::schema::email)]
    pub email: String,
    pub code: String,
    #[schema(schema_with = crate::domain::validate::schema::password)]
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    pub password: String,
}

/// Registers a patient account; a verification code is mailed.
#[utoipa::path(post, path = "/register", tag = "auth", request_body = RegisterRequest, responses(
    (status = 202, body = CodeSent),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn register(
    State(s): State<AppState>,
    Json(r): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<CodeSent>)> {
    let form = Registration {
        email: &r.email,
        password: &r.password,
        display_name: &r.display_name,
        language: r.language,
    };
    Ok((StatusCode::ACCEPTED, Json(s.identity.register(form).await?)))
}

/// Verifies the email address with the mailed code.
#[utoipa::path(post, path = "/verify-email", tag = "auth", request_body = EmailCodeRequest, responses(
    (status = 200, body = UserView),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 423, description = "Too many wrong codes", body = Problem, content_type = "application/problem+json"),
))]
async fn verify_email(
    State(s): State<AppState>,
    Json(r): Json<EmailCodeRequest>,
) -> Result<Json<UserView>> {
    Ok(Json(s.identity.verify_email(&r.email, &r.code).await?))
}

/// Mails a new verification code.
#[utoipa::path(post, path = "/verify-email/resend", tag = "auth", request_body = EmailRequest, responses((status = 202, body = CodeSent)))]
async fn resend_verification(
    State(s): State<AppState>,
    Json(r): Json<EmailRequest>,
) -> Result<(StatusCode, Json<CodeSent>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.identity.resend_verification(&r.email).await?),
    ))
}

/// Signs in with email and password; answers `mfa_required` when a second factor is on.
#[utoipa::path(post, path = "/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginOutcome),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "Email not verified, or account deactivated", body = Problem, content_type = "application/problem+json"),
    (status = 423, description = "Locked after repeated failures", body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
))]
async fn login(
    State(s): State<AppState>,
    Json(r): Json<LoginRequest>,
) -> Result<Json<LoginOutcome>> {
    Ok(Json(s.identity.login(&r.email, &r.password).await?))
}

/// Completes a sign-in with the second factor.
#[utoipa::path(post, path = "/login/mfa", tag = "auth", request_body = MfaLoginRequest, responses(
    (status = 200, body = LoginOutcome),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn login_mfa(
    State(s): State<AppState>,
    Json(r): Json<MfaLoginRequest>,
) -> Result<Json<LoginOutcome>> {
    Ok(Json(LoginOutcome::Authenticated(
        s.identity.complete_mfa(&r.mfa_token, &r.code).await?,
    )))
}

/// Mails a sign-in code (passwordless sign-in).
#[utoipa::path(post, path = "/login/code/start", tag = "auth", request_body = EmailRequest, responses((status = 202, body = CodeSent)))]
async fn start_code_login(
    State(s): State<AppState>,
    Json(r): Json<EmailRequest>,
) -> Result<(StatusCode, Json<CodeSent>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.identity.start_passwordless(&r.email).await?),
    ))
}

/// Signs in with the mailed code.
#[utoipa::path(post, path = "/login/code", tag = "auth", request_body = EmailCodeRequest, responses(
    (status = 200, body = LoginOutcome),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
async fn code_login(
    State(s): State<AppState>,
    Json(r): Json<EmailCodeRequest>,
) -> Result<Json<LoginOutcome>> {
    Ok(Json(
        s.identity.finish_passwordless(&r.email, &r.code).await?,
    ))
}

/// Mails a password-reset code.
#[utoipa::path(post, path = "/password-reset/start", tag = "auth", request_body = EmailRequest, responses((status = 202, body = CodeSent)))]
async fn start_password_reset(
    State(s): State<AppState>,
    Json(r): Json<EmailRequest>,
) -> Result<(StatusCode, Json<CodeSent>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.identity.start_password_reset(&r.email).await?),
    ))
}

/// Sets a new password with the mailed code; every existing login is ended.
#[utoipa::path(post, path = "/password-reset", tag = "auth", request_body = PasswordResetRequest, responses(
    (status = 204),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn password_reset(
    State(s): State<AppState>,
    Json(r): Json<PasswordResetRequest>,
) -> Result<StatusCode> {
    s.identity
        .finish_password_reset(&r.email, &r.code, &r.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Exchanges a refresh token for a new pair. Each refresh token works once; presenting
/// one again ends the whole login.
#[utoipa::path(post, path = "/refresh", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = TokenPair),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn refresh(
    State(s): State<AppState>,
    Json(r): Json<RefreshRequest>,
) -> Result<Json<TokenPair>> {
    Ok(Json(s.identity.refresh(&r.refresh_token).await?))
}

/// Ends the current login.
#[utoipa::path(post, path = "/logout", tag = "auth", security(("bearer" = [])), responses(
    (status = 204),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn logout(State(s): State<AppState>, actor: Actor) -> Result<StatusCode> {
    s.identity.logout(actor.principal()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a TOTP secret to add to an authenticator app.
#[utoipa::path(post, path = "/mfa/totp/setup", tag = "auth", security(("bearer" = [])), responses((status = 200, body = TotpSetup)))]
async fn setup_totp(State(s): State<AppState>, actor: Actor) -> Result<Json<TotpSetup>> {
    Ok(Json(s.identity.setup_totp(&actor).await?))
}

/// Turns TOTP on with a code from the app; returns recovery codes, shown only once.
#[utoipa::path(post, path = "/mfa/totp/enable", tag = "auth", security(("bearer" = [])), request_body = CodeRequest, responses(
    (status = 200, body = RecoveryCodes),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn enable_totp(
    State(s): State<AppState>,
    actor: Actor,
    Json(r): Json<CodeRequest>,
) -> Result<Json<RecoveryCodes>> {
    Ok(Json(s.identity.enable_totp(&actor, &r.code).await?))
}

/// Uses a mailed code as the second factor.
#[utoipa::path(post, path = "/mfa/email/enable", tag = "auth", security(("bearer" = [])), responses(
    (status = 204),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn enable_email_mfa(State(s): State<AppState>, actor: Actor) -> Result<StatusCode> {
    s.identity.enable_email_mfa(&actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns the second factor off (password required).
#[utoipa::path(post, path = "/mfa/disable", tag = "auth", security(("bearer" = [])), request_body = PasswordRequest, responses(
    (status = 204),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn disable_mfa(
    State(s): State<AppState>,
    actor: Actor,
    Json(r): Json<PasswordRequest>,
) -> Result<StatusCode> {
    s.identity.disable_mfa(&actor, &r.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
