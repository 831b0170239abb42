//! Settings: defaults, then an optional `.env`, then environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

/// Everything the service reads from its environment, resolved once at start-up.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Where uploaded files (clinic logos, clinical files) are kept: this folder, unless
    /// `file_store` names a bucket.
    pub upload_dir: PathBuf,
    /// S3-compatible object storage for files (`FILE_STORE=s3://bucket/prefix`), for
    /// replicas that share their files.
    pub file_store: Option<S3Config>,
    /// The largest clinical file accepted (`MAX_FILE_MB`, default 10).
    pub max_file_bytes: usize,
    pub database: DatabaseUrl,
    pub db_max_connections: u32,
    pub jwt_secret: SecretString,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// A refresh token used again within this of its first use gets the same new token
    /// (two tabs refreshing at once); later, or once that new token was used, it is reuse.
    pub refresh_reuse_grace: Duration,
    pub code_ttl: Duration,
    pub code_max_attempts: i64,
    pub login_max_failures: i64,
    pub login_lockout: Duration,
    pub smtp_url: Option<SecretString>,
    pub mail_from: String,
    pub auth_rate_limit: RateLimit,
    /// Reverse proxies whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub argon2: Argon2Params,
    pub log_format: LogFormat,
    /// How long a patient's hold on a slot lasts before it lapses.
    pub hold_minutes: i64,
    /// Fill a fresh database with demo clinics, doctors and accounts (`serve --demo`).
    pub demo: bool,
    pub llm: LlmConfig,
    pub agent: AgentConfig,
    pub care: CareConfig,
    pub notify: NotifyConfig,
    /// Where users reach the service (`PUBLIC_URL`); `https://…` makes cookies `Secure`.
    pub public_url: Option<String>,
    pub http: HttpLimits,
}

/// Where S3 is and how to sign in to it (`FILE_STORE`, `S3_*`).
#[derive(Clone, Debug, Default)]
pub struct S3Config {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// An S3-compatible server (MinIO, Ceph, moto), e.g. `http://127.0.0.1:9000`
    /// (`S3_ENDPOINT`); absent: AWS.
    pub endpoint: Option<String>,
    /// `S3_REGION` (default `us-east-1`).
    pub region: String,
    /// `S3_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `S3_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<SecretString>,
    /// Allow a plain-HTTP endpoint (`S3_ALLOW_HTTP=true`, for a server on the same host).
    pub allow_http: bool,
}

/// Limits on client connections (`HTTP_*`).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// A request head must arrive within this, on a new connection, one sending headers
    /// slowly, or one idle between requests (`HTTP_HEADER_TIMEOUT_MS`).
    pub header_timeout: Duration,
    /// A request body must arrive within this (`HTTP_BODY_TIMEOUT_MS`).
    pub body_timeout: Duration,
    /// Open connections at most; more are refused with `503` (`HTTP_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long a public slot listing may be answered from memory (`SLOT_LISTING_CACHE_MS`;
    /// 0: never). A write by this process ends it at once; another replica's within this.
    pub listing_cache: Duration,
}

/// Doctors' notes and plans: the key that seals them, and how reminders behave.
#[derive(Clone, Debug)]
pub struct CareConfig {
    /// Seals notes, plans and notification bodies (`DATA_KEY`, else `data/data.key`).
    pub data_key: SecretString,
    /// Earlier keys, still able to open what they sealed (`OLD_DATA_KEYS`).
    pub old_data_keys: Vec<SecretString>,
    /// A plan reminder not checked in within this is missed (`REMINDER_GRACE_MINUTES`).
    pub reminder_grace: Duration,
    /// How many missed check-ins extend one plan item (`PLAN_EXTENSION_LIMIT`).
    pub plan_extension_limit: i64,
    /// A plan item without a duration gets reminders for this many days.
    pub open_plan_days: u32,
    /// How long a freed slot is held for a waitlisted patient (`WAITLIST_OFFER_MINUTES`).
    pub waitlist_offer_minutes: i64,
    /// How long an erased patient's clinical record is kept, sealed (`RECORD_RETENTION_DAYS`).
    pub record_retention_days: i64,
    /// The oldest a front desk's offline command may be when it is synced
    /// (`SYNC_MAX_AGE_HOURS`); older ones are refused.
    pub sync_max_age_hours: i64,
}

