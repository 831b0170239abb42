//! Lab orders and their results. A doctor orders tests on a visit record, from the bundled
//! catalogue of common panels (LOINC codes, units and adult reference ranges,
//! `lab_tests.json`) or as a custom test. An order moves ordered → collected → resulted →
//! reviewed, each step once and in that order. Results are structured values (value, unit,
//! reference range; the abnormal flag is computed, never entered) or text. An abnormal
//! value is flagged to the ordering doctor when it is entered; the patient is told when the
//! doctor has reviewed the results, and only then reads them.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::care::access;
use crate::domain::clinical::files::{self, FileMeta};
use crate::domain::clinical::{audit_read, records, require_clinic_doctor};
use crate::domain::validate::Checks;
use crate::error::{Code, Error, Result};
use crate::notify::messages::{self, Kind};
use crate::notify::outbox;
use crate::on_db;

/// One measured quantity of a test, with its unit and adult reference range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Analyte {
    /// LOINC code.
    pub code: String,
    pub name: String,
    pub unit: String,
    #[serde(default)]
    pub low: Option<f64>,
    #[serde(default)]
    pub high: Option<f64>,
}

/// A test or panel a doctor can order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LabTest {
    /// LOINC code of the test or panel.
    pub code: String,
    pub name: String,
    pub analytes: Vec<Analyte>,
}

static CATALOGUE: LazyLock<Result<Vec<LabTest>, String>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("lab_tests.json")).map_err(|e| e.to_string())
});

/// The bundled catalogue.
pub fn catalogue() -> Result<&'static [LabTest]> {
    CATALOGUE
        .as_deref()
        .map_err(|e| Error::internal(format!("lab_tests.json: {e}")))
}

fn test(code: &str) -> Result<Option<&'static LabTest>> {
    Ok(catalogue()?.iter().find(|t| t.code == code))
}

crate::text_enum! {
    /// Where an order stands.
    pub enum OrderStatus {
        Ordered = "ordered",
        Collected = "collected",
        Resulted = "resulted",
        Reviewed = "reviewed",
    }
}

crate::text_enum! {
    /// A value against its reference range.
    pub enum Flag {
        Normal = "normal",
        Low = "low",
        High = "high",
        /// Text, or no range to compare with.
        Unflagged = "unflagged",
    }
}

impl Flag {
    /// The flag of `value` against `[low, high]` (either end may be open).
    pub fn of(value: Option<f64>, low: Option<f64>, high: Option<f64>) -> Self {
        match value {
            None => Self::Unflagged,
            Some(_) if low.is_none() && high.is_none() => Self::Unflagged,
            Some(v) if low.is_some_and(|l| v < l) => Self::Low,
            Some(v) if high.is_some_and(|h| v > h) => Self::High,
            Some(_) => Self::Normal,
        }
    }

    pub fn abnormal(self) -> bool {
        matches!(self, Self::Low | Self::High)
    }
}

/// A test to order: a catalogue code, or a custom test by name.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    /// A code from `GET /lab-tests`.
    #[schema(min_length = 1, max_length = 20, pattern = "^[0-9A-Za-z-]+$", nullable)]
    pub code: Option<String>,
    /// A custom test's name (when no catalogue code is given).
    #[schema(schema_with = crate::domain::validate::schema::clinical_item, nullable)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    /// 1 to 20 tests.
    #[schema(min_items = 1, max_items = 20)]
    pub tests: Vec<OrderItem>,
}

/// One result value as entered.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultItem {
    /// The analyte's code (a catalogue analyte of the ordered test fills name, unit and
    /// range), or any code for a custom value.
    #[schema(min_length = 1, max_length = 20, pattern = "^[0-9A-Za-z-]+$")]
    pub code: String,
    #[schema(schema_with = crate::domain::validate::schema::clinical_item, nullable)]
    pub name: Option<String>,
    /// A numeric value (give this or `text`).
    #[schema(nullable, minimum = -1000000000, maximum = 1000000000)]
    pub value: Option<f64>,
    /// A textual result, e.g. `negative`.
    #[schema(schema_with = crate::domain::validate::schema::clinical_item, nullable)]
    pub text: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 20,
        pattern = "^[^\\s\\x00-\\x1F]+$",
        nullable
    )]
    pub unit: Option<String>,
    #[schema(nullable, minimum = -1000000000, maximum = 1000000000)]
    pub low: Option<f64>,
    #[schema(nullable, minimum = -1000000000, maximum = 1000000000)]
    pub high: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultsBody {
    /// 1 to 50 values.
    #[schema(min_items = 1, max_items = 50)]
    pub values: Vec<ResultItem>,
}

