//! Appointments: hold a slot, confirm it, book directly (staff), reschedule, cancel,
//! and move through the visit (checked in, completed, no-show). A slot is claimed only
//! by a conditional UPDATE of its status inside the transaction, and a partial unique
//! index refuses a second live appointment on one slot: no double booking, ever.

use chrono::{DateTime, Duration, NaiveDate, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Batch, Db, Policy, Tx};
use crate::domain::actor::{Actor, Principal, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::clinics;
use crate::domain::clinics::doctors;
use crate::domain::scheduling::slots::{self, Slot};
use crate::error::{Code, Error, Result};
use crate::notify::language::Language;
use crate::notify::messages::{self, Kind, Moment};
use crate::notify::{ics, outbox};
use crate::zone::TimeZone;
use crate::{on_db, on_tx};

/// How many slots one patient may hold at once (holds are for deciding, not hoarding).
pub const MAX_ACTIVE_HOLDS: i64 = 3;

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Hold {
    pub slot_id: Uuid,
    pub doctor_id: Uuid,
    pub doctor_name: String,
    pub clinic_id: Uuid,
    pub clinic_name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub local_date: NaiveDate,
    pub local_time: String,
    pub time_zone: TimeZone,
    pub expires_at: DateTime<Utc>,
}

crate::text_enum! {
    /// Where a visit stands.
    pub enum AppointmentStatus {
        Booked = "booked",
        CheckedIn = "checked_in",
        Completed = "completed",
        NoShow = "no_show",
        Cancelled = "cancelled",
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Appointment {
    pub id: Uuid,
    pub slot_id: Uuid,
    pub patient_id: Uuid,
    pub patient_name: String,
    pub doctor_id: Uuid,
    pub doctor_name: String,
    pub clinic_id: Uuid,
    pub clinic_name: String,
    pub time_zone: TimeZone,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: AppointmentStatus,
    pub reason: String,
    pub cancel_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A visit's reason and a cancellation's reason are what patients wrote, often about their
/// health: stored sealed, each with its appointment as context.
fn reason_context(id: Uuid) -> Vec<u8> {
    format!("appointment:{id}:reason").into_bytes()
}

fn cancel_reason_context(id: Uuid) -> Vec<u8> {
    format!("appointment:{id}:cancel_reason").into_bytes()
}

impl Appointment {
    /// The row as read, its reasons opened.
    fn opened(mut self, policy: &Policy) -> Result<Self> {
        let unreadable = |e| Error::internal(format!("appointment {}: {e}", self.id));
        self.reason = policy
            .sealer
            .open_text(&self.reason, &reason_context(self.id))
            .map_err(unreadable)?;
        if let Some(r) = &self.cancel_reason {
            self.cancel_reason = Some(
                policy
                    .sealer
                    .open_text(r, &cancel_reason_context(self.id))
                    .map_err(unreadable)?,
            );
        }
        Ok(self)
    }
}

fn opened_all(db: &Db, rows: Vec<Appointment>) -> Result<Vec<Appointment>> {
    rows.into_iter().map(|a| a.opened(db.policy())).collect()
}

macro_rules! select_appointments {
    ($tail:literal) => {
        concat!(
            "SELECT a.id, a.slot_id, a.patient_id, u.display_name AS patient_name, a.doctor_id, d.display_name AS doctor_name, ",
            "a.clinic_id, c.name AS clinic_name, c.time_zone, a.starts_at, a.ends_at, a.status, a.reason, a.cancel_reason, a.created_at ",
            "FROM appointments a JOIN users u ON u.id = a.patient_id JOIN doctors d ON d.id = a.doctor_id ",
            "JOIN clinics c ON c.id = a.clinic_id ",
            $tail
        )
    };
}

/// What a patient is told when another booking got the time first.
const SLOT_TAKEN: &str = "That time has just been taken; please pick another.";

fn slot_taken() -> Error {
    Error::new(Code::SlotTaken, SLOT_TAKEN)
}

/// A second live appointment on one slot, refused by the partial unique index.
fn taken_meanwhile(e: sqlx::Error) -> Error {
    Error::from(e).on_unique("appointments_live_slot_key", Code::SlotTaken, SLOT_TAKEN)
}

fn patient(actor: &Actor) -> Result<&Principal> {
    let p = actor
        .principal()
        .map_err(|_| Error::new(Code::Unauthenticated, "Sign in to book an appointment."))?;
    if p.has_role(Role::Patient) {
        Ok(p)
    } else {
        Err(Error::new(
            Code::Forbidden,
            "Only patient accounts book for themselves.",
        ))
    }
}

/// A slot with what holding it shows and checks, read in one statement.
#[derive(sqlx::FromRow)]
struct Bookable {
    #[sqlx(flatten)]
    slot: Slot,
    doctor_name: String,
    doctor_present: bool,
    clinic_name: String,
    clinic_status: clinics::ClinicStatus,
    time_zone: TimeZone,
    min_notice_minutes: i64,
}

/// The slot, its doctor and clinic, read for a hold.
pub(crate) const BOOKABLE_SQL: &str = "SELECT s.id, s.doctor_id, s.clinic_id, s.starts_at, s.ends_at, s.local_date, s.local_minute, \
    d.display_name AS doctor_name, (d.deleted_at IS NULL) AS doctor_present, c.name AS clinic_name, c.status AS clinic_status, \
    c.time_zone, COALESCE(sc.min_notice_minutes, 0) AS min_notice_minutes \
    FROM slots s JOIN doctors d ON d.id = s.doctor_id JOIN clinics c ON c.id = s.clinic_id \
    LEFT JOIN schedules sc ON sc.doctor_id = s.doctor_id WHERE s.id = $1";

/// The slot, its doctor and clinic, checked bookable now.
async fn bookable(db: &Db, slot_id: Uuid, now: DateTime<Utc>) -> Result<Bookable> {
    let found = on_db!(db, |pool| sqlx::query_as::<_, Bookable>(BOOKABLE_SQL)
        .bind(slot_id)
        .fetch_optional(pool)
        .await)?;
    let b = found.ok_or_else(|| Error::not_found("slot"))?;
    if !b.doctor_present {
        return Err(Error::not_found("doctor"));
    }
    if b.clinic_status != clinics::ClinicStatus::Active {
        return Err(Error::not_found("clinic"));
    }
    if b.slot.starts_at < now + Duration::minutes(b.min_notice_minutes) {
        return Err(Error::new(
            Code::TooLate,
            "That time is too soon to book; please pick a later one.",
        ));
    }
    Ok(b)
}

/// How many other live holds a patient has.
pub(crate) const ACTIVE_HOLDS_SQL: &str = "SELECT COUNT(*) FROM slots WHERE held_by = $1 AND status = 'held' AND hold_expires_at > $2 AND id <> $3";

/// A hold on a free (or lapsed, or their own) slot.
macro_rules! hold_claim {
    ($and:literal) => {
        concat!(
            "UPDATE slots SET status = 'held', held_by = $2, hold_expires_at = $3, updated_at = $4 ",
            "WHERE id = $1 AND (status = 'open' OR (status = 'held' AND (hold_expires_at <= $4 OR held_by = $2)))",
            $and
        )
    };
}

/// The front desk's hold on a free slot.
pub(crate) const HOLD_CLAIM_SQL: &str = hold_claim!("");

/// A patient's hold, taken only while they hold fewer than `$5` other times (one
/// statement: the count is read again only when the claim fails, to say why).
pub(crate) const PATIENT_HOLD_CLAIM_SQL: &str = hold_claim!(
    " AND (SELECT COUNT(*) FROM slots h WHERE h.held_by = $2 AND h.status = 'held' AND h.hold_expires_at > $4 AND h.id <> $1) < $5"
);

/// Holds a free slot for the signed-in patient for `minutes`; only they can confirm it.
pub async fn hold(db: &Db, actor: &Actor, slot_id: Uuid, minutes: i64) -> Result<Hold> {
    let p = patient(actor)?;
    let now = Utc::now();
    let Bookable {
        slot,
        doctor_name,
        clinic_name,
        time_zone,
        ..
    } = bookable(db, slot_id, now).await?;
    let expires_at = now + Duration::minutes(minutes.clamp(1, 60));
    let mut tx = db.begin().await?;
    let claimed = crate::exec_tx!(
        &mut tx,
        PATIENT_HOLD_CLAIM_SQL,
        slot_id,
        p.user_id,
        expires_at,
        now,
        MAX_ACTIVE_HOLDS
    )?;
    if claimed == 0 {
        let (active,): (i64,) = on_tx!(&mut tx, |conn| sqlx::query_as(ACTIVE_HOLDS_SQL)
            .bind(p.user_id)
            .bind(now)
            .bind(slot_id)
            .fetch_one(&mut *conn)
            .await)?;
        if active >= MAX_ACTIVE_HOLDS {
            return Err(Error::new(
                Code::TooManyHolds,
                "You are already holding several times; confirm or release one first.",
            ));
        }
        return Err(slot_taken());
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "slot.held",
            subject: format!("slot:{slot_id}"),
            clinic_id: Some(slot.clinic_id),
            details: json!({"expires_at": expires_at}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Hold {
        slot_id,
        doctor_id: slot.doctor_id,
        doctor_name,
        clinic_id: slot.clinic_id,
        clinic_name,
        starts_at: slot.starts_at,
        ends_at: slot.ends_at,
        local_date: slot.local_date,
        local_time: slot.local_time(),
        time_zone,
        expires_at,
    })
}

/// How long the front desk holds a time while it talks to the patient.
pub const DESK_HOLD_MINUTES: i64 = 10;

/// Holds a free slot for the front desk (its clinic's staff) while they talk to a patient;
/// only that member of staff then books it (`book_for`) or lets it go (`release_desk_hold`),
/// and it lapses by itself after [`DESK_HOLD_MINUTES`].
pub async fn hold_for_desk(db: &Db, actor: &Actor, slot_id: Uuid) -> Result<Hold> {
    let staff = actor.principal()?.user_id;
    let now = Utc::now();
    let Bookable {
        slot,
        doctor_name,
        clinic_name,
        time_zone,
        ..
    } = bookable(db, slot_id, now).await?;
    clinics::require_staff_of(actor, slot.clinic_id)?;
    let expires_at = now + Duration::minutes(DESK_HOLD_MINUTES);
    let mut tx = db.begin().await?;
    let claimed = crate::exec_tx!(&mut tx, HOLD_CLAIM_SQL, slot_id, staff, expires_at, now)?;
    if claimed == 0 {
        return Err(slot_taken());
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "slot.held",
            subject: format!("slot:{slot_id}"),
            clinic_id: Some(slot.clinic_id),
            details: json!({"expires_at": expires_at, "desk": true}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Hold {
        slot_id,
        doctor_id: slot.doctor_id,
        doctor_name,
        clinic_id: slot.clinic_id,
        clinic_name,
        starts_at: slot.starts_at,
        ends_at: slot.ends_at,
        local_date: slot.local_date,
        local_time: slot.local_time(),
        time_zone,
        expires_at,
    })
}

/// The desk lets go of its hold.
pub async fn release_desk_hold(db: &Db, actor: &Actor, slot_id: Uuid) -> Result<()> {
    let staff = actor.principal()?.user_id;
    let mut tx = db.begin().await?;
    crate::exec_tx!(&mut tx, RELEASE_HOLD_SQL, slot_id, staff, Utc::now())?;
    tx.commit().await?;
    Ok(())
}

/// A patient letting go of their hold.
pub(crate) const RELEASE_HOLD_SQL: &str = "UPDATE slots SET status = 'open', held_by = NULL, hold_expires_at = NULL, updated_at = $3 \
    WHERE id = $1 AND status = 'held' AND held_by = $2";

/// Lets go of the caller's hold.
pub async fn release(db: &Db, actor: &Actor, slot_id: Uuid) -> Result<()> {
    let p = patient(actor)?;
    // A transaction like every slot write: it takes its turn among this process's SQLite
    // writers and counts as a write (a kept listing shows the slot free again).
    let mut tx = db.begin().await?;
    let done = crate::exec_tx!(&mut tx, RELEASE_HOLD_SQL, slot_id, p.user_id, Utc::now())?;
    tx.commit().await?;
    if done == 0 {
        Err(Error::new(Code::HoldExpired, "You hold no such slot."))
    } else {
        Ok(())
    }
}

/// A slot just claimed inside the booking transaction, with everything the booking shows:
/// its doctor and clinic, and the patient's name (`None` when no such active patient).
#[derive(sqlx::FromRow)]
struct Claimed {
    #[sqlx(flatten)]
    slot: Slot,
    doctor_name: String,
    clinic_name: String,
    time_zone: TimeZone,
    patient_name: Option<String>,
    /// Where the patient hears from us (read in the same statement).
    patient_email: Option<String>,
    patient_phone: Option<String>,
    patient_channel: Option<String>,
    patient_language: Option<String>,
}

/// What a claim returns: one statement claims the slot and reads what the answer needs.
macro_rules! claim_returning {
    ($update:literal) => {
        concat!(
            $update,
            " RETURNING id, doctor_id, clinic_id, starts_at, ends_at, local_date, local_minute, ",
            "(SELECT d.display_name FROM doctors d WHERE d.id = slots.doctor_id) AS doctor_name, ",
            "(SELECT c.name FROM clinics c WHERE c.id = slots.clinic_id) AS clinic_name, ",
            "(SELECT c.time_zone FROM clinics c WHERE c.id = slots.clinic_id) AS time_zone, ",
            "(SELECT u.display_name FROM users u WHERE u.id = $3 AND u.deactivated_at IS NULL) AS patient_name, ",
            "(SELECT u.email FROM users u WHERE u.id = $3) AS patient_email, ",
            "(SELECT u.phone FROM users u WHERE u.id = $3) AS patient_phone, ",
            "(SELECT u.notify_channel FROM users u WHERE u.id = $3) AS patient_channel, ",
            "(SELECT u.language FROM users u WHERE u.id = $3) AS patient_language"
        )
    };
}

impl Claimed {
    /// The appointment just written for this claim (what a read-back would return).
    fn booked(self, id: Uuid, patient_id: Uuid, reason: String, now: DateTime<Utc>) -> Appointment {
        Appointment {
            id,
            slot_id: self.slot.id,
            patient_id,
            patient_name: self.patient_name.unwrap_or_default(),
            doctor_id: self.slot.doctor_id,
            doctor_name: self.doctor_name,
            clinic_id: self.slot.clinic_id,
            clinic_name: self.clinic_name,
            time_zone: self.time_zone,
            starts_at: self.slot.starts_at,
            ends_at: self.slot.ends_at,
            status: AppointmentStatus::Booked,
            reason,
            cancel_reason: None,
            created_at: now,
        }
    }
}

/// Writes the appointment and its audit record for a claimed slot, and commits.
#[allow(clippy::too_many_arguments)]
async fn book_claimed(
    mut tx: Tx,
    db_policy: &Policy,
    actor: &Actor,
    claimed: Claimed,
    patient_id: Uuid,
    (booked_by, via): (Uuid, &str),
    reason: String,
    now: DateTime<Utc>,
) -> Result<Appointment> {
    let id = insert(
        &mut tx,
        db_policy,
        &claimed.slot,
        patient_id,
        booked_by,
        &reason,
        now,
    )
    .await?;
    let visit = VisitFacts {
        id,
        doctor_name: &claimed.doctor_name,
        clinic_name: &claimed.clinic_name,
        time_zone: claimed.time_zone,
        starts_at: claimed.slot.starts_at,
        ends_at: claimed.slot.ends_at,
    };
    let to = outbox::Contact {
        user_id: patient_id,
        email: claimed.patient_email.clone().unwrap_or_default(),
        phone: claimed.patient_phone.clone(),
        notify_channel: claimed
            .patient_channel
            .clone()
            .unwrap_or_else(|| "email".into()),
        time_zone: None,
        display_name: claimed.patient_name.clone().unwrap_or_default(),
        language: claimed
            .patient_language
            .as_deref()
            .and_then(Language::parse)
            .unwrap_or_default(),
    };
    notify_booked(&mut tx, db_policy, &to, &visit, "booked", now).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "appointment.booked",
            subject: format!("appointment:{id}"),
            clinic_id: Some(claimed.slot.clinic_id),
            details: json!({"slot": claimed.slot.id, "via": via, "patient": patient_id}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(claimed.booked(id, patient_id, reason, now))
}

/// A patient's hold becoming their booking.
pub(crate) const CONFIRM_CLAIM_SQL: &str = claim_returning!(
    "UPDATE slots SET status = 'booked', held_by = NULL, hold_expires_at = NULL, updated_at = $2 \
    WHERE id = $1 AND status = 'held' AND held_by = $3 AND hold_expires_at > $2"
);

/// Turns the caller's live hold into an appointment.
pub async fn confirm(db: &Db, actor: &Actor, slot_id: Uuid, reason: &str) -> Result<Appointment> {
    let p = patient(actor)?;
    let reason = checked_reason(reason)?;
    // Microseconds: what both databases keep, so the answer equals a later read.
    let now = Utc::now().trunc_subsecs(6);
    let mut tx = db.begin().await?;
    let claimed = on_tx!(&mut tx, |conn| sqlx::query_as::<_, Claimed>(
        CONFIRM_CLAIM_SQL
    )
    .bind(slot_id)
    .bind(now)
    .bind(p.user_id)
    .fetch_optional(&mut *conn)
    .await)?;
    let Some(claimed) = claimed else {
        drop(tx);
        slots::get(db, slot_id)
            .await?
            .ok_or_else(|| Error::not_found("slot"))?;
        return Err(Error::new(
            Code::HoldExpired,
            "Your hold on that time has lapsed; please pick a time again.",
        ));
    };
    book_claimed(
        tx,
        db.policy(),
        actor,
        claimed,
        p.user_id,
        (p.user_id, "hold"),
        reason,
        now,
    )
    .await
}

/// What the messages about a visit say.
struct VisitFacts<'a> {
    id: Uuid,
    doctor_name: &'a str,
    clinic_name: &'a str,
    time_zone: TimeZone,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

impl VisitFacts<'_> {
    /// What a message to `patient` says of the visit, in the clinic's zone.
    /// With `site`, the message links to the visit in the patient's portal.
    fn told_to<'a>(&'a self, patient: &'a str, site: Option<&str>) -> messages::Visit<'a> {
        messages::Visit {
            patient,
            doctor: self.doctor_name,
            clinic: self.clinic_name,
            starts_at: Moment::new(self.starts_at, self.time_zone.tz()),
            link: site.map(|s| format!("{}/me/appointments/{}", s.trim_end_matches('/'), self.id)),
        }
    }
}

/// In the booking's transaction: the confirmation (with a calendar file) and the
/// reminders before the visit, replacing any still waiting for this appointment.
async fn notify_booked(
    tx: &mut Tx,
    policy: &Policy,
    to: &outbox::Contact,
    visit: &VisitFacts<'_>,
    what: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let about = format!("appointment:{}", visit.id);
    if what != "booked" {
        outbox::cancel_about(tx, &about, &["appointment_reminder"]).await?;
    }
    let told = visit.told_to(&to.display_name, policy.site.as_deref());
    let kind = if what == "booked" {
        Kind::AppointmentBooked(&told)
    } else {
        Kind::AppointmentMoved(&told)
    };
    let summary = messages::calendar_summary(to.language, &told)?;
    let confirmation = outbox::Message {
        ics: Some(ics::appointment(&ics::Visit {
            id: visit.id,
            summary: &summary,
            location: visit.clinic_name,
            starts_at: visit.starts_at,
            ends_at: visit.ends_at,
            now,
        })),
        ..kind.render(to.language)?.into()
    };
    // The reminders follow from `next_reminder_at` (see `send_due_reminders`).
    outbox::enqueue(
        tx,
        policy,
        "appointment_confirmation",
        &about,
        to,
        &confirmation,
        now,
    )
    .await
}

/// The first reminder of a visit at `starts_at` still ahead of `after`.
fn next_reminder(
    policy: &Policy,
    starts_at: DateTime<Utc>,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    policy
        .appointment_reminders
        .iter()
        .map(|before| starts_at - *before)
        .filter(|at| *at > after)
        .min()
}

#[derive(sqlx::FromRow)]
struct DueReminder {
    id: Uuid,
    patient_id: Uuid,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    next_reminder_at: DateTime<Utc>,
    doctor_name: String,
    clinic_name: String,
    time_zone: TimeZone,
}

/// Sends the appointment reminders that are due: each booked appointment whose
/// `next_reminder_at` has come gets its reminder queued and its next one set, in one
/// transaction by a conditional update, so replicas never send one twice. Returns how
/// many were queued.
pub async fn send_due_reminders(db: &Db, now: DateTime<Utc>) -> Result<Batch> {
    const CLEAR: &str = "UPDATE appointments SET next_reminder_at = NULL \
        WHERE next_reminder_at IS NOT NULL AND next_reminder_at <= $1 AND (status <> 'booked' OR starts_at <= $1)";
    crate::exec!(db, CLEAR, now)?;
    const DUE: &str = "SELECT a.id, a.patient_id, a.starts_at, a.ends_at, a.next_reminder_at, d.display_name AS doctor_name, \
        c.name AS clinic_name, c.time_zone FROM appointments a JOIN doctors d ON d.id = a.doctor_id JOIN clinics c ON c.id = a.clinic_id \
        WHERE a.next_reminder_at IS NOT NULL AND a.next_reminder_at <= $1 AND a.status = 'booked' \
        ORDER BY a.next_reminder_at LIMIT 200";
    let due = on_db!(db, |pool| sqlx::query_as::<_, DueReminder>(DUE)
        .bind(now)
        .fetch_all(pool)
        .await)?;
    let mut batch = Batch::default();
    for r in due {
        let row = r.id;
        let one = async {
            let mut tx = db.begin().await?;
            const ADVANCE: &str = "UPDATE appointments SET next_reminder_at = $3 \
                WHERE id = $1 AND next_reminder_at = $2 AND status = 'booked'";
            let claimed = crate::exec_tx!(
                &mut tx,
                ADVANCE,
                r.id,
                r.next_reminder_at,
                next_reminder(db.policy(), r.starts_at, r.next_reminder_at.max(now))
            )?;
            if claimed == 0 {
                return Ok(false);
            }
            let to = outbox::contact(&mut tx, r.patient_id).await?;
            let visit = VisitFacts {
                id: r.id,
                doctor_name: &r.doctor_name,
                clinic_name: &r.clinic_name,
                time_zone: r.time_zone,
                starts_at: r.starts_at,
                ends_at: r.ends_at,
            };
            let reminder: outbox::Message = Kind::AppointmentReminder(
                &visit.told_to(&to.display_name, db.policy().site.as_deref()),
            )
            .render(to.language)?
            .into();
            outbox::enqueue(
                &mut tx,
                db.policy(),
                "appointment_reminder",
                &format!("appointment:{}", r.id),
                &to,
                &reminder,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok::<bool, Error>(true)
        };
        if batch.count("queueing an appointment reminder", row, one.await) == Some(true) {
            batch.done += 1;
        }
    }
    Ok(batch)
}

/// Books a free slot for a patient directly (clinic staff: phone calls, walk-ins), for a
/// patient the clinic knows (`clinics::patients::knows`). The claim comes first; whoever
/// may not book at that clinic, or for that patient, has it rolled back.
pub async fn book_for(
    db: &Db,
    actor: &Actor,
    slot_id: Uuid,
    patient_id: Uuid,
    reason: &str,
) -> Result<Appointment> {
    let staff = actor.principal()?.user_id;
    let reason = checked_reason(reason)?;
    let now = Utc::now().trunc_subsecs(6);
    let mut tx = db.begin().await?;
    const CLAIM: &str = claim_returning!(
        "UPDATE slots SET status = 'booked', held_by = NULL, hold_expires_at = NULL, updated_at = $2 \
         WHERE id = $1 AND starts_at > $2 AND (status = 'open' OR (status = 'held' AND (hold_expires_at <= $2 OR held_by = $4)))"
    );
    // Free, lapsed, or held by this member of staff at the desk.
    let claimed = on_tx!(&mut tx, |conn| sqlx::query_as::<_, Claimed>(CLAIM)
        .bind(slot_id)
        .bind(now)
        .bind(patient_id)
        .bind(staff)
        .fetch_optional(&mut *conn)
        .await)?;
    let Some(claimed) = claimed else {
        drop(tx);
        return Err(why_not_bookable(db, actor, slot_id, now).await);
    };
    // Dropping `tx` on these returns rolls the claim back.
    clinics::require_staff_of(actor, claimed.slot.clinic_id)?;
    if claimed.patient_name.is_none()
        || !clinics::patients::knows(&mut tx, claimed.slot.clinic_id, patient_id).await?
    {
        return Err(Error::not_found("patient"));
    }
    book_claimed(
        tx,
        db.policy(),
        actor,
        claimed,
        patient_id,
        (staff, "staff"),
        reason,
        now,
    )
    .await
}

/// Why staff could not claim a slot, told only to those who may book there.
async fn why_not_bookable(db: &Db, actor: &Actor, slot_id: Uuid, now: DateTime<Utc>) -> Error {
    let slot = match slots::get(db, slot_id).await {
        Ok(Some((slot, _))) => slot,
        Ok(None) => return Error::not_found("slot"),
        Err(e) => return e,
    };
    if let Err(e) = clinics::require_staff_of(actor, slot.clinic_id) {
        return e;
    }
    if slot.starts_at <= now {
        return Error::new(Code::TooLate, "That time has passed.");
    }
    slot_taken()
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    tx: &mut Tx,
    policy: &Policy,
    slot: &Slot,
    patient_id: Uuid,
    booked_by: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Uuid> {
    const SQL: &str = "INSERT INTO appointments (id, slot_id, patient_id, doctor_id, clinic_id, starts_at, ends_at, status, reason, \
        booked_by, created_at, updated_at, next_reminder_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'booked', $8, $9, $10, $10, $11)";
    let id = Uuid::now_v7();
    crate::exec_tx!(
        tx,
        SQL,
        id,
        slot.id,
        patient_id,
        slot.doctor_id,
        slot.clinic_id,
        slot.starts_at,
        slot.ends_at,
        policy.sealer.seal_text(reason, &reason_context(id)),
        booked_by,
        now,
        next_reminder(policy, slot.starts_at, now)
    )
    .map_err(taken_meanwhile)?;
    Ok(id)
}

/// The longest reason for a visit, in characters.
pub const MAX_REASON: usize = 1000;

fn checked_reason(reason: &str) -> Result<String> {
    let mut checks = crate::domain::validate::Checks::new();
    let reason = checks.text("reason", reason, 0, MAX_REASON);
    checks.finish()?;
    Ok(reason)
}

/// Who may change an appointment, and whether the clinic's cutoff applies to them.
async fn may_change(db: &Db, actor: &Actor, a: &Appointment, now: DateTime<Utc>) -> Result<()> {
    let p = actor.principal()?;
    if clinics::require_staff_of(actor, a.clinic_id).is_ok() {
        return Ok(());
    }
    if a.patient_id != p.user_id {
        // Not theirs: say nothing about whether it exists.
        return Err(Error::not_found("appointment"));
    }
    let clinic = clinics::get(db, a.clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    if a.starts_at - now < Duration::minutes(clinic.cancellation_cutoff_minutes) {
        return Err(Error::new(
            Code::CutoffPassed,
            format!(
                "Changes are possible until {} hours before the visit; please call the clinic.",
                clinic.cancellation_cutoff_minutes as f64 / 60.0
            ),
        ));
    }
    Ok(())
}

/// Moves an appointment to another free slot of the same clinic: the new slot is claimed
/// and the old one freed in one transaction.
pub async fn reschedule(
    db: &Db,
    actor: &Actor,
    id: Uuid,
    new_slot_id: Uuid,
) -> Result<Appointment> {
    let a = get(db, actor, id).await?;
    let now = Utc::now();
    may_change(db, actor, &a, now).await?;
    if a.status != AppointmentStatus::Booked {
        return Err(Error::new(
            Code::Conflict,
            format!("A {} appointment cannot be moved.", a.status),
        ));
    }
    let (slot, _) = slots::get(db, new_slot_id)
        .await?
        .ok_or_else(|| Error::not_found("slot"))?;
    if slot.clinic_id != a.clinic_id {
        return Err(Error::new(
            Code::Conflict,
            "Pick a time at the same clinic, or book anew.",
        ));
    }
    if slot.starts_at < now + slots::min_notice(db, slot.doctor_id).await? {
        return Err(Error::new(
            Code::TooLate,
            "That time is too soon to book; please pick a later one.",
        ));
    }
    let new_doctor = doctors::get(db, slot.doctor_id)
        .await?
        .map(|d| d.display_name)
        .unwrap_or_default();
    let mut tx = db.begin().await?;
    // The patient's own hold on the new slot counts as free for them.
    const CLAIM: &str = "UPDATE slots SET status = 'booked', held_by = NULL, hold_expires_at = NULL, updated_at = $3 \
        WHERE id = $1 AND (status = 'open' OR (status = 'held' AND (hold_expires_at <= $3 OR held_by = $2)))";
    const MOVE: &str = "UPDATE appointments SET slot_id = $2, doctor_id = $3, starts_at = $4, ends_at = $5, updated_at = $6, \
        next_reminder_at = $8 WHERE id = $1 AND status = 'booked' AND slot_id = $7";
    const FREE: &str =
        "UPDATE slots SET status = 'open', updated_at = $2 WHERE id = $1 AND status = 'booked'";
    let claimed = crate::exec_tx!(&mut tx, CLAIM, new_slot_id, a.patient_id, now)?;
    if claimed == 0 {
        return Err(slot_taken());
    }
    let moved = crate::exec_tx!(
        &mut tx,
        MOVE,
        id,
        new_slot_id,
        slot.doctor_id,
        slot.starts_at,
        slot.ends_at,
        now,
        a.slot_id,
        next_reminder(db.policy(), slot.starts_at, now)
    )
    .map_err(taken_meanwhile)?;
    if moved == 0 {
        return Err(Error::new(
            Code::Conflict,
            "The appointment changed meanwhile; reload it.",
        ));
    }
    let freed = crate::exec_tx!(&mut tx, FREE, a.slot_id, now)?;
    let visit = VisitFacts {
        id,
        doctor_name: &new_doctor,
        clinic_name: &a.clinic_name,
        time_zone: a.time_zone,
        starts_at: slot.starts_at,
        ends_at: slot.ends_at,
    };
    let to = outbox::contact(&mut tx, a.patient_id).await?;
    notify_booked(&mut tx, db.policy(), &to, &visit, "moved", now).await?;
    if freed > 0 {
        crate::domain::scheduling::waitlist::offer_freed_slot(
            &mut tx,
            db,
            a.slot_id,
            a.patient_id,
            now,
        )
        .await?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "appointment.rescheduled",
            subject: format!("appointment:{id}"),
            clinic_id: Some(a.clinic_id),
            details: json!({"from_slot": a.slot_id, "to_slot": new_slot_id}),
        },
    )
    .await?;
    tx.commit().await?;
    get_unchecked(db, id).await
}

/// Cancels and frees the slot. Patients are held to the clinic's cutoff; staff are not.
pub async fn cancel(db: &Db, actor: &Actor, id: Uuid, reason: &str) -> Result<Appointment> {
    let a = get(db, actor, id).await?;
    let now = Utc::now();
    may_change(db, actor, &a, now).await?;
    let reason = checked_reason(reason)?;
    let mut tx = db.begin().await?;
    const CANCEL: &str = "UPDATE appointments SET status = 'cancelled', cancelled_by = $2, cancel_reason = $3, updated_at = $4 \
        WHERE id = $1 AND status = 'booked'";
    const FREE: &str = "UPDATE slots SET status = 'open', updated_at = $2 WHERE id = $1 AND status = 'booked' AND starts_at > $2";
    let done = crate::exec_tx!(
        &mut tx,
        CANCEL,
        id,
        actor.user_id(),
        db.policy()
            .sealer
            .seal_text(&reason, &cancel_reason_context(id)),
        now
    )?;
    if done == 0 {
        return Err(Error::new(
            Code::Conflict,
            format!("A {} appointment cannot be cancelled.", a.status),
        ));
    }
    let freed = crate::exec_tx!(&mut tx, FREE, a.slot_id, now)?;
    let about = format!("appointment:{id}");
    outbox::cancel_about(
        &mut tx,
        &about,
        &["appointment_reminder", "appointment_confirmation"],
    )
    .await?;
    let to = outbox::contact(&mut tx, a.patient_id).await?;
    let visit = VisitFacts {
        id,
        doctor_name: &a.doctor_name,
        clinic_name: &a.clinic_name,
        time_zone: a.time_zone,
        starts_at: a.starts_at,
        ends_at: a.ends_at,
    };
    let told = visit.told_to(&to.display_name, None);
    // The calendar event the confirmation carried is withdrawn with it.
    let summary = messages::calendar_summary(to.language, &told)?;
    let notice = outbox::Message {
        ics: Some(ics::cancelled(&ics::Visit {
            id,
            summary: &summary,
            location: &a.clinic_name,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            now,
        })),
        ..Kind::AppointmentCancelled(&told)
            .render(to.language)?
            .into()
    };
    outbox::enqueue(
        &mut tx,
        db.policy(),
        "appointment_cancelled",
        &about,
        &to,
        &notice,
        now,
    )
    .await?;
    if freed > 0 {
        crate::domain::scheduling::waitlist::offer_freed_slot(
            &mut tx,
            db,
            a.slot_id,
            a.patient_id,
            now,
        )
        .await?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "appointment.cancelled",
            subject: format!("appointment:{id}"),
            clinic_id: Some(a.clinic_id),
            details: json!({"by_staff": actor.user_id() != Some(a.patient_id)}),
        },
    )
    .await?;
    tx.commit().await?;
    get_unchecked(db, id).await
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visit {
    CheckedIn,
    Completed,
    NoShow,
}

/// Marks the visit (clinic staff, or the appointment's doctor).
pub async fn mark(db: &Db, actor: &Actor, id: Uuid, to: Visit) -> Result<Appointment> {
    let a = get(db, actor, id).await?;
    let p = actor.principal()?;
    let is_doctor = doctors::get(db, a.doctor_id)
        .await?
        .is_some_and(|d| d.user_id == Some(p.user_id));
    if !is_doctor {
        clinics::require_staff_of(actor, a.clinic_id)?;
    }
    let now = Utc::now();
    let (status, from, action): (&str, &[&str], &str) = match to {
        Visit::CheckedIn => ("checked_in", &["booked"], "appointment.checked_in"),
        Visit::Completed => (
            "completed",
            &["booked", "checked_in"],
            "appointment.completed",
        ),
        Visit::NoShow => ("no_show", &["booked"], "appointment.no_show"),
    };
    if to == Visit::NoShow && a.starts_at > now {
        return Err(Error::new(
            Code::Conflict,
            "A visit that has not started cannot be a no-show.",
        ));
    }
    if !from.contains(&a.status.as_str()) {
        return Err(Error::new(
            Code::Conflict,
            format!("A {} appointment cannot become {status}.", a.status),
        ));
    }
    let mut tx = db.begin().await?;
    const SQL: &str =
        "UPDATE appointments SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4";
    let done = crate::exec_tx!(&mut tx, SQL, id, status, now, a.status)?;
    if done == 0 {
        return Err(Error::new(
            Code::Conflict,
            "The appointment changed meanwhile; reload it.",
        ));
    }
    if to != Visit::CheckedIn {
        outbox::cancel_about(
            &mut tx,
            &format!("appointment:{id}"),
            &["appointment_reminder"],
        )
        .await?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action,
            subject: format!("appointment:{id}"),
            clinic_id: Some(a.clinic_id),
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    get_unchecked(db, id).await
}

async fn get_unchecked(db: &Db, id: Uuid) -> Result<Appointment> {
    const SQL: &str = select_appointments!("WHERE a.id = $1");
    on_db!(db, |pool| sqlx::query_as::<_, Appointment>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("appointment"))?
    .opened(db.policy())
}

/// One appointment, for its patient, its doctor or its clinic's staff. Anyone else is
/// told it does not exist.
pub async fn get(db: &Db, actor: &Actor, id: Uuid) -> Result<Appointment> {
    let p = actor.principal()?;
    let a = get_unchecked(db, id).await?;
    if a.patient_id == p.user_id || clinics::require_staff_of(actor, a.clinic_id).is_ok() {
        return Ok(a);
    }
    if doctors::get(db, a.doctor_id)
        .await?
        .is_some_and(|d| d.user_id == Some(p.user_id))
    {
        return Ok(a);
    }
    Err(Error::not_found("appointment"))
}

/// A patient's appointments.
pub(crate) const MINE_SQL: &str = select_appointments!(
    "WHERE a.patient_id = $1 AND ($2 OR a.ends_at > $3) ORDER BY a.starts_at LIMIT 500"
);

/// The caller's own appointments; upcoming only unless `include_past`.
pub async fn mine(db: &Db, actor: &Actor, include_past: bool) -> Result<Vec<Appointment>> {
    let p = actor.principal()?;
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Appointment>(MINE_SQL)
        .bind(p.user_id)
        .bind(include_past)
        .bind(Utc::now())
        .fetch_all(pool)
        .await)?;
    opened_all(db, rows)
}

/// A doctor's day.
pub(crate) const DOCTOR_DAY_SQL: &str = select_appointments!(
    "JOIN slots s ON s.id = a.slot_id WHERE a.doctor_id = $1 AND s.local_date = $2 ORDER BY a.starts_at"
);

/// A doctor's appointments on one clinic-local date (the doctor, or the clinic's staff).
pub async fn doctor_day(
    db: &Db,
    actor: &Actor,
    doctor_id: Uuid,
    date: NaiveDate,
) -> Result<Vec<Appointment>> {
    doctors::for_self_or_staff(db, actor, doctor_id).await?;
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Appointment>(DOCTOR_DAY_SQL)
        .bind(doctor_id)
        .bind(date)
        .fetch_all(pool)
        .await)?;
    opened_all(db, rows)
}

/// A clinic's day.
pub(crate) const CLINIC_DAY_SQL: &str = select_appointments!(
    "JOIN slots s ON s.id = a.slot_id WHERE a.clinic_id = $1 AND s.local_date = $2 ORDER BY a.starts_at, d.display_name"
);

/// A clinic's appointments on one local date (its staff).
pub async fn clinic_day(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    date: NaiveDate,
) -> Result<Vec<Appointment>> {
    clinics::require_staff_of(actor, clinic_id)?;
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Appointment>(CLINIC_DAY_SQL)
        .bind(clinic_id)
        .bind(date)
        .fetch_all(pool)
        .await)?;
    opened_all(db, rows)
}

/// Cancels an erased patient's future visits inside the erasure's transaction: each slot is
/// freed and offered to the waitlist, and nobody is written to (the patient is gone). Their
/// reasons, past visits' included, are cleared. Returns how many visits were cancelled.
pub(crate) async fn cancel_for_erasure(
    tx: &mut Tx,
    db: &Db,
    patient_id: Uuid,
    now: DateTime<Utc>,
) -> Result<usize> {
    const CANCEL: &str = "UPDATE appointments SET status = 'cancelled', cancel_reason = NULL, next_reminder_at = NULL, updated_at = $2 \
        WHERE patient_id = $1 AND status = 'booked' AND starts_at > $2 RETURNING id, slot_id, clinic_id";
    const FREE: &str = "UPDATE slots SET status = 'open', updated_at = $2 WHERE id = $1 AND status = 'booked' AND starts_at > $2";
    const CLEAR: &str =
        "UPDATE appointments SET reason = '', cancel_reason = NULL WHERE patient_id = $1";
    let cancelled: Vec<(Uuid, Uuid, Uuid)> = on_tx!(tx, |conn| sqlx::query_as(CANCEL)
        .bind(patient_id)
        .bind(now)
        .fetch_all(&mut *conn)
        .await)?;
    for (id, slot_id, clinic_id) in &cancelled {
        let freed = crate::exec_tx!(tx, FREE, slot_id, now)?;
        if freed > 0 {
            crate::domain::scheduling::waitlist::offer_freed_slot(
                tx, db, *slot_id, patient_id, now,
            )
            .await?;
        }
        audit::record_as(
            tx,
            None,
            Entry {
                action: "appointment.cancelled",
                subject: format!("appointment:{id}"),
                clinic_id: Some(*clinic_id),
                details: json!({"erasure": true}),
            },
        )
        .await?;
    }
    crate::exec_tx!(tx, CLEAR, patient_id)?;
    Ok(cancelled.len())
}
