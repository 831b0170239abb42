//! The dialogue policy: from a message understood ([`Understanding`], by a model or by the
//! rules) and what the conversation remembers, it decides which tools to call and says the
//! result in the patient's language. It never books: side effects only become proposals,
//! committed on the patient's own yes. The same policy runs whichever model understood the
//! message, and without one (the offline assistant).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::agent::understand::{self, Intent, Lang, Understanding};
use crate::agent::{Action, Agent, replies};
use crate::domain::actor::Actor;
use crate::domain::care::care_plans::Extraction;
use crate::domain::scheduling::appointments::MAX_REASON;
use crate::error::Result;
use crate::llm::Message;
use crate::tools::billing::{MyInvoices, MyInvoicesArgs};
use crate::tools::booking::{
    AppointmentLine, JoinWaitlist, JoinWaitlistArgs, MyAppointments, MyAppointmentsArgs,
    ProposeBooking, ProposeBookingArgs, ProposeCancellation, ProposeCancellationArgs,
    ProposeReschedule, ProposeRescheduleArgs,
};
use crate::tools::browse::{
    ListAvailableSlots, ListAvailableSlotsArgs, ListDoctors, ListDoctorsArgs, SlotList,
};
use crate::tools::records::{MyLabResults, MyLabResultsArgs, MyPrescriptions, MyPrescriptionsArgs};
use crate::tools::{Effect, ProposedAction, Tool, ToolContext, ToolError, care, dates};

use super::session::Session;

/// What the policy remembers between turns.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DialogueState {
    /// The specialty being looked at: slug and display name.
    pub specialty: Option<(String, String)>,
    /// One doctor asked for by name.
    pub doctor: Option<(Uuid, String)>,
    pub day: Option<String>,
    pub part_of_day: Option<String>,
    /// Why the patient comes, in their words (the booking's reason).
    pub reason: Option<String>,
    pub lang: Option<Lang>,
    /// Appointments just listed for the patient to pick one.
    pub listed: Vec<AppointmentLine>,
    pub flow: Flow,
    /// The last answer offered to look for free times ("would you like me to look?").
    pub offered_search: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Flow {
    #[default]
    Search,
    /// Picking which appointment to cancel.
    Cancel,
    /// Picking which appointment to move, then its new time.
    Reschedule { appointment: Option<Uuid> },
}

/// What a turn answers: the words and the buttons.
pub struct Said {
    pub text: String,
    pub actions: Vec<Action>,
}

/// Combines a model's reading with the rules': the rules' exact readings of days, picks
/// and side-effect words win; the model's fill what the rules did not catch. A small model
/// copies its prompt's examples, so what it claims must be in the message: a need shares a
/// word with it, a pick is one the rules see too (or a message of a few words).
pub fn merge(model: Understanding, rules: Understanding, message: &str) -> Understanding {
    let said = understand::normalise(message);
    let said_words = super::text::words(&said);
    let folded = super::text::fold(message);
    let original = super::text::words(&folded);

    let in_message = |need: &str| {
        need.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() >= 3)
            .any(|w| {
                let w = w.to_lowercase();
                said_words.iter().chain(original.iter()).any(|x| {
                    let n = w.len().min(x.len()).min(5);
                    n >= 3 && w.get(..n) == x.get(..n)
                })
            })
    };
    let model = Understanding {
        need: model.need.filter(|n| in_message(n)),
        // A pick is only ever the rules' reading: a number or an ordinal the patient wrote.
        choice: None,
        intent: match model.intent {
            Intent::Choose if rules.choice.is_none() => Intent::Other,
            // Words asking for a visit are a visit, whatever the model calls them.
            Intent::Question | Intent::Greeting | Intent::Other if rules.intent == Intent::Book => {
                Intent::Book
            }
            i => i,
        },
        ..model
    };
    let sure = |i: Intent| {
        matches!(
            i,
            Intent::Cancel
                | Intent::Reschedule
                | Intent::Waitlist
                | Intent::Choose
                | Intent::MyLabResults
                | Intent::MyPrescriptions
                | Intent::MyCarePlan
                | Intent::MyInvoices
                | Intent::Price
                | Intent::CheckIn
        )
    };
    let intent = if sure(rules.intent) {
        rules.intent
    } else {
        match model.intent {
            // A side effect needs the words for it, not only the model's word.
            Intent::Cancel | Intent::Reschedule if rules.intent == Intent::Book => Intent::Book,
            Intent::Choose if rules.choice.is_none() && model.choice.is_none() => rules.intent,
            Intent::Greeting | Intent::Other if rules.intent != Intent::Other => rules.intent,
            i => i,
        }
    };
    let need = match (rules.need, model.need) {
        (Some(r), Some(m)) => Some(format!("{r}\n{m}")),
        (r, m) => r.or(m),
    };
    Understanding {
        intent,
        need,
        day: rules.day.or(model.day),
        part_of_day: rules.part_of_day.or(model.part_of_day),
        choice: rules.choice.or(model.choice),
        doctor: rules.doctor.or(model.doctor),
        language: match rules.language {
            Lang::Other => model.language,
            l => l,
        },
    }
}

