//! Shift planning for clinic admins (`/admin/shifts`): the clinic's opening hours, each
//! person's weekly shifts with one-day exceptions, a week's coverage with the hours no
//! front-desk person or no doctor covers, and the doctors' bookings and bookable times
//! outside their shifts. A change that leaves appointments without their doctor on shift
//! says so; nothing is moved.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tera::Context;
use uuid::Uuid;

use crate::domain::actor::Role;
use crate::domain::clinics::{self, Clinic, doctors, staff};
use crate::domain::scheduling::shifts::{
    self, DaysQuery, OpeningSpan, ShiftChange, ShiftException, ShiftForm,
};
use crate::error::{Code, Error, Result};
use crate::state::AppState;
use crate::web::console::Admin;
use crate::web::pages::{Fields, act, error_page, render};
use crate::web::session::ConsoleUser;

const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

/// Spans of opening hours the page offers per day.
const SPANS_PER_DAY: usize = 2;

fn service(s: &AppState) -> &str {
    &s.config.agent.service_name
}

/// The clinics this admin runs, and the one asked for (or the first).
pub async fn admin_clinic(
    s: &AppState,
    user: &ConsoleUser,
    id: Option<Uuid>,
) -> Result<(Vec<Clinic>, Clinic)> {
    let mut mine = clinics::list_all(&s.db, &user.actor).await?;
    if !user.is_system_admin() {
        mine.retain(|c| user.principal.administers_clinic(c.id));
    }
    let chosen = match id {
        Some(id) => mine.iter().find(|c| c.id == id).cloned(),
        None => mine.first().cloned(),
    };
    match chosen {
        Some(c) => Ok((mine, c)),
        None if mine.is_empty() => Err(Error::new(
            Code::NotFound,
            "No clinic to run yet: a clinic is approved first.",
        )),
        None => Err(Error::not_found("clinic")),
    }
}

#[derive(Deserialize)]
pub struct ShiftsQuery {
    clinic: Option<Uuid>,
    from: Option<NaiveDate>,
    done: Option<String>,
    uncovered: Option<usize>,
}

#[derive(Serialize)]
struct Person {
    value: String,
    label: String,
}

#[derive(Serialize)]
struct HoursRow {
    weekday: &'static str,
    label: &'static str,
    spans: Vec<(String, String)>,
}

