//! Visit records: one per consultation, from an appointment (in person, or remote with a
//! video link) or for a walk-in. The doctor drafts it (complaint, vitals, findings,
//! diagnoses with ICD-10 codes, plan, follow-up, prescriptions) and signs it; a signed
//! record never changes, it is only amended by addenda (who, when, why). Signing turns the
//! prescriptions into the patient's care-plan reminders and the follow-up into a suggested
//! time (or a place on the doctor's waitlist). Users never delete a record: removing one
//! hides it (who, when, why) from every normal read; the retention job purges it.
//!
//! Narrative text is sealed at rest with the record id as context; reads follow
//! `care::access` (a patient reads their signed records only) and are audited.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::domain::actor::{Actor, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::care::access::{self, Treating};
use crate::domain::care::care_plans::{Extraction, PlanItem};
use crate::domain::care::notes;
use crate::domain::clinical::files::{self, FileMeta};
use crate::domain::clinical::prescriptions::{self, Prescription, PrescriptionBody};
use crate::domain::clinical::vitals::{Measured, Vitals};
use crate::domain::clinical::{audit_read, doctor_at, icd10};
use crate::domain::validate::Checks;
use crate::error::{Code, Error, Result};
use crate::notify::messages::{self, Kind, Moment};
use crate::notify::outbox;
use crate::zone::TimeZone;
use crate::{on_db, on_tx};

crate::text_enum! {
    /// How the consultation took place.
    pub enum RecordKind {
        InPerson = "in_person",
        Remote = "remote",
        WalkIn = "walk_in",
    }
}

crate::text_enum! {
    /// A draft the doctor may still edit, or a signed record (never edited again).
    pub enum RecordStatus {
        Draft = "draft",
        Signed = "signed",
    }
}

/// A diagnosis as the doctor writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnosisBody {
    /// The diagnosis in words.
    #[schema(schema_with = crate::domain::validate::schema::clinical_item)]
    pub text: String,
    /// An ICD-10 code (WHO 2019), checked against the bundled list.
    #[schema(schema_with = crate::domain::validate::schema::icd10, nullable)]
    #[serde(default)]
    pub code: Option<String>,
}

/// A diagnosis as stored: the code normalised and its title.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Diagnosis {
    pub text: String,
    pub code: Option<String>,
    pub code_title: Option<String>,
}

/// A visit record as the doctor writes it (created, or a draft replaced).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// The appointment this consultation was (absent for a walk-in). A record's visit
    /// never changes once created.
    #[schema(nullable)]
    pub appointment_id: Option<Uuid>,
    /// When a walk-in consultation took place, if not now (it cannot be in the future; a
    /// visit from an appointment took place at the appointment's time).
    #[schema(pattern = "^(19|2[01])[0-9]{2}-", nullable)]
    pub visited_at: Option<DateTime<Utc>>,
    /// The video link of a remote consultation (https).
    #[schema(pattern = r"^https://[^\s]{3,500}$", nullable)]
    pub video_url: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::clinical_text)]
    pub chief_complaint: String,
    #[serde(default)]
    pub vitals: Vitals,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::clinical_text)]
    pub findings: String,
    /// At most 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub diagnoses: Vec<DiagnosisBody>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::clinical_text)]
    pub plan: String,
    /// See the patient again in this many days (1 to 365).
    #[serde(
        default,
        deserialize_with = "crate::domain::validate::optional_whole_number"
    )]
    #[schema(minimum = 1, maximum = 365, nullable)]
    pub follow_up_days: Option<i64>,
    /// At most 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub prescriptions: Vec<PrescriptionBody>,
}

/// A record's fields as a model drafts them from a consultation's transcript, for the
/// doctor to review, change and sign (nothing drafted is ever signed by itself).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RecordDraft {
    /// Why the patient came, briefly, as they said it.
    #[serde(default)]
    pub chief_complaint: String,
    /// Vital signs said aloud in the consultation (leave out what was not said).
    #[serde(default)]
    pub vitals: Vitals,
    /// What the doctor found on examination.
    #[serde(default)]
    pub findings: String,
    /// The diagnoses the doctor stated, each with its ICD-10 code when certain.
    #[serde(default)]
    pub diagnoses: Vec<DiagnosisBody>,
    /// What the doctor said will be done (tests, medicines, advice).
    #[serde(default)]
    pub plan: String,
    /// In how many days the doctor wants to see the patient again, when they said so.
    #[serde(default)]
    #[schemars(range(min = 1, max = 365))]
    pub follow_up_days: Option<i64>,
}

