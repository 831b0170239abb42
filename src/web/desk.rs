//! The front desk (`/desk`), for a clinic's staff and admins: any day's appointments per
//! doctor with check-in, completed and no-show; cancel and reschedule; patient search by
//! name, email, phone, date of birth or the patient's QR code; booking for a patient with
//! the time held while the desk talks to them; the waitlist; and the person's own shifts.
//! Every action is the same domain call the API makes, with the same rules.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tera::Context;
use uuid::Uuid;

use crate::domain::actor::Role;
use crate::domain::clinical::profiles::{self, PatientQuery};
use crate::domain::clinics::{self, Clinic, doctors};
use crate::domain::identity::people;
use crate::domain::scheduling::appointments::{self, AppointmentStatus, Visit};
use crate::domain::scheduling::shifts::{self, DaysQuery};
use crate::domain::scheduling::slots::{self, SlotQuery};
use crate::domain::scheduling::waitlist;
use crate::error::{Code, Error, Result};
use crate::state::AppState;
use crate::web::pages::{act, error_page, render};
use crate::web::session::{ConsoleUser, SignedIn};

fn service(s: &AppState) -> &str {
    &s.config.agent.service_name
}

/// The clinics whose desk this person works: where they are staff or admin (every clinic
/// for a system admin).
pub(crate) async fn desk_clinics(s: &AppState, user: &ConsoleUser) -> Result<Vec<Clinic>> {
    if user.is_system_admin() {
        return clinics::list_all(&s.db, &user.actor).await;
    }
    let mut out = Vec::new();
    for g in &user.principal.grants {
        if let (Role::ClinicStaff | Role::ClinicAdmin, Some(id)) = (g.role, g.clinic_id)
            && !out.iter().any(|c: &Clinic| c.id == id)
            && let Some(c) = clinics::get(&s.db, id).await?
        {
            out.push(c);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The clinic asked for (or the first), refused when it is not one of theirs.
pub(crate) async fn pick_clinic(
    s: &AppState,
    user: &ConsoleUser,
    id: Option<Uuid>,
) -> Result<(Vec<Clinic>, Clinic)> {
    let all = desk_clinics(s, user).await?;
    let chosen = match id {
        Some(id) => all.iter().find(|c| c.id == id).cloned(),
        None => all.first().cloned(),
    };
    match chosen {
        Some(c) => Ok((all, c)),
        None if all.is_empty() => Err(Error::forbidden()),
        None => Err(Error::not_found("clinic")),
    }
}

#[derive(Deserialize, Default)]
pub struct DeskQuery {
    clinic: Option<Uuid>,
    date: Option<NaiveDate>,
    doctor: Option<Uuid>,
    /// A search: a name or email, a phone (+…), or a date of birth (YYYY-MM-DD).
    q: Option<String>,
    done: Option<String>,
}

#[derive(Serialize)]
struct Row {
    id: Uuid,
    time: String,
    patient_id: Uuid,
    patient_name: String,
    reason: String,
    status: AppointmentStatus,
    past: bool,
}

#[derive(Serialize)]
struct DoctorDay {
    id: Uuid,
    name: String,
    rows: Vec<Row>,
}

/// The search box's text as the search's fields.
fn search_of(q: &str) -> PatientQuery {
    let q = q.trim();
    let mut query = PatientQuery::default();
    if let Ok(date) = NaiveDate::parse_from_str(q, "%Y-%m-%d") {
        query.date_of_birth = Some(date);
    } else if q.starts_with('+') {
        query.phone = Some(q.chars().filter(|c| !c.is_whitespace()).collect());
    } else {
        query.q = Some(q.to_owned());
    }
    query
}

fn flash(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "booked" => "Booked.",
        "moved" => "The visit was moved.",
        "cancelled" => "The visit was cancelled; its time went to the waitlist.",
        "marked" => "Saved.",
        "waitlisted" => "The patient is on the waitlist and will be offered the first freed time.",
        "released" => "The time is free again.",
        _ => return None,
    })
}

pub async fn home(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Query(q): Query<DeskQuery>,
) -> Response {
    let page = async {
        let (all, clinic) = pick_clinic(&s, &user, q.clinic).await?;
        let tz = clinic.tz();
        let now = Utc::now();
        let today = now.with_timezone(&tz).date_naive();
        let date = q.date.unwrap_or(today);
        crate::domain::validate::query_dates([("date", Some(date))])?;
        let list = appointments::clinic_day(&s.db, &user.actor, clinic.id, date).await?;
        let team = doctors::of_clinic(&s.db, clinic.id).await?;
        let mut days: Vec<DoctorDay> = team
            .iter()
            .filter(|d| q.doctor.is_none_or(|id| id == d.id))
            .map(|d| DoctorDay {
                id: d.id,
                name: d.display_name.clone(),
                rows: Vec::new(),
            })
            .collect();
        for a in list {
            if let Some(day) = days.iter_mut().find(|d| d.id == a.doctor_id) {
                day.rows.push(Row {
                    id: a.id,
                    time: a.starts_at.with_timezone(&tz).format("%H:%M").to_string(),
                    patient_id: a.patient_id,
                    patient_name: a.patient_name,
                    reason: a.reason,
                    status: a.status,
                    past: a.starts_at <= now,
                });
            }
        }
        // The doctors with visits that day (all of them when one is asked for).
        days.retain(|d| !d.rows.is_empty() || q.doctor.is_some());
        let results = match q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(text) => Some(
                profiles::search(&s.db, &user.actor, clinic.id, &search_of(text))
                    .await?
                    .patients,
            ),
            None => None,
        };
        let mine = shifts::mine(
            &s.db,
            &user.actor,
            &DaysQuery {
                from: Some(today),
                days: Some(7),
            },
        )
        .await?;
        let mut c = Context::new();
        c.insert("clinics", &all);
        c.insert("clinic", &clinic);
        c.insert("date", &date);
        c.insert("date_label", &date.format("%A %-d %B %Y").to_string());
        c.insert("prev", &date.pred_opt().unwrap_or(date));
        c.insert("next", &date.succ_opt().unwrap_or(date));
        c.insert("today", &today);
        c.insert("doctors", &team);
        c.insert("doctor", &q.doctor);
        c.insert("days", &days);
        c.insert("q", &q.q.clone().unwrap_or_default());
        c.insert("results", &results);
        c.insert("my_shifts", &mine);
        c.insert("flash", &flash(q.done.as_deref()));
        Ok::<_, Error>(c)
    };
    match page.await {
        Ok(c) => render("desk.html", "Front desk", service(&s), Some(&user), c),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

#[derive(Deserialize)]
pub struct IdentifyForm {
    csrf: String,
    clinic: Uuid,
    token: String,
}

/// The patient's QR code (its text, read by a scanner into the field) finds them.
pub async fn identify(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Form(f): Form<IdentifyForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        let profile = profiles::identify(&s.db, &user.actor, f.clinic, f.token.trim()).await?;
        Ok(format!(
            "/desk/book?clinic={}&patient={}",
            f.clinic, profile.patient_id
        ))
    })
    .await
}

