//! Doctors' notes → checklist and plan, through the orchestrated model call: the prompt
//! (`prompts/extract_plan.tera`) carries the JSON Schema of [`Extraction`] (schemars);
//! the answer must parse into those types and pass their checks. An invalid answer is
//! shown to the model with what is wrong, and it tries again, up to [`MAX_REPAIRS`]
//! times; then the caller gets `extraction_failed` and nothing is stored. The offline
//! assistant answers with the rule-based extractor.

use chrono::Utc;
use serde_json::json;

use crate::agent::Agent;
use crate::domain::care::care_plans::Extraction;
use crate::error::{Code, Error, Result};
use crate::llm::Message;
use crate::llm::orchestrate::CallInfo;

pub const MAX_REPAIRS: usize = 2;

/// The JSON Schema the model's answer must satisfy.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Extraction)).unwrap_or_default()
}

/// Reads a model's answer: the JSON object in it (a code fence around it is tolerated),
/// parsed into [`Extraction`] and checked.
pub fn parse(answer: &str) -> std::result::Result<Extraction, String> {
    let start = answer.find('{');
    let end = answer.rfind('}');
    let json = match (start, end) {
        (Some(s), Some(e)) if s < e => &answer[s..=e],
        _ => return Err("the answer holds no JSON object".into()),
    };
    let extraction: Extraction = serde_json::from_str(json)
        .map_err(|e| format!("the JSON does not match the schema: {e}"))?;
    extraction.validate()?;
    Ok(extraction)
}

impl Agent {
    /// Extracts the checklist and plan of a note.
    pub async fn extract_plan(&self, note: &str) -> Result<Extraction> {
        let note = note.trim();
        if note.is_empty() || note.chars().count() > crate::domain::care::notes::MAX_CHARS {
            return Err(Error::new(
                Code::ValidationFailed,
                format!(
                    "text: 1 to {} characters",
                    crate::domain::care::notes::MAX_CHARS
                ),
            ));
        }
        let schema = serde_json::to_string_pretty(&schema()).unwrap_or_default();
        let today = Utc::now().format("%Y-%m-%d").to_string();
        let system = self.prompts.extract(&today, &schema)?;
        debug_assert!(system.contains(super::offline::EXTRACTION_TASK));
        let mut messages = vec![Message::system(system), Message::user(note)];
        let info = CallInfo {
            mode: crate::llm::Mode::Text,
            session_id: None,
            pipeline: "extract",
            prompt_version: self.prompts.extract_version(),
            full_history_tokens: None,
            deltas: None,
        };
        let mut last_problem = String::new();
        for round in 0..=MAX_REPAIRS {
            let outcome = self.llm.call(&info, &messages, &[]).await.map_err(|e| {
                Error::new(
                    Code::ServiceUnavailable,
                    format!("No model could read the note just now ({e}); nothing was stored."),
                )
            })?;
            let answer = outcome.completion.content;
            match parse(&answer) {
                Ok(extraction) => {
                    self.llm
                        .event(json!({"event": "extract_valid", "round": round,
                        "provider": outcome.provider, "checklist": extraction.checklist.len(),
                        "plan": extraction.plan.len()}));
                    return Ok(extraction);
                }
                Err(problem) => {
                    self.llm
                        .event(json!({"event": "extract_invalid", "round": round,
                        "provider": outcome.provider, "problem": problem}));
                    messages.push(Message::assistant(answer));
                    messages.push(Message::user(format!(
                        "That answer is not valid: {problem}. Answer again with only the JSON object, valid against the schema."
                    )));
                    last_problem = problem;
                }
            }
        }
        Err(Error::new(
            Code::ExtractionFailed,
            format!(
                "The model's answer could not be read as a care plan after {} tries ({last_problem}); nothing was stored.",
                MAX_REPAIRS + 1
            ),
        ))
    }
}
