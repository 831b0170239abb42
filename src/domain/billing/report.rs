//! Revenue for a clinic's admins: what was invoiced (less credit notes) and what was paid
//! per day, week or month in the clinic's zone, invoiced per doctor and per specialty
//! (visits' invoices; a doctor counts under their first specialty by name), and what is
//! still owed; with a CSV of the periods.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::clinics::{self, reports::Period};
use crate::error::{Error, Result};
use crate::on_db;

#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct PeriodRevenue {
    /// `2026-11-24`, `2026-W48` or `2026-11`.
    pub period: String,
    /// Invoices issued in the period, less credit notes issued in it.
    pub invoiced_cents: i64,
    pub paid_cents: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DoctorRevenue {
    pub doctor: String,
    pub invoiced_cents: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SpecialtyRevenue {
    pub specialty: String,
    pub invoiced_cents: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Owed {
    pub invoice_id: Uuid,
    pub number: Option<String>,
    pub bill_to: String,
    pub issued_at: Option<DateTime<Utc>>,
    pub total_cents: i64,
    pub paid_cents: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Revenue {
    pub clinic_id: Uuid,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub periods: Vec<PeriodRevenue>,
    pub by_doctor: Vec<DoctorRevenue>,
    pub by_specialty: Vec<SpecialtyRevenue>,
    /// Issued invoices not paid in full, oldest first (whenever issued).
    pub outstanding: Vec<Owed>,
    pub outstanding_cents: i64,
}

#[derive(sqlx::FromRow)]
struct Issued {
    issued_at: DateTime<Utc>,
    total_cents: i64,
    doctor: Option<String>,
    specialty: Option<String>,
}

/// Revenue on local dates `[from, to]` (the clinic's admins).
pub async fn revenue(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
    period: Period,
) -> Result<Revenue> {
    clinics::require_admin_of(actor, clinic_id)?;
    clinics::reports::check_range(from, to)?;
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let tz = clinic.tz();
    let (after, before) = clinics::reports::instants_around(from, to);
    const ISSUED: &str = "SELECT i.issued_at, i.total_cents, d.display_name AS doctor, \
        (SELECT MIN(sp.name) FROM doctor_specialties ds JOIN specialties sp ON sp.id = ds.specialty_id \
         WHERE ds.doctor_id = d.id) AS specialty FROM invoices i \
        LEFT JOIN appointments a ON a.id = i.appointment_id LEFT JOIN doctors d ON d.id = a.doctor_id \
        WHERE i.clinic_id = $1 AND i.status <> 'draft' AND i.issued_at >= $2 AND i.issued_at < $3";
    let issued: Vec<Issued> = on_db!(db, |pool| sqlx::query_as(ISSUED)
        .bind(clinic_id)
        .bind(after)
        .bind(before)
        .fetch_all(pool)
        .await)?;
    const PAID: &str = "SELECT p.paid_on, p.amount_cents FROM payments p JOIN invoices i ON i.id = p.invoice_id \
        WHERE i.clinic_id = $1 AND p.paid_on >= $2 AND p.paid_on <= $3";
    let paid: Vec<(NaiveDate, i64)> = on_db!(db, |pool| sqlx::query_as(PAID)
        .bind(clinic_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await)?;
    let mut periods: BTreeMap<String, PeriodRevenue> = BTreeMap::new();
    let mut by_doctor: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_specialty: BTreeMap<String, i64> = BTreeMap::new();
    for i in issued {
        let day = i.issued_at.with_timezone(&tz).date_naive();
        if day < from || day > to {
            continue;
        }
        let label = period.label(day);
        let row = periods
            .entry(label.clone())
            .or_insert_with(|| PeriodRevenue {
                period: label,
                ..PeriodRevenue::default()
            });
        row.invoiced_cents += i.total_cents;
        if let Some(d) = i.doctor {
            *by_doctor.entry(d).or_default() += i.total_cents;
            let specialty = i.specialty.unwrap_or_else(|| "(none)".into());
            *by_specialty.entry(specialty).or_default() += i.total_cents;
        }
    }
    for (day, amount) in paid {
        let label = period.label(day);
        let row = periods
            .entry(label.clone())
            .or_insert_with(|| PeriodRevenue {
                period: label,
                ..PeriodRevenue::default()
            });
        row.paid_cents += amount;
    }
    const OWED: &str = "SELECT id AS invoice_id, number, bill_to, issued_at, total_cents, paid_cents FROM invoices \
        WHERE clinic_id = $1 AND kind = 'invoice' AND status = 'issued' ORDER BY issued_at, number LIMIT 1000";
    let outstanding: Vec<Owed> = on_db!(db, |pool| sqlx::query_as(OWED)
        .bind(clinic_id)
        .fetch_all(pool)
        .await)?;
    let outstanding_cents = outstanding
        .iter()
        .map(|o| o.total_cents - o.paid_cents)
        .sum();
    Ok(Revenue {
        clinic_id,
        from,
        to,
        periods: periods.into_values().collect(),
        by_doctor: by_doctor
            .into_iter()
            .map(|(doctor, invoiced_cents)| DoctorRevenue {
                doctor,
                invoiced_cents,
            })
            .collect(),
        by_specialty: by_specialty
            .into_iter()
            .map(|(specialty, invoiced_cents)| SpecialtyRevenue {
                specialty,
                invoiced_cents,
            })
            .collect(),
        outstanding,
        outstanding_cents,
    })
}

impl Revenue {
    /// The periods as CSV: `period,invoiced,paid` in minor units.
    pub fn csv(&self) -> String {
        let mut out = String::from("period,invoiced_cents,paid_cents\n");
        for p in &self.periods {
            out.push_str(&format!(
                "{},{},{}\n",
                p.period, p.invoiced_cents, p.paid_cents
            ));
        }
        out
    }
}
