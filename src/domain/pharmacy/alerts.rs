//! Pharmacy alerts: medicines whose unexpired stock is below their threshold, batches
//! expiring within a number of days, and expired batches still on the shelf. Listed for
//! the clinic's pharmacists and admins, and sent to its pharmacists once a day through the
//! outbox.

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Batch, Db};
use crate::domain::actor::Actor;
use crate::domain::pharmacy;
use crate::error::Result;
use crate::notify::messages::{Kind, StockNews};
use crate::notify::outbox;
use crate::on_db;

/// How many days ahead an expiry is worth an alert.
pub const EXPIRY_DAYS: u64 = 30;

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct LowStock {
    pub medicine_id: Uuid,
    pub name: String,
    pub strength: String,
    pub unit: String,
    pub on_hand: i64,
    pub threshold: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Expiring {
    pub batch_id: Uuid,
    pub medicine_id: Uuid,
    pub name: String,
    pub strength: String,
    pub batch_number: String,
    pub expiry_date: NaiveDate,
    pub on_hand: i64,
}

#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct Alerts {
    pub low_stock: Vec<LowStock>,
    /// Batches expiring within the days asked, soonest first.
    pub expiring: Vec<Expiring>,
    /// Expired batches with units left (to write off).
    pub expired: Vec<Expiring>,
}

impl Alerts {
    pub fn is_empty(&self) -> bool {
        self.low_stock.is_empty() && self.expiring.is_empty() && self.expired.is_empty()
    }
}

async fn compute(db: &Db, clinic_id: Uuid, today: NaiveDate, days: u64) -> Result<Alerts> {
    const LOW: &str = "SELECT m.id AS medicine_id, m.name, m.strength, m.unit, \
        CAST(COALESCE((SELECT SUM(b.on_hand) FROM stock_batches b WHERE b.medicine_id = m.id AND b.expiry_date > $2), 0) AS BIGINT) AS on_hand, \
        m.low_stock_threshold AS threshold FROM medicines m \
        WHERE m.clinic_id = $1 AND m.active = $3 AND m.low_stock_threshold > 0 \
        AND CAST(COALESCE((SELECT SUM(b.on_hand) FROM stock_batches b WHERE b.medicine_id = m.id AND b.expiry_date > $2), 0) AS BIGINT) < m.low_stock_threshold \
        ORDER BY m.name";
    const BATCHES: &str = "SELECT b.id AS batch_id, b.medicine_id, m.name, m.strength, b.batch_number, b.expiry_date, b.on_hand \
        FROM stock_batches b JOIN medicines m ON m.id = b.medicine_id \
        WHERE b.clinic_id = $1 AND b.on_hand > 0 AND b.expiry_date > $2 AND b.expiry_date <= $3 ORDER BY b.expiry_date, m.name";
    let low_stock = on_db!(db, |pool| sqlx::query_as::<_, LowStock>(LOW)
        .bind(clinic_id)
        .bind(today)
        .bind(true)
        .fetch_all(pool)
        .await)?;
    let horizon = today + Days::new(days);
    let expiring = on_db!(db, |pool| sqlx::query_as::<_, Expiring>(BATCHES)
        .bind(clinic_id)
        .bind(today)
        .bind(horizon)
        .fetch_all(pool)
        .await)?;
    let long_ago = crate::domain::validate::EARLIEST_DATE;
    let expired = on_db!(db, |pool| sqlx::query_as::<_, Expiring>(BATCHES)
        .bind(clinic_id)
        .bind(long_ago)
        .bind(today)
        .fetch_all(pool)
        .await)?;
    Ok(Alerts {
        low_stock,
        expiring,
        expired,
    })
}

/// The clinic's alerts now (pharmacists and admins); `days` ahead for expiries (1–365).
pub async fn list(db: &Db, actor: &Actor, clinic_id: Uuid, days: Option<u64>) -> Result<Alerts> {
    pharmacy::require_pharmacy_of(actor, clinic_id)?;
    let (_, today) = pharmacy::clinic_today(db, clinic_id).await?;
    compute(
        db,
        clinic_id,
        today,
        days.unwrap_or(EXPIRY_DAYS).clamp(1, 365),
    )
    .await
}

/// The daily message to each pharmacist of each clinic with something to say, once per
/// clinic-local day.
pub async fn notify_all(db: &Db, now: DateTime<Utc>) -> Result<Batch> {
    const CLINICS: &str = "SELECT DISTINCT clinic_id FROM medicines";
    let clinics: Vec<(Uuid,)> = on_db!(db, |pool| sqlx::query_as(CLINICS).fetch_all(pool).await)?;
    let mut batch = Batch::default();
    for (clinic_id,) in clinics {
        let one = notify_clinic(db, clinic_id, now).await;
        if let Some(n) = batch.count("pharmacy alerts", clinic_id, one) {
            batch.done += n;
        }
    }
    Ok(batch)
}

async fn notify_clinic(db: &Db, clinic_id: Uuid, now: DateTime<Utc>) -> Result<u64> {
    let (clinic, _) = pharmacy::clinic_today(db, clinic_id).await?;
    let today = now.with_timezone(&clinic.tz()).date_naive();
    let alerts = compute(db, clinic_id, today, EXPIRY_DAYS).await?;
    if alerts.is_empty() {
        return Ok(0);
    }
    const PHARMACISTS: &str = "SELECT r.user_id FROM user_roles r JOIN users u ON u.id = r.user_id \
        WHERE r.role = 'pharmacist' AND r.clinic_id = $1 AND u.deactivated_at IS NULL AND u.erased_at IS NULL";
    let pharmacists: Vec<(Uuid,)> = on_db!(db, |pool| sqlx::query_as(PHARMACISTS)
        .bind(clinic_id)
        .fetch_all(pool)
        .await)?;
    let about = format!("pharmacy:{clinic_id}:{today}");
    let low: Vec<String> = alerts
        .low_stock
        .iter()
        .map(|l| {
            format!(
                "{} {} ({} {} left, alert below {})",
                l.name, l.strength, l.on_hand, l.unit, l.threshold
            )
        })
        .collect();
    let expiring: Vec<String> = alerts
        .expiring
        .iter()
        .chain(&alerts.expired)
        .map(|e| {
            format!(
                "{} {} batch {}, {} units, expires {}",
                e.name, e.strength, e.batch_number, e.on_hand, e.expiry_date
            )
        })
        .collect();
    let mut sent = 0;
    for (user_id,) in pharmacists {
        const SENT: &str = "SELECT COUNT(*) FROM outbox WHERE about = $1 AND user_id = $2";
        let (already,): (i64,) = on_db!(db, |pool| sqlx::query_as(SENT)
            .bind(&about)
            .bind(user_id)
            .fetch_one(pool)
            .await)?;
        if already > 0 {
            continue;
        }
        let mut tx = db.begin().await?;
        let to = outbox::contact(&mut tx, user_id).await?;
        let news = StockNews {
            name: &to.display_name,
            clinic: &clinic.name,
            low: low.clone(),
            expiring: expiring.clone(),
        };
        let message: outbox::Message = Kind::PharmacyAlert(&news).render(to.language)?.into();
        outbox::enqueue(
            &mut tx,
            db.policy(),
            "pharmacy_alert",
            &about,
            &to,
            &message,
            now,
        )
        .await?;
        tx.commit().await?;
        sent += 1;
    }
    Ok(sent)
}
