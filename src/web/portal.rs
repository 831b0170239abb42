//! The patient's portal (`/me`): their profile (which they edit), the QR code to show at a
//! clinic's desk (earlier codes revocable), their signed visit records, lab results once
//! reviewed (values outside the range marked) and prescriptions. Read through the same domain calls as the API, with the patient's
//! identity; every read of clinical data is audited there.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use tera::Context;

use chrono::Duration;

use crate::domain::care::care_plans;
use crate::domain::care::reminders::{self, ReminderStatus};
use crate::domain::clinical::{labs, prescriptions, profiles, records};
use crate::domain::clinics;
use crate::domain::scheduling::appointments::{self, AppointmentStatus};
use crate::state::AppState;
use crate::web::pages::{Fields, act, error_page, render};
use crate::web::session::SignedIn;

#[derive(serde::Deserialize, Default)]
pub struct HomeQuery {
    done: Option<String>,
}

pub async fn home(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::extract::Query(q): axum::extract::Query<HomeQuery>,
) -> Response {
    let service = s.config.agent.service_name.as_str();
    let me = user.principal.user_id;
    let page = async {
        let profile = profiles::mine(&s.db, &user.actor).await?;
        let records = records::list(&s.db, &user.actor, me).await?;
        let labs = labs::list(&s.db, &user.actor, me).await?;
        let prescriptions = prescriptions::list(&s.db, &user.actor, me).await?;
        let qr = profiles::qr_token(&s.db, &user.actor, None).await?;
        let (upcoming, past) = appointments_of(&s, &user).await?;
        let steps = care_plans::actionable_steps(&s.db, &user.actor, me).await?;
        let now = chrono::Utc::now();
        let grace = s.db.policy().reminder_grace;
        let reminders = reminders::mine(
            &s.db,
            &user.actor,
            now - Duration::days(2),
            now + Duration::days(7),
        )
        .await?;
        // Due (or missed) and not yet done: one tap checks in; the rest are coming.
        let (due, coming): (Vec<_>, Vec<_>) = reminders
            .into_iter()
            .filter(|r| matches!(r.status, ReminderStatus::Scheduled | ReminderStatus::Missed))
            .partition(|r| r.due_at <= now + grace);
        let svg = crate::http::clinical::qr_svg(&qr.token)?;
        let notifications =
            crate::domain::identity::people::notifications_of(&s.db, &user.actor).await?;
        let invoices = crate::web::billing::mine_for_portal(&s, &user.actor).await?;
        let mut c = Context::new();
        c.insert("notifications", &notifications);
        c.insert("invoices", &invoices);
        c.insert(
            "flash",
            &match q.done.as_deref() {
                Some("moved") => Some("Your visit is moved; a confirmation is on its way."),
                Some("notifications") => Some("Saved: reminders will reach you that way."),
                _ => None,
            },
        );
        c.insert("profile", &profile);
        c.insert("records", &records);
        c.insert("labs", &labs);
        c.insert("prescriptions", &prescriptions);
        c.insert("upcoming", &upcoming);
        c.insert("past", &past);
        c.insert("plans", &steps.plans);
        c.insert("due", &due);
        c.insert("coming", &coming.into_iter().take(10).collect::<Vec<_>>());
        c.insert("qr_expires_at", &qr.expires_at);
        c.insert("sexes", profiles::Sex::ALL);
        c.insert("blood_groups", profiles::BloodGroup::ALL);
        c.insert("languages", &["en", "pt", "es"]);
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

fn service(s: &AppState) -> &str {
    &s.config.agent.service_name
}

/// One item per line (or comma), blanks dropped.
fn items(text: &str) -> Vec<String> {
    text.split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The profile form as the API's body: empty fields are absent; up to two contacts.
fn profile_body(f: &Fields) -> crate::error::Result<profiles::ProfileBody> {
    use serde_json::{Value, json};
    let get = |name: &str| f.get(name).trim();
    let optional = |name: &str| match get(name) {
        "" => Value::Null,
        v => Value::String(v.to_owned()),
    };
    let mut contacts = Vec::new();
    for i in 0..2 {
        let (name, relation, phone) = (
            get(&format!("contact_name.{i}")),
            get(&format!("contact_relation.{i}")),
            get(&format!("contact_phone.{i}")),
        );
        if !(name.is_empty() && relation.is_empty() && phone.is_empty()) {
            contacts.push(json!({"name": name, "relation": relation, "phone": phone}));
        }
    }
    let body = json!({
        "date_of_birth": optional("date_of_birth"),
        "sex": optional("sex"),
        "blood_group": optional("blood_group"),
        "national_id": optional("national_id"),
        "insurance_id": optional("insurance_id"),
        "language": optional("language"),
        "emergency_contacts": contacts,
        "clinical": {
            "allergies": items(get("allergies")),
            "chronic_conditions": items(get("chronic_conditions")),
            "current_medication": items(get("current_medication")),
            "medical_history": get("medical_history"),
        },
    });
    serde_json::from_value(body).map_err(|e| {
        crate::error::Error::new(
            crate::error::Code::ValidationFailed,
            format!("The profile could not be read: {e}"),
        )
    })
}

/// The patient saves their profile (audited in the domain); back to the portal.
pub async fn save_profile(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        profiles::update_mine(&s.db, &user.actor, &profile_body(&f)?).await?;
        Ok("/me#profile".into())
    })
    .await
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// Every QR code shown before stops working (a lost or photographed phone); the page shows
/// a new one.
pub async fn revoke_qr(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        profiles::revoke_qr(&s.db, &user.actor).await?;
        Ok("/me#qr".into())
    })
    .await
}

