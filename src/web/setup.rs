//! Clinic setup for its admins (`/admin/clinic`, `/admin/doctors/{id}`): the clinic's
//! profile, logo, widget sites and cancellation cutoff, its price list, its team
//! (invitations), its doctors (profile, specialties, languages, fee), and per doctor the
//! weekly schedule, date overrides and time off. A change that would leave booked visits
//! outside the doctor's hours is shown with those visits before it is saved; saving keeps
//! them booked, for the desk to resolve.

use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use tera::Context;
use uuid::Uuid;

use crate::domain::actor::Role;
use crate::domain::billing::lab_prices::{self, LabPriceItem};
use crate::domain::clinics::doctors::{self, Doctor, DoctorForm};
use crate::domain::clinics::prices::{self, PriceItem};
use crate::domain::clinics::staff::{self, StaffInvite};
use crate::domain::clinics::{self, ClinicPatch, branding, specialties};
use crate::domain::scheduling::schedules::{DateOverride, ScheduleForm, WeeklyRule};
use crate::domain::scheduling::shifts::local_instant;
use crate::domain::scheduling::slots::{self, Change, Conflict, TimeOffForm};
use crate::error::{Code, Error, Result};
use crate::state::AppState;
use crate::web::console::Admin;
use crate::web::pages::{Fields, act, error_page, render};
use crate::web::session::ConsoleUser;
use crate::web::shifts::admin_clinic;

fn service(s: &AppState) -> &str {
    &s.config.agent.service_name
}

/// Blank price rows and schedule rows the forms offer beyond those filled.
const BLANK_ROWS: usize = 3;

#[derive(Deserialize)]
pub struct SetupQuery {
    clinic: Option<Uuid>,
    done: Option<String>,
}

#[derive(Serialize)]
struct PriceRow {
    visit_type: String,
    doctor_id: Option<Uuid>,
    amount: String,
    currency: String,
}

/// `60`, `60.5` or `60.50` as minor units (no floating point on money).
pub fn cents(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, frac) = text.split_once(['.', ',']).unwrap_or((text, ""));
    if whole.is_empty() || !whole.chars().all(|c| c.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

/// A money field read as [`cents`], or the field's problem.
pub fn amount(field: &str, text: &str) -> Result<i64> {
    cents(text).ok_or_else(|| {
        Error::new(
            Code::ValidationFailed,
            format!("{field}: {:?} is not an amount like 60.00", text.trim()),
        )
    })
}

fn flash(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "profile" => "The clinic's profile is saved.",
        "logo" => "The logo is saved.",
        "prices" => "The price list is saved.",
        "lab_prices" => "The lab prices are saved.",
        "invited" => "The invitation is on its way.",
        "doctor" => "The doctor is added; with an address, their invitation is on its way.",
        "doctor_saved" => "The doctor's profile is saved.",
        "schedule" => "The schedule is saved and the bookable times follow it.",
        "override" => "The day is saved.",
        "time_off" => "The time off is saved.",
        _ => return None,
    })
}