#[derive(Deserialize)]
pub struct MarkForm {
    csrf: String,
    to: String,
    back: Option<String>,
}

/// Only the desk's own pages are a place to go back to.
fn back_to(back: Option<&str>, done: &str) -> String {
    let base = back
        .filter(|b| b.starts_with("/desk") && !b.starts_with("//"))
        .unwrap_or("/desk");
    let base = base.split("&done=").next().unwrap_or("/desk");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}done={done}")
}

pub async fn mark(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<MarkForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        let to = match f.to.as_str() {
            "checked_in" => Visit::CheckedIn,
            "completed" => Visit::Completed,
            "no_show" => Visit::NoShow,
            _ => {
                return Err(Error::new(
                    Code::ValidationFailed,
                    "to: checked_in, completed or no_show",
                ));
            }
        };
        appointments::mark(&s.db, &user.actor, id, to).await?;
        Ok(back_to(f.back.as_deref(), "marked"))
    })
    .await
}

#[derive(Deserialize)]
pub struct CancelForm {
    csrf: String,
    #[serde(default)]
    reason: String,
    back: Option<String>,
}

pub async fn cancel(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<CancelForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        let reason = match f.reason.trim() {
            "" => "Cancelled at the front desk",
            r => r,
        };
        appointments::cancel(&s.db, &user.actor, id, reason).await?;
        Ok(back_to(f.back.as_deref(), "cancelled"))
    })
    .await
}

