//! Slots: a doctor's schedule stored and turned into bookable rows for the booking
//! horizon, kept in step when the schedule changes (booked slots are never touched;
//! clashes are reported), and searched for free times.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::types::Json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::{Batch, Db};
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::clinics::doctors::{self, Doctor, PartOfDay};
use crate::domain::scheduling::schedules::{DateOverride, DayHours, Interval, ScheduleForm};
use crate::domain::validate::Checks;
use crate::error::{Error, Result};
use crate::zone::TimeZone;
use crate::{on_db, on_tx};

/// A free (or, for staff views, any) slot.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Slot {
    pub id: Uuid,
    pub doctor_id: Uuid,
    pub clinic_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The clinic-local date of the start.
    pub local_date: NaiveDate,
    /// Minutes after local midnight of the start.
    pub local_minute: i64,
}

impl Slot {
    /// `HH:MM` in the clinic's time.
    pub fn local_time(&self) -> String {
        format!(
            "{:02}:{:02}",
            self.local_minute / 60,
            self.local_minute % 60
        )
    }
}

crate::text_enum! {
    /// A slot's state: free, held while a patient decides, booked, or kept out.
    pub enum SlotStatus {
        Open = "open",
        Held = "held",
        Booked = "booked",
        Blocked = "blocked",
    }
}

/// What a schedule change did to the stored slots.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct SyncReport {
    pub created: u64,
    pub removed: u64,
    /// Booked or held slots the new schedule no longer covers: kept, for staff to resolve.
    pub conflicts: Vec<Conflict>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Conflict {
    pub slot_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub status: SlotStatus,
    pub appointment_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    rules: Json<ScheduleForm>,
}

#[derive(sqlx::FromRow)]
struct ExistingSlot {
    id: Uuid,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    status: SlotStatus,
    hold_expires_at: Option<DateTime<Utc>>,
}

/// Replaces a doctor's schedule and brings the slots in step (clinic admins and staff).
pub async fn set_schedule(
    db: &Db,
    actor: &Actor,
    doctor_id: Uuid,
    form: ScheduleForm,
) -> Result<SyncReport> {
    let doctor = doctors::for_staff(db, actor, doctor_id).await?;
    form.check()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO schedules (id, doctor_id, rules, slot_minutes, buffer_minutes, min_notice_minutes, horizon_days, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (doctor_id) DO UPDATE SET rules = excluded.rules, \
        slot_minutes = excluded.slot_minutes, buffer_minutes = excluded.buffer_minutes, min_notice_minutes = excluded.min_notice_minutes, \
        horizon_days = excluded.horizon_days, updated_at = excluded.updated_at";
    crate::exec_tx!(
        &mut tx,
        SQL,
        Uuid::now_v7(),
        doctor_id,
        Json(&form),
        form.slot_minutes,
        form.buffer_minutes,
        form.min_notice_minutes,
        form.horizon_days,
        now
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "schedule.set",
            subject: format!("doctor:{doctor_id}"),
            clinic_id: Some(doctor.clinic_id),
            details: json!({"rules": form.rules.len(), "slot_minutes": form.slot_minutes}),
        },
    )
    .await?;
    tx.commit().await?;
    sync(db, &doctor, now).await
}

