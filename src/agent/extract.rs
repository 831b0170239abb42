//! Structured answers through the orchestrated model call: doctors' notes → checklist and
//! plan (`prompts/extract_plan.tera`), and consultation transcripts → a visit record's
//! fields (`prompts/draft_record.tera`). Each prompt carries the JSON Schema of its answer
//! (schemars); the answer must parse into those types and pass their checks. An invalid
//! answer is shown to the model with what is wrong, and it tries again, up to
//! [`MAX_REPAIRS`] times; then the caller gets `extraction_failed` and nothing is stored.
//! The offline assistant answers with rules (`agent::offline`).

use chrono::Utc;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::agent::Agent;
use crate::domain::care::care_plans::Extraction;
use crate::domain::clinical::records::RecordDraft;
use crate::error::{Code, Error, Result};
use crate::llm::Message;
use crate::llm::orchestrate::CallInfo;

pub const MAX_REPAIRS: usize = 2;

/// The JSON Schema a model's answer must satisfy.
pub fn schema_of<T: JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

/// The JSON Schema of the care-plan extraction.
pub fn schema() -> serde_json::Value {
    schema_of::<Extraction>()
}

/// Reads a model's answer: the JSON object in it (a code fence around it is tolerated),
/// parsed into `T` and checked by `valid`.
pub fn parse_with<T: DeserializeOwned>(
    answer: &str,
    valid: impl Fn(&T) -> std::result::Result<(), String>,
) -> std::result::Result<T, String> {
    let start = answer.find('{');
    let end = answer.rfind('}');
    let json = match (start, end) {
        (Some(s), Some(e)) if s < e => &answer[s..=e],
        _ => return Err("the answer holds no JSON object".into()),
    };
    let value: T = serde_json::from_str(json)
        .map_err(|e| format!("the JSON does not match the schema: {e}"))?;
    valid(&value)?;
    Ok(value)
}

/// [`parse_with`] for the care-plan extraction.
pub fn parse(answer: &str) -> std::result::Result<Extraction, String> {
    parse_with(answer, Extraction::validate)
}

/// One structured task: its prompt, what it reads, and what its answer is called.
struct Task<'a> {
    pipeline: &'static str,
    prompt_version: &'a str,
    system: String,
    input: &'a str,
    /// E.g. "a care plan", for the failure's words.
    what: &'static str,
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
        let task = Task {
            pipeline: "extract",
            prompt_version: self.prompts.extract_version(),
            system,
            input: note,
            what: "a care plan",
        };
        self.structured(task, Extraction::validate).await
    }

    /// Drafts a visit record's fields from a consultation's transcript, for the doctor to
    /// review; nothing is stored here.
    pub async fn draft_record(&self, transcript: &str) -> Result<RecordDraft> {
        let schema = serde_json::to_string_pretty(&schema_of::<RecordDraft>()).unwrap_or_default();
        let system = self.prompts.draft_record(&schema)?;
        debug_assert!(system.contains(super::offline::DRAFT_TASK));
        let task = Task {
            pipeline: "draft_record",
            prompt_version: self.prompts.draft_record_version(),
            system,
            input: transcript,
            what: "a visit record",
        };
        self.structured(task, RecordDraft::validate).await
    }

    async fn structured<T: DeserializeOwned>(
        &self,
        task: Task<'_>,
        valid: impl Fn(&T) -> std::result::Result<(), String> + Copy,
    ) -> Result<T> {
        let mut messages = vec![Message::system(task.system), Message::user(task.input)];
        let info = CallInfo {
            mode: crate::llm::Mode::Text,
            session_id: None,
            pipeline: task.pipeline,
            prompt_version: task.prompt_version,
            full_history_tokens: None,
            deltas: None,
        };
        let mut last_problem = String::new();
        for round in 0..=MAX_REPAIRS {
            let outcome = self.llm.call(&info, &messages, &[]).await.map_err(|e| {
                Error::new(
                    Code::ServiceUnavailable,
                    format!("No model could read it just now ({e}); nothing was stored."),
                )
            })?;
            let answer = outcome.completion.content;
            match parse_with(&answer, valid) {
                Ok(value) => {
                    self.llm
                        .event(json!({"event": format!("{}_valid", task.pipeline),
                        "round": round, "provider": outcome.provider}));
                    return Ok(value);
                }
                Err(problem) => {
                    self.llm
                        .event(json!({"event": format!("{}_invalid", task.pipeline),
                        "round": round, "provider": outcome.provider, "problem": problem}));
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
                "The model's answer could not be read as {} after {} tries ({last_problem}); nothing was stored.",
                task.what,
                MAX_REPAIRS + 1
            ),
        ))
    }
}
