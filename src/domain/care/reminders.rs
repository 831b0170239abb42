//! Reminders of a care plan: when each plan item falls due, in the patient's time zone;
//! check-ins; and missed check-ins, which extend the plan by one occurrence (up to a
//! limit). Daily times are local wall-clock times, so 08:00 stays 08:00 across a DST
//! change; "every N hours" is a fixed interval in real time.

use chrono::TimeZone as _;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Batch, Db, Tx};
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::care::care_plans;
use crate::error::{Code, Error, Result};
use crate::notify::messages::{self, Kind};
use crate::notify::outbox::{self, Message};
use crate::zone::TimeZone;
use crate::{on_db, on_tx};

/// At most this many reminders for one plan item.
pub const MAX_OCCURRENCES: u32 = 500;

/// How one plan item repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub times_per_day: Option<u32>,
    pub every_hours: Option<u32>,
    /// The local day of the first occurrence (daily rules).
    pub first_day: NaiveDate,
    /// No occurrence before this instant.
    pub starts_at: DateTime<Utc>,
}

/// Local minutes of the day for `n` doses: one at 09:00; more spread from 08:00 to 20:00.
pub fn daily_minutes(n: u32) -> Vec<u32> {
    match n {
        0 => Vec::new(),
        1 => vec![9 * 60],
        n => (0..n).map(|i| 8 * 60 + i * (12 * 60) / (n - 1)).collect(),
    }
}

/// The instant of a local wall-clock time; a time skipped by a DST change moves an hour
/// later, a repeated one takes its first occurrence.
pub fn local_instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&local))
}

impl Rule {
    /// The first `count` occurrences.
    pub fn occurrences(&self, tz: Tz, count: u32) -> Vec<DateTime<Utc>> {
        let count = count.min(MAX_OCCURRENCES) as usize;
        let mut out = Vec::with_capacity(count);
        if let Some(h) = self.every_hours.filter(|h| *h > 0) {
            out.extend((0..count as i64).map(|i| self.starts_at + Duration::hours(h as i64 * i)));
            return out;
        }
        let minutes = daily_minutes(self.times_per_day.unwrap_or(1));
        let mut day = self.first_day;
        // Bounded: each day adds at least one occurrence after the first.
        while out.len() < count && day < self.first_day + Duration::days(MAX_OCCURRENCES as i64 + 2)
        {
            for m in &minutes {
                let t = NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap_or(NaiveTime::MIN);
                let at = local_instant(tz, day.and_time(t));
                if at >= self.starts_at && out.len() < count {
                    out.push(at);
                }
            }
            day += Duration::days(1);
        }
        out
    }

    /// Occurrence number `n` (from 0).
    pub fn nth(&self, tz: Tz, n: u32) -> Option<DateTime<Utc>> {
        self.occurrences(tz, n + 1).get(n as usize).copied()
    }
}

/// The rule for a plan item written now in `tz`.
pub fn rule_for(item: &care_plans::PlanItem, tz: Tz, now: DateTime<Utc>) -> Rule {
    let today = now.with_timezone(&tz).date_naive();
    let start = item.start_in_days.unwrap_or(0);
    let first_day = today + Duration::days(i64::from(start));
    let starts_at = match (start, item.every_hours) {
        // Today: from the next whole hour for intervals, from now for daily times.
        (0, Some(_)) => {
            let next = now + Duration::hours(1);
            next.with_minute(0)
                .and_then(|t| t.with_second(0))
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(next)
        }
        (0, None) => now,
        (_, Some(_)) => local_instant(tz, first_day.and_time(NaiveTime::MIN) + Duration::hours(8)),
        (_, None) => local_instant(tz, first_day.and_time(NaiveTime::MIN)),
    };
    Rule {
        times_per_day: item.times_per_day,
        every_hours: item.every_hours,
        first_day,
        starts_at,
    }
}

/// How many reminders an item gets: its duration (or `open_days`) worth of doses.
pub fn count_for(item: &care_plans::PlanItem, open_days: u32) -> u32 {
    let days = item.duration_days.unwrap_or(open_days).max(1);
    let n = match (item.times_per_day, item.every_hours) {
        (_, Some(h)) if h > 0 => (days * 24).div_ceil(h),
        (Some(t), _) => t * days,
        _ => days,
    };
    n.clamp(1, MAX_OCCURRENCES)
}

