//! Prescriptions, written on a visit record and signed with it: medicine, dose, route,
//! frequency, duration, quantity, refills and instructions. Structured (a pharmacy
//! dispenses from them), read under the record's access rule. A signed record's
//! prescriptions with a frequency become the patient's care-plan reminders
//! (`records::sign`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::domain::actor::Actor;
use crate::domain::care::access;
use crate::domain::clinical::audit_read;
use crate::domain::validate::Checks;
use crate::error::Result;
use crate::{on_db, on_tx};

crate::text_enum! {
    /// How a medicine is taken.
    pub enum Route {
        Oral = "oral",
        Topical = "topical",
        Inhaled = "inhaled",
        Injection = "injection",
        Sublingual = "sublingual",
        Rectal = "rectal",
        Nasal = "nasal",
        Eye = "eye",
        Ear = "ear",
        Other = "other",
    }
}

/// A prescription as the doctor writes it. Give `times_per_day` or `every_hours` for a
/// regular medicine (it becomes reminders once signed), neither for one taken as needed.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrescriptionBody {
    /// E.g. `amoxicillin`.
    #[schema(schema_with = crate::domain::validate::schema::clinical_item)]
    pub medicine: String,
    /// E.g. `500 mg`.
    #[schema(schema_with = crate::domain::validate::schema::short_line)]
    pub dose: String,
    pub route: Route,
    /// 1 to 12.
    #[serde(
        default,
        deserialize_with = "crate::domain::validate::optional_whole_number"
    )]
    #[schema(minimum = 1, maximum = 12, nullable)]
    pub times_per_day: Option<i64>,
    /// 1 to 168.
    #[serde(
        default,
        deserialize_with = "crate::domain::validate::optional_whole_number"
    )]
    #[schema(minimum = 1, maximum = 168, nullable)]
    pub every_hours: Option<i64>,
    /// 1 to 365; absent: until the doctor says otherwise.
    #[serde(
        default,
        deserialize_with = "crate::domain::validate::optional_whole_number"
    )]
    #[schema(minimum = 1, maximum = 365, nullable)]
    pub duration_days: Option<i64>,
    /// Units to dispense, 1 to 10,000.
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: i64,
    /// 0 to 12.
    #[serde(default, deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = 0, maximum = 12)]
    pub refills: i64,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::reason)]
    pub instructions: String,
}

/// A prescription as stored.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Prescription {
    pub id: Uuid,
    pub record_id: Uuid,
    pub patient_id: Uuid,
    pub medicine: String,
    pub dose: String,
    pub route: Route,
    pub times_per_day: Option<i64>,
    pub every_hours: Option<i64>,
    pub duration_days: Option<i64>,
    pub quantity: i64,
    pub refills: i64,
    pub instructions: String,
    /// When its record was signed (absent on a draft).
    pub signed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Prescription {
    /// What the patient does, as a reminder says it: "Take amoxicillin 500 mg".
    pub fn action(&self) -> String {
        let verb = match self.route {
            Route::Oral | Route::Sublingual => "Take",
            Route::Topical => "Apply",
            Route::Inhaled => "Inhale",
            Route::Injection => "Inject",
            _ => "Use",
        };
        let text = format!("{verb} {} {}", self.medicine, self.dose);
        text.chars().take(300).collect()
    }

    /// One line: medicine, dose, route, how often and for how long.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {}, {}", self.medicine, self.dose, self.route.as_str());
        match (self.times_per_day, self.every_hours) {
            (Some(t), _) => s.push_str(&format!(", {t} times a day")),
            (None, Some(h)) => s.push_str(&format!(", every {h} hours")),
            (None, None) => s.push_str(", as needed"),
        }
        if let Some(d) = self.duration_days {
            s.push_str(&format!(" for {d} days"));
        }
        s.push_str(&format!(
            " (quantity {}, refills {})",
            self.quantity, self.refills
        ));
        if !self.instructions.is_empty() {
            s.push_str(&format!(": {}", self.instructions));
        }
        s
    }
}

/// Checks a record's prescriptions (fields named `prescriptions[i].…`); returns them trimmed.
pub(crate) fn check_all(checks: &mut Checks, items: &[PrescriptionBody]) -> Vec<PrescriptionBody> {
    if items.len() > 20 {
        checks.fail("prescriptions", "at most 20");
    }
    items
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let field = |name: &str| format!("prescriptions[{i}].{name}");
            let mut out = p.clone();
            out.medicine = checks.line(&field("medicine"), &p.medicine, 1, 200);
            out.dose = checks.line(&field("dose"), &p.dose, 1, 60);
            out.instructions = checks.text(&field("instructions"), &p.instructions, 0, 1000);
            match (p.times_per_day, p.every_hours) {
                (Some(_), Some(_)) => checks.fail(
                    &field("every_hours"),
                    "give times_per_day or every_hours, not both",
                ),
                (Some(t), None) if !(1..=12).contains(&t) => {
                    checks.fail(&field("times_per_day"), "must be 1 to 12")
                }
                (None, Some(h)) if !(1..=168).contains(&h) => {
                    checks.fail(&field("every_hours"), "must be 1 to 168")
                }
                _ => {}
            }
            if p.duration_days.is_some_and(|d| !(1..=365).contains(&d)) {
                checks.fail(&field("duration_days"), "must be 1 to 365");
            }
            if !(1..=10_000).contains(&p.quantity) {
                checks.fail(&field("quantity"), "must be 1 to 10000");
            }
            if !(0..=12).contains(&p.refills) {
                checks.fail(&field("refills"), "must be 0 to 12");
            }
            out
        })
        .collect()
}

