//! HTTP: the API's routes by area (as in `domain`: identity, clinics, scheduling, care,
//! clinical;
//! then the chat, and `admin` for everything under `/api/v1/admin`), middleware and the
//! OpenAPI document. Handlers parse, call the domain with the caller's
//! [`Actor`](crate::domain::actor::Actor), and map the result.

pub mod admin;
pub mod billing;
pub mod care;
pub mod chat;
pub mod client_ip;
pub mod clinical;
pub mod clinics;
pub mod common_answers;
pub mod extract;
pub mod health;
pub mod identity;
pub mod middleware;
pub mod pharmacy;
pub mod scheduling;
pub mod server;
pub mod shifts;
pub mod sync;

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::RateLimit;
use crate::http::client_ip::ClientIp;
use crate::http::middleware::rate_limiter;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Clinic booking service", description = "Conversational booking agent service for clinics."),
    modifiers(&BearerAuth),
    components(schemas(crate::error::Problem, crate::error::Code, crate::error::FieldError, crate::domain::clinics::doctors::PartOfDay)),
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
    let auth_public =
        identity::auth::public_routes().layer(rate_limiter(rate_limit, client_ip.clone()));
    let applications = clinics::application_routes().layer(rate_limiter(rate_limit, client_ip));
    let v1 = OpenApiRouter::new()
        .nest("/auth", auth_public.merge(identity::auth::session_routes()))
        .merge(applications)
        .merge(identity::people::routes())
        .merge(clinics::routes())
        .merge(clinics::team::routes())
        .merge(scheduling::routes())
        .merge(shifts::routes())
        .merge(care::routes())
        .merge(clinical::routes())
        .merge(pharmacy::routes())
        .merge(billing::routes())
        .merge(sync::routes())
        .merge(chat::routes())
        .merge(admin::routes());
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .nest("/api/v1", v1)
        .split_for_parts();
    let (router, mut openapi) = (router, openapi);
    common_answers::document(&mut openapi);
    (router, openapi)
}
