//! Tools that touch the patient's own appointments. Only the signed-in patient's data is
//! reachable: every call runs the domain with their [`Actor`], which checks it. Changes are
//! only proposed here; the orchestrator commits a proposal on the user's explicit yes.

use chrono::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::scheduling::appointments::{self, Appointment, AppointmentStatus};
use crate::domain::scheduling::waitlist::{self, WaitlistEntry};
use crate::tools::{
    Audience, Effect, Proposal, ProposedAction, Tool, ToolContext, ToolError, parse_id,
};
use crate::zone::TimeZone;

/// What the model is told when a proposal is made: the user must now confirm.
#[derive(Serialize)]
pub struct Proposed {
    pub proposal: Proposal,
    pub next_step: &'static str,
}

pub(crate) const ASK_TO_CONFIRM: &str = "Tell the patient what was proposed and ask them to press Confirm or say yes. Nothing is booked or changed until they do.";

/// An error for the model, saying plainly when the patient has to sign in first.
fn signed_in_only(why: &'static str) -> impl FnOnce(crate::error::Error) -> ToolError {
    move |e| match e.code() {
        crate::error::Code::Unauthenticated => ToolError::new("unauthenticated", why),
        _ => ToolError::from(e),
    }
}

fn local(a_starts: chrono::DateTime<chrono::Utc>, tz: TimeZone) -> String {
    a_starts
        .with_timezone(&tz.tz())
        .format("%A %-d %B at %H:%M")
        .to_string()
}

pub struct ProposeBooking;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeBookingArgs {
    /// The slot_id exactly as list_available_slots returned it.
    pub slot_id: String,
    /// Why the patient is coming, in a few words, e.g. "itchy rash on the arm".
    #[serde(default)]
    pub reason: Option<String>,
}

impl Tool for ProposeBooking {
    const NAME: &'static str = "propose_booking";
    const AUDIENCE: Audience = Audience::SignedIn;
    const DESCRIPTION: &'static str = "Hold a free slot for the signed-in patient for a few minutes and propose booking it. The patient must then confirm; this does not book by itself.";
    type Args = ProposeBookingArgs;
    type Output = Proposed;

    fn effect(output: &Proposed) -> Effect {
        Effect::Proposed(output.proposal.clone())
    }

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let slot_id = parse_id("slot_id", &args.slot_id)?;
        let reason = args.reason.unwrap_or_default();
        if reason.chars().count() > appointments::MAX_REASON {
            return Err(ToolError::invalid(format!(
                "reason: at most {} characters",
                appointments::MAX_REASON
            )));
        }
        if ctx.clinic_id.is_some() {
            let (slot, _) = crate::domain::scheduling::slots::get(ctx.db, slot_id)
                .await?
                .ok_or_else(|| {
                    ToolError::new(
                        "not_found",
                        "No such slot; use a slot_id from list_available_slots.",
                    )
                })?;
            ctx.require_clinic(slot.clinic_id)?;
        }
        let hold = appointments::hold(ctx.db, ctx.actor, slot_id, ctx.hold_minutes)
            .await
            .map_err(signed_in_only(
                "The patient must log in (sign in) before booking; browsing works without it.",
            ))?;
        let summary = format!(
            "{} with {} at {}, {} ({} time)",
            local(hold.starts_at, hold.time_zone),
            hold.doctor_name,
            hold.clinic_name,
            hold.local_time,
            hold.time_zone
        );
        Ok(Proposed {
            proposal: Proposal {
                id: Uuid::now_v7(),
                action: ProposedAction::Book { slot_id, reason },
                summary: format!("Book {summary}"),
                expires_at: Some(hold.expires_at),
            },
            next_step: ASK_TO_CONFIRM,
        })
    }
}

pub struct ConfirmBooking;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBookingArgs {}

#[derive(Serialize)]
pub struct NotYet {
    pub status: &'static str,
}

impl Tool for ConfirmBooking {
    const NAME: &'static str = "confirm_booking";
    const AUDIENCE: Audience = Audience::Nobody;
    const DESCRIPTION: &'static str = "Ask for the pending proposal to be committed. Only the patient can commit it, by pressing Confirm or replying with a clear yes; the service then books it.";
    type Args = ConfirmBookingArgs;
    type Output = NotYet;

    async fn call(_ctx: &ToolContext<'_>, _args: Self::Args) -> Result<Self::Output, ToolError> {
        // Commits are the orchestrator's alone, on the user's own confirmation: a model
        // cannot book by calling a tool, whatever it was told.
        Err(ToolError::new(
            "confirmation_required",
            "Ask the patient to press Confirm or reply yes; the service books it then.",
        ))
    }
}

pub struct ProposeReschedule;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeRescheduleArgs {
    /// The appointment to move, from my_appointments.
    pub appointment_id: String,
    /// The new time's slot_id, from list_available_slots.
    pub new_slot_id: String,
}

impl Tool for ProposeReschedule {
    const NAME: &'static str = "propose_reschedule";
    const AUDIENCE: Audience = Audience::SignedIn;
    const DESCRIPTION: &'static str = "Propose moving one of the patient's appointments to another free slot. The patient must confirm.";
    type Args = ProposeRescheduleArgs;
    type Output = Proposed;