/// A stored result value.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct LabValue {
    pub id: Uuid,
    #[serde(skip)]
    pub order_id: Uuid,
    pub code: String,
    pub name: String,
    pub value: Option<f64>,
    pub value_text: Option<String>,
    pub unit: String,
    pub ref_low: Option<f64>,
    pub ref_high: Option<f64>,
    pub flag: Flag,
    pub created_at: DateTime<Utc>,
}

/// A lab order and, once the reader may see them, its results.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct LabOrder {
    pub id: Uuid,
    pub record_id: Uuid,
    pub patient_id: Uuid,
    pub clinic_id: Uuid,
    pub doctor_id: Uuid,
    pub test_code: String,
    pub test_name: String,
    pub status: OrderStatus,
    pub collected_at: Option<DateTime<Utc>>,
    pub resulted_at: Option<DateTime<Utc>>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Whether a result is outside its reference range.
    #[sqlx(skip)]
    pub abnormal: bool,
    #[sqlx(skip)]
    pub results: Vec<LabValue>,
    /// Reports and scans (a patient sees them once the results are reviewed).
    #[sqlx(skip)]
    pub files: Vec<FileMeta>,
}

macro_rules! select_orders {
    ($tail:literal) => {
        concat!(
            "SELECT id, record_id, patient_id, clinic_id, doctor_id, test_code, test_name, status, collected_at, resulted_at, \
             reviewed_at, created_at FROM lab_orders WHERE deleted_at IS NULL ",
            $tail
        )
    };
}

/// A doctor treating the patient at the record's clinic orders tests on it.
pub async fn order(
    db: &Db,
    actor: &Actor,
    record_id: Uuid,
    body: &OrderBody,
) -> Result<Vec<LabOrder>> {
    let record = records::reference(db, record_id).await?;
    let p = actor.principal()?;
    let doctor =
        require_clinic_doctor(db, actor, record.patient_id, record.clinic_id, "lab.order").await?;
    let mut checks = Checks::new();
    if body.tests.is_empty() || body.tests.len() > 20 {
        checks.fail("tests", "1 to 20 tests");
    }
    let mut tests = Vec::new();
    for (i, item) in body.tests.iter().enumerate() {
        match (&item.code, &item.name) {
            (Some(code), _) => match test(code.trim())? {
                Some(t) => tests.push((t.code.clone(), t.name.clone())),
                None => checks.fail(
                    &format!("tests[{i}].code"),
                    format!("{code:?} is not in the lab catalogue; order it by name"),
                ),
            },
            (None, Some(name)) => {
                let name = checks.line(&format!("tests[{i}].name"), name, 1, 200);
                tests.push(("custom".to_owned(), name));
            }
            (None, None) => checks.fail(&format!("tests[{i}]"), "give a code or a name"),
        }
    }
    checks.finish()?;
    let now = Utc::now();
    let mut ids = Vec::new();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO lab_orders (id, record_id, patient_id, clinic_id, doctor_id, test_code, test_name, status, \
        ordered_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'ordered', $8, $9, $9)";
    for (code, name) in &tests {
        let id = Uuid::now_v7();
        crate::exec_tx!(
            &mut tx,
            SQL,
            id,
            record_id,
            record.patient_id,
            record.clinic_id,
            doctor,
            code.as_str(),
            name.as_str(),
            p.user_id,
            now
        )?;
        ids.push(id);
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "lab.ordered",
            subject: format!("record:{record_id}"),
            clinic_id: Some(record.clinic_id),
            details: json!({"patient": record.patient_id, "orders": ids}),
        },
    )
    .await?;
    tx.commit().await?;
    let files = files::of_patient(db, record.patient_id).await?;
    let mut orders = of_patient_unchecked(db, record.patient_id, false, &files).await?;
    orders.retain(|o| ids.contains(&o.id));
    Ok(orders)
}

