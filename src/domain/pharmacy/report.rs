//! The pharmacy's stock report for its pharmacists and the clinic's admins: per medicine
//! what is on the shelf now and what it is worth (at cost and at price), and the
//! movements of the ledger over local dates, by kind; with a CSV.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::clinics;
use crate::domain::pharmacy::{self, Movement};
use crate::error::{Error, Result};
use crate::on_db;

/// Units moved in the period, by kind (received and returned add; the others are as the
/// ledger holds them, so dispensed is negative and adjusted either way).
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct Movements {
    pub received: i64,
    pub dispensed: i64,
    pub adjusted: i64,
    pub expired: i64,
    pub returned: i64,
}

impl Movements {
    fn add(&mut self, kind: Movement, quantity: i64) {
        let slot = match kind {
            Movement::Received => &mut self.received,
            Movement::Dispensed => &mut self.dispensed,
            Movement::Adjusted => &mut self.adjusted,
            Movement::Expired => &mut self.expired,
            Movement::Returned => &mut self.returned,
        };
        *slot += quantity;
    }

    fn net(&self) -> i64 {
        self.received + self.dispensed + self.adjusted + self.expired + self.returned
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StockLine {
    pub medicine_id: Uuid,
    pub name: String,
    pub strength: String,
    pub unit: String,
    pub currency: String,
    /// Units in unexpired batches now.
    pub on_hand: i64,
    /// Units in expired batches not yet written off (worth nothing).
    pub expired_on_hand: i64,
    /// `on_hand` at the unit cost.
    pub cost_value_cents: i64,
    /// `on_hand` at the unit price.
    pub price_value_cents: i64,
    pub movements: Movements,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StockReport {
    pub clinic_id: Uuid,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Every medicine of the catalogue (retired ones too while they hold stock or moved).
    pub lines: Vec<StockLine>,
    /// Sums per currency of the catalogue (one in practice).
    pub cost_value_cents: i64,
    pub price_value_cents: i64,
}

#[derive(sqlx::FromRow)]
struct Moved {
    medicine_id: Uuid,
    kind: Movement,
    quantity: i64,
    created_at: DateTime<Utc>,
}

/// Stock now and movements on local dates `[from, to]`.
pub async fn stock(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<StockReport> {
    pharmacy::require_pharmacy_of(actor, clinic_id)?;
    clinics::reports::check_range(from, to)?;
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let tz = clinic.tz();
    let medicines = pharmacy::catalogue(db, actor, clinic_id).await?;
    let (after, before) = clinics::reports::instants_around(from, to);
    const SQL: &str = "SELECT medicine_id, kind, quantity, created_at FROM stock_ledger \
        WHERE clinic_id = $1 AND created_at >= $2 AND created_at < $3";
    let moved: Vec<Moved> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(clinic_id)
        .bind(after)
        .bind(before)
        .fetch_all(pool)
        .await)?;
    let mut movements: HashMap<Uuid, Movements> = HashMap::new();
    for m in moved {
        let day = m.created_at.with_timezone(&tz).date_naive();
        if day >= from && day <= to {
            movements
                .entry(m.medicine_id)
                .or_default()
                .add(m.kind, m.quantity);
        }
    }
    let mut lines = Vec::with_capacity(medicines.len());
    for m in medicines {
        let moves = movements.remove(&m.id).unwrap_or_default();
        if !m.active && m.on_hand == 0 && m.expired_on_hand == 0 && moves.net() == 0 {
            continue;
        }
        lines.push(StockLine {
            medicine_id: m.id,
            cost_value_cents: m.on_hand * m.unit_cost_cents,
            price_value_cents: m.on_hand * m.unit_price_cents,
            name: m.name,
            strength: m.strength,
            unit: m.unit,
            currency: m.currency,
            on_hand: m.on_hand,
            expired_on_hand: m.expired_on_hand,
            movements: moves,
        });
    }
    Ok(StockReport {
        clinic_id,
        from,
        to,
        cost_value_cents: lines.iter().map(|l| l.cost_value_cents).sum(),
        price_value_cents: lines.iter().map(|l| l.price_value_cents).sum(),
        lines,
    })
}

/// Text a spreadsheet will not run as a formula (a leading `=`, `+`, `-` or `@` is
/// quoted with `'`).
fn inert(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

impl StockReport {
    /// One row per medicine; quantities in units, values in minor units.
    pub fn csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let header = [
            "medicine",
            "strength",
            "unit",
            "on_hand",
            "expired_on_hand",
            "cost_value_cents",
            "price_value_cents",
            "currency",
            "received",
            "dispensed",
            "adjusted",
            "expired",
            "returned",
        ];
        w.write_record(header).map_err(Error::internal)?;
        for l in &self.lines {
            let m = &l.movements;
            w.write_record([
                inert(&l.name),
                inert(&l.strength),
                inert(&l.unit),
                l.on_hand.to_string(),
                l.expired_on_hand.to_string(),
                l.cost_value_cents.to_string(),
                l.price_value_cents.to_string(),
                l.currency.clone(),
                m.received.to_string(),
                m.dispensed.to_string(),
                m.adjusted.to_string(),
                m.expired.to_string(),
                m.returned.to_string(),
            ])
            .map_err(Error::internal)?;
        }
        let bytes = w.into_inner().map_err(Error::internal)?;
        String::from_utf8(bytes).map_err(Error::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_look_like_formulas_are_quoted() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("Amoxicillin"), "Amoxicillin");
        assert_eq!(inert("@SUM(A1)"), "'@SUM(A1)");
    }
}
