//! Speech to text through a Whisper-compatible server: `POST {base}/audio/transcriptions`,
//! multipart (`file`, `model`, `response_format=json`), answered with `{"text": …}`. One
//! attempt here; the orchestrator times it out, retries it and records it like a model call.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::config::TranscribeConfig;
use crate::llm::{ErrorClass, LlmError};

pub struct Transcriber {
    client: reqwest::Client,
    config: TranscribeConfig,
}

impl Transcriber {
    pub fn new(config: TranscribeConfig) -> Result<Self, LlmError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| LlmError::new(ErrorClass::Client, e.to_string()))?;
        Ok(Self { client, config })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// One transcription attempt of `audio` (named and typed as uploaded).
    pub async fn once(&self, audio: &[u8], name: &str, mime: &str) -> Result<String, LlmError> {
        let part = reqwest::multipart::Part::bytes(audio.to_vec())
            .file_name(name.to_owned())
            .mime_str(mime)
            .map_err(|e| LlmError::new(ErrorClass::Client, e.to_string()))?;
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", self.config.model.clone())
            .text("response_format", "json");
        let mut request = self
            .client
            .post(format!("{}/audio/transcriptions", self.config.base_url))
            .multipart(form);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request.send().await.map_err(|e| {
            let class = if e.is_timeout() {
                ErrorClass::Timeout
            } else {
                ErrorClass::Connection
            };
            LlmError::new(class, e.to_string())
        })?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let class = match status.as_u16() {
                429 => ErrorClass::RateLimited,
                500..=599 => ErrorClass::Server,
                _ => ErrorClass::Client,
            };
            let body = response.text().await.unwrap_or_default();
            let mut e = LlmError::new(
                class,
                format!(
                    "transcription server answered {status}: {}",
                    body.chars().take(300).collect::<String>()
                ),
            );
            e.retry_after = retry_after;
            return Err(e);
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            text: String,
        }
        let answer: Answer = response
            .json()
            .await
            .map_err(|e| LlmError::new(ErrorClass::Malformed, e.to_string()))?;
        Ok(answer.text.trim().to_owned())
    }
}
