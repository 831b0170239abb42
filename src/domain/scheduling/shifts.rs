//! Staff shifts: who works at a clinic when. Clinic admins set the clinic's opening hours
//! and each person's weekly shifts in the clinic's local time (a span whose end is not
//! after its start runs overnight), with one-day exceptions (off, or other hours). From them:
//! coverage per day (who is on, and the opening hours nobody of a role covers) and
//! conflicts with bookings: a doctor's bookable slots outside their shifts, and
//! appointments left without their doctor on shift. Changes report those appointments;
//! nothing is ever moved. Local times become instants through the IANA database, so a
//! 08:00 shift stays 08:00 across daylight-saving changes.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::{Actor, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::clinics::{self, doctors};
use crate::domain::scheduling::schedules::{parse_time, parse_weekday};
use crate::domain::validate::Checks;
use crate::error::{Error, Result};
use crate::on_db;

/// A span of time between two instants.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// The longest stretch of days one coverage or shift query covers.
pub const MAX_DAYS: i64 = 62;

/// How far ahead a shift change looks for appointments it leaves uncovered.
const CHANGE_HORIZON_DAYS: u64 = 90;

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One span of opening hours, e.g. `mon` 08:00–20:00.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpeningSpan {
    #[schema(schema_with = crate::domain::validate::schema::weekday)]
    pub weekday: String,
    #[schema(schema_with = crate::domain::validate::schema::hhmm)]
    pub start: String,
    /// After the start (opening hours do not run overnight).
    #[schema(schema_with = crate::domain::validate::schema::hhmm)]
    pub end: String,
}

/// A weekly shift to create or change.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShiftForm {
    /// `doctor`, `clinic_staff`, `clinic_admin` or `pharmacist`; fixed once created.
    pub role: Role,
    /// For a doctor's shift: their profile at this clinic.
    pub doctor_id: Option<Uuid>,
    /// For anyone else: their account, holding `role` at this clinic.
    pub user_id: Option<Uuid>,
    #[schema(schema_with = crate::domain::validate::schema::weekday)]
    pub weekday: String,
    /// Local start, `HH:MM`.
    #[schema(schema_with = crate::domain::validate::schema::hhmm)]
    pub start: String,
    /// Local end, `HH:MM`; at or before the start means it ends the next day.
    #[schema(schema_with = crate::domain::validate::schema::hhmm)]
    pub end: String,
    /// First local date it applies (default: today at the clinic).
    pub valid_from: Option<NaiveDate>,
    /// Last local date it applies (default: open-ended).
    pub valid_until: Option<NaiveDate>,
}

/// A stored weekly shift.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Shift {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub role: String,
    pub doctor_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    /// The person's name (the doctor's profile name, or the account's).
    pub name: String,
    pub weekday: String,
    pub start: String,
    pub end: String,
    /// Whether it ends the next day.
    pub overnight: bool,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
    /// Its one-day exceptions from today on.
    pub exceptions: Vec<ShiftException>,
}

/// One day of a shift off (`start`/`end` absent) or at other hours.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ShiftException {
    #[serde(rename = "date")]
    pub local_date: NaiveDate,
    #[serde(rename = "start")]
    #[schema(schema_with = crate::domain::validate::schema::hhmm, nullable)]
    pub start_local: Option<String>,
    #[serde(rename = "end")]
    #[schema(schema_with = crate::domain::validate::schema::hhmm, nullable)]
    pub end_local: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::short_note)]
    pub reason: String,
}

/// One worked occurrence of a shift.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OnShift {
    pub shift_id: Uuid,
    pub clinic_id: Uuid,
    pub role: String,
    pub doctor_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub name: String,
    /// The local date it starts on.
    pub date: NaiveDate,
    /// Local `HH:MM`.
    pub start: String,
    pub end: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Changed for this day by an exception.
    pub changed: bool,
}

/// A span of a day's opening hours that nobody of `role` covers.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Gap {
    /// `front_desk` (clinic staff or admins) or `doctor`.
    pub role: String,
    pub start: String,
    pub end: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// One local day: its opening hours, who is on, and the gaps.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Day {
    pub date: NaiveDate,
    pub weekday: String,
    /// Opening spans, `HH:MM–HH:MM`.
    pub open: Vec<String>,
    pub on_shift: Vec<OnShift>,
    pub gaps: Vec<Gap>,
}

crate::text_enum! {
    /// What a conflict between shifts and bookings is.
    pub enum ConflictKind {
        /// Free slots the doctor's schedule offers outside their shifts.
        BookableOutsideShift = "bookable_outside_shift",
        /// A booked visit whose doctor is not on shift at its time.
        AppointmentWithoutDoctor = "appointment_without_doctor",
    }
}

/// A doctor's bookings or bookable times outside their shifts (for doctors with shifts).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ShiftConflict {
    pub kind: ConflictKind,
    pub doctor_id: Uuid,
    pub doctor_name: String,
    pub date: NaiveDate,
    pub start: String,
    pub end: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// For an appointment: which.
    pub appointment_id: Option<Uuid>,
    /// For bookable times: how many free slots.
    pub slots: u32,
}

