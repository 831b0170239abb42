//! Language models behind one trait: an OpenAI-compatible server, Ollama, or the
//! offline assistant (deterministic rules; the default and the last fallback).
//! [`orchestrate::Orchestrator`] adds timeouts, retries, fallback and the records.

pub mod ollama;
pub mod openai;
pub mod orchestrate;
pub mod transcribe;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One message of a conversation, in the shape every provider is mapped from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For tool results: the call they answer, and the tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

impl Message {
    fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            tool_name: None,
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call.id.clone()),
            tool_name: Some(call.name.clone()),
            ..Self::new(Role::Tool, content)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text, as the model wrote it (it may not parse).
    pub arguments: String,
}

/// A tool as offered to a model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// A model's answer: text, or tool calls to run first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Completion {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    /// Token counts the provider reported, if it did.
    pub tokens_in: Option<u32>,
    pub tokens_out: Option<u32>,
    pub model: String,
}

/// Why a call failed, and so whether trying again can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Timeout,
    Connection,
    RateLimited,
    Server,
    /// The answer could not be read (a truncated stream, broken JSON).
    Malformed,
    /// The request was refused (4xx other than 429): retrying cannot help.
    Client,
}

#[derive(Clone, Debug)]
pub struct LlmError {
    pub class: ErrorClass,
    pub message: String,
    /// What the server asked us to wait (429 `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl LlmError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Timeouts, connection errors, 429, 5xx and unreadable answers are worth a retry.
    pub fn is_transient(&self) -> bool {
        self.class != ErrorClass::Client
    }
}

impl std::fmt::Display for LlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.class, self.message)
    }
}

/// The providers the configuration names, best first (the caller adds its fallback).
pub fn configured_providers(
    config: &crate::config::LlmConfig,
) -> anyhow::Result<Vec<std::sync::Arc<dyn Provider>>> {
    let mut providers: Vec<std::sync::Arc<dyn Provider>> = Vec::new();
    if let Some(openai) = &config.openai {
        providers.push(std::sync::Arc::new(openai::OpenAi::new(openai)?));
    }
    if let Some(ollama) = &config.ollama {
        providers.push(std::sync::Arc::new(ollama::Ollama::new(ollama)?));
    }
    Ok(providers)
}

impl std::error::Error for LlmError {}

pub type CompletionFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Completion, LlmError>> + Send + 'a>>;

/// What arrives while a model writes: text pieces, or "forget the pieces so far" when an
/// attempt broke off and is tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delta {
    Text(String),
    Reset,
}

/// Where the text of a reply goes as it is written (the widget's event stream).
#[derive(Clone)]
pub struct Deltas {
    tx: tokio::sync::mpsc::UnboundedSender<Delta>,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Deltas {
    pub fn new() -> (Self, tokio::sync::mpsc::UnboundedReceiver<Delta>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Self {
                tx,
                sent: Default::default(),
            },
            rx,
        )
    }

    pub fn text(&self, piece: &str) {
        if !piece.is_empty() {
            self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // The listener may have gone (client closed the stream); the turn goes on.
            let _ = self.tx.send(Delta::Text(piece.to_owned()));
        }
    }

    pub fn reset(&self) {
        let _ = self.tx.send(Delta::Reset);
    }

    /// Pieces sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A chat model that can call tools.
pub trait Provider: Send + Sync {
    /// `openai`, `ollama` or `offline`.
    fn name(&self) -> &'static str;
    fn model(&self) -> &str;

    /// Like [`Provider::complete`], sending the answer's text to `deltas` as it comes.
    /// Providers that cannot stream send it whole at the end.
    fn complete_streaming<'a>(
        &'a self,
        messages: &'a [Message],
        tools: &'a [ToolSpec],
        deltas: &'a Deltas,
    ) -> CompletionFuture<'a> {
        Box::pin(async move {
            let completion = self.complete(messages, tools).await?;
            deltas.text(&completion.content);
            Ok(completion)
        })
    }
    fn complete<'a>(
        &'a self,
        messages: &'a [Message],
        tools: &'a [ToolSpec],
    ) -> CompletionFuture<'a>;

    /// An answer that is one JSON object following `schema`, constrained by the server
    /// where it can (`response_format` with a JSON Schema, Ollama's `format`), not streamed.
    fn complete_json<'a>(
        &'a self,
        messages: &'a [Message],
        schema: &'a Value,
    ) -> CompletionFuture<'a> {
        let _ = (messages, schema);
        Box::pin(async {
            Err(LlmError::new(
                ErrorClass::Client,
                "this provider gives no structured answers",
            ))
        })
    }
}

