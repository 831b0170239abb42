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