/// Coverage of a clinic over some days.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Coverage {
    pub clinic_id: Uuid,
    pub time_zone: String,
    /// Whether opening hours are set (without them there are no gaps to report).
    pub hours_set: bool,
    pub days: Vec<Day>,
    pub conflicts: Vec<ShiftConflict>,
}

/// What a shift change did: the shift as it now is (absent once deleted) and the
/// appointments of its doctor it leaves without them on shift (reported, never moved).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ShiftChange {
    pub shift: Option<Shift>,
    pub uncovered_appointments: Vec<ShiftConflict>,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DaysQuery {
    /// First local date (default: today at the clinic).
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub from: Option<NaiveDate>,
    /// How many days, 1 to 62 (default 7).
    #[param(minimum = 1, maximum = 62)]
    pub days: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ShiftRow {
    id: Uuid,
    clinic_id: Uuid,
    role: String,
    doctor_id: Option<Uuid>,
    user_id: Option<Uuid>,
    name: String,
    weekday: i64,
    start_local: String,
    end_local: String,
    valid_from: NaiveDate,
    valid_until: Option<NaiveDate>,
}

#[derive(sqlx::FromRow)]
struct ExceptionRow {
    shift_id: Uuid,
    local_date: NaiveDate,
    start_local: Option<String>,
    end_local: Option<String>,
    reason: String,
}

macro_rules! select_shifts {
    ($rest:literal) => {
        concat!(
            "SELECT s.id, s.clinic_id, s.role, s.doctor_id, s.user_id, \
             COALESCE(d.display_name, u.display_name, '') AS name, s.weekday, s.start_local, s.end_local, s.valid_from, s.valid_until \
             FROM shifts s LEFT JOIN doctors d ON d.id = s.doctor_id LEFT JOIN users u ON u.id = s.user_id ",
            $rest
        )
    };
}

/// `mon` … `sun` for a stored weekday (0 is Monday).
fn weekday_name(index: i64) -> &'static str {
    WEEKDAYS
        .get(usize::try_from(index).unwrap_or(0))
        .copied()
        .unwrap_or("mon")
}

fn weekday_index(d: Weekday) -> i64 {
    i64::from(d.num_days_from_monday())
}

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

fn time_of(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M").unwrap_or(NaiveTime::MIN)
}

/// The instant a local date and time name; a time the clocks skip (spring forward) is the
/// first instant after the gap, one they repeat (autumn) its first occurrence.
pub fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let mut t = date.and_time(time);
    for _ in 0..=180 {
        if let Some(local) = tz.from_local_datetime(&t).earliest() {
            return local.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(1);
    }
    Utc.from_utc_datetime(&date.and_time(time))
}

fn local_hhmm(tz: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz).format("%H:%M").to_string()
}

/// Both ends of a span starting on `date`; an end not after the start is the next day's.
fn span(tz: Tz, date: NaiveDate, start: NaiveTime, end: NaiveTime) -> Span {
    let end_date = if end <= start {
        date.succ_opt().unwrap_or(date)
    } else {
        date
    };
    (
        local_instant(tz, date, start),
        local_instant(tz, end_date, end),
    )
}

impl ShiftRow {
    fn applies_on(&self, date: NaiveDate) -> bool {
        weekday_index(date.weekday()) == self.weekday
            && date >= self.valid_from
            && self.valid_until.is_none_or(|u| date <= u)
    }

    fn into_shift(self, exceptions: Vec<ShiftException>) -> Shift {
        let (start, end) = (time_of(&self.start_local), time_of(&self.end_local));
        Shift {
            id: self.id,
            clinic_id: self.clinic_id,
            role: self.role,
            doctor_id: self.doctor_id,
            user_id: self.user_id,
            name: self.name,
            weekday: weekday_name(self.weekday).to_owned(),
            start: self.start_local,
            end: self.end_local,
            overnight: end <= start,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            exceptions,
        }
    }
}