/// A uuid in the text, as the slot and appointment buttons send them.
pub(super) fn find_id(text: &str) -> Option<Uuid> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|w| w.len() == 36)
        .and_then(|w| w.parse().ok())
}

impl Agent {
    /// One turn of the policy. `u` is the message understood; `text` as written.
    pub(super) async fn converse(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        text: &str,
        u: Understanding,
    ) -> Result<Said> {
        let lang = s.state.lang.unwrap_or(Lang::En);
        let mut actions = Vec::new();
        if s.state.reason.is_none() && matches!(u.intent, Intent::Book | Intent::Other) {
            s.state.reason = Some(text.chars().take(200).collect());
        }
        if let Some(note) = care_note(text) {
            let text = match self
                .call::<care::ExtractCarePlan>(actor, s, ctx, care::ExtractCarePlanArgs { note })
                .await?
            {
                Ok(plan) => care_plan_found(&plan, lang),
                Err(e) if e.code == "forbidden" || e.code == "unauthenticated" => {
                    format!("Sorry, I cannot do that for you: {}", e.message)
                }
                Err(e) => self.tool_failed(&e, lang, &mut actions),
            };
            return Ok(Said { text, actions });
        }
        // A button: "Book slot <id> (…)" or "Cancel appointment <id>".
        if let Some(id) = find_id(text) {
            let lower = text.to_lowercase();
            let said = if lower.contains("cancel") {
                self.propose_cancel(actor, s, ctx, id, lang, &mut actions)
                    .await?
            } else {
                self.propose_slot(actor, s, ctx, id, lang, &mut actions)
                    .await?
            };
            return Ok(Said {
                text: said,
                actions,
            });
        }
        let text = match u.intent {
            Intent::Choose if !s.state.listed.is_empty() => {
                match u
                    .choice
                    .and_then(|c| s.state.listed.get(c as usize - 1).cloned())
                {
                    Some(a) => {
                        self.appointment_picked(actor, s, ctx, a, &u, lang, &mut actions)
                            .await?
                    }
                    None => replies::which_appointment(lang).into(),
                }
            }
            Intent::Choose if !s.offered.is_empty() => {
                match u
                    .choice
                    .and_then(|c| s.offered.get(c as usize - 1).cloned())
                {
                    Some(slot) => {
                        self.propose_slot(actor, s, ctx, slot.slot_id, lang, &mut actions)
                            .await?
                    }
                    None => replies::pick_one(lang).into(),
                }
            }
            Intent::Cancel => {
                self.appointments_flow(actor, s, ctx, Flow::Cancel, &u, lang, &mut actions)
                    .await?
            }
            Intent::Reschedule => {
                let flow = Flow::Reschedule { appointment: None };
                self.appointments_flow(actor, s, ctx, flow, &u, lang, &mut actions)
                    .await?
            }
            Intent::MyAppointments => {
                s.state.flow = Flow::Search;
                self.list_appointments(actor, s, ctx, lang, false).await?
            }
            Intent::MyLabResults => self.lab_results(actor, s, ctx, lang, &mut actions).await?,
            Intent::MyPrescriptions => {
                self.prescriptions(actor, s, ctx, lang, &mut actions)
                    .await?
            }
            Intent::MyCarePlan => self.care_plan(actor, s, ctx, lang, &mut actions).await?,
            Intent::MyInvoices => self.invoices(actor, s, ctx, lang, &mut actions).await?,
            Intent::Price => self.prices(actor, s, ctx, &u, lang, &mut actions).await?,
            Intent::CheckIn => self.check_in(actor, s, ctx, lang, &mut actions).await?,
            Intent::Waitlist => self.waitlist(actor, s, ctx, lang).await?,
            Intent::Question => match self.specialty_for(s, ctx, &u).await?.first() {
                Some((slug, name)) => {
                    s.state.offered_search = true;
                    replies::no_diagnosis(lang, &replies::specialty(lang, slug, name))
                }
                None => replies::no_specialty(lang).into(),
            },
            Intent::Greeting if u.day.is_none() && u.doctor.is_none() => {
                if self.specialty_for(s, ctx, &u).await?.is_empty() {
                    replies::hello(lang).into()
                } else {
                    self.search(actor, s, ctx, &u, lang, &mut actions).await?
                }
            }
            _ => self.search(actor, s, ctx, &u, lang, &mut actions).await?,
        };
        Ok(Said { text, actions })
    }