/// Writes reminders of one plan item, `(seq, at)` each, and their notifications: one
/// INSERT for the reminders and one for the messages, however many there are.
pub(crate) async fn schedule(
    tx: &mut Tx,
    db: &Db,
    (plan_id, item_id): (Uuid, Uuid),
    to: &outbox::Contact,
    times: &[(u32, DateTime<Utc>)],
    action: &str,
    extension: bool,
) -> Result<()> {
    if times.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rows: Vec<(Uuid, u32, DateTime<Utc>)> = times
        .iter()
        .map(|(seq, at)| (Uuid::now_v7(), *seq, *at))
        .collect();
    const HEAD: &str = "INSERT INTO reminders (id, plan_item_id, plan_id, patient_id, seq, due_at, status, extension, created_at, updated_at) ";
    on_tx!(tx, |conn| {
        let mut q = sqlx::QueryBuilder::new(HEAD);
        q.push_values(&rows, |mut b, (id, seq, at)| {
            b.push_bind(*id)
                .push_bind(item_id)
                .push_bind(plan_id)
                .push_bind(to.user_id)
                .push_bind(i64::from(*seq))
                .push_bind(*at)
                .push_bind("scheduled")
                .push_bind(extension)
                .push_bind(now)
                .push_bind(now);
        });
        q.build()
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    // One link for the item's reminders: it checks in whichever is due when tapped, and
    // lapses two days after the last one.
    let last = rows.iter().map(|(_, _, at)| *at).max().unwrap_or(now);
    let link = db.policy().site.as_deref().map(|site| {
        let token = link_token(db.policy(), to.user_id, item_id, last + Duration::days(2));
        format!("{}/r/{token}", site.trim_end_matches('/'))
    });
    let task = messages::Task {
        patient: &to.display_name,
        task: action,
        link,
    };
    let message: Message = Kind::PlanReminder(&task).render(to.language)?.into();
    let abouts: Vec<(String, DateTime<Utc>)> = rows
        .iter()
        .map(|(id, _, at)| (format!("reminder:{id}"), *at))
        .collect();
    outbox::enqueue_all(tx, db.policy(), to, "plan_reminder", &message, &abouts).await
}

crate::text_enum! {
    /// A reminder: waiting for its time, checked in, missed, or withdrawn.
    pub enum ReminderStatus {
        Scheduled = "scheduled",
        Done = "done",
        Missed = "missed",
        Cancelled = "cancelled",
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Reminder {
    pub id: Uuid,
    pub plan_id: Uuid,
    /// What to do.
    pub action: String,
    pub due_at: DateTime<Utc>,
    /// The due time in the patient's zone, e.g. `2026-12-01 08:00`.
    pub local_time: String,
    pub time_zone: TimeZone,
    pub status: ReminderStatus,
    /// Added because an earlier reminder was missed.
    pub extension: bool,
    pub checked_in_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ReminderRow {
    id: Uuid,
    plan_id: Uuid,
    position: i64,
    due_at: DateTime<Utc>,
    status: ReminderStatus,
    extension: bool,
    checked_in_at: Option<DateTime<Utc>>,
    time_zone: TimeZone,
    sealed: Vec<u8>,
}

macro_rules! select_reminders {
    ($tail:literal) => {
        concat!("SELECT r.id, r.plan_id, i.position, r.due_at, r.status, r.extension, r.checked_in_at, p.time_zone, p.sealed \
    FROM reminders r JOIN plan_items i ON i.id = r.plan_item_id JOIN care_plans p ON p.id = r.plan_id ", $tail)
    };
}

fn view(db: &Db, rows: Vec<ReminderRow>) -> Result<Vec<Reminder>> {
    let mut plans = std::collections::HashMap::new();
    rows.into_iter()
        .map(|r| {
            let e = match plans.entry(r.plan_id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(care_plans::open_extraction(db, r.plan_id, &r.sealed)?)
                }
            };
            let action = e
                .plan
                .get(r.position as usize)
                .map(|p| p.action.clone())
                .unwrap_or_default();
            let tz = r.time_zone.tz();
            Ok(Reminder {
                id: r.id,
                plan_id: r.plan_id,
                action,
                due_at: r.due_at,
                local_time: r
                    .due_at
                    .with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M")
                    .to_string(),
                time_zone: r.time_zone,
                status: r.status,
                extension: r.extension,
                checked_in_at: r.checked_in_at,
            })
        })
        .collect()
}

/// The signed-in patient's reminders from `from` to `to` (their own only).
pub async fn mine(
    db: &Db,
    actor: &Actor,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Reminder>> {
    let p = actor.principal()?;
    const SQL: &str = select_reminders!(
        "WHERE r.patient_id = $1 AND r.due_at >= $2 AND r.due_at < $3 AND r.status <> 'cancelled' ORDER BY r.due_at LIMIT 1000"
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, ReminderRow>(SQL)
        .bind(p.user_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await)?;
    view(db, rows)
}

/// Reminders of one plan (for its readers; the caller checked access).
pub(crate) async fn of_plan(db: &Db, plan_id: Uuid) -> Result<Vec<Reminder>> {
    const SQL: &str = select_reminders!("WHERE r.plan_id = $1 ORDER BY r.due_at");
    let rows = on_db!(db, |pool| sqlx::query_as::<_, ReminderRow>(SQL)
        .bind(plan_id)
        .fetch_all(pool)
        .await)?;
    view(db, rows)
}

/// The patient says they did it. Possible from one grace window before the due time; a
/// late check-in still counts (a missed reminder becomes done; its extension stays).
pub async fn check_in(db: &Db, actor: &Actor, id: Uuid) -> Result<Reminder> {
    let p = actor.principal()?;
    let now = Utc::now();
    let earliest = now + db.policy().reminder_grace;
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE reminders SET status = 'done', checked_in_at = $3, updated_at = $3 \
        WHERE id = $1 AND patient_id = $2 AND status IN ('scheduled', 'missed') AND due_at <= $4";
    let done = crate::exec_tx!(&mut tx, SQL, id, p.user_id, now, earliest)?;
    if done == 0 {
        drop(tx);
        let found = on_db!(db, |pool| sqlx::query_as::<_, (String, DateTime<Utc>)>(
            "SELECT status, due_at FROM reminders WHERE id = $1 AND patient_id = $2"
        )
        .bind(id)
        .bind(p.user_id)
        .fetch_optional(pool)
        .await)?;
        return Err(match found {
            None => Error::not_found("reminder"),
            Some((status, _)) if status == "done" || status == "cancelled" => Error::new(
                Code::Conflict,
                format!("This reminder is already {status}."),
            ),
            Some(_) => Error::new(Code::Conflict, "This reminder is not due yet."),
        });
    }
    outbox::cancel_about(&mut tx, &format!("reminder:{id}"), &["plan_reminder"]).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "reminder.checked_in",
            subject: format!("reminder:{id}"),
            clinic_id: None,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    let rows = on_db!(db, |pool| sqlx::query_as::<_, ReminderRow>(
        select_reminders!("WHERE r.id = $1")
    )
    .bind(id)
    .fetch_all(pool)
    .await)?;
    view(db, rows)?
        .pop()
        .ok_or_else(|| Error::not_found("reminder"))
}

#[derive(sqlx::FromRow)]
struct Overdue {
    id: Uuid,
    plan_item_id: Uuid,
    plan_id: Uuid,
    patient_id: Uuid,
}

#[derive(sqlx::FromRow)]
struct Extended {
    occurrences: i64,
    times_per_day: Option<i64>,
    every_hours: Option<i64>,
    first_day: NaiveDate,
    starts_at: DateTime<Utc>,
    position: i64,
    time_zone: TimeZone,
    sealed: Vec<u8>,
}

/// Marks reminders not checked in within the grace window as missed, and extends each
/// one's plan item by one more occurrence while it has extensions left. Each reminder is
/// handled in its own transaction by a conditional update, so replicas can run this side
/// by side. Returns the reminders marked missed (and failed), and the plan items extended.
pub async fn sweep_missed(db: &Db, now: DateTime<Utc>) -> Result<(Batch, u64)> {
    let policy = db.policy();
    const OVERDUE: &str = "SELECT r.id, r.plan_item_id, r.plan_id, r.patient_id FROM reminders r \
        WHERE r.status = 'scheduled' AND r.due_at < $1 ORDER BY r.due_at LIMIT 200";
    let overdue = on_db!(db, |pool| sqlx::query_as::<_, Overdue>(OVERDUE)
        .bind(now - policy.reminder_grace)
        .fetch_all(pool)
        .await)?;
    let (mut batch, mut extended) = (Batch::default(), 0);
    for r in overdue {
        let row = r.id;
        let one = async {
            let mut tx = db.begin().await?;
            let mut grew = false;
            const MISS: &str = "UPDATE reminders SET status = 'missed', updated_at = $2 WHERE id = $1 AND status = 'scheduled'";
            let n = crate::exec_tx!(&mut tx, MISS, r.id, now)?;
            if n == 0 {
                return Ok(None);
            }
            const EXTEND: &str = "UPDATE plan_items SET occurrences = occurrences + 1, extensions = extensions + 1, updated_at = $3 \
                WHERE id = $1 AND extensions < $2 \
                AND EXISTS (SELECT 1 FROM care_plans p WHERE p.id = plan_items.plan_id AND p.status = 'active') \
                RETURNING occurrences, times_per_day, every_hours, first_day, starts_at, position, \
                (SELECT p.time_zone FROM care_plans p WHERE p.id = plan_items.plan_id) AS time_zone, \
                (SELECT p.sealed FROM care_plans p WHERE p.id = plan_items.plan_id) AS sealed";
            let item = on_tx!(&mut tx, |conn| sqlx::query_as::<_, Extended>(EXTEND)
                .bind(r.plan_item_id)
                .bind(policy.plan_extension_limit)
                .bind(now)
                .fetch_optional(&mut *conn)
                .await)?;
            if let Some(item) = item {
                let tz = item.time_zone.tz();
                let rule = Rule {
                    times_per_day: item.times_per_day.map(|n| n as u32),
                    every_hours: item.every_hours.map(|n| n as u32),
                    first_day: item.first_day,
                    starts_at: item.starts_at,
                };
                let seq = (item.occurrences - 1).max(0) as u32;
                let extraction = care_plans::open_extraction(db, r.plan_id, &item.sealed)?;
                let action = extraction
                    .plan
                    .get(item.position as usize)
                    .map(|p| p.action.clone())
                    .unwrap_or_default();
                if let Some(at) = rule.nth(tz, seq) {
                    let to = outbox::contact(&mut tx, r.patient_id).await?;
                    schedule(
                        &mut tx,
                        db,
                        (r.plan_id, r.plan_item_id),
                        &to,
                        &[(seq, at.max(now))],
                        &action,
                        true,
                    )
                    .await?;
                    grew = true;
                }
            }
            audit::record(
                &mut tx,
                &Actor::System,
                Entry {
                    action: "reminder.missed",
                    subject: format!("reminder:{}", r.id),
                    clinic_id: None,
                    details: json!({"extended": grew}),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<_, Error>(Some(grew))
        };
        if let Some(Some(grew)) = batch.count("recording a missed check-in", row, one.await) {
            batch.done += 1;
            extended += u64::from(grew);
        }
    }
    Ok((batch, extended))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(tz: Tz, t: DateTime<Utc>) -> String {
        t.with_timezone(&tz)
            .format("%Y-%m-%d %H:%M %:z")
            .to_string()
    }

    #[test]
    fn daily_times_keep_their_local_hour_across_a_dst_change() {
        let tz: Tz = "Europe/Lisbon".parse().unwrap();
        // Lisbon springs forward on 2027-03-28 (01:00 → 02:00).
        let rule = Rule {
            times_per_day: Some(2),
            every_hours: None,
            first_day: NaiveDate::from_ymd_opt(2027, 3, 27).unwrap(),
            starts_at: Utc.with_ymd_and_hms(2027, 3, 27, 0, 0, 0).unwrap(),
        };
        let got: Vec<String> = rule
            .occurrences(tz, 4)
            .into_iter()
            .map(|t| local(tz, t))
            .collect();
        assert_eq!(
            got,
            [
                "2027-03-27 08:00 +00:00",
                "2027-03-27 20:00 +00:00",
                "2027-03-28 08:00 +01:00",
                "2027-03-28 20:00 +01:00"
            ]
        );
        // An interval is real time: 8 hours apart whatever the clock says.
        let every8 = Rule {
            times_per_day: None,
            every_hours: Some(8),
            ..rule
        };
        let t = every8.occurrences(tz, 5);
        assert!(t.windows(2).all(|w| w[1] - w[0] == Duration::hours(8)));
        assert_eq!(local(tz, t[3]), "2027-03-28 00:00 +00:00");
        assert_eq!(local(tz, t[4]), "2027-03-28 09:00 +01:00");
    }

    #[test]
    fn times_already_past_today_are_skipped_and_the_count_is_kept() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 20, 0, 0).unwrap(); // 15:00 local
        let item = care_plans::PlanItem {
            action: "Take it".into(),
            times_per_day: Some(2),
            every_hours: None,
            duration_days: Some(2),
            start_in_days: None,
        };
        let rule = rule_for(&item, tz, now);
        let got: Vec<String> = rule
            .occurrences(tz, count_for(&item, 30))
            .into_iter()
            .map(|t| local(tz, t))
            .collect();
        assert_eq!(
            got,
            [
                "2026-12-01 20:00 -05:00",
                "2026-12-02 08:00 -05:00",
                "2026-12-02 20:00 -05:00",
                "2026-12-03 08:00 -05:00"
            ]
        );
        assert_eq!(daily_minutes(3), [480, 840, 1200]);
        assert_eq!(daily_minutes(1), [540]);
    }
}

// ---- Check-in links ----------------------------------------------------------------------

const LINK_PURPOSE: &str = "reminder-check-in-link";

/// A signed, expiring token for a plan item's reminders of one patient: whoever holds it
/// may check in the reminder that is due, and see what it is for; nothing else.
pub fn link_token(
    policy: &crate::db::Policy,
    patient_id: Uuid,
    item_id: Uuid,
    expires: DateTime<Utc>,
) -> String {
    let value = format!("{item_id}.{patient_id}.{}", expires.timestamp());
    format!("{value}.{}", policy.audit_key.digest(LINK_PURPOSE, &value))
}

/// The plan item and patient a token names, when it is genuine and has not lapsed.
fn read_link(policy: &crate::db::Policy, token: &str, now: DateTime<Utc>) -> Result<(Uuid, Uuid)> {
    let invalid = || {
        Error::new(
            Code::InvalidToken,
            "This check-in link is not valid or has expired; sign in to check in.",
        )
    };
    let (value, mac) = token.rsplit_once('.').ok_or_else(invalid)?;
    if !policy.audit_key.matches(LINK_PURPOSE, value, mac) {
        return Err(invalid());
    }
    let mut parts = value.split('.');
    let (Some(item), Some(patient), Some(expires), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let expires: i64 = expires.parse().map_err(|_| invalid())?;
    if now.timestamp() > expires {
        return Err(invalid());
    }
    Ok((
        item.parse().map_err(|_| invalid())?,
        patient.parse().map_err(|_| invalid())?,
    ))
}

/// What a check-in link shows: the step, the reminder due now (if any) and the next one.
#[derive(Clone, Debug, Serialize)]
pub struct LinkView {
    pub patient_name: String,
    pub action: String,
    /// The reminder that checking in now marks done.
    pub due: Option<Uuid>,
    /// When, in the plan's zone.
    pub due_at: Option<String>,
    pub next_at: Option<String>,
    /// Set when this visit to the link checked one in.
    pub checked_in: bool,
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    plan_id: Uuid,
    position: i64,
    sealed: Vec<u8>,
    time_zone: TimeZone,
    patient_name: String,
}

/// Reads a check-in link (no sign-in: the token is the permission).
pub async fn by_link(db: &Db, token: &str) -> Result<LinkView> {
    let now = Utc::now();
    let (item, patient) = read_link(db.policy(), token, now)?;
    const ITEM: &str = "SELECT i.plan_id, i.position, p.sealed, p.time_zone, u.display_name AS patient_name FROM plan_items i \
        JOIN care_plans p ON p.id = i.plan_id JOIN users u ON u.id = p.patient_id \
        WHERE i.id = $1 AND p.patient_id = $2 AND u.erased_at IS NULL";
    let row: LinkRow = on_db!(db, |pool| sqlx::query_as(ITEM)
        .bind(item)
        .bind(patient)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("reminder"))?;
    let action = care_plans::open_extraction(db, row.plan_id, &row.sealed)?
        .plan
        .get(usize::try_from(row.position).unwrap_or(usize::MAX))
        .map(|p| p.action.clone())
        .unwrap_or_default();
    let tz = row.time_zone.tz();
    let local = |at: DateTime<Utc>| at.with_timezone(&tz).format("%a %-d %b, %H:%M").to_string();
    let earliest = now + db.policy().reminder_grace;
    const DUE: &str = "SELECT id, due_at FROM reminders WHERE plan_item_id = $1 AND patient_id = $2 \
        AND status IN ('scheduled', 'missed') AND due_at <= $3 ORDER BY due_at LIMIT 1";
    const NEXT: &str = "SELECT due_at FROM reminders WHERE plan_item_id = $1 AND patient_id = $2 \
        AND status = 'scheduled' AND due_at > $3 ORDER BY due_at LIMIT 1";
    let due: Option<(Uuid, DateTime<Utc>)> = on_db!(db, |pool| sqlx::query_as(DUE)
        .bind(item)
        .bind(patient)
        .bind(earliest)
        .fetch_optional(pool)
        .await)?;
    let next: Option<(DateTime<Utc>,)> = on_db!(db, |pool| sqlx::query_as(NEXT)
        .bind(item)
        .bind(patient)
        .bind(earliest)
        .fetch_optional(pool)
        .await)?;
    Ok(LinkView {
        patient_name: row.patient_name,
        action,
        due: due.map(|d| d.0),
        due_at: due.map(|d| local(d.1)),
        next_at: next.map(|n| local(n.0)),
        checked_in: false,
    })
}

/// Checks in the reminder of the link's item that is due now, audited as done by link.
pub async fn check_in_by_link(db: &Db, token: &str) -> Result<LinkView> {
    let view = by_link(db, token).await?;
    let (_, patient) = read_link(db.policy(), token, Utc::now())?;
    let Some(id) = view.due else {
        return Err(Error::new(Code::Conflict, "Nothing is due right now."));
    };
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE reminders SET status = 'done', checked_in_at = $3, updated_at = $3 \
        WHERE id = $1 AND patient_id = $2 AND status IN ('scheduled', 'missed')";
    if crate::exec_tx!(&mut tx, SQL, id, patient, now)? == 0 {
        return Err(Error::new(
            Code::Conflict,
            "This reminder is already checked in.",
        ));
    }
    outbox::cancel_about(&mut tx, &format!("reminder:{id}"), &["plan_reminder"]).await?;
    audit::record_as(
        &mut tx,
        Some(patient),
        Entry {
            action: "reminder.checked_in",
            subject: format!("reminder:{id}"),
            clinic_id: None,
            details: json!({"by": "link"}),
        },
    )
    .await?;
    tx.commit().await?;
    let mut after = by_link(db, token).await?;
    after.checked_in = true;
    Ok(after)
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn a_link_is_genuine_unaltered_and_unexpired() {
        let policy = crate::db::Policy::default();
        let (patient, item) = (Uuid::now_v7(), Uuid::now_v7());
        let now = Utc::now();
        let token = link_token(&policy, patient, item, now + Duration::days(1));
        assert_eq!(read_link(&policy, &token, now).unwrap(), (item, patient));
        // Lapsed, altered, or signed with another key: refused.
        assert!(read_link(&policy, &token, now + Duration::days(2)).is_err());
        let other = Uuid::now_v7();
        let forged = token.replacen(&patient.to_string(), &other.to_string(), 1);
        assert!(read_link(&policy, &forged, now).is_err());
        let elsewhere = crate::db::Policy::default();
        assert!(read_link(&elsewhere, &token, now).is_err());
        assert!(read_link(&policy, "nonsense", now).is_err());
    }
}
