//! The dispatcher: claims due notifications from the outbox under a lease, sends each on
//! its channel, and records the result. Failures are retried with exponential backoff
//! and jitter (backon); after `max_attempts` a notification is dead-lettered for admins.
//! Any number of dispatchers (replicas) can run on one database.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::Sha256;

use crate::config::{NotifyConfig, TwilioConfig, WebhookConfig};
use crate::db::Db;
use crate::error::Result;
use crate::notify::mail::Mailer;
use crate::notify::outbox::{self, Claimed, Message};

/// Why a send failed, and whether another try can help.
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    pub permanent: bool,
}

impl SendError {
    fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }
}

/// The channels and how to retry.
#[derive(Clone)]
pub struct Dispatcher {
    db: Db,
    mailer: Mailer,
    http: reqwest::Client,
    config: NotifyConfig,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub claimed: usize,
    pub sent: usize,
    pub failed: usize,
    pub dead: usize,
}

impl Dispatcher {
    pub fn new(db: Db, mailer: Mailer, config: NotifyConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            db,
            mailer,
            http,
            config,
        })
    }

    /// Claims up to `batch` due notifications and sends them.
    pub async fn run_once(&self, batch: i64) -> Result<Pass> {
        let now = Utc::now();
        let lease = chrono::Duration::from_std(self.config.lease)
            .unwrap_or_else(|_| chrono::Duration::minutes(2));
        let claimed = outbox::claim(&self.db, now, lease, batch).await?;
        let mut pass = Pass {
            claimed: claimed.len(),
            ..Pass::default()
        };
        for row in claimed {
            let result = match row.open(self.db.policy()) {
                Ok(message) => self.send(&row, &message).await,
                Err(e) => Err(SendError {
                    message: e.to_string(),
                    permanent: true,
                }),
            };
            let now = Utc::now();
            match result {
                Ok(()) => {
                    outbox::sent(&self.db, row.id, now).await?;
                    pass.sent += 1;
                }
                Err(e) => {
                    let retry_at = (!e.permanent && row.attempts < self.config.max_attempts)
                        .then(|| now + self.delay(row.attempts));
                    if retry_at.is_none() {
                        pass.dead += 1;
                        tracing::warn!(target: "notify", id = %row.id, channel = row.channel, error = e.message, "notification dead-lettered");
                    } else {
                        pass.failed += 1;
                        tracing::info!(target: "notify", id = %row.id, channel = row.channel, error = e.message, "notification failed; will retry");
                    }
                    outbox::failed(&self.db, row.id, &e.message, retry_at, now).await?;
                }
            }
        }
        Ok(pass)
    }

    /// The wait before attempt `attempts + 1`.
    fn delay(&self, attempts: i64) -> chrono::Duration {
        let nth = usize::try_from(attempts.max(1) - 1).unwrap_or(0);
        let wait = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_min)
            .with_max_delay(self.config.retry_max)
            .with_max_times(nth + 1)
            .with_jitter()
            .build()
            .nth(nth)
            .unwrap_or(self.config.retry_max);
        chrono::Duration::from_std(wait).unwrap_or_else(|_| chrono::Duration::hours(1))
    }

    async fn send(&self, row: &Claimed, message: &Message) -> Result<(), SendError> {
        match row.channel.as_str() {
            "email" => self
                .mailer
                .notify(
                    &row.recipient,
                    &message.subject,
                    &message.body,
                    message.ics.as_deref(),
                    message.attachment.as_ref(),
                )
                .await
                .map_err(SendError::transient),
            "sms" | "whatsapp" => match &self.config.twilio {
                Some(twilio) => self.twilio(twilio, row, message).await,
                None => Err(SendError {
                    message: "no SMS provider is configured (TWILIO_ACCOUNT_SID)".into(),
                    permanent: true,
                }),
            },
            "webhook" => match &self.config.webhook {
                Some(hook) => self.webhook(hook, row, message).await,
                None => Err(SendError {
                    message: "no webhook is configured (WEBHOOK_URL)".into(),
                    permanent: true,
                }),
            },
            other => Err(SendError {
                message: format!("unknown channel {other:?}"),
                permanent: true,
            }),
        }
    }

    /// `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, form-encoded, basic auth.
    async fn twilio(
        &self,
        twilio: &TwilioConfig,
        row: &Claimed,
        message: &Message,
    ) -> Result<(), SendError> {
        let (to, from) = if row.channel == "whatsapp" {
            let from = twilio.whatsapp_from.as_deref().unwrap_or(&twilio.sms_from);
            (
                format!("whatsapp:{}", row.recipient),
                format!("whatsapp:{from}"),
            )
        } else {
            (row.recipient.clone(), twilio.sms_from.clone())
        };
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            twilio.base_url.trim_end_matches('/'),
            twilio.account_sid
        );
        let body = format!("{}\n{}", message.subject, message.body);
        let response = self
            .http
            .post(url)
            .basic_auth(&twilio.account_sid, Some(twilio.auth_token.expose_secret()))
            .form(&[
                ("To", to.as_str()),
                ("From", from.as_str()),
                ("Body", body.as_str()),
            ])
            .send()
            .await
            .map_err(|e| SendError::transient(format!("SMS provider: {e}")))?;
        status_result(response).await
    }

    /// `POST` of a JSON event, signed: `X-Clinic-Signature: v1=<hex HMAC-SHA256 of
    /// "<timestamp>.<body>">` with `X-Clinic-Timestamp`, so the receiver can refuse replays.
    async fn webhook(
        &self,
        hook: &WebhookConfig,
        row: &Claimed,
        message: &Message,
    ) -> Result<(), SendError> {
        let body = json!({"id": row.id, "kind": row.kind, "about": row.about, "due_at": row.due_at,
            "subject": message.subject, "body": message.body})
        .to_string();
        let timestamp = Utc::now().timestamp().to_string();
        let signature = sign(hook.secret.expose_secret().as_bytes(), &timestamp, &body);
        let response = self
            .http
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-clinic-timestamp", &timestamp)
            .header("x-clinic-signature", format!("v1={signature}"))
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::transient(format!("webhook: {e}")))?;
        status_result(response).await
    }
}

/// The webhook signature: hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub fn sign(secret: &[u8], timestamp: &str, body: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 2xx: delivered. 429 and 5xx: try again. Other 4xx: the request itself is wrong.
async fn status_result(response: reqwest::Response) -> Result<(), SendError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    Err(SendError {
        message: format!("HTTP {status}: {text}"),
        permanent: status.is_client_error() && status.as_u16() != 429,
    })
}

/// Runs the dispatcher every `poll` until the task is aborted.
pub fn spawn(dispatcher: Dispatcher) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(dispatcher.config.poll);
        loop {
            tick.tick().await;
            loop {
                match dispatcher.run_once(50).await {
                    Ok(pass) if pass.claimed == 50 => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(target: "notify", error = %e, "dispatching failed");
                        break;
                    }
                }
            }
        }
    })
}
