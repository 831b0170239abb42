//! The pharmacy: a clinic's medicine catalogue, its stock by batch, and every change of
//! stock as a row of an append-only ledger (received, dispensed, adjusted, expired,
//! returned). A batch's stock on hand is the sum of its ledger rows, kept by a database
//! trigger in the same statement and never negative (a CHECK refuses the row that would
//! make it so), whoever writes and however many at once. Pharmacists of the clinic change
//! stock; its admins keep the catalogue too. Dispensing and the alerts are in
//! [`dispensing`] and [`alerts`].

pub mod alerts;
pub mod dispensing;
pub mod report;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::domain::actor::{Actor, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::clinics;
use crate::domain::validate::Checks;
use crate::error::{Code, Error, Result};
use crate::{on_db, on_tx};

crate::text_enum! {
    /// Why stock changed.
    pub enum Movement {
        Received = "received",
        Dispensed = "dispensed",
        Adjusted = "adjusted",
        Expired = "expired",
        Returned = "returned",
    }
}

/// The clinic's pharmacists.
pub fn require_pharmacist_of(actor: &Actor, clinic_id: Uuid) -> Result<()> {
    if actor.principal()?.has_role_in(Role::Pharmacist, clinic_id) {
        Ok(())
    } else {
        Err(Error::forbidden())
    }
}

/// Its pharmacists and admins (the catalogue, and reading stock).
pub fn require_pharmacy_of(actor: &Actor, clinic_id: Uuid) -> Result<()> {
    require_pharmacist_of(actor, clinic_id).or_else(|_| clinics::require_admin_of(actor, clinic_id))
}

/// A medicine as a pharmacist or admin enters it.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MedicineForm {
    /// e.g. `Amoxicillin`.
    pub name: String,
    #[serde(default)]
    pub generic_name: String,
    /// e.g. `capsule`, `tablet`, `syrup`.
    pub form: String,
    /// e.g. `500 mg`.
    #[serde(default)]
    pub strength: String,
    #[serde(default)]
    pub dosage_guidance: String,
    /// What one unit of stock is, e.g. `capsule`, `bottle`.
    pub unit: String,
    /// Cost to the clinic of one unit, in minor units.
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = 0, maximum = 100000000)]
    pub unit_cost_cents: i64,
    /// Price to patients of one unit, in minor units.
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = 0, maximum = 100000000)]
    pub unit_price_cents: i64,
    /// ISO 4217 (default `EUR`).
    #[serde(default)]
    pub currency: Option<String>,
    /// Dispensed only against a prescription (default true).
    #[serde(default = "yes")]
    pub prescription_only: bool,
    /// An alert goes out when unexpired stock falls below this.
    #[serde(default, deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = 0, maximum = 1000000)]
    pub low_stock_threshold: i64,
    /// Retired medicines stay in the books but are not dispensed (default true).
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// A catalogue entry with its stock.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Medicine {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub name: String,
    pub generic_name: String,
    pub form: String,
    pub strength: String,
    pub dosage_guidance: String,
    pub unit: String,
    pub unit_cost_cents: i64,
    pub unit_price_cents: i64,
    pub currency: String,
    pub prescription_only: bool,
    pub low_stock_threshold: i64,
    pub active: bool,
    /// Units in batches that have not expired.
    pub on_hand: i64,
    /// Units in expired batches, not yet written off.
    pub expired_on_hand: i64,
}

/// A batch on the shelf.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Batch {
    pub id: Uuid,
    pub medicine_id: Uuid,
    pub clinic_id: Uuid,
    pub batch_number: String,
    pub expiry_date: NaiveDate,
    pub location: String,
    pub on_hand: i64,
}

/// One change of stock.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub medicine_id: Uuid,
    pub medicine: String,
    pub batch_id: Uuid,
    pub batch_number: String,
    pub kind: Movement,
    /// Signed: received and returned add, the rest take away.
    pub quantity: i64,
    pub reason: String,
    pub dispensing_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A delivery of one batch.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub batch_number: String,
    pub expiry_date: NaiveDate,
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub quantity: i64,
    #[serde(default)]
    pub location: String,
}

/// A correction of one batch's stock: counted differently (`adjusted`, with a reason),
/// written off as expired (`expired`), or brought back (`returned`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    /// `adjusted`, `expired` or `returned`.
    pub kind: Movement,
    /// Signed for `adjusted`; for `expired` the units written off, for `returned` those
    /// brought back (both positive).
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = -1000000, maximum = 1000000)]
    pub quantity: i64,
    #[serde(default)]
    pub reason: String,
}

/// Today in the clinic's zone (expiry dates are local dates).
pub(crate) async fn clinic_today(db: &Db, clinic_id: Uuid) -> Result<(clinics::Clinic, NaiveDate)> {
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let today = Utc::now().with_timezone(&clinic.tz()).date_naive();
    Ok((clinic, today))
}

