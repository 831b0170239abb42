//! Clinic reports: appointments per day, week or month, the no-show rate, and demand by
//! specialty and by hour of day (the clinic's local time). For the clinic's admins and
//! system admins.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::clinics;
use crate::error::{Code, Error, Result};
use crate::on_db;
use crate::zone::TimeZone;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "day" => Ok(Self::Day),
            "week" => Ok(Self::Week),
            "month" => Ok(Self::Month),
            _ => Err(Error::new(Code::InvalidQuery, "period: day, week or month")),
        }
    }

    /// The label of the period a local date falls in: `2026-11-24`, `2026-W48`, `2026-11`.
    pub fn label(self, d: NaiveDate) -> String {
        match self {
            Self::Day => d.format("%Y-%m-%d").to_string(),
            Self::Week => {
                let w = d.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Self::Month => d.format("%Y-%m").to_string(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub booked: u64,
    pub completed: u64,
    pub no_show: u64,
    pub cancelled: u64,
}

impl Counts {
    fn add(&mut self, status: &str) {
        match status {
            "completed" => self.completed += 1,
            "no_show" => self.no_show += 1,
            "cancelled" => self.cancelled += 1,
            _ => self.booked += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.booked + self.completed + self.no_show + self.cancelled
    }

    /// Missed visits among those that were due (completed or missed), when any were.
    pub fn no_show_rate(&self) -> Option<f64> {
        let due = self.completed + self.no_show;
        (due > 0).then(|| self.no_show as f64 / due as f64)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub clinic_id: Uuid,
    pub clinic_name: String,
    pub time_zone: TimeZone,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Appointments by period label, by status.
    pub by_period: BTreeMap<String, Counts>,
    /// No-shows among visits that were due (completed + no-show), 0 to 1.
    pub no_show_rate: Option<f64>,
    /// Appointments (not cancelled) by the doctor's specialty.
    pub by_specialty: BTreeMap<String, u64>,
    /// Appointments (not cancelled) by local hour of the start, 0 to 23.
    pub by_hour: [u64; 24],
}

#[derive(sqlx::FromRow)]
struct Row {
    status: String,
    local_date: NaiveDate,
    local_minute: i64,
    specialties: Option<String>,
}

/// The report of one clinic for the local days `from..=to` (at most 400 days).
pub async fn clinic(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
    period: Period,
) -> Result<Report> {
    clinics::require_admin_of(actor, clinic_id)?;
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    check_range(from, to)?;
    // The specialty names of each doctor, joined with `|` (one query for both backends).
    const SQL: &str = "SELECT a.status, s.local_date, s.local_minute, \
        (SELECT MIN(sp.name) FROM doctor_specialties ds JOIN specialties sp ON sp.id = ds.specialty_id \
         WHERE ds.doctor_id = a.doctor_id) AS specialties \
        FROM appointments a JOIN slots s ON s.id = a.slot_id \
        WHERE a.clinic_id = $1 AND s.local_date >= $2 AND s.local_date <= $3";
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Row>(SQL)
        .bind(clinic_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await)?;
    let mut report = Report {
        clinic_id,
        clinic_name: clinic.name.clone(),
        time_zone: clinic.time_zone,
        from,
        to,
        by_period: BTreeMap::new(),
        no_show_rate: None,
        by_specialty: BTreeMap::new(),
        by_hour: [0; 24],
    };
    let (mut due, mut missed) = (0u64, 0u64);
    for r in rows {
        report
            .by_period
            .entry(period.label(r.local_date))
            .or_default()
            .add(&r.status);
        if r.status == "cancelled" {
            continue;
        }
        if r.status == "completed" || r.status == "no_show" {
            due += 1;
            missed += u64::from(r.status == "no_show");
        }
        *report
            .by_specialty
            .entry(r.specialties.unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
        let hour = usize::try_from(r.local_minute / 60).unwrap_or(0).min(23);
        report.by_hour[hour] += 1;
    }
    report.no_show_rate = (due > 0).then(|| missed as f64 / due as f64);
    Ok(report)
}

/// The default range: the last 30 local days of the clinic and the next 30.
pub fn default_range(now: DateTime<Utc>, tz: chrono_tz::Tz) -> (NaiveDate, NaiveDate) {
    let today = now.with_timezone(&tz).date_naive();
    (today - Duration::days(30), today + Duration::days(30))
}

/// Instants that surely hold the local dates `[from, to]` in any zone: a report reads the
/// rows between them and keeps those whose local date is in the range.
pub fn instants_around(from: NaiveDate, to: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    (
        midnight(from) - Duration::days(1),
        midnight(to) + Duration::days(2),
    )
}

/// A report's local dates: real ones, in order, at most 400 days apart.
pub fn check_range(from: NaiveDate, to: NaiveDate) -> Result<()> {
    crate::domain::validate::query_dates([("from", Some(from)), ("to", Some(to))])?;
    if to < from || to - from > Duration::days(400) {
        return Err(Error::new(
            Code::InvalidQuery,
            "from must not be after to, and the range at most 400 days",
        ));
    }
    Ok(())
}

impl Report {
    /// One CSV table: `periods`, `specialties` or `hours`.
    pub fn csv(&self, kind: &str) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let io = |e: csv::Error| Error::internal(e.to_string());
        match kind {
            "periods" => {
                w.write_record([
                    "period",
                    "booked",
                    "completed",
                    "no_show",
                    "cancelled",
                    "total",
                ])
                .map_err(io)?;
                for (label, c) in &self.by_period {
                    w.write_record([
                        label.clone(),
                        c.booked.to_string(),
                        c.completed.to_string(),
                        c.no_show.to_string(),
                        c.cancelled.to_string(),
                        c.total().to_string(),
                    ])
                    .map_err(io)?;
                }
            }
            "specialties" => {
                w.write_record(["specialty", "appointments"]).map_err(io)?;
                for (name, n) in &self.by_specialty {
                    w.write_record([name.clone(), n.to_string()]).map_err(io)?;
                }
            }
            "hours" => {
                w.write_record(["hour", "appointments"]).map_err(io)?;
                for (hour, n) in self.by_hour.iter().enumerate() {
                    w.write_record([format!("{hour:02}:00"), n.to_string()])
                        .map_err(io)?;
                }
            }
            _ => {
                return Err(Error::new(
                    Code::InvalidQuery,
                    "kind: periods, specialties or hours",
                ));
            }
        }
        let bytes = w.into_inner().map_err(|e| Error::internal(e.to_string()))?;
        String::from_utf8(bytes).map_err(|e| Error::internal(e.to_string()))
    }
}