pub async fn page(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<SetupQuery>,
) -> Response {
    let page = async {
        let (all, clinic) = admin_clinic(&s, &user, q.clinic).await?;
        let list = prices::list(&s.db, clinic.id).await?;
        let mut rows: Vec<PriceRow> = list
            .iter()
            .map(|p| PriceRow {
                visit_type: p.visit_type.clone(),
                doctor_id: p.doctor_id,
                amount: crate::domain::billing::money(p.amount_cents),
                currency: p.currency.clone(),
            })
            .collect();
        let currency = list
            .first()
            .map(|p| p.currency.clone())
            .unwrap_or_else(|| "EUR".into());
        for _ in 0..BLANK_ROWS {
            rows.push(PriceRow {
                visit_type: String::new(),
                doctor_id: None,
                amount: String::new(),
                currency: currency.clone(),
            });
        }
        let team = staff::list(&s.db, &user.actor, clinic.id).await?;
        let doctors = doctors::of_clinic(&s.db, clinic.id).await?;
        let mut c = Context::new();
        c.insert("clinics", &all);
        c.insert("clinic", &clinic);
        c.insert("origins", &clinic.widget_origins.0.join("\n"));
        c.insert(
            "cutoff_hours",
            &(clinic.cancellation_cutoff_minutes as f64 / 60.0),
        );
        c.insert("has_logo", &clinic.logo_path.is_some());
        c.insert("prices", &rows);
        // Every test of the catalogue, and tests ordered by name, with the clinic's price.
        let labs = lab_prices::list(&s.db, clinic.id).await?;
        let priced = |code: &str| {
            labs.iter()
                .find(|p| p.test_code == code)
                .map(|p| crate::domain::billing::money(p.amount_cents))
                .unwrap_or_default()
        };
        let mut lab_rows: Vec<serde_json::Value> = crate::domain::clinical::labs::catalogue()?
            .iter()
            .map(|t| serde_json::json!({"code": t.code, "name": t.name, "amount": priced(&t.code)}))
            .collect();
        lab_rows.push(serde_json::json!({"code": lab_prices::CUSTOM, "name": "Other tests (ordered by name)", "amount": priced(lab_prices::CUSTOM)}));
        c.insert("lab_prices", &lab_rows);
        c.insert(
            "lab_currency",
            &labs
                .first()
                .map_or(currency.as_str(), |p| p.currency.as_str()),
        );
        c.insert("team", &team);
        c.insert("doctors", &doctors);
        c.insert("specialties", &specialties::all(&s.db).await?);
        c.insert("may_invite_admins", &user.is_system_admin());
        c.insert("flash", &flash(q.done.as_deref()));
        Ok::<_, Error>(c)
    };
    match page.await {
        Ok(c) => render("setup.html", "Clinic setup", service(&s), Some(&user), c),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

fn clinic_of(f: &Fields) -> Result<Uuid> {
    f.get("clinic")
        .parse()
        .map_err(|_| Error::new(Code::ValidationFailed, "clinic: which clinic?"))
}

fn lines(text: &str) -> Vec<String> {
    text.split(['\n', ',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub async fn save_profile(
    State(s): State<AppState>,
    Admin(user): Admin,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = clinic_of(&f)?;
        let hours = f.get("cutoff_hours").trim();
        let cutoff = match hours {
            "" => None,
            h => Some(
                h.parse::<f64>()
                    .ok()
                    .filter(|h| h.is_finite() && *h >= 0.0 && *h <= 168.0)
                    .map(|h| (h * 60.0).round() as i64)
                    .ok_or_else(|| {
                        Error::new(
                            Code::ValidationFailed,
                            "cutoff_hours: a number of hours from 0 to 168",
                        )
                    })?,
            ),
        };
        let patch = ClinicPatch {
            name: Some(f.get("name").to_owned()),
            address: Some(f.get("address").to_owned()),
            description: Some(f.get("description").to_owned()),
            contact_email: Some(f.get("contact_email").to_owned()),
            contact_phone: Some(f.get("contact_phone").to_owned()),
            cancellation_cutoff_minutes: cutoff,
            widget_origins: Some(lines(f.get("widget_origins"))),
        };
        clinics::update(&s.db, &user.actor, clinic, patch).await?;
        Ok(format!("/admin/clinic?clinic={clinic}&done=profile"))
    })
    .await
}

/// The logo, from a multipart form (`csrf`, `clinic`, then `logo`).
pub async fn upload_logo(
    State(s): State<AppState>,
    Admin(user): Admin,
    mut form: Multipart,
) -> Response {
    let mut fields = Vec::new();
    let mut logo: Option<(Option<String>, Vec<u8>)> = None;
    let read = async {
        while let Some(field) = form.next_field().await.map_err(|e| {
            Error::new(
                Code::InvalidBody,
                format!("The upload could not be read: {e}"),
            )
        })? {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "logo" {
                let declared = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(|_| {
                    Error::new(Code::PayloadTooLarge, "The logo may be at most 512 KiB.")
                })?;
                logo = Some((declared, bytes.to_vec()));
            } else {
                let value = field
                    .text()
                    .await
                    .map_err(|e| Error::new(Code::InvalidBody, format!("{name}: {e}")))?;
                fields.push((name, value));
            }
        }
        Ok::<_, Error>(())
    };
    if let Err(e) = read.await {
        return error_page(&e, service(&s), Some(&user));
    }
    let f = Fields(fields);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = clinic_of(&f)?;
        let (declared, bytes) = logo
            .filter(|(_, b)| !b.is_empty())
            .ok_or_else(|| Error::new(Code::ValidationFailed, "logo: choose an image file"))?;
        branding::set_logo(
            &s.db,
            s.files.as_ref(),
            &user.actor,
            clinic,
            declared.as_deref(),
            &bytes,
        )
        .await?;
        Ok(format!("/admin/clinic?clinic={clinic}&done=logo"))
    })
    .await
}

