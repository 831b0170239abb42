//! `orchestrated_call`: every model call goes through here. Each attempt has a timeout;
//! transient failures (timeouts, connection errors, 429 honouring `Retry-After`, 5xx,
//! unreadable answers) are retried with exponential backoff and jitter (backon), client
//! errors never; then the next provider is tried, the offline assistant last. Every attempt
//! becomes one orchestration record: a JSON line in `logs/orchestration.log` and a row.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::db::Db;
use crate::llm::{Completion, Deltas, ErrorClass, LlmError, Message, Mode, Provider, ToolSpec};
use crate::on_db;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub attempt_timeout: Duration,
    /// Retries after the first attempt, per provider.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(30),
            max_retries: 3,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// Where one call comes from, for the records.
pub struct CallInfo<'a> {
    pub session_id: Option<Uuid>,
    /// `chat`, `summary`, …
    pub pipeline: &'a str,
    pub prompt_version: &'a str,
    pub mode: Mode,
    /// Tokens the whole uncompacted history and all tools would have been (for the log).
    pub full_history_tokens: Option<u32>,
    /// Where the answer's text goes as it is written, when someone is listening.
    pub deltas: Option<&'a Deltas>,
}

/// A completed call: the answer, who gave it, and how it went.
pub struct Outcome {
    pub completion: Completion,
    pub provider: &'static str,
    pub attempts: u32,
    pub tokens_in: u32,
    pub tokens_out: u32,
}

/// The providers in order of preference, the policy and the records.
pub struct Orchestrator {
    providers: Vec<Arc<dyn Provider>>,
    /// Tried after every model when a task must get an answer (the offline assistant).
    fallback: Arc<dyn Provider>,
    policy: RetryPolicy,
    db: Db,
    log: Option<Arc<Mutex<std::fs::File>>>,
}

