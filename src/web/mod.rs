//! The web: the demo clinic page (`/`) with the chat widget (`/widget.js`), the admin
//! console (`/admin`) and the doctors' pages (`/doctor`), server-rendered with tera. Pages
//! carry a strict Content-Security-Policy (no inline script or style), and the API answers
//! cross-origin calls only from the sites clinics list as embedding the widget.

pub mod billing;
pub mod console;
pub mod desk;
pub mod doctor;
pub mod offline;
pub mod pages;
pub mod pharmacy;
pub mod portal;
pub mod session;
pub mod setup;
pub mod shifts;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tera::Context;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

const WIDGET: &str = include_str!("assets/widget.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");
const SITE_CSS: &str = include_str!("assets/site.css");

/// What the pages may load: only this origin; no inline script or style, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

pub fn routes(state: AppState) -> Router<AppState> {
    // Sign-in is rate limited per client address, as the API's is.
    let limit = || {
        crate::http::middleware::rate_limiter(
            state.config.auth_rate_limit,
            crate::http::client_ip::ClientIp::new(&state.config.trusted_proxies),
        )
    };
    // An upload form carries the file and a few small fields besides.
    let file_limit = state.config.max_file_bytes + 64 * 1024;
    let audio_limit = state.config.llm.max_audio_bytes + 64 * 1024;
    let logo_limit = crate::domain::clinics::branding::MAX_LOGO_BYTES + 64 * 1024;
    let pages = Router::new()
        .route("/", get(demo_page))
        .route(
            "/admin/login",
            get(console::login_page).post(console::login.layer(limit())),
        )
        .route("/admin/login/mfa", post(console::login_mfa.layer(limit())))
        .route(
            "/admin/login/code/start",
            post(console::login_code_start.layer(limit())),
        )
        .route(
            "/admin/login/code",
            post(console::login_code.layer(limit())),
        )
        .route(
            "/admin/password",
            get(console::password_page).post(console::password_set.layer(limit())),
        )
        .route(
            "/admin/password/start",
            post(console::password_start.layer(limit())),
        )
        .route("/admin/logout", post(console::logout))
        .route("/admin", get(console::overview))
        .route("/admin/clinic-requests", get(console::clinic_requests))
        .route(
            "/admin/clinic-requests/{id}/{decision}",
            post(console::decide_request),
        )
        .route("/admin/clinics/{id}/{change}", post(console::clinic_status))
        .route(
            "/admin/users",
            get(console::users).post(console::create_user),
        )
        .route("/admin/users/{id}/{action}", post(console::user_action))
        .route("/admin/audit", get(console::audit_log))
        .route("/admin/orchestration", get(console::orchestration_page))
        .route("/admin/reports", get(console::reports_page))
        .route("/admin/reports.csv", get(console::report_csv))
        .route("/admin/outbox", get(console::outbox_page))
        .route(
            "/admin/outbox/{id}/retry",
            post(console::retry_notification),
        )
        .route("/desk", get(desk::home))
        .route("/desk/offline", get(offline::page))
        .route("/desk/sync/snapshot", get(offline::snapshot))
        .route(
            "/desk/sync",
            post(offline::apply).layer(DefaultBodyLimit::max(
                crate::domain::scheduling::sync::MAX_BATCH_BYTES,
            )),
        )
        .route("/desk/identify", post(desk::identify))
        .route("/desk/appointments/{id}/mark", post(desk::mark))
        .route("/desk/appointments/{id}/cancel", post(desk::cancel))
        .route("/desk/appointments/{id}/reschedule", post(desk::reschedule))
        .route("/desk/book", get(desk::book_page).post(desk::book))
        .route("/desk/hold", post(desk::hold))
        .route("/desk/release", post(desk::release))
        .route("/desk/waitlist", post(desk::join_waitlist))
        .route(
            "/desk/invoices",
            get(billing::list_page).post(billing::create),
        )
        .route("/invoices/{id}", get(billing::page))
        .route("/invoices/{id}/pdf", get(billing::pdf))
        .route("/invoices/{id}/{action}", post(billing::action))
        .route("/admin/shifts", get(shifts::page).post(shifts::add))
        .route("/admin/shifts/hours", post(shifts::save_hours))
        .route("/admin/shifts/{id}/delete", post(shifts::remove))
        .route("/admin/shifts/{id}/exception", post(shifts::exception))
        .route("/admin/clinic", get(setup::page))
        .route("/admin/clinic/profile", post(setup::save_profile))
        .route(
            "/admin/clinic/logo",
            post(setup::upload_logo).layer(DefaultBodyLimit::max(logo_limit)),
        )
        .route("/admin/clinic/prices", post(setup::save_prices))
        .route("/admin/clinic/lab-prices", post(setup::save_lab_prices))
        .route("/admin/clinic/team", post(setup::invite))
        .route("/admin/clinic/doctors", post(setup::add_doctor))
        .route(
            "/admin/doctors/{id}",
            get(setup::doctor_page).post(setup::save_doctor),
        )
        .route("/admin/doctors/{id}/schedule", post(setup::save_schedule))
        .route("/admin/doctors/{id}/override", post(setup::save_override))
        .route("/admin/doctors/{id}/time-off", post(setup::add_time_off))
        .route("/pharmacy", get(pharmacy::home))
        .route("/pharmacy/medicines", post(pharmacy::add_medicine))
        .route(
            "/pharmacy/medicines/{id}",
            get(pharmacy::medicine_page).post(pharmacy::update_medicine),
        )
        .route("/pharmacy/medicines/{id}/receive", post(pharmacy::receive))
        .route("/pharmacy/batches/{id}/adjust", post(pharmacy::adjust))
        .route("/pharmacy/dispense", post(pharmacy::dispense))
        .route("/me", get(portal::home))
        .route("/files/{id}", get(portal::file))
        .route("/doctor", get(doctor::today))
        .route("/doctor/patients/{id}", get(doctor::patient))
        .route("/doctor/patients/{id}/notes", post(doctor::submit_note))
        .route("/doctor/appointments/{id}/mark", post(doctor::mark))
        .route("/doctor/patients/{id}/records", post(doctor::new_record))
        .route("/doctor/records/{id}", post(doctor::update_record))
        .route("/doctor/records/{id}/sign", post(doctor::sign_record))
        .route("/doctor/records/{id}/addenda", post(doctor::amend_record))
        .route("/doctor/records/{id}/labs", post(doctor::order_lab))
        .route(
            "/doctor/records/{id}/transcript",
            post(doctor::paste_transcript),
        )
        .route(
            "/doctor/records/{id}/transcript/draft",
            post(doctor::draft_from_transcript),
        )
        .route(
            "/doctor/records/{id}/transcript/audio",
            post(doctor::upload_audio).layer(DefaultBodyLimit::max(audio_limit)),
        )
        .route(
            "/doctor/records/{id}/files",
            post(doctor::upload_record_file).layer(DefaultBodyLimit::max(file_limit)),
        )
        .route("/doctor/lab-orders/{id}/results", post(doctor::lab_results))
        .route("/doctor/lab-orders/{id}/review", post(doctor::lab_review))
        .route(
            "/doctor/lab-orders/{id}/files",
            post(doctor::upload_lab_file).layer(DefaultBodyLimit::max(file_limit)),
        )
        .route("/me/profile", post(portal::save_profile))
        .route("/me/qr/revoke", post(portal::revoke_qr))
        .route(
            "/me/appointments/{id}/cancel",
            post(portal::cancel_appointment),
        )
        .route("/me/reminders/{id}/check-in", post(portal::check_in))
        .route("/me/appointments/{id}", get(portal::visit))
        .route("/me/appointments/{id}/move", post(portal::move_appointment))
        .route("/me/notifications", post(portal::save_notifications))
        .route("/me/delete", post(portal::delete_me))
        .route(
            "/r/{token}",
            get(portal::link_page).post(portal::link_check_in.layer(limit())),
        )
        .layer(middleware::from_fn_with_state(state, session::layer))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let assets = Router::new()
        .route("/widget.js", get(widget))
        .route("/desk/offline.js", get(offline::script))
        .route("/desk/sw.js", get(offline::worker))
        .route("/desk/manifest.webmanifest", get(offline::manifest))
        .route("/desk/icon.svg", get(offline::icon))
        .route(
            "/assets/console.css",
            get(|| asset("text/css", CONSOLE_CSS)),
        )
        .route("/assets/site.css", get(|| asset("text/css", SITE_CSS)));
    pages.merge(assets)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The widget script; any site may load it (what it may call is governed by CORS).
async fn widget() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        WIDGET,
    )
        .into_response()
}

