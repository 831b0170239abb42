//! The doctors' tool: a note in, a checklist and a plan out.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::actor::Role;
use crate::domain::care::care_plans::{self, Extraction};
use crate::domain::care::notes;
use crate::tools::{Audience, Tool, ToolContext, ToolError};

pub struct ExtractCarePlan;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractCarePlanArgs {
    /// The doctor's note, word for word, e.g. "Take amoxicillin 500 mg twice daily for 7 days. Buy a thermometer."
    pub note: String,
}

impl Tool for ExtractCarePlan {
    const NAME: &'static str = "extract_care_plan";
    const AUDIENCE: Audience = Audience::Doctors;
    const DESCRIPTION: &'static str = "For doctors: turn a clinical note into a checklist of one-time tasks and a plan of scheduled actions (what, how often, for how long).";
    type Args = ExtractCarePlanArgs;
    type Output = Extraction;

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let doctor = ctx
            .actor
            .principal()
            .is_ok_and(|p| p.has_role(Role::Doctor));
        if !doctor {
            return Err(ToolError::new(
                "forbidden",
                "Only doctors can extract care plans from notes.",
            ));
        }
        if args.note.trim().is_empty() || args.note.chars().count() > notes::MAX_CHARS {
            return Err(ToolError::invalid(format!(
                "note: 1 to {} characters",
                notes::MAX_CHARS
            )));
        }
        Ok(care_plans::extract_rules(&args.note))
    }
}

/// One thing the plan has the patient do, as the patient reads it.
#[derive(Clone, Debug, Serialize)]
pub struct PlanLine {
    /// E.g. "Take amoxicillin 500 mg".
    pub action: String,
    pub times_per_day: Option<u32>,
    pub every_hours: Option<u32>,
    pub duration_days: Option<u32>,
}

/// A one-time task of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct TaskLine {
    pub task: String,
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
    pub done: bool,
}

/// A reminder due now (or missed) that the patient has not checked in.
#[derive(Clone, Debug, Serialize)]
pub struct DueLine {
    pub reminder_id: uuid::Uuid,
    pub action: String,
    /// In the patient's zone, e.g. `2026-12-01 08:00`.
    pub local_time: String,
    pub missed: bool,
}

/// The signed-in patient's plans in force and their next reminders.
#[derive(Clone, Debug, Serialize)]
pub struct MyPlan {
    /// The doctors whose plans are in force.
    pub doctors: Vec<String>,
    pub plan: Vec<PlanLine>,
    pub checklist: Vec<TaskLine>,
    /// The next reminders, soonest first, in the patient's zone (`2026-12-01 08:00`).
    pub next_reminders: Vec<String>,
    /// Due now or missed in the last two days, not checked in.
    pub due: Vec<DueLine>,
    /// Checked in since the start of the patient's day.
    pub done_today: Vec<String>,
}

/// The patient's reminders around now: those due (or missed) and not checked in, and
/// those checked in today.
async fn around_now(ctx: &ToolContext<'_>) -> Result<(Vec<DueLine>, Vec<String>), ToolError> {
    use crate::domain::care::reminders::{self, ReminderStatus};
    let now = ctx.now;
    let grace = ctx.db.policy().reminder_grace;
    let list = reminders::mine(
        ctx.db,
        ctx.actor,
        now - chrono::Duration::days(2),
        now + grace,
    )
    .await?;
    let today = now.with_timezone(&ctx.time_zone).date_naive();
    let mut due = Vec::new();
    let mut done = Vec::new();
    for r in list {
        match r.status {
            ReminderStatus::Scheduled | ReminderStatus::Missed => due.push(DueLine {
                reminder_id: r.id,
                action: r.action,
                local_time: r.local_time,
                missed: r.status == ReminderStatus::Missed,
            }),
            ReminderStatus::Done
                if r.checked_in_at
                    .is_some_and(|at| at.with_timezone(&ctx.time_zone).date_naive() == today) =>
            {
                done.push(format!("{} ({})", r.action, r.local_time));
            }
            _ => {}
        }
    }
    Ok((due, done))
}

pub struct MyCarePlan;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MyCarePlanArgs {}

impl Tool for MyCarePlan {
    const NAME: &'static str = "my_care_plan";
    const AUDIENCE: Audience = Audience::SignedIn;
    const DESCRIPTION: &'static str = "The signed-in patient's care plans in force: what their doctors asked them to do (medicines and actions with how often and for how long), one-time tasks, and the next reminders. There is no way to see anyone else's.";
    type Args = MyCarePlanArgs;
    type Output = MyPlan;

    async fn call(ctx: &ToolContext<'_>, _args: Self::Args) -> Result<Self::Output, ToolError> {
        let me = ctx.actor.principal().map_err(ToolError::from)?.user_id;
        let steps = care_plans::actionable_steps(ctx.db, ctx.actor, me).await?;
        let (due, done_today) = around_now(ctx).await?;
        let mut mine = MyPlan {
            due,
            done_today,
            doctors: Vec::new(),
            plan: Vec::new(),
            checklist: Vec::new(),
            next_reminders: steps
                .upcoming
                .iter()
                .take(3)
                .map(|r| format!("{} ({})", r.local_time, r.action))
                .collect(),
        };
        for p in steps.plans {
            if !mine.doctors.contains(&p.doctor_name) {
                mine.doctors.push(p.doctor_name);
            }
            mine.plan.extend(p.plan.into_iter().map(|i| PlanLine {
                action: i.action,
                times_per_day: i.times_per_day,
                every_hours: i.every_hours,
                duration_days: i.duration_days,
            }));
            mine.checklist
                .extend(p.checklist.into_iter().map(|c| TaskLine {
                    task: c.task,
                    due_at: c.due_at,
                    done: c.done_at.is_some(),
                }));
        }
        Ok(mine)
    }
}

pub struct ProposeCheckIn;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeCheckInArgs {
    /// The reminder the patient says they did, from my_care_plan's `due`; absent: the
    /// earliest one due.
    #[serde(default)]
    pub reminder_id: Option<String>,
}

impl Tool for ProposeCheckIn {
    const NAME: &'static str = "propose_check_in";
    const AUDIENCE: Audience = Audience::SignedIn;
    const DESCRIPTION: &'static str = "When the signed-in patient says they did what a due reminder asked (\"I took it\"), propose marking that reminder done. The patient must confirm; nothing is marked until they do.";
    type Args = ProposeCheckInArgs;
    type Output = crate::tools::booking::Proposed;

    fn effect(output: &Self::Output) -> crate::tools::Effect {
        crate::tools::Effect::Proposed(output.proposal.clone())
    }

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        ctx.actor.principal().map_err(ToolError::from)?;
        let (due, _) = around_now(ctx).await?;
        let wanted = args
            .reminder_id
            .as_deref()
            .map(|id| crate::tools::parse_id("reminder_id", id))
            .transpose()?;
        let r = match wanted {
            Some(id) => due.into_iter().find(|r| r.reminder_id == id),
            None => due.into_iter().next(),
        }
        .ok_or_else(|| {
            ToolError::new("nothing_due", "No reminder is due to check in right now.")
        })?;
        Ok(crate::tools::booking::Proposed {
            proposal: crate::tools::Proposal {
                id: uuid::Uuid::now_v7(),
                action: crate::tools::ProposedAction::CheckIn {
                    reminder_id: r.reminder_id,
                },
                summary: format!("Mark \"{}\" (due {}) as done", r.action, r.local_time),
                expires_at: None,
            },
            next_step: crate::tools::booking::ASK_TO_CONFIRM,
        })
    }
}