    /// "Yes" with nothing waiting: a search the agent offered, or nothing to confirm.
    pub(super) async fn yes_without_proposal(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
    ) -> Result<Option<Said>> {
        if !s.state.offered_search || s.state.specialty.is_none() {
            return Ok(None);
        }
        let lang = s.state.lang.unwrap_or(Lang::En);
        let mut actions = Vec::new();
        let u = Understanding {
            intent: Intent::Book,
            language: lang,
            ..Understanding::default()
        };
        let text = self.search(actor, s, ctx, &u, lang, &mut actions).await?;
        Ok(Some(Said { text, actions }))
    }

    /// The specialty a message's need points to (remembered when found).
    /// The specialties a message's need points to, best first (the best is remembered).
    async fn specialty_for(
        &self,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        u: &Understanding,
    ) -> Result<Vec<(String, String)>> {
        let Some(need) = u.need.as_deref() else {
            return Ok(Vec::new());
        };
        // Each reading of the need (the rules' first, then the model's) against the
        // catalogue; a specialty's best score counts, the earlier reading on a tie.
        let mut ranked: Vec<(String, String, f32)> = Vec::new();
        for query in need.lines().filter(|q| !q.trim().is_empty()) {
            let query: String = query.chars().take(500).collect();
            let t = std::time::Instant::now();
            let hits = crate::domain::clinics::specialties::search(ctx.db, &query).await?;
            s.clock.domain += t.elapsed();
            for hit in hits.into_iter().filter(|h| h.score > 0.0).take(3) {
                match ranked.iter_mut().find(|r| r.0 == hit.specialty.slug) {
                    Some(r) => r.2 = r.2.max(hit.score),
                    None => ranked.push((hit.specialty.slug, hit.specialty.name, hit.score)),
                }
            }
        }
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
        let ranked: Vec<(String, String)> =
            ranked.into_iter().take(3).map(|(s, n, _)| (s, n)).collect();
        if let Some(best) = ranked.first() {
            s.state.specialty = Some(best.clone());
        }
        Ok(ranked)
    }

    /// Free times for what the patient asked, remembered parts filled in.
    async fn search(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        u: &Understanding,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        let before = s.state.specialty.clone();
        let found = self.specialty_for(s, ctx, u).await?;
        if !found.is_empty() && found.first() != before.as_ref() {
            // Another kind of doctor: a doctor asked for before no longer applies.
            s.state.doctor = None;
        }
        if let Some(name) = &u.doctor {
            match self.doctor_named(actor, s, ctx, name).await? {
                Some(d) => s.state.doctor = Some(d),
                None => return Ok(replies::no_such_doctor(lang, name)),
            }
        }
        let moving = match s.state.flow {
            Flow::Reschedule {
                appointment: Some(id),
            } => s
                .state
                .listed
                .iter()
                .find(|a| a.appointment_id == id)
                .map(|a| a.doctor_id),
            _ => None,
        };
        if u.day.is_some() {
            s.state.day = u.day.clone();
            s.state.part_of_day = u.part_of_day.map(|p| p.as_str().to_owned());
        } else if u.part_of_day.is_some() {
            s.state.part_of_day = u.part_of_day.map(|p| p.as_str().to_owned());
        }
        let doctor = moving.or(s.state.doctor.as_ref().map(|(id, _)| *id));
        let mut args = match (doctor, &s.state.specialty) {
            (Some(doctor), _) => ListAvailableSlotsArgs {
                doctor_id: Some(doctor.to_string()),
                ..Default::default()
            },
            (None, Some((slug, _))) => ListAvailableSlotsArgs {
                specialty: Some(slug.clone()),
                ..Default::default()
            },
            (None, None) => {
                s.state.offered_search = false;
                return Ok(if u.need.is_some() && u.intent != Intent::Greeting {
                    replies::no_specialty(lang).into()
                } else {
                    replies::ask_need(lang).into()
                });
            }
        };
        args.date = s.state.day.clone();
        args.part_of_day = s.state.part_of_day.clone();
        let mut listed = self
            .call::<ListAvailableSlots>(actor, s, ctx, args.clone())
            .await?;
        if let Err(e) = &listed
            && e.code == "invalid_arguments"
            && args.date.is_some()
        {
            // A day that cannot be read or is past: look at the next days instead.
            s.state.day = None;
            args.date = None;
            listed = self
                .call::<ListAvailableSlots>(actor, s, ctx, args.clone())
                .await?;
        }
        let mut list: SlotList = match listed {
            Ok(list) => list,
            Err(e) => return Ok(self.tool_failed(&e, lang, actions)),
        };
        // Nobody free for the best match ("sleep medicine"): the next that fits ("psychiatry").
        if list.slots.is_empty() && args.specialty.is_some() {
            for (slug, name) in found.iter().skip(1) {
                args.specialty = Some(slug.clone());
                if let Ok(other) = self
                    .call::<ListAvailableSlots>(actor, s, ctx, args.clone())
                    .await?
                    && !other.slots.is_empty()
                {
                    s.state.specialty = Some((slug.clone(), name.clone()));
                    list = other;
                    break;
                }
            }
        }
        s.state.offered_search = false;
        actions.retain(|a| a.kind != "pick_slot");
        actions.extend(super::pick_actions(&list.slots));
        let what = match (&s.state.doctor, &s.state.specialty) {
            (Some((_, name)), _) => name.clone(),
            (None, Some((slug, name))) => replies::specialty(lang, slug, name),
            _ => String::new(),
        };
        if list.slots.is_empty() {
            return Ok(replies::none_free(lang, &what));
        }
        let mut text = String::new();
        if list.note.is_some() {
            let asked = match s
                .state
                .day
                .as_deref()
                .and_then(|d| dates::resolve(d, ctx.now, ctx.time_zone).ok())
            {
                Some((from, to)) => replies::on(lang, from, to),
                None => String::new(),
            };
            let part = s
                .state
                .part_of_day
                .as_deref()
                .map(|p| format!(" {}", replies::part_of_day(lang, p)))
                .unwrap_or_default();
            text.push_str(&replies::other_day(lang, &format!("{asked}{part}")));
            text.push('\n');
        }
        text.push_str(&replies::slots_header(lang, &what));
        text.push('\n');
        for (i, slot) in list.slots.iter().enumerate() {
            let when = slot.starts_at.map_or_else(
                || slot.when.clone(),
                |t| replies::when(lang, t.with_timezone(&slot.time_zone.tz())),
            );
            let fee = slot
                .fee
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            text.push_str(&format!(
                "{}. {when}, {}, {}{fee}\n",
                i + 1,
                slot.doctor,
                slot.clinic
            ));
        }
        text.push_str(replies::pick_one(lang));
        Ok(text)
    }