async fn load_order(db: &Db, id: Uuid) -> Result<LabOrder> {
    on_db!(db, |pool| sqlx::query_as::<_, LabOrder>(select_orders!(
        "AND id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await)?
    .ok_or_else(|| Error::not_found("lab order"))
}

fn wrong_step(status: OrderStatus, step: &str) -> Error {
    Error::new(
        Code::InvalidTransition,
        format!(
            "This order is {}; it cannot be {step} now.",
            status.as_str()
        ),
    )
}

/// The sample was taken.
pub async fn collected(db: &Db, actor: &Actor, id: Uuid) -> Result<LabOrder> {
    let order = load_order(db, id).await?;
    require_clinic_doctor(db, actor, order.patient_id, order.clinic_id, "lab.collect").await?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE lab_orders SET status = 'collected', collected_at = $2, updated_at = $2 \
        WHERE id = $1 AND status = 'ordered' AND deleted_at IS NULL";
    if crate::exec_tx!(&mut tx, SQL, id, now)? == 0 {
        return Err(wrong_step(order.status, "marked collected"));
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "lab.collected",
            subject: format!("lab_order:{id}"),
            clinic_id: Some(order.clinic_id),
            details: json!({"patient": order.patient_id}),
        },
    )
    .await?;
    tx.commit().await?;
    one(db, id).await
}

/// Results entered (once; the order becomes `resulted`). Catalogue analytes take their
/// name, unit and range from the catalogue; flags are computed. Abnormal values are
/// flagged to the ordering doctor.
pub async fn enter_results(
    db: &Db,
    actor: &Actor,
    id: Uuid,
    body: &ResultsBody,
) -> Result<LabOrder> {
    let order = load_order(db, id).await?;
    require_clinic_doctor(db, actor, order.patient_id, order.clinic_id, "lab.result").await?;
    let p = actor.principal()?;
    if !matches!(order.status, OrderStatus::Ordered | OrderStatus::Collected) {
        return Err(wrong_step(order.status, "given results"));
    }
    let analytes: HashMap<&str, &Analyte> = test(&order.test_code)?
        .map(|t| t.analytes.iter().map(|a| (a.code.as_str(), a)).collect())
        .unwrap_or_default();
    let mut checks = Checks::new();
    if body.values.is_empty() || body.values.len() > 50 {
        checks.fail("values", "1 to 50 values");
    }
    let mut values = Vec::new();
    for (i, v) in body.values.iter().enumerate() {
        let field = |name: &str| format!("values[{i}].{name}");
        let known = analytes.get(v.code.trim()).copied();
        let name = match (&v.name, known) {
            (Some(n), _) => checks.line(&field("name"), n, 1, 200),
            (None, Some(a)) => a.name.clone(),
            (None, None) => {
                checks.fail(&field("name"), "a value outside the catalogue needs a name");
                String::new()
            }
        };
        let text = v
            .text
            .as_deref()
            .map(|t| checks.line(&field("text"), t, 1, 200));
        if v.value.is_none() && text.is_none() {
            checks.fail(&field("value"), "give a value or a text");
        }
        for (f, x) in [("value", v.value), ("low", v.low), ("high", v.high)] {
            if x.is_some_and(|x| !x.is_finite() || x.abs() > 1e9) {
                checks.fail(&field(f), "must be a number within ±1e9");
            }
        }
        let unit = match (&v.unit, known) {
            (Some(u), _) => checks.line(&field("unit"), u, 1, 20),
            (None, Some(a)) => a.unit.clone(),
            (None, None) => String::new(),
        };
        let (low, high) = match (v.low, v.high, known) {
            (None, None, Some(a)) => (a.low, a.high),
            (low, high, _) => (low, high),
        };
        if let (Some(l), Some(h)) = (low, high)
            && l > h
        {
            checks.fail(&field("low"), "must not be above high");
        }
        let flag = Flag::of(v.value, low, high);
        values.push((
            v.code.trim().to_owned(),
            name,
            v.value,
            text,
            unit,
            low,
            high,
            flag,
        ));
    }
    checks.finish()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const STEP: &str = "UPDATE lab_orders SET status = 'resulted', collected_at = COALESCE(collected_at, $2), resulted_at = $2, updated_at = $2 \
        WHERE id = $1 AND status IN ('ordered', 'collected') AND deleted_at IS NULL";
    if crate::exec_tx!(&mut tx, STEP, id, now)? == 0 {
        return Err(wrong_step(order.status, "given results"));
    }
    const SQL: &str = "INSERT INTO lab_results (id, order_id, patient_id, code, name, value, value_text, unit, ref_low, ref_high, \
        flag, entered_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
    for (code, name, value, text, unit, low, high, flag) in &values {
        crate::exec_tx!(
            &mut tx,
            SQL,
            Uuid::now_v7(),
            id,
            order.patient_id,
            code.as_str(),
            name.as_str(),
            *value,
            text.as_deref(),
            unit.as_str(),
            *low,
            *high,
            *flag,
            p.user_id,
            now
        )?;
    }
    let abnormal: Vec<&str> = values
        .iter()
        .filter(|v| v.7.abnormal())
        .map(|v| v.1.as_str())
        .collect();
    if !abnormal.is_empty() {
        flag_to_doctor(&mut tx, db, &order, &abnormal, now).await?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "lab.resulted",
            subject: format!("lab_order:{id}"),
            clinic_id: Some(order.clinic_id),
            details: json!({"patient": order.patient_id, "values": values.len(), "abnormal": abnormal.len()}),
        },
    )
    .await?;
    tx.commit().await?;
    one(db, id).await
}

/// Tells the ordering doctor (on their account's channel) that results are abnormal.
async fn flag_to_doctor(
    tx: &mut crate::db::Tx,
    db: &Db,
    order: &LabOrder,
    abnormal: &[&str],
    now: DateTime<Utc>,
) -> Result<()> {
    const SQL: &str = "SELECT user_id FROM doctors WHERE id = $1";
    let user: Option<Uuid> = crate::on_tx!(tx, |conn| sqlx::query_scalar(SQL)
        .bind(order.doctor_id)
        .fetch_one(&mut *conn)
        .await)?;
    let Some(user) = user else {
        return Ok(());
    };
    let doctor = outbox::contact(tx, user).await?;
    let patient = outbox::contact(tx, order.patient_id).await?;
    let news = messages::LabNews {
        name: &doctor.display_name,
        patient: &patient.display_name,
        test: &order.test_name,
        abnormal: abnormal.join(", "),
    };
    let message: outbox::Message = Kind::LabAbnormal(&news).render(doctor.language)?.into();
    outbox::enqueue(
        tx,
        db.policy(),
        "lab_abnormal",
        &format!("lab_order:{}", order.id),
        &doctor,
        &message,
        now,
    )
    .await
}

/// A doctor treating the patient at the ordering clinic reviews the results; the patient
/// is told they can read them.
pub async fn review(db: &Db, actor: &Actor, id: Uuid) -> Result<LabOrder> {
    let order = load_order(db, id).await?;
    require_clinic_doctor(db, actor, order.patient_id, order.clinic_id, "lab.review").await?;
    let p = actor.principal()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE lab_orders SET status = 'reviewed', reviewed_at = $2, reviewed_by = $3, updated_at = $2 \
        WHERE id = $1 AND status = 'resulted' AND deleted_at IS NULL";
    if crate::exec_tx!(&mut tx, SQL, id, now, p.user_id)? == 0 {
        return Err(wrong_step(order.status, "reviewed"));
    }
    let patient = outbox::contact(&mut tx, order.patient_id).await?;
    let news = messages::LabNews {
        name: &patient.display_name,
        patient: &patient.display_name,
        test: &order.test_name,
        abnormal: String::new(),
    };
    let message: outbox::Message = Kind::LabResultsReady(&news)
        .render(patient.language)?
        .into();
    outbox::enqueue(
        &mut tx,
        db.policy(),
        "lab_results_ready",
        &format!("lab_order:{id}"),
        &patient,
        &message,
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "lab.reviewed",
            subject: format!("lab_order:{id}"),
            clinic_id: Some(order.clinic_id),
            details: json!({"patient": order.patient_id}),
        },
    )
    .await?;
    tx.commit().await?;
    one(db, id).await
}

