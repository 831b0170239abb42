//! The booking agent: one chat turn at a time. Load the session → safety rules (red flags,
//! a yes or no to the pending proposal) → system prompt → history trimmed to the token
//! budget → model ↔ tools, bounded → save → reply. Tools act with the chatting user's
//! identity; side effects only become proposals, committed on the user's own yes.

pub mod extract;
pub mod history;
pub mod prompts;
pub mod safety;
pub mod session;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::{appointments, clinics, idempotency};
use crate::error::{Code, Error, Result};
use crate::llm::orchestrate::{CallInfo, Orchestrator, count_messages};
use crate::llm::{Deltas, Message, ToolSpec, offline};
use crate::tools::browse::SlotList;
use crate::tools::{Proposal, ProposedAction, Registry, ToolContext, ToolError};
use prompts::{Prompts, SystemFacts};
use safety::Answer;
use session::{Session, SessionStore};

/// How the agent is set up.
pub struct AgentSettings {
    pub service_name: String,
    pub default_time_zone: String,
    pub hold_minutes: i64,
    /// Model ↔ tool rounds in one turn before the agent gives up and apologises.
    pub max_steps: usize,
    /// Tokens of history sent to the model; older turns are summarised.
    pub token_budget: u32,
}

pub struct Agent {
    db: Db,
    llm: Orchestrator,
    tools: Registry,
    /// The tools as offered to the model; their schemas are built once.
    specs: Vec<ToolSpec>,
    sessions: SessionStore,
    prompts: Prompts,
    settings: AgentSettings,
}

/// Something the user can press in the widget.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Action {
    /// `pick_slot`, `confirm`, `decline` or `log_in`.
    pub kind: &'static str,
    pub label: String,
    /// For `pick_slot`: the message to send when pressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot_id: Option<Uuid>,
}

/// The proposal waiting for the user's yes.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Pending {
    pub id: Uuid,
    /// `book`, `reschedule` or `cancel`.
    pub kind: &'static str,
    pub summary: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&Proposal> for Pending {
    fn from(p: &Proposal) -> Self {
        Self {
            id: p.id,
            kind: match p.action {
                ProposedAction::Book { .. } => "book",
                ProposedAction::Reschedule { .. } => "reschedule",
                ProposedAction::Cancel { .. } => "cancel",
            },
            summary: p.summary.clone(),
            expires_at: p.expires_at,
        }
    }
}

/// The agent's answer to one turn.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Reply {
    pub session_id: Uuid,
    /// Only when the conversation starts: the secret that every later call about it
    /// carries in the `X-Chat-Secret` header. Without it, the conversation does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_secret: Option<String>,
    pub reply: String,
    /// Who answered: the configured model, or the offline assistant.
    pub assistant: String,
    pub actions: Vec<Action>,
    pub pending: Option<Pending>,
    /// The turn was a red-flag message: the reply says to call emergency services.
    pub emergency: bool,
    /// What a confirmed proposal did (the appointment), when this turn committed one.
    #[schema(value_type = Option<Object>)]
    pub committed: Option<Value>,
}

/// Which conversation, and the secret the client that started it holds.
#[derive(Clone, Copy, Debug)]
pub struct ChatKey<'a> {
    pub id: Uuid,
    pub secret: &'a str,
}

impl Agent {
    pub fn new(
        db: Db,
        llm: Orchestrator,
        sessions: SessionStore,
        settings: AgentSettings,
    ) -> Result<Self> {
        let tools = Registry::new();
        let specs = tools
            .all()
            .map(|t| ToolSpec {
                name: t.name().into(),
                description: t.description().into(),
                parameters: t.parameters(),
            })
            .collect();
        Ok(Self {
            db,
            llm,
            tools,
            specs,
            sessions,
            prompts: Prompts::new()?,
            settings,
        })
    }

    pub fn orchestrator(&self) -> &Orchestrator {
        &self.llm
    }