/// The whole price list from the form's rows (empty rows skipped).
pub async fn save_prices(
    State(s): State<AppState>,
    Admin(user): Admin,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = clinic_of(&f)?;
        let mut items = Vec::new();
        for i in 0..prices::MAX_PRICES {
            let visit_type = f.get(&format!("visit_type.{i}")).trim();
            let amount = f.get(&format!("amount.{i}")).trim();
            if visit_type.is_empty() && amount.is_empty() {
                if f.0.iter().all(|(k, _)| !k.ends_with(&format!(".{i}"))) {
                    break;
                }
                continue;
            }
            let amount_cents = self::amount("amount", amount)?;
            items.push(PriceItem {
                visit_type: visit_type.to_owned(),
                doctor_id: f.get(&format!("doctor.{i}")).parse().ok(),
                amount_cents,
                currency: f.get(&format!("currency.{i}")).trim().to_uppercase(),
            });
        }
        prices::replace(&s.db, &user.actor, clinic, items).await?;
        Ok(format!("/admin/clinic?clinic={clinic}&done=prices"))
    })
    .await
}

/// The lab prices from the form: one amount per test (blank: no price), one currency.
pub async fn save_lab_prices(
    State(s): State<AppState>,
    Admin(user): Admin,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = clinic_of(&f)?;
        let currency = f.get("currency").trim().to_uppercase();
        let mut items = Vec::new();
        for (key, amount) in &f.0 {
            let (Some(code), amount) = (key.strip_prefix("lab."), amount.trim()) else {
                continue;
            };
            if amount.is_empty() {
                continue;
            }
            let amount_cents = self::amount(code, amount)?;
            items.push(LabPriceItem {
                test_code: code.to_owned(),
                amount_cents,
                currency: currency.clone(),
            });
        }
        lab_prices::replace(&s.db, &user.actor, clinic, items).await?;
        Ok(format!(
            "/admin/clinic?clinic={clinic}&done=lab_prices#lab-prices"
        ))
    })
    .await
}

pub async fn invite(
    State(s): State<AppState>,
    Admin(user): Admin,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = clinic_of(&f)?;
        let role = Role::parse(f.get("role"))
            .ok_or_else(|| Error::new(Code::ValidationFailed, "role: pick a role"))?;
        let invite = StaffInvite {
            email: f.get("email").to_owned(),
            display_name: f.get("display_name").to_owned(),
            role,
        };
        staff::invite(&s.db, &s.mailer, &user.actor, clinic, invite).await?;
        Ok(format!("/admin/clinic?clinic={clinic}&done=invited"))
    })
    .await
}