pub async fn page(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<ShiftsQuery>,
) -> Response {
    let page = async {
        let (all, clinic) = admin_clinic(&s, &user, q.clinic).await?;
        let today = Utc::now().with_timezone(&clinic.tz()).date_naive();
        let from = q.from.unwrap_or(today);
        let hours = shifts::opening_hours(&s.db, clinic.id).await?;
        let rows: Vec<HoursRow> = WEEKDAYS
            .iter()
            .map(|(w, label)| {
                let mut spans: Vec<(String, String)> = hours
                    .iter()
                    .filter(|h| h.weekday == *w)
                    .map(|h| (h.start.clone(), h.end.clone()))
                    .collect();
                spans.resize(
                    SPANS_PER_DAY.max(spans.len()),
                    (String::new(), String::new()),
                );
                HoursRow {
                    weekday: w,
                    label,
                    spans,
                }
            })
            .collect();
        let mut people = Vec::new();
        let team = doctors::of_clinic(&s.db, clinic.id).await?;
        for d in &team {
            people.push(Person {
                value: format!("doctor:{}", d.id),
                label: format!("{} (doctor)", d.display_name),
            });
        }
        for m in staff::list(&s.db, &user.actor, clinic.id).await? {
            if let (Some(id), true) = (m.user_id, m.role != "doctor") {
                people.push(Person {
                    value: format!("{}:{id}", m.role),
                    label: format!("{} ({})", m.display_name, m.role.replace('_', " ")),
                });
            }
        }
        let list = shifts::list(&s.db, &user.actor, clinic.id).await?;
        let coverage = shifts::coverage(
            &s.db,
            &user.actor,
            clinic.id,
            &DaysQuery {
                from: Some(from),
                days: Some(7),
            },
        )
        .await?;
        let mut c = Context::new();
        c.insert("clinics", &all);
        c.insert("clinic", &clinic);
        c.insert("hours", &rows);
        c.insert("people", &people);
        c.insert("weekdays", &WEEKDAYS);
        c.insert("shifts", &list);
        c.insert("coverage", &coverage);
        c.insert("from", &from);
        c.insert("today", &today);
        c.insert("prev_week", &(from - chrono::Days::new(7)));
        c.insert("next_week", &(from + chrono::Days::new(7)));
        let flash = match q.done.as_deref() {
            Some("hours") => Some("Opening hours saved.".to_owned()),
            Some(_) => Some(match q.uncovered.unwrap_or(0) {
                0 => "Saved. No appointment is left without its doctor on shift.".to_owned(),
                n => format!(
                    "Saved. {n} appointment(s) in the next 90 days are now without their doctor on shift: they are kept as booked and listed under conflicts for you to resolve."
                ),
            }),
            None => None,
        };
        c.insert("flash", &flash);
        Ok::<_, Error>(c)
    };
    match page.await {
        Ok(c) => render("shifts.html", "Shifts", service(&s), Some(&user), c),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

fn done(clinic: Uuid, change: &ShiftChange) -> String {
    format!(
        "/admin/shifts?clinic={clinic}&done=shift&uncovered={}",
        change.uncovered_appointments.len()
    )
}

fn clinic_of(f: &Fields) -> Result<Uuid> {
    f.get("clinic")
        .parse()
        .map_err(|_| Error::new(Code::ValidationFailed, "clinic: which clinic?"))
}

/// Saves the week's opening hours (empty rows: closed).
pub async fn save_hours(
    State(s): State<AppState>,
    Admin(user): Admin,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = clinic_of(&f)?;
        let mut spans = Vec::new();
        for (w, _) in WEEKDAYS {
            for i in 0..8 {
                let (start, end) = (
                    f.get(&format!("open.{w}.{i}")).trim(),
                    f.get(&format!("close.{w}.{i}")).trim(),
                );
                if !(start.is_empty() && end.is_empty()) {
                    spans.push(OpeningSpan {
                        weekday: w.to_owned(),
                        start: start.to_owned(),
                        end: end.to_owned(),
                    });
                }
            }
        }
        shifts::set_opening_hours(&s.db, &user.actor, clinic, spans).await?;
        Ok(format!("/admin/shifts?clinic={clinic}&done=hours"))
    })
    .await
}

fn optional_date(f: &Fields, name: &str) -> Result<Option<NaiveDate>> {
    match f.get(name).trim() {
        "" => Ok(None),
        v => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                Error::new(
                    Code::ValidationFailed,
                    format!("{name}: a date like 2026-12-31"),
                )
            }),
    }
}

/// Adds a weekly shift for the chosen person.
pub async fn add(
    State(s): State<AppState>,
    Admin(user): Admin,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = clinic_of(&f)?;
        let (kind, id) = f.get("person").split_once(':').unwrap_or(("", ""));
        let id: Uuid = id
            .parse()
            .map_err(|_| Error::new(Code::ValidationFailed, "person: pick who works the shift"))?;
        let role = Role::parse(kind).ok_or_else(|| {
            Error::new(Code::ValidationFailed, "person: pick who works the shift")
        })?;
        let form = ShiftForm {
            role,
            doctor_id: (role == Role::Doctor).then_some(id),
            user_id: (role != Role::Doctor).then_some(id),
            weekday: f.get("weekday").to_owned(),
            start: f.get("start").to_owned(),
            end: f.get("end").to_owned(),
            valid_from: optional_date(&f, "valid_from")?,
            valid_until: optional_date(&f, "valid_until")?,
        };
        let change = shifts::create(&s.db, &user.actor, clinic, form).await?;
        Ok(done(clinic, &change))
    })
    .await
}

/// Removes a shift.
pub async fn remove(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = clinic_of(&f)?;
        let change = shifts::delete(&s.db, &user.actor, id).await?;
        Ok(done(clinic, &change))
    })
    .await
}

/// One day of a shift off, or at other hours.
pub async fn exception(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = clinic_of(&f)?;
        let date = optional_date(&f, "date")?
            .ok_or_else(|| Error::new(Code::ValidationFailed, "date: which day?"))?;
        let some = |name: &str| match f.get(name).trim() {
            "" => None,
            v => Some(v.to_owned()),
        };
        let e = ShiftException {
            local_date: date,
            start_local: some("start"),
            end_local: some("end"),
            reason: f.get("reason").to_owned(),
        };
        let change = shifts::set_exception(&s.db, &user.actor, id, e, false).await?;
        Ok(done(clinic, &change))
    })
    .await
}