macro_rules! select_medicines {
    ($rest:literal) => {
        concat!(
            "SELECT m.id, m.clinic_id, m.name, m.generic_name, m.form, m.strength, m.dosage_guidance, m.unit, \
             m.unit_cost_cents, m.unit_price_cents, m.currency, m.prescription_only, m.low_stock_threshold, m.active, \
             CAST(COALESCE((SELECT SUM(b.on_hand) FROM stock_batches b WHERE b.medicine_id = m.id AND b.expiry_date > $2), 0) AS BIGINT) AS on_hand, \
             CAST(COALESCE((SELECT SUM(b.on_hand) FROM stock_batches b WHERE b.medicine_id = m.id AND b.expiry_date <= $2), 0) AS BIGINT) AS expired_on_hand \
             FROM medicines m ",
            $rest
        )
    };
}

/// The catalogue with stock (pharmacists and admins).
pub async fn catalogue(db: &Db, actor: &Actor, clinic_id: Uuid) -> Result<Vec<Medicine>> {
    require_pharmacy_of(actor, clinic_id)?;
    let (_, today) = clinic_today(db, clinic_id).await?;
    const SQL: &str =
        select_medicines!("WHERE m.clinic_id = $1 ORDER BY m.active DESC, m.name, m.strength");
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Medicine>(SQL)
        .bind(clinic_id)
        .bind(today)
        .fetch_all(pool)
        .await)?)
}

/// One medicine, for its clinic's pharmacy (else not found).
pub async fn medicine(db: &Db, actor: &Actor, id: Uuid) -> Result<Medicine> {
    const CLINIC: &str = "SELECT clinic_id FROM medicines WHERE id = $1";
    let clinic_id: Uuid = on_db!(db, |pool| sqlx::query_scalar(CLINIC)
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("medicine"))?;
    if require_pharmacy_of(actor, clinic_id).is_err() {
        return Err(Error::not_found("medicine"));
    }
    let (_, today) = clinic_today(db, clinic_id).await?;
    const SQL: &str = select_medicines!("WHERE m.id = $1");
    on_db!(db, |pool| sqlx::query_as::<_, Medicine>(SQL)
        .bind(id)
        .bind(today)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("medicine"))
}

struct CheckedMedicine {
    name: String,
    generic_name: String,
    form: String,
    strength: String,
    dosage_guidance: String,
    unit: String,
    currency: String,
}

fn check_medicine(f: &MedicineForm) -> Result<CheckedMedicine> {
    let mut checks = Checks::new();
    let out = CheckedMedicine {
        name: checks.line("name", &f.name, 2, 200),
        generic_name: checks.line("generic_name", &f.generic_name, 0, 200),
        form: checks.line("form", &f.form, 2, 60),
        strength: checks.line("strength", &f.strength, 0, 60),
        dosage_guidance: checks.text("dosage_guidance", &f.dosage_guidance, 0, 2000),
        unit: checks.line("unit", &f.unit, 1, 40),
        currency: checks.currency("currency", f.currency.as_deref().unwrap_or("EUR")),
    };
    for (field, v, max) in [
        ("unit_cost_cents", f.unit_cost_cents, 100_000_000),
        ("unit_price_cents", f.unit_price_cents, 100_000_000),
        ("low_stock_threshold", f.low_stock_threshold, 1_000_000),
    ] {
        if !(0..=max).contains(&v) {
            checks.fail(field, format!("must be between 0 and {max}"));
        }
    }
    checks.finish()?;
    Ok(out)
}

/// Adds a medicine to the catalogue (pharmacists and admins), audited.
pub async fn add_medicine(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    f: MedicineForm,
) -> Result<Medicine> {
    require_pharmacy_of(actor, clinic_id)?;
    clinic_today(db, clinic_id).await?;
    let m = check_medicine(&f)?;
    let id = Uuid::now_v7();
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO medicines (id, clinic_id, name, generic_name, form, strength, dosage_guidance, unit, \
        unit_cost_cents, unit_price_cents, currency, prescription_only, low_stock_threshold, active, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)";
    crate::exec_tx!(
        &mut tx,
        SQL,
        id,
        clinic_id,
        &m.name,
        &m.generic_name,
        &m.form,
        &m.strength,
        &m.dosage_guidance,
        &m.unit,
        f.unit_cost_cents,
        f.unit_price_cents,
        &m.currency,
        f.prescription_only,
        f.low_stock_threshold,
        f.active,
        now
    )
    .map_err(|e| {
        Error::from(e).on_unique(
            "medicines_name_key",
            Code::Conflict,
            "The catalogue already has this medicine in this form and strength.",
        )
    })?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "medicine.added",
            subject: format!("medicine:{id}"),
            clinic_id: Some(clinic_id),
            details: json!({"name": m.name, "strength": m.strength, "prescription_only": f.prescription_only}),
        },
    )
    .await?;
    tx.commit().await?;
    medicine(db, actor, id).await
}