/// Sets or clears one local date's exception (closed, or other hours).
pub async fn set_override(
    db: &Db,
    actor: &Actor,
    doctor_id: Uuid,
    o: DateOverride,
) -> Result<SyncReport> {
    let doctor = doctors::for_staff(db, actor, doctor_id).await?;
    let mut checks = Checks::new();
    o.hours(&mut checks);
    let reason = checks.text("reason", &o.reason, 0, 500);
    checks.finish()?;
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO schedule_overrides (id, doctor_id, local_date, start_local, end_local, reason, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (doctor_id, local_date) DO UPDATE SET start_local = excluded.start_local, \
        end_local = excluded.end_local, reason = excluded.reason";
    crate::exec_tx!(
        &mut tx,
        SQL,
        Uuid::now_v7(),
        doctor_id,
        o.date,
        o.start.as_deref(),
        o.end.as_deref(),
        &reason,
        Utc::now()
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "schedule.override_set",
            subject: format!("doctor:{doctor_id}"),
            clinic_id: Some(doctor.clinic_id),
            details: json!({"date": o.date, "closed": o.start.is_none()}),
        },
    )
    .await?;
    tx.commit().await?;
    sync(db, &doctor, Utc::now()).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeOffForm {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[serde(default)]
    pub reason: String,
}

/// Blocks a span (holiday, training); free slots inside it disappear.
pub async fn add_time_off(
    db: &Db,
    actor: &Actor,
    doctor_id: Uuid,
    form: TimeOffForm,
) -> Result<SyncReport> {
    let doctor = doctors::for_staff(db, actor, doctor_id).await?;
    let mut checks = Checks::new();
    if form.ends_at <= form.starts_at {
        checks.fail("ends_at", "must be after starts_at");
    }
    let reason = checks.text("reason", &form.reason, 0, 500);
    checks.finish()?;
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO time_off (id, doctor_id, starts_at, ends_at, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
    crate::exec_tx!(
        &mut tx,
        SQL,
        Uuid::now_v7(),
        doctor_id,
        form.starts_at,
        form.ends_at,
        &reason,
        Utc::now()
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "schedule.time_off_added",
            subject: format!("doctor:{doctor_id}"),
            clinic_id: Some(doctor.clinic_id),
            details: json!({"starts_at": form.starts_at, "ends_at": form.ends_at}),
        },
    )
    .await?;
    tx.commit().await?;
    sync(db, &doctor, Utc::now()).await
}

/// Brings a doctor's future slots in line with their schedule for the booking horizon:
/// adds missing slots, removes free slots the schedule no longer has, and reports
/// booked or held ones it no longer covers (they are kept).
pub async fn sync(db: &Db, doctor: &Doctor, now: DateTime<Utc>) -> Result<SyncReport> {
    let Some(form) = schedule_of(db, doctor.id).await? else {
        return Ok(SyncReport::default());
    };
    let schedule = form.check()?;
    let desired = desired(db, doctor, &schedule, now, None).await?;
    reconcile(db, doctor, desired, now).await
}

/// The future intervals a schedule gives a doctor over its horizon, with their overrides
/// and time off (and a change not yet saved).
async fn desired(
    db: &Db,
    doctor: &Doctor,
    schedule: &crate::domain::scheduling::schedules::Schedule,
    now: DateTime<Utc>,
    change: Option<&Change<'_>>,
) -> Result<Vec<Interval>> {
    let tz = doctor.time_zone.tz();
    let from = now.with_timezone(&tz).date_naive();
    let to = from + chrono::Days::new(u64::try_from(schedule.horizon_days).unwrap_or(60));
    let mut overrides = load_overrides(db, doctor.id, from, to).await?;
    let mut time_off = load_time_off(db, doctor.id, now).await?;
    match change {
        Some(Change::Override(o)) => {
            let mut checks = Checks::new();
            let hours = o.hours(&mut checks);
            checks.finish()?;
            overrides.insert(o.date, hours);
        }
        Some(Change::TimeOff(a, b)) => time_off.push((*a, *b)),
        _ => {}
    }
    Ok(schedule
        .expand(tz, from, to, &overrides, &time_off)
        .into_iter()
        .filter(|i| i.starts_at > now)
        .collect())
}

/// A change to a doctor's hours, looked at before it is saved.
pub enum Change<'a> {
    Schedule(&'a ScheduleForm),
    Override(&'a DateOverride),
    TimeOff(DateTime<Utc>, DateTime<Utc>),
}

/// What saving a change would leave uncovered, without saving it: the booked (or now
/// held) slots the doctor's hours would no longer have (staff see them before they save;
/// saving keeps them, for staff to resolve).
pub async fn preview(
    db: &Db,
    actor: &Actor,
    doctor_id: Uuid,
    change: Change<'_>,
) -> Result<Vec<Conflict>> {
    let doctor = doctors::for_staff(db, actor, doctor_id).await?;
    let schedule = match &change {
        Change::Schedule(form) => form.check()?,
        _ => match schedule_of(db, doctor_id).await? {
            Some(form) => form.check()?,
            // No schedule, no slots: nothing to uncover.
            None => return Ok(Vec::new()),
        },
    };
    let now = Utc::now();
    let wanted: HashMap<DateTime<Utc>, DateTime<Utc>> =
        desired(db, &doctor, &schedule, now, Some(&change))
            .await?
            .into_iter()
            .map(|i| (i.starts_at, i.ends_at))
            .collect();
    const SQL: &str = "SELECT s.id, s.starts_at, s.ends_at, s.status, a.id AS appointment_id FROM slots s \
        LEFT JOIN appointments a ON a.slot_id = s.id AND a.status <> 'cancelled' \
        WHERE s.doctor_id = $1 AND s.starts_at > $2 AND (s.status = 'booked' OR (s.status = 'held' AND s.hold_expires_at > $2)) \
        ORDER BY s.starts_at";
    #[derive(sqlx::FromRow)]
    struct Busy {
        id: Uuid,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        status: SlotStatus,
        appointment_id: Option<Uuid>,
    }
    let busy: Vec<Busy> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(doctor_id)
        .bind(now)
        .fetch_all(pool)
        .await)?;
    Ok(busy
        .into_iter()
        .filter(|b| wanted.get(&b.starts_at) != Some(&b.ends_at))
        .map(|b| Conflict {
            slot_id: b.id,
            starts_at: b.starts_at,
            status: b.status,
            appointment_id: b.appointment_id,
        })
        .collect())
}

/// A doctor's stored schedule, if any.
pub async fn schedule_of(db: &Db, doctor_id: Uuid) -> Result<Option<ScheduleForm>> {
    const SQL: &str = "SELECT rules FROM schedules WHERE doctor_id = $1";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, ScheduleRow>(SQL)
        .bind(doctor_id)
        .fetch_optional(pool)
        .await)?
    .map(|r| r.rules.0))
}