    fn effect(output: &Proposed) -> Effect {
        Effect::Proposed(output.proposal.clone())
    }

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let appointment_id = parse_id("appointment_id", &args.appointment_id)?;
        let slot_id = parse_id("new_slot_id", &args.new_slot_id)?;
        let a = appointments::get(ctx.db, ctx.actor, appointment_id).await?;
        let (slot, status) = crate::domain::scheduling::slots::get(ctx.db, slot_id)
            .await?
            .ok_or_else(|| {
                ToolError::new(
                    "not_found",
                    "No such slot; use a slot_id from list_available_slots.",
                )
            })?;
        ctx.require_clinic(slot.clinic_id)?;
        if status != "open" {
            return Err(ToolError::new("slot_taken", "That time is no longer free."));
        }
        Ok(Proposed {
            proposal: Proposal {
                id: Uuid::now_v7(),
                action: ProposedAction::Reschedule {
                    appointment_id,
                    slot_id,
                },
                summary: format!(
                    "Move your appointment with {} from {} to {}",
                    a.doctor_name,
                    local(a.starts_at, a.time_zone),
                    local(slot.starts_at, a.time_zone)
                ),
                expires_at: None,
            },
            next_step: ASK_TO_CONFIRM,
        })
    }
}

pub struct ProposeCancellation;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeCancellationArgs {
    /// The appointment to cancel, from my_appointments.
    pub appointment_id: String,
    /// Why, in the patient's words, if they said.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Tool for ProposeCancellation {
    const NAME: &'static str = "propose_cancellation";
    const AUDIENCE: Audience = Audience::SignedIn;
    const DESCRIPTION: &'static str =
        "Propose cancelling one of the patient's appointments. The patient must confirm.";
    type Args = ProposeCancellationArgs;
    type Output = Proposed;

    fn effect(output: &Proposed) -> Effect {
        Effect::Proposed(output.proposal.clone())
    }

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let appointment_id = parse_id("appointment_id", &args.appointment_id)?;
        let a = appointments::get(ctx.db, ctx.actor, appointment_id).await?;
        if a.status != AppointmentStatus::Booked {
            return Err(ToolError::new(
                "conflict",
                format!("That appointment is {}.", a.status),
            ));
        }
        Ok(Proposed {
            proposal: Proposal {
                id: Uuid::now_v7(),
                action: ProposedAction::Cancel {
                    appointment_id,
                    reason: args.reason.unwrap_or_default(),
                },
                summary: format!(
                    "Cancel your appointment with {} on {}",
                    a.doctor_name,
                    local(a.starts_at, a.time_zone)
                ),
                expires_at: None,
            },
            next_step: ASK_TO_CONFIRM,
        })
    }
}

pub struct MyAppointments;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MyAppointmentsArgs {
    /// Also list past visits.
    #[serde(default)]
    pub include_past: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppointmentLine {
    pub appointment_id: Uuid,
    pub doctor_id: Uuid,
    pub starts_at: chrono::DateTime<chrono::Utc>,
    pub time_zone: TimeZone,
    pub when: String,
    pub doctor: String,
    pub clinic: String,
    pub status: AppointmentStatus,
}

impl From<Appointment> for AppointmentLine {
    fn from(a: Appointment) -> Self {
        Self {
            appointment_id: a.id,
            doctor_id: a.doctor_id,
            starts_at: a.starts_at,
            when: local(a.starts_at, a.time_zone),
            time_zone: a.time_zone,
            doctor: a.doctor_name,
            clinic: a.clinic_name,
            status: a.status,
        }
    }
}

impl Tool for MyAppointments {
    const NAME: &'static str = "my_appointments";
    const AUDIENCE: Audience = Audience::SignedIn;
    const DESCRIPTION: &'static str = "The signed-in patient's own appointments, soonest first. There is no way to see anyone else's.";
    type Args = MyAppointmentsArgs;
    type Output = Vec<AppointmentLine>;

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let mine = appointments::mine(ctx.db, ctx.actor, args.include_past)
            .await
            .map_err(signed_in_only(
                "The patient must log in to see their appointments.",
            ))?;
        let soon = ctx.now - Duration::hours(1);
        Ok(mine
            .into_iter()
            .filter(|a| {
                args.include_past || (a.ends_at > soon && a.status != AppointmentStatus::Cancelled)
            })
            .take(20)
            .map(AppointmentLine::from)
            .collect())
    }
}

pub struct JoinWaitlist;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinWaitlistArgs {
    /// Wait for this specialty slug, e.g. "dermatology".
    #[serde(default)]
    pub specialty: Option<String>,
    /// Or for this doctor (an id from list_doctors).
    #[serde(default)]
    pub doctor_id: Option<String>,
    /// What the patient would like, e.g. "any Tuesday afternoon".
    #[serde(default)]
    pub note: Option<String>,
}

impl Tool for JoinWaitlist {
    const NAME: &'static str = "join_waitlist";
    const AUDIENCE: Audience = Audience::SignedIn;
    const DESCRIPTION: &'static str = "Put the signed-in patient on the waitlist for a doctor or specialty when nothing suitable is free; they are offered a time when one frees up.";
    type Args = JoinWaitlistArgs;
    type Output = WaitlistEntry;

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let doctor = args
            .doctor_id
            .as_deref()
            .map(|d| parse_id("doctor_id", d))
            .transpose()?;
        Ok(waitlist::join(
            ctx.db,
            ctx.actor,
            doctor,
            args.specialty.as_deref(),
            args.note.as_deref().unwrap_or(""),
        )
        .await?)
    }
}