/// A doctor's form as the API's body (specialties may repeat as fields).
fn doctor_form(f: &Fields, with_email: bool) -> Result<DoctorForm> {
    let fee = f.get("fee").trim();
    let fee_cents = if fee.is_empty() {
        0
    } else {
        amount("fee", fee)?
    };
    let email = f.get("email").trim();
    Ok(DoctorForm {
        display_name: f.get("display_name").to_owned(),
        bio: f.get("bio").to_owned(),
        languages: lines(f.get("languages")),
        fee_cents,
        currency: Some(f.get("currency").trim().to_uppercase()).filter(|c| !c.is_empty()),
        specialties: f
            .0
            .iter()
            .filter(|(k, _)| k == "specialties")
            .map(|(_, v)| v.clone())
            .collect(),
        email: (with_email && !email.is_empty()).then(|| email.to_owned()),
    })
}

pub async fn add_doctor(
    State(s): State<AppState>,
    Admin(user): Admin,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = clinic_of(&f)?;
        let doctor = doctors::create(
            &s.db,
            &s.mailer,
            &user.actor,
            clinic,
            doctor_form(&f, true)?,
        )
        .await?;
        Ok(format!("/admin/doctors/{}?done=doctor", doctor.id))
    })
    .await
}

// ---- One doctor ------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct DoctorQuery {
    done: Option<String>,
}

#[derive(Serialize)]
struct RuleRow {
    weekday: String,
    start: String,
    end: String,
    breaks: String,
}

/// A change waiting for the admin to see what it leaves uncovered.
#[derive(Serialize)]
struct Pending {
    /// Where the form goes again, with `confirmed`.
    action: String,
    what: &'static str,
    /// The form's fields as sent (but the CSRF token and `confirmed`).
    fields: Vec<(String, String)>,
    conflicts: Vec<ConflictRow>,
}

#[derive(Serialize)]
struct ConflictRow {
    when: String,
    status: String,
    appointment_id: Option<Uuid>,
}

fn conflict_rows(doctor: &Doctor, conflicts: &[Conflict]) -> Vec<ConflictRow> {
    let tz = doctor.time_zone.tz();
    conflicts
        .iter()
        .map(|c| ConflictRow {
            when: c
                .starts_at
                .with_timezone(&tz)
                .format("%a %-d %b %Y %H:%M")
                .to_string(),
            status: c.status.as_str().to_owned(),
            appointment_id: c.appointment_id,
        })
        .collect()
}

