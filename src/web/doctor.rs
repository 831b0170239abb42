//! The doctors' pages (`/doctor`): today's appointments with Completed / No-show, their
//! patients, and per patient the notes, a form for a new note and the checklist and plan
//! extracted from it.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use tera::Context;
use uuid::Uuid;

use crate::domain::care::{care_plans, notes};
use crate::domain::clinics::doctors;
use crate::domain::scheduling::appointments::{self, Visit};
use crate::state::AppState;
use crate::web::pages::{error_page, render};
use crate::web::session::SignedIn;

fn service(s: &AppState) -> &str {
    &s.config.agent.service_name
}

pub async fn today(State(s): State<AppState>, SignedIn(user): SignedIn) -> Response {
    if !user.is_doctor() {
        return Redirect::to("/admin").into_response();
    }
    let ids = match doctors::ids_of_user(&s.db, user.principal.user_id).await {
        Ok(ids) => ids,
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    let now = Utc::now();
    let mut days = Vec::new();
    let mut patients = BTreeMap::new();
    let mut today_label = String::new();
    for id in ids {
        let doctor = match doctors::get(&s.db, id).await {
            Ok(Some(doctor)) => doctor,
            Ok(None) => continue,
            Err(e) => return error_page(&e, service(&s), Some(&user)),
        };
        let tz = doctor.time_zone.tz();
        let date = now.with_timezone(&tz).date_naive();
        today_label = date.format("%A %-d %B %Y").to_string();
        let list = match appointments::doctor_day(&s.db, &user.actor, id, date).await {
            Ok(l) => l,
            Err(e) => return error_page(&e, service(&s), Some(&user)),
        };
        for a in &list {
            patients.insert(
                a.patient_id,
                serde_json::json!({"id": a.patient_id, "display_name": a.patient_name, "email": ""}),
            );
        }
        let mine = match doctors::patients(&s.db, &user.actor, id).await {
            Ok(mine) => mine,
            Err(e) => return error_page(&e, service(&s), Some(&user)),
        };
        for p in mine {
            patients.insert(
                p.id,
                serde_json::json!({"id": p.id, "display_name": p.display_name, "email": p.email}),
            );
        }
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|a| {
                serde_json::json!({
                    "id": a.id, "patient_id": a.patient_id, "patient_name": a.patient_name,
                    "reason": a.reason, "status": a.status, "past": a.starts_at <= now,
                    "local_time": a.starts_at.with_timezone(&tz).format("%H:%M").to_string(),
                })
            })
            .collect();
        days.push(serde_json::json!({"doctor": doctor.display_name, "clinic": doctor.clinic_name, "appointments": rows}));
    }
    let mut c = Context::new();
    c.insert("today", &today_label);
    c.insert("days", &days);
    c.insert("patients", &patients.into_values().collect::<Vec<_>>());
    render("doctor.html", "My day", service(&s), Some(&user), c)
}

async fn patient_page(
    s: &AppState,
    user: &crate::web::session::ConsoleUser,
    id: Uuid,
    failed: Option<(String, &str)>,
) -> Response {
    let list = match notes::list(&s.db, &user.actor, id).await {
        Ok(l) => l,
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    let steps = match care_plans::actionable_steps(&s.db, &user.actor, id).await {
        Ok(st) => st,
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    let name = match crate::domain::identity::people::find(&s.db, id).await {
        Ok(found) => found.map(|u| u.display_name).unwrap_or_default(),
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    let mut c = Context::new();
    c.insert("patient_id", &id);
    c.insert("patient_name", &name);
    c.insert("notes", &list);
    c.insert("steps", &steps);
    if let Some((error, draft)) = failed {
        c.insert("error", &error);
        c.insert("draft", draft);
    }
    render("patient.html", &name, service(s), Some(user), c)
}

pub async fn patient(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
) -> Response {
    patient_page(&s, &user, id, None).await
}

#[derive(Deserialize)]
pub struct NoteForm {
    csrf: String,
    text: String,
}

pub async fn submit_note(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<NoteForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&e, service(&s), Some(&user));
    }
    if let Err(e) = notes::require_writer(&s.db, &user.actor, id).await {
        return error_page(&e, service(&s), Some(&user));
    }
    let saved = match notes::check_text(&f.text) {
        Ok(text) => match s.agent.extract_plan(&text).await {
            Ok(extraction) => notes::submit(&s.db, &user.actor, id, &text, &extraction).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => Redirect::to(&format!("/doctor/patients/{id}")).into_response(),
        // Nothing was stored: the note goes back into the form.
        Err(e) => patient_page(&s, &user, id, Some((e.for_people(), &f.text))).await,
    }
}

#[derive(Deserialize)]
pub struct MarkForm {
    csrf: String,
    to: String,
}

pub async fn mark(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<MarkForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&e, service(&s), Some(&user));
    }
    let to = match f.to.as_str() {
        "completed" => Visit::Completed,
        "no_show" => Visit::NoShow,
        "checked_in" => Visit::CheckedIn,
        _ => {
            return error_page(
                &crate::error::Error::new(
                    crate::error::Code::ValidationFailed,
                    "to: completed, no_show or checked_in",
                ),
                service(&s),
                Some(&user),
            );
        }
    };
    match appointments::mark(&s.db, &user.actor, id, to).await {
        Ok(_) => Redirect::to("/doctor").into_response(),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}