/// An appointment as the portal lists it: local time, and whether the patient may still
/// cancel it here (before the clinic's cutoff).
#[derive(serde::Serialize)]
struct Visit {
    id: uuid::Uuid,
    when: String,
    doctor: String,
    clinic: String,
    status: AppointmentStatus,
    can_cancel: bool,
    /// "until 24 hours before".
    cutoff_hours: f64,
}

async fn appointments_of(
    s: &AppState,
    user: &crate::web::session::ConsoleUser,
) -> crate::error::Result<(Vec<Visit>, Vec<Visit>)> {
    let now = chrono::Utc::now();
    let mut cutoffs = std::collections::HashMap::new();
    let (mut upcoming, mut past) = (Vec::new(), Vec::new());
    for a in appointments::mine(&s.db, &user.actor, true).await? {
        let cutoff = match cutoffs.get(&a.clinic_id) {
            Some(c) => *c,
            None => {
                let c = clinics::get(&s.db, a.clinic_id)
                    .await?
                    .map_or(0, |c| c.cancellation_cutoff_minutes);
                cutoffs.insert(a.clinic_id, c);
                c
            }
        };
        let local = a.starts_at.with_timezone(&a.time_zone.tz());
        let visit = Visit {
            id: a.id,
            when: format!("{} ({})", local.format("%a %-d %b %Y, %H:%M"), a.time_zone),
            doctor: a.doctor_name,
            clinic: a.clinic_name,
            status: a.status,
            can_cancel: a.status == AppointmentStatus::Booked
                && a.starts_at - now >= Duration::minutes(cutoff),
            cutoff_hours: cutoff as f64 / 60.0,
        };
        if a.starts_at >= now && a.status == AppointmentStatus::Booked {
            upcoming.push(visit);
        } else {
            past.push(visit);
        }
    }
    past.reverse();
    past.truncate(10);
    Ok((upcoming, past))
}

/// The patient cancels one of their appointments (the same rule as the API: before the
/// clinic's cutoff); its time goes to the waitlist.
pub async fn cancel_appointment(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::extract::Path(id): axum::extract::Path<uuid::Uuid>,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        let reason = "Cancelled by the patient in the portal";
        appointments::cancel(&s.db, &user.actor, id, reason).await?;
        Ok("/me#appointments".into())
    })
    .await
}

/// One tap: the patient did what a due reminder asked.
pub async fn check_in(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::extract::Path(id): axum::extract::Path<uuid::Uuid>,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        reminders::check_in(&s.db, &user.actor, id).await?;
        Ok("/me#care".into())
    })
    .await
}

#[derive(serde::Deserialize, Default)]
pub struct VisitQuery {
    date: Option<chrono::NaiveDate>,
}