impl RecordDraft {
    /// The checks a record's fields pass (ranges, known ICD-10 codes), as one sentence for
    /// a model to correct.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let body = RecordBody {
            chief_complaint: self.chief_complaint.clone(),
            vitals: self.vitals.clone(),
            findings: self.findings.clone(),
            diagnoses: self.diagnoses.clone(),
            plan: self.plan.clone(),
            follow_up_days: self.follow_up_days,
            ..RecordBody::default()
        };
        check(&body).map(|_| ()).map_err(|e| e.for_people())
    }
}

/// The sealed part of a record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Content {
    chief_complaint: String,
    vitals: Vitals,
    findings: String,
    diagnoses: Vec<Diagnosis>,
    plan: String,
}

/// What was added to a signed record.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Addendum {
    pub id: Uuid,
    pub author_id: Uuid,
    pub author_name: String,
    pub reason: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// A visit record.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Record {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub clinic_id: Uuid,
    pub doctor_id: Uuid,
    pub doctor_name: String,
    pub appointment_id: Option<Uuid>,
    pub kind: RecordKind,
    pub video_url: Option<String>,
    pub status: RecordStatus,
    pub chief_complaint: String,
    pub vitals: Measured,
    pub findings: String,
    pub diagnoses: Vec<Diagnosis>,
    pub plan: String,
    pub follow_up_days: Option<i64>,
    pub prescriptions: Vec<Prescription>,
    pub addenda: Vec<Addendum>,
    /// Files on the record itself (a lab order's files are on the order).
    pub files: Vec<FileMeta>,
    pub visited_at: DateTime<Utc>,
    pub signed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What signing led to beyond the record.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FollowUp {
    /// The first free time with the doctor from the follow-up day on, sent to the patient
    /// to book.
    Suggested {
        slot_id: Uuid,
        starts_at: DateTime<Utc>,
    },
    /// No free time yet: the patient waits for one on the doctor's waitlist.
    Waitlisted,
}

/// A signed record, the care plan its prescriptions became, and the follow-up.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Signed {
    pub record: Record,
    /// The care plan scheduled from the prescriptions that have a frequency.
    pub plan_id: Option<Uuid>,
    pub follow_up: Option<FollowUp>,
}

// ---- Checks ----------------------------------------------------------------------------

/// The body checked and normalised, and its content to seal.
struct Checked {
    content: Content,
    prescriptions: Vec<PrescriptionBody>,
}

fn check(body: &RecordBody) -> Result<Checked> {
    let mut checks = Checks::new();
    let chief_complaint = checks.text("chief_complaint", &body.chief_complaint, 0, 10_000);
    let findings = checks.text("findings", &body.findings, 0, 10_000);
    let plan = checks.text("plan", &body.plan, 0, 10_000);
    body.vitals.check(&mut checks, "vitals.");
    if body.diagnoses.len() > 20 {
        checks.fail("diagnoses", "at most 20");
    }
    let diagnoses = body
        .diagnoses
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let text = checks.line(&format!("diagnoses[{i}].text"), &d.text, 1, 200);
            let entry = d.code.as_deref().and_then(|code| {
                let entry = icd10::lookup(code);
                if entry.is_none() {
                    checks.fail(
                        &format!("diagnoses[{i}].code"),
                        format!("{code:?} is not an ICD-10 code"),
                    );
                }
                entry
            });
            Diagnosis {
                text,
                code: entry.map(|e| e.code.to_owned()),
                code_title: entry.map(|e| e.title.to_owned()),
            }
        })
        .collect();
    if let Some(url) = &body.video_url
        && (!url.starts_with("https://")
            || url.len() > 508
            || url.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        checks.fail("video_url", "must be an https link");
    }
    if body.follow_up_days.is_some_and(|d| !(1..=365).contains(&d)) {
        checks.fail("follow_up_days", "must be 1 to 365");
    }
    if let Some(at) = body.visited_at {
        if body.appointment_id.is_some() {
            checks.fail(
                "visited_at",
                "a visit from an appointment took place at its time",
            );
        } else if at > Utc::now() + Duration::minutes(5) {
            checks.fail("visited_at", "must not be in the future");
        }
    }
    let prescriptions = prescriptions::check_all(&mut checks, &body.prescriptions);
    checks.finish()?;
    Ok(Checked {
        content: Content {
            chief_complaint,
            vitals: body.vitals.clone(),
            findings,
            diagnoses,
            plan,
        },
        prescriptions,
    })
}