async fn doctor_view(
    s: &AppState,
    user: &ConsoleUser,
    id: Uuid,
    done: Option<&str>,
    pending: Option<Pending>,
) -> Response {
    let page = async {
        let doctor = doctors::for_staff(&s.db, &user.actor, id).await?;
        clinics::require_admin_of(&user.actor, doctor.clinic_id)?;
        let schedule = slots::schedule_of(&s.db, id).await?;
        let mut rules: Vec<RuleRow> = schedule
            .as_ref()
            .map(|f| {
                f.rules
                    .iter()
                    .map(|r| RuleRow {
                        weekday: r.weekday.clone(),
                        start: r.start.clone(),
                        end: r.end.clone(),
                        breaks: r
                            .breaks
                            .iter()
                            .map(|[a, b]| format!("{a}-{b}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                    .collect()
            })
            .unwrap_or_default();
        for _ in 0..BLANK_ROWS {
            rules.push(RuleRow {
                weekday: String::new(),
                start: String::new(),
                end: String::new(),
                breaks: String::new(),
            });
        }
        let mut c = Context::new();
        c.insert("doctor", &doctor);
        c.insert("fee", &crate::domain::billing::money(doctor.fee_cents));
        c.insert("rules", &rules);
        c.insert(
            "weekdays",
            &["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        );
        c.insert(
            "schedule",
            &schedule.map(|f| {
                serde_json::json!({"slot_minutes": f.slot_minutes, "buffer_minutes": f.buffer_minutes,
                    "min_notice_minutes": f.min_notice_minutes, "horizon_days": f.horizon_days})
            }),
        );
        c.insert("specialties", &specialties::all(&s.db).await?);
        c.insert("pending", &pending);
        c.insert("flash", &flash(done));
        Ok::<_, Error>(c)
    };
    match page.await {
        Ok(c) => render("setup_doctor.html", "Doctor", service(s), Some(user), c),
        Err(e) => error_page(&e, service(s), Some(user)),
    }
}

pub async fn doctor_page(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    Query(q): Query<DoctorQuery>,
) -> Response {
    doctor_view(&s, &user, id, q.done.as_deref(), None).await
}

pub async fn save_doctor(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let form = doctor_form(&f, false)?;
        let profile = doctors::DoctorProfile {
            display_name: form.display_name,
            bio: form.bio,
            languages: form.languages,
            fee_cents: form.fee_cents,
            currency: form.currency,
            specialties: form.specialties,
        };
        doctors::update(&s.db, &user.actor, id, profile).await?;
        Ok(format!("/admin/doctors/{id}?done=doctor_saved"))
    })
    .await
}

fn number(f: &Fields, name: &str, default: i64) -> Result<i64> {
    match f.get(name).trim() {
        "" => Ok(default),
        v => v
            .parse()
            .map_err(|_| Error::new(Code::ValidationFailed, format!("{name}: a whole number"))),
    }
}

fn schedule_form(f: &Fields) -> Result<ScheduleForm> {
    let mut rules = Vec::new();
    for i in 0..50 {
        let (weekday, start, end) = (
            f.get(&format!("weekday.{i}")).trim(),
            f.get(&format!("start.{i}")).trim(),
            f.get(&format!("end.{i}")).trim(),
        );
        if start.is_empty() && end.is_empty() {
            continue;
        }
        let breaks = f
            .get(&format!("breaks.{i}"))
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| {
                let (a, z) = b.split_once(['-', '–']).unwrap_or((b, ""));
                [a.trim().to_owned(), z.trim().to_owned()]
            })
            .collect();
        rules.push(WeeklyRule {
            weekday: weekday.to_owned(),
            start: start.to_owned(),
            end: end.to_owned(),
            breaks,
        });
    }
    Ok(ScheduleForm {
        rules,
        slot_minutes: number(f, "slot_minutes", 30)?,
        buffer_minutes: number(f, "buffer_minutes", 0)?,
        min_notice_minutes: number(f, "min_notice_minutes", 60)?,
        horizon_days: number(f, "horizon_days", 60)?,
    })
}

/// Shows what the change leaves uncovered, unless there is nothing or it is confirmed.
async fn confirm_first(
    s: &AppState,
    user: &ConsoleUser,
    id: Uuid,
    f: &Fields,
    action: &str,
    what: &'static str,
    change: Change<'_>,
) -> Result<Option<Response>> {
    if f.get("confirmed") == "yes" {
        return Ok(None);
    }
    let conflicts = slots::preview(&s.db, &user.actor, id, change).await?;
    if conflicts.is_empty() {
        return Ok(None);
    }
    let doctor = doctors::find(&s.db, id).await?;
    let pending = Pending {
        action: action.to_owned(),
        what,
        fields: f
            .0
            .iter()
            .filter(|(k, _)| k != "csrf" && k != "confirmed")
            .cloned()
            .collect(),
        conflicts: conflict_rows(&doctor, &conflicts),
    };
    Ok(Some(doctor_view(s, user, id, None, Some(pending)).await))
}

/// Saves the weekly schedule; first shows the booked visits it would leave outside it.
pub async fn save_schedule(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    if let Err(e) = user.check_csrf(f.get("csrf")) {
        return error_page(&e, service(&s), Some(&user));
    }
    let run = async {
        let form = schedule_form(&f)?;
        let action = format!("/admin/doctors/{id}/schedule");
        if let Some(page) = confirm_first(
            &s,
            &user,
            id,
            &f,
            &action,
            "schedule",
            Change::Schedule(&form),
        )
        .await?
        {
            return Ok(page);
        }
        slots::set_schedule(&s.db, &user.actor, id, form).await?;
        Ok(Redirect::to(&format!("/admin/doctors/{id}?done=schedule")).into_response())
    };
    run.await
        .unwrap_or_else(|e: Error| error_page(&e, service(&s), Some(&user)))
}

/// One date closed or at other hours.
pub async fn save_override(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    if let Err(e) = user.check_csrf(f.get("csrf")) {
        return error_page(&e, service(&s), Some(&user));
    }
    let run = async {
        let date = NaiveDate::parse_from_str(f.get("date").trim(), "%Y-%m-%d")
            .map_err(|_| Error::new(Code::ValidationFailed, "date: which day?"))?;
        let some = |name: &str| match f.get(name).trim() {
            "" => None,
            v => Some(v.to_owned()),
        };
        let o = DateOverride {
            date,
            start: some("start"),
            end: some("end"),
            reason: f.get("reason").to_owned(),
        };
        let action = format!("/admin/doctors/{id}/override");
        if let Some(page) =
            confirm_first(&s, &user, id, &f, &action, "day", Change::Override(&o)).await?
        {
            return Ok(page);
        }
        slots::set_override(&s.db, &user.actor, id, o).await?;
        Ok(Redirect::to(&format!("/admin/doctors/{id}?done=override")).into_response())
    };
    run.await
        .unwrap_or_else(|e: Error| error_page(&e, service(&s), Some(&user)))
}

/// Local `YYYY-MM-DDTHH:MM` (a datetime-local field) in the doctor's zone.
fn local_field(tz: chrono_tz::Tz, f: &Fields, name: &str) -> Result<chrono::DateTime<Utc>> {
    let text = f.get(name).trim();
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN))
        })
        .map_err(|_| {
            Error::new(
                Code::ValidationFailed,
                format!("{name}: a date and time like 2026-12-24T09:00"),
            )
        })?;
    Ok(local_instant(tz, local.date(), local.time()))
}

