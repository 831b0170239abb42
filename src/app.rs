//! Start-up: builds the shared state, assembles the router (API, documentation, pages),
//! binds the listener and serves until stopped.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Request, header};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{OnResponse, TraceLayer};
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::http::client_ip::ClientIp;
use crate::http::middleware::{self, REQUEST_ID};
use crate::state::AppState;

/// The line each answered request leaves: at `info` when it was refused (4xx) or slow (a
/// second or more), else at `debug` (`RUST_LOG=info,clinic::app=debug` shows every one).
/// Formatting a JSON line for every listing cost about a seventh of a listing's CPU;
/// server errors are logged at `error` by the trace layer's failure hook as before.
#[derive(Clone, Copy)]
struct ResponseLog;

impl<B> OnResponse<B> for ResponseLog {
    fn on_response(
        self,
        response: &axum::http::Response<B>,
        latency: std::time::Duration,
        _: &tracing::Span,
    ) {
        let status = response.status().as_u16();
        let latency_ms = latency.as_secs_f64() * 1000.0;
        if status >= 400 || latency >= std::time::Duration::from_secs(1) {
            tracing::info!(status, latency_ms, "finished processing request");
        } else {
            tracing::debug!(status, latency_ms, "finished processing request");
        }
    }
}

/// The whole service: the API and its documentation, the pages, and the layers around them.
pub fn router(state: AppState) -> Router {
    let client_ip = ClientIp::new(&state.config.trusted_proxies);
    let (api, openapi) = crate::http::api(state.config.auth_rate_limit, client_ip);
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
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(DefaultBodyLimit::max(middleware::MAX_BODY))
        .with_state(state)
        // Outside the routes, so preflight requests are answered before routing.
        .layer(cors)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }).on_response(ResponseLog))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("same-origin"),
                ))
                .layer(CatchPanicLayer::custom(|_| middleware::internal_error())),
        )
        .layer(tower::util::option_layer(hsts))
}

/// A bound server, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let state = AppState::build(config).await?;
        Self::with_state(state).await
    }

    pub async fn with_state(state: AppState) -> anyhow::Result<Self> {
        let addr = state.config.addr;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until ctrl-c or SIGTERM, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let db = self.state.db.clone();
        let jobs = crate::jobs::spawn(db.clone(), self.state.files.clone());
        let dispatcher = crate::notify::dispatch::spawn(self.state.dispatcher()?);
        let limits = self.state.config.http;
        let app = router(self.state);
        crate::http::server::serve(self.listener, app, limits, shutdown_signal()).await;
        jobs.abort();
        dispatcher.abort();
        db.close().await;
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "listening for ctrl-c failed");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "listening for SIGTERM failed");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
