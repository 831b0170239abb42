//! The booking agent: one chat turn at a time. Load the session → safety rules (red flags,
//! a yes or no to the pending proposal) → system prompt → history trimmed to the token
//! budget → model ↔ tools, bounded → save → reply. Tools act with the chatting user's
//! identity; side effects only become proposals, committed on the user's own yes.

pub mod extract;
pub mod history;
pub mod offline;
pub mod policy;
pub mod prompts;
pub mod replies;
pub mod safety;
pub mod session;
pub mod text;
pub mod understand;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::AgentMode;
use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::scheduling::appointments;
use crate::domain::{clinics, idempotency};
use crate::error::{Code, Error, Result};
use crate::llm::orchestrate::{CallInfo, Orchestrator, count_messages};
use crate::llm::{Deltas, Message, Mode, ToolSpec};
use crate::tools::browse::SlotChoice;
use crate::tools::{Effect, Proposal, ProposedAction, Registry, ToolContext};
use crate::zone::TimeZone;
use prompts::{Prompts, SystemFacts};
use safety::{Alarm, Answer};
use session::{Session, SessionStore};
use understand::{Lang, Understanding};

/// Who answered a turn that the booking rules settle without any model: a yes or no to
/// a proposal, a confirmation.
pub const RULES_LABEL: &str = "Booking rules";