pub(crate) async fn insert_all(
    tx: &mut Tx,
    record_id: Uuid,
    patient_id: Uuid,
    items: &[PrescriptionBody],
    now: DateTime<Utc>,
) -> Result<()> {
    const SQL: &str = "INSERT INTO prescriptions (id, record_id, patient_id, position, medicine, dose, route, times_per_day, \
        every_hours, duration_days, quantity, refills, instructions, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
    for (position, p) in items.iter().enumerate() {
        crate::exec_tx!(
            tx,
            SQL,
            Uuid::now_v7(),
            record_id,
            patient_id,
            position as i64,
            p.medicine.as_str(),
            p.dose.as_str(),
            p.route,
            p.times_per_day,
            p.every_hours,
            p.duration_days,
            p.quantity,
            p.refills,
            p.instructions.as_str(),
            now
        )?;
    }
    Ok(())
}

/// A draft's prescriptions replaced (a draft is the doctor's working copy; nothing signed
/// is ever removed this way).
pub(crate) async fn replace_draft(
    tx: &mut Tx,
    record_id: Uuid,
    patient_id: Uuid,
    items: &[PrescriptionBody],
    now: DateTime<Utc>,
) -> Result<()> {
    const SQL: &str = "DELETE FROM prescriptions WHERE record_id = $1 \
        AND EXISTS (SELECT 1 FROM visit_records r WHERE r.id = $1 AND r.status = 'draft')";
    crate::exec_tx!(tx, SQL, record_id)?;
    insert_all(tx, record_id, patient_id, items, now).await
}

/// Live prescriptions of live records, with the record's clinic (for readers that filter
/// by access; `Prescription` itself ignores it).
macro_rules! select_prescriptions {
    ($tail:literal) => {
        concat!(
            "SELECT p.id, p.record_id, p.patient_id, p.medicine, p.dose, p.route, p.times_per_day, p.every_hours, \
             p.duration_days, p.quantity, p.refills, p.instructions, r.signed_at, p.created_at, r.clinic_id \
             FROM prescriptions p JOIN visit_records r ON r.id = p.record_id \
             WHERE p.deleted_at IS NULL AND r.deleted_at IS NULL ",
            $tail
        )
    };
}

/// A record's prescriptions, in the order written (inside the signing transaction).
pub(crate) async fn of_record_tx(tx: &mut Tx, record_id: Uuid) -> Result<Vec<Prescription>> {
    Ok(on_tx!(tx, |conn| sqlx::query_as::<_, Prescription>(
        select_prescriptions!("AND p.record_id = $1 ORDER BY p.position")
    )
    .bind(record_id)
    .fetch_all(&mut *conn)
    .await)?)
}

/// Every live prescription of a patient, by record (unchecked: the caller checked access).
pub(crate) async fn of_patient(
    db: &Db,
    patient_id: Uuid,
) -> Result<HashMap<Uuid, Vec<Prescription>>> {
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Prescription>(
        select_prescriptions!("AND p.patient_id = $1 ORDER BY p.record_id, p.position")
    )
    .bind(patient_id)
    .fetch_all(pool)
    .await)?;
    let mut by_record: HashMap<Uuid, Vec<Prescription>> = HashMap::new();
    for p in rows {
        by_record.entry(p.record_id).or_default().push(p);
    }
    Ok(by_record)
}

/// A patient's signed prescriptions the caller may read, newest first (audited).
pub async fn list(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<Vec<Prescription>> {
    let scope = access::read_scope(db, actor, patient_id, "prescription.read").await?;
    #[derive(sqlx::FromRow)]
    struct Row {
        clinic_id: Uuid,
        #[sqlx(flatten)]
        prescription: Prescription,
    }
    let rows = on_db!(db, |pool| {
        sqlx::query_as::<_, Row>(select_prescriptions!(
        "AND r.status = 'signed' AND p.patient_id = $1 ORDER BY r.signed_at DESC, p.position LIMIT 500"
    ))
    .bind(patient_id)
    .fetch_all(pool)
    .await
    })?;
    let prescriptions: Vec<Prescription> = rows
        .into_iter()
        .filter(|r| scope.covers(r.clinic_id))
        .map(|r| r.prescription)
        .collect();
    audit_read(
        db,
        actor,
        "prescription.read",
        patient_id,
        json!({"prescriptions": prescriptions.len()}),
    )
    .await?;
    Ok(prescriptions)
}
