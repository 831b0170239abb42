//! The patient's portal (`/me`): their profile, the QR code to show at a clinic's desk,
//! their signed visit records, lab results once reviewed (values outside the range marked)
//! and prescriptions. Read through the same domain calls as the API, with the patient's
//! identity; every read of clinical data is audited there.

use axum::extract::State;
use axum::response::Response;
use tera::Context;

use crate::domain::clinical::{labs, prescriptions, profiles, records};
use crate::state::AppState;
use crate::web::pages::{error_page, render};
use crate::web::session::SignedIn;

pub async fn home(State(s): State<AppState>, SignedIn(user): SignedIn) -> Response {
    let service = s.config.agent.service_name.as_str();
    let me = user.principal.user_id;
    let page = async {
        let profile = profiles::mine(&s.db, &user.actor).await?;
        let records = records::list(&s.db, &user.actor, me).await?;
        let labs = labs::list(&s.db, &user.actor, me).await?;
        let prescriptions = prescriptions::list(&s.db, &user.actor, me).await?;
        let qr = profiles::qr_token(&s.db, &user.actor, None).await?;
        let svg = crate::http::clinical::qr_svg(&qr.token)?;
        let mut c = Context::new();
        c.insert("profile", &profile);
        c.insert("records", &records);
        c.insert("labs", &labs);
        c.insert("prescriptions", &prescriptions);
        c.insert("qr_expires_at", &qr.expires_at);
        // The renderer's own SVG (digits, path data and fixed attributes only).
        c.insert(
            "qr_svg",
            &svg.trim_start_matches(|c| c != '<').replacen(
                r#"<?xml version="1.0" standalone="yes"?>"#,
                "",
                1,
            ),
        );
        Ok::<Context, crate::error::Error>(c)
    };
    match page.await {
        Ok(c) => render("portal.html", "My health", service, Some(&user), c),
        Err(e) => error_page(&e, service, Some(&user)),
    }
}

/// A clinical file for the signed-in reader of the pages (the patient or their doctor),
/// under the same rule as `GET /api/v1/files/{id}`, always as a download.
pub async fn file(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::extract::Path(id): axum::extract::Path<uuid::Uuid>,
) -> Response {
    use axum::http::HeaderValue;
    use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
    use axum::response::IntoResponse;
    match crate::domain::clinical::files::download(&s.db, s.files.as_ref(), &user.actor, id).await {
        Ok((meta, bytes)) => {
            let disposition = crate::http::clinical::attachment(&meta.name);
            let media = HeaderValue::from_str(&meta.media_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
            (
                [
                    (CONTENT_TYPE, media),
                    (CONTENT_DISPOSITION, disposition),
                    (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => error_page(&e, &s.config.agent.service_name, Some(&user)),
    }
}