    /// Opens a session; refused without the user's consent to keep the conversation.
    pub async fn start(
        &self,
        actor: &Actor,
        consent: bool,
        time_zone: Option<&str>,
        language: Option<&str>,
    ) -> Result<Reply> {
        if !consent {
            return Err(Error::new(
                Code::ConsentRequired,
                "Please agree that this conversation is kept (encrypted, deletable at any time) before chatting.",
            ));
        }
        let mut checks = crate::domain::validate::Checks::new();
        let zone = match time_zone {
            Some(tz) => clinics::parse_time_zone(&mut checks, "time_zone", tz),
            None => self.settings.default_time_zone.clone(),
        };
        let language = language.map(str::trim).filter(|l| !l.is_empty());
        if language.is_some_and(|l| l.len() != 2 || !l.chars().all(|c| c.is_ascii_lowercase())) {
            checks.fail("language", "an ISO 639-1 code such as en or pt");
        }
        checks.finish()?;
        let mut session = Session::new(actor.user_id(), zone, Utc::now());
        session.language = language.map(str::to_owned);
        let secret = crate::crypto::random_token();
        session.secret_digest = Some(session::secret_digest(&secret));
        self.sessions.save(&session).await?;
        self.audit(actor, "chat.started", session.id, json!({}))
            .await?;
        let reply = "Hello! I can help you find the right kind of doctor, see free times and book. What do you need?";
        let mut reply = self.reply(&session, reply.into(), offline::LABEL.into(), Vec::new());
        reply.session_secret = Some(secret);
        Ok(reply)
    }

    /// One user message.
    pub async fn message(&self, actor: &Actor, chat: ChatKey<'_>, text: &str) -> Result<Reply> {
        self.message_streaming(actor, chat, text, None).await
    }

    /// Refuses what `message` would refuse before any work: bad text, an unknown session.
    pub async fn check(&self, actor: &Actor, chat: ChatKey<'_>, text: &str) -> Result<()> {
        let mut checks = crate::domain::validate::Checks::new();
        checks.text("text", text, 1, 2000);
        checks.finish()?;
        self.load_for(actor, chat, Utc::now()).await.map(|_| ())
    }

    /// One user message, the model's text sent to `deltas` as it is written.
    pub async fn message_streaming(
        &self,
        actor: &Actor,
        chat: ChatKey<'_>,
        text: &str,
        deltas: Option<&Deltas>,
    ) -> Result<Reply> {
        let mut checks = crate::domain::validate::Checks::new();
        let text = checks.text("text", text, 1, 2000);
        checks.finish()?;
        let now = Utc::now();
        let mut s = self.load_for(actor, chat, now).await?;
        s.last_active = now;
        if safety::is_red_flag(&text) {
            s.messages.push(Message::user(&text));
            s.messages.push(Message::assistant(safety::EMERGENCY_REPLY));
            self.audit(actor, "agent.emergency", s.id, json!({}))
                .await?;
            self.save(&s).await;
            let mut reply = self.reply(
                &s,
                safety::EMERGENCY_REPLY.into(),
                "Safety rules".into(),
                Vec::new(),
            );
            reply.emergency = true;
            return Ok(reply);
        }
        if let Some(pending) = s.pending.clone() {
            match safety::answer_to_proposal(&text) {
                Answer::Yes => {
                    s.messages.push(Message::user(&text));
                    return self.commit(actor, s, pending).await;
                }
                Answer::No => {
                    s.messages.push(Message::user(&text));
                    return self.drop_pending(actor, s, pending).await;
                }
                Answer::Neither => {}
            }
        }
        s.messages.push(Message::user(&text));
        self.run_model(actor, s, now, deltas).await
    }

    /// The widget's Confirm button: commits the pending proposal.
    pub async fn confirm(&self, actor: &Actor, chat: ChatKey<'_>) -> Result<Reply> {
        let mut s = self.load_for(actor, chat, Utc::now()).await?;
        s.last_active = Utc::now();
        match s.pending.clone() {
            Some(p) => self.commit(actor, s, p).await,
            None => Err(Error::new(
                Code::NothingPending,
                "There is nothing waiting for confirmation.",
            )),
        }
    }

