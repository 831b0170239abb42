//! Mail: sent over SMTP when `SMTP_URL` is set; otherwise kept in the `mail_outbox` table
//! and written to the log, so a newcomer running locally sees their verification code.

use chrono::Utc;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::db::Db;

#[derive(Clone)]
pub struct Mailer {
    db: Db,
    from: Mailbox,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

/// How a message left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    Logged,
    Failed,
}

impl Delivery {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Logged => "logged",
            Self::Failed => "failed",
        }
    }
}

impl Mailer {
    pub fn new(db: Db, from: &str, smtp_url: Option<&SecretString>) -> anyhow::Result<Self> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("MAIL_FROM {from:?}: {e}"))?;
        let smtp = match smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("SMTP_URL is not valid: {e}"))?
                    .build(),
            ),
            None => None,
        };
        Ok(Self { db, from, smtp })
    }

    pub fn uses_smtp(&self) -> bool {
        self.smtp.is_some()
    }

    /// Sends a plain-text message. Failures are recorded and logged, not returned: a
    /// flow that mails a code answers the same whether or not the mail went out, and the
    /// user can ask for a new code.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Delivery {
        let (delivery, error) = match &self.smtp {
            None => {
                tracing::info!(target: "mail", to, subject, body, "mail kept in the outbox (no SMTP_URL)");
                (Delivery::Logged, None)
            }
            Some(smtp) => match self.deliver(smtp, to, subject, body).await {
                Ok(()) => {
                    tracing::info!(target: "mail", to, subject, "mail sent");
                    (Delivery::Sent, None)
                }
                Err(e) => {
                    tracing::warn!(target: "mail", to, subject, error = %e, "mail not sent");
                    (Delivery::Failed, Some(e))
                }
            },
        };
        // Over SMTP the body (which may hold a code) is not kept.
        let kept_body = if delivery == Delivery::Logged {
            body
        } else {
            ""
        };
        if let Err(e) = self
            .record(to, subject, kept_body, delivery, error.as_deref())
            .await
        {
            tracing::error!(target: "mail", error = %e, "recording mail in the outbox failed");
        }
        delivery
    }

    /// Sends a notification now, with an optional calendar attachment, and says whether
    /// it left: the dispatcher retries on failure. Without SMTP it is logged, as codes are.
    pub async fn notify(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        ics: Option<&str>,
        attachment: Option<&crate::notify::outbox::Attachment>,
    ) -> Result<(), String> {
        let Some(smtp) = &self.smtp else {
            tracing::info!(target: "mail", to, subject, "notification kept in the log (no SMTP_URL)");
            return Ok(());
        };
        let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned());
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject);
        let message = match ics {
            Some(ics) => {
                // The part's method is the calendar's own (RFC 6047): PUBLISH or CANCEL.
                let method = if ics.contains("\nMETHOD:CANCEL") {
                    "CANCEL"
                } else {
                    "PUBLISH"
                };
                let calendar =
                    ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
                        .map_err(|e| e.to_string())?;
                builder.multipart(MultiPart::mixed().singlepart(text).singlepart(
                    Attachment::new("appointment.ics".into()).body(ics.to_owned(), calendar),
                ))
            }
            None => match attachment {
                Some(file) => {
                    let kind = ContentType::parse(&file.media_type).map_err(|e| e.to_string())?;
                    let bytes = file.bytes().map_err(|e| e.to_string())?;
                    builder.multipart(
                        MultiPart::mixed()
                            .singlepart(text)
                            .singlepart(Attachment::new(file.name.clone()).body(bytes, kind)),
                    )
                }
                None => builder.singlepart(text),
            },
        }
        .map_err(|e| format!("building message: {e}"))?;
        smtp.send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn deliver(
        &self,
        smtp: &AsyncSmtpTransport<Tokio1Executor>,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| format!("building message: {e}"))?;
        smtp.send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn record(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        delivery: Delivery,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        const SQL: &str = "INSERT INTO mail_outbox (id, recipient, subject, body, status, error, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6, $7)";
        crate::exec!(
            &self.db,
            SQL,
            Uuid::now_v7(),
            to,
            subject,
            body,
            delivery.as_str(),
            error,
            Utc::now()
        )?;
        Ok(())
    }
}
