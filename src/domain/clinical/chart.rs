//! A patient's chart, as a doctor opens it: the profile, the visits (records with their
//! prescriptions, addenda and files) and the lab orders with their results and files, in
//! one answer and one audit entry.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::care::access;
use crate::domain::clinical::files;
use crate::domain::clinical::labs::{self, LabOrder};
use crate::domain::clinical::profiles::{self, Profile};
use crate::domain::clinical::records::{self, Record};
use crate::domain::clinical::transcripts::{self, Transcript};
use crate::domain::clinical::{audit_read, prescriptions::Prescription};
use crate::error::Result;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Chart {
    pub profile: Profile,
    /// Newest visit first.
    pub records: Vec<Record>,
    /// Newest first.
    pub labs: Vec<LabOrder>,
    /// Orders with a value outside its reference range.
    pub abnormal_labs: usize,
    /// The prescriptions of the signed records, newest first.
    pub prescriptions: Vec<Prescription>,
    /// Files on the records and lab orders shown.
    pub files: usize,
    /// The latest transcript of each record shown that has one, newest first.
    pub transcripts: Vec<Transcript>,
}

/// The chart of a patient for the patient or a doctor who may read their record.
pub async fn open(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<Chart> {
    // One access decision and one read of the files for all the chart shows.
    let scope = access::read_scope(db, actor, patient_id, "chart.read").await?;
    let files = files::of_patient(db, patient_id).await?;
    let records = records::list_in(db, actor, patient_id, &scope, &files).await?;
    let profile = profiles::whole_unaudited(db, patient_id).await?;
    let labs = labs::list_in(db, actor, patient_id, &scope, &files).await?;
    let prescriptions = records
        .iter()
        .filter(|r| r.signed_at.is_some())
        .flat_map(|r| r.prescriptions.iter().cloned())
        .collect();
    let abnormal_labs = labs.iter().filter(|o| o.abnormal).count();
    let files = records.iter().map(|r| r.files.len()).sum::<usize>()
        + labs.iter().map(|o| o.files.len()).sum::<usize>();
    let shown: Vec<Uuid> = records.iter().map(|r| r.id).collect();
    let transcripts = transcripts::latest_of(db, patient_id, &shown).await?;
    audit_read(
        db,
        actor,
        "chart.read",
        patient_id,
        json!({"records": records.len(), "labs": labs.len(), "transcripts": transcripts.len()}),
    )
    .await?;
    Ok(Chart {
        profile,
        records,
        labs,
        abnormal_labs,
        prescriptions,
        files,
        transcripts,
    })
}
