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

/// The signed-in patient's plans in force and their next reminders.
#[derive(Clone, Debug, Serialize)]
pub struct MyPlan {
    /// The doctors whose plans are in force.
    pub doctors: Vec<String>,
    pub plan: Vec<PlanLine>,
    pub checklist: Vec<TaskLine>,
    /// The next reminders, soonest first, in the patient's zone (`2026-12-01 08:00`).
    pub next_reminders: Vec<String>,
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
        let mut mine = MyPlan {
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