/// One visit, from the portal or a confirmation's link: when and with whom, cancel while
/// the clinic's cutoff allows, or move it to another free time of the same doctor.
pub async fn visit(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::extract::Path(id): axum::extract::Path<uuid::Uuid>,
    axum::extract::Query(q): axum::extract::Query<VisitQuery>,
) -> Response {
    let page = async {
        let a = appointments::get(&s.db, &user.actor, id).await?;
        if a.patient_id != user.principal.user_id {
            // The portal is the patient's own; staff use the desk.
            return Err(crate::error::Error::not_found("appointment"));
        }
        let tz = a.time_zone.tz();
        let now = chrono::Utc::now();
        let cutoff = clinics::get(&s.db, a.clinic_id)
            .await?
            .map_or(0, |c| c.cancellation_cutoff_minutes);
        let changeable =
            a.status == AppointmentStatus::Booked && a.starts_at - now >= Duration::minutes(cutoff);
        let today = now.with_timezone(&tz).date_naive();
        let from = q.date.unwrap_or(today).max(today);
        crate::domain::validate::query_dates([("date", Some(from))])?;
        let times: Vec<serde_json::Value> = if changeable {
            crate::domain::scheduling::slots::free_for_doctor(
                &s.db,
                a.doctor_id,
                &crate::domain::scheduling::slots::SlotQuery {
                    from: Some(from),
                    to: from.checked_add_days(chrono::Days::new(7)),
                    limit: Some(60),
                    ..Default::default()
                },
                now,
            )
            .await?
            .into_iter()
            .map(|sl| {
                serde_json::json!({"id": sl.id, "when": sl.starts_at.with_timezone(&tz).format("%a %-d %b, %H:%M").to_string()})
            })
            .collect()
        } else {
            Vec::new()
        };
        let mut c = Context::new();
        c.insert("id", &a.id);
        c.insert(
            "when",
            &format!(
                "{} ({})",
                a.starts_at.with_timezone(&tz).format("%a %-d %b %Y, %H:%M"),
                a.time_zone
            ),
        );
        c.insert("doctor", &a.doctor_name);
        c.insert("clinic", &a.clinic_name);
        c.insert("status", &a.status);
        c.insert("changeable", &changeable);
        c.insert("cutoff_hours", &(cutoff as f64 / 60.0));
        c.insert("times", &times);
        c.insert("next_week", &(from + chrono::Days::new(7)));
        Ok::<_, crate::error::Error>(c)
    };
    match page.await {
        Ok(c) => render("visit.html", "My appointment", service(&s), Some(&user), c),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

#[derive(serde::Deserialize)]
pub struct MoveForm {
    csrf: String,
    slot: uuid::Uuid,
}

/// The patient moves their visit (before the cutoff; the old time is freed at once).
pub async fn move_appointment(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::extract::Path(id): axum::extract::Path<uuid::Uuid>,
    axum::Form(f): axum::Form<MoveForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        let a = appointments::get(&s.db, &user.actor, id).await?;
        if a.patient_id != user.principal.user_id {
            return Err(crate::error::Error::not_found("appointment"));
        }
        appointments::reschedule(&s.db, &user.actor, id, f.slot).await?;
        Ok("/me?done=moved#appointments".into())
    })
    .await
}

/// How reminders reach the patient: email, SMS or WhatsApp (with a phone), and the zone
/// their times are told in.
pub async fn save_notifications(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let some = |name: &str| match f.get(name).trim() {
            "" => None,
            v => Some(v.to_owned()),
        };
        let settings = crate::domain::identity::people::NotificationSettings {
            channel: f.get("channel").to_owned(),
            phone: some("phone"),
            time_zone: some("time_zone"),
            language: None,
        };
        crate::domain::identity::people::set_notifications(&s.db, &user.actor, settings).await?;
        Ok("/me?done=notifications#notifications".into())
    })
    .await
}

/// Deletes the account and its data (the same erasure as `DELETE /api/v1/me`), after the
/// password; the login ends with it.
pub async fn delete_me(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    if let Err(e) = user.check_csrf(f.get("csrf")) {
        return error_page(&e, service(&s), Some(&user));
    }
    let erase = async {
        if f.get("understood") != "yes" {
            return Err(crate::error::Error::new(
                crate::error::Code::ValidationFailed,
                "Tick the box to confirm that everything is deleted for good.",
            ));
        }
        s.identity
            .reauthenticate(&user.actor, Some(f.get("password")), None)
            .await?;
        crate::domain::erasure::erase_own(&s.db, &user.actor).await
    };
    match erase.await {
        Ok(_) => {
            let mut c = Context::new();
            c.insert(
                "message",
                "Your account and your data are deleted. Thank you for having been with us.",
            );
            let mut response = render("message.html", "Deleted", service(&s), None, c);
            for cookie in crate::web::session::cookies(&s, None) {
                response
                    .headers_mut()
                    .append(axum::http::header::SET_COOKIE, cookie);
            }
            response
        }
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

/// A check-in link from a reminder: what it is for, and one button. No sign-in: the signed,
/// expiring link is the permission, and it does nothing but check in the step due now.
pub async fn link_page(
    State(s): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    let view = reminders::by_link(&s.db, &token).await;
    link_view(&s, &token, view)
}

pub async fn link_check_in(
    State(s): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    let view = reminders::check_in_by_link(&s.db, &token).await;
    link_view(&s, &token, view)
}

fn link_view(
    s: &AppState,
    token: &str,
    view: crate::error::Result<reminders::LinkView>,
) -> Response {
    match view {
        Ok(v) => {
            let mut c = Context::new();
            c.insert("token", token);
            c.insert("view", &v);
            render("check_in.html", "Check in", service(s), None, c)
        }
        Err(e) => error_page(&e, service(s), None),
    }
}
