//! Read-only tools over the clinical record: a patient's own lab results and prescriptions,
//! and a doctor's summary of a patient they may read. The same access rule as REST decides
//! (`care::access`), with the chatting user's identity; every read is audited.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::clinical::{chart, labs, prescriptions};
use crate::tools::{Audience, Tool, ToolContext, ToolError, parse_id};

/// One value of a reviewed result.
#[derive(Clone, Debug, Serialize)]
pub struct ValueLine {
    pub name: String,
    /// E.g. `190 mg/dL` or `negative`.
    pub value: String,
    /// E.g. `< 130` or `4 – 5.6`.
    pub reference: Option<String>,
    /// `normal`, `low`, `high` or `unflagged`.
    pub flag: labs::Flag,
}

/// A lab test with its reviewed values.
#[derive(Clone, Debug, Serialize)]
pub struct LabLine {
    pub test: String,
    pub status: labs::OrderStatus,
    pub ordered_at: DateTime<Utc>,
    pub abnormal: bool,
    pub values: Vec<ValueLine>,
}

fn number(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl From<labs::LabOrder> for LabLine {
    fn from(o: labs::LabOrder) -> Self {
        Self {
            test: o.test_name,
            status: o.status,
            ordered_at: o.created_at,
            abnormal: o.abnormal,
            values: o
                .results
                .into_iter()
                .map(|v| ValueLine {
                    name: v.name,
                    value: match (v.value, v.value_text) {
                        (Some(x), _) => format!("{} {}", number(x), v.unit).trim().to_owned(),
                        (None, Some(t)) => t,
                        (None, None) => String::new(),
                    },
                    reference: match (v.ref_low, v.ref_high) {
                        (Some(l), Some(h)) => Some(format!("{} – {}", number(l), number(h))),
                        (Some(l), None) => Some(format!("≥ {}", number(l))),
                        (None, Some(h)) => Some(format!("≤ {}", number(h))),
                        (None, None) => None,
                    },
                    flag: v.flag,
                })
                .collect(),
        }
    }
}

pub struct MyLabResults;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MyLabResultsArgs {
    /// How many of the latest tests to give (default 5, at most 20).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl Tool for MyLabResults {
    const NAME: &'static str = "my_lab_results";
    const AUDIENCE: Audience = Audience::SignedIn;
    const DESCRIPTION: &'static str = "The signed-in patient's own latest lab tests, newest first, with each value, its reference range and whether it is low or high. Values appear once the doctor has reviewed them. There is no way to see anyone else's.";
    type Args = MyLabResultsArgs;
    type Output = Vec<LabLine>;

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let me = ctx.actor.principal().map_err(ToolError::from)?.user_id;
        let limit = args.limit.unwrap_or(5).clamp(1, 20) as usize;
        let orders = labs::list(ctx.db, ctx.actor, me).await?;
        Ok(orders.into_iter().take(limit).map(LabLine::from).collect())
    }
}

/// A prescription: one line to read, and its parts.
#[derive(Clone, Debug, Serialize)]
pub struct PrescriptionLine {
    pub prescribed_at: Option<DateTime<Utc>>,
    /// Medicine, dose, route, how often, for how long, quantity and instructions.
    pub prescription: String,
    pub medicine: String,
    pub dose: String,
    pub times_per_day: Option<i64>,
    pub every_hours: Option<i64>,
    pub duration_days: Option<i64>,
    pub instructions: String,
}

impl From<prescriptions::Prescription> for PrescriptionLine {
    fn from(p: prescriptions::Prescription) -> Self {
        Self {
            prescribed_at: p.signed_at,
            prescription: p.summary(),
            medicine: p.medicine,
            dose: p.dose,
            times_per_day: p.times_per_day,
            every_hours: p.every_hours,
            duration_days: p.duration_days,
            instructions: p.instructions,
        }
    }
}

pub struct MyPrescriptions;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MyPrescriptionsArgs {
    /// How many of the latest prescriptions to give (default 10, at most 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl Tool for MyPrescriptions {
    const NAME: &'static str = "my_prescriptions";
    const AUDIENCE: Audience = Audience::SignedIn;
    const DESCRIPTION: &'static str = "What the signed-in patient's doctors prescribed them (signed visit records), newest first: medicine, dose, how often and for how long. There is no way to see anyone else's.";
    type Args = MyPrescriptionsArgs;
    type Output = Vec<PrescriptionLine>;

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let me = ctx.actor.principal().map_err(ToolError::from)?.user_id;
        let limit = args.limit.unwrap_or(10).clamp(1, 50) as usize;
        let list = prescriptions::list(ctx.db, ctx.actor, me).await?;
        Ok(list
            .into_iter()
            .take(limit)
            .map(PrescriptionLine::from)
            .collect())
    }
}

pub struct PatientSummary;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientSummaryArgs {
    /// The patient's id, as the doctor's patient list gives it.
    pub patient_id: String,
}

/// A visit in one line.
#[derive(Clone, Debug, Serialize)]
pub struct VisitLine {
    pub visited_at: DateTime<Utc>,
    pub doctor: String,
    pub signed: bool,
    pub complaint: String,
    /// Diagnoses with their ICD-10 codes.
    pub diagnoses: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub name: String,
    pub date_of_birth: Option<chrono::NaiveDate>,
    pub allergies: Vec<String>,
    pub chronic_conditions: Vec<String>,
    pub current_medication: Vec<String>,
    /// The latest five visits.
    pub visits: Vec<VisitLine>,
    /// The latest five lab tests.
    pub labs: Vec<LabLine>,
    pub prescriptions: Vec<PrescriptionLine>,
}

impl Tool for PatientSummary {
    const NAME: &'static str = "patient_summary";
    const AUDIENCE: Audience = Audience::Doctors;
    const DESCRIPTION: &'static str = "For doctors: a summary of one of their patients (allergies, conditions, medication, latest visits with diagnoses, latest lab values with flags, prescriptions). Only for patients the doctor may read.";
    type Args = PatientSummaryArgs;
    type Output = Summary;

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let patient: Uuid = parse_id("patient_id", &args.patient_id)?;
        let chart = chart::open(ctx.db, ctx.actor, patient).await?;
        let clinical = chart.profile.clinical.unwrap_or_default();
        Ok(Summary {
            name: chart.profile.name,
            date_of_birth: chart.profile.date_of_birth,
            allergies: clinical.allergies,
            chronic_conditions: clinical.chronic_conditions,
            current_medication: clinical.current_medication,
            visits: chart
                .records
                .into_iter()
                .take(5)
                .map(|r| VisitLine {
                    visited_at: r.visited_at,
                    doctor: r.doctor_name,
                    signed: r.signed_at.is_some(),
                    complaint: r.chief_complaint,
                    diagnoses: r
                        .diagnoses
                        .into_iter()
                        .map(|d| match d.code {
                            Some(code) => format!("{} ({code})", d.text),
                            None => d.text,
                        })
                        .collect(),
                })
                .collect(),
            labs: chart.labs.into_iter().take(5).map(LabLine::from).collect(),
            prescriptions: chart
                .prescriptions
                .into_iter()
                .take(10)
                .map(PrescriptionLine::from)
                .collect(),
        })
    }
}
