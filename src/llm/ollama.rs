//! An Ollama server (`OLLAMA_HOST`) through ollama-rs, with tool calling.

use ollama_rs::error::OllamaError;
use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::chat::{ChatMessage, ChatMessageResponse, MessageRole};
use ollama_rs::generation::parameters::{FormatType, JsonStructure};
use ollama_rs::generation::tools::{
    ToolCall as OllamaCall, ToolCallFunction, ToolFunctionInfo, ToolInfo, ToolType,
};
use ollama_rs::models::ModelOptions;

use crate::config;
use crate::llm::{
    Completion, CompletionFuture, ErrorClass, LlmError, Message, Provider, Role, ToolCall, ToolSpec,
};

pub struct Ollama {
    client: ollama_rs::Ollama,
    model: String,
}

impl Ollama {
    pub fn new(config: &config::OllamaConfig) -> anyhow::Result<Self> {
        let client = ollama_rs::Ollama::try_new(config.host.as_str())
            .map_err(|e| anyhow::anyhow!("OLLAMA_HOST={:?}: {e}", config.host))?;
        Ok(Self {
            client,
            model: config.model.clone(),
        })
    }

    /// One JSON object under `schema` (Ollama's `format`, 0.5 and later).
    async fn structured(
        &self,
        messages: &[Message],
        schema: &serde_json::Value,
    ) -> Result<Completion, LlmError> {
        let schema = schemars::Schema::try_from(schema.clone())
            .map_err(|e| LlmError::new(ErrorClass::Client, format!("answer schema: {e}")))?;
        let request = ChatMessageRequest::new(
            self.model.clone(),
            messages.iter().map(wire_message).collect(),
        )
        .format(FormatType::StructuredJson(Box::new(
            JsonStructure::new_for_schema(schema),
        )))
        .options(ModelOptions::default().temperature(0.0));
        let response = self
            .client
            .send_chat_messages(request)
            .await
            .map_err(classify)?;
        Ok(completion(response, Vec::new()))
    }

    async fn chat(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<Completion, LlmError> {
        let messages = messages.iter().map(wire_message).collect();
        let mut infos = Vec::with_capacity(tools.len());
        for t in tools {
            let parameters = schemars::Schema::try_from(t.parameters.clone()).map_err(|e| {
                LlmError::new(
                    ErrorClass::Client,
                    format!("tool schema of {}: {e}", t.name),
                )
            })?;
            infos.push(ToolInfo {
                tool_type: ToolType::Function,
                function: ToolFunctionInfo {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters,
                },
            });
        }
        let request = ChatMessageRequest::new(self.model.clone(), messages).tools(infos);
        let response = self
            .client
            .send_chat_messages(request)
            .await
            .map_err(classify)?;
        let tool_calls = response
            .message
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: format!("ollama_{i}"),
                name: c.function.name.clone(),
                arguments: c.function.arguments.to_string(),
            })
            .collect();
        Ok(completion(response, tool_calls))
    }
}

fn completion(response: ChatMessageResponse, tool_calls: Vec<ToolCall>) -> Completion {
    let (tokens_in, tokens_out) = match &response.final_data {
        Some(d) => (
            u32::try_from(d.prompt_eval_count).ok(),
            u32::try_from(d.eval_count).ok(),
        ),
        None => (None, None),
    };
    Completion {
        content: response.message.content,
        tool_calls,
        tokens_in,
        tokens_out,
        model: response.model,
    }
}

impl Provider for Ollama {
    fn name(&self) -> &'static str {
        "ollama"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        messages: &'a [Message],
        tools: &'a [ToolSpec],
    ) -> CompletionFuture<'a> {
        Box::pin(self.chat(messages, tools))
    }

    fn complete_json<'a>(
        &'a self,
        messages: &'a [Message],
        schema: &'a serde_json::Value,
    ) -> CompletionFuture<'a> {
        Box::pin(self.structured(messages, schema))
    }
}

fn wire_message(m: &Message) -> ChatMessage {
    let role = match m.role {
        Role::System => MessageRole::System,
        Role::User => MessageRole::User,
        Role::Assistant => MessageRole::Assistant,
        Role::Tool => MessageRole::Tool,
    };
    let mut message = ChatMessage::new(role, m.content.clone());
    message.tool_calls = m
        .tool_calls
        .iter()
        .map(|c| OllamaCall {
            function: ToolCallFunction {
                name: c.name.clone(),
                arguments: serde_json::from_str(&c.arguments).unwrap_or(serde_json::Value::Null),
            },
        })
        .collect();
    message
}

fn classify(e: OllamaError) -> LlmError {
    match e {
        OllamaError::ReqwestError(r) if r.is_timeout() => {
            LlmError::new(ErrorClass::Timeout, r.to_string())
        }
        OllamaError::ReqwestError(r) if r.is_decode() => {
            LlmError::new(ErrorClass::Malformed, r.to_string())
        }
        OllamaError::ReqwestError(r) => LlmError::new(ErrorClass::Connection, r.to_string()),
        OllamaError::JsonError(j) => LlmError::new(ErrorClass::Malformed, j.to_string()),
        // The server answered with an error of its own (model loading, overload): worth a retry.
        OllamaError::InternalError(i) => LlmError::new(ErrorClass::Server, i.message),
        other => LlmError::new(ErrorClass::Client, other.to_string()),
    }
}