/// The occurrences of `shifts` starting on local dates `[from, to)`.
fn occurrences(
    tz: Tz,
    shifts: &[ShiftRow],
    exceptions: &HashMap<(Uuid, NaiveDate), ExceptionRow>,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<OnShift> {
    let mut out = Vec::new();
    for date in from.iter_days().take_while(|d| *d < to) {
        for s in shifts.iter().filter(|s| s.applies_on(date)) {
            let (start, end, changed) = match exceptions.get(&(s.id, date)) {
                Some(ExceptionRow {
                    start_local: Some(a),
                    end_local: Some(b),
                    ..
                }) => (time_of(a), time_of(b), true),
                Some(_) => continue,
                None => (time_of(&s.start_local), time_of(&s.end_local), false),
            };
            let (starts_at, ends_at) = span(tz, date, start, end);
            out.push(OnShift {
                shift_id: s.id,
                clinic_id: s.clinic_id,
                role: s.role.clone(),
                doctor_id: s.doctor_id,
                user_id: s.user_id,
                name: s.name.clone(),
                date,
                start: hhmm(start),
                end: hhmm(end),
                starts_at,
                ends_at,
                changed,
            });
        }
    }
    out.sort_by(|a, b| (a.starts_at, &a.name).cmp(&(b.starts_at, &b.name)));
    out
}

/// `spans` minus the union of `cover`, each as instants.
fn uncovered(spans: &[Span], cover: &[Span]) -> Vec<Span> {
    let mut cover = cover.to_vec();
    cover.sort();
    let mut out = Vec::new();
    for &(a, b) in spans {
        let mut cursor = a;
        for &(c, d) in &cover {
            if d <= cursor || c >= b {
                continue;
            }
            if c > cursor {
                out.push((cursor, c));
            }
            cursor = cursor.max(d);
            if cursor >= b {
                break;
            }
        }
        if cursor < b {
            out.push((cursor, b));
        }
    }
    out
}

fn covered(at: Span, cover: &[Span]) -> bool {
    uncovered(&[at], cover).is_empty()
}

/// The clinic's opening hours.
pub async fn opening_hours(db: &Db, clinic_id: Uuid) -> Result<Vec<OpeningSpan>> {
    const SQL: &str = "SELECT weekday, start_local, end_local FROM clinic_hours WHERE clinic_id = $1 ORDER BY weekday, start_local";
    let rows: Vec<(i64, String, String)> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(clinic_id)
        .fetch_all(pool)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|(w, start, end)| OpeningSpan {
            weekday: weekday_name(w).to_owned(),
            start,
            end,
        })
        .collect())
}

/// Replaces the clinic's opening hours (its admins), audited.
pub async fn set_opening_hours(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    spans: Vec<OpeningSpan>,
) -> Result<Vec<OpeningSpan>> {
    clinics::require_admin_of(actor, clinic_id)?;
    clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let mut checks = Checks::new();
    if spans.len() > 50 {
        checks.fail("hours", "at most 50 spans");
    }
    let mut rows: Vec<(i64, NaiveTime, NaiveTime)> = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        let field = format!("hours[{i}]");
        let Some(day) = parse_weekday(&s.weekday) else {
            checks.fail(
                &format!("{field}.weekday"),
                "must be mon, tue, wed, thu, fri, sat or sun",
            );
            continue;
        };
        let start = parse_time(&mut checks, &format!("{field}.start"), &s.start);
        let end = parse_time(&mut checks, &format!("{field}.end"), &s.end);
        if end <= start {
            checks.fail(&format!("{field}.end"), "must be after the start");
        }
        let w = weekday_index(day);
        if rows
            .iter()
            .any(|(d, a, b)| *d == w && start < *b && *a < end)
        {
            checks.fail(&field, "overlaps another span on the same day");
        }
        rows.push((w, start, end));
    }
    checks.finish()?;
    let mut tx = db.begin().await?;
    crate::exec_tx!(
        &mut tx,
        "DELETE FROM clinic_hours WHERE clinic_id = $1",
        clinic_id
    )?;
    const INSERT: &str = "INSERT INTO clinic_hours (clinic_id, weekday, start_local, end_local) VALUES ($1, $2, $3, $4)";
    for (w, start, end) in &rows {
        crate::exec_tx!(&mut tx, INSERT, clinic_id, *w, hhmm(*start), hhmm(*end))?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "clinic.hours_set",
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"spans": rows.len()}),
        },
    )
    .await?;
    tx.commit().await?;
    opening_hours(db, clinic_id).await
}

async fn load_shifts(db: &Db, clinic_id: Uuid) -> Result<Vec<ShiftRow>> {
    const SQL: &str = select_shifts!("WHERE s.clinic_id = $1 ORDER BY s.weekday, s.start_local");
    Ok(on_db!(db, |pool| sqlx::query_as::<_, ShiftRow>(SQL)
        .bind(clinic_id)
        .fetch_all(pool)
        .await)?)
}

async fn load_shift(db: &Db, id: Uuid) -> Result<ShiftRow> {
    const SQL: &str = select_shifts!("WHERE s.id = $1");
    on_db!(db, |pool| sqlx::query_as::<_, ShiftRow>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("shift"))
}

/// Exceptions of a clinic's shifts on local dates `[from, to)`.
async fn load_exceptions(
    db: &Db,
    clinic_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<(Uuid, NaiveDate), ExceptionRow>> {
    const SQL: &str = "SELECT e.shift_id, e.local_date, e.start_local, e.end_local, e.reason FROM shift_exceptions e \
        JOIN shifts s ON s.id = e.shift_id WHERE s.clinic_id = $1 AND e.local_date >= $2 AND e.local_date < $3";
    let rows: Vec<ExceptionRow> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(clinic_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|e| ((e.shift_id, e.local_date), e))
        .collect())
}

async fn exceptions_of(db: &Db, shift_id: Uuid, from: NaiveDate) -> Result<Vec<ShiftException>> {
    const SQL: &str = "SELECT local_date, start_local, end_local, reason FROM shift_exceptions \
        WHERE shift_id = $1 AND local_date >= $2 ORDER BY local_date";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, ShiftException>(SQL)
        .bind(shift_id)
        .bind(from)
        .fetch_all(pool)
        .await)?)
}