/// Notification channels and the dispatcher.
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// Appointment reminders, before the visit (`APPOINTMENT_REMINDERS=24h,2h`).
    pub appointment_reminders: Vec<Duration>,
    pub twilio: Option<TwilioConfig>,
    pub webhook: Option<WebhookConfig>,
    /// After this many failed attempts a notification is dead-lettered.
    pub max_attempts: i64,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// How often the dispatcher looks for due notifications.
    pub poll: Duration,
    /// How long a dispatcher owns the notifications it claimed.
    pub lease: Duration,
}

/// A Twilio-compatible messages API (SMS and WhatsApp).
#[derive(Clone, Debug)]
pub struct TwilioConfig {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: SecretString,
    pub sms_from: String,
    pub whatsapp_from: Option<String>,
}

/// Every notification also goes to this URL, signed with HMAC-SHA256.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: SecretString,
}

/// Which language models the agent uses (the offline assistant is always last).
#[derive(Clone, Debug)]
pub struct LlmConfig {
    /// An OpenAI-compatible server: `OPENAI_BASE_URL` (or `OPENAI_API_KEY` for OpenAI).
    pub openai: Option<OpenAiConfig>,
    /// An Ollama server: `OLLAMA_HOST`.
    pub ollama: Option<OllamaConfig>,
    pub attempt_timeout: Duration,
    pub max_retries: usize,
    /// The first retry's delay; later ones double (with jitter), up to 8 s.
    pub backoff_min: Duration,
    pub mode: AgentMode,
    /// A Whisper-compatible server for consultation audio (`TRANSCRIBE_URL`).
    pub transcribe: Option<TranscribeConfig>,
    /// The largest audio upload (`MAX_AUDIO_MB`, default 25).
    pub max_audio_bytes: usize,
}

/// A server answering `POST {base_url}/audio/transcriptions` (OpenAI's wire format:
/// whisper.cpp's server, faster-whisper servers, vLLM, OpenAI).
#[derive(Clone, Debug)]
pub struct TranscribeConfig {
    /// E.g. `http://127.0.0.1:8178/v1` (`TRANSCRIBE_URL`).
    pub base_url: String,
    /// `TRANSCRIBE_MODEL` (default `whisper-1`).
    pub model: String,
    /// `TRANSCRIBE_API_KEY`.
    pub api_key: Option<SecretString>,
}

#[derive(Clone, Debug)]
pub struct OpenAiConfig {
    pub base_url: String,
    pub api_key: Option<SecretString>,
    pub model: String,
    /// `LLM_STREAM` (default true): stream tool-calling answers; some local servers
    /// refuse streamed tool calls.
    pub stream: bool,
    /// `LLM_RESPONSE_FORMAT`: how structured answers are asked for.
    pub response_format: ResponseFormat,
}

/// How an OpenAI-compatible server is asked for a JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `json_schema` first; on a refusal `json_object` with the schema, then the prompt alone.
    Auto,
    /// `{"type": "json_schema", "json_schema": {…}}` (OpenAI, vLLM, llama.cpp's llama-server).
    JsonSchema,
    /// `{"type": "json_object", "schema": …}` (llama-cpp-python's server).
    JsonObject,
    /// No constraint: the prompt asks for JSON.
    None,
}

/// How the agent uses a configured model (`LLM_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentMode {
    /// The model reads each message into a JSON object; the dialogue policy acts (default).
    Understand,
    /// The model calls the tools itself (large hosted models).
    Tools,
}