/// How a model is used in a call, recorded with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The model reads the message into a JSON object; the dialogue policy acts.
    Understand,
    /// The model calls the tools itself.
    Tools,
    /// A plain text or JSON task (care-plan extraction).
    Text,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Understand => "understand",
            Mode::Tools => "tools",
            Mode::Text => "text",
        }
    }
}

/// Tool calls a model wrote as text instead of through the protocol: `{"name": …,
/// "arguments": {…}}`, `<tool_call>…</tool_call>` or `name({…})` with a known tool name.
/// What is left of the text is returned with them.
pub fn tool_calls_in_text(content: &str, tools: &[ToolSpec]) -> (String, Vec<ToolCall>) {
    let mut calls = Vec::new();
    let mut rest = content.to_owned();
    let known = |name: &str| tools.iter().any(|t| t.name == name);
    // JSON objects with a name and arguments, bare or in <tool_call> or ``` fences.
    let mut search_from = 0;
    while let Some(start) = rest[search_from..].find('{').map(|i| i + search_from) {
        let mut stream =
            serde_json::Deserializer::from_str(&rest[start..]).into_iter::<serde_json::Value>();
        match stream.next() {
            Some(Ok(value)) => {
                let end = start + stream.byte_offset();
                let name = value["name"]
                    .as_str()
                    .or_else(|| value["function"]["name"].as_str())
                    .or_else(|| value["tool"].as_str());
                let args = value
                    .get("arguments")
                    .or_else(|| value.get("parameters"))
                    .or_else(|| value["function"].get("arguments"));
                match name.filter(|n| known(n)) {
                    Some(name) => {
                        let arguments = match args {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(v) => v.to_string(),
                            None => "{}".to_owned(),
                        };
                        calls.push(ToolCall {
                            id: format!("text_{}", calls.len()),
                            name: name.to_owned(),
                            arguments,
                        });
                        rest.replace_range(start..end, "");
                    }
                    None => search_from = end,
                }
            }
            _ => search_from = start + 1,
        }
        if search_from >= rest.len() {
            break;
        }
    }
    // name({...}) with a known name.
    for t in tools {
        let open = format!("{}(", t.name);
        while let Some(at) = rest.find(&open) {
            let args_from = at + open.len();
            let Some(close) = rest[args_from..].rfind(')').map(|i| i + args_from) else {
                break;
            };
            let args = rest[args_from..close].trim();
            calls.push(ToolCall {
                id: format!("text_{}", calls.len()),
                name: t.name.clone(),
                arguments: if args.is_empty() {
                    "{}".into()
                } else {
                    args.to_owned()
                },
            });
            rest.replace_range(at..=close, "");
        }
    }
    for tag in ["<tool_call>", "</tool_call>", "```json", "```"] {
        rest = rest.replace(tag, "");
    }
    (rest.trim().to_owned(), calls)
}

/// The text with every mention of a tool name taken out, for showing to a patient.
pub fn without_tool_names(text: &str, tools: &[ToolSpec]) -> String {
    let mut out = text.to_owned();
    for t in tools {
        out = out.replace(&t.name, "");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters: serde_json::json!({}),
        }
    }

    #[test]
    fn tool_calls_written_as_text_are_read() {
        let tools = [spec("find_specialty"), spec("list_available_slots")];
        let (rest, calls) = tool_calls_in_text(
            "Let me check. <tool_call>{\"name\": \"find_specialty\", \"arguments\": {\"query\": \"knee\"}}</tool_call>",
            &tools,
        );
        assert_eq!(rest, "Let me check.");
        assert_eq!(calls[0].name, "find_specialty");
        assert_eq!(calls[0].arguments, "{\"query\":\"knee\"}");
        let (_, calls) =
            tool_calls_in_text("list_available_slots({\"specialty\": \"ent\"})", &tools);
        assert_eq!(calls[0].name, "list_available_slots");
        let (rest, calls) = tool_calls_in_text("A plain {\"answer\": 1} reply", &tools);
        assert!(calls.is_empty());
        assert_eq!(rest, "A plain {\"answer\": 1} reply");
    }
}