/// Changes a catalogue entry (prices, threshold, retiring it), audited.
pub async fn update_medicine(
    db: &Db,
    actor: &Actor,
    id: Uuid,
    f: MedicineForm,
) -> Result<Medicine> {
    let current = medicine(db, actor, id).await?;
    let m = check_medicine(&f)?;
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE medicines SET name = $2, generic_name = $3, form = $4, strength = $5, dosage_guidance = $6, unit = $7, \
        unit_cost_cents = $8, unit_price_cents = $9, currency = $10, prescription_only = $11, low_stock_threshold = $12, active = $13, \
        updated_at = $14 WHERE id = $1";
    crate::exec_tx!(
        &mut tx,
        SQL,
        id,
        &m.name,
        &m.generic_name,
        &m.form,
        &m.strength,
        &m.dosage_guidance,
        &m.unit,
        f.unit_cost_cents,
        f.unit_price_cents,
        &m.currency,
        f.prescription_only,
        f.low_stock_threshold,
        f.active,
        Utc::now()
    )
    .map_err(|e| {
        Error::from(e).on_unique(
            "medicines_name_key",
            Code::Conflict,
            "The catalogue already has this medicine in this form and strength.",
        )
    })?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "medicine.updated",
            subject: format!("medicine:{id}"),
            clinic_id: Some(current.clinic_id),
            details: json!({"unit_price_cents": f.unit_price_cents, "active": f.active,
                "before": {"unit_price_cents": current.unit_price_cents, "active": current.active}}),
        },
    )
    .await?;
    tx.commit().await?;
    medicine(db, actor, id).await
}

/// A medicine's batches, soonest expiry first.
pub async fn batches(db: &Db, actor: &Actor, medicine_id: Uuid) -> Result<Vec<Batch>> {
    medicine(db, actor, medicine_id).await?;
    const SQL: &str = "SELECT id, medicine_id, clinic_id, batch_number, expiry_date, location, on_hand FROM stock_batches \
        WHERE medicine_id = $1 ORDER BY expiry_date, batch_number";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Batch>(SQL)
        .bind(medicine_id)
        .fetch_all(pool)
        .await)?)
}

/// Writes one ledger row; the trigger moves the batch's stock with it, and the batch's
/// CHECK refuses a row that would take it below zero (`insufficient_stock`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn post(
    tx: &mut Tx,
    (clinic_id, medicine_id, batch_id): (Uuid, Uuid, Uuid),
    kind: Movement,
    quantity: i64,
    reason: &str,
    dispensing_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<()> {
    const SQL: &str = "INSERT INTO stock_ledger (id, clinic_id, medicine_id, batch_id, kind, quantity, reason, dispensing_id, actor_id, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    crate::exec_tx!(
        tx,
        SQL,
        Uuid::now_v7(),
        clinic_id,
        medicine_id,
        batch_id,
        kind.as_str(),
        quantity,
        reason,
        dispensing_id,
        actor_id,
        now
    )
    .map_err(|e| {
        if e.to_string().contains("on_hand") {
            Error::new(Code::InsufficientStock, "Not that much in stock.")
        } else {
            Error::from(e)
        }
    })?;
    Ok(())
}

/// Serialises stock changes of one medicine: a row lock on PostgreSQL (SQLite's write
/// lock is already held by the transaction).
pub(crate) async fn lock_medicine(
    tx: &mut Tx,
    medicine_id: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    crate::exec_tx!(
        tx,
        "UPDATE medicines SET updated_at = $2 WHERE id = $1",
        medicine_id,
        now
    )?;
    Ok(())
}