#[derive(Clone, Debug)]
pub struct OllamaConfig {
    pub host: String,
    pub model: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStoreKind {
    /// One sealed file per session under `sessions_dir` (the embedded default).
    Files,
    /// The `chat_sessions` table, for replicas sharing a database.
    Database,
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub max_steps: usize,
    pub token_budget: u32,
    pub session_store: SessionStoreKind,
    pub sessions_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Seals chat contexts; older keys still open what they sealed.
    pub session_key: SecretString,
    pub old_session_keys: Vec<SecretString>,
    /// The zone relative days are read in when the widget does not say.
    pub default_time_zone: crate::zone::TimeZone,
    pub service_name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests a client may make at once before it is slowed down.
    pub burst: u32,
    /// One more request is allowed every `replenish` after the burst is spent.
    pub replenish: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's recommended argon2id setting (19 MiB, 2 passes, 1 lane).
    pub const PRODUCTION: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A database URL whose password never reaches a log line.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_postgres(&self) -> bool {
        let url = self.expose();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = self.expose();
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &url[scheme_end + 3..at];
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
            }
            _ => url.to_owned(),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Config {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        // A missing .env is normal; a malformed one is reported.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(e).context("reading .env"),
        }
        Self::from_lookup(|key| std::env::var(key).ok().filter(|v| !v.is_empty()))
    }

