//! Dispensing: a signed prescription of the clinic, whole or in part, up to what it and
//! its refills allow; or an over-the-counter sale of a medicine that needs none. Units are
//! taken first-expiry-first-out across the batches that have not expired; an expired
//! batch is never dispensed. Changes to one medicine's stock are serialised, and the
//! ledger's CHECK is the last word: stock never goes below zero.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::clinics;
use crate::domain::pharmacy::{self, Movement};
use crate::domain::validate::Checks;
use crate::error::{Code, Error, Result};
use crate::{on_db, on_tx};

/// What to dispense.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispenseForm {
    pub medicine_id: Uuid,
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = 1, maximum = 100000)]
    pub quantity: i64,
    /// The prescription dispensed against; absent for an over-the-counter sale.
    pub prescription_id: Option<Uuid>,
}

/// Units taken from one batch.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Taken {
    pub batch_id: Uuid,
    pub batch_number: String,
    pub expiry_date: NaiveDate,
    pub quantity: i64,
}

/// A dispensing done.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Dispensing {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub medicine_id: Uuid,
    pub prescription_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    pub quantity: i64,
    pub batches: Vec<Taken>,
    /// What the prescription still allows after this (absent for a sale).
    pub remaining: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A signed prescription of the clinic as the pharmacy sees it: what it allows, what was
/// given, what remains.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Dispensable {
    pub prescription_id: Uuid,
    pub patient_id: Uuid,
    pub medicine: String,
    pub dose: String,
    pub quantity: i64,
    pub refills: i64,
    pub instructions: String,
    pub signed_at: Option<DateTime<Utc>>,
    pub doctor_name: String,
    /// `quantity × (1 + refills)`.
    pub allowed: i64,
    pub dispensed: i64,
    pub remaining: i64,
}

macro_rules! select_dispensable {
    ($rest:literal) => {
        concat!(
            "SELECT p.id AS prescription_id, p.patient_id, p.medicine, p.dose, p.quantity, p.refills, p.instructions, r.signed_at, \
             d.display_name AS doctor_name, p.quantity * (1 + p.refills) AS allowed, \
             CAST(COALESCE((SELECT SUM(x.quantity) FROM dispensings x WHERE x.prescription_id = p.id), 0) AS BIGINT) AS dispensed, \
             p.quantity * (1 + p.refills) - CAST(COALESCE((SELECT SUM(x.quantity) FROM dispensings x WHERE x.prescription_id = p.id), 0) AS BIGINT) AS remaining \
             FROM prescriptions p JOIN visit_records r ON r.id = p.record_id JOIN doctors d ON d.id = r.doctor_id \
             WHERE p.deleted_at IS NULL AND r.deleted_at IS NULL AND r.status = 'signed' AND r.clinic_id = $1 ",
            $rest
        )
    };
}

/// A patient's signed prescriptions written at this clinic, for its pharmacists (the
/// prescription only, nothing else of the record; audited as a read).
pub async fn prescriptions_of(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    patient_id: Uuid,
) -> Result<Vec<Dispensable>> {
    pharmacy::require_pharmacist_of(actor, clinic_id)?;
    if !clinics::patients::knows_now(db, clinic_id, patient_id).await? {
        return Err(Error::not_found("patient"));
    }
    const SQL: &str =
        select_dispensable!("AND p.patient_id = $2 ORDER BY r.signed_at DESC, p.position");
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Dispensable>(SQL)
        .bind(clinic_id)
        .bind(patient_id)
        .fetch_all(pool)
        .await)?;
    let mut tx = db.begin().await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "prescription.read",
            subject: format!("patient:{patient_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"prescriptions": rows.len(), "for": "dispensing"}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(rows)
}

#[derive(sqlx::FromRow)]
struct Available {
    id: Uuid,
    batch_number: String,
    expiry_date: NaiveDate,
    on_hand: i64,
}

