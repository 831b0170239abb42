//! HTTP: routers, middleware and the OpenAPI document. Handlers parse, call the domain
//! with the caller's [`Actor`](crate::domain::actor::Actor), and map the result.

pub mod auth;
pub mod booking;
pub mod care;
pub mod chat;
pub mod client_ip;
pub mod clinics;
pub mod common_answers;
pub mod extract;
pub mod health;
pub mod listing_cache;
pub mod people;
pub mod server;
pub mod team;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;
use crate::config::RateLimit;
use crate::error::{Code, problem_response};
use crate::http::client_ip::ClientIp;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// JSON bodies larger than this are refused with `payload_too_large`.
const MAX_BODY: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "Clinic booking service", description = "Conversational booking agent service for clinics."),
    modifiers(&BearerAuth),
    components(schemas(crate::error::Problem, crate::error::Code, crate::error::FieldError, crate::domain::doctors::PartOfDay)),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document and the router it describes.
pub fn api(
    rate_limit: RateLimit,
    client_ip: ClientIp,
) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let auth_public = auth::public_routes().layer(rate_limiter(rate_limit, client_ip.clone()));
    let applications = clinics::application_routes().layer(rate_limiter(rate_limit, client_ip));
    let v1 = OpenApiRouter::new()
        .nest("/auth", auth_public.merge(auth::session_routes()))
        .merge(applications)
        .merge(people::routes())
        .merge(clinics::routes())
        .merge(booking::routes())
        .merge(team::routes())
        .merge(chat::routes())
        .merge(care::routes());
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .nest("/api/v1", v1)
        .split_for_parts();
    let (router, mut openapi) = (router, openapi);
    common_answers::document(&mut openapi);
    (router, openapi)
}

pub fn router(state: AppState) -> Router {
    let client_ip = ClientIp::new(&state.config.trusted_proxies);
    let (api, openapi) = api(state.config.auth_rate_limit, client_ip);
    // The Swagger UI assets are compiled into the binary (the `vendored` feature), so the
    // docs page needs no network; the validator badge, which would call out, is off.
    let docs = SwaggerUi::new("/api/v1/docs")
        .url("/api/v1/openapi.json", openapi)
        .config(utoipa_swagger_ui::Config::default().validator_url("none"));
    let cors = crate::web::cors(&state);
    // Answers may carry health data: no cache keeps them unless a route says otherwise
    // (public images and scripts do).
    let api = api.layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    // Served over https, browsers are told to never use plain http here again.
    let hsts = state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        .then(|| {
            SetResponseHeaderLayer::overriding(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            )
        });
    api.merge(docs)
        .merge(crate::web::routes(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
        // Outside the routes, so preflight requests are answered before routing.
        .layer(cors)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }).on_response(DefaultOnResponse::new().level(tracing::Level::INFO)))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("same-origin"),
                ))
                .layer(CatchPanicLayer::custom(|_| internal_error())),
        )
        .layer(tower::util::option_layer(hsts))
}

pub(crate) fn rate_limiter(
    limit: RateLimit,
    client_ip: ClientIp,
) -> GovernorLayer<ClientIp, governor::middleware::NoOpMiddleware, axum::body::Body> {
    let replenish_ms = u64::try_from(limit.replenish.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let config = GovernorConfigBuilder::default()
        .per_millisecond(replenish_ms)
        .burst_size(limit.burst.max(1))
        .key_extractor(client_ip)
        .finish();
    // Both are clamped to at least 1 above, the only inputs `finish` rejects.
    let config = config.expect("rate limit with a positive period and burst");
    GovernorLayer::new(Arc::new(config)).error_handler(move |e| {
        let wait = match e {
            tower_governor::GovernorError::TooManyRequests { wait_time, .. } => wait_time,
            _ => Duration::from_millis(replenish_ms).as_secs().max(1),
        };
        let mut response = problem_response(
            Code::RateLimited,
            format!("Too many attempts; try again in {wait} seconds."),
            Vec::new(),
        );
        if let Ok(value) = wait.to_string().parse() {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    })
}

async fn not_found() -> Response {
    problem_response(Code::NotFound, "No such resource.".into(), Vec::new())
}

async fn method_not_allowed() -> Response {
    problem_response(
        Code::MethodNotAllowed,
        "That method is not supported here.".into(),
        Vec::new(),
    )
}

fn internal_error() -> Response {
    tracing::error!("a request handler panicked");
    problem_response(
        Code::Internal,
        "Something went wrong on our side; it has been logged.".into(),
        Vec::new(),
    )
}