/// A clinic's shifts with their coming exceptions (its admins and staff).
pub async fn list(db: &Db, actor: &Actor, clinic_id: Uuid) -> Result<Vec<Shift>> {
    clinics::require_staff_of(actor, clinic_id)?;
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let today = Utc::now().with_timezone(&clinic.tz()).date_naive();
    let rows = load_shifts(db, clinic_id).await?;
    let far = today + Days::new(366);
    let mut exceptions: HashMap<Uuid, Vec<ShiftException>> = HashMap::new();
    for ((id, _), e) in load_exceptions(db, clinic_id, today, far).await? {
        exceptions.entry(id).or_default().push(ShiftException {
            local_date: e.local_date,
            start_local: e.start_local,
            end_local: e.end_local,
            reason: e.reason,
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut ex = exceptions.remove(&r.id).unwrap_or_default();
            ex.sort_by_key(|e| e.local_date);
            r.into_shift(ex)
        })
        .collect())
}

/// The checked parts of a form: weekday index, start, end, first and last date.
struct Checked {
    weekday: i64,
    start: NaiveTime,
    end: NaiveTime,
    valid_from: NaiveDate,
    valid_until: Option<NaiveDate>,
}

fn check_times(checks: &mut Checks, form: &ShiftForm, today: NaiveDate) -> Checked {
    let weekday = match parse_weekday(&form.weekday) {
        Some(d) => weekday_index(d),
        None => {
            checks.fail("weekday", "must be mon, tue, wed, thu, fri, sat or sun");
            0
        }
    };
    let start = parse_time(checks, "start", &form.start);
    let end = parse_time(checks, "end", &form.end);
    if start == end {
        checks.fail(
            "end",
            "must differ from the start (a shift of 24 hours is two shifts)",
        );
    }
    let valid_from = form.valid_from.unwrap_or(today);
    crate::domain::validate::check_date(checks, "valid_from", valid_from);
    if let Some(until) = form.valid_until {
        crate::domain::validate::check_date(checks, "valid_until", until);
        if until < valid_from {
            checks.fail("valid_until", "must not be before valid_from");
        }
    }
    Checked {
        weekday,
        start,
        end,
        valid_from,
        valid_until: form.valid_until,
    }
}

/// A shift's place on the week, in minutes from Monday 00:00 (the end may pass the week).
fn week_span(weekday: i64, start: NaiveTime, end: NaiveTime) -> (i64, i64) {
    let minutes =
        |t: NaiveTime| i64::from(t.signed_duration_since(NaiveTime::MIN).num_minutes() as i32);
    let a = weekday * 1440 + minutes(start);
    let mut b = weekday * 1440 + minutes(end);
    if b <= a {
        b += 1440;
    }
    (a, b)
}

fn week_overlap(x: (i64, i64), y: (i64, i64)) -> bool {
    // The week wraps: compare with y moved a week either way too.
    [-10_080, 0, 10_080]
        .iter()
        .any(|w| x.0 < y.1 + w && y.0 + w < x.1)
}

/// Refuses a shift that overlaps another of the same person at the clinic in some week
/// both apply.
fn check_overlap(checks: &mut Checks, others: &[ShiftRow], this: &Checked, skip: Option<Uuid>) {
    let mine = week_span(this.weekday, this.start, this.end);
    for o in others.iter().filter(|o| Some(o.id) != skip) {
        let dates_meet = o.valid_until.is_none_or(|u| u >= this.valid_from)
            && this.valid_until.is_none_or(|u| u >= o.valid_from);
        let theirs = week_span(o.weekday, time_of(&o.start_local), time_of(&o.end_local));
        if dates_meet && week_overlap(mine, theirs) {
            checks.fail(
                "start",
                format!(
                    "overlaps their {} {}–{} shift",
                    weekday_name(o.weekday),
                    o.start_local,
                    o.end_local
                ),
            );
        }
    }
}

async fn holds_role(db: &Db, user_id: Uuid, role: Role, clinic_id: Uuid) -> Result<bool> {
    const SQL: &str = "SELECT COUNT(*) FROM user_roles r JOIN users u ON u.id = r.user_id \
        WHERE r.user_id = $1 AND r.role = $2 AND (r.clinic_id = $3 OR (r.role = 'pharmacist' AND r.clinic_id IS NULL)) \
        AND u.deactivated_at IS NULL";
    let (n,): (i64,) = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(user_id)
        .bind(role.as_str())
        .bind(clinic_id)
        .fetch_one(pool)
        .await)?;
    Ok(n > 0)
}