    /// A doctor whose name has the words said ("Costa", "ana costa"), among the specialty's.
    async fn doctor_named(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        name: &str,
    ) -> Result<Option<(Uuid, String)>> {
        let specialty = s.state.specialty.as_ref().map(|(slug, _)| slug.clone());
        let wanted = super::text::fold(name);
        let wanted = super::text::words(&wanted);
        for specialty in [specialty, None] {
            let args = ListDoctorsArgs {
                specialty,
                ..Default::default()
            };
            let Ok(found) = self.call::<ListDoctors>(actor, s, ctx, args).await? else {
                continue;
            };
            for d in &found {
                let full = super::text::fold(&d.name);
                let words = super::text::words(&full);
                let hit = wanted
                    .iter()
                    .filter(|w| w.len() >= 3)
                    .all(|w| words.iter().any(|x| super::text::near(w, x)));
                if hit && !wanted.is_empty() {
                    return Ok(Some((d.doctor_id, d.name.clone())));
                }
            }
        }
        Ok(None)
    }

    async fn propose_slot(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        slot_id: Uuid,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        let moving = match s.state.flow {
            Flow::Reschedule {
                appointment: Some(id),
            } => Some(id),
            _ => None,
        };
        let result = match moving {
            Some(appointment) => {
                let args = ProposeRescheduleArgs {
                    appointment_id: appointment.to_string(),
                    new_slot_id: slot_id.to_string(),
                };
                self.call::<ProposeReschedule>(actor, s, ctx, args)
                    .await?
                    .map(|_| ())
            }
            None => {
                let reason = s.state.reason.clone().unwrap_or_default();
                let args = ProposeBookingArgs {
                    slot_id: slot_id.to_string(),
                    reason: Some(reason.chars().take(MAX_REASON).collect()),
                };
                self.call::<ProposeBooking>(actor, s, ctx, args)
                    .await?
                    .map(|_| ())
            }
        };
        if let Err(e) = result {
            return Ok(self.tool_failed(&e, lang, actions));
        }
        let to = self.slot_words(s, slot_id, lang);
        Ok(match (moving, &s.pending) {
            (Some(id), Some(p)) if matches!(p.action, ProposedAction::Reschedule { .. }) => {
                let from = s
                    .state
                    .listed
                    .iter()
                    .find(|a| a.appointment_id == id)
                    .map(|a| appointment_words(a, lang))
                    .unwrap_or_default();
                replies::confirm_move(lang, &from, &to)
            }
            _ => replies::confirm_booking(lang, &to),
        })
    }

    /// "Tuesday 8 December at 14:00, Dr. Ana Costa, Lisbon Central Clinic".
    fn slot_words(&self, s: &Session, slot_id: Uuid, lang: Lang) -> String {
        match s.offered.iter().find(|o| o.slot_id == slot_id) {
            Some(o) => {
                let when = o.starts_at.map_or_else(
                    || o.when.clone(),
                    |t| replies::when(lang, t.with_timezone(&o.time_zone.tz())),
                );
                format!("{when}, {}, {}", o.doctor, o.clinic)
            }
            None => s
                .pending
                .as_ref()
                .map(|p| {
                    p.summary
                        .split_once(' ')
                        .map_or(p.summary.clone(), |(_, r)| r.to_owned())
                })
                .unwrap_or_default(),
        }
    }

