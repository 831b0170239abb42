//! The doctors' pages (`/doctor`): today's appointments with Completed / No-show, their
//! patients, and per patient the chart (profile, visit records with prescriptions, labs
//! with abnormal values marked, files), forms to write and sign a record, order labs,
//! enter and review results, and the notes with the checklist and plan drawn from them.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use tera::Context;
use uuid::Uuid;

use crate::domain::care::{care_plans, notes};
use crate::domain::clinical::{chart, labs, records};
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
    let chart = match chart::open(&s.db, &user.actor, id).await {
        Ok(c) => c,
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    let tests = match labs::catalogue() {
        Ok(t) => t,
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    let mut c = Context::new();
    c.insert("chart", &chart);
    c.insert("lab_tests", tests);
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

/// The new-record form: the fields a doctor fills most, as text (empty means not given).
#[derive(Deserialize)]
pub struct RecordForm {
    csrf: String,
    chief_complaint: String,
    #[serde(default)]
    systolic: String,
    #[serde(default)]
    diastolic: String,
    #[serde(default)]
    temperature: String,
    #[serde(default)]
    heart_rate: String,
    #[serde(default)]
    findings: String,
    #[serde(default)]
    diagnosis: String,
    #[serde(default)]
    icd10: String,
    #[serde(default)]
    plan: String,
    #[serde(default)]
    follow_up_days: String,
    #[serde(default)]
    medicine: String,
    #[serde(default)]
    dose: String,
    #[serde(default)]
    times_per_day: String,
    #[serde(default)]
    duration_days: String,
    #[serde(default)]
    quantity: String,
}

/// A form field as a number: empty is "not given", anything else must parse.
fn number<T: std::str::FromStr>(
    field: &str,
    value: &str,
) -> Result<Option<T>, crate::error::Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        crate::error::Error::validation(vec![crate::error::FieldError {
            field: field.into(),
            message: format!("{value:?} is not a number"),
        }])
    })
}

impl RecordForm {
    fn body(&self) -> Result<records::RecordBody, crate::error::Error> {
        let mut body = records::RecordBody {
            chief_complaint: self.chief_complaint.clone(),
            findings: self.findings.clone(),
            plan: self.plan.clone(),
            follow_up_days: number("follow_up_days", &self.follow_up_days)?,
            ..records::RecordBody::default()
        };
        body.vitals.systolic_mmhg = number("systolic", &self.systolic)?;
        body.vitals.diastolic_mmhg = number("diastolic", &self.diastolic)?;
        body.vitals.temperature_c = number("temperature", &self.temperature)?;
        body.vitals.heart_rate_bpm = number("heart_rate", &self.heart_rate)?;
        if !self.diagnosis.trim().is_empty() {
            body.diagnoses.push(records::DiagnosisBody {
                text: self.diagnosis.clone(),
                code: Some(self.icd10.trim().to_owned()).filter(|c| !c.is_empty()),
            });
        }
        if !self.medicine.trim().is_empty() {
            body.prescriptions
                .push(crate::domain::clinical::prescriptions::PrescriptionBody {
                    medicine: self.medicine.clone(),
                    dose: self.dose.clone(),
                    route: crate::domain::clinical::prescriptions::Route::Oral,
                    times_per_day: number("times_per_day", &self.times_per_day)?,
                    every_hours: None,
                    duration_days: number("duration_days", &self.duration_days)?,
                    quantity: number("quantity", &self.quantity)?.unwrap_or(1),
                    refills: 0,
                    instructions: String::new(),
                });
        }
        Ok(body)
    }
}

pub async fn new_record(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<RecordForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&e, service(&s), Some(&user));
    }
    let created = match f.body() {
        Ok(body) => records::create(&s.db, &user.actor, id, &body).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(_) => Redirect::to(&format!("/doctor/patients/{id}")).into_response(),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn sign_record(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&e, service(&s), Some(&user));
    }
    match records::sign(&s.db, &user.actor, id).await {
        Ok(signed) => {
            Redirect::to(&format!("/doctor/patients/{}", signed.record.patient_id)).into_response()
        }
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

#[derive(Deserialize)]
pub struct OrderForm {
    csrf: String,
    patient: Uuid,
    code: String,
}

pub async fn order_lab(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<OrderForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&e, service(&s), Some(&user));
    }
    let body = labs::OrderBody {
        tests: vec![labs::OrderItem {
            code: Some(f.code.clone()),
            name: None,
        }],
    };
    match labs::order(&s.db, &user.actor, id, &body).await {
        Ok(_) => Redirect::to(&format!("/doctor/patients/{}", f.patient)).into_response(),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

/// Results as the form sends them: `value.<analyte code>` fields, empty ones skipped.
pub async fn lab_results(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        f.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if let Err(e) = user.check_csrf(&field("csrf")) {
        return error_page(&e, service(&s), Some(&user));
    }
    let mut values = Vec::new();
    for (key, value) in &f {
        let Some(code) = key.strip_prefix("value.") else {
            continue;
        };
        match number::<f64>(key, value) {
            Ok(Some(v)) => values.push(labs::ResultItem {
                code: code.to_owned(),
                name: None,
                value: Some(v),
                text: None,
                unit: None,
                low: None,
                high: None,
            }),
            Ok(None) => {}
            Err(e) => return error_page(&e, service(&s), Some(&user)),
        }
    }
    let body = labs::ResultsBody { values };
    match labs::enter_results(&s.db, &user.actor, id, &body).await {
        Ok(order) => {
            Redirect::to(&format!("/doctor/patients/{}", order.patient_id)).into_response()
        }
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

pub async fn lab_review(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&e, service(&s), Some(&user));
    }
    match labs::review(&s.db, &user.actor, id).await {
        Ok(order) => {
            Redirect::to(&format!("/doctor/patients/{}", order.patient_id)).into_response()
        }
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}