/// Adds a weekly shift (the clinic's admins), audited; answers with the appointments of a
/// doctor still without them on shift.
pub async fn create(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    form: ShiftForm,
) -> Result<ShiftChange> {
    clinics::require_admin_of(actor, clinic_id)?;
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let today = Utc::now().with_timezone(&clinic.tz()).date_naive();
    let mut checks = Checks::new();
    let times = check_times(&mut checks, &form, today);
    let (doctor_id, user_id) = match form.role {
        Role::Doctor => match form.doctor_id {
            Some(id) => match doctors::get(db, id).await? {
                Some(d) if d.clinic_id == clinic_id => (Some(id), d.user_id),
                _ => {
                    checks.fail("doctor_id", "is not a doctor of this clinic");
                    (None, None)
                }
            },
            None => {
                checks.fail("doctor_id", "a doctor's shift names the doctor");
                (None, None)
            }
        },
        Role::ClinicStaff | Role::ClinicAdmin | Role::Pharmacist => match form.user_id {
            Some(id) if holds_role(db, id, form.role, clinic_id).await? => (None, Some(id)),
            Some(_) => {
                checks.fail(
                    "user_id",
                    format!(
                        "does not hold the role {} at this clinic",
                        form.role.as_str()
                    ),
                );
                (None, None)
            }
            None => {
                checks.fail("user_id", "a staff shift names the person's account");
                (None, None)
            }
        },
        _ => {
            checks.fail(
                "role",
                "must be doctor, clinic_staff, clinic_admin or pharmacist",
            );
            (None, None)
        }
    };
    let rows = load_shifts(db, clinic_id).await?;
    let same_person: Vec<ShiftRow> = rows
        .into_iter()
        .filter(|r| match (doctor_id, user_id) {
            (Some(d), _) => r.doctor_id == Some(d),
            (None, Some(u)) => r.doctor_id.is_none() && r.user_id == Some(u),
            _ => false,
        })
        .collect();
    check_overlap(&mut checks, &same_person, &times, None);
    checks.finish()?;
    let id = Uuid::now_v7();
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO shifts (id, clinic_id, role, doctor_id, user_id, weekday, start_local, end_local, valid_from, valid_until, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)";
    crate::exec_tx!(
        &mut tx,
        SQL,
        id,
        clinic_id,
        form.role.as_str(),
        doctor_id,
        user_id,
        times.weekday,
        hhmm(times.start),
        hhmm(times.end),
        times.valid_from,
        times.valid_until,
        now
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "shift.created",
            subject: format!("shift:{id}"),
            clinic_id: Some(clinic_id),
            details: json!({"role": form.role.as_str(), "doctor": doctor_id, "user": user_id,
                "weekday": form.weekday, "start": hhmm(times.start), "end": hhmm(times.end)}),
        },
    )
    .await?;
    tx.commit().await?;
    changed(db, &clinic, id, doctor_id).await
}

/// A shift of the actor's clinic, for its admins.
async fn for_admin(db: &Db, actor: &Actor, id: Uuid) -> Result<(ShiftRow, clinics::Clinic)> {
    let row = load_shift(db, id).await?;
    if clinics::require_admin_of(actor, row.clinic_id).is_err() {
        // Not one of theirs: as if it did not exist.
        return Err(Error::not_found("shift"));
    }
    let clinic = clinics::get(db, row.clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    Ok((row, clinic))
}

/// Changes a shift's day, hours or dates (its person and role stay).
pub async fn update(db: &Db, actor: &Actor, id: Uuid, form: ShiftForm) -> Result<ShiftChange> {
    let (row, clinic) = for_admin(db, actor, id).await?;
    let today = Utc::now().with_timezone(&clinic.tz()).date_naive();
    let mut checks = Checks::new();
    let times = check_times(
        &mut checks,
        &ShiftForm {
            valid_from: form.valid_from.or(Some(row.valid_from)),
            ..form.clone()
        },
        today,
    );
    if form.role.as_str() != row.role
        || form.doctor_id.is_some_and(|d| Some(d) != row.doctor_id)
        || form
            .user_id
            .is_some_and(|u| Some(u) != row.user_id && row.doctor_id.is_none())
    {
        checks.fail(
            "role",
            "a shift's person and role stay; add a new shift instead",
        );
    }
    let same_person: Vec<ShiftRow> = load_shifts(db, row.clinic_id)
        .await?
        .into_iter()
        .filter(|r| match row.doctor_id {
            Some(d) => r.doctor_id == Some(d),
            None => r.doctor_id.is_none() && r.user_id == row.user_id,
        })
        .collect();
    check_overlap(&mut checks, &same_person, &times, Some(id));
    checks.finish()?;
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE shifts SET weekday = $2, start_local = $3, end_local = $4, valid_from = $5, valid_until = $6, updated_at = $7 WHERE id = $1";
    crate::exec_tx!(
        &mut tx,
        SQL,
        id,
        times.weekday,
        hhmm(times.start),
        hhmm(times.end),
        times.valid_from,
        times.valid_until,
        Utc::now()
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "shift.changed",
            subject: format!("shift:{id}"),
            clinic_id: Some(row.clinic_id),
            details: json!({"weekday": form.weekday, "start": hhmm(times.start), "end": hhmm(times.end),
                "before": {"weekday": row.weekday, "start": row.start_local, "end": row.end_local}}),
        },
    )
    .await?;
    tx.commit().await?;
    changed(db, &clinic, id, row.doctor_id).await
}