/// A span off (holiday, training); free times inside it go.
pub async fn add_time_off(
    State(s): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<Uuid>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    if let Err(e) = user.check_csrf(f.get("csrf")) {
        return error_page(&e, service(&s), Some(&user));
    }
    let run = async {
        let doctor = doctors::for_staff(&s.db, &user.actor, id).await?;
        let tz = doctor.time_zone.tz();
        let form = TimeOffForm {
            starts_at: local_field(tz, &f, "starts")?,
            ends_at: local_field(tz, &f, "ends")?,
            reason: f.get("reason").to_owned(),
        };
        if form.ends_at > form.starts_at {
            let action = format!("/admin/doctors/{id}/time-off");
            let change = Change::TimeOff(form.starts_at, form.ends_at);
            if let Some(page) =
                confirm_first(&s, &user, id, &f, &action, "time off", change).await?
            {
                return Ok(page);
            }
        }
        slots::add_time_off(&s.db, &user.actor, id, form).await?;
        Ok(Redirect::to(&format!("/admin/doctors/{id}?done=time_off")).into_response())
    };
    run.await
        .unwrap_or_else(|e: Error| error_page(&e, service(&s), Some(&user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_as_minor_units_without_floating_point() {
        assert_eq!(cents("60"), Some(6000));
        assert_eq!(cents("60.5"), Some(6050));
        assert_eq!(cents("60,05"), Some(6005));
        assert_eq!(cents(" 0.99 "), Some(99));
        assert_eq!(cents("1.999"), None);
        assert_eq!(cents("-5"), None);
        assert_eq!(cents("abc"), None);
        assert_eq!(cents(""), None);
        assert_eq!(crate::domain::billing::money(6005), "60.05");
    }
}