/// One order with its results (no access check: for the steps above, which checked).
async fn one(db: &Db, id: Uuid) -> Result<LabOrder> {
    let order = load_order(db, id).await?;
    let files = files::of_patient(db, order.patient_id).await?;
    let mut orders = with_results(db, order.patient_id, vec![order], false, &files).await?;
    orders.pop().ok_or_else(|| Error::not_found("lab order"))
}

async fn of_patient_unchecked(
    db: &Db,
    patient_id: Uuid,
    own: bool,
    files: &[FileMeta],
) -> Result<Vec<LabOrder>> {
    let orders = on_db!(db, |pool| sqlx::query_as::<_, LabOrder>(select_orders!(
        "AND patient_id = $1 ORDER BY created_at DESC, id DESC LIMIT 2000"
    ))
    .bind(patient_id)
    .fetch_all(pool)
    .await)?;
    with_results(db, patient_id, orders, own, files).await
}

/// Orders with their results; a patient (`own`) sees results once reviewed.
async fn with_results(
    db: &Db,
    patient_id: Uuid,
    mut orders: Vec<LabOrder>,
    own: bool,
    files: &[FileMeta],
) -> Result<Vec<LabOrder>> {
    const SQL: &str = "SELECT id, order_id, code, name, value, value_text, unit, ref_low, ref_high, flag, created_at \
        FROM lab_results WHERE patient_id = $1 AND deleted_at IS NULL ORDER BY created_at, id";
    let values = on_db!(db, |pool| sqlx::query_as::<_, LabValue>(SQL)
        .bind(patient_id)
        .fetch_all(pool)
        .await)?;
    let mut by_order: HashMap<Uuid, Vec<LabValue>> = HashMap::new();
    for v in values {
        by_order.entry(v.order_id).or_default().push(v);
    }
    let mut files_by: HashMap<Uuid, Vec<FileMeta>> = HashMap::new();
    for f in files {
        if let Some(order) = f.lab_order_id {
            files_by.entry(order).or_default().push(f.clone());
        }
    }
    for o in &mut orders {
        if own && o.status != OrderStatus::Reviewed {
            continue;
        }
        o.results = by_order.remove(&o.id).unwrap_or_default();
        o.files = files_by.remove(&o.id).unwrap_or_default();
        o.abnormal = o.results.iter().any(|v| v.flag.abnormal());
    }
    Ok(orders)
}