/// Removes a shift and its exceptions.
pub async fn delete(db: &Db, actor: &Actor, id: Uuid) -> Result<ShiftChange> {
    let (row, clinic) = for_admin(db, actor, id).await?;
    let mut tx = db.begin().await?;
    crate::exec_tx!(
        &mut tx,
        "DELETE FROM shift_exceptions WHERE shift_id = $1",
        id
    )?;
    crate::exec_tx!(&mut tx, "DELETE FROM shifts WHERE id = $1", id)?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "shift.deleted",
            subject: format!("shift:{id}"),
            clinic_id: Some(row.clinic_id),
            details: json!({"role": row.role, "doctor": row.doctor_id, "user": row.user_id,
                "weekday": row.weekday, "start": row.start_local, "end": row.end_local}),
        },
    )
    .await?;
    tx.commit().await?;
    changed(db, &clinic, id, row.doctor_id).await
}

/// Sets one day of a shift off (no times) or at other hours; `clear` removes the exception.
pub async fn set_exception(
    db: &Db,
    actor: &Actor,
    id: Uuid,
    e: ShiftException,
    clear: bool,
) -> Result<ShiftChange> {
    let (row, clinic) = for_admin(db, actor, id).await?;
    let mut checks = Checks::new();
    crate::domain::validate::check_date(&mut checks, "date", e.local_date);
    if !row.applies_on(e.local_date) {
        checks.fail("date", "the shift does not fall on that date");
    }
    let times = match (&e.start_local, &e.end_local) {
        (Some(a), Some(b)) => {
            let (a, b) = (
                parse_time(&mut checks, "start", a),
                parse_time(&mut checks, "end", b),
            );
            if a == b {
                checks.fail("end", "must differ from the start");
            }
            Some((hhmm(a), hhmm(b)))
        }
        (None, None) => None,
        _ => {
            checks.fail("end", "give both start and end, or neither for a day off");
            None
        }
    };
    let reason = checks.text("reason", &e.reason, 0, 500);
    checks.finish()?;
    let mut tx = db.begin().await?;
    if clear {
        crate::exec_tx!(
            &mut tx,
            "DELETE FROM shift_exceptions WHERE shift_id = $1 AND local_date = $2",
            id,
            e.local_date
        )?;
    } else {
        const SQL: &str = "INSERT INTO shift_exceptions (id, shift_id, local_date, start_local, end_local, reason, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (shift_id, local_date) DO UPDATE SET start_local = excluded.start_local, \
            end_local = excluded.end_local, reason = excluded.reason";
        let (a, b) = times.unzip();
        crate::exec_tx!(
            &mut tx,
            SQL,
            Uuid::now_v7(),
            id,
            e.local_date,
            a,
            b,
            &reason,
            Utc::now()
        )?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: if clear {
                "shift.exception_cleared"
            } else {
                "shift.exception_set"
            },
            subject: format!("shift:{id}"),
            clinic_id: Some(row.clinic_id),
            details: json!({"date": e.local_date, "off": e.start_local.is_none()}),
        },
    )
    .await?;
    tx.commit().await?;
    changed(db, &clinic, id, row.doctor_id).await
}

/// The shift as it now is, and its doctor's appointments without them on shift.
async fn changed(
    db: &Db,
    clinic: &clinics::Clinic,
    id: Uuid,
    doctor_id: Option<Uuid>,
) -> Result<ShiftChange> {
    let today = Utc::now().with_timezone(&clinic.tz()).date_naive();
    let shift = match load_shift(db, id).await {
        Ok(row) => Some(row.into_shift(exceptions_of(db, id, today).await?)),
        Err(_) => None,
    };
    let uncovered_appointments = match doctor_id {
        Some(d) => {
            let to = today + Days::new(CHANGE_HORIZON_DAYS);
            conflicts(db, clinic, today, to, Some(d))
                .await?
                .into_iter()
                .filter(|c| c.kind == ConflictKind::AppointmentWithoutDoctor)
                .collect()
        }
        None => Vec::new(),
    };
    Ok(ShiftChange {
        shift,
        uncovered_appointments,
    })
}

#[derive(sqlx::FromRow)]
struct SlotRow {
    doctor_id: Uuid,
    doctor_name: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    local_date: NaiveDate,
    status: String,
    appointment_id: Option<Uuid>,
}

/// Conflicts on local dates `[from, to)` for the clinic's doctors who have shifts (or one
/// doctor): booked visits outside the doctor's shifts, and runs of free slots outside them.
async fn conflicts(
    db: &Db,
    clinic: &clinics::Clinic,
    from: NaiveDate,
    to: NaiveDate,
    only: Option<Uuid>,
) -> Result<Vec<ShiftConflict>> {
    let rows = load_shifts(db, clinic.id).await?;
    // One doctor is checked even with no shift left: every visit of theirs is then uncovered.
    let doctors: HashSet<Uuid> = match only {
        Some(d) => HashSet::from([d]),
        None => rows.iter().filter_map(|r| r.doctor_id).collect(),
    };
    conflicts_of(db, clinic, &rows, &doctors, from, to).await
}