    async fn propose_cancel(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        appointment: Uuid,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        let args = ProposeCancellationArgs {
            appointment_id: appointment.to_string(),
            reason: None,
        };
        let result = self
            .call::<ProposeCancellation>(actor, s, ctx, args)
            .await?;
        if let Err(e) = result {
            return Ok(self.tool_failed(&e, lang, actions));
        }
        s.state.flow = Flow::Search;
        let what = s
            .state
            .listed
            .iter()
            .find(|a| a.appointment_id == appointment)
            .map(|a| appointment_words(a, lang))
            .unwrap_or_default();
        Ok(replies::confirm_cancel(lang, &what))
    }

    /// Cancel or move: which appointment (asked when several), then the proposal or the day.
    #[allow(clippy::too_many_arguments)]
    async fn appointments_flow(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        flow: Flow,
        u: &Understanding,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        s.state.flow = flow;
        let listed = self.list_appointments(actor, s, ctx, lang, true).await?;
        match s.state.listed.len() {
            0 => {
                s.state.flow = Flow::Search;
                Ok(listed)
            }
            1 => {
                let only = s.state.listed[0].clone();
                self.appointment_picked(actor, s, ctx, only, u, lang, actions)
                    .await
            }
            _ => {
                // "Move my appointment with Dr. Costa": the one with that doctor, when only
                // one is.
                let named: Vec<String> = u
                    .doctor
                    .as_deref()
                    .unwrap_or_default()
                    .to_lowercase()
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| {
                        !w.is_empty()
                            && !["dr", "dra", "doctor", "doctora", "doutor", "doutora"].contains(w)
                    })
                    .map(str::to_owned)
                    .collect();
                let mut hits = s.state.listed.iter().filter(|a| {
                    let doctor = a.doctor.to_lowercase();
                    !named.is_empty() && named.iter().all(|w| doctor.contains(w.as_str()))
                });
                match (hits.next().cloned(), hits.next()) {
                    (Some(one), None) => {
                        let picked = Understanding {
                            doctor: None,
                            ..u.clone()
                        };
                        self.appointment_picked(actor, s, ctx, one, &picked, lang, actions)
                            .await
                    }
                    _ => Ok(listed),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn appointment_picked(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        a: AppointmentLine,
        u: &Understanding,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        match s.state.flow {
            Flow::Cancel => {
                self.propose_cancel(actor, s, ctx, a.appointment_id, lang, actions)
                    .await
            }
            Flow::Reschedule { .. } => {
                s.state.flow = Flow::Reschedule {
                    appointment: Some(a.appointment_id),
                };
                if u.day.is_some() || u.part_of_day.is_some() {
                    let day_only = Understanding {
                        need: None,
                        doctor: None,
                        ..u.clone()
                    };
                    self.search(actor, s, ctx, &day_only, lang, actions).await
                } else {
                    s.state.day = None;
                    s.state.part_of_day = None;
                    Ok(replies::which_day_to_move(
                        lang,
                        &appointment_words(&a, lang),
                        &a.doctor,
                    ))
                }
            }
            Flow::Search => Ok(replies::which_appointment(lang).into()),
        }
    }

    /// The patient's upcoming appointments, remembered for a pick; `asking` adds "which one?".
    async fn list_appointments(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        lang: Lang,
        asking: bool,
    ) -> Result<String> {
        let found = self
            .call::<MyAppointments>(actor, s, ctx, MyAppointmentsArgs::default())
            .await?;
        let mut actions = Vec::new();
        let items: Vec<AppointmentLine> = match found {
            Ok(items) => items,
            Err(e) => return Ok(self.tool_failed(&e, lang, &mut actions)),
        };
        s.state.listed = items.clone();
        if items.is_empty() {
            return Ok(replies::no_appointments(lang).into());
        }
        let mut text = replies::appointments_header(lang, items.len());
        text.push('\n');
        for (i, a) in items.iter().enumerate() {
            text.push_str(&format!(
                "{}. {}, {}, {}\n",
                i + 1,
                appointment_words(a, lang),
                a.doctor,
                a.clinic
            ));
        }
        if asking && items.len() > 1 {
            text.push_str(replies::which_appointment(lang));
        }
        Ok(text.trim_end().to_owned())
    }

    /// The signed-in patient's latest lab tests with their values, ranges and flags (values
    /// only once reviewed), and a reminder that their doctor interprets them.
    async fn lab_results(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        let found = self
            .call::<MyLabResults>(actor, s, ctx, MyLabResultsArgs::default())
            .await?;
        let tests = match found {
            Ok(tests) => tests,
            Err(e) => return Ok(self.private_read_failed(&e, lang, actions)),
        };
        if tests.is_empty() {
            return Ok(replies::no_lab_results(lang).into());
        }
        let mut text = replies::lab_results_header(lang).to_owned();
        for t in &tests {
            let day = replies::date(
                lang,
                t.ordered_at.with_timezone(&ctx.time_zone).date_naive(),
            );
            text.push_str(&format!("\n- {} ({day})", t.test));
            if t.values.is_empty() {
                text.push_str(&format!(": {}", replies::awaiting_review(lang)));
            }
            for v in &t.values {
                text.push_str(&format!("\n  {}: {}", v.name, v.value));
                let flag = replies::flag(lang, v.flag);
                match (&v.reference, flag) {
                    (Some(range), Some(flag)) => text.push_str(&format!(" ({flag}; {range})")),
                    (Some(range), None) => text.push_str(&format!(" ({range})")),
                    (None, Some(flag)) => text.push_str(&format!(" ({flag})")),
                    (None, None) => {}
                }
            }
        }
        text.push('\n');
        text.push_str(replies::results_are_for_your_doctor(lang));
        Ok(text)
    }

    /// What the signed-in patient's doctors prescribed (signed records), newest first.
    async fn prescriptions(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        let found = self
            .call::<MyPrescriptions>(actor, s, ctx, MyPrescriptionsArgs::default())
            .await?;
        let list = match found {
            Ok(list) => list,
            Err(e) => return Ok(self.private_read_failed(&e, lang, actions)),
        };
        if list.is_empty() {
            return Ok(replies::no_prescriptions(lang).into());
        }
        let mut text = replies::prescriptions_header(lang).to_owned();
        for p in &list {
            text.push_str(&format!(
                "\n- {} {}, {}",
                p.medicine,
                p.dose,
                replies::dosing(lang, p.times_per_day, p.every_hours, p.duration_days)
            ));
            if !p.instructions.is_empty() {
                text.push_str(&format!(" ({})", p.instructions));
            }
            if let Some(at) = p.prescribed_at {
                let day = replies::date(lang, at.with_timezone(&ctx.time_zone).date_naive());
                text.push_str(&format!(" · {day}"));
            }
        }
        Ok(text)
    }

    /// What the signed-in patient owes, from their issued invoices.
    async fn invoices(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        let args = MyInvoicesArgs {
            owed_only: false,
            limit: Some(5),
        };
        let owing = match self.call::<MyInvoices>(actor, s, ctx, args).await? {
            Ok(owing) => owing,
            Err(e) => return Ok(self.private_read_failed(&e, lang, actions)),
        };
        if owing.invoices.is_empty() {
            return Ok(replies::no_invoices(lang).into());
        }
        let mut text = if owing.owed.is_empty() {
            replies::nothing_owed(lang).to_owned()
        } else {
            replies::you_owe(lang, &owing.owed.join(" + "))
        };
        for i in &owing.invoices {
            let day = i
                .issued_at
                .map(|at| replies::date(lang, at.with_timezone(&ctx.time_zone).date_naive()))
                .unwrap_or_default();
            let state = replies::invoice_state(lang, i.status, &i.owed);
            text.push_str(&format!(
                "\n- {} · {} · {day}: {} ({state})",
                i.number, i.clinic, i.total
            ));
        }
        text.push('\n');
        text.push_str(replies::invoices_on_portal(lang));
        Ok(text)
    }

    /// What a consultation costs, for the specialty asked about (or at every doctor of
    /// the chat's clinic), from the clinics' price lists.
    async fn prices(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        u: &Understanding,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        let specialty = match self.specialty_for(s, ctx, u).await?.first() {
            Some(found) => Some(found.clone()),
            None => s.state.specialty.clone(),
        };
        let args = ListDoctorsArgs {
            specialty: specialty.as_ref().map(|(slug, _)| slug.clone()),
            ..Default::default()
        };
        let doctors = match self.call::<ListDoctors>(actor, s, ctx, args).await? {
            Ok(list) => list,
            Err(e) => return Ok(self.tool_failed(&e, lang, actions)),
        };
        if doctors.is_empty() {
            return Ok(replies::no_prices(lang).into());
        }
        let named = specialty
            .as_ref()
            .map(|(slug, name)| replies::specialty(lang, slug, name));
        let mut text = replies::prices_header(lang, named.as_deref());
        for d in doctors.iter().take(8) {
            text.push_str(&format!("\n- {} ({}): {}", d.name, d.clinic, d.fee));
        }
        if specialty.is_some() {
            s.state.offered_search = true;
            text.push('\n');
            text.push_str(replies::look_for_times(lang));
        }
        Ok(text)
    }

    /// The signed-in patient's plans in force: what to do, how often and for how long, the
    /// one-time tasks still open, and the next reminders.
    async fn care_plan(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        let found = self
            .call::<care::MyCarePlan>(actor, s, ctx, care::MyCarePlanArgs {})
            .await?;
        let mine = match found {
            Ok(mine) => mine,
            Err(e) => return Ok(self.private_read_failed(&e, lang, actions)),
        };
        let open: Vec<&care::TaskLine> = mine.checklist.iter().filter(|t| !t.done).collect();
        if mine.plan.is_empty() && open.is_empty() {
            return Ok(replies::no_care_plan(lang).into());
        }
        let mut text = replies::care_plan_header(lang, &mine.doctors.join(", "));
        for p in &mine.plan {
            let (times, every, days) = (p.times_per_day, p.every_hours, p.duration_days);
            text.push_str(&format!(
                "\n- {}, {}",
                p.action,
                replies::dosing(
                    lang,
                    times.map(i64::from),
                    every.map(i64::from),
                    days.map(i64::from)
                )
            ));
        }
        for t in open {
            text.push_str(&format!("\n- {}", t.task));
            if let Some(due) = t.due_at {
                let day = replies::date(lang, due.with_timezone(&ctx.time_zone).date_naive());
                text.push_str(&format!(" ({} {day})", replies::by(lang)));
            }
        }
        for d in &mine.due {
            text.push_str(&format!(
                "\n{} {} ({})",
                replies::due_now(lang, d.missed),
                d.action,
                d.local_time
            ));
        }
        if !mine.done_today.is_empty() {
            text.push('\n');
            text.push_str(replies::done_today(lang));
            text.push(' ');
            text.push_str(&mine.done_today.join("; "));
        }
        if !mine.next_reminders.is_empty() {
            text.push('\n');
            text.push_str(replies::next_reminders(lang));
            text.push(' ');
            text.push_str(&mine.next_reminders.join("; "));
        }
        Ok(text)
    }

    /// "I took it": the earliest due reminder, proposed to be marked done (the patient
    /// confirms, as for a booking).
    async fn check_in(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> Result<String> {
        let found = self
            .call::<care::ProposeCheckIn>(actor, s, ctx, care::ProposeCheckInArgs::default())
            .await?;
        match found {
            Ok(proposed) => Ok(replies::confirm_check_in(lang, &proposed.proposal.summary)),
            Err(e) if e.code == "nothing_due" => Ok(replies::nothing_due(lang).into()),
            Err(e) => Ok(self.private_read_failed(&e, lang, actions)),
        }
    }

    /// A read of the patient's own record that failed: signing in when that is why.
    fn private_read_failed(&self, e: &ToolError, lang: Lang, actions: &mut Vec<Action>) -> String {
        if e.code == "unauthenticated" {
            super::offer_log_in(actions);
            return replies::log_in_to_read(lang).into();
        }
        self.tool_failed(e, lang, actions)
    }

    async fn waitlist(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        lang: Lang,
    ) -> Result<String> {
        let mut actions = Vec::new();
        let args = match (&s.state.doctor, &s.state.specialty) {
            (Some((id, _)), _) => JoinWaitlistArgs {
                doctor_id: Some(id.to_string()),
                ..Default::default()
            },
            (None, Some((slug, _))) => JoinWaitlistArgs {
                specialty: Some(slug.clone()),
                ..Default::default()
            },
            (None, None) => return Ok(replies::which_waitlist(lang).into()),
        };
        let name = s
            .state
            .doctor
            .as_ref()
            .map(|d| d.1.clone())
            .or_else(|| {
                s.state
                    .specialty
                    .as_ref()
                    .map(|(slug, name)| replies::specialty(lang, slug, name))
            })
            .unwrap_or_default();
        match self.call::<JoinWaitlist>(actor, s, ctx, args).await? {
            Ok(_) => Ok(replies::waitlisted(lang, &name)),
            Err(e) => Ok(self.tool_failed(&e, lang, &mut actions)),
        }
    }

    /// A tool's refusal in the patient's words (never the tool's own text or name).
    pub(super) fn tool_failed(
        &self,
        e: &ToolError,
        lang: Lang,
        actions: &mut Vec<Action>,
    ) -> String {
        match e.code.as_str() {
            "unauthenticated" => {
                super::offer_log_in(actions);
                replies::log_in(lang).into()
            }
            "slot_taken" | "hold_expired" | "not_found" => replies::taken(lang).into(),
            "too_many_holds" => replies::too_many_holds(lang).into(),
            "internal" | "service_unavailable" => replies::unavailable(lang).into(),
            _ => replies::not_understood(lang).into(),
        }
    }

    /// Runs one tool on typed arguments for the rules: timed as domain work, audited (free
    /// text redacted), and its effect kept in the session (offered times, a proposal).
    pub(super) async fn call<T: Tool>(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        args: T::Args,
    ) -> Result<std::result::Result<T::Output, ToolError>> {
        let arguments = serde_json::to_string(&args).unwrap_or_default();
        let t = std::time::Instant::now();
        let result = crate::tools::call::<T>(ctx, args).await;
        s.clock.domain += t.elapsed();
        let (output, effect) = match result {
            Ok((output, effect)) => (Ok(output), effect),
            Err(e) => (Err(e), Effect::None),
        };
        let error = output.as_ref().err();
        self.after_tool(
            actor,
            s,
            T::NAME,
            &arguments,
            error,
            effect,
            &mut Vec::new(),
        )
        .await?;
        Ok(output)
    }

    /// Runs the tool a model called, by the name it wrote, on the JSON it wrote; the model
    /// gets what the tool shows, the session its effect.
    pub(super) async fn run_tool(
        &self,
        actor: &Actor,
        s: &mut Session,
        ctx: &ToolContext<'_>,
        name: &str,
        arguments: &str,
        actions: &mut Vec<Action>,
    ) -> Result<std::result::Result<Value, ToolError>> {
        let t = std::time::Instant::now();
        let result = match self.tools.get(name) {
            Some(tool) => tool.call(ctx, arguments).await,
            None => Err(ToolError::new(
                "unknown_tool",
                format!("There is no tool named {name:?}. Use one of the tools you were given."),
            )),
        };
        s.clock.domain += t.elapsed();
        let (seen, effect) = match result {
            Ok(called) => (Ok(called.seen), called.effect),
            Err(e) => (Err(e), Effect::None),
        };
        self.after_tool(
            actor,
            s,
            name,
            arguments,
            seen.as_ref().err(),
            effect,
            actions,
        )
        .await?;
        Ok(seen)
    }

    /// After any tool: the audit record, and what its effect changes in the session.
    #[allow(clippy::too_many_arguments)]
    async fn after_tool(
        &self,
        actor: &Actor,
        s: &mut Session,
        name: &str,
        arguments: &str,
        error: Option<&ToolError>,
        effect: Effect,
        actions: &mut Vec<Action>,
    ) -> Result<()> {
        let outcome = error.map_or("ok", |e| e.code.as_str());
        self.audit(
            actor,
            "agent.tool_call",
            s.id,
            json!({"tool": name, "outcome": outcome, "arguments": super::history::redact(arguments)}),
        )
        .await?;
        match error {
            Some(e) if e.code == "unauthenticated" => super::offer_log_in(actions),
            _ => self.observe(actor, s, effect, actions).await,
        }
        Ok(())
    }
}

/// "Tuesday 8 December at 14:00" for an appointment, in its clinic's zone.
fn appointment_words(a: &AppointmentLine, lang: Lang) -> String {
    replies::when(lang, a.starts_at.with_timezone(&a.time_zone.tz()))
}

/// The user line of the understanding call: what was just asked or listed (so "the
/// second" and "yes" can be read), and the message.
pub fn understanding_request(s: &Session, text: &str) -> String {
    let offered = if !s.state.listed.is_empty() && s.state.flow != Flow::Search {
        format!(
            "The assistant just listed {} appointments.\n",
            s.state.listed.len()
        )
    } else if !s.offered.is_empty() {
        format!(
            "The assistant just listed {} free times.\n",
            s.offered.len()
        )
    } else {
        String::new()
    };
    format!("{offered}Message: {text:?}")
}

/// The model's understanding messages: the fixed system prompt, then the request.
pub fn understanding_messages(system: &str, s: &Session, text: &str) -> Vec<Message> {
    vec![
        Message::system(system),
        Message::user(understanding_request(s, text)),
    ]
}

/// How many options a pick can refer to now.
pub fn options_offered(s: &Session) -> usize {
    if !s.state.listed.is_empty() && s.state.flow != Flow::Search {
        s.state.listed.len()
    } else {
        s.offered.len()
    }
}

/// The rules' reading, for this conversation.
pub fn rules_reading(s: &Session, text: &str) -> Understanding {
    understand::rules(text, options_offered(s))
}

/// "care plan: …" / "note: …": a doctor asking for a note's checklist and plan (the note
/// as written).
fn care_note(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    [
        "care plan for this note:",
        "care plan:",
        "note:",
        "extract:",
    ]
    .iter()
    .find_map(|p| {
        lower
            .find(p)
            .filter(|i| *i < 40)
            .and_then(|i| text.get(i + p.len()..))
            .map(|n| n.trim().to_owned())
    })
    .filter(|n| !n.is_empty())
}

fn care_plan_found(found: &Extraction, lang: Lang) -> String {
    if found.plan.is_empty() && found.checklist.is_empty() {
        return replies::care_plan_empty(lang).into();
    }
    let mut text = String::from("From the note:\n");
    for p in &found.plan {
        let how = match (p.times_per_day, p.every_hours) {
            (_, Some(h)) => format!("every {h} hours"),
            (Some(1), None) => "once a day".to_owned(),
            (Some(n), None) => format!("{n} times a day"),
            (None, None) => String::new(),
        };
        let days = p
            .duration_days
            .map(|d| format!(" for {d} days"))
            .unwrap_or_default();
        text.push_str(&format!("- Plan: {}, {how}{days}\n", p.action));
    }
    for c in &found.checklist {
        let due = c
            .due_in_days
            .map(|d| format!(" (in {d} days)"))
            .unwrap_or_default();
        text.push_str(&format!("- To do: {}{due}\n", c.task));
    }
    text
}
