//! Start-up: builds the shared state once, binds the listener and serves until stopped.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::crypto::password::PasswordHashing;
use crate::db::Db;
use crate::domain::identity::{Identity, JwtKeys, Settings};
use crate::notify::mail::Mailer;
use crate::storage::{FileStore, LocalFiles};

/// Everything a request handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub identity: Arc<Identity>,
    pub mailer: Mailer,
    pub files: Arc<dyn FileStore>,
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
        db.migrate().await.context("applying migrations")?;
        crate::domain::specialties::seed(&db)
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
        let files: Arc<dyn FileStore> = Arc::new(LocalFiles::new(&config.upload_dir));
        Ok(Self {
            files,
            config: Arc::new(config),
            db,
            identity: Arc::new(identity),
            mailer,
        })
    }
}

/// A bound server, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let state = AppState::build(config).await?;
        Self::with_state(state).await
    }

    pub async fn with_state(state: AppState) -> anyhow::Result<Self> {
        let addr = state.config.addr;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until ctrl-c or SIGTERM, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let db = self.state.db.clone();
        let jobs = crate::jobs::spawn(db.clone());
        let app = crate::http::router(self.state);
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
        jobs.abort();
        db.close().await;
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "listening for ctrl-c failed");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "listening for SIGTERM failed");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
