//! The offline assistant as a provider: the agent hands it to the orchestrator as the one
//! tried last, so a task always gets an answer without a network. For the care-plan extraction it answers with the rule-based
//! extractor's JSON. Chat turns never reach it: without a model, the agent's dialogue
//! policy reads messages with its own rules (`agent::understand`).

use crate::llm::{Completion, CompletionFuture, Message, Provider, Role, ToolSpec};

pub const LABEL: &str = "Offline assistant";

/// Opens the care-plan extraction prompt: the offline provider then answers with the
/// rule-based extractor's JSON.
pub const EXTRACTION_TASK: &str = "Task: care-plan extraction.";

#[derive(Default)]
pub struct Offline;

impl Provider for Offline {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn model(&self) -> &str {
        "offline-rules-1"
    }

    fn complete<'a>(
        &'a self,
        messages: &'a [Message],
        _tools: &'a [ToolSpec],
    ) -> CompletionFuture<'a> {
        Box::pin(async move { Ok(decide(messages)) })
    }
}

/// The extraction of the note in the conversation, or an empty answer to anything else.
pub fn decide(messages: &[Message]) -> Completion {
    let content = match extraction_note(messages) {
        Some(note) => serde_json::to_string(&crate::domain::care::care_plans::extract_rules(note))
            .unwrap_or_default(),
        None => String::new(),
    };
    Completion {
        content,
        model: "offline-rules-1".into(),
        ..Completion::default()
    }
}

/// The note, when this is the care-plan extraction task.
fn extraction_note(messages: &[Message]) -> Option<&str> {
    let system = messages.first().filter(|m| m.role == Role::System)?;
    if !system.content.contains(EXTRACTION_TASK) {
        return None;
    }
    messages
        .iter()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
}
