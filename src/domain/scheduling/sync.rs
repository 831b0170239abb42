//! The front desk offline: a snapshot of the clinic's next two days to work from, and the
//! commands the desk made without a network, applied when it is back.
//!
//! Each command carries the desk's UUIDv7 and the time it was made. A batch is applied in
//! the order the commands were made, each through the same domain call as online, and
//! answered one by one: applied, already applied (the same id and body seen before:
//! nothing happens twice), conflict (the world moved on meanwhile: the slot was taken, the
//! patient is booked elsewhere then, the visit was cancelled; with the doctor's three
//! nearest free times where they help) or refused (too old, another clinic, a different
//! body under a used id, bad input). The command's id is taken (a row keyed by it) before
//! it is applied and given back when it is not, so two desks sending one command at once
//! apply it once. Every applied command is audited with both times.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::clinics;
use crate::domain::identity::people;
use crate::domain::scheduling::appointments::{self, AppointmentStatus, Visit};
use crate::domain::scheduling::slots;
use crate::domain::validate::Checks;
use crate::error::{Code, Error, Result};
use crate::on_db;

/// The most commands one batch may carry.
pub const MAX_BATCH: usize = 500;

/// The largest batch body, in bytes: 500 commands with long reasons.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// What the desk did offline. Fields a command does not use are ignored (a newer desk may
/// send more).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OfflineAction {
    CheckIn {
        appointment_id: Uuid,
    },
    Complete {
        appointment_id: Uuid,
    },
    NoShow {
        appointment_id: Uuid,
    },
    Cancel {
        appointment_id: Uuid,
        #[serde(default)]
        reason: String,
    },
    /// Books a free time of the snapshot for a patient (provisional until synced).
    Book {
        slot_id: Uuid,
        patient_id: Uuid,
        #[serde(default)]
        reason: String,
    },
    /// A new patient at the desk; `patient_id` is the desk's UUIDv7 for them, which later
    /// commands (a booking) name.
    WalkIn {
        patient_id: Uuid,
        name: String,
        #[serde(default)]
        email: Option<String>,
        #[serde(default)]
        phone: Option<String>,
    },
}