fn context(id: Uuid) -> Vec<u8> {
    format!("record:{id}").into_bytes()
}

fn seal(db: &Db, id: Uuid, content: &Content) -> Result<Vec<u8>> {
    let plain = serde_json::to_vec(content).map_err(Error::internal)?;
    Ok(db.policy().sealer.seal(&plain, &context(id)))
}

// ---- Who writes ------------------------------------------------------------------------

/// The caller's doctor profile in a clinic that knows the patient (for a walk-in).
async fn doctor_for_walk_in(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<Treating> {
    let p = actor.principal()?;
    let clinics: Vec<Uuid> = p
        .grants
        .iter()
        .filter(|g| g.role == Role::Doctor)
        .filter_map(|g| g.clinic_id)
        .collect();
    for clinic_id in clinics {
        let known = crate::domain::clinics::patients::knows_now(db, clinic_id, patient_id).await?;
        if known && let Some(d) = doctor_at(db, actor, clinic_id).await? {
            return Ok(d);
        }
    }
    Err(access::refuse(db, actor, "record.write", patient_id).await)
}

#[derive(sqlx::FromRow)]
struct Visit {
    patient_id: Uuid,
    doctor_id: Uuid,
    clinic_id: Uuid,
    starts_at: DateTime<Utc>,
    status: String,
}

// ---- Create, edit, sign, amend, remove ---------------------------------------------------

/// A doctor opens a draft record about their patient: for one of their appointments with
/// the patient, or a walk-in at a clinic that knows the patient.
pub async fn create(db: &Db, actor: &Actor, patient_id: Uuid, body: &RecordBody) -> Result<Record> {
    let p = actor.principal()?;
    let checked = check(body)?;
    let now = Utc::now();
    let (doctor, kind, visited_at) = match body.appointment_id {
        Some(appointment_id) => {
            const SQL: &str = "SELECT patient_id, doctor_id, clinic_id, starts_at, status FROM appointments WHERE id = $1";
            let visit = on_db!(db, |pool| sqlx::query_as::<_, Visit>(SQL)
                .bind(appointment_id)
                .fetch_optional(pool)
                .await)?
            .filter(|v| v.patient_id == patient_id)
            .ok_or_else(|| Error::not_found("appointment"))?;
            let doctor = doctor_at(db, actor, visit.clinic_id)
                .await?
                .filter(|d| d.id == visit.doctor_id);
            let Some(doctor) = doctor else {
                return Err(access::refuse(db, actor, "record.write", patient_id).await);
            };
            if visit.status == "cancelled" {
                return Err(Error::new(
                    Code::InvalidTransition,
                    "This appointment was cancelled; record the visit as a walk-in.",
                ));
            }
            let kind = if body.video_url.is_some() {
                RecordKind::Remote
            } else {
                RecordKind::InPerson
            };
            (doctor, kind, visit.starts_at)
        }
        None => {
            let doctor = doctor_for_walk_in(db, actor, patient_id).await?;
            let kind = if body.video_url.is_some() {
                RecordKind::Remote
            } else {
                RecordKind::WalkIn
            };
            (doctor, kind, body.visited_at.unwrap_or(now))
        }
    };
    let id = Uuid::now_v7();
    let sealed = seal(db, id, &checked.content)?;
    let key_id = i64::from(db.policy().sealer.current_key_id());
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO visit_records (id, patient_id, clinic_id, doctor_id, appointment_id, kind, video_url, status, \
        sealed, key_id, follow_up_days, visited_at, created_by, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, 'draft', $8, $9, $10, $11, $12, $13, $13)";
    crate::exec_tx!(
        &mut tx,
        SQL,
        id,
        patient_id,
        doctor.clinic_id,
        doctor.id,
        body.appointment_id,
        kind,
        body.video_url.as_deref(),
        sealed,
        key_id,
        body.follow_up_days,
        visited_at,
        p.user_id,
        now
    )
    .map_err(|e| {
        Error::from(e).on_unique(
            "visit_records_appointment_key",
            Code::Conflict,
            "This appointment already has a visit record.",
        )
    })?;
    prescriptions::insert_all(&mut tx, id, patient_id, &checked.prescriptions, now).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "record.created",
            subject: format!("record:{id}"),
            clinic_id: Some(doctor.clinic_id),
            details: json!({"patient": patient_id, "kind": kind.as_str()}),
        },
    )
    .await?;
    tx.commit().await?;
    load(db, id).await?.open(db).await
}