async fn load_overrides(
    db: &Db,
    doctor_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<NaiveDate, Option<DayHours>>> {
    const SQL: &str = "SELECT local_date, start_local, end_local FROM schedule_overrides WHERE doctor_id = $1 AND local_date >= $2 AND local_date < $3";
    let rows: Vec<(NaiveDate, Option<String>, Option<String>)> =
        on_db!(db, |pool| sqlx::query_as(SQL)
            .bind(doctor_id)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await)?;
    let mut out = HashMap::new();
    for (date, start, end) in rows {
        let o = DateOverride {
            date,
            start,
            end,
            reason: String::new(),
        };
        let mut checks = Checks::new();
        let hours = o.hours(&mut checks);
        out.insert(date, hours);
    }
    Ok(out)
}

async fn load_time_off(
    db: &Db,
    doctor_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    const SQL: &str =
        "SELECT starts_at, ends_at FROM time_off WHERE doctor_id = $1 AND ends_at > $2";
    Ok(on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(doctor_id)
        .bind(now)
        .fetch_all(pool)
        .await)?)
}

/// Slots written by one INSERT (9 values each: well under either database's limit).
const INSERT_CHUNK: usize = 500;

async fn reconcile(
    db: &Db,
    doctor: &Doctor,
    desired: Vec<Interval>,
    now: DateTime<Utc>,
) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let mut tx = db.begin().await?;
    // Serialise changes to one doctor's slots (a row lock on PostgreSQL; SQLite's write
    // lock is already held by BEGIN IMMEDIATE).
    const LOCK: &str = "UPDATE doctors SET updated_at = $2 WHERE id = $1";
    const EXISTING: &str = "SELECT id, starts_at, ends_at, status, hold_expires_at FROM slots WHERE doctor_id = $1 AND starts_at > $2";
    let existing: Vec<ExistingSlot> = on_tx!(&mut tx, |conn| {
        sqlx::query(LOCK)
            .bind(doctor.id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        sqlx::query_as::<_, ExistingSlot>(EXISTING)
            .bind(doctor.id)
            .bind(now)
            .fetch_all(&mut *conn)
            .await
    })?;
    let mut wanted: HashMap<DateTime<Utc>, Interval> =
        desired.into_iter().map(|i| (i.starts_at, i)).collect();
    let mut busy: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    // A free slot goes; one that cancelled visits still name (their history) is kept
    // blocked, never offered, and opens again when the schedule wants its time back.
    const REMOVE: &str = "DELETE FROM slots WHERE id = $1 AND (status IN ('open', 'blocked') OR (status = 'held' AND hold_expires_at <= $2)) \
        AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.slot_id = slots.id)";
    const BLOCK: &str = "UPDATE slots SET status = 'blocked', held_by = NULL, hold_expires_at = NULL, updated_at = $2 \
        WHERE id = $1 AND (status = 'open' OR (status = 'held' AND hold_expires_at <= $2))";
    const REOPEN: &str =
        "UPDATE slots SET status = 'open', updated_at = $2 WHERE id = $1 AND status = 'blocked'";
    const BOOKED_BY: &str =
        "SELECT id FROM appointments WHERE slot_id = $1 AND status <> 'cancelled'";
    for slot in existing {
        if wanted
            .get(&slot.starts_at)
            .is_some_and(|w| w.ends_at == slot.ends_at)
        {
            wanted.remove(&slot.starts_at);
            if slot.status == SlotStatus::Blocked {
                report.created += crate::exec_tx!(&mut tx, REOPEN, slot.id, now)?;
            }
            continue;
        }
        let removed = crate::exec_tx!(&mut tx, REMOVE, slot.id, now)?;
        if removed == 1 {
            report.removed += 1;
            continue;
        }
        if slot.status == SlotStatus::Blocked {
            continue;
        }
        if crate::exec_tx!(&mut tx, BLOCK, slot.id, now)? == 1 {
            report.removed += 1;
            continue;
        }
        // Booked, or held by someone right now: keep it, keep its time free of new slots.
        busy.push((slot.starts_at, slot.ends_at));
        let appointment: Option<(Uuid,)> = on_tx!(&mut tx, |conn| sqlx::query_as(BOOKED_BY)
            .bind(slot.id)
            .fetch_optional(&mut *conn)
            .await)?;
        let _ = slot.hold_expires_at;
        report.conflicts.push(Conflict {
            slot_id: slot.id,
            starts_at: slot.starts_at,
            status: slot.status,
            appointment_id: appointment.map(|(id,)| id),
        });
    }
    let mut new: Vec<Interval> = wanted
        .into_values()
        .filter(|i| !busy.iter().any(|(a, b)| i.starts_at < *b && *a < i.ends_at))
        .collect();
    new.sort_by_key(|i| i.starts_at);
    report.created += insert_slots(&mut tx, doctor, &new, now).await?;
    tx.commit().await?;
    report.conflicts.sort_by_key(|c| c.starts_at);
    Ok(report)
}

