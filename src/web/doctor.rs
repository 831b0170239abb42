//! The doctors' pages (`/doctor`): today's appointments with Completed / No-show, their
//! patients, and per patient the chart (profile, visit records with prescriptions,
//! addenda, files and transcripts, labs with abnormal values marked), forms to write, edit
//! and sign a record (several diagnoses and prescriptions), amend a signed one, attach
//! files, paste or upload a consultation to transcribe and have the model draft the
//! record from it, order labs, enter and review results, and the notes with the checklist
//! and plan drawn from them.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tera::Context;
use uuid::Uuid;

use crate::domain::care::{care_plans, notes};
use crate::domain::clinical::prescriptions::{Prescription, PrescriptionBody, Route};
use crate::domain::clinical::transcripts::{self, Source};
use crate::domain::clinical::vitals::Vitals;
use crate::domain::clinical::{chart, files, labs, records};
use crate::domain::clinics::doctors;
use crate::domain::scheduling::appointments::{self, Visit};
use crate::error::{Code, Error, FieldError, Result};
use crate::state::AppState;
use crate::web::pages::{Fields, act, error_page, render};
use crate::web::session::{ConsoleUser, SignedIn};

fn service(s: &AppState) -> &str {
    &s.config.agent.service_name
}

pub async fn today(State(s): State<AppState>, SignedIn(user): SignedIn) -> Response {
    if !user.is_doctor() {
        return Redirect::to("/admin").into_response();
    }
    let ids = match doctors::ids_of_user(&s.db, user.principal.user_id).await {
        Ok(ids) => ids,
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    let now = Utc::now();
    let mut days = Vec::new();
    let mut patients = BTreeMap::new();
    let mut today_label = String::new();
    for id in ids {
        let doctor = match doctors::get(&s.db, id).await {
            Ok(Some(doctor)) => doctor,
            Ok(None) => continue,
            Err(e) => return error_page(&e, service(&s), Some(&user)),
        };
        let tz = doctor.time_zone.tz();
        let date = now.with_timezone(&tz).date_naive();
        today_label = date.format("%A %-d %B %Y").to_string();
        let list = match appointments::doctor_day(&s.db, &user.actor, id, date).await {
            Ok(l) => l,
            Err(e) => return error_page(&e, service(&s), Some(&user)),
        };
        for a in &list {
            patients.insert(
                a.patient_id,
                serde_json::json!({"id": a.patient_id, "display_name": a.patient_name, "email": ""}),
            );
        }
        let mine = match doctors::patients(&s.db, &user.actor, id).await {
            Ok(mine) => mine,
            Err(e) => return error_page(&e, service(&s), Some(&user)),
        };
        for p in mine {
            patients.insert(
                p.id,
                serde_json::json!({"id": p.id, "display_name": p.display_name, "email": p.email}),
            );
        }
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|a| {
                serde_json::json!({
                    "id": a.id, "patient_id": a.patient_id, "patient_name": a.patient_name,
                    "reason": a.reason, "status": a.status, "past": a.starts_at <= now,
                    "local_time": a.starts_at.with_timezone(&tz).format("%H:%M").to_string(),
                })
            })
            .collect();
        days.push(serde_json::json!({"doctor": doctor.display_name, "clinic": doctor.clinic_name, "appointments": rows}));
    }
    let shifts = match crate::domain::scheduling::shifts::mine(
        &s.db,
        &user.actor,
        &crate::domain::scheduling::shifts::DaysQuery {
            from: None,
            days: Some(7),
        },
    )
    .await
    {
        Ok(list) => list,
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    let mut c = Context::new();
    c.insert("my_shifts", &shifts);
    c.insert("today", &today_label);
    c.insert("days", &days);
    c.insert("patients", &patients.into_values().collect::<Vec<_>>());
    render("doctor.html", "My day", service(&s), Some(&user), c)
}

/// What the chart shows besides the record: a note that could not be saved (back in its
/// form), or a record's fields as the model drafted them (in that record's form).
enum Shown<'a> {
    Chart(Option<Done>),
    NoteFailed(String, &'a str),
    Drafted(Uuid, RecordFields),
}

/// A draft record's form, filled from the record or from the model's draft of it.
#[derive(Serialize)]
struct Editing {
    id: Uuid,
    fields: RecordFields,
    drafted: bool,
}

async fn patient_page(s: &AppState, user: &ConsoleUser, id: Uuid, shown: Shown<'_>) -> Response {
    let list = match notes::list(&s.db, &user.actor, id).await {
        Ok(l) => l,
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    let steps = match care_plans::actionable_steps(&s.db, &user.actor, id).await {
        Ok(st) => st,
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    let name = match crate::domain::identity::people::find(&s.db, id).await {
        Ok(found) => found.map(|u| u.display_name).unwrap_or_default(),
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    let chart = match chart::open(&s.db, &user.actor, id).await {
        Ok(c) => c,
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    let tests = match labs::catalogue() {
        Ok(t) => t,
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    let mut c = Context::new();
    c.insert("chart", &chart);
    c.insert("lab_tests", tests);
    c.insert("patient_id", &id);
    c.insert("patient_name", &name);
    c.insert("notes", &list);
    c.insert("steps", &steps);
    c.insert("blank", &RecordFields::blank());
    c.insert("routes", Route::ALL);
    let mut drafted = None;
    match shown {
        Shown::Chart(done) => {
            if let Some(done) = done {
                c.insert("flash", done.said());
            }
        }
        Shown::NoteFailed(error, draft) => {
            c.insert("error", &error);
            c.insert("draft", draft);
        }
        Shown::Drafted(record, fields) => drafted = Some((record, fields)),
    }
    let editing: Vec<Editing> = chart
        .records
        .iter()
        .filter(|r| r.status == records::RecordStatus::Draft)
        .map(|r| match drafted.take_if(|(id, _)| *id == r.id) {
            Some((id, fields)) => Editing {
                id,
                fields,
                drafted: true,
            },
            None => Editing {
                id: r.id,
                fields: RecordFields::of_record(r),
                drafted: false,
            },
        })
        .collect();
    c.insert("editing", &editing);
    render("patient.html", &name, service(s), Some(user), c)
}

#[derive(Deserialize)]
pub struct ChartQuery {
    /// A `Done` key; anything else is ignored.
    done: Option<String>,
}

pub async fn patient(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    axum::extract::Query(q): axum::extract::Query<ChartQuery>,
) -> Response {
    let done = q
        .done
        .and_then(|d| serde_json::from_value::<Done>(serde_json::Value::String(d)).ok());
    patient_page(&s, &user, id, Shown::Chart(done)).await
}

#[derive(Deserialize)]
pub struct NoteForm {
    csrf: String,
    text: String,
}

pub async fn submit_note(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<NoteForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&e, service(&s), Some(&user));
    }
    if let Err(e) = notes::require_writer(&s.db, &user.actor, id).await {
        return error_page(&e, service(&s), Some(&user));
    }
    let saved = match notes::check_text(&f.text) {
        Ok(text) => match s.agent.extract_plan(&text).await {
            Ok(extraction) => notes::submit(&s.db, &user.actor, id, &text, &extraction).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => Redirect::to(&chart_of(id, Done::Note)).into_response(),
        // Nothing was stored: the note goes back into the form.
        Err(e) => patient_page(&s, &user, id, Shown::NoteFailed(e.for_people(), &f.text)).await,
    }
}

#[derive(Deserialize)]
pub struct MarkForm {
    csrf: String,
    to: String,
}

pub async fn mark(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<MarkForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&e, service(&s), Some(&user));
    }
    let to = match f.to.as_str() {
        "completed" => Visit::Completed,
        "no_show" => Visit::NoShow,
        "checked_in" => Visit::CheckedIn,
        _ => {
            return error_page(
                &Error::new(
                    Code::ValidationFailed,
                    "to: completed, no_show or checked_in",
                ),
                service(&s),
                Some(&user),
            );
        }
    };
    match appointments::mark(&s.db, &user.actor, id, to).await {
        Ok(_) => Redirect::to("/doctor").into_response(),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

/// How many diagnosis and prescription rows a record form offers beyond those it holds.
const BLANK_ROWS: usize = 2;

/// The vital signs a record form asks for: the field's name and its label.
const VITALS: &[(&str, &str)] = &[
    ("systolic_mmhg", "Systolic (mmHg)"),
    ("diastolic_mmhg", "Diastolic (mmHg)"),
    ("heart_rate_bpm", "Heart rate (bpm)"),
    ("temperature_c", "Temperature (°C)"),
    ("spo2_percent", "SpO₂ (%)"),
    ("respiratory_rate_per_min", "Respiratory rate (/min)"),
    ("weight_kg", "Weight (kg)"),
    ("height_cm", "Height (cm)"),
];

#[derive(Serialize)]
struct VitalRow {
    name: &'static str,
    label: &'static str,
    value: String,
}

#[derive(Serialize, Default)]
struct DiagnosisRow {
    text: String,
    code: String,
}

#[derive(Serialize)]
struct PrescriptionRow {
    medicine: String,
    dose: String,
    route: &'static str,
    times_per_day: String,
    every_hours: String,
    duration_days: String,
    quantity: String,
    refills: String,
    instructions: String,
}

impl Default for PrescriptionRow {
    fn default() -> Self {
        Self {
            medicine: String::new(),
            dose: String::new(),
            route: Route::Oral.as_str(),
            times_per_day: String::new(),
            every_hours: String::new(),
            duration_days: String::new(),
            quantity: String::new(),
            refills: "0".into(),
            instructions: String::new(),
        }
    }
}

/// A record form's values as text, with blank rows for more diagnoses and prescriptions.
#[derive(Serialize)]
struct RecordFields {
    chief_complaint: String,
    findings: String,
    plan: String,
    follow_up_days: String,
    vitals: Vec<VitalRow>,
    diagnoses: Vec<DiagnosisRow>,
    prescriptions: Vec<PrescriptionRow>,
}

fn text_of<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl RecordFields {
    fn new(
        chief_complaint: &str,
        vitals: &Vitals,
        findings: &str,
        diagnoses: Vec<DiagnosisRow>,
        plan: &str,
        follow_up_days: Option<i64>,
        prescriptions: Vec<PrescriptionRow>,
    ) -> Self {
        let measured = serde_json::to_value(vitals).unwrap_or_default();
        let mut diagnoses = diagnoses;
        let mut prescriptions = prescriptions;
        let rows = |n: usize| (n + BLANK_ROWS).min(20);
        diagnoses.resize_with(rows(diagnoses.len()), DiagnosisRow::default);
        prescriptions.resize_with(rows(prescriptions.len()), PrescriptionRow::default);
        Self {
            chief_complaint: chief_complaint.to_owned(),
            findings: findings.to_owned(),
            plan: plan.to_owned(),
            follow_up_days: text_of(follow_up_days),
            vitals: VITALS
                .iter()
                .map(|&(name, label)| VitalRow {
                    name,
                    label,
                    value: measured[name]
                        .as_f64()
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                })
                .collect(),
            diagnoses,
            prescriptions,
        }
    }

    fn blank() -> Self {
        Self::new("", &Vitals::default(), "", Vec::new(), "", None, Vec::new())
    }

    fn of_record(r: &records::Record) -> Self {
        let diagnoses = r
            .diagnoses
            .iter()
            .map(|d| DiagnosisRow {
                text: d.text.clone(),
                code: d.code.clone().unwrap_or_default(),
            })
            .collect();
        let prescriptions = r.prescriptions.iter().map(prescription_row).collect();
        Self::new(
            &r.chief_complaint,
            &r.vitals.vitals,
            &r.findings,
            diagnoses,
            &r.plan,
            r.follow_up_days,
            prescriptions,
        )
    }

    /// A model's draft over a record: the drafted fields; the prescriptions stay the
    /// record's (a draft has none).
    fn of_draft(draft: &records::RecordDraft, r: &records::Record) -> Self {
        let diagnoses = draft
            .diagnoses
            .iter()
            .map(|d| DiagnosisRow {
                text: d.text.clone(),
                code: d.code.clone().unwrap_or_default(),
            })
            .collect();
        let prescriptions = r.prescriptions.iter().map(prescription_row).collect();
        Self::new(
            &draft.chief_complaint,
            &draft.vitals,
            &draft.findings,
            diagnoses,
            &draft.plan,
            draft.follow_up_days,
            prescriptions,
        )
    }
}

fn prescription_row(p: &Prescription) -> PrescriptionRow {
    PrescriptionRow {
        medicine: p.medicine.clone(),
        dose: p.dose.clone(),
        route: p.route.as_str(),
        times_per_day: text_of(p.times_per_day),
        every_hours: text_of(p.every_hours),
        duration_days: text_of(p.duration_days),
        quantity: p.quantity.to_string(),
        refills: p.refills.to_string(),
        instructions: p.instructions.clone(),
    }
}

impl Fields {
    /// The record the form describes; rows left empty are skipped.
    fn record(&self) -> Result<records::RecordBody> {
        let mut vitals = serde_json::Map::new();
        for (name, _) in VITALS {
            let key = format!("vitals.{name}");
            if let Some(v) = number::<f64>(&key, self.get(&key))? {
                vitals.insert((*name).into(), v.into());
            }
        }
        let vitals: Vitals = serde_json::from_value(vitals.into()).map_err(Error::internal)?;
        let mut body = records::RecordBody {
            chief_complaint: self.get("chief_complaint").to_owned(),
            vitals,
            findings: self.get("findings").to_owned(),
            plan: self.get("plan").to_owned(),
            follow_up_days: number("follow_up_days", self.get("follow_up_days"))?,
            ..records::RecordBody::default()
        };
        for i in 0..20 {
            let text = self.get(&format!("diagnosis.{i}")).trim();
            if !text.is_empty() {
                let code = self.get(&format!("icd10.{i}")).trim();
                body.diagnoses.push(records::DiagnosisBody {
                    text: text.to_owned(),
                    code: Some(code.to_owned()).filter(|c| !c.is_empty()),
                });
            }
            let field = |name: &str| format!("{name}.{i}");
            let medicine = self.get(&field("medicine")).trim();
            if medicine.is_empty() {
                continue;
            }
            let route = self.get(&field("route"));
            let route = Route::ALL
                .iter()
                .copied()
                .find(|r| r.as_str() == route)
                .unwrap_or(Route::Other);
            let whole = |name: &str| number::<i64>(&field(name), self.get(&field(name)));
            body.prescriptions.push(PrescriptionBody {
                medicine: medicine.to_owned(),
                dose: self.get(&field("dose")).to_owned(),
                route,
                times_per_day: whole("times_per_day")?,
                every_hours: whole("every_hours")?,
                duration_days: whole("duration_days")?,
                quantity: whole("quantity")?.unwrap_or(1),
                refills: whole("refills")?.unwrap_or(0),
                instructions: self.get(&field("instructions")).to_owned(),
            });
        }
        Ok(body)
    }
}

/// A form field as a number: empty is "not given", anything else must parse.
fn number<T: std::str::FromStr>(field: &str, value: &str) -> Result<Option<T>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        Error::validation(vec![FieldError {
            field: field.into(),
            message: format!("{value:?} is not a number"),
        }])
    })
}

/// What a chart form did, said on the chart it returns to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Done {
    Note,
    RecordSaved,
    Signed,
    Amended,
    Transcript,
    Attached,
    Ordered,
    Results,
    Reviewed,
}

impl Done {
    fn said(self) -> &'static str {
        match self {
            Done::Note => {
                "The note is saved; its checklist and plan are below and the reminders are scheduled."
            }
            Done::RecordSaved => "The visit record is saved as a draft.",
            Done::Signed => {
                "The visit record is signed; its prescriptions are in the patient's care plan."
            }
            Done::Amended => "The addendum is added to the signed record.",
            Done::Transcript => "The transcript is kept on the record.",
            Done::Attached => "The file is attached.",
            Done::Ordered => "The lab test is ordered.",
            Done::Results => "The results are saved.",
            Done::Reviewed => "The results are marked reviewed; the patient is told.",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Done::Note => "note",
            Done::RecordSaved => "record_saved",
            Done::Signed => "signed",
            Done::Amended => "amended",
            Done::Transcript => "transcript",
            Done::Attached => "attached",
            Done::Ordered => "ordered",
            Done::Results => "results",
            Done::Reviewed => "reviewed",
        }
    }
}

