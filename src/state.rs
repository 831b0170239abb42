//! The shared state every request handler and job works with, built once at start-up:
//! the database with its policy, identity, mail, files, the agent and the listing cache.

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::agent::session::SessionStore;
use crate::agent::{Agent, AgentSettings};
use crate::cache::ListingCache;
use crate::config::{Config, SessionStoreKind};
use crate::crypto::password::PasswordHashing;
use crate::crypto::seal::Sealer;
use crate::db::Db;
use crate::domain::identity::{Identity, JwtKeys, Settings};
use crate::llm::orchestrate::{Orchestrator, RetryPolicy};
use crate::notify::mail::Mailer;
use crate::storage::{FileStore, LocalFiles, ObjectFiles};

/// Everything a request handler needs, cheap to clone: one reference count (each request
/// clones it more than once, and the services' own handles would each count).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Services {
    pub config: Arc<Config>,
    pub db: Db,
    pub identity: Arc<Identity>,
    pub mailer: Mailer,
    pub files: Arc<dyn FileStore>,
    pub agent: Arc<Agent>,
    /// Public slot listings kept in memory briefly (`SLOT_LISTING_CACHE_MS`).
    pub listings: Arc<ListingCache>,
    /// With the demo data in the database: its accounts, for the demo page to list.
    pub demo_accounts: Arc<std::sync::OnceLock<DemoAccounts>>,
}

/// The demo data's accounts and their shared password.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoAccounts {
    pub password: &'static str,
    pub accounts: Vec<DemoAccount>,
}

/// A demo account as the demo page lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoAccount {
    pub role: String,
    pub email: String,
    /// The page the account lands on.
    pub opens: String,
}

impl AppState {
    /// Connects the database, applies migrations and wires the services.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database, config.db_max_connections)
            .await
            .with_context(|| format!("connecting to {}", config.database.redacted()))?;
        Self::with_db(config, db).await
    }

    /// Like [`Self::build`], on a pool the caller opened (tests use a fresh schema each).
    pub async fn with_db(config: Config, db: Db) -> anyhow::Result<Self> {
        let audit_log = config.agent.log_dir.join("audit.log");
        let db = db
            .with_audit_log(&audit_log)
            .with_context(|| format!("opening {}", audit_log.display()))?;
        let db = db.with_policy(policy(&config));
        db.migrate().await.context("applying migrations")?;
        crate::domain::clinics::specialties::seed(&db)
            .await
            .map_err(|e| anyhow::anyhow!("seeding specialties: {e}"))?;
        let mailer = Mailer::new(db.clone(), &config.mail_from, config.smtp_url.as_ref())?;
        let passwords = PasswordHashing::new(config.argon2).map_err(|e| anyhow::anyhow!("{e}"))?;
        let jwt = JwtKeys::new(&config.jwt_secret);
        // Codes and tokens are digested with a key derived from the signing secret, so
        // the database alone never holds anything that signs a user in.
        let digest_key = crate::crypto::Digester::new(config.jwt_secret.expose_secret().as_bytes())
            .digest("derive", "code-and-token-digests");
        let identity = Identity::new(
            db.clone(),
            mailer.clone(),
            passwords,
            jwt,
            digest_key.as_bytes(),
            Settings::from_config(&config),
        );
        let files: Arc<dyn FileStore> = match &config.file_store {
            Some(s3) => Arc::new(ObjectFiles::s3(s3).context("FILE_STORE")?),
            None => Arc::new(LocalFiles::new(&config.upload_dir)),
        };
        let agent = Arc::new(build_agent(&config, db.clone())?);
        let listings = Arc::new(ListingCache::new(config.http.listing_cache));
        Ok(Self(Arc::new(Services {
            files,
            agent,
            listings,
            demo_accounts: Arc::default(),
            config: Arc::new(config),
            db,
            identity: Arc::new(identity),
            mailer,
        })))
    }
}

impl AppState {
    /// The notification dispatcher on this state's database and channels.
    pub fn dispatcher(&self) -> anyhow::Result<crate::notify::dispatch::Dispatcher> {
        crate::notify::dispatch::Dispatcher::new(
            self.db.clone(),
            self.mailer.clone(),
            self.config.notify.clone(),
        )
    }
}

/// A 32-byte key from a configured secret of any length.
fn key(secret: &secrecy::SecretString) -> [u8; 32] {
    Sha256::digest(secret.expose_secret().as_bytes()).into()
}

fn policy(config: &Config) -> crate::db::Policy {
    let care = &config.care;
    let minutes = |d: std::time::Duration| chrono::Duration::minutes((d.as_secs() / 60) as i64);
    crate::db::Policy {
        sealer: Sealer::new(
            &key(&care.data_key),
            &care.old_data_keys.iter().map(key).collect::<Vec<_>>(),
        ),
        // Its own key, derived from the data key (which stays outside the database).
        audit_key: crate::crypto::Digester::new(
            crate::crypto::Digester::new(&key(&care.data_key))
                .digest("audit checkpoint key", "")
                .as_bytes(),
        ),
        appointment_reminders: config
            .notify
            .appointment_reminders
            .iter()
            .map(|d| minutes(*d))
            .collect(),
        webhook: config.notify.webhook.is_some(),
        sms: config.notify.twilio.is_some(),
        reminder_grace: minutes(care.reminder_grace),
        plan_extension_limit: care.plan_extension_limit,
        open_plan_days: care.open_plan_days,
        record_retention: chrono::Duration::days(care.record_retention_days.max(0)),
        waitlist_offer: chrono::Duration::minutes(care.waitlist_offer_minutes),
        sync_max_age: chrono::Duration::hours(care.sync_max_age_hours.max(1)),
        site: config.public_url.clone(),
    }
}

/// The booking agent: providers in order of preference, sealed sessions, settings.
fn build_agent(config: &Config, db: Db) -> anyhow::Result<Agent> {
    let sealer = Sealer::new(
        &key(&config.agent.session_key),
        &config
            .agent
            .old_session_keys
            .iter()
            .map(key)
            .collect::<Vec<_>>(),
    );
    let sessions = match config.agent.session_store {
        SessionStoreKind::Files => SessionStore::Files {
            dir: config.agent.sessions_dir.clone(),
            sealer,
        },
        SessionStoreKind::Database => SessionStore::Table {
            db: db.clone(),
            sealer,
        },
    };
    let providers = crate::llm::configured_providers(&config.llm)?;
    let policy = RetryPolicy {
        attempt_timeout: config.llm.attempt_timeout,
        max_retries: config.llm.max_retries,
        min_delay: config.llm.backoff_min,
        ..RetryPolicy::default()
    };
    let llm = Orchestrator::new(
        db.clone(),
        providers,
        Arc::new(crate::agent::offline::Offline),
        policy,
        Some(config.agent.log_dir.clone()),
    );
    let settings = AgentSettings {
        service_name: config.agent.service_name.clone(),
        default_time_zone: config.agent.default_time_zone,
        hold_minutes: config.hold_minutes,
        max_steps: config.agent.max_steps.max(1),
        token_budget: config.agent.token_budget,
        mode: config.llm.mode,
    };
    let agent = Agent::new(db, llm, sessions, settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(match &config.llm.transcribe {
        Some(t) => agent.with_transcriber(
            crate::llm::transcribe::Transcriber::new(t.clone())
                .map_err(|e| anyhow::anyhow!("TRANSCRIBE_URL: {e}"))?,
        ),
        None => agent,
    })
}