/// Writes new slots, many rows a statement (a doctor's 90 days are about 1,500 slots):
/// one round trip per chunk instead of one per slot. Returns how many were new.
async fn insert_slots(
    tx: &mut crate::db::Tx,
    doctor: &Doctor,
    new: &[Interval],
    now: DateTime<Utc>,
) -> Result<u64> {
    const HEAD: &str = "INSERT INTO slots (id, doctor_id, clinic_id, starts_at, ends_at, local_date, local_minute, created_at, updated_at) ";
    let mut created = 0;
    for chunk in new.chunks(INSERT_CHUNK) {
        created += on_tx!(tx, |conn| {
            let mut q = sqlx::QueryBuilder::new(HEAD);
            q.push_values(chunk, |mut b, i| {
                b.push_bind(Uuid::now_v7())
                    .push_bind(doctor.id)
                    .push_bind(doctor.clinic_id)
                    .push_bind(i.starts_at)
                    .push_bind(i.ends_at)
                    .push_bind(i.local_date)
                    .push_bind(i.local_minute)
                    .push_bind(now)
                    .push_bind(now);
            });
            q.push(" ON CONFLICT (doctor_id, starts_at) DO NOTHING");
            // A full chunk's statement is kept prepared; a shorter one, whose length
            // varies, is not (it would crowd the connection's statement cache).
            q.build()
                .persistent(chunk.len() == INSERT_CHUNK)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
    }
    Ok(created)
}

/// Doctors the daily extension reads at a time.
const EXTEND_PAGE: i64 = 500;

/// Extends every scheduled doctor's slots to their horizon (the daily job, also run at
/// start): doctors a page at a time by id, and for each only the times after their last
/// slot are added. A change of hours reconciles the whole range itself, so the job never
/// reads a doctor's existing slots: its cost follows the doctors, not the slots.
pub async fn extend_all(db: &Db, now: DateTime<Utc>) -> Result<Batch> {
    const PAGE: &str =
        "SELECT doctor_id FROM schedules WHERE doctor_id > $1 ORDER BY doctor_id LIMIT $2";
    let mut batch = Batch::default();
    let mut after = Uuid::nil();
    loop {
        let ids: Vec<(Uuid,)> = on_db!(db, |pool| sqlx::query_as(PAGE)
            .bind(after)
            .bind(EXTEND_PAGE)
            .fetch_all(pool)
            .await)?;
        for (id,) in &ids {
            // One doctor's bad data must not stop the others.
            if let Some(created) = batch.count("extending slots", id, extend(db, *id, now).await) {
                batch.done += created;
            }
        }
        match ids.last() {
            Some((last,)) if ids.len() as i64 == EXTEND_PAGE => after = *last,
            _ => return Ok(batch),
        }
    }
}

/// When a doctor's slots were last brought in step with their hours (`reconcile` marks it).
const IN_STEP_AT: &str = "SELECT updated_at FROM doctors WHERE id = $1";

/// Adds a doctor's slots after their last one, up to the horizon. Returns how many.
async fn extend(db: &Db, doctor_id: Uuid, now: DateTime<Utc>) -> Result<u64> {
    let Some((doctor, new, read_at)) = beyond_last(db, doctor_id, now).await? else {
        return Ok(0);
    };
    if new.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    // Serialised with changes to the doctor's hours (a row lock on PostgreSQL, SQLite's
    // write lock); when one was saved since the read above, it has brought the slots in
    // step over the whole horizon itself.
    const LOCK: &str = "UPDATE doctors SET updated_at = updated_at WHERE id = $1";
    let marked: Option<(DateTime<Utc>,)> = on_tx!(&mut tx, |conn| {
        sqlx::query(LOCK)
            .bind(doctor_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query_as(IN_STEP_AT)
            .bind(doctor_id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    if marked.map(|(at,)| at) != Some(read_at) {
        return Ok(0);
    }
    let created = insert_slots(&mut tx, &doctor, &new, now).await?;
    tx.commit().await?;
    Ok(created)
}

/// A doctor with a schedule, the times their schedule gives after their last slot, and
/// when their slots were last brought in step (read first).
async fn beyond_last(
    db: &Db,
    doctor_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(Doctor, Vec<Interval>, DateTime<Utc>)>> {
    let Some((read_at,)) = on_db!(db, |pool| sqlx::query_as::<_, (DateTime<Utc>,)>(IN_STEP_AT)
        .bind(doctor_id)
        .fetch_optional(pool)
        .await)?
    else {
        return Ok(None);
    };
    let Some(doctor) = doctors::get(db, doctor_id).await? else {
        return Ok(None);
    };
    let Some(form) = schedule_of(db, doctor_id).await? else {
        return Ok(None);
    };
    let schedule = form.check()?;
    // The last slot's end, through the (doctor, start) index.
    const LAST: &str =
        "SELECT ends_at FROM slots WHERE doctor_id = $1 ORDER BY starts_at DESC LIMIT 1";
    let last: Option<(DateTime<Utc>,)> = on_db!(db, |pool| sqlx::query_as(LAST)
        .bind(doctor_id)
        .fetch_optional(pool)
        .await)?;
    let new = desired(db, &doctor, &schedule, now, None)
        .await?
        .into_iter()
        .filter(|i| last.is_none_or(|(end,)| i.starts_at >= end))
        .collect();
    Ok(Some((doctor, new, read_at)))
}

/// Lapsed holds back to the pool, at most a batch at a time (through the hold-expiry index).
pub(crate) const RELEASE_EXPIRED_HOLDS_SQL: &str = "UPDATE slots SET status = 'open', held_by = NULL, hold_expires_at = NULL, updated_at = $1 \
    WHERE id IN (SELECT id FROM slots WHERE status = 'held' AND hold_expires_at <= $1 LIMIT $2)";

/// Lapsed holds released per transaction.
const RELEASE_BATCH: i64 = 500;

/// Returns expired holds to the pool (holds also lapse on their own when claimed), in
/// batches, each its own short write.
pub async fn release_expired_holds(db: &Db, now: DateTime<Utc>) -> Result<u64> {
    let mut released = 0;
    loop {
        let mut tx = db.begin().await?;
        let n = crate::exec_tx!(&mut tx, RELEASE_EXPIRED_HOLDS_SQL, now, RELEASE_BATCH)?;
        tx.commit().await?;
        released += n;
        if n < RELEASE_BATCH as u64 {
            return Ok(released);
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SlotQuery {
    /// First local date (default today).
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub from: Option<NaiveDate>,
    /// Day after the last local date (default 14 days after `from`; at most 92 days).
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub to: Option<NaiveDate>,
    pub part_of_day: Option<PartOfDay>,
    /// For specialty searches: ISO 639-1 language the doctor speaks.
    pub language: Option<String>,
    /// For specialty searches: one clinic only.
    pub clinic_id: Option<Uuid>,
    /// For specialty searches: maximum fee in minor units.
    pub max_fee_cents: Option<i64>,
    /// 1 to 200; default 50.
    pub limit: Option<i64>,
}

struct Window {
    from: NaiveDate,
    to: NaiveDate,
    /// Instants that surely contain the local dates `[from, to)` in any zone (UTC−12 to
    /// UTC+14): they bound the index range scanned on `starts_at`.
    after: DateTime<Utc>,
    before: DateTime<Utc>,
    min_minute: i64,
    max_minute: i64,
    limit: i64,
}

impl SlotQuery {
    fn window(&self, today: NaiveDate) -> Result<Window> {
        crate::domain::validate::query_dates([("from", self.from), ("to", self.to)])?;
        let from = self.from.unwrap_or(today);
        let to = self.to.unwrap_or(from + chrono::Days::new(14));
        let mut checks = Checks::new();
        if to <= from {
            checks.fail("to", "must be after from");
        } else if (to - from).num_days() > 92 {
            checks.fail("to", "the range may span at most 92 days");
        }
        checks.finish_query()?;
        let (min_minute, max_minute) = self
            .part_of_day
            .map(PartOfDay::minutes)
            .unwrap_or((0, 24 * 60));
        let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
        Ok(Window {
            from,
            to,
            after: midnight(from) - Duration::hours(14),
            before: midnight(to) + Duration::hours(12),
            min_minute,
            max_minute,
            limit: self.limit.unwrap_or(50).clamp(1, 200),
        })
    }
}

/// A doctor's zone and notice, for the doctor search.
pub(crate) const DOCTOR_SEARCH_NOTICE_SQL: &str = "SELECT c.time_zone, COALESCE(sc.min_notice_minutes, 0) FROM doctors d \
    JOIN clinics c ON c.id = d.clinic_id LEFT JOIN schedules sc ON sc.doctor_id = d.id \
    WHERE d.id = $1 AND d.deleted_at IS NULL";

/// The doctor search.
pub(crate) const DOCTOR_SEARCH_SQL: &str = "SELECT s.id, s.doctor_id, s.clinic_id, s.starts_at, s.ends_at, s.local_date, s.local_minute FROM slots s \
    JOIN clinics c ON c.id = s.clinic_id WHERE s.doctor_id = $1 AND c.status = 'active' \
    AND s.starts_at >= $7 AND s.starts_at < $9 \
    AND s.local_date >= $2 AND s.local_date < $3 AND s.local_minute >= $4 AND s.local_minute < $5 \
    AND (s.status = 'open' OR (s.status = 'held' AND s.hold_expires_at <= $6)) \
    ORDER BY s.starts_at LIMIT $8";

/// Free slots of one doctor, soonest first, respecting the minimum notice.
pub async fn free_for_doctor(
    db: &Db,
    doctor_id: Uuid,
    q: &SlotQuery,
    now: DateTime<Utc>,
) -> Result<Vec<Slot>> {
    let (time_zone, notice): (TimeZone, i64) =
        on_db!(db, |pool| sqlx::query_as(DOCTOR_SEARCH_NOTICE_SQL)
            .bind(doctor_id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| Error::not_found("doctor"))?;
    let today = now.with_timezone(&time_zone.tz()).date_naive();
    let w = q.window(today)?;
    let earliest = (now + Duration::minutes(notice)).max(w.after);
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Slot>(
        DOCTOR_SEARCH_SQL
    )
    .bind(doctor_id)
    .bind(w.from)
    .bind(w.to)
    .bind(w.min_minute)
    .bind(w.max_minute)
    .bind(now)
    .bind(earliest)
    .bind(w.limit)
    .bind(w.before)
    .fetch_all(pool)
    .await)?)
}

pub async fn min_notice(db: &Db, doctor_id: Uuid) -> Result<Duration> {
    const SQL: &str = "SELECT min_notice_minutes FROM schedules WHERE doctor_id = $1";
    let row: Option<(i64,)> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(doctor_id)
        .fetch_optional(pool)
        .await)?;
    Ok(Duration::minutes(row.map(|(m,)| m).unwrap_or(0)))
}

/// A free slot with the doctor it belongs to.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct SpecialtySlot {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub slot: Slot,
    pub doctor_name: String,
    pub clinic_name: String,
    /// The clinic's zone, which `local_date` and `local_minute` are in.
    pub time_zone: TimeZone,
    pub fee_cents: i64,
    pub currency: String,
    #[serde(skip)]
    pub min_notice_minutes: i64,
}

/// The specialty search (public for the benchmark's query plan): each of the specialty's
/// doctors' first `$13` free times in the window after their own minimum notice (a
/// correlated subquery through the (doctor, start) index; the rows found by their rowid,
/// not looked up again by id), then the soonest `$10` of those. Its cost follows the
/// number of doctors, not the slots they have. Times are compared as SQLite keeps them
/// (RFC 3339 text in UTC); the notice is rounded down to the second here and applied
/// exactly after.
pub const SPECIALTY_SEARCH_SQL: &str = "SELECT s.id, s.doctor_id, s.clinic_id, s.starts_at, s.ends_at, s.local_date, s.local_minute, \
    d.display_name AS doctor_name, c.name AS clinic_name, c.time_zone, d.fee_cents, d.currency, sc.min_notice_minutes \
    FROM specialties sp JOIN doctor_specialties ds ON ds.specialty_id = sp.id JOIN doctors d ON d.id = ds.doctor_id \
    JOIN clinics c ON c.id = d.clinic_id JOIN schedules sc ON sc.doctor_id = d.id CROSS JOIN slots s \
    WHERE s.rowid IN (SELECT f.rowid FROM slots f WHERE f.doctor_id = ds.doctor_id \
        AND f.starts_at >= MAX($11, strftime('%Y-%m-%dT%H:%M:%S+00:00', $6, '+' || sc.min_notice_minutes || ' minutes')) \
        AND f.starts_at < $12 \
        AND f.local_date >= $2 AND f.local_date < $3 AND f.local_minute >= $4 AND f.local_minute < $5 \
        AND (f.status = 'open' OR (f.status = 'held' AND f.hold_expires_at <= $6)) \
        ORDER BY f.starts_at LIMIT $13) \
    AND sp.slug = $1 AND d.active = TRUE AND d.deleted_at IS NULL AND c.status = 'active' \
    AND ($7 IS NULL OR instr(d.languages, $7) > 0) AND ($8 IS NULL OR d.clinic_id = $8) AND ($9 IS NULL OR d.fee_cents <= $9) \
    ORDER BY s.starts_at LIMIT $10";

/// The specialty search as PostgreSQL runs it: the specialty's bookable doctors first (a
/// materialised step, so no plan, whatever the statistics, runs the slot scan for doctors
/// of other specialties), then each one's first `$13` free times through the (doctor,
/// start) index with their own minimum notice applied, then the soonest `$10` of those.
pub const SPECIALTY_SEARCH_PG_SQL: &str = "WITH docs AS MATERIALIZED (SELECT d.id, d.display_name, d.fee_cents, d.currency, \
        c.name AS clinic_name, c.time_zone, sc.min_notice_minutes \
        FROM specialties sp JOIN doctor_specialties ds ON ds.specialty_id = sp.id JOIN doctors d ON d.id = ds.doctor_id \
        JOIN clinics c ON c.id = d.clinic_id JOIN schedules sc ON sc.doctor_id = d.id \
        WHERE sp.slug = $1 AND d.active = TRUE AND d.deleted_at IS NULL AND c.status = 'active' \
        AND ($7::text IS NULL OR strpos(d.languages, $7) > 0) AND ($8::uuid IS NULL OR d.clinic_id = $8) \
        AND ($9::bigint IS NULL OR d.fee_cents <= $9)) \
    SELECT s.id, s.doctor_id, s.clinic_id, s.starts_at, s.ends_at, s.local_date, s.local_minute, \
    docs.display_name AS doctor_name, docs.clinic_name, docs.time_zone, docs.fee_cents, docs.currency, docs.min_notice_minutes \
    FROM docs CROSS JOIN LATERAL (SELECT s.id, s.doctor_id, s.clinic_id, s.starts_at, s.ends_at, s.local_date, s.local_minute FROM slots s \
        WHERE s.doctor_id = docs.id AND s.starts_at < $12 \
        AND s.starts_at >= GREATEST($11::timestamptz, $6::timestamptz + docs.min_notice_minutes * INTERVAL '1 minute') \
        AND s.local_date >= $2 AND s.local_date < $3 AND s.local_minute >= $4 AND s.local_minute < $5 \
        AND (s.status = 'open' OR (s.status = 'held' AND s.hold_expires_at <= $6)) \
        ORDER BY s.starts_at LIMIT $13) s \
    ORDER BY s.starts_at LIMIT $10";

/// How many free times of each doctor the specialty search reads first; when one doctor
/// fills that many of the answer, it reads again with the whole answer's worth each.
const SPECIALTY_FIRST_PER_DOCTOR: i64 = 8;

/// Free slots of every bookable doctor of a specialty, soonest first. Local dates are
/// each clinic's own.
pub async fn free_for_specialty(
    db: &Db,
    slug: &str,
    q: &SlotQuery,
    now: DateTime<Utc>,
) -> Result<Vec<SpecialtySlot>> {
    let w = q.window(now.date_naive())?;
    // Found with `instr` (`strpos`), not LIKE: SQLite prepares a statement again at every
    // execution whose LIKE pattern is a parameter (its LIKE optimisation reads the value).
    let language = q
        .language
        .as_ref()
        .map(|l| format!(",{},", l.trim().to_lowercase()));

    let sql = match db.pool() {
        crate::db::Pool::Sqlite(_) => SPECIALTY_SEARCH_SQL,
        crate::db::Pool::Postgres(_) => SPECIALTY_SEARCH_PG_SQL,
    };
    // Both texts apply each doctor's own minimum notice; what is read is checked against
    // it exactly below.
    let earliest = now.max(w.after);
    // Ordered by the start alone (SQLite sorts three times faster than by start and id);
    // ties are put in id order below.
    let wanted = usize::try_from(w.limit).unwrap_or(50);
    let mut fetch = w.limit;
    let mut per_doctor = fetch.min(SPECIALTY_FIRST_PER_DOCTOR);
    loop {
        let rows = on_db!(db, |pool| sqlx::query_as::<_, SpecialtySlot>(sql)
            .bind(slug)
            .bind(w.from)
            .bind(w.to)
            .bind(w.min_minute)
            .bind(w.max_minute)
            .bind(now)
            .bind(language.as_deref())
            .bind(q.clinic_id)
            .bind(q.max_fee_cents)
            .bind(fetch)
            .bind(earliest)
            .bind(w.before)
            .bind(per_doctor)
            .fetch_all(pool)
            .await)?;
        if rows.is_empty()
            && crate::domain::clinics::specialties::by_slug(db, slug)
                .await?
                .is_none()
        {
            return Err(Error::not_found("specialty"));
        }
        // A doctor with all of their first times in the answer may have more that belong
        // in it: read again with a whole answer's worth each.
        if per_doctor < fetch && fills_its_share(&rows, per_doctor) {
            per_doctor = fetch;
            continue;
        }
        let exhausted = rows.len() < usize::try_from(fetch).unwrap_or(0);
        let mut rows: Vec<SpecialtySlot> = rows
            .into_iter()
            .filter(|r| r.slot.starts_at >= now + Duration::minutes(r.min_notice_minutes))
            .collect();
        if rows.len() >= wanted || exhausted || fetch >= 1000 {
            rows.sort_by_key(|r| (r.slot.starts_at, r.slot.id));
            rows.truncate(wanted);
            return Ok(rows);
        }
        fetch *= 4;
    }
}

/// Whether some doctor has `share` rows in the answer.
fn fills_its_share(rows: &[SpecialtySlot], share: i64) -> bool {
    let mut per_doctor: HashMap<Uuid, i64> = HashMap::new();
    rows.iter().any(|r| {
        let n = per_doctor.entry(r.slot.doctor_id).or_default();
        *n += 1;
        *n >= share
    })
}

/// One slot by id, whatever its state.
pub async fn get(db: &Db, id: Uuid) -> Result<Option<(Slot, String)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        slot: Slot,
        status: String,
    }
    const SQL: &str = "SELECT id, doctor_id, clinic_id, starts_at, ends_at, local_date, local_minute, status FROM slots WHERE id = $1";
    let row = on_db!(db, |pool| sqlx::query_as::<_, Row>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(|r| (r.slot, r.status)))
}