impl Orchestrator {
    /// `providers` are tried in order, then `fallback` for the calls that must be answered.
    pub fn new(
        db: Db,
        providers: Vec<Arc<dyn Provider>>,
        fallback: Arc<dyn Provider>,
        policy: RetryPolicy,
        log_dir: Option<PathBuf>,
    ) -> Self {
        let log = log_dir.and_then(|dir| {
            let open = std::fs::create_dir_all(&dir).and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("orchestration.log"))
            });
            match open {
                Ok(f) => Some(Arc::new(Mutex::new(f))),
                Err(e) => {
                    tracing::warn!(error = %e, "orchestration.log cannot be opened; records go to the database only");
                    None
                }
            }
        });
        Self {
            providers,
            fallback,
            policy,
            db,
            log,
        }
    }

    /// The provider that answers first when all is well.
    pub fn primary(&self) -> &dyn Provider {
        self.providers.first().unwrap_or(&self.fallback).as_ref()
    }

    /// Writes one event as a JSON line (the database gets the attempts).
    pub fn event(&self, event: serde_json::Value) {
        if let Some(log) = &self.log
            && let Ok(mut f) = log.lock()
        {
            let mut line = event;
            line["ts"] = json!(Utc::now());
            // One write call a line: the file is unbuffered, and formatting a value into
            // it directly writes each of its pieces on its own.
            let mut text = line.to_string();
            text.push('\n');
            if let Err(e) = f.write_all(text.as_bytes()) {
                tracing::warn!(error = %e, "writing orchestration.log failed");
            }
        }
    }

    /// Whether any model is configured (beyond the fallback).
    pub fn has_models(&self) -> bool {
        !self.providers.is_empty()
    }

    /// Asks the providers in turn until one answers, the offline assistant last.
    pub async fn call(
        &self,
        info: &CallInfo<'_>,
        messages: &[Message],
        tools: &[ToolSpec],
    ) -> Result<Outcome, LlmError> {
        self.run(info, messages, tools, None, true).await
    }

    /// Asks the configured models only; the caller falls back itself.
    pub async fn call_models(
        &self,
        info: &CallInfo<'_>,
        messages: &[Message],
        tools: &[ToolSpec],
    ) -> Result<Outcome, LlmError> {
        self.run(info, messages, tools, None, false).await
    }

    /// Asks the configured models for one JSON object following `schema`.
    pub async fn call_json(
        &self,
        info: &CallInfo<'_>,
        messages: &[Message],
        schema: &serde_json::Value,
    ) -> Result<Outcome, LlmError> {
        self.run(info, messages, &[], Some(schema), false).await
    }

    /// Runs a task other than a chat completion (a transcription) under the same policy:
    /// a timeout per attempt, retries with backoff on transient failures, and one record
    /// per attempt (`provider` and `model` name who answered).
    pub async fn call_task<T, F, Fut>(
        &self,
        info: &CallInfo<'_>,
        (provider, model): (&str, &str),
        mut task: F,
    ) -> Result<T, LlmError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, LlmError>>,
    {
        let started = Instant::now();
        self.event(
            json!({"event": "pipeline_start", "pipeline": info.pipeline, "session": info.session_id,
            "prompt_version": info.prompt_version, "mode": info.mode}),
        );
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.policy.min_delay)
            .with_max_delay(self.policy.max_delay)
            .with_max_times(self.policy.max_retries)
            .with_jitter()
            .build();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let t = Instant::now();
            let result = match tokio::time::timeout(self.policy.attempt_timeout, task()).await {
                Ok(r) => r,
                Err(_) => Err(LlmError::new(
                    ErrorClass::Timeout,
                    format!("no answer within {:?}", self.policy.attempt_timeout),
                )),
            };
            let latency = t.elapsed();
            let error = result.as_ref().err();
            self.record(info, (provider, model), attempt, error, latency, 0, 0)
                .await;
            let e = match result {
                Ok(value) => {
                    self.event(json!({"event": "pipeline_end", "pipeline": info.pipeline, "outcome": "success",
                        "provider": provider, "attempts": attempt, "runtime_ms": started.elapsed().as_millis() as u64}));
                    return Ok(value);
                }
                Err(e) => e,
            };
            let delay = if e.is_transient() {
                backoff.next()
            } else {
                None
            };
            match delay {
                Some(delay) => {
                    tokio::time::sleep(
                        e.retry_after
                            .map_or(delay, |wait| wait.min(self.policy.max_delay * 4)),
                    )
                    .await
                }
                None => {
                    self.event(json!({"event": "pipeline_end", "pipeline": info.pipeline, "outcome": "failure",
                        "error_class": e.class, "attempts": attempt, "runtime_ms": started.elapsed().as_millis() as u64}));
                    return Err(e);
                }
            }
        }
    }

    async fn run(
        &self,
        info: &CallInfo<'_>,
        messages: &[Message],
        tools: &[ToolSpec],
        schema: Option<&serde_json::Value>,
        with_fallback: bool,
    ) -> Result<Outcome, LlmError> {
        let started = Instant::now();
        self.event(
            json!({"event": "pipeline_start", "pipeline": info.pipeline, "session": info.session_id,
            "prompt_version": info.prompt_version, "mode": info.mode, "messages": messages.len(),
            "tokens_full_history": info.full_history_tokens}),
        );
        let mut last_error = LlmError::new(ErrorClass::Client, "no provider configured");
        let mut attempts = 0u32;
        let fallback = with_fallback.then_some(&self.fallback);
        for provider in self.providers.iter().chain(fallback) {
            match self
                .with_retries(
                    provider.as_ref(),
                    info,
                    messages,
                    tools,
                    schema,
                    &mut attempts,
                )
                .await
            {
                Ok(outcome) => {
                    self.event(json!({"event": "pipeline_end", "pipeline": info.pipeline, "session": info.session_id,
                        "outcome": "success", "provider": outcome.provider, "attempts": attempts,
                        "runtime_ms": started.elapsed().as_millis() as u64,
                        "tokens_in": outcome.tokens_in, "tokens_out": outcome.tokens_out}));
                    return Ok(Outcome {
                        attempts,
                        ..outcome
                    });
                }
                Err(e) => {
                    tracing::warn!(provider = provider.name(), error = %e, "provider failed; trying the next");
                    last_error = e;
                }
            }
        }
        self.event(
            json!({"event": "pipeline_end", "pipeline": info.pipeline, "session": info.session_id,
            "outcome": "failure", "error_class": last_error.class, "attempts": attempts,
            "runtime_ms": started.elapsed().as_millis() as u64}),
        );
        Err(last_error)
    }

    async fn with_retries(
        &self,
        provider: &dyn Provider,
        info: &CallInfo<'_>,
        messages: &[Message],
        tools: &[ToolSpec],
        schema: Option<&serde_json::Value>,
        attempts: &mut u32,
    ) -> Result<Outcome, LlmError> {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.policy.min_delay)
            .with_max_delay(self.policy.max_delay)
            .with_max_times(self.policy.max_retries)
            .with_jitter()
            .build();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            *attempts += 1;
            let t = Instant::now();
            let sent_before = info.deltas.map(Deltas::sent);
            let result = match tokio::time::timeout(
                self.policy.attempt_timeout,
                match (schema, info.deltas) {
                    (Some(schema), _) => provider.complete_json(messages, schema),
                    (None, Some(deltas)) => provider.complete_streaming(messages, tools, deltas),
                    (None, None) => provider.complete(messages, tools),
                },
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(LlmError::new(
                    ErrorClass::Timeout,
                    format!("no answer within {:?}", self.policy.attempt_timeout),
                )),
            };
            let latency = t.elapsed();
            match result {
                Ok(completion) => {
                    let tokens_in = completion
                        .tokens_in
                        .unwrap_or_else(|| count_messages(messages, tools));
                    let tokens_out = completion
                        .tokens_out
                        .unwrap_or_else(|| count_completion(&completion));
                    self.record(
                        info,
                        (provider.name(), provider.model()),
                        attempt,
                        None,
                        latency,
                        tokens_in,
                        tokens_out,
                    )
                    .await;
                    return Ok(Outcome {
                        completion,
                        provider: provider.name(),
                        attempts: *attempts,
                        tokens_in,
                        tokens_out,
                    });
                }
                Err(e) => {
                    self.record(
                        info,
                        (provider.name(), provider.model()),
                        attempt,
                        Some(&e),
                        latency,
                        0,
                        0,
                    )
                    .await;
                    // Text of a broken-off attempt was already sent: the listener drops it.
                    if let (Some(deltas), Some(before)) = (info.deltas, sent_before)
                        && deltas.sent() > before
                    {
                        deltas.reset();
                    }
                    if !e.is_transient() {
                        return Err(e);
                    }
                    match backoff.next() {
                        Some(delay) => {
                            tokio::time::sleep(
                                e.retry_after
                                    .map_or(delay, |wait| wait.min(self.policy.max_delay * 4)),
                            )
                            .await
                        }
                        None => return Err(e),
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        info: &CallInfo<'_>,
        (provider, model): (&str, &str),
        attempt: u32,
        error: Option<&LlmError>,
        latency: Duration,
        tokens_in: u32,
        tokens_out: u32,
    ) {
        let outcome = if error.is_some() {
            "failure"
        } else {
            "success"
        };
        let error_class = error.map(|e| serde_json::to_value(e.class).unwrap_or_default());
        let latency_ms = latency.as_millis() as i64;
        self.event(json!({"event": "attempt", "pipeline": info.pipeline, "session": info.session_id,
            "provider": provider, "model": model, "attempt": attempt, "outcome": outcome,
            "error_class": error_class, "error": error.map(|e| e.message.clone()), "latency_ms": latency_ms,
            "tokens_in": tokens_in, "tokens_out": tokens_out, "prompt_version": info.prompt_version,
            "mode": info.mode}));
        const SQL: &str = "INSERT INTO orchestration_calls (id, session_id, pipeline, provider, model, attempt, outcome, \
            error_class, latency_ms, tokens_in, tokens_out, prompt_version, at, mode) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
        let class = error_class
            .as_ref()
            .and_then(|c| c.as_str())
            .map(str::to_owned);
        let stored = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(Uuid::now_v7())
            .bind(info.session_id)
            .bind(info.pipeline)
            .bind(provider)
            .bind(model)
            .bind(i64::from(attempt))
            .bind(outcome)
            .bind(class)
            .bind(latency_ms)
            .bind(i64::from(tokens_in))
            .bind(i64::from(tokens_out))
            .bind(info.prompt_version)
            .bind(Utc::now())
            .bind(info.mode.as_str())
            .execute(pool)
            .await
            .map(|_| ()));
        if let Err(e) = stored {
            tracing::warn!(error = %e, "storing an orchestration record failed");
        }
    }
}

/// Tokens of a request, by cl100k (the providers' own count is used when they give one).
pub fn count_messages(messages: &[Message], tools: &[ToolSpec]) -> u32 {
    let bpe = tiktoken_rs::cl100k_base_singleton();
    let mut n = 0usize;
    for m in messages {
        n += 4 + bpe.encode_ordinary(&m.content).len();
        for c in &m.tool_calls {
            n += bpe.encode_ordinary(&c.name).len() + bpe.encode_ordinary(&c.arguments).len();
        }
    }
    for t in tools {
        n += bpe.encode_ordinary(&t.description).len()
            + bpe.encode_ordinary(&t.parameters.to_string()).len();
    }
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn count_completion(c: &Completion) -> u32 {
    count_messages(
        &[Message {
            tool_calls: c.tool_calls.clone(),
            ..Message::assistant(c.content.clone())
        }],
        &[],
    )
}