/// A patient's lab orders the caller may read, newest first (audited): the patient sees
/// results once reviewed; doctors as their access covers.
pub async fn list(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<Vec<LabOrder>> {
    let scope = access::read_scope(db, actor, patient_id, "lab.read").await?;
    let files = files::of_patient(db, patient_id).await?;
    let orders = list_in(db, actor, patient_id, &scope, &files).await?;
    audit_read(
        db,
        actor,
        "lab.read",
        patient_id,
        json!({"orders": orders.len()}),
    )
    .await?;
    Ok(orders)
}

/// The orders `scope` covers (the caller read it), with the patient's `files`.
pub(crate) async fn list_in(
    db: &Db,
    actor: &Actor,
    patient_id: Uuid,
    scope: &access::Scope,
    files: &[FileMeta],
) -> Result<Vec<LabOrder>> {
    let p = actor.principal()?;
    let mut orders = of_patient_unchecked(db, patient_id, p.user_id == patient_id, files).await?;
    orders.retain(|o| scope.covers(o.clinic_id));
    Ok(orders)
}

/// One order, for whoever may read the patient's labs at its clinic (audited).
pub async fn get(db: &Db, actor: &Actor, id: Uuid) -> Result<LabOrder> {
    let p = actor.principal()?;
    let order = load_order(db, id).await?;
    access::require_read(db, actor, order.patient_id, order.clinic_id, "lab.read").await?;
    let own = p.user_id == order.patient_id;
    let patient_id = order.patient_id;
    let files = files::of_patient(db, patient_id).await?;
    let mut orders = with_results(db, patient_id, vec![order], own, &files).await?;
    let order = orders.pop().ok_or_else(|| Error::not_found("lab order"))?;
    audit_read(db, actor, "lab.read", patient_id, json!({"orders": [id]})).await?;
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_the_reference_range_and_the_catalogue_reads() {
        assert_eq!(Flag::of(Some(5.0), Some(4.0), Some(5.6)), Flag::Normal);
        assert_eq!(Flag::of(Some(7.1), Some(4.0), Some(5.6)), Flag::High);
        assert_eq!(Flag::of(Some(3.9), Some(4.0), None), Flag::Low);
        assert_eq!(Flag::of(Some(250.0), None, Some(200.0)), Flag::High);
        assert_eq!(Flag::of(Some(1.0), None, None), Flag::Unflagged);
        assert_eq!(Flag::of(None, Some(1.0), Some(2.0)), Flag::Unflagged);
        let tests = catalogue().unwrap();
        assert!(tests.len() >= 10);
        let a1c = tests.iter().find(|t| t.code == "4548-4").unwrap();
        assert_eq!(a1c.analytes[0].unit, "%");
        for t in tests {
            for a in &t.analytes {
                assert!(a.low.is_some() || a.high.is_some(), "{}", a.code);
            }
        }
    }
}