/// A clinic's page with the widget: the first active clinic by name.
#[derive(serde::Deserialize)]
struct DemoQuery {
    clinic: Option<uuid::Uuid>,
}

/// The demo site: `/` is the network's page (the widget searches every clinic) listing the
/// clinics; `/?clinic=<id>` is one clinic's page, whose widget carries `data-clinic` and so
/// searches and books only there.
async fn demo_page(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<DemoQuery>,
) -> Response {
    let service = &s.config.agent.service_name;
    let clinics = match crate::domain::clinics::list(&s.db, None, None).await {
        Ok(list) => list,
        Err(e) => return pages::error_page(&e, service, None),
    };
    let mut c = Context::new();
    // With the demo data loaded, its accounts, so each role can be tried in the browser.
    let demo = s.demo_accounts.get();
    c.insert(
        "demo_accounts",
        &demo.map(|d| d.accounts.as_slice()).unwrap_or_default(),
    );
    c.insert("demo_password", &demo.map_or("", |d| d.password));
    let links: Vec<_> = clinics
        .iter()
        .map(|c| serde_json::json!({"id": c.id, "name": c.name, "address": c.address}))
        .collect();
    c.insert("clinics", &links);
    match q.clinic.and_then(|id| clinics.iter().find(|c| c.id == id)) {
        Some(clinic) => {
            c.insert("clinic_name", &clinic.name);
            c.insert("address", &clinic.address);
            c.insert("clinic_id", &clinic.id);
        }
        None if q.clinic.is_some() => {
            let e = crate::error::Error::not_found("clinic");
            return pages::error_page(&e, service, None);
        }
        None => {
            c.insert("clinic_name", service);
            let address = if clinics.is_empty() {
                "No clinic has joined yet."
            } else {
                "Every clinic of the network"
            };
            c.insert("address", address);
            c.insert("clinic_id", "");
        }
    }
    c.insert(
        "origin",
        s.config
            .public_url
            .as_deref()
            .unwrap_or("https://your-clinic-service"),
    );
    pages::render(
        "index.html",
        "Demo clinic",
        &s.config.agent.service_name,
        None,
        c,
    )
}

/// CORS for the API: same-origin calls need none; another origin is answered only when an
/// active clinic lists it as embedding the widget. Tokens travel in headers, not cookies.
pub fn cors(state: &AppState) -> CorsLayer {
    let db = state.db.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(
            move |origin: HeaderValue, _| {
                let db = db.clone();
                async move {
                    match origin.to_str() {
                        Ok(o) => crate::domain::clinics::widget_origin_allowed(&db, o).await,
                        Err(_) => false,
                    }
                }
            },
        ))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::ACCEPT,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-chat-secret"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}