/// Receives a delivery into a batch (a new batch, or more of the same batch number and
/// expiry). Pharmacists only; an already expired batch is refused.
pub async fn receive(db: &Db, actor: &Actor, medicine_id: Uuid, d: Delivery) -> Result<Batch> {
    let m = medicine(db, actor, medicine_id).await?;
    require_pharmacist_of(actor, m.clinic_id)?;
    let (_, today) = clinic_today(db, m.clinic_id).await?;
    let mut checks = Checks::new();
    let number = checks.line("batch_number", &d.batch_number, 1, 60);
    let location = checks.line("location", &d.location, 0, 120);
    crate::domain::validate::check_date(&mut checks, "expiry_date", d.expiry_date);
    if d.expiry_date <= today {
        checks.fail("expiry_date", "the batch has already expired");
    }
    if !(1..=1_000_000).contains(&d.quantity) {
        checks.fail("quantity", "must be between 1 and 1000000");
    }
    checks.finish()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    lock_medicine(&mut tx, medicine_id, now).await?;
    const FIND: &str =
        "SELECT id, expiry_date FROM stock_batches WHERE medicine_id = $1 AND batch_number = $2";
    let found: Option<(Uuid, NaiveDate)> = on_tx!(&mut tx, |conn| sqlx::query_as(FIND)
        .bind(medicine_id)
        .bind(&number)
        .fetch_optional(&mut *conn)
        .await)?;
    let batch_id = match found {
        Some((id, expiry)) if expiry == d.expiry_date => id,
        Some(_) => {
            return Err(Error::validation(vec![crate::error::FieldError {
                field: "expiry_date".into(),
                message: "this batch number is on the shelf with another expiry date".into(),
            }]));
        }
        None => {
            let id = Uuid::now_v7();
            const NEW: &str = "INSERT INTO stock_batches (id, medicine_id, clinic_id, batch_number, expiry_date, location, on_hand, created_at) \
                VALUES ($1, $2, $3, $4, $5, $6, 0, $7)";
            crate::exec_tx!(
                &mut tx,
                NEW,
                id,
                medicine_id,
                m.clinic_id,
                &number,
                d.expiry_date,
                &location,
                now
            )?;
            id
        }
    };
    let actor_id = actor.user_id();
    post(
        &mut tx,
        (m.clinic_id, medicine_id, batch_id),
        Movement::Received,
        d.quantity,
        "",
        None,
        actor_id,
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "stock.received",
            subject: format!("batch:{batch_id}"),
            clinic_id: Some(m.clinic_id),
            details: json!({"medicine": medicine_id, "batch": number, "quantity": d.quantity, "expiry": d.expiry_date}),
        },
    )
    .await?;
    tx.commit().await?;
    batch(db, batch_id).await
}

async fn batch(db: &Db, id: Uuid) -> Result<Batch> {
    const SQL: &str = "SELECT id, medicine_id, clinic_id, batch_number, expiry_date, location, on_hand FROM stock_batches WHERE id = $1";
    on_db!(db, |pool| sqlx::query_as::<_, Batch>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("batch"))
}

/// Corrects a batch: a count (`adjusted`, signed, with a reason), a write-off of expired
/// units (`expired`), or units brought back (`returned`). Pharmacists only, audited.
pub async fn adjust(db: &Db, actor: &Actor, batch_id: Uuid, a: Adjustment) -> Result<Batch> {
    let b = batch(db, batch_id).await?;
    if require_pharmacist_of(actor, b.clinic_id).is_err() {
        return Err(Error::not_found("batch"));
    }
    let mut checks = Checks::new();
    let reason = checks.text("reason", &a.reason, 0, 500);
    let signed = match a.kind {
        Movement::Adjusted => {
            if reason.is_empty() {
                checks.fail("reason", "say why the count changed");
            }
            a.quantity
        }
        Movement::Expired => -a.quantity,
        Movement::Returned => a.quantity,
        _ => {
            checks.fail("kind", "must be adjusted, expired or returned");
            a.quantity
        }
    };
    if a.quantity == 0 || a.quantity.abs() > 1_000_000 {
        checks.fail("quantity", "must not be 0, and at most 1000000 either way");
    }
    if a.kind != Movement::Adjusted && a.quantity < 0 {
        checks.fail("quantity", "give the number of units, positive");
    }
    checks.finish()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    lock_medicine(&mut tx, b.medicine_id, now).await?;
    post(
        &mut tx,
        (b.clinic_id, b.medicine_id, b.id),
        a.kind,
        signed,
        &reason,
        None,
        actor.user_id(),
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "stock.adjusted",
            subject: format!("batch:{batch_id}"),
            clinic_id: Some(b.clinic_id),
            details: json!({"kind": a.kind.as_str(), "quantity": signed, "reason": reason}),
        },
    )
    .await?;
    tx.commit().await?;
    batch(db, batch_id).await
}

/// The clinic's stock movements, newest first (pharmacists and admins).
pub async fn ledger(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    medicine_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<LedgerEntry>> {
    require_pharmacy_of(actor, clinic_id)?;
    const SQL: &str = "SELECT l.id, l.medicine_id, m.name AS medicine, l.batch_id, b.batch_number, l.kind, l.quantity, l.reason, \
        l.dispensing_id, l.created_at FROM stock_ledger l JOIN medicines m ON m.id = l.medicine_id JOIN stock_batches b ON b.id = l.batch_id \
        WHERE l.clinic_id = $1 AND ($2 IS NULL OR l.medicine_id = $2) ORDER BY l.created_at DESC, l.id DESC LIMIT $3";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, LedgerEntry>(SQL)
        .bind(clinic_id)
        .bind(medicine_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(pool)
        .await)?)
}