/// Dispenses (pharmacists of the clinic), audited; everything or nothing.
pub async fn dispense(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    f: DispenseForm,
) -> Result<Dispensing> {
    pharmacy::require_pharmacist_of(actor, clinic_id)?;
    let (_, today) = pharmacy::clinic_today(db, clinic_id).await?;
    let medicine = pharmacy::medicine(db, actor, f.medicine_id).await?;
    let mut checks = Checks::new();
    if medicine.clinic_id != clinic_id {
        checks.fail("medicine_id", "is not in this clinic's catalogue");
    }
    if !medicine.active {
        checks.fail("medicine_id", "is retired from the catalogue");
    }
    if !(1..=100_000).contains(&f.quantity) {
        checks.fail("quantity", "must be between 1 and 100000");
    }
    if medicine.prescription_only && f.prescription_id.is_none() {
        checks.fail(
            "prescription_id",
            "this medicine is dispensed only against a prescription",
        );
    }
    checks.finish()?;
    let now = Utc::now();
    let pharmacist = actor.principal()?.user_id;
    let mut tx = db.begin().await?;
    pharmacy::lock_medicine(&mut tx, medicine.id, now).await?;
    // Inside the lock: what the prescription still allows, then the batches.
    let (patient_id, remaining) = match f.prescription_id {
        Some(rx) => {
            const RX: &str = select_dispensable!("AND p.id = $2");
            let found: Option<Dispensable> = on_tx!(&mut tx, |conn| sqlx::query_as(RX)
                .bind(clinic_id)
                .bind(rx)
                .fetch_optional(&mut *conn)
                .await)?;
            let Some(found) = found else {
                return Err(Error::not_found("prescription"));
            };
            if found.remaining < f.quantity {
                return Err(Error::new(
                    Code::ExceedsPrescription,
                    format!(
                        "The prescription allows {} more (of {} with its refills).",
                        found.remaining.max(0),
                        found.allowed
                    ),
                ));
            }
            (Some(found.patient_id), Some(found.remaining - f.quantity))
        }
        None => (None, None),
    };
    const AVAILABLE: &str = "SELECT id, batch_number, expiry_date, on_hand FROM stock_batches \
        WHERE medicine_id = $1 AND on_hand > 0 AND expiry_date > $2 ORDER BY expiry_date, created_at, id";
    let available: Vec<Available> = on_tx!(&mut tx, |conn| sqlx::query_as(AVAILABLE)
        .bind(medicine.id)
        .bind(today)
        .fetch_all(&mut *conn)
        .await)?;
    let total: i64 = available.iter().map(|b| b.on_hand).sum();
    if total < f.quantity {
        return Err(Error::new(
            Code::InsufficientStock,
            format!(
                "Only {total} {} of {} in stock that has not expired.",
                medicine.unit, medicine.name
            ),
        ));
    }
    let id = Uuid::now_v7();
    const INSERT: &str = "INSERT INTO dispensings (id, clinic_id, medicine_id, prescription_id, patient_id, quantity, pharmacist_id, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    crate::exec_tx!(
        &mut tx,
        INSERT,
        id,
        clinic_id,
        medicine.id,
        f.prescription_id,
        patient_id,
        f.quantity,
        pharmacist,
        now
    )?;
    let mut left = f.quantity;
    let mut taken = Vec::new();
    for b in available {
        if left == 0 {
            break;
        }
        let n = left.min(b.on_hand);
        pharmacy::post(
            &mut tx,
            (clinic_id, medicine.id, b.id),
            Movement::Dispensed,
            -n,
            "",
            Some(id),
            Some(pharmacist),
            now,
        )
        .await?;
        left -= n;
        taken.push(Taken {
            batch_id: b.id,
            batch_number: b.batch_number,
            expiry_date: b.expiry_date,
            quantity: n,
        });
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: if f.prescription_id.is_some() {
                "medicine.dispensed"
            } else {
                "medicine.sold"
            },
            subject: format!("dispensing:{id}"),
            clinic_id: Some(clinic_id),
            details: json!({"medicine": medicine.id, "quantity": f.quantity, "prescription": f.prescription_id,
                "patient": patient_id, "batches": taken.len()}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Dispensing {
        id,
        clinic_id,
        medicine_id: medicine.id,
        prescription_id: f.prescription_id,
        patient_id,
        quantity: f.quantity,
        batches: taken,
        remaining,
        created_at: now,
    })
}

/// A patient the pharmacy may dispense to.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct RxPatient {
    pub patient_id: Uuid,
    pub name: String,
    pub date_of_birth: Option<NaiveDate>,
}

/// The clinic's pharmacists find, by name, the patients with a signed prescription written
/// at the clinic (nobody else), audited.
pub async fn find_patients(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    q: &str,
) -> Result<Vec<RxPatient>> {
    pharmacy::require_pharmacist_of(actor, clinic_id)?;
    let mut checks = Checks::new();
    let q = checks.line("q", q, 2, 100).to_lowercase();
    checks.finish_query()?;
    let pattern = format!(
        "%{}%",
        q.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    const SQL: &str = "SELECT u.id AS patient_id, u.display_name AS name, pp.date_of_birth FROM users u \
        LEFT JOIN patient_profiles pp ON pp.patient_id = u.id \
        WHERE u.erased_at IS NULL AND lower(u.display_name) LIKE $2 ESCAPE '\\' AND EXISTS (SELECT 1 FROM prescriptions p \
        JOIN visit_records r ON r.id = p.record_id WHERE p.patient_id = u.id AND r.clinic_id = $1 AND r.status = 'signed' \
        AND p.deleted_at IS NULL AND r.deleted_at IS NULL) ORDER BY u.display_name LIMIT 20";
    let found = on_db!(db, |pool| sqlx::query_as::<_, RxPatient>(SQL)
        .bind(clinic_id)
        .bind(&pattern)
        .fetch_all(pool)
        .await)?;
    let mut tx = db.begin().await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "patient.searched",
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"results": found.len(), "for": "dispensing"}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(found)
}