#[derive(Deserialize, Default)]
pub struct BookQuery {
    clinic: Option<Uuid>,
    patient: Option<Uuid>,
    doctor: Option<Uuid>,
    date: Option<NaiveDate>,
    /// The slot the desk holds for this patient.
    held: Option<Uuid>,
    /// Moving this appointment instead of booking a new one.
    reschedule: Option<Uuid>,
    done: Option<String>,
}

#[derive(Serialize)]
struct FreeTime {
    id: Uuid,
    time: String,
}

/// Booking (or moving a visit) for a patient: pick a doctor and a day, hold a time while
/// talking to them, then book it; or put them on the doctor's waitlist.
pub async fn book_page(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Query(q): Query<BookQuery>,
) -> Response {
    let page = async {
        let moving = match q.reschedule {
            Some(id) => Some(appointments::get(&s.db, &user.actor, id).await?),
            None => None,
        };
        let clinic_id = q.clinic.or(moving.as_ref().map(|a| a.clinic_id));
        let (all, clinic) = pick_clinic(&s, &user, clinic_id).await?;
        let patient_id = q
            .patient
            .or(moving.as_ref().map(|a| a.patient_id))
            .ok_or_else(|| Error::new(Code::InvalidQuery, "Find the patient first."))?;
        if !clinics::patients::knows_now(&s.db, clinic.id, patient_id).await? {
            return Err(Error::not_found("patient"));
        }
        let patient = people::find(&s.db, patient_id)
            .await?
            .ok_or_else(|| Error::not_found("patient"))?;
        let tz = clinic.tz();
        let now = Utc::now();
        let today = now.with_timezone(&tz).date_naive();
        let date = q.date.unwrap_or(today);
        crate::domain::validate::query_dates([("date", Some(date))])?;
        let team = doctors::of_clinic(&s.db, clinic.id).await?;
        let doctor_id = q
            .doctor
            .or(moving.as_ref().map(|a| a.doctor_id))
            .or(team.first().map(|d| d.id));
        let times: Vec<FreeTime> = match doctor_id {
            Some(d) if team.iter().any(|t| t.id == d) => slots::free_for_doctor(
                &s.db,
                d,
                &SlotQuery {
                    from: Some(date),
                    to: date.checked_add_days(Days::new(1)),
                    ..Default::default()
                },
                now,
            )
            .await?
            .into_iter()
            .map(|sl| FreeTime {
                id: sl.id,
                time: sl.local_time(),
            })
            .collect(),
            _ => Vec::new(),
        };
        let held = match q.held {
            Some(id) => slots::get(&s.db, id).await?.map(|(sl, status)| {
                let doctor = team.iter().find(|d| d.id == sl.doctor_id).map(|d| d.display_name.as_str());
                serde_json::json!({"id": sl.id, "time": sl.local_time(), "date": sl.local_date, "doctor": doctor, "held": status == "held"})
            }),
            None => None,
        };
        let mut c = Context::new();
        c.insert("clinics", &all);
        c.insert("clinic", &clinic);
        c.insert("patient_id", &patient_id);
        c.insert("patient_name", &patient.display_name);
        c.insert("doctors", &team);
        c.insert("doctor", &doctor_id);
        c.insert("date", &date);
        c.insert("prev", &date.pred_opt().unwrap_or(date));
        c.insert("next", &date.succ_opt().unwrap_or(date));
        c.insert("times", &times);
        c.insert("held", &held);
        c.insert("hold_minutes", &appointments::DESK_HOLD_MINUTES);
        c.insert(
            "moving",
            &moving.map(|a| {
                serde_json::json!({"id": a.id, "when": a.starts_at.with_timezone(&tz).format("%a %-d %b %H:%M").to_string(), "doctor": a.doctor_name})
            }),
        );
        c.insert("flash", &flash(q.done.as_deref()));
        Ok::<_, Error>(c)
    };
    match page.await {
        Ok(c) => render(
            "desk_book.html",
            "Book for a patient",
            service(&s),
            Some(&user),
            c,
        ),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

#[derive(Deserialize)]
pub struct SlotForm {
    csrf: String,
    clinic: Uuid,
    patient: Uuid,
    slot: Uuid,
    #[serde(default)]
    reason: String,
    doctor: Option<Uuid>,
    date: Option<NaiveDate>,
}

fn book_url(f: &SlotForm, extra: &str) -> String {
    let mut url = format!("/desk/book?clinic={}&patient={}", f.clinic, f.patient);
    if let Some(d) = f.doctor {
        url.push_str(&format!("&doctor={d}"));
    }
    if let Some(d) = f.date {
        url.push_str(&format!("&date={d}"));
    }
    url + extra
}

/// Holds a time for the patient at the desk.
pub async fn hold(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Form(f): Form<SlotForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        appointments::hold_for_desk(&s.db, &user.actor, f.slot).await?;
        Ok(book_url(&f, &format!("&held={}", f.slot)))
    })
    .await
}

