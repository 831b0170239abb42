//! Server-rendered pages: the tera templates (compiled into the binary, HTML-escaped) and
//! charts drawn as inline SVG, so the console needs no script at all.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use tera::{Context, Tera};

use crate::web::session::ConsoleUser;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("chart.html", include_str!("templates/chart.html")),
    ("forms.html", include_str!("templates/forms.html")),
    ("login.html", include_str!("templates/login.html")),
    ("password.html", include_str!("templates/password.html")),
    ("message.html", include_str!("templates/message.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("clinics.html", include_str!("templates/clinics.html")),
    ("users.html", include_str!("templates/users.html")),
    ("audit.html", include_str!("templates/audit.html")),
    (
        "orchestration.html",
        include_str!("templates/orchestration.html"),
    ),
    ("reports.html", include_str!("templates/reports.html")),
    ("outbox.html", include_str!("templates/outbox.html")),
    ("doctor.html", include_str!("templates/doctor.html")),
    ("patient.html", include_str!("templates/patient.html")),
    ("portal.html", include_str!("templates/portal.html")),
    ("desk.html", include_str!("templates/desk.html")),
    ("offline.html", include_str!("templates/offline.html")),
    ("desk_book.html", include_str!("templates/desk_book.html")),
    ("shifts.html", include_str!("templates/shifts.html")),
    ("setup.html", include_str!("templates/setup.html")),
    ("visit.html", include_str!("templates/visit.html")),
    ("pharmacy.html", include_str!("templates/pharmacy.html")),
    ("medicine.html", include_str!("templates/medicine.html")),
    ("invoices.html", include_str!("templates/invoices.html")),
    ("invoice.html", include_str!("templates/invoice.html")),
    ("check_in.html", include_str!("templates/check_in.html")),
    (
        "setup_doctor.html",
        include_str!("templates/setup_doctor.html"),
    ),
    ("index.html", include_str!("assets/index.html")),
];

static TERA: LazyLock<Result<Tera, String>> = LazyLock::new(|| {
    let mut tera = Tera::default();
    tera.add_raw_templates(TEMPLATES.iter().copied())
        .map_err(|e| format!("{e:?}"))?;
    Ok(tera)
});

/// What every console page knows about its viewer.
#[derive(Serialize)]
pub struct Viewer<'a> {
    pub id: uuid::Uuid,
    pub email: &'a str,
    pub csrf: &'a str,
    pub admin: bool,
    pub system_admin: bool,
    pub doctor: bool,
    /// Works a clinic's front desk (its staff and admins).
    pub desk: bool,
    /// Works a clinic's pharmacy.
    pub pharmacist: bool,
}

pub fn viewer(user: &ConsoleUser) -> Viewer<'_> {
    Viewer {
        id: user.principal.user_id,
        email: &user.principal.email,
        csrf: &user.csrf,
        admin: user.is_admin(),
        system_admin: user.is_system_admin(),
        doctor: user.is_doctor(),
        desk: crate::web::desk::works_a_desk(user),
        pharmacist: crate::web::pharmacy::works_a_pharmacy(user),
    }
}

/// Renders a template with the service name and the viewer.
pub fn render(
    template: &str,
    title: &str,
    service: &str,
    user: Option<&ConsoleUser>,
    mut context: Context,
) -> Response {
    context.insert("title", title);
    context.insert("service", service);
    if let Some(user) = user {
        context.insert("user", &viewer(user));
    }
    let tera = match TERA.as_ref() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "templates do not compile");
            return problem_page(StatusCode::INTERNAL_SERVER_ERROR, "The page is broken.");
        }
    };
    match tera.render(template, &context) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(template, error = ?e, "rendering a page failed");
            problem_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be shown.",
            )
        }
    }
}

/// A plain page for an error outside the templates' reach.
pub fn problem_page(status: StatusCode, message: &str) -> Response {
    let mut context = Context::new();
    context.insert("message", message);
    let html = TERA
        .as_ref()
        .ok()
        .and_then(|t| {
            context.insert("title", status.canonical_reason().unwrap_or("Error"));
            context.insert("service", "Clinic");
            t.render("message.html", &context).ok()
        })
        .unwrap_or_else(|| message.to_owned());
    (status, Html(html)).into_response()
}

/// An error from the domain, as a page with the same status.
pub fn error_page(e: &crate::error::Error, service: &str, user: Option<&ConsoleUser>) -> Response {
    let status = e.code().status();
    if status.is_server_error() {
        tracing::error!(error = %e, "a page failed");
    }
    let mut context = Context::new();
    context.insert("message", &e.for_people());
    let mut response = render(
        "message.html",
        status.canonical_reason().unwrap_or("Error"),
        service,
        user,
        context,
    );
    *response.status_mut() = status;
    response
}

/// A bar chart, laid out for the SVG template.
#[derive(Serialize)]
pub struct Chart {
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub color: &'static str,
    pub bars: Vec<Bar>,
}

#[derive(Serialize)]
pub struct Bar {
    pub label: String,
    pub value: String,
    pub x: f64,
    pub w: f64,
    pub h: f64,
    pub show_label: bool,
}

impl Chart {
    pub fn new(title: &str, color: &'static str, points: &[(String, f64)]) -> Self {
        let (width, height) = (600u32, 160u32);
        let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
        let n = points.len().max(1) as f64;
        let slot = f64::from(width) / n;
        // Label every bar when they fit, else about ten of them.
        let every = (points.len() / 10).max(1);
        let bars = points
            .iter()
            .enumerate()
            .map(|(i, (label, v))| Bar {
                label: label.clone(),
                value: if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                },
                x: i as f64 * slot + slot * 0.1,
                w: slot * 0.8,
                h: if max > 0.0 {
                    v / max * f64::from(height - 16)
                } else {
                    0.0
                },
                show_label: i % every == 0,
            })
            .collect();
        Self {
            title: title.to_owned(),
            width,
            height,
            color,
            bars,
        }
    }
}

/// A form's fields as sent, for forms whose names repeat or are numbered (a name may
/// repeat; the first counts; absent is empty).
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A form's action: its CSRF token checked, then `act`; on success to the page `act`
/// names, otherwise the error page.
pub async fn act<F>(service: &str, user: &ConsoleUser, csrf: &str, act: F) -> Response
where
    F: Future<Output = crate::error::Result<String>>,
{
    if let Err(e) = user.check_csrf(csrf) {
        return error_page(&e, service, Some(user));
    }
    match act.await {
        Ok(to) => axum::response::Redirect::to(&to).into_response(),
        Err(e) => error_page(&e, service, Some(user)),
    }
}
