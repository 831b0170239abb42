//! What wraps the routes: per-client rate limits, and the problem answers for unknown
//! routes, wrong methods and panics.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use axum::response::Response;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

use crate::config::RateLimit;
use crate::error::{Code, problem_response};
use crate::http::client_ip::ClientIp;

/// Every request carries one (given or made here), echoed in the answer and the logs.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// JSON bodies larger than this are refused with `payload_too_large`.
pub const MAX_BODY: usize = 64 * 1024;

/// Limits requests per client address (sign-in, applications).
pub fn rate_limiter(
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

pub async fn not_found() -> Response {
    problem_response(Code::NotFound, "No such resource.".into(), Vec::new())
}

pub async fn method_not_allowed() -> Response {
    problem_response(
        Code::MethodNotAllowed,
        "That method is not supported here.".into(),
        Vec::new(),
    )
}

pub fn internal_error() -> Response {
    tracing::error!("a request handler panicked");
    problem_response(
        Code::Internal,
        "Something went wrong on our side; it has been logged.".into(),
        Vec::new(),
    )
}
