//! Price lists: what a visit type costs at a clinic, for all its doctors or for one.

use std::collections::HashSet;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::clinics;
use crate::domain::validate::Checks;
use crate::error::{Error, Result};
use crate::{on_db, on_tx};

/// The most prices one clinic's list may hold.
pub const MAX_PRICES: usize = 500;

/// One line of a price list as a clinic admin sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceItem {
    /// Lower-case words joined by `_`, e.g. `first_visit`, `follow_up`, `teleconsultation`.
    #[schema(schema_with = crate::domain::validate::schema::visit_type)]
    pub visit_type: String,
    /// For one doctor of this clinic; absent for the clinic-wide price.
    #[serde(default)]
    pub doctor_id: Option<Uuid>,
    /// In minor units (cents).
    #[schema(minimum = 0, maximum = 100000000)]
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    pub amount_cents: i64,
    /// ISO 4217, e.g. `EUR`.
    #[schema(schema_with = crate::domain::validate::schema::currency)]
    pub currency: String,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Price {
    pub visit_type: String,
    pub doctor_id: Option<Uuid>,
    pub doctor_name: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
}

/// The clinic's price list: clinic-wide prices first, then per doctor.
pub async fn list(db: &Db, clinic_id: Uuid) -> Result<Vec<Price>> {
    clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    const SQL: &str = "SELECT p.visit_type, p.doctor_id, d.display_name AS doctor_name, p.amount_cents, p.currency \
        FROM prices p LEFT JOIN doctors d ON d.id = p.doctor_id WHERE p.clinic_id = $1 \
        ORDER BY p.doctor_id IS NOT NULL, d.display_name, p.visit_type";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Price>(SQL)
        .bind(clinic_id)
        .fetch_all(pool)
        .await)?)
}

fn check_items(items: &[PriceItem]) -> Result<Vec<(String, String)>> {
    let mut checks = Checks::new();
    if items.len() > MAX_PRICES {
        checks.fail("prices", format!("at most {MAX_PRICES} prices"));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let visit_type = item.visit_type.trim().to_owned();
        let valid = (2..=40).contains(&visit_type.len())
            && visit_type.split('_').all(|w| {
                !w.is_empty()
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        if !valid {
            checks.fail(
                &format!("prices[{i}].visit_type"),
                "2 to 40 lower-case letters or digits in words joined by _, e.g. follow_up",
            );
        }
        if !(0..=100_000_000).contains(&item.amount_cents) {
            checks.fail(
                &format!("prices[{i}].amount_cents"),
                "must be between 0 and 100000000",
            );
        }
        let currency = checks.currency(&format!("prices[{i}].currency"), &item.currency);
        if !seen.insert((item.doctor_id, visit_type.clone())) {
            checks.fail(
                &format!("prices[{i}]"),
                "this visit type is already priced for the same doctor",
            );
        }
        out.push((visit_type, currency));
    }
    checks.finish()?;
    Ok(out)
}

/// Replaces the clinic's price list as a whole (its admins). Doctors named must work at
/// this clinic.
pub async fn replace(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    items: Vec<PriceItem>,
) -> Result<Vec<Price>> {
    clinics::require_admin_of(actor, clinic_id)?;
    let checked = check_items(&items)?;
    clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const DOCTOR: &str =
        "SELECT COUNT(*) FROM doctors WHERE id = $1 AND clinic_id = $2 AND deleted_at IS NULL";
    let mut checks = Checks::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(doctor_id) = item.doctor_id {
            let (n,): (i64,) = on_tx!(&mut tx, |conn| sqlx::query_as(DOCTOR)
                .bind(doctor_id)
                .bind(clinic_id)
                .fetch_one(&mut *conn)
                .await)?;
            if n == 0 {
                checks.fail(
                    &format!("prices[{i}].doctor_id"),
                    "no such doctor at this clinic",
                );
            }
        }
    }
    checks.finish()?;
    const CLEAR: &str = "DELETE FROM prices WHERE clinic_id = $1";
    const INSERT: &str = "INSERT INTO prices (id, clinic_id, doctor_id, visit_type, amount_cents, currency, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";
    on_tx!(&mut tx, |conn| {
        sqlx::query(CLEAR)
            .bind(clinic_id)
            .execute(&mut *conn)
            .await?;
        for (item, (visit_type, currency)) in items.iter().zip(&checked) {
            sqlx::query(INSERT)
                .bind(Uuid::now_v7())
                .bind(clinic_id)
                .bind(item.doctor_id)
                .bind(visit_type)
                .bind(item.amount_cents)
                .bind(currency)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    })?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "prices.replaced",
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"prices": items.len()}),
        },
    )
    .await?;
    tx.commit().await?;
    list(db, clinic_id).await
}
