//! Any OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp, LM Studio,
//! gateways), through async-openai with our own wire types (`byot`), streamed. The
//! client's own retries are replaced by a plain transport: the orchestrator retries,
//! so every attempt is recorded, and a 429's `Retry-After` is handed to it.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::{self, ResponseFormat};
use crate::llm::{
    Completion, CompletionFuture, Deltas, ErrorClass, LlmError, Message, Provider, Role, ToolCall,
    ToolSpec,
};

pub struct OpenAi {
    client: Client<OpenAIConfig>,
    model: String,
    stream: bool,
    /// The way of asking for JSON that this server took last (a [`Ladder`] step).
    format: AtomicUsize,
    fixed_format: bool,
}

/// Ways to ask for a JSON object, most precise first; a server that refuses one (4xx) is
/// asked the next way, and keeps being asked that way.
const LADDER: [ResponseFormat; 3] = [
    ResponseFormat::JsonSchema,
    ResponseFormat::JsonObject,
    ResponseFormat::None,
];

/// A 429 answer, with how long the server asked us to wait.
#[derive(Debug)]
struct RateLimited {
    retry_after: Option<Duration>,
}

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "429 Too Many Requests")
    }
}

impl std::error::Error for RateLimited {}

impl OpenAi {
    pub fn new(config: &config::OpenAiConfig) -> anyhow::Result<Self> {
        let mut openai = OpenAIConfig::new().with_api_base(config.base_url.trim_end_matches('/'));
        if let Some(key) = &config.api_key {
            openai = openai.with_api_key(key.expose_secret());
        }
        let http = reqwest::Client::builder().build()?;
        let transport = tower::service_fn(move |factory: HttpRequestFactory| {
            let http = http.clone();
            async move {
                let request = factory.build().await?;
                let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
                if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64);
                    return Err(OpenAIError::Boxed(Box::new(RateLimited { retry_after })));
                }
                Ok::<_, OpenAIError>(response)
            }
        });
        let start = match config.response_format {
            ResponseFormat::Auto | ResponseFormat::JsonSchema => 0,
            ResponseFormat::JsonObject => 1,
            ResponseFormat::None => 2,
        };
        Ok(Self {
            client: Client::with_config(openai).with_http_service(transport),
            model: config.model.clone(),
            stream: config.stream,
            format: AtomicUsize::new(start),
            fixed_format: config.response_format != ResponseFormat::Auto,
        })
    }

    async fn structured(
        &self,
        messages: &[Message],
        schema: &Value,
    ) -> Result<Completion, LlmError> {
        loop {
            let step = self.format.load(Ordering::Relaxed).min(LADDER.len() - 1);
            let mut request = json!({
                "model": self.model,
                "messages": messages.iter().map(wire_message).collect::<Vec<_>>(),
                "stream": false,
                "temperature": 0,
                "max_tokens": 300,
            });
            match LADDER[step] {
                ResponseFormat::JsonSchema | ResponseFormat::Auto => {
                    request["response_format"] = json!({"type": "json_schema",
                        "json_schema": {"name": "answer", "strict": true, "schema": schema}});
                }
                ResponseFormat::JsonObject => {
                    request["response_format"] = json!({"type": "json_object", "schema": schema});
                }
                ResponseFormat::None => {}
            }
            match self.once(request).await {
                // A refusal of the format: a 4xx, or an error that names it (llama-cpp-python
                // answers its own validation errors with 500).
                Err(e)
                    if (e.class == ErrorClass::Client || e.message.contains("response_format"))
                        && !self.fixed_format
                        && step + 1 < LADDER.len() =>
                {
                    tracing::warn!(error = %e, "the model server refused this response_format; asking the next way");
                    let _ = self.format.compare_exchange(
                        step,
                        step + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                other => return other,
            }
        }
    }

    /// One answer, not streamed.
    async fn once(&self, request: Value) -> Result<Completion, LlmError> {
        let answer: Value = self
            .client
            .chat()
            .create_byot(request)
            .await
            .map_err(classify)?;
        let message = &answer["choices"][0]["message"];
        if !message.is_object() {
            return Err(LlmError::new(
                ErrorClass::Malformed,
                "no message in the answer",
            ));
        }
        let tool_calls = message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, c)| {
                let name = c["function"]["name"].as_str()?;
                Some(ToolCall {
                    id: c["id"]
                        .as_str()
                        .map_or_else(|| format!("call_{i}"), str::to_owned),
                    name: name.to_owned(),
                    arguments: match &c["function"]["arguments"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                })
            })
            .collect();
        let count = |k: &str| {
            answer["usage"][k]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
        };
        Ok(Completion {
            content: message["content"].as_str().unwrap_or_default().to_owned(),
            tool_calls,
            tokens_in: count("prompt_tokens"),
            tokens_out: count("completion_tokens"),
            model: answer["model"]
                .as_str()
                .map_or_else(|| self.model.clone(), str::to_owned),
        })
    }

    fn request(&self, messages: &[Message], tools: &[ToolSpec]) -> Value {
        let messages: Vec<Value> = messages.iter().map(wire_message).collect();
        let mut request = json!({
            "model": self.model,
            "messages": messages,
            "stream": self.stream,
        });
        if self.stream {
            request["stream_options"] = json!({"include_usage": true});
        }
        if !tools.is_empty() {
            request["tools"] = tools
                .iter()
                .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                .collect();
            // Said outright: some servers leave the tools out of the prompt without it.
            request["tool_choice"] = json!("auto");
        }
        request
    }

    async fn stream(
        &self,
        messages: &[Message],
        tools: &[ToolSpec],
        deltas: Option<&Deltas>,
    ) -> Result<Completion, LlmError> {
        if !self.stream {
            let completion = self.once(self.request(messages, tools)).await?;
            if let Some(deltas) = deltas {
                deltas.text(&completion.content);
            }
            return Ok(completion);
        }
        let mut stream = self
            .client
            .chat()
            .create_stream_byot::<Value, Value>(self.request(messages, tools))
            .await
            .map_err(classify)?;
        let mut answer = Assembly::default();
        while let Some(chunk) = stream.next().await {
            let piece = answer.add(&chunk.map_err(classify)?)?;
            if let (Some(deltas), Some(piece)) = (deltas, piece) {
                deltas.text(&piece);
            }
        }
        answer.finish(&self.model)
    }
}

impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        messages: &'a [Message],
        tools: &'a [ToolSpec],
    ) -> CompletionFuture<'a> {
        Box::pin(self.stream(messages, tools, None))
    }

    fn complete_streaming<'a>(
        &'a self,
        messages: &'a [Message],
        tools: &'a [ToolSpec],
        deltas: &'a Deltas,
    ) -> CompletionFuture<'a> {
        Box::pin(self.stream(messages, tools, Some(deltas)))
    }

    fn complete_json<'a>(
        &'a self,
        messages: &'a [Message],
        schema: &'a Value,
    ) -> CompletionFuture<'a> {
        Box::pin(self.structured(messages, schema))
    }
}

fn wire_message(m: &Message) -> Value {
    match m.role {
        Role::System => json!({"role": "system", "content": m.content}),
        Role::User => json!({"role": "user", "content": m.content}),
        Role::Tool => json!({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}),
        Role::Assistant if m.tool_calls.is_empty() => {
            json!({"role": "assistant", "content": m.content})
        }
        Role::Assistant => json!({
            "role": "assistant",
            // Text, never null: some servers answer 500 to a null content.
            "content": m.content,
            "tool_calls": m.tool_calls.iter().map(|c| json!({
                "id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}
            })).collect::<Vec<_>>(),
        }),
    }
}

/// A streamed answer put back together: text deltas, tool-call pieces by index, usage.
#[derive(Default)]
struct Assembly {
    content: String,
    calls: Vec<ToolCall>,
    finished: bool,
    tokens_in: Option<u32>,
    tokens_out: Option<u32>,
    model: Option<String>,
}

impl Assembly {
    /// Takes one chunk; answers the text it added, if any.
    fn add(&mut self, chunk: &Value) -> Result<Option<String>, LlmError> {
        if let Some(error) = chunk.get("error") {
            return Err(LlmError::new(
                ErrorClass::Server,
                format!("error in stream: {error}"),
            ));
        }
        if let Some(model) = chunk["model"].as_str() {
            self.model = Some(model.to_owned());
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.tokens_in = usage["prompt_tokens"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok());
            self.tokens_out = usage["completion_tokens"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok());
        }
        let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) else {
            return Ok(None);
        };
        let delta = &choice["delta"];
        let text = delta["content"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if let Some(text) = &text {
            self.content.push_str(text);
        }
        for piece in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = piece["index"].as_u64().unwrap_or(0) as usize;
            if index > 64 {
                return Err(LlmError::new(
                    ErrorClass::Malformed,
                    "tool call index out of range",
                ));
            }
            while self.calls.len() <= index {
                self.calls.push(ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
            }
            let call = &mut self.calls[index];
            if let Some(id) = piece["id"].as_str() {
                call.id = id.to_owned();
            }
            if let Some(name) = piece["function"]["name"].as_str() {
                call.name.push_str(name);
            }
            if let Some(args) = piece["function"]["arguments"].as_str() {
                call.arguments.push_str(args);
            }
        }
        if choice["finish_reason"].is_string() {
            self.finished = true;
        }
        Ok(text)
    }

    fn finish(self, model: &str) -> Result<Completion, LlmError> {
        if !self.finished {
            return Err(LlmError::new(
                ErrorClass::Malformed,
                "the stream ended before the answer was complete",
            ));
        }
        let calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !c.name.is_empty())
            .map(|(i, c)| ToolCall {
                id: if c.id.is_empty() {
                    format!("call_{i}")
                } else {
                    c.id
                },
                ..c
            })
            .collect();
        Ok(Completion {
            content: self.content,
            tool_calls: calls,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            model: self.model.unwrap_or_else(|| model.to_owned()),
        })
    }
}

fn classify(e: OpenAIError) -> LlmError {
    match e {
        OpenAIError::Boxed(b) => match b.downcast::<RateLimited>() {
            Ok(limited) => LlmError {
                retry_after: limited.retry_after,
                ..LlmError::new(ErrorClass::RateLimited, "429 Too Many Requests")
            },
            Err(other) => LlmError::new(ErrorClass::Connection, other.to_string()),
        },
        OpenAIError::ApiError(api) => {
            let status = api.status_code.as_u16();
            let class = match status {
                429 => ErrorClass::RateLimited,
                500..=599 => ErrorClass::Server,
                _ => ErrorClass::Client,
            };
            LlmError::new(class, api.to_string())
        }
        OpenAIError::Reqwest(r) if r.is_timeout() => {
            LlmError::new(ErrorClass::Timeout, r.to_string())
        }
        OpenAIError::Reqwest(r) if r.is_decode() || r.is_body() => {
            LlmError::new(ErrorClass::Malformed, r.to_string())
        }
        OpenAIError::Reqwest(r) => LlmError::new(ErrorClass::Connection, r.to_string()),
        OpenAIError::JSONDeserialize(e, _) => LlmError::new(ErrorClass::Malformed, e.to_string()),
        OpenAIError::StreamError(e) => LlmError::new(ErrorClass::Malformed, e.to_string()),
        other => LlmError::new(ErrorClass::Client, other.to_string()),
    }
}