fn chart_of(patient_id: Uuid, done: Done) -> String {
    format!("/doctor/patients/{patient_id}?done={}", done.key())
}

pub async fn new_record(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        records::create(&s.db, &user.actor, id, &f.record()?).await?;
        Ok(chart_of(id, Done::RecordSaved))
    })
    .await
}

/// A draft replaced by what the form holds.
pub async fn update_record(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let r = records::update(&s.db, &user.actor, id, &f.record()?).await?;
        Ok(chart_of(r.patient_id, Done::RecordSaved))
    })
    .await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn sign_record(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        let signed = records::sign(&s.db, &user.actor, id).await?;
        Ok(chart_of(signed.record.patient_id, Done::Signed))
    })
    .await
}

#[derive(Deserialize)]
pub struct AddendumForm {
    csrf: String,
    reason: String,
    text: String,
}

/// A signed record amended: who and when are the signed-in doctor and now.
pub async fn amend_record(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<AddendumForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        let r = records::amend(&s.db, &user.actor, id, &f.reason, &f.text).await?;
        Ok(chart_of(r.patient_id, Done::Amended))
    })
    .await
}

#[derive(Deserialize)]
pub struct TranscriptForm {
    csrf: String,
    text: String,
}

/// A transcript pasted onto a record.
pub async fn paste_transcript(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<TranscriptForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        transcripts::store(&s.db, &user.actor, id, Source::Pasted, &f.text, None).await?;
        let r = records::get(&s.db, &user.actor, id).await?;
        Ok(chart_of(r.patient_id, Done::Transcript))
    })
    .await
}