    /// Builds the configuration from these settings alone (tools and benches that set up
    /// their own service), the environment ignored.
    pub fn from_pairs(pairs: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::from_lookup(|k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.clone())
        })
    }

    /// Builds the configuration from any key lookup (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let data_dir = PathBuf::from(get("CLINIC_DATA_DIR").unwrap_or_else(|| "data".into()));
        let data_dir_for_keys = data_dir.clone();
        let database = match get("DATABASE_URL") {
            Some(url) => DatabaseUrl::new(url),
            None => DatabaseUrl::new(format!("sqlite://{}", data_dir.join("clinic.db").display())),
        };
        let jwt_secret = match get("JWT_SECRET") {
            Some(s) if s.len() >= 32 => SecretString::from(s),
            Some(_) => bail!("JWT_SECRET must be at least 32 characters"),
            None => load_or_create_secret(&data_dir.join("jwt.secret"))?,
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => bail!("LOG_FORMAT must be json or pretty, not {other:?}"),
        };
        Ok(Self {
            addr: parse(&get, "CLINIC_ADDR", "127.0.0.1:8080")?,
            upload_dir: get("CLINIC_UPLOAD_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("uploads")),
            file_store: match get("FILE_STORE") {
                None => None,
                Some(url) if url.starts_with("s3://") && url.len() > 5 => Some(S3Config {
                    url,
                    endpoint: get("S3_ENDPOINT"),
                    region: get("S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                    access_key_id: get("S3_ACCESS_KEY_ID"),
                    secret_access_key: get("S3_SECRET_ACCESS_KEY").map(SecretString::from),
                    allow_http: parse(&get, "S3_ALLOW_HTTP", "false")?,
                }),
                Some(other) => bail!("FILE_STORE must be s3://bucket[/prefix], not {other:?}"),
            },
            max_file_bytes: parse::<usize>(&get, "MAX_FILE_MB", "10")?.saturating_mul(1024 * 1024),
            data_dir,
            database,
            db_max_connections: parse(&get, "DB_MAX_CONNECTIONS", "10")?,
            jwt_secret,
            access_token_ttl: secs(parse(&get, "ACCESS_TOKEN_TTL_SECS", "900")?),
            refresh_token_ttl: secs(parse::<u64>(&get, "REFRESH_TOKEN_TTL_DAYS", "30")? * 86_400),
            refresh_reuse_grace: secs(parse(&get, "REFRESH_REUSE_GRACE_SECS", "20")?),
            code_ttl: secs(parse(&get, "CODE_TTL_SECS", "900")?),
            code_max_attempts: parse(&get, "CODE_MAX_ATTEMPTS", "5")?,
            login_max_failures: parse(&get, "LOGIN_MAX_FAILURES", "5")?,
            login_lockout: secs(parse(&get, "LOGIN_LOCKOUT_SECS", "900")?),
            smtp_url: get("SMTP_URL").map(SecretString::from),
            mail_from: get("MAIL_FROM")
                .unwrap_or_else(|| "Clinic <no-reply@clinic.localhost>".into()),
            auth_rate_limit: RateLimit {
                burst: parse(&get, "AUTH_RATE_LIMIT_BURST", "10")?,
                replenish: Duration::from_millis(parse(
                    &get,
                    "AUTH_RATE_LIMIT_REPLENISH_MS",
                    "6000",
                )?),
            },
            trusted_proxies: parse_list(&get, "TRUSTED_PROXIES")?,
            argon2: Argon2Params {
                memory_kib: parse(&get, "ARGON2_MEMORY_KIB", "19456")?,
                iterations: parse(&get, "ARGON2_ITERATIONS", "2")?,
                parallelism: parse(&get, "ARGON2_PARALLELISM", "1")?,
            },
            log_format,
            hold_minutes: parse(&get, "HOLD_MINUTES", "5")?,
            demo: false,
            llm: llm_config(&get)?,
            agent: agent_config(&get, &data_dir_for_keys)?,
            care: care_config(&get, &data_dir_for_keys)?,
            notify: notify_config(&get)?,
            public_url: get("PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
            http: HttpLimits {
                header_timeout: Duration::from_millis(parse(
                    &get,
                    "HTTP_HEADER_TIMEOUT_MS",
                    "30000",
                )?),
                body_timeout: Duration::from_millis(parse(&get, "HTTP_BODY_TIMEOUT_MS", "30000")?),
                max_connections: parse(&get, "HTTP_MAX_CONNECTIONS", "10000")?,
                listing_cache: Duration::from_millis(parse(&get, "SLOT_LISTING_CACHE_MS", "1000")?),
            },
        })
    }
}

fn care_config(
    get: &impl Fn(&str) -> Option<String>,
    data_dir: &Path,
) -> anyhow::Result<CareConfig> {
    let data_key = match get("DATA_KEY") {
        Some(k) if k.len() >= 32 => SecretString::from(k),
        Some(_) => bail!("DATA_KEY must be at least 32 characters"),
        None => load_or_create_secret(&data_dir.join("data.key"))?,
    };
    Ok(CareConfig {
        data_key,
        old_data_keys: secret_list(get, "OLD_DATA_KEYS"),
        reminder_grace: secs(parse::<u64>(get, "REMINDER_GRACE_MINUTES", "120")? * 60),
        plan_extension_limit: parse(get, "PLAN_EXTENSION_LIMIT", "3")?,
        open_plan_days: parse(get, "OPEN_PLAN_DAYS", "30")?,
        waitlist_offer_minutes: parse(get, "WAITLIST_OFFER_MINUTES", "60")?,
        record_retention_days: parse(get, "RECORD_RETENTION_DAYS", "3650")?,
        sync_max_age_hours: parse(get, "SYNC_MAX_AGE_HOURS", "72")?,
    })
}

fn notify_config(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<NotifyConfig> {
    let appointment_reminders = get("APPOINTMENT_REMINDERS")
        .unwrap_or_else(|| "24h,2h".into())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            humantime::parse_duration(s)
                .map_err(|e| anyhow::anyhow!("APPOINTMENT_REMINDERS: {s:?}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let twilio = match (get("TWILIO_ACCOUNT_SID"), get("TWILIO_AUTH_TOKEN")) {
        (Some(account_sid), Some(token)) => Some(TwilioConfig {
            base_url: get("TWILIO_BASE_URL").unwrap_or_else(|| "https://api.twilio.com".into()),
            account_sid,
            auth_token: SecretString::from(token),
            sms_from: get("TWILIO_FROM")
                .ok_or_else(|| anyhow::anyhow!("TWILIO_FROM is needed with TWILIO_ACCOUNT_SID"))?,
            whatsapp_from: get("TWILIO_WHATSAPP_FROM"),
        }),
        (None, None) => None,
        _ => bail!("set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or neither"),
    };
    let webhook = match (get("WEBHOOK_URL"), get("WEBHOOK_SECRET")) {
        (Some(url), Some(secret)) if secret.len() >= 16 => Some(WebhookConfig {
            url,
            secret: SecretString::from(secret),
        }),
        (None, None) => None,
        _ => bail!("WEBHOOK_URL needs WEBHOOK_SECRET (at least 16 characters)"),
    };
    Ok(NotifyConfig {
        appointment_reminders,
        twilio,
        webhook,
        max_attempts: parse(get, "NOTIFY_MAX_ATTEMPTS", "6")?,
        retry_min: Duration::from_millis(parse(get, "NOTIFY_RETRY_MIN_MS", "30000")?),
        retry_max: Duration::from_millis(parse(get, "NOTIFY_RETRY_MAX_MS", "3600000")?),
        poll: Duration::from_millis(parse(get, "NOTIFY_POLL_MS", "5000")?),
        lease: secs(parse(get, "NOTIFY_LEASE_SECS", "120")?),
    })
}

fn secret_list(get: &impl Fn(&str) -> Option<String>, key: &str) -> Vec<SecretString> {
    get(key)
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .map(|k| SecretString::from(k.trim().to_owned()))
        .collect()
}

fn llm_config(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<LlmConfig> {
    let model = get("LLM_MODEL");
    let stream = parse(get, "LLM_STREAM", "true")?;
    let response_format = match get("LLM_RESPONSE_FORMAT").as_deref().map(str::trim) {
        None | Some("") | Some("auto") => ResponseFormat::Auto,
        Some("json_schema") => ResponseFormat::JsonSchema,
        Some("json_object") => ResponseFormat::JsonObject,
        Some("none") => ResponseFormat::None,
        Some(other) => anyhow::bail!(
            "LLM_RESPONSE_FORMAT={other:?}: use auto, json_schema, json_object or none"
        ),
    };
    let mode = match get("LLM_MODE").as_deref().map(str::trim) {
        None | Some("") | Some("understand") => AgentMode::Understand,
        Some("tools") => AgentMode::Tools,
        Some(other) => anyhow::bail!("LLM_MODE={other:?}: use understand or tools"),
    };
    let api_key = get("OPENAI_API_KEY").map(SecretString::from);
    let openai = match (get("OPENAI_BASE_URL"), &api_key) {
        (Some(url), _) => Some(url),
        (None, Some(_)) => Some("https://api.openai.com/v1".to_owned()),
        (None, None) => None,
    }
    .map(|base_url| OpenAiConfig {
        base_url,
        api_key: api_key.clone(),
        model: model.clone().unwrap_or_else(|| "gpt-4o-mini".into()),
        stream,
        response_format,
    });
    let ollama = get("OLLAMA_HOST").map(|host| OllamaConfig {
        host,
        model: model.clone().unwrap_or_else(|| "llama3.1".into()),
    });
    Ok(LlmConfig {
        openai,
        ollama,
        attempt_timeout: Duration::from_millis(parse(get, "LLM_TIMEOUT_MS", "30000")?),
        max_retries: parse(get, "LLM_MAX_RETRIES", "3")?,
        backoff_min: Duration::from_millis(parse(get, "LLM_BACKOFF_MIN_MS", "250")?),
        mode,
        transcribe: get("TRANSCRIBE_URL").map(|url| TranscribeConfig {
            base_url: url.trim_end_matches('/').to_owned(),
            model: get("TRANSCRIBE_MODEL").unwrap_or_else(|| "whisper-1".into()),
            api_key: get("TRANSCRIBE_API_KEY").map(SecretString::from),
        }),
        max_audio_bytes: parse::<usize>(get, "MAX_AUDIO_MB", "25")?.saturating_mul(1024 * 1024),
    })
}

fn agent_config(
    get: &impl Fn(&str) -> Option<String>,
    data_dir: &Path,
) -> anyhow::Result<AgentConfig> {
    let session_store = match get("SESSION_STORE").as_deref() {
        None | Some("files") => SessionStoreKind::Files,
        Some("database") => SessionStoreKind::Database,
        Some(other) => bail!("SESSION_STORE must be files or database, not {other:?}"),
    };
    let session_key = match get("SESSION_KEY") {
        Some(k) if k.len() >= 32 => SecretString::from(k),
        Some(_) => bail!("SESSION_KEY must be at least 32 characters"),
        None => load_or_create_secret(&data_dir.join("session.key"))?,
    };
    let default_time_zone = match get("CLINIC_TIME_ZONE") {
        Some(name) => name
            .parse()
            .map_err(|e| anyhow::anyhow!("CLINIC_TIME_ZONE: {e}"))?,
        None => crate::zone::TimeZone::UTC,
    };
    Ok(AgentConfig {
        max_steps: parse(get, "AGENT_MAX_STEPS", "6")?,
        token_budget: parse(get, "AGENT_TOKEN_BUDGET", "3000")?,
        session_store,
        sessions_dir: PathBuf::from(get("SESSIONS_DIR").unwrap_or_else(|| "sessions".into())),
        log_dir: PathBuf::from(get("LOG_DIR").unwrap_or_else(|| "logs".into())),
        session_key,
        old_session_keys: secret_list(get, "OLD_SESSION_KEYS"),
        default_time_zone,
        service_name: get("CLINIC_SERVICE_NAME").unwrap_or_else(|| "Clinic".into()),
    })
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn parse<T>(get: &impl Fn(&str) -> Option<String>, key: &str, default: &str) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let raw = get(key).unwrap_or_else(|| default.to_owned());
    raw.parse()
        .map_err(|e| anyhow::anyhow!("{key}={raw:?} is not valid: {e}"))
}

/// A comma-separated list; empty when unset.
fn parse_list<T>(get: &impl Fn(&str) -> Option<String>, key: &str) -> anyhow::Result<Vec<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    get(key)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e| anyhow::anyhow!("{key}: {s:?} is not valid: {e}"))
        })
        .collect()
}