    /// The widget's Decline button.
    pub async fn decline(&self, actor: &Actor, chat: ChatKey<'_>) -> Result<Reply> {
        let mut s = self.load_for(actor, chat, Utc::now()).await?;
        s.last_active = Utc::now();
        match s.pending.clone() {
            Some(p) => self.drop_pending(actor, s, p).await,
            None => Err(Error::new(
                Code::NothingPending,
                "There is nothing waiting for confirmation.",
            )),
        }
    }

    /// Removes the conversation data.
    pub async fn delete(&self, actor: &Actor, chat: ChatKey<'_>) -> Result<()> {
        let id = chat.id;
        let s = match self.load_for(actor, chat, Utc::now()).await {
            Ok(s) => s,
            // Already gone (or expired and removed): deleting again is fine.
            Err(e) if e.code() == Code::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if let Some(p) = &s.pending {
            self.release(actor, p).await;
        }
        // The stored answers of its commits go with it; a booking it made stays the
        // patient's (its reason sealed with it).
        if let Some(user) = s.user_id {
            idempotency::forget_prefixed(&self.db, user, &format!("chat:{id}:")).await?;
        }
        self.sessions.delete(id).await?;
        self.audit(actor, "chat.deleted", id, json!({})).await
    }

    /// The session, for the client that created it (it holds the secret) and, once a user
    /// holds it, that user; to anyone else it does not exist.
    async fn load_for(
        &self,
        actor: &Actor,
        chat: ChatKey<'_>,
        now: DateTime<Utc>,
    ) -> Result<Session> {
        let mut s = self.sessions.load(chat.id, now).await?;
        // Until a user holds it, only the secret proves who started it (and only its
        // holder may sign it in); once it is a user's, their sign-in is the proof.
        if s.user_id.is_none()
            && s.secret_digest
                .as_deref()
                .is_some_and(|d| !session::secret_matches(chat.secret, d))
        {
            return Err(Error::new(Code::NotFound, "No such chat session."));
        }
        match (s.user_id, actor.user_id()) {
            (Some(owner), Some(me)) if owner == me => {}
            // Someone else's session does not exist, as far as this caller can tell.
            (Some(_), _) => return Err(Error::new(Code::NotFound, "No such chat session.")),
            // Signing in during an anonymous chat makes it the user's.
            (None, Some(me)) => s.user_id = Some(me),
            (None, None) => {}
        }
        Ok(s)
    }

    async fn save(&self, s: &Session) {
        let saved = self.sessions.save(s).await;
        self.llm.event(
            json!({"event": "context_saved", "session": s.id, "ok": saved.is_ok(),
            "error": saved.as_ref().err().map(|e| e.to_string())}),
        );
        if let Err(e) = saved {
            tracing::error!(session = %s.id, error = %e, "saving the chat context failed");
        }
    }

    fn reply(
        &self,
        s: &Session,
        text: String,
        assistant: String,
        mut actions: Vec<Action>,
    ) -> Reply {
        if s.pending.is_some() {
            actions.retain(|a| a.kind != "pick_slot");
            actions.push(Action {
                kind: "confirm",
                label: "Confirm".into(),
                message: None,
                slot_id: None,
            });
            actions.push(Action {
                kind: "decline",
                label: "Decline".into(),
                message: None,
                slot_id: None,
            });
        }
        Reply {
            session_id: s.id,
            session_secret: None,
            reply: text,
            assistant,
            actions,
            pending: s.pending.as_ref().map(Pending::from),
            emergency: false,
            committed: None,
        }
    }

    async fn audit(
        &self,
        actor: &Actor,
        action: &'static str,
        session: Uuid,
        details: Value,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        audit::record(
            &mut tx,
            actor,
            Entry {
                action,
                subject: format!("chat:{session}"),
                clinic_id: None,
                details,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn run_model(
        &self,
        actor: &Actor,
        mut s: Session,
        now: DateTime<Utc>,
        deltas: Option<&Deltas>,
    ) -> Result<Reply> {
        history::fold_oldest(&mut s, self.settings.token_budget);
        let tz = clinics::tz_of(&s.time_zone);
        let local = now.with_timezone(&tz);
        let user_name = match actor.principal() {
            Ok(p) => Some(p.email.clone()),
            Err(_) => None,
        };
        let system = self.prompts.system(&SystemFacts {
            service: &self.settings.service_name,
            today: local.format("%Y-%m-%d").to_string(),
            weekday: local.format("%A").to_string(),
            time_zone: &s.time_zone,
            user: user_name.as_deref(),
            summary: &s.summary,
            language: s.language.as_deref(),
        })?;
        let specs = &self.specs;
        let ctx = ToolContext {
            db: &self.db,
            actor,
            session_id: s.id,
            now,
            time_zone: tz,
            hold_minutes: self.settings.hold_minutes,
        };
        let mut actions = Vec::new();
        let mut assistant = offline::LABEL.to_owned();
        for _ in 0..self.settings.max_steps {
            let mut messages = Vec::with_capacity(s.messages.len() + 1);
            messages.push(Message::system(system.clone()));
            messages.extend(history::compact(&s.messages));
            // What sending everything would have cost, for the orchestration log.
            let mut full = vec![Message::system(system.clone())];
            full.extend(s.messages.iter().cloned());
            let info = CallInfo {
                session_id: Some(s.id),
                pipeline: "chat",
                prompt_version: self.prompts.system_version(),
                full_history_tokens: Some(count_messages(&full, specs)),
                deltas,
            };
            let outcome = match self.llm.call(&info, &messages, specs).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(error = %e, "every provider failed");
                    let text = "Sorry, I cannot answer just now. Please try again in a moment.";
                    s.messages.push(Message::assistant(text));
                    self.save(&s).await;
                    return Ok(self.reply(&s, text.into(), assistant, actions));
                }
            };
            assistant = if outcome.provider == "offline" {
                offline::LABEL.to_owned()
            } else {
                outcome.completion.model.clone()
            };
            let completion = outcome.completion;
            if completion.tool_calls.is_empty() {
                let text = if completion.content.trim().is_empty() {
                    "How else can I help?".to_owned()
                } else {
                    completion.content
                };
                s.messages.push(Message::assistant(&text));
                self.save(&s).await;
                return Ok(self.reply(&s, text, assistant, actions));
            }
            s.messages.push(Message {
                tool_calls: completion.tool_calls.clone(),
                ..Message::assistant(completion.content)
            });
            for call in &completion.tool_calls {
                let result = match self.tools.get(&call.name) {
                    Some(tool) => tool.call(&ctx, &call.arguments).await,
                    None => Err(ToolError::new(
                        "unknown_tool",
                        format!(
                            "There is no tool named {:?}. Use one of the tools you were given.",
                            call.name
                        ),
                    )),
                };
                let outcome = match &result {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => e.code.clone(),
                };
                self.audit(
                    actor,
                    "agent.tool_call",
                    s.id,
                    json!({"tool": call.name, "outcome": outcome, "arguments": history::redact(&call.arguments)}),
                )
                .await?;
                let content = match result {
                    Ok(value) => {
                        self.observe(actor, &mut s, &call.name, &value, &mut actions)
                            .await;
                        value.to_string()
                    }
                    Err(e) => {
                        if e.code == "unauthenticated"
                            && !actions.iter().any(|a: &Action| a.kind == "log_in")
                        {
                            actions.push(Action {
                                kind: "log_in",
                                label: "Log in".into(),
                                message: None,
                                slot_id: None,
                            });
                        }
                        json!({"error": e}).to_string()
                    }
                };
                s.messages.push(Message::tool_result(call, content));
            }
        }
        let text = "Sorry, I could not work that out. Could you say it another way, or pick from the options above?";
        s.messages.push(Message::assistant(text));
        self.save(&s).await;
        Ok(self.reply(&s, text.into(), assistant, actions))
    }

    /// What the session keeps from a tool's result: offered slots, a new proposal.
    async fn observe(
        &self,
        actor: &Actor,
        s: &mut Session,
        tool: &str,
        value: &Value,
        actions: &mut Vec<Action>,
    ) {
        if tool == "list_available_slots"
            && let Ok(list) = serde_json::from_value::<SlotList>(value.clone())
        {
            actions.retain(|a| a.kind != "pick_slot");
            for slot in &list.slots {
                actions.push(Action {
                    kind: "pick_slot",
                    label: format!("{} · {} · {}", slot.when, slot.doctor, slot.clinic),
                    message: Some(format!(
                        "Book slot {} ({} with {})",
                        slot.slot_id, slot.when, slot.doctor
                    )),
                    slot_id: Some(slot.slot_id),
                });
            }
            s.offered = list.slots;
        }
        if let Some(p) = value
            .get("proposal")
            .and_then(|p| serde_json::from_value::<Proposal>(p.clone()).ok())
        {
            // One pending proposal per session: a new one replaces (and lets go of) the old.
            if let Some(old) = s.pending.replace(p)
                && Some(&old) != s.pending.as_ref()
            {
                self.release(actor, &old).await;
            }
        }
    }

    async fn release(&self, actor: &Actor, p: &Proposal) {
        if let ProposedAction::Book { slot_id, .. } = p.action
            && let Err(e) = appointments::release(&self.db, actor, slot_id).await
            && e.code() != Code::HoldExpired
        {
            tracing::warn!(error = %e, "releasing a declined hold failed");
        }
    }

    async fn drop_pending(&self, actor: &Actor, mut s: Session, p: Proposal) -> Result<Reply> {
        self.release(actor, &p).await;
        s.pending = None;
        self.audit(
            actor,
            "agent.proposal_declined",
            s.id,
            json!({"proposal": p.id}),
        )
        .await?;
        let text =
            "Alright, I have dropped that; nothing was changed. What would you like instead?";
        s.messages.push(Message::assistant(text));
        self.save(&s).await;
        Ok(self.reply(&s, text.into(), offline::LABEL.into(), Vec::new()))
    }

    /// Commits the pending proposal, at most once per proposal: a retried or doubled
    /// confirmation gets the first answer.
    async fn commit(&self, actor: &Actor, mut s: Session, p: Proposal) -> Result<Reply> {
        let user = actor
            .principal()
            .map_err(|_| Error::new(Code::Unauthenticated, "Please log in to confirm."))?
            .user_id;
        let key = format!("chat:{}:{}", s.id, p.id);
        let request = json!({"proposal": p.id});
        let db = &self.db;
        let run = || async {
            let appointment = match &p.action {
                ProposedAction::Book { slot_id, reason } => {
                    appointments::confirm(db, actor, *slot_id, reason).await?
                }
                ProposedAction::Reschedule {
                    appointment_id,
                    slot_id,
                } => appointments::reschedule(db, actor, *appointment_id, *slot_id).await?,
                ProposedAction::Cancel {
                    appointment_id,
                    reason,
                } => appointments::cancel(db, actor, *appointment_id, reason).await?,
            };
            Ok::<_, Error>(appointment)
        };
        let answer = idempotency::once(db, user, &key, "chat.commit", request, 200, run).await;
        s.pending = None;
        let (text, committed) = match answer {
            Ok(a) if a.status < 300 => {
                s.committed.push((p.id, a.body.clone()));
                let done = match p.action {
                    ProposedAction::Book { .. } => "Booked",
                    ProposedAction::Reschedule { .. } => "Moved",
                    ProposedAction::Cancel { .. } => "Cancelled",
                };
                let what = p
                    .summary
                    .split_once(' ')
                    .map(|(_, rest)| rest)
                    .unwrap_or(&p.summary);
                (
                    format!("{done}: {what}. You will find it under your appointments."),
                    Some(a.body),
                )
            }
            Ok(a) => (
                format!(
                    "Sorry, that could not be done: {}",
                    a.body["detail"].as_str().unwrap_or("it failed")
                ),
                None,
            ),
            Err(e) if matches!(e, Error::Client { .. }) => {
                (format!("Sorry, that could not be done: {e}"), None)
            }
            Err(e) => return Err(e),
        };
        s.messages.push(Message::assistant(&text));
        self.save(&s).await;
        let mut reply = self.reply(&s, text, offline::LABEL.into(), Vec::new());
        reply.committed = committed;
        Ok(reply)
    }
}