/// The record's fields drafted by the model from its latest transcript, shown in the
/// record's form for the doctor to review and save; nothing is stored here.
pub async fn draft_from_transcript(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&e, service(&s), Some(&user));
    }
    let drafted = async {
        transcripts::require_writer(&s.db, &user.actor, id).await?;
        let record = records::get(&s.db, &user.actor, id).await?;
        let transcript = transcripts::latest(&s.db, &user.actor, id).await?;
        let draft = s.agent.draft_record(&transcript.text).await?;
        Ok::<_, Error>((record, draft))
    };
    match drafted.await {
        Ok((record, draft)) => {
            let fields = RecordFields::of_draft(&draft, &record);
            let shown = Shown::Drafted(id, fields);
            patient_page(&s, &user, record.patient_id, shown).await
        }
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

/// What an uploaded form held: its text fields and its one file.
struct Upload {
    csrf: String,
    name: String,
    declared: Option<String>,
    bytes: Vec<u8>,
}

/// Reads a multipart form with a `csrf` field and a `file` field of at most `max` bytes.
async fn upload_of(mut form: Multipart, max: usize, too_large: Error) -> Result<Upload> {
    let mut upload = Upload {
        csrf: String::new(),
        name: String::new(),
        declared: None,
        bytes: Vec::new(),
    };
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        Error::new(
            Code::ValidationFailed,
            format!("The form could not be read: {e}"),
        )
    };
    while let Some(mut field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("csrf") => upload.csrf = field.text().await.map_err(unreadable)?,
            Some("file") => {
                upload.name = field.file_name().unwrap_or("file").to_owned();
                upload.declared = field.content_type().map(str::to_owned);
                while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                    if upload.bytes.len() + chunk.len() > max {
                        return Err(too_large);
                    }
                    upload.bytes.extend_from_slice(&chunk);
                }
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// A PDF, JPEG or PNG from an upload form attached to a record or a lab order; back to the
/// record's chart.
async fn attach(s: &AppState, user: &ConsoleUser, to: files::Attach, form: Multipart) -> Response {
    let max = s.config.max_file_bytes;
    let upload = match upload_of(form, max, files::too_large(max)).await {
        Ok(u) => u,
        Err(e) => return error_page(&e, service(s), Some(user)),
    };
    act(service(s), user, &upload.csrf, async {
        let (name, declared) = (&upload.name, upload.declared.as_deref());
        let store = s.files.as_ref();
        let bytes = &upload.bytes;
        let meta = files::upload(&s.db, store, &user.actor, to, name, declared, bytes, max).await?;
        let r = records::get(&s.db, &user.actor, meta.record_id).await?;
        Ok(chart_of(r.patient_id, Done::Attached))
    })
    .await
}

pub async fn upload_record_file(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    form: Multipart,
) -> Response {
    attach(&s, &user, files::Attach::Record(id), form).await
}

/// A recording of the consultation, transcribed onto the record (the audio is not kept).
pub async fn upload_audio(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    form: Multipart,
) -> Response {
    let max = s.config.llm.max_audio_bytes;
    let too_large = crate::http::clinical::audio_too_large(max);
    let upload = match upload_of(form, max, too_large).await {
        Ok(u) => u,
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    act(service(&s), &user, &upload.csrf, async {
        transcripts::require_writer(&s.db, &user.actor, id).await?;
        let mime = crate::http::clinical::audio_type(&upload.bytes)?;
        let (text, model) = s
            .agent
            .transcribe(&upload.bytes, &upload.name, mime)
            .await?;
        transcripts::store(&s.db, &user.actor, id, Source::Audio, &text, Some(&model)).await?;
        let r = records::get(&s.db, &user.actor, id).await?;
        Ok(chart_of(r.patient_id, Done::Transcript))
    })
    .await
}

#[derive(Deserialize)]
pub struct OrderForm {
    csrf: String,
    patient: Uuid,
    code: String,
}

pub async fn order_lab(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<OrderForm>,
) -> Response {
    let body = labs::OrderBody {
        tests: vec![labs::OrderItem {
            code: Some(f.code.clone()),
            name: None,
        }],
    };
    act(service(&s), &user, &f.csrf, async {
        labs::order(&s.db, &user.actor, id, &body).await?;
        Ok(chart_of(f.patient, Done::Ordered))
    })
    .await
}

/// Results as the form sends them: `value.<analyte code>` fields, empty ones skipped.
pub async fn lab_results(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let mut values = Vec::new();
        for (key, value) in &f.0 {
            let Some(code) = key.strip_prefix("value.") else {
                continue;
            };
            if let Some(v) = number::<f64>(key, value)? {
                values.push(labs::ResultItem {
                    code: code.to_owned(),
                    name: None,
                    value: Some(v),
                    text: None,
                    unit: None,
                    low: None,
                    high: None,
                });
            }
        }
        let body = labs::ResultsBody { values };
        let order = labs::enter_results(&s.db, &user.actor, id, &body).await?;
        Ok(chart_of(order.patient_id, Done::Results))
    })
    .await
}

/// A lab report or scan attached to an order from the chart.
pub async fn upload_lab_file(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    form: Multipart,
) -> Response {
    attach(&s, &user, files::Attach::LabOrder(id), form).await
}

pub async fn lab_review(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Response {
    act(service(&s), &user, &f.csrf, async {
        let order = labs::review(&s.db, &user.actor, id).await?;
        Ok(chart_of(order.patient_id, Done::Reviewed))
    })
    .await
}