/// Reads the signing secret kept beside the database, creating it (mode 0600) on first run.
fn load_or_create_secret(path: &Path) -> anyhow::Result<SecretString> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok(SecretString::from(existing.to_owned()));
        }
        bail!(
            "{} holds a secret shorter than 32 characters",
            path.display()
        );
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    write_private(path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(SecretString::from(secret))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_hides_its_password() {
        let url = DatabaseUrl::new("postgres://app:hunter2@db:5432/clinic");
        assert_eq!(url.redacted(), "postgres://app:***@db:5432/clinic");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn defaults_need_no_environment() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_string_lossy().into_owned();
        let cfg = Config::from_lookup(|k| (k == "CLINIC_DATA_DIR").then(|| data.clone())).unwrap();
        assert_eq!(cfg.addr.to_string(), "127.0.0.1:8080");
        assert!(!cfg.database.is_postgres());
        // The generated secret is kept and reused on the next start.
        let again =
            Config::from_lookup(|k| (k == "CLINIC_DATA_DIR").then(|| data.clone())).unwrap();
        assert_eq!(
            cfg.jwt_secret.expose_secret(),
            again.jwt_secret.expose_secret()
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::from_lookup(|k| match k {
            "JWT_SECRET" => Some("x".repeat(40)),
            "CLINIC_ADDR" => Some("nowhere".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("CLINIC_ADDR"), "{err}");
    }
}
