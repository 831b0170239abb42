//! Care plans from doctors' notes: a checklist (one-time tasks) and a plan (scheduled
//! actions): the types (their JSON Schema is what models must answer in), the rule-based
//! extractor the offline model uses (`rules`), and the stored plans with their checklists.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::care::reminders;
use crate::error::{Error, Result};
use crate::notify::messages::{self, Kind};
use crate::notify::outbox;
use crate::zone::TimeZone;
use crate::{on_db, on_tx};

mod rules;
pub use rules::extract_rules;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Extraction {
    /// One-time tasks, e.g. "Buy ibuprofen".
    pub checklist: Vec<ChecklistItem>,
    /// Scheduled actions, e.g. "Take amoxicillin" twice a day for 7 days.
    pub plan: Vec<PlanItem>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    #[schemars(length(min = 1, max = 300))]
    pub task: String,
    /// Days from the note until it is due, when the note says ("in 3 weeks" → 21).
    #[serde(default)]
    #[schemars(range(max = 365))]
    pub due_in_days: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanItem {
    /// What to do, e.g. "Take amoxicillin 500 mg".
    #[schemars(length(min = 1, max = 300))]
    pub action: String,
    /// How many times a day ("twice daily" → 2); absent when an interval is given.
    #[serde(default)]
    #[schemars(range(min = 1, max = 12))]
    pub times_per_day: Option<u32>,
    /// Hours between doses ("every 8 hours" → 8).
    #[serde(default)]
    #[schemars(range(min = 1, max = 168))]
    pub every_hours: Option<u32>,
    /// For how many days; absent means until the doctor says otherwise.
    #[serde(default)]
    #[schemars(range(min = 1, max = 365))]
    pub duration_days: Option<u32>,
    /// Days from the note until the first day ("starting tomorrow" → 1); absent: today.
    #[serde(default)]
    #[schemars(range(max = 60))]
    pub start_in_days: Option<u32>,
}

impl Extraction {
    /// The checks the JSON Schema states (lengths, ranges, exactly one of frequency or
    /// interval), for output that parsed into these types: a model's answer must pass
    /// them before anything is stored.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.checklist.len() + self.plan.len() > 50 {
            problems.push("at most 50 items in all".to_owned());
        }
        for (i, c) in self.checklist.iter().enumerate() {
            let n = c.task.trim().chars().count();
            if !(1..=300).contains(&n) {
                problems.push(format!("checklist[{i}].task: 1 to 300 characters"));
            }
            if c.due_in_days.is_some_and(|d| d > 365) {
                problems.push(format!("checklist[{i}].due_in_days: at most 365"));
            }
        }
        for (i, p) in self.plan.iter().enumerate() {
            let n = p.action.trim().chars().count();
            if !(1..=300).contains(&n) {
                problems.push(format!("plan[{i}].action: 1 to 300 characters"));
            }
            match (p.times_per_day, p.every_hours) {
                (Some(t), None) if (1..=12).contains(&t) => {}
                (None, Some(h)) if (1..=168).contains(&h) => {}
                (Some(_), Some(_)) => problems.push(format!(
                    "plan[{i}]: give times_per_day or every_hours, not both"
                )),
                (None, None) => problems.push(format!(
                    "plan[{i}]: times_per_day (1 to 12) or every_hours (1 to 168) is required"
                )),
                _ => problems.push(format!(
                    "plan[{i}]: times_per_day 1 to 12, every_hours 1 to 168"
                )),
            }
            if p.duration_days.is_some_and(|d| !(1..=365).contains(&d)) {
                problems.push(format!("plan[{i}].duration_days: 1 to 365"));
            }
            if p.start_in_days.is_some_and(|d| d > 60) {
                problems.push(format!("plan[{i}].start_in_days: at most 60"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

// ---- Stored plans -------------------------------------------------------------------

/// A plan's extraction, opened (it is sealed with the plan id as context).
pub(crate) fn open_extraction(db: &Db, plan_id: Uuid, sealed: &[u8]) -> Result<Extraction> {
    let plain = db
        .policy()
        .sealer
        .open(sealed, plan_id.as_bytes())
        .map_err(|e| Error::internal(format!("care plan {plan_id}: {e}")))?;
    serde_json::from_slice(&plain).map_err(|e| Error::internal(e.to_string()))
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StoredChecklistItem {
    pub id: Uuid,
    pub task: String,
    pub due_at: Option<DateTime<Utc>>,
    pub done_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StoredPlanItem {
    pub id: Uuid,
    pub action: String,
    pub times_per_day: Option<u32>,
    pub every_hours: Option<u32>,
    pub duration_days: Option<u32>,
    /// Reminders written for this item (extensions included).
    pub occurrences: i64,
    /// Occurrences added because check-ins were missed.
    pub extensions: i64,
    /// Reminders the patient checked in ("I did it").
    pub checked_in: i64,
    /// Reminders past their time without a check-in.
    pub missed: i64,
    pub first_at: Option<DateTime<Utc>>,
}

crate::text_enum! {
    /// A plan in force, or one a newer note replaced.
    pub enum PlanStatus {
        Active = "active",
        Superseded = "superseded",
    }
}

/// A patient's plan from one doctor's note.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Plan {
    pub id: Uuid,
    pub note_id: Uuid,
    pub doctor_id: Uuid,
    pub doctor_name: String,
    pub status: PlanStatus,
    pub time_zone: TimeZone,
    pub checklist: Vec<StoredChecklistItem>,
    pub plan: Vec<StoredPlanItem>,
    pub created_at: DateTime<Utc>,
}

/// Stores the plan of a new note, superseding the doctor's previous plan for this patient:
/// its future reminders and their notifications are withdrawn. Runs in the caller's
/// transaction (the note's), so either all of it happens or none.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn replace(
    tx: &mut Tx,
    db: &Db,
    actor: &Actor,
    note_id: Uuid,
    patient: &outbox::Contact,
    doctor_id: Uuid,
    tz: Tz,
    extraction: &Extraction,
    now: DateTime<Utc>,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    const SUPERSEDE: &str = "UPDATE care_plans SET status = 'superseded', superseded_by = $3, updated_at = $4 \
        WHERE patient_id = $1 AND doctor_id = $2 AND status = 'active' RETURNING id";
    let old: Vec<Uuid> = on_tx!(tx, |conn| sqlx::query_scalar(SUPERSEDE)
        .bind(patient.user_id)
        .bind(doctor_id)
        .bind(id)
        .bind(now)
        .fetch_all(&mut *conn)
        .await)?;
    for old_id in &old {
        const FUTURE: &str = "UPDATE reminders SET status = 'cancelled', updated_at = $3 \
            WHERE plan_id = $1 AND status = 'scheduled' AND due_at > $2 RETURNING id";
        let cancelled: Vec<Uuid> = on_tx!(tx, |conn| sqlx::query_scalar(FUTURE)
            .bind(old_id)
            .bind(now)
            .bind(now)
            .fetch_all(&mut *conn)
            .await)?;
        for r in &cancelled {
            outbox::cancel_about(tx, &format!("reminder:{r}"), &["plan_reminder"]).await?;
        }
        outbox::cancel_about(tx, &format!("plan:{old_id}"), &["checklist_due"]).await?;
        audit::record(
            tx,
            actor,
            Entry {
                action: "care_plan.superseded",
                subject: format!("care_plan:{old_id}"),
                clinic_id: None,
                details: json!({"by": id, "reminders_cancelled": cancelled.len()}),
            },
        )
        .await?;
    }
    let plain = serde_json::to_vec(extraction).map_err(|e| Error::internal(e.to_string()))?;
    let sealed = db.policy().sealer.seal(&plain, id.as_bytes());
    const PLAN: &str = "INSERT INTO care_plans (id, note_id, patient_id, doctor_id, sealed, time_zone, status, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7)";
    crate::exec_tx!(
        tx,
        PLAN,
        id,
        note_id,
        patient.user_id,
        doctor_id,
        sealed,
        tz.name(),
        now
    )?;
    let open_days = db.policy().open_plan_days;
    let mut reminders = 0usize;
    for (position, item) in extraction.plan.iter().enumerate() {
        let rule = reminders::rule_for(item, tz, now);
        let times = rule.occurrences(tz, reminders::count_for(item, open_days));
        let item_id = Uuid::now_v7();
        const ITEM: &str = "INSERT INTO plan_items (id, plan_id, position, times_per_day, every_hours, first_day, starts_at, \
            occurrences, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)";
        crate::exec_tx!(
            tx,
            ITEM,
            item_id,
            id,
            position as i64,
            item.times_per_day.map(i64::from),
            item.every_hours.map(i64::from),
            rule.first_day,
            rule.starts_at,
            times.len() as i64,
            now
        )?;
        let numbered: Vec<(u32, DateTime<Utc>)> = (0u32..).zip(times).collect();
        reminders::schedule(
            tx,
            db,
            (id, item_id),
            patient,
            &numbered,
            &item.action,
            false,
        )
        .await?;
        reminders += numbered.len();
    }
    for (position, task) in extraction.checklist.iter().enumerate() {
        let due_at = task.due_in_days.map(|d| {
            let day = now.with_timezone(&tz).date_naive() + chrono::Duration::days(i64::from(d));
            reminders::local_instant(tz, day.and_hms_opt(9, 0, 0).unwrap_or_default())
        });
        const TASK: &str = "INSERT INTO checklist_items (id, plan_id, position, due_at, created_at, updated_at) \
            VALUES ($1, $2, $3, $4, $5, $5)";
        crate::exec_tx!(tx, TASK, Uuid::now_v7(), id, position as i64, due_at, now)?;
        if let Some(at) = due_at {
            let due = messages::Task {
                patient: &patient.display_name,
                task: &task.task,
                link: None,
            };
            let message: outbox::Message =
                Kind::ChecklistDue(&due).render(patient.language)?.into();
            outbox::enqueue(
                tx,
                db.policy(),
                "checklist_due",
                &format!("plan:{id}"),
                patient,
                &message,
                at,
            )
            .await?;
        }
    }
    audit::record(
        tx,
        actor,
        Entry {
            action: "care_plan.created",
            subject: format!("care_plan:{id}"),
            clinic_id: None,
            details: json!({"note": note_id, "checklist": extraction.checklist.len(),
                "plan": extraction.plan.len(), "reminders": reminders, "superseded": old}),
        },
    )
    .await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    id: Uuid,
    note_id: Uuid,
    doctor_id: Uuid,
    /// Where the plan was written: who may read it follows from this (`care::access`).
    clinic_id: Uuid,
    doctor_name: String,
    status: PlanStatus,
    time_zone: TimeZone,
    sealed: Vec<u8>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: Uuid,
    position: i64,
    occurrences: i64,
    extensions: i64,
    checked_in: i64,
    missed: i64,
    first_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: Uuid,
    position: i64,
    due_at: Option<DateTime<Utc>>,
    done_at: Option<DateTime<Utc>>,
}

async fn load(db: &Db, row: PlanRow) -> Result<Plan> {
    let e = open_extraction(db, row.id, &row.sealed)?;
    const ITEMS: &str = "SELECT i.id, i.position, i.occurrences, i.extensions, \
        (SELECT MIN(r.due_at) FROM reminders r WHERE r.plan_item_id = i.id) AS first_at, \
        (SELECT COUNT(*) FROM reminders r WHERE r.plan_item_id = i.id AND r.status = 'done') AS checked_in, \
        (SELECT COUNT(*) FROM reminders r WHERE r.plan_item_id = i.id AND r.status = 'missed') AS missed \
        FROM plan_items i WHERE i.plan_id = $1 ORDER BY i.position";
    const TASKS: &str = "SELECT id, position, due_at, done_at FROM checklist_items WHERE plan_id = $1 ORDER BY position";
    let items = on_db!(db, |pool| sqlx::query_as::<_, ItemRow>(ITEMS)
        .bind(row.id)
        .fetch_all(pool)
        .await)?;
    let tasks = on_db!(db, |pool| sqlx::query_as::<_, TaskRow>(TASKS)
        .bind(row.id)
        .fetch_all(pool)
        .await)?;
    Ok(Plan {
        id: row.id,
        note_id: row.note_id,
        doctor_id: row.doctor_id,
        doctor_name: row.doctor_name,
        status: row.status,
        time_zone: row.time_zone,
        checklist: tasks
            .into_iter()
            .filter_map(|t| {
                let c = e.checklist.get(t.position as usize)?;
                Some(StoredChecklistItem {
                    id: t.id,
                    task: c.task.clone(),
                    due_at: t.due_at,
                    done_at: t.done_at,
                })
            })
            .collect(),
        plan: items
            .into_iter()
            .filter_map(|i| {
                let p = e.plan.get(i.position as usize)?;
                Some(StoredPlanItem {
                    id: i.id,
                    action: p.action.clone(),
                    times_per_day: p.times_per_day,
                    every_hours: p.every_hours,
                    duration_days: p.duration_days,
                    occurrences: i.occurrences,
                    extensions: i.extensions,
                    checked_in: i.checked_in,
                    missed: i.missed,
                    first_at: i.first_at,
                })
            })
            .collect(),
        created_at: row.created_at,
    })
}

macro_rules! select_plans {
    ($tail:literal) => {
        concat!("SELECT p.id, p.note_id, p.doctor_id, d.clinic_id, d.display_name AS doctor_name, p.status, p.time_zone, \
    p.sealed, p.created_at FROM care_plans p JOIN doctors d ON d.id = p.doctor_id ", $tail)
    };
}

pub(crate) async fn get(db: &Db, id: Uuid) -> Result<Plan> {
    let row = on_db!(db, |pool| sqlx::query_as::<_, PlanRow>(select_plans!(
        "WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await)?
    .ok_or_else(|| Error::not_found("care plan"))?;
    load(db, row).await
}

/// What the patient should do now: their active plans (one per doctor), with the
/// checklist and the scheduled actions. For the patient, and for their doctors the plans
/// they may read (`care::access`); a refusal is audited.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActionableSteps {
    pub patient_id: Uuid,
    pub plans: Vec<Plan>,
    /// The next reminders across those plans.
    pub upcoming: Vec<reminders::Reminder>,
}

pub async fn actionable_steps(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<ActionableSteps> {
    let scope =
        crate::domain::care::access::read_scope(db, actor, patient_id, "care_plan.read").await?;
    let rows = on_db!(db, |pool| sqlx::query_as::<_, PlanRow>(select_plans!(
        "WHERE p.patient_id = $1 AND p.status = 'active' ORDER BY p.created_at DESC"
    ))
    .bind(patient_id)
    .fetch_all(pool)
    .await)?;
    let rows = rows.into_iter().filter(|r| scope.covers(r.clinic_id));
    let mut plans = Vec::new();
    let mut upcoming = Vec::new();
    let now = Utc::now();
    for row in rows {
        let plan = load(db, row).await?;
        upcoming.extend(
            reminders::of_plan(db, plan.id)
                .await?
                .into_iter()
                .filter(|r| r.status == reminders::ReminderStatus::Scheduled && r.due_at >= now)
                .take(20),
        );
        plans.push(plan);
    }
    upcoming.sort_by_key(|r| r.due_at);
    upcoming.truncate(20);
    Ok(ActionableSteps {
        patient_id,
        plans,
        upcoming,
    })
}

/// The patient ticks a checklist item off (or back on with `done = false`).
pub async fn tick(
    db: &Db,
    actor: &Actor,
    item_id: Uuid,
    done: bool,
) -> Result<StoredChecklistItem> {
    let p = actor.principal()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE checklist_items SET done_at = $3, updated_at = $4 WHERE id = $1 \
        AND plan_id IN (SELECT id FROM care_plans WHERE patient_id = $2) RETURNING plan_id";
    let plan_id: Option<Uuid> = on_tx!(&mut tx, |conn| sqlx::query_scalar(SQL)
        .bind(item_id)
        .bind(p.user_id)
        .bind(done.then_some(now))
        .bind(now)
        .fetch_optional(&mut *conn)
        .await)?;
    let Some(plan_id) = plan_id else {
        return Err(Error::not_found("checklist item"));
    };
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: if done {
                "checklist.done"
            } else {
                "checklist.undone"
            },
            subject: format!("checklist_item:{item_id}"),
            clinic_id: None,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, plan_id)
        .await?
        .checklist
        .into_iter()
        .find(|c| c.id == item_id)
        .ok_or_else(|| Error::not_found("checklist item"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_what_a_model_got_wrong() {
        let bad = Extraction {
            checklist: vec![ChecklistItem {
                task: " ".into(),
                due_in_days: Some(400),
            }],
            plan: vec![PlanItem {
                action: "Take it".into(),
                times_per_day: Some(2),
                every_hours: Some(8),
                duration_days: Some(0),
                start_in_days: None,
            }],
        };
        let problems = bad.validate().unwrap_err();
        for needle in [
            "checklist[0].task",
            "checklist[0].due_in_days",
            "not both",
            "plan[0].duration_days",
        ] {
            assert!(problems.contains(needle), "{problems}");
        }
    }
}