#[derive(Clone, sqlx::FromRow)]
struct RecordRow {
    id: Uuid,
    patient_id: Uuid,
    clinic_id: Uuid,
    doctor_id: Uuid,
    doctor_user: Option<Uuid>,
    doctor_name: String,
    time_zone: TimeZone,
    appointment_id: Option<Uuid>,
    kind: RecordKind,
    video_url: Option<String>,
    status: RecordStatus,
    sealed: Vec<u8>,
    follow_up_days: Option<i64>,
    visited_at: DateTime<Utc>,
    signed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

macro_rules! select_records {
    ($tail:literal) => {
        concat!(
            "SELECT r.id, r.patient_id, r.clinic_id, r.doctor_id, d.user_id AS doctor_user, d.display_name AS doctor_name, \
             c.time_zone, r.appointment_id, r.kind, r.video_url, r.status, r.sealed, r.follow_up_days, r.visited_at, \
             r.signed_at, r.created_at, r.updated_at \
             FROM visit_records r JOIN doctors d ON d.id = r.doctor_id JOIN clinics c ON c.id = r.clinic_id \
             WHERE r.deleted_at IS NULL ",
            $tail
        )
    };
}

async fn load(db: &Db, id: Uuid) -> Result<RecordRow> {
    on_db!(db, |pool| sqlx::query_as::<_, RecordRow>(select_records!(
        "AND r.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await)?
    .ok_or_else(|| Error::not_found("record"))
}

#[derive(sqlx::FromRow)]
struct AddendumRow {
    id: Uuid,
    record_id: Uuid,
    author_id: Uuid,
    author_name: String,
    sealed: Vec<u8>,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct AddendumText {
    reason: String,
    text: String,
}

impl RecordRow {
    fn content(&self, db: &Db) -> Result<Content> {
        let plain = db
            .policy()
            .sealer
            .open(&self.sealed, &context(self.id))
            .map_err(|e| Error::internal(format!("record {}: {e}", self.id)))?;
        serde_json::from_slice(&plain).map_err(Error::internal)
    }

    fn into_record(
        self,
        db: &Db,
        prescriptions: Vec<Prescription>,
        addenda: Vec<Addendum>,
        files: Vec<FileMeta>,
    ) -> Result<Record> {
        let content = self.content(db)?;
        Ok(Record {
            id: self.id,
            patient_id: self.patient_id,
            clinic_id: self.clinic_id,
            doctor_id: self.doctor_id,
            doctor_name: self.doctor_name,
            appointment_id: self.appointment_id,
            kind: self.kind,
            video_url: self.video_url,
            status: self.status,
            chief_complaint: content.chief_complaint,
            vitals: content.vitals.into(),
            findings: content.findings,
            diagnoses: content.diagnoses,
            plan: content.plan,
            follow_up_days: self.follow_up_days,
            prescriptions,
            addenda,
            files,
            visited_at: self.visited_at,
            signed_at: self.signed_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    /// The record with its prescriptions and addenda.
    async fn open(self, db: &Db) -> Result<Record> {
        let mut records = assemble(db, vec![self]).await?;
        records.pop().ok_or_else(|| Error::not_found("record"))
    }

    /// Passes when the caller is the record's doctor (by user and role at its clinic).
    fn require_author(&self, actor: &Actor) -> Result<()> {
        let p = actor.principal()?;
        if self.doctor_user == Some(p.user_id) && p.has_role_in(Role::Doctor, self.clinic_id) {
            Ok(())
        } else {
            Err(Error::new(
                Code::Forbidden,
                "Only the doctor who wrote this record can do this.",
            ))
        }
    }
}

/// Records with their prescriptions and addenda, read in one query each.
async fn assemble(db: &Db, rows: Vec<RecordRow>) -> Result<Vec<Record>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let files = files::of_patient(db, first.patient_id).await?;
    assemble_with(db, rows, &files).await
}

/// [`assemble`] with the patient's files already read.
async fn assemble_with(db: &Db, rows: Vec<RecordRow>, files: &[FileMeta]) -> Result<Vec<Record>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let patient_id = rows[0].patient_id;
    let mut by_record = prescriptions::of_patient(db, patient_id).await?;
    const ADDENDA: &str = "SELECT a.id, a.record_id, a.author_id, u.display_name AS author_name, a.sealed, a.created_at \
        FROM record_addenda a JOIN visit_records r ON r.id = a.record_id JOIN users u ON u.id = a.author_id \
        WHERE r.patient_id = $1 ORDER BY a.created_at";
    let addenda = on_db!(db, |pool| sqlx::query_as::<_, AddendumRow>(ADDENDA)
        .bind(patient_id)
        .fetch_all(pool)
        .await)?;
    let mut addenda_by: std::collections::HashMap<Uuid, Vec<Addendum>> = Default::default();
    for a in addenda {
        let plain = db
            .policy()
            .sealer
            .open(&a.sealed, &addendum_context(a.id))
            .map_err(|e| Error::internal(format!("addendum {}: {e}", a.id)))?;
        let text: AddendumText = serde_json::from_slice(&plain).map_err(Error::internal)?;
        addenda_by.entry(a.record_id).or_default().push(Addendum {
            id: a.id,
            author_id: a.author_id,
            author_name: a.author_name,
            reason: text.reason,
            text: text.text,
            created_at: a.created_at,
        });
    }
    let mut files_by: std::collections::HashMap<Uuid, Vec<FileMeta>> = Default::default();
    for f in files {
        if f.lab_order_id.is_none() {
            files_by.entry(f.record_id).or_default().push(f.clone());
        }
    }
    rows.into_iter()
        .map(|r| {
            let id = r.id;
            r.into_record(
                db,
                by_record.remove(&id).unwrap_or_default(),
                addenda_by.remove(&id).unwrap_or_default(),
                files_by.remove(&id).unwrap_or_default(),
            )
        })
        .collect()
}

fn addendum_context(id: Uuid) -> Vec<u8> {
    format!("addendum:{id}").into_bytes()
}

/// The record's doctor replaces their draft; a signed record is refused (`record_signed`).
pub async fn update(db: &Db, actor: &Actor, id: Uuid, body: &RecordBody) -> Result<Record> {
    let row = load(db, id).await?;
    row.require_author(actor)?;
    if row.status == RecordStatus::Signed {
        return Err(signed());
    }
    if body.appointment_id.is_some() && body.appointment_id != row.appointment_id {
        return Err(Error::validation(vec![crate::error::FieldError {
            field: "appointment_id".into(),
            message: "a record's visit does not change".into(),
        }]));
    }
    if row.appointment_id.is_some() && body.visited_at.is_some() {
        return Err(Error::validation(vec![crate::error::FieldError {
            field: "visited_at".into(),
            message: "a visit from an appointment took place at its time".into(),
        }]));
    }
    let checked = check(body)?;
    let now = Utc::now();
    let sealed = seal(db, id, &checked.content)?;
    let key_id = i64::from(db.policy().sealer.current_key_id());
    let kind = match (row.kind, body.video_url.is_some()) {
        (RecordKind::WalkIn | RecordKind::InPerson, true) => RecordKind::Remote,
        (RecordKind::Remote, false) if row.appointment_id.is_some() => RecordKind::InPerson,
        (RecordKind::Remote, false) => RecordKind::WalkIn,
        (kind, _) => kind,
    };
    let mut tx = db.begin().await?;
    // Only while still a draft: a signature that lands first wins.
    const SQL: &str = "UPDATE visit_records SET sealed = $2, key_id = $3, follow_up_days = $4, video_url = $5, kind = $6, updated_at = $7, \
        visited_at = COALESCE($8, visited_at) WHERE id = $1 AND status = 'draft' AND deleted_at IS NULL";
    let changed = crate::exec_tx!(
        &mut tx,
        SQL,
        id,
        sealed,
        key_id,
        body.follow_up_days,
        body.video_url.as_deref(),
        kind,
        now,
        body.visited_at
    )?;
    if changed == 0 {
        return Err(signed());
    }
    prescriptions::replace_draft(&mut tx, id, row.patient_id, &checked.prescriptions, now).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "record.updated",
            subject: format!("record:{id}"),
            clinic_id: Some(row.clinic_id),
            details: json!({"patient": row.patient_id}),
        },
    )
    .await?;
    tx.commit().await?;
    load(db, id).await?.open(db).await
}

fn signed() -> Error {
    Error::new(
        Code::RecordSigned,
        "This record is signed: it is never edited nor signed again; add an addendum instead.",
    )
}

/// The record's doctor signs their draft. In the same transaction: the prescriptions with
/// a frequency become the patient's care plan (reminders; it supersedes that doctor's
/// previous plan for the patient, as a newer note does), and a follow-up is suggested as
/// the doctor's first free time from that day (or the patient joins the doctor's waitlist).
pub async fn sign(db: &Db, actor: &Actor, id: Uuid) -> Result<Signed> {
    let row = load(db, id).await?;
    row.require_author(actor)?;
    if row.status == RecordStatus::Signed {
        return Err(signed());
    }
    let p = actor.principal()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE visit_records SET status = 'signed', signed_at = $2, signed_by = $3, updated_at = $2 \
        WHERE id = $1 AND status = 'draft' AND deleted_at IS NULL";
    if crate::exec_tx!(&mut tx, SQL, id, now, p.user_id)? == 0 {
        return Err(signed());
    }
    let patient = outbox::contact(&mut tx, row.patient_id).await?;
    let doctor = Treating {
        id: row.doctor_id,
        clinic_id: row.clinic_id,
        display_name: row.doctor_name.clone(),
        time_zone: row.time_zone,
    };
    let prescribed = prescriptions::of_record_tx(&mut tx, id).await?;
    let plan_id = plan_from(
        &mut tx,
        db,
        actor,
        &doctor,
        &patient,
        &row,
        &prescribed,
        now,
    )
    .await?;
    let follow_up = match row.follow_up_days {
        Some(days) => Some(follow_up(&mut tx, db, &doctor, &patient, &row, days, now).await?),
        None => None,
    };
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "record.signed",
            subject: format!("record:{id}"),
            clinic_id: Some(row.clinic_id),
            details: json!({"patient": row.patient_id, "prescriptions": prescribed.len(), "plan": plan_id}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Signed {
        record: load(db, id).await?.open(db).await?,
        plan_id,
        follow_up,
    })
}

/// The care plan of a signed record's prescriptions: those with a frequency become plan
/// items, written down as the doctor's note of what was prescribed.
#[allow(clippy::too_many_arguments)]
async fn plan_from(
    tx: &mut Tx,
    db: &Db,
    actor: &Actor,
    doctor: &Treating,
    patient: &outbox::Contact,
    row: &RecordRow,
    prescribed: &[Prescription],
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    let plan: Vec<PlanItem> = prescribed
        .iter()
        .filter(|p| p.times_per_day.is_some() || p.every_hours.is_some())
        .map(|p| PlanItem {
            action: p.action(),
            times_per_day: p.times_per_day.map(|t| t as u32),
            every_hours: p.every_hours.map(|h| h as u32),
            duration_days: p.duration_days.map(|d| d as u32),
            start_in_days: None,
        })
        .collect();
    if plan.is_empty() {
        return Ok(None);
    }
    let extraction = Extraction {
        checklist: Vec::new(),
        plan,
    };
    extraction
        .validate()
        .map_err(|e| Error::internal(format!("record {}: prescriptions as a plan: {e}", row.id)))?;
    let local = row.visited_at.with_timezone(&doctor.time_zone.tz());
    let mut text = format!("Prescribed at the visit of {}:", local.format("%Y-%m-%d"));
    for p in prescribed {
        text.push_str("\n- ");
        text.push_str(&p.summary());
    }
    let (_, plan_id) =
        notes::write(tx, db, actor, doctor, patient, &text, &extraction, now).await?;
    Ok(Some(plan_id))
}

#[derive(sqlx::FromRow)]
struct FreeSlot {
    id: Uuid,
    starts_at: DateTime<Utc>,
}

async fn follow_up(
    tx: &mut Tx,
    db: &Db,
    doctor: &Treating,
    patient: &outbox::Contact,
    row: &RecordRow,
    days: i64,
    now: DateTime<Utc>,
) -> Result<FollowUp> {
    let from = (row.visited_at + Duration::days(days)).max(now);
    const SLOT: &str = "SELECT id, starts_at FROM slots WHERE doctor_id = $1 AND status = 'open' AND starts_at >= $2 \
        ORDER BY starts_at LIMIT 1";
    let slot = on_tx!(tx, |conn| sqlx::query_as::<_, FreeSlot>(SLOT)
        .bind(doctor.id)
        .bind(from)
        .fetch_optional(&mut *conn)
        .await)?;
    if let Some(slot) = slot {
        const CLINIC: &str = "SELECT name FROM clinics WHERE id = $1";
        let clinic: String = on_tx!(tx, |conn| sqlx::query_scalar(CLINIC)
            .bind(doctor.clinic_id)
            .fetch_one(&mut *conn)
            .await)?;
        let visit = messages::Visit {
            patient: &patient.display_name,
            doctor: &doctor.display_name,
            clinic: &clinic,
            starts_at: Moment::new(slot.starts_at, doctor.time_zone.tz()),
            link: None,
        };
        let message: outbox::Message = Kind::FollowUpSuggested(&visit)
            .render(patient.language)?
            .into();
        outbox::enqueue(
            tx,
            db.policy(),
            "follow_up_suggested",
            &format!("record:{}", row.id),
            patient,
            &message,
            now,
        )
        .await?;
        return Ok(FollowUp::Suggested {
            slot_id: slot.id,
            starts_at: slot.starts_at,
        });
    }
    let id = Uuid::now_v7();
    let note = format!("Follow-up in {days} days");
    const WAIT: &str = "INSERT INTO waitlist (id, patient_id, doctor_id, note, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
        ON CONFLICT DO NOTHING";
    crate::exec_tx!(
        tx,
        WAIT,
        id,
        patient.user_id,
        doctor.id,
        db.policy()
            .sealer
            .seal_text(&note, format!("waitlist:{id}:note").as_bytes()),
        now
    )?;
    Ok(FollowUp::Waitlisted)
}

/// A doctor treating the patient at the record's clinic adds to a signed record (a draft
/// is edited instead).
pub async fn amend(db: &Db, actor: &Actor, id: Uuid, reason: &str, text: &str) -> Result<Record> {
    let row = load(db, id).await?;
    let p = actor.principal()?;
    if !p.has_role_in(Role::Doctor, row.clinic_id) {
        return Err(access::refuse(db, actor, "record.amend", row.patient_id).await);
    }
    access::require_read(db, actor, row.patient_id, row.clinic_id, "record.amend").await?;
    if row.status == RecordStatus::Draft {
        return Err(Error::new(
            Code::InvalidTransition,
            "This record is a draft: edit it instead of amending it.",
        ));
    }
    let mut checks = Checks::new();
    let reason = checks.text("reason", reason, 3, 1000);
    let text = checks.text("text", text, 1, 10_000);
    checks.finish()?;
    let addendum = Uuid::now_v7();
    let plain = serde_json::to_vec(&AddendumText { reason, text }).map_err(Error::internal)?;
    let sealer = &db.policy().sealer;
    let sealed = sealer.seal(&plain, &addendum_context(addendum));
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO record_addenda (id, record_id, author_id, sealed, key_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
    crate::exec_tx!(
        &mut tx,
        SQL,
        addendum,
        id,
        p.user_id,
        sealed,
        i64::from(sealer.current_key_id()),
        now
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "record.amended",
            subject: format!("record:{id}"),
            clinic_id: Some(row.clinic_id),
            details: json!({"patient": row.patient_id, "addendum": addendum}),
        },
    )
    .await?;
    tx.commit().await?;
    load(db, id).await?.open(db).await
}

/// The record's doctor removes it (e.g. written for the wrong patient): it, its
/// prescriptions, files, lab orders and results are hidden from every normal read, kept for
/// audit with who, when and why, and purged by the retention job.
pub async fn remove(db: &Db, actor: &Actor, id: Uuid, reason: &str) -> Result<()> {
    let row = load(db, id).await?;
    row.require_author(actor)?;
    let p = actor.principal()?;
    let mut checks = Checks::new();
    let reason = checks.text("reason", reason, 3, 1000);
    checks.finish()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const HIDE: [&str; 6] = [
        "UPDATE transcripts SET deleted_at = $2, deleted_by = $3, deleted_reason = $4 WHERE record_id = $1 AND deleted_at IS NULL",
        "UPDATE clinical_files SET deleted_at = $2, deleted_by = $3, deleted_reason = $4 WHERE record_id = $1 AND deleted_at IS NULL",
        "UPDATE visit_records SET deleted_at = $2, deleted_by = $3, deleted_reason = $4, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL",
        "UPDATE prescriptions SET deleted_at = $2, deleted_by = $3, deleted_reason = $4 WHERE record_id = $1 AND deleted_at IS NULL",
        "UPDATE lab_results SET deleted_at = $2, deleted_by = $3, deleted_reason = $4 \
         WHERE order_id IN (SELECT id FROM lab_orders WHERE record_id = $1) AND deleted_at IS NULL",
        "UPDATE lab_orders SET deleted_at = $2, deleted_by = $3, deleted_reason = $4, updated_at = $2 WHERE record_id = $1 AND deleted_at IS NULL",
    ];
    for sql in HIDE {
        crate::exec_tx!(&mut tx, sql, id, now, p.user_id, reason.as_str())?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "record.removed",
            subject: format!("record:{id}"),
            clinic_id: Some(row.clinic_id),
            details: json!({"patient": row.patient_id}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---- Reads -------------------------------------------------------------------------------

/// One record, for its patient (once signed) and the doctors who may read it (audited).
pub async fn get(db: &Db, actor: &Actor, id: Uuid) -> Result<Record> {
    let p = actor.principal()?;
    let row = load(db, id).await?;
    access::require_read(db, actor, row.patient_id, row.clinic_id, "record.read").await?;
    if row.patient_id == p.user_id && row.status == RecordStatus::Draft {
        return Err(Error::not_found("record"));
    }
    let patient_id = row.patient_id;
    let record = row.open(db).await?;
    audit_read(
        db,
        actor,
        "record.read",
        patient_id,
        json!({"records": [id]}),
    )
    .await?;
    Ok(record)
}

/// A patient's records the caller may read, newest visit first: the patient sees the
/// signed ones; a doctor those of the clinics their access covers (one audit entry).
pub async fn list(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<Vec<Record>> {
    let scope = access::read_scope(db, actor, patient_id, "record.read").await?;
    let files = files::of_patient(db, patient_id).await?;
    let records = list_in(db, actor, patient_id, &scope, &files).await?;
    audit_read(
        db,
        actor,
        "record.read",
        patient_id,
        json!({"records": records.len()}),
    )
    .await?;
    Ok(records)
}

/// The records `scope` covers (the caller read it), with the patient's `files`, unaudited
/// (the caller audits: one entry for a list, one for a whole chart).
pub(crate) async fn list_in(
    db: &Db,
    actor: &Actor,
    patient_id: Uuid,
    scope: &access::Scope,
    files: &[FileMeta],
) -> Result<Vec<Record>> {
    let p = actor.principal()?;
    let own = p.user_id == patient_id;
    let rows = on_db!(db, |pool| sqlx::query_as::<_, RecordRow>(select_records!(
        "AND r.patient_id = $1 ORDER BY r.visited_at DESC, r.id DESC LIMIT 1000"
    ))
    .bind(patient_id)
    .fetch_all(pool)
    .await)?;
    let rows = rows
        .into_iter()
        .filter(|r| scope.covers(r.clinic_id))
        .filter(|r| !own || r.status == RecordStatus::Signed)
        .collect();
    assemble_with(db, rows, files).await
}

/// A removed record as admins see it for audit: who removed it, when and why (not its
/// clinical content).
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Removed {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub clinic_id: Uuid,
    pub doctor_id: Uuid,
    pub status: RecordStatus,
    pub visited_at: DateTime<Utc>,
    pub deleted_at: DateTime<Utc>,
    pub deleted_by: Option<Uuid>,
    pub deleted_reason: Option<String>,
}

/// Removed records, newest first (system admins).
pub async fn removed(db: &Db, actor: &Actor) -> Result<Vec<Removed>> {
    actor.require_system_admin()?;
    const SQL: &str = "SELECT id, patient_id, clinic_id, doctor_id, status, visited_at, deleted_at, deleted_by, deleted_reason \
        FROM visit_records WHERE deleted_at IS NOT NULL ORDER BY deleted_at DESC LIMIT 500";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Removed>(SQL)
        .fetch_all(pool)
        .await)?)
}

/// The patient and clinic of a live record, for the modules that hang things on records
/// (lab orders).
pub(crate) struct RecordRef {
    pub patient_id: Uuid,
    pub clinic_id: Uuid,
}

pub(crate) async fn reference(db: &Db, id: Uuid) -> Result<RecordRef> {
    let row = load(db, id).await?;
    Ok(RecordRef {
        patient_id: row.patient_id,
        clinic_id: row.clinic_id,
    })
}