/// How the agent is set up.
pub struct AgentSettings {
    pub service_name: String,
    pub default_time_zone: TimeZone,
    pub hold_minutes: i64,
    /// Model ↔ tool rounds in one turn before the agent gives up and apologises.
    pub max_steps: usize,
    /// Tokens of history sent to the model; older turns are summarised.
    pub token_budget: u32,
    /// How a configured model is used.
    pub mode: AgentMode,
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
    /// Consultation audio to text, when a server is configured.
    transcriber: Option<crate::llm::transcribe::Transcriber>,
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
                ProposedAction::CheckIn { .. } => "check_in",
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
            transcriber: None,
        })
    }

    /// Transcribes consultation audio through this server.
    pub fn with_transcriber(mut self, transcriber: crate::llm::transcribe::Transcriber) -> Self {
        self.transcriber = Some(transcriber);
        self
    }

    /// The text of a consultation's audio (through the orchestrator: timeout, retries, one
    /// record per attempt), and the model that wrote it.
    pub async fn transcribe(
        &self,
        audio: &[u8],
        name: &str,
        mime: &str,
    ) -> Result<(String, String)> {
        let Some(transcriber) = &self.transcriber else {
            return Err(crate::error::Error::new(
                crate::error::Code::ServiceUnavailable,
                "No transcription server is configured (TRANSCRIBE_URL); paste the transcript instead.",
            ));
        };
        let info = CallInfo {
            mode: crate::llm::Mode::Text,
            session_id: None,
            pipeline: "transcribe",
            prompt_version: "whisper",
            full_history_tokens: None,
            deltas: None,
        };
        let text = self
            .llm
            .call_task(&info, ("transcription", transcriber.model()), || {
                transcriber.once(audio, name, mime)
            })
            .await
            .map_err(|e| {
                let code = if e.class == crate::llm::ErrorClass::Client {
                    crate::error::Code::ExtractionFailed
                } else {
                    crate::error::Code::ServiceUnavailable
                };
                crate::error::Error::new(
                    code,
                    format!(
                        "The audio could not be transcribed ({e}); paste the transcript instead."
                    ),
                )
            })?;
        Ok((text, transcriber.model().to_owned()))
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
        clinic_id: Option<Uuid>,
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
            None => self.settings.default_time_zone,
        };
        let language = language.map(str::trim).filter(|l| !l.is_empty());
        if language.is_some_and(|l| l.len() != 2 || !l.chars().all(|c| c.is_ascii_lowercase())) {
            checks.fail("language", "an ISO 639-1 code such as en or pt");
        }
        checks.finish()?;
        // On a clinic's site, the clinic's zone: "tomorrow" is the clinic's tomorrow.
        let zone = match clinic_id {
            Some(id) => clinics::get_active(&self.db, id).await?.time_zone,
            None => zone,
        };
        let mut session = Session::new(actor.user_id(), zone, Utc::now());
        session.clinic_id = clinic_id;
        session.language = language.map(str::to_owned);
        let secret = crate::crypto::random_token();
        session.secret_digest = Some(session::secret_digest(&secret));
        self.audit(
            actor,
            "chat.started",
            session.id,
            json!({"clinic": clinic_id}),
        )
        .await?;
        session.state.lang = session.language.as_deref().and_then(Lang::from_code);
        self.sessions.save(&session).await?;
        let hello = replies::hello(session.state.lang.unwrap_or(Lang::En));
        let mut reply = self.reply(&session, hello.into(), offline::LABEL.into(), Vec::new());
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
        let started = std::time::Instant::now();
        let mut s = self.load_for(actor, chat, now).await?;
        s.clock.started = Some(started);
        s.last_active = now;
        // The language of this message, else of the conversation so far.
        // (A pressed button's words are the service's own, not the patient's.)
        if policy::find_id(&text).is_none()
            && let Some(lang) = understand::language_of(&text::fold(&text))
        {
            s.state.lang = Some(lang);
        }
        let lang = s.state.lang.unwrap_or(Lang::En);
        if let Some(alarm) = safety::alarm(&text) {
            return self.alarm(actor, s, &text, alarm, lang).await;
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
        let tz = s.time_zone.tz();
        let ctx = ToolContext {
            db: &self.db,
            actor,
            session_id: s.id,
            now,
            time_zone: tz,
            hold_minutes: self.settings.hold_minutes,
            clinic_id: s.clinic_id,
        };
        if s.pending.is_none() {
            match safety::answer_to_proposal(&text) {
                Answer::Yes => {
                    s.messages.push(Message::user(&text));
                    let said = match self.yes_without_proposal(actor, &mut s, &ctx).await? {
                        Some(said) => said,
                        None => policy::Said {
                            text: replies::nothing_pending(lang).into(),
                            actions: Vec::new(),
                        },
                    };
                    return self.finish(s, said, RULES_LABEL.into()).await;
                }
                Answer::No if s.state.offered_search => {
                    s.state.offered_search = false;
                    s.messages.push(Message::user(&text));
                    let said = policy::Said {
                        text: replies::dropped(lang).into(),
                        actions: Vec::new(),
                    };
                    return self.finish(s, said, RULES_LABEL.into()).await;
                }
                _ => {}
            }
        }
        s.messages.push(Message::user(&text));
        let models = self.llm.has_models();
        match self.settings.mode {
            AgentMode::Tools if models => self.run_model(actor, s, &ctx, deltas).await,
            _ => {
                let t = std::time::Instant::now();
                let (u, assistant) = self.understand(&s, &text).await;
                if assistant != offline::LABEL && assistant != RULES_LABEL {
                    s.clock.model += t.elapsed();
                }
                self.policy_turn(actor, s, &ctx, &text, u, assistant).await
            }
        }
    }

    /// The emergency or crisis answer: no tools, and a waiting proposal is dropped.
    async fn alarm(
        &self,
        actor: &Actor,
        mut s: Session,
        text: &str,
        alarm: Alarm,
        lang: Lang,
    ) -> Result<Reply> {
        if let Some(p) = s.pending.take() {
            self.release(actor, &p).await;
        }
        s.offered.clear();
        s.state.listed.clear();
        let answer = replies::alarm(lang, alarm, safety::local_numbers(s.time_zone.name()));
        s.messages.push(Message::user(text));
        s.messages.push(Message::assistant(&answer));
        let action = match alarm {
            Alarm::Emergency => "agent.emergency",
            Alarm::Crisis => "agent.crisis",
        };
        self.audit(actor, action, s.id, json!({})).await?;
        self.save(&s).await;
        let mut reply = self.reply(&s, answer, "Safety rules".into(), Vec::new());
        reply.emergency = true;
        Ok(reply)
    }

    /// The message understood: by the configured model under the JSON Schema, checked and
    /// completed by the rules; by the rules alone when no model answers.
    async fn understand(&self, s: &Session, text: &str) -> (Understanding, String) {
        let rules = policy::rules_reading(s, text);
        if !self.llm.has_models() {
            return (rules, offline::LABEL.into());
        }
        // A pressed button names its slot: nothing for a model to read.
        if policy::find_id(text).is_some() {
            return (rules, RULES_LABEL.into());
        }
        let messages = policy::understanding_messages(self.prompts.understand(), s, text);
        let info = CallInfo {
            session_id: Some(s.id),
            pipeline: "chat",
            prompt_version: self.prompts.understand_version(),
            mode: Mode::Understand,
            full_history_tokens: Some(self.baseline_tokens(s)),
            deltas: None,
        };
        let schema = Understanding::schema();
        match self.llm.call_json(&info, &messages, &schema).await {
            Ok(outcome) => match Understanding::from_model(&outcome.completion.content) {
                Some(model) => (policy::merge(model, rules, text), outcome.completion.model),
                None => {
                    tracing::warn!(
                        "the model's answer is not the asked JSON; the rules read the message"
                    );
                    (rules, offline::LABEL.into())
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no model understood the message; the rules read it");
                (rules, offline::LABEL.into())
            }
        }
    }

    /// What sending the whole history and every tool would have cost (the log's baseline).
    fn baseline_tokens(&self, s: &Session) -> u32 {
        let mut full = vec![Message::system(self.prompts.understand())];
        full.extend(s.messages.iter().cloned());
        count_messages(&full, &self.specs)
    }

    async fn policy_turn(
        &self,
        actor: &Actor,
        mut s: Session,
        ctx: &ToolContext<'_>,
        text: &str,
        u: Understanding,
        assistant: String,
    ) -> Result<Reply> {
        // The message's language when it tells one (a button's words are the service's own,
        // so the conversation's language stays).
        let tells = understand::language_of(&text::fold(text)).is_some() || s.state.lang.is_none();
        if policy::find_id(text).is_none() && u.language != Lang::Other && tells {
            s.state.lang = Some(u.language);
        }
        let said = self.converse(actor, &mut s, ctx, text, u).await?;
        self.finish(s, said, assistant).await
    }

    async fn finish(&self, mut s: Session, said: policy::Said, assistant: String) -> Result<Reply> {
        s.messages.push(Message::assistant(&said.text));
        self.save(&s).await;
        Ok(self.reply(&s, said.text, assistant, said.actions))
    }

    /// The widget's Confirm button: commits the pending proposal.
    pub async fn confirm(&self, actor: &Actor, chat: ChatKey<'_>) -> Result<Reply> {
        let started = std::time::Instant::now();
        let mut s = self.load_for(actor, chat, Utc::now()).await?;
        s.clock.started = Some(started);
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
        if let Some(started) = s.clock.started {
            // Where the turn went: the model, the domain (tools, the commit), the rest.
            let total = started.elapsed();
            let own = total.saturating_sub(s.clock.model + s.clock.domain);
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            self.llm.event(json!({"event": "turn", "session": s.id, "total_ms": ms(total),
                "model_ms": ms(s.clock.model), "domain_ms": ms(s.clock.domain), "service_ms": ms(own)}));
        }
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
        audit::record_alone(
            &self.db,
            actor.user_id(),
            Entry {
                action,
                subject: format!("chat:{session}"),
                clinic_id: None,
                details,
            },
        )
        .await
    }

    async fn run_model(
        &self,
        actor: &Actor,
        mut s: Session,
        ctx: &ToolContext<'_>,
        deltas: Option<&Deltas>,
    ) -> Result<Reply> {
        history::fold_oldest(&mut s, self.settings.token_budget);
        let local = ctx.now.with_timezone(&ctx.time_zone);
        let user_name = match actor.principal() {
            Ok(p) => Some(p.email.clone()),
            Err(_) => None,
        };
        let system = self.prompts.system(&SystemFacts {
            service: &self.settings.service_name,
            today: local.format("%Y-%m-%d").to_string(),
            weekday: local.format("%A").to_string(),
            time_zone: s.time_zone.name(),
            user: user_name.as_deref(),
            summary: &s.summary,
            language: s.language.as_deref(),
        })?;
        // Only the tools that fit who is chatting (each tool says whom it is for); the
        // commit is the rules' alone.
        let offered: Vec<ToolSpec> = self
            .specs
            .iter()
            .filter(|t| {
                self.tools
                    .get(&t.name)
                    .is_some_and(|tool| tool.audience().includes(actor))
            })
            .cloned()
            .collect();
        let specs = &offered;
        let turn_start = s.messages.len();
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
                mode: Mode::Tools,
                session_id: Some(s.id),
                pipeline: "chat",
                prompt_version: self.prompts.system_version(),
                full_history_tokens: Some(count_messages(&full, specs)),
                deltas,
            };
            let t = std::time::Instant::now();
            let called = self.llm.call_models(&info, &messages, specs).await;
            s.clock.model += t.elapsed();
            let outcome = match called {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(error = %e, "no model answered; the offline assistant takes the turn");
                    return self.policy_fallback(actor, s, ctx, turn_start).await;
                }
            };
            assistant = outcome.completion.model.clone();
            let mut completion = outcome.completion;
            if completion.tool_calls.is_empty() {
                // A call written as text is still a call; its text is never shown.
                let (rest, calls) = crate::llm::tool_calls_in_text(&completion.content, specs);
                completion.content = rest;
                completion.tool_calls = calls;
            }
            if completion.tool_calls.is_empty() {
                let text = crate::llm::without_tool_names(&completion.content, specs);
                if text.trim().is_empty() {
                    // Nothing to say is not an answer: the offline assistant takes the turn.
                    return self.policy_fallback(actor, s, ctx, turn_start).await;
                }
                s.messages.push(Message::assistant(&text));
                self.save(&s).await;
                return Ok(self.reply(&s, text, assistant, actions));
            }
            s.messages.push(Message {
                tool_calls: completion.tool_calls.clone(),
                ..Message::assistant(completion.content)
            });
            for call in &completion.tool_calls {
                let result = self
                    .run_tool(
                        actor,
                        &mut s,
                        ctx,
                        &call.name,
                        &call.arguments,
                        &mut actions,
                    )
                    .await?;
                let content = match result {
                    Ok(value) => value.to_string(),
                    Err(e) => json!({"error": e}).to_string(),
                };
                s.messages.push(Message::tool_result(call, content));
            }
        }
        let text = replies::not_understood(s.state.lang.unwrap_or(Lang::En));
        s.messages.push(Message::assistant(text));
        self.save(&s).await;
        Ok(self.reply(&s, text.into(), assistant, actions))
    }

    /// A turn the model could not finish, done again by the offline assistant from the
    /// user's message (what the model did this turn is left out of the history).
    async fn policy_fallback(
        &self,
        actor: &Actor,
        mut s: Session,
        ctx: &ToolContext<'_>,
        turn_start: usize,
    ) -> Result<Reply> {
        s.messages.truncate(turn_start);
        let text = s
            .messages
            .last()
            .filter(|m| m.role == crate::llm::Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let u = policy::rules_reading(&s, &text);
        self.policy_turn(actor, s, ctx, &text, u, offline::LABEL.into())
            .await
    }

    /// What the session keeps from a tool's effect: offered times, a new proposal.
    async fn observe(
        &self,
        actor: &Actor,
        s: &mut Session,
        effect: Effect,
        actions: &mut Vec<Action>,
    ) {
        match effect {
            Effect::Offered(slots) => {
                actions.retain(|a| a.kind != "pick_slot");
                actions.extend(pick_actions(&slots));
                s.offered = slots;
                s.state.listed.clear();
            }
            Effect::Proposed(p) => {
                // One pending proposal per session: a new one replaces (and lets go of) the old.
                if let Some(old) = s.pending.replace(p)
                    && Some(&old) != s.pending.as_ref()
                {
                    self.release(actor, &old).await;
                }
            }
            Effect::None => {}
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
        let text = replies::dropped(s.state.lang.unwrap_or(Lang::En));
        s.messages.push(Message::assistant(text));
        self.save(&s).await;
        Ok(self.reply(&s, text.into(), RULES_LABEL.into(), Vec::new()))
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
            let done = match &p.action {
                ProposedAction::Book { slot_id, reason } => Committed::Appointment(
                    appointments::confirm(db, actor, *slot_id, reason).await?,
                ),
                ProposedAction::Reschedule {
                    appointment_id,
                    slot_id,
                } => Committed::Appointment(
                    appointments::reschedule(db, actor, *appointment_id, *slot_id).await?,
                ),
                ProposedAction::Cancel {
                    appointment_id,
                    reason,
                } => Committed::Appointment(
                    appointments::cancel(db, actor, *appointment_id, reason).await?,
                ),
                ProposedAction::CheckIn { reminder_id } => Committed::Reminder(
                    crate::domain::care::reminders::check_in(db, actor, *reminder_id).await?,
                ),
            };
            Ok::<_, Error>(done)
        };
        let t = std::time::Instant::now();
        let answer = idempotency::once(db, user, &key, "chat.commit", request, run)
            .await
            .and_then(|a| a.outcome);
        s.clock.domain += t.elapsed();
        s.pending = None;
        let lang = s.state.lang.unwrap_or(Lang::En);
        let (text, committed) = match answer {
            Ok(done) => {
                let body = match &done {
                    Committed::Appointment(a) => serde_json::to_value(a),
                    Committed::Reminder(r) => serde_json::to_value(r),
                }
                .map_err(Error::internal)?;
                s.committed.push((p.id, body.clone()));
                let text = match (&done, &p.action) {
                    (Committed::Reminder(r), _) => replies::checked_in(lang, &r.action),
                    (Committed::Appointment(a), action) => {
                        let kind = match action {
                            ProposedAction::Reschedule { .. } => "reschedule",
                            ProposedAction::Cancel { .. } => "cancel",
                            _ => "book",
                        };
                        replies::done(lang, kind, &committed_words(a, lang))
                    }
                };
                (text, Some(body))
            }
            Err(Error::Client { detail, .. }) => (replies::could_not(lang, &detail), None),
            Err(e) => return Err(e),
        };
        s.offered.clear();
        s.state.listed.clear();
        s.state.flow = policy::Flow::Search;
        s.messages.push(Message::assistant(&text));
        self.save(&s).await;
        let mut reply = self.reply(&s, text, RULES_LABEL.into(), Vec::new());
        reply.committed = committed;
        Ok(reply)
    }
}