impl OfflineAction {
    fn kind(&self) -> &'static str {
        match self {
            Self::CheckIn { .. } => "check_in",
            Self::Complete { .. } => "complete",
            Self::NoShow { .. } => "no_show",
            Self::Cancel { .. } => "cancel",
            Self::Book { .. } => "book",
            Self::WalkIn { .. } => "walk_in",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OfflineCommand {
    /// The desk's UUIDv7 for this command: resending it changes nothing twice.
    pub id: Uuid,
    /// When the desk made it (its clock).
    pub made_at: DateTime<Utc>,
    #[serde(flatten)]
    pub action: OfflineAction,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfflineBatch {
    pub clinic_id: Uuid,
    #[schema(max_items = 500)]
    pub commands: Vec<OfflineCommand>,
}

crate::text_enum! {
    /// How a command ended.
    pub enum OfflineOutcome {
        Applied = "applied",
        AlreadyApplied = "already_applied",
        Conflict = "conflict",
        Refused = "refused",
    }
}

/// A free time offered instead of one taken meanwhile.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Alternative {
    pub slot_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// `HH:MM` in the clinic's time.
    pub local_time: String,
    pub local_date: NaiveDate,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OfflineAnswer {
    pub id: Uuid,
    pub status: OfflineOutcome,
    /// For a conflict or refusal: `slot_taken`, `patient_busy`, `cancelled_meanwhile`,
    /// `too_late`, `invalid_transition`, `too_old`, `other_clinic`, `id_reused`, or the
    /// error's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    /// The appointment a booking made or a change acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment_id: Option<Uuid>,
    /// The patient a walk-in registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<Uuid>,
}

impl OfflineAnswer {
    fn new(id: Uuid, status: OfflineOutcome) -> Self {
        Self {
            id,
            status,
            code: None,
            reason: None,
            alternatives: Vec::new(),
            appointment_id: None,
            patient_id: None,
        }
    }

    fn not(id: Uuid, status: OfflineOutcome, code: &str, reason: impl Into<String>) -> Self {
        Self {
            code: Some(code.to_owned()),
            reason: Some(reason.into()),
            ..Self::new(id, status)
        }
    }
}

fn digest(c: &OfflineCommand) -> Result<String> {
    let body = serde_json::to_vec(c).map_err(Error::internal)?;
    Ok(Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Applies a batch of the desk's offline commands (its clinic's staff), in the order they
/// were made; one answer per command, in that order.
pub async fn apply(db: &Db, actor: &Actor, batch: OfflineBatch) -> Result<Vec<OfflineAnswer>> {
    clinics::require_staff_of(actor, batch.clinic_id)?;
    if batch.commands.len() > MAX_BATCH {
        let mut checks = Checks::new();
        checks.fail("commands", format!("at most {MAX_BATCH} commands a batch"));
        checks.finish()?;
    }
    let mut commands = batch.commands;
    commands.sort_by_key(|c| (c.made_at, c.id));
    let mut answers = Vec::with_capacity(commands.len());
    for c in &commands {
        answers.push(one(db, actor, batch.clinic_id, c).await?);
    }
    Ok(answers)
}

async fn one(db: &Db, actor: &Actor, clinic_id: Uuid, c: &OfflineCommand) -> Result<OfflineAnswer> {
    let now = Utc::now();
    let digest = digest(c)?;
    // Seen before: the same body is answered as it was; another body is refused.
    if let Some((seen_digest, answer)) = seen(db, c.id).await? {
        return Ok(if answer.is_empty() {
            OfflineAnswer::not(
                c.id,
                OfflineOutcome::Conflict,
                "in_progress",
                "This command is being applied by another request; send it again to read its answer.",
            )
        } else if seen_digest == digest {
            let mut a: OfflineAnswer = serde_json::from_str(&answer).map_err(Error::internal)?;
            a.status = OfflineOutcome::AlreadyApplied;
            a
        } else {
            OfflineAnswer::not(
                c.id,
                OfflineOutcome::Refused,
                "id_reused",
                "Another command was already applied under this id.",
            )
        });
    }
    if c.made_at < now - db.policy().sync_max_age {
        return Ok(OfflineAnswer::not(
            c.id,
            OfflineOutcome::Refused,
            "too_old",
            format!(
                "Made more than {} hours ago; do it again at the desk if it still holds.",
                db.policy().sync_max_age.num_hours()
            ),
        ));
    }
    if c.made_at > now + Duration::minutes(10) {
        return Ok(OfflineAnswer::not(
            c.id,
            OfflineOutcome::Refused,
            "made_in_the_future",
            "Made later than now: the desk's clock is wrong.",
        ));
    }
    // Take the id; a second sender of the same command stops here.
    if !take(db, actor, clinic_id, c, &digest, now).await? {
        return Ok(OfflineAnswer::not(
            c.id,
            OfflineOutcome::Conflict,
            "in_progress",
            "This command is being applied by another request; send it again to read its answer.",
        ));
    }
    let answer = match act(db, actor, clinic_id, c).await {
        Ok(a) => a,
        Err(e) => {
            give_back(db, c.id).await?;
            return Err(e);
        }
    };
    if answer.status == OfflineOutcome::Applied {
        settle(db, actor, clinic_id, c, &answer, now).await?;
    } else {
        give_back(db, c.id).await?;
    }
    Ok(answer)
}

async fn seen(db: &Db, id: Uuid) -> Result<Option<(String, String)>> {
    const SQL: &str = "SELECT body_digest, answer FROM sync_commands WHERE id = $1";
    Ok(on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?)
}

/// Takes the command's id: false when another request holds it.
async fn take(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    c: &OfflineCommand,
    digest: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    const SQL: &str = "INSERT INTO sync_commands (id, clinic_id, actor_id, kind, body_digest, made_at, applied_at, answer) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, '') ON CONFLICT (id) DO NOTHING";
    let mut tx = db.begin().await?;
    let n = crate::exec_tx!(
        &mut tx,
        SQL,
        c.id,
        clinic_id,
        actor.principal()?.user_id,
        c.action.kind(),
        digest,
        c.made_at,
        now
    )?;
    tx.commit().await?;
    Ok(n == 1)
}

async fn give_back(db: &Db, id: Uuid) -> Result<()> {
    const SQL: &str = "DELETE FROM sync_commands WHERE id = $1 AND answer = ''";
    let mut tx = db.begin().await?;
    crate::exec_tx!(&mut tx, SQL, id)?;
    tx.commit().await?;
    Ok(())
}

/// Keeps the answer of an applied command and audits it with both times.
async fn settle(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    c: &OfflineCommand,
    answer: &OfflineAnswer,
    now: DateTime<Utc>,
) -> Result<()> {
    let text = serde_json::to_string(answer).map_err(Error::internal)?;
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE sync_commands SET answer = $2 WHERE id = $1";
    crate::exec_tx!(&mut tx, SQL, c.id, &text)?;
    let subject = match (answer.appointment_id, answer.patient_id) {
        (Some(a), _) => format!("appointment:{a}"),
        (None, Some(p)) => format!("patient:{p}"),
        (None, None) => format!("sync_command:{}", c.id),
    };
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "sync.applied",
            subject,
            clinic_id: Some(clinic_id),
            details: json!({"command": c.id, "kind": c.action.kind(), "made_offline_at": c.made_at, "applied_at": now}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What a domain error means for an offline command: the world moved on (a conflict the
/// desk resolves) or the command cannot be (refused).
fn outcome_of(id: Uuid, e: &Error) -> Option<OfflineAnswer> {
    let status = match e.code() {
        Code::SlotTaken
        | Code::Conflict
        | Code::InvalidTransition
        | Code::TooLate
        | Code::CutoffPassed => OfflineOutcome::Conflict,
        Code::Internal | Code::ServiceUnavailable => return None,
        _ => OfflineOutcome::Refused,
    };
    Some(OfflineAnswer::not(
        id,
        status,
        e.code().as_str(),
        e.for_people(),
    ))
}

async fn act(db: &Db, actor: &Actor, clinic_id: Uuid, c: &OfflineCommand) -> Result<OfflineAnswer> {
    let change =
        |appointment_id, change| change_visit(db, actor, clinic_id, c.id, appointment_id, change);
    match &c.action {
        OfflineAction::CheckIn { appointment_id } => {
            change(*appointment_id, Change::Mark(Visit::CheckedIn)).await
        }
        OfflineAction::Complete { appointment_id } => {
            change(*appointment_id, Change::Mark(Visit::Completed)).await
        }
        OfflineAction::NoShow { appointment_id } => {
            change(*appointment_id, Change::Mark(Visit::NoShow)).await
        }
        OfflineAction::Cancel {
            appointment_id,
            reason,
        } => change(*appointment_id, Change::Cancel(reason)).await,
        OfflineAction::Book {
            slot_id,
            patient_id,
            reason,
        } => book(db, actor, clinic_id, c, *slot_id, *patient_id, reason).await,
        OfflineAction::WalkIn {
            patient_id,
            name,
            email,
            phone,
        } => {
            let done = walk_in(db, actor, clinic_id, *patient_id, name, email, phone).await;
            let mut answer = answered(c.id, done)?;
            answer.patient_id = Some(*patient_id);
            Ok(answer)
        }
    }
}

/// The answer to a domain call: applied, or what its error means for an offline command
/// (an error of ours stays an error).
fn answered(id: Uuid, done: Result<()>) -> Result<OfflineAnswer> {
    match done {
        Ok(()) => Ok(OfflineAnswer::new(id, OfflineOutcome::Applied)),
        Err(e) => {
            let answer = outcome_of(id, &e);
            answer.ok_or(e)
        }
    }
}

/// What the desk did to a visit.
enum Change<'a> {
    Mark(Visit),
    /// With the desk's reason (may be empty).
    Cancel(&'a str),
}

/// Marks or cancels a visit of this clinic; a visit cancelled meanwhile is a conflict.
async fn change_visit(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    id: Uuid,
    appointment_id: Uuid,
    change: Change<'_>,
) -> Result<OfflineAnswer> {
    let a = match appointments::get(db, actor, appointment_id).await {
        Ok(a) => a,
        Err(e) if e.code() == Code::NotFound => {
            return Ok(OfflineAnswer::not(
                id,
                OfflineOutcome::Refused,
                "not_found",
                "No such visit at this clinic.",
            ));
        }
        Err(e) => return Err(e),
    };
    if a.clinic_id != clinic_id {
        return Ok(OfflineAnswer::not(
            id,
            OfflineOutcome::Refused,
            "other_clinic",
            "This visit is at another clinic.",
        ));
    }
    let mut answer = if a.status == AppointmentStatus::Cancelled {
        OfflineAnswer::not(
            id,
            OfflineOutcome::Conflict,
            "cancelled_meanwhile",
            "This visit was cancelled meanwhile.",
        )
    } else {
        let done = match change {
            Change::Mark(to) => appointments::mark(db, actor, appointment_id, to).await,
            Change::Cancel(reason) => {
                let reason = match reason.trim() {
                    "" => "Cancelled at the front desk",
                    _ => reason,
                };
                appointments::cancel(db, actor, appointment_id, reason).await
            }
        };
        answered(id, done.map(drop))?
    };
    answer.appointment_id = Some(appointment_id);
    Ok(answer)
}

async fn book(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    c: &OfflineCommand,
    slot_id: Uuid,
    patient_id: Uuid,
    reason: &str,
) -> Result<OfflineAnswer> {
    let Some((slot, _)) = slots::get(db, slot_id).await? else {
        return Ok(OfflineAnswer::not(
            c.id,
            OfflineOutcome::Refused,
            "not_found",
            "No such time.",
        ));
    };
    if slot.clinic_id != clinic_id {
        return Ok(OfflineAnswer::not(
            c.id,
            OfflineOutcome::Refused,
            "other_clinic",
            "This time is at another clinic.",
        ));
    }
    // Booked elsewhere at that time meanwhile (any clinic: a person is in one place); a
    // booking of this very time is the slot being taken, answered below.
    const BUSY: &str = "SELECT COUNT(*) FROM appointments WHERE patient_id = $1 AND status IN ('booked', 'checked_in') \
        AND starts_at < $3 AND ends_at > $2 AND slot_id <> $4";
    let (busy,): (i64,) = on_db!(db, |pool| sqlx::query_as(BUSY)
        .bind(patient_id)
        .bind(slot.starts_at)
        .bind(slot.ends_at)
        .bind(slot.id)
        .fetch_one(pool)
        .await)?;
    if busy > 0 {
        let mut answer = OfflineAnswer::not(
            c.id,
            OfflineOutcome::Conflict,
            "patient_busy",
            "The patient was booked elsewhere at that time meanwhile.",
        );
        answer.alternatives = alternatives(db, &slot).await?;
        return Ok(answer);
    }
    match appointments::book_for(db, actor, slot_id, patient_id, reason).await {
        Ok(a) => {
            let mut answer = OfflineAnswer::new(c.id, OfflineOutcome::Applied);
            answer.appointment_id = Some(a.id);
            answer.patient_id = Some(patient_id);
            Ok(answer)
        }
        Err(e) => match outcome_of(c.id, &e) {
            Some(mut answer) => {
                if answer.status == OfflineOutcome::Conflict {
                    answer.reason = Some(match e.code() {
                        Code::TooLate => "That time has passed.".into(),
                        _ => "The time was taken online meanwhile.".into(),
                    });
                    answer.code = Some(if e.code() == Code::TooLate {
                        "too_late".into()
                    } else {
                        "slot_taken".into()
                    });
                    answer.alternatives = alternatives(db, &slot).await?;
                }
                Ok(answer)
            }
            None => Err(e),
        },
    }
}

/// The doctor's three free times nearest the one asked for, still ahead.
async fn alternatives(db: &Db, slot: &slots::Slot) -> Result<Vec<Alternative>> {
    let now = Utc::now();
    #[derive(sqlx::FromRow)]
    struct Free {
        id: Uuid,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        local_date: NaiveDate,
        local_minute: i64,
    }
    const AFTER: &str = "SELECT id, starts_at, ends_at, local_date, local_minute FROM slots \
        WHERE doctor_id = $1 AND starts_at >= $2 AND starts_at > $3 AND id <> $4 AND (status = 'open' OR (status = 'held' AND hold_expires_at <= $3)) \
        ORDER BY starts_at LIMIT 3";
    const BEFORE: &str = "SELECT id, starts_at, ends_at, local_date, local_minute FROM slots \
        WHERE doctor_id = $1 AND starts_at < $2 AND starts_at > $3 AND id <> $4 AND (status = 'open' OR (status = 'held' AND hold_expires_at <= $3)) \
        ORDER BY starts_at DESC LIMIT 3";
    let mut found: Vec<Free> = Vec::new();
    for sql in [AFTER, BEFORE] {
        let rows: Vec<Free> = on_db!(db, |pool| sqlx::query_as(sql)
            .bind(slot.doctor_id)
            .bind(slot.starts_at)
            .bind(now)
            .bind(slot.id)
            .fetch_all(pool)
            .await)?;
        found.extend(rows);
    }
    found.sort_by_key(|f| {
        (
            (f.starts_at - slot.starts_at).num_seconds().abs(),
            f.starts_at,
        )
    });
    let mut nearest: Vec<Alternative> = found
        .into_iter()
        .take(3)
        .map(|f| Alternative {
            slot_id: f.id,
            starts_at: f.starts_at,
            ends_at: f.ends_at,
            local_time: format!("{:02}:{:02}", f.local_minute / 60, f.local_minute % 60),
            local_date: f.local_date,
        })
        .collect();
    nearest.sort_by_key(|a| a.starts_at);
    Ok(nearest)
}

/// Registers a new patient at the desk under the desk's id for them: an account without a
/// password (they can claim it by resetting one with the email), known to the clinic.
async fn walk_in(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    patient_id: Uuid,
    name: &str,
    email: &Option<String>,
    phone: &Option<String>,
) -> Result<()> {
    let mut checks = Checks::new();
    let name = checks.line("name", name, 2, 100);
    let email = email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| checks.email("email", e));
    let phone = phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| checks.phone("phone", p));
    if email.is_none() && phone.is_none() {
        checks.fail("email", "give an email or a phone to reach the patient");
    }
    checks.finish()?;
    // Without an email the account gets an address that never receives mail; the phone
    // reaches them.
    let email_given = email.is_some();
    let address = email.unwrap_or_else(|| format!("walk-in-{patient_id}@patients.invalid"));
    let now = Utc::now();
    let mut tx = db.begin().await?;
    people::insert_with_id(
        &mut tx,
        patient_id,
        people::NewUser {
            email: &address,
            display_name: &name,
            password_hash: None,
            verified: false,
            language: Default::default(),
        },
        now,
    )
    .await?;
    if let Some(p) = &phone {
        // Without an email, messages go by SMS when the clinic has a provider for it.
        let channel = if email_given { "email" } else { "sms" };
        const PHONE: &str = "UPDATE users SET phone = $2, notify_channel = $3 WHERE id = $1";
        crate::exec_tx!(&mut tx, PHONE, patient_id, p, channel)?;
    }
    clinics::patients::register(&mut tx, clinic_id, patient_id, now).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "patient.registered_at_desk",
            subject: format!("patient:{patient_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"by": "walk_in"}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---- The snapshot ----------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SnapshotDoctor {
    pub id: Uuid,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct SnapshotVisit {
    pub id: Uuid,
    pub doctor_id: Uuid,
    pub patient_id: Uuid,
    pub patient_name: String,
    pub starts_at: DateTime<Utc>,
    pub local_date: NaiveDate,
    #[serde(skip)]
    pub local_minute: i64,
    #[sqlx(skip)]
    pub local_time: String,
    pub status: AppointmentStatus,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SnapshotSlot {
    pub id: Uuid,
    pub doctor_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub local_date: NaiveDate,
    pub local_time: String,
    /// Bookable now (open, or a hold that lapsed).
    pub free: bool,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct SnapshotPatient {
    pub id: Uuid,
    pub name: String,
    pub phone: Option<String>,
    pub email: String,
}

/// What the desk works from offline: today's and tomorrow's visits and free times of the
/// clinic's doctors (or more days ahead, up to a week) and the patients seen lately, or
/// with `since` the visits and patients changed after it (the times are always whole:
/// they change by the minute).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Snapshot {
    pub clinic_id: Uuid,
    pub clinic_name: String,
    pub time_zone: String,
    /// Pass it as `since` next time.
    pub generated_at: DateTime<Utc>,
    /// Today and tomorrow (or the days asked for), in the clinic's zone.
    pub days: Vec<NaiveDate>,
    /// Whether `appointments` and `patients` are whole lists (no `since`).
    pub full: bool,
    pub doctors: Vec<SnapshotDoctor>,
    pub appointments: Vec<SnapshotVisit>,
    pub slots: Vec<SnapshotSlot>,
    pub patients: Vec<SnapshotPatient>,
}

/// The most days a snapshot covers.
pub const MAX_SNAPSHOT_DAYS: u32 = 7;

/// How far back the snapshot's patients go: those seen or registered lately.
const RECENT_DAYS: i64 = 30;

fn hh_mm(minute: i64) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// The snapshot for the clinic's staff; audited (it lists patients).
pub async fn snapshot(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    since: Option<DateTime<Utc>>,
    days: u32,
) -> Result<Snapshot> {
    clinics::require_staff_of(actor, clinic_id)?;
    let days = days.clamp(1, MAX_SNAPSHOT_DAYS);
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    // A little before now, so a change committed while this is read shows next time.
    let generated_at = Utc::now() - Duration::seconds(2);
    let today = Utc::now().with_timezone(&clinic.tz()).date_naive();
    let last = today + chrono::Days::new(u64::from(days) - 1);
    let doctors = clinics::doctors::of_clinic(db, clinic_id)
        .await?
        .into_iter()
        .map(|d| SnapshotDoctor {
            id: d.id,
            name: d.display_name,
        })
        .collect();
    const VISITS: &str = "SELECT a.id, a.doctor_id, a.patient_id, u.display_name AS patient_name, a.starts_at, s.local_date, \
        s.local_minute, a.status, a.updated_at FROM appointments a JOIN slots s ON s.id = a.slot_id JOIN users u ON u.id = a.patient_id \
        WHERE a.clinic_id = $1 AND s.local_date >= $2 AND s.local_date <= $3 AND ($4 IS NULL OR a.updated_at > $4) \
        ORDER BY a.starts_at LIMIT 5000";
    let mut appointments: Vec<SnapshotVisit> = on_db!(db, |pool| sqlx::query_as(VISITS)
        .bind(clinic_id)
        .bind(today)
        .bind(last)
        .bind(since)
        .fetch_all(pool)
        .await)?;
    for a in &mut appointments {
        a.local_time = hh_mm(a.local_minute);
    }
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        doctor_id: Uuid,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        local_date: NaiveDate,
        local_minute: i64,
        status: String,
        hold_expires_at: Option<DateTime<Utc>>,
    }
    const SLOTS: &str = "SELECT id, doctor_id, starts_at, ends_at, local_date, local_minute, status, hold_expires_at FROM slots \
        WHERE clinic_id = $1 AND local_date >= $2 AND local_date <= $3 AND status <> 'blocked' ORDER BY starts_at LIMIT 5000";
    let rows: Vec<Row> = on_db!(db, |pool| sqlx::query_as(SLOTS)
        .bind(clinic_id)
        .bind(today)
        .bind(last)
        .fetch_all(pool)
        .await)?;
    let now = Utc::now();
    let slots = rows
        .into_iter()
        .map(|r| SnapshotSlot {
            free: r.starts_at > now
                && (r.status == "open"
                    || (r.status == "held" && r.hold_expires_at.is_some_and(|t| t <= now))),
            id: r.id,
            doctor_id: r.doctor_id,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            local_date: r.local_date,
            local_time: hh_mm(r.local_minute),
        })
        .collect();
    let recent = now - Duration::days(RECENT_DAYS);
    const PATIENTS: &str = "SELECT u.id, u.display_name AS name, u.phone, u.email FROM users u WHERE u.deactivated_at IS NULL AND (\
        u.id IN (SELECT patient_id FROM appointments WHERE clinic_id = $1 AND starts_at >= $2 AND ($3 IS NULL OR updated_at > $3)) \
        OR u.id IN (SELECT patient_id FROM clinic_patients WHERE clinic_id = $1 AND created_at >= $2 AND ($3 IS NULL OR created_at > $3))) \
        ORDER BY u.display_name LIMIT 5000";
    let mut patients: Vec<SnapshotPatient> = on_db!(db, |pool| sqlx::query_as(PATIENTS)
        .bind(clinic_id)
        .bind(recent)
        .bind(since)
        .fetch_all(pool)
        .await)?;
    for p in &mut patients {
        if p.email.ends_with("@patients.invalid") {
            p.email.clear();
        }
    }
    audit::record_alone(
        db,
        actor.user_id(),
        Entry {
            action: "sync.snapshot",
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"since": since, "appointments": appointments.len(), "patients": patients.len()}),
        },
    )
    .await?;
    Ok(Snapshot {
        clinic_id,
        clinic_name: clinic.name,
        time_zone: clinic.time_zone.to_string(),
        generated_at,
        days: today.iter_days().take(days as usize).collect(),
        full: since.is_none(),
        doctors,
        appointments,
        slots,
        patients,
    })
}