async fn conflicts_of(
    db: &Db,
    clinic: &clinics::Clinic,
    rows: &[ShiftRow],
    doctors: &HashSet<Uuid>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ShiftConflict>> {
    if doctors.is_empty() {
        return Ok(Vec::new());
    }
    let tz = clinic.tz();
    let exceptions = load_exceptions(db, clinic.id, from.pred_opt().unwrap_or(from), to).await?;
    // Shifts from the day before may run overnight into the first day.
    let on = occurrences(tz, rows, &exceptions, from.pred_opt().unwrap_or(from), to);
    let mut cover: HashMap<Uuid, Vec<Span>> = HashMap::new();
    for o in on {
        if let Some(d) = o.doctor_id {
            cover.entry(d).or_default().push((o.starts_at, o.ends_at));
        }
    }
    const SQL: &str = "SELECT s.doctor_id, d.display_name AS doctor_name, s.starts_at, s.ends_at, s.local_date, s.status, a.id AS appointment_id \
        FROM slots s JOIN doctors d ON d.id = s.doctor_id \
        LEFT JOIN appointments a ON a.slot_id = s.id AND a.status <> 'cancelled' \
        WHERE s.clinic_id = $1 AND s.local_date >= $2 AND s.local_date < $3 AND s.status <> 'blocked' \
        ORDER BY s.doctor_id, s.starts_at";
    let slots: Vec<SlotRow> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(clinic.id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await)?;
    let now = Utc::now();
    let mut out: Vec<ShiftConflict> = Vec::new();
    let empty = Vec::new();
    for s in slots.into_iter().filter(|s| doctors.contains(&s.doctor_id)) {
        let spans = cover.get(&s.doctor_id).unwrap_or(&empty);
        if covered((s.starts_at, s.ends_at), spans) {
            continue;
        }
        match s.appointment_id {
            Some(appointment) => out.push(ShiftConflict {
                kind: ConflictKind::AppointmentWithoutDoctor,
                doctor_id: s.doctor_id,
                doctor_name: s.doctor_name,
                date: s.local_date,
                start: local_hhmm(tz, s.starts_at),
                end: local_hhmm(tz, s.ends_at),
                starts_at: s.starts_at,
                ends_at: s.ends_at,
                appointment_id: Some(appointment),
                slots: 0,
            }),
            None if s.status == "open" && s.starts_at > now => {
                // Runs of free slots join into one conflict.
                if let Some(last) = out.last_mut().filter(|c| {
                    c.kind == ConflictKind::BookableOutsideShift
                        && c.doctor_id == s.doctor_id
                        && c.date == s.local_date
                        && c.ends_at >= s.starts_at
                }) {
                    last.ends_at = s.ends_at;
                    last.end = local_hhmm(tz, s.ends_at);
                    last.slots += 1;
                } else {
                    out.push(ShiftConflict {
                        kind: ConflictKind::BookableOutsideShift,
                        doctor_id: s.doctor_id,
                        doctor_name: s.doctor_name,
                        date: s.local_date,
                        start: local_hhmm(tz, s.starts_at),
                        end: local_hhmm(tz, s.ends_at),
                        starts_at: s.starts_at,
                        ends_at: s.ends_at,
                        appointment_id: None,
                        slots: 1,
                    });
                }
            }
            None => {}
        }
    }
    Ok(out)
}

/// The dates a days query names, in the clinic's zone.
fn range(q: &DaysQuery, tz: Tz) -> Result<(NaiveDate, NaiveDate)> {
    let mut checks = Checks::new();
    let days = q.days.unwrap_or(7);
    if !(1..=MAX_DAYS).contains(&days) {
        checks.fail("days", format!("must be between 1 and {MAX_DAYS}"));
    }
    let from = q
        .from
        .unwrap_or_else(|| Utc::now().with_timezone(&tz).date_naive());
    crate::domain::validate::check_date(&mut checks, "from", from);
    checks.finish_query()?;
    let to = from + Days::new(u64::try_from(days).unwrap_or(7));
    Ok((from, to))
}

/// Who is on each day, the opening hours nobody of a role covers, and the conflicts with
/// bookings (the clinic's admins and staff).
pub async fn coverage(db: &Db, actor: &Actor, clinic_id: Uuid, q: &DaysQuery) -> Result<Coverage> {
    clinics::require_staff_of(actor, clinic_id)?;
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let tz = clinic.tz();
    let (from, to) = range(q, tz)?;
    let rows = load_shifts(db, clinic_id).await?;
    let before = from.pred_opt().unwrap_or(from);
    let exceptions = load_exceptions(db, clinic_id, before, to).await?;
    let on = occurrences(tz, &rows, &exceptions, before, to);
    let hours = opening_hours(db, clinic_id).await?;
    let mut days = Vec::new();
    for date in from.iter_days().take_while(|d| *d < to) {
        let w = WEEKDAYS
            .get(date.weekday().num_days_from_monday() as usize)
            .copied()
            .unwrap_or("mon");
        let open: Vec<Span> = hours
            .iter()
            .filter(|h| h.weekday == w)
            .map(|h| span(tz, date, time_of(&h.start), time_of(&h.end)))
            .collect();
        let mut gaps = Vec::new();
        for (label, roles) in [
            ("front_desk", &["clinic_staff", "clinic_admin"][..]),
            ("doctor", &["doctor"][..]),
        ] {
            let cover: Vec<_> = on
                .iter()
                .filter(|o| roles.contains(&o.role.as_str()))
                .map(|o| (o.starts_at, o.ends_at))
                .collect();
            for (a, b) in uncovered(&open, &cover) {
                gaps.push(Gap {
                    role: label.to_owned(),
                    start: local_hhmm(tz, a),
                    end: local_hhmm(tz, b),
                    starts_at: a,
                    ends_at: b,
                });
            }
        }
        days.push(Day {
            date,
            weekday: w.to_owned(),
            open: hours
                .iter()
                .filter(|h| h.weekday == w)
                .map(|h| format!("{}–{}", h.start, h.end))
                .collect(),
            on_shift: on.iter().filter(|o| o.date == date).cloned().collect(),
            gaps,
        });
    }
    let conflicts = conflicts(db, &clinic, from, to, None).await?;
    Ok(Coverage {
        clinic_id,
        time_zone: clinic.time_zone.to_string(),
        hours_set: !hours.is_empty(),
        days,
        conflicts,
    })
}

/// The signed-in person's own shifts, at every clinic, over some days.
pub async fn mine(db: &Db, actor: &Actor, q: &DaysQuery) -> Result<Vec<OnShift>> {
    let me = actor.principal()?.user_id;
    const SQL: &str = "SELECT DISTINCT s.clinic_id FROM shifts s LEFT JOIN doctors d ON d.id = s.doctor_id \
        WHERE s.user_id = $1 OR d.user_id = $1";
    let clinic_ids: Vec<(Uuid,)> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(me)
        .fetch_all(pool)
        .await)?;
    let my_doctors = doctors::ids_of_user(db, me).await?;
    let mut out = Vec::new();
    for (clinic_id,) in clinic_ids {
        let Some(clinic) = clinics::get(db, clinic_id).await? else {
            continue;
        };
        let tz = clinic.tz();
        let (from, to) = range(q, tz)?;
        let rows: Vec<ShiftRow> = load_shifts(db, clinic_id)
            .await?
            .into_iter()
            .filter(|r| match r.doctor_id {
                Some(d) => my_doctors.contains(&d),
                None => r.user_id == Some(me),
            })
            .collect();
        let exceptions = load_exceptions(db, clinic_id, from, to).await?;
        out.extend(occurrences(tz, &rows, &exceptions, from, to));
    }
    out.sort_by_key(|o| o.starts_at);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveTime {
        time_of(s)
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_shift_keeps_its_local_hours_across_daylight_saving() {
        let tz: Tz = "Europe/Lisbon".parse().unwrap();
        // The Sunday clocks go forward (29 March 2026) and the Monday after.
        let (a, b) = span(tz, d("2026-03-27"), t("08:00"), t("16:00"));
        assert_eq!(
            (a.to_rfc3339(), b.to_rfc3339()),
            (
                "2026-03-27T08:00:00+00:00".into(),
                "2026-03-27T16:00:00+00:00".into()
            )
        );
        let (a, b) = span(tz, d("2026-03-30"), t("08:00"), t("16:00"));
        assert_eq!(a.to_rfc3339(), "2026-03-30T07:00:00+00:00");
        assert_eq!(b.to_rfc3339(), "2026-03-30T15:00:00+00:00");
        // The night of the change is one hour shorter: 22:00 to 06:00 is 7 hours.
        let (a, b) = span(tz, d("2026-03-28"), t("22:00"), t("06:00"));
        assert_eq!((b - a).num_hours(), 7);
        // A start in the skipped hour (01:00–02:00 in Lisbon) begins when the clocks resume.
        let (a, _) = span(tz, d("2026-03-29"), t("01:30"), t("09:00"));
        assert_eq!(a.to_rfc3339(), "2026-03-29T01:00:00+00:00");
    }

    #[test]
    fn gaps_are_the_open_hours_nobody_covers() {
        let tz: Tz = "UTC".parse().unwrap();
        let day = d("2026-12-07");
        let open = [span(tz, day, t("08:00"), t("20:00"))];
        let cover = [
            span(tz, day, t("07:00"), t("12:00")),
            span(tz, day, t("11:00"), t("14:00")),
            span(tz, day, t("16:00"), t("18:00")),
        ];
        let gaps: Vec<(String, String)> = uncovered(&open, &cover)
            .into_iter()
            .map(|(a, b)| (local_hhmm(tz, a), local_hhmm(tz, b)))
            .collect();
        assert_eq!(
            gaps,
            [
                ("14:00".into(), "16:00".into()),
                ("18:00".into(), "20:00".into())
            ]
        );
        assert!(uncovered(&open, &[span(tz, day, t("06:00"), t("22:00"))]).is_empty());
    }

    #[test]
    fn overnight_shifts_overlap_the_next_morning_and_the_week_wraps() {
        let night = week_span(6, t("22:00"), t("06:00")); // Sunday night into Monday
        let monday = week_span(0, t("05:00"), t("09:00"));
        assert!(week_overlap(night, monday));
        assert!(!week_overlap(week_span(0, t("06:00"), t("09:00")), night));
        assert!(!week_overlap(
            week_span(0, t("08:00"), t("12:00")),
            week_span(0, t("12:00"), t("16:00"))
        ));
    }
}