/// What a confirmed proposal did. Kept by the idempotency store: an appointment (rows kept
/// before check-ins existed read as one) or a checked-in reminder.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Committed {
    Appointment(crate::domain::scheduling::appointments::Appointment),
    Reminder(crate::domain::care::reminders::Reminder),
}

/// The buttons for offered times.
pub(crate) fn pick_actions(slots: &[SlotChoice]) -> Vec<Action> {
    slots
        .iter()
        .map(|slot| Action {
            kind: "pick_slot",
            label: format!("{} · {} · {}", slot.when, slot.doctor, slot.clinic),
            message: Some(format!(
                "Book slot {} ({} with {})",
                slot.slot_id, slot.when, slot.doctor
            )),
            slot_id: Some(slot.slot_id),
        })
        .collect()
}

/// "Tuesday 8 December at 14:00, Dr. Ana Costa, Lisbon Central Clinic" for a committed
/// appointment.
fn committed_words(a: &appointments::Appointment, lang: Lang) -> String {
    let when = replies::when(lang, a.starts_at.with_timezone(&a.time_zone.tz()));
    [when.as_str(), &a.doctor_name, &a.clinic_name]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds the "Log in" button, once.
pub(crate) fn offer_log_in(actions: &mut Vec<Action>) {
    if !actions.iter().any(|a| a.kind == "log_in") {
        actions.push(Action {
            kind: "log_in",
            label: "Log in".into(),
            message: None,
            slot_id: None,
        });
    }
}