/// Books the held (or a free) time for the patient.
pub async fn book(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Form(f): Form<SlotForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        let a = appointments::book_for(&s.db, &user.actor, f.slot, f.patient, &f.reason).await?;
        let date = a.starts_at.with_timezone(&a.time_zone.tz()).date_naive();
        Ok(format!(
            "/desk?clinic={}&date={date}&done=booked",
            a.clinic_id
        ))
    })
    .await
}

/// Lets the held time go.
pub async fn release(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Form(f): Form<SlotForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        appointments::release_desk_hold(&s.db, &user.actor, f.slot).await?;
        Ok(book_url(&f, "&done=released"))
    })
    .await
}

#[derive(Deserialize)]
pub struct MoveForm {
    csrf: String,
    slot: Uuid,
}

/// Moves a visit to the chosen free time (the old one is freed in the same transaction).
pub async fn reschedule(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<MoveForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        let a = appointments::reschedule(&s.db, &user.actor, id, f.slot).await?;
        let date = a.starts_at.with_timezone(&a.time_zone.tz()).date_naive();
        Ok(format!(
            "/desk?clinic={}&date={date}&done=moved",
            a.clinic_id
        ))
    })
    .await
}

#[derive(Deserialize)]
pub struct WaitlistForm {
    csrf: String,
    clinic: Uuid,
    patient: Uuid,
    doctor: Uuid,
    #[serde(default)]
    note: String,
}

/// Puts the patient on the doctor's waitlist.
pub async fn join_waitlist(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Form(f): Form<WaitlistForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        waitlist::join_for(&s.db, &user.actor, f.patient, f.doctor, &f.note).await?;
        Ok(format!(
            "/desk/book?clinic={}&patient={}&doctor={}&done=waitlisted",
            f.clinic, f.patient, f.doctor
        ))
    })
    .await
}

/// Whether the desk link belongs in this person's navigation.
pub fn works_a_desk(user: &ConsoleUser) -> bool {
    user.is_system_admin()
        || user
            .principal
            .grants
            .iter()
            .any(|g| matches!(g.role, Role::ClinicStaff | Role::ClinicAdmin))
}
