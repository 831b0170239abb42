//! What lab tests cost at a clinic: one price per test of the lab catalogue (by its code)
//! and one for tests ordered by name (`custom`). A visit's lab orders are billed at them.

use std::collections::HashSet;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::clinical::labs;
use crate::domain::clinics;
use crate::domain::validate::Checks;
use crate::error::{Error, Result};
use crate::{on_db, on_tx};

/// The most lab prices one clinic's list may hold.
pub const MAX_LAB_PRICES: usize = 500;

/// The code that prices tests ordered by name rather than from the catalogue.
pub const CUSTOM: &str = "custom";

/// One line of a lab price list as a clinic admin sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabPriceItem {
    /// A code from `GET /lab-tests`, or `custom` for tests ordered by name.
    #[schema(min_length = 1, max_length = 20, pattern = "^[0-9A-Za-z-]+$")]
    pub test_code: String,
    /// In minor units (cents).
    #[schema(minimum = 0, maximum = 100000000)]
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    pub amount_cents: i64,
    /// ISO 4217, e.g. `EUR`.
    #[schema(schema_with = crate::domain::validate::schema::currency)]
    pub currency: String,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct LabPrice {
    pub test_code: String,
    pub test_name: String,
    pub amount_cents: i64,
    pub currency: String,
}

/// The clinic's lab prices, by test name.
pub async fn list(db: &Db, clinic_id: Uuid) -> Result<Vec<LabPrice>> {
    clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    const SQL: &str = "SELECT test_code, test_name, amount_cents, currency FROM lab_prices WHERE clinic_id = $1 ORDER BY test_name";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, LabPrice>(SQL)
        .bind(clinic_id)
        .fetch_all(pool)
        .await)?)
}

/// The price of a test as ordered (its catalogue code, or `custom`).
pub async fn price_of(db: &Db, clinic_id: Uuid, test_code: &str) -> Result<Option<LabPrice>> {
    const SQL: &str = "SELECT test_code, test_name, amount_cents, currency FROM lab_prices WHERE clinic_id = $1 AND test_code = $2";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, LabPrice>(SQL)
        .bind(clinic_id)
        .bind(test_code)
        .fetch_optional(pool)
        .await)?)
}

/// Replaces the clinic's lab prices as a whole (its admins), audited.
pub async fn replace(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    items: Vec<LabPriceItem>,
) -> Result<Vec<LabPrice>> {
    clinics::require_admin_of(actor, clinic_id)?;
    clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let catalogue = labs::catalogue()?;
    let mut checks = Checks::new();
    if items.len() > MAX_LAB_PRICES {
        checks.fail("prices", format!("at most {} prices", MAX_LAB_PRICES));
    }
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let code = item.test_code.trim();
        let name = if code == CUSTOM {
            Some("Other tests (ordered by name)".to_owned())
        } else {
            catalogue
                .iter()
                .find(|t| t.code == code)
                .map(|t| t.name.clone())
        };
        let Some(name) = name else {
            checks.fail(
                &format!("prices[{i}].test_code"),
                "must be a code from GET /lab-tests or custom",
            );
            continue;
        };
        if !(0..=100_000_000).contains(&item.amount_cents) {
            checks.fail(
                &format!("prices[{i}].amount_cents"),
                "must be between 0 and 100000000",
            );
        }
        if !seen.insert(code.to_owned()) {
            checks.fail(
                &format!("prices[{i}].test_code"),
                "this test is already priced",
            );
        }
        let currency = checks.currency(&format!("prices[{i}].currency"), &item.currency);
        rows.push((code.to_owned(), name, item.amount_cents, currency));
    }
    checks.finish()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const CLEAR: &str = "DELETE FROM lab_prices WHERE clinic_id = $1";
    const INSERT: &str = "INSERT INTO lab_prices (id, clinic_id, test_code, test_name, amount_cents, currency, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";
    on_tx!(&mut tx, |conn| {
        sqlx::query(CLEAR)
            .bind(clinic_id)
            .execute(&mut *conn)
            .await?;
        for (code, name, cents, currency) in &rows {
            sqlx::query(INSERT)
                .bind(Uuid::now_v7())
                .bind(clinic_id)
                .bind(code)
                .bind(name)
                .bind(cents)
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
            action: "lab_prices.replaced",
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"prices": rows.len()}),
        },
    )
    .await?;
    tx.commit().await?;
    list(db, clinic_id).await
}
