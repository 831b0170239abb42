//! `TestApp`: the real service on a random port, on a fresh SQLite file or a fresh
//! PostgreSQL schema, with cheap password hashing and generous rate limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;

use clinic::app::Application;
use clinic::config::Config;
use clinic::db::Db;
use clinic::state::AppState;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The PostgreSQL server for tests, when one is configured.
    pub fn postgres_url() -> Option<String> {
        std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db: Db,
    pub backend: Backend,
    /// The running service's state (for loading demo data, reaching the agent).
    pub state: AppState,
    /// The PostgreSQL schema of this app, when on PostgreSQL.
    pg_schema: Option<String>,
    /// The secret of each chat this client started, sent back as `X-Chat-Secret` on every
    /// call about that chat (as the widget does).
    chat_secrets: std::sync::Mutex<HashMap<String, String>>,
    _dir: tempfile::TempDir,
}

/// A JSON answer: status, content type and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts a problem+json answer with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{:#}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{:#}", self.body);
        assert_eq!(self.body["status"], status);
    }

    #[track_caller]
    pub fn assert_ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        &self.body
    }

    pub fn str(&self, key: &str) -> String {
        self.body[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {:#}", self.body))
            .to_owned()
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts the app with extra configuration (`KEY`, `value`) pairs.
    pub async fn spawn_with(backend: Backend, settings: &[(&str, &str)]) -> Self {
        clinic::install_crypto_provider();
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                    .unwrap_or_else(|_| "off".into()),
            )
            .try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().to_string_lossy().into_owned();
        let mut env: HashMap<String, String> = [
            ("CLINIC_ADDR", "127.0.0.1:0"),
            ("JWT_SECRET", JWT_SECRET),
            ("ARGON2_MEMORY_KIB", "64"),
            ("ARGON2_ITERATIONS", "1"),
            ("AUTH_RATE_LIMIT_BURST", "10000"),
            ("AUTH_RATE_LIMIT_REPLENISH_MS", "1"),
            ("DB_MAX_CONNECTIONS", "5"),
            // Tests run the notification dispatcher themselves.
            ("NOTIFY_POLL_MS", "3600000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.insert("CLINIC_DATA_DIR".into(), data_dir.clone());
        env.insert("SESSIONS_DIR".into(), format!("{data_dir}/sessions"));
        env.insert("LOG_DIR".into(), format!("{data_dir}/logs"));
        for (k, v) in settings {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let mut pg_schema = None;
        let db = match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{data_dir}/clinic.db");
                env.insert("DATABASE_URL".into(), url.clone());
                Db::connect(&clinic::config::DatabaseUrl::new(url), 5)
                    .await
                    .expect("sqlite")
            }
            Backend::Postgres => {
                let url = Backend::postgres_url().expect("TEST_DATABASE_URL");
                env.insert("DATABASE_URL".into(), url.clone());
                let (db, schema) = fresh_postgres_schema(&url).await;
                pg_schema = Some(schema);
                db
            }
        };
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
        let state = AppState::with_db(config, db.clone())
            .await
            .expect("app state");
        // The app's own handle: it carries the data key and the audit log.
        let db = state.db.clone();
        let app = Application::with_state(state.clone()).await.expect("bind");
        let addr = app.local_addr().expect("addr");
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Self {
            addr,
            client,
            db,
            backend,
            state,
            pg_schema,
            chat_secrets: Default::default(),
            _dir: dir,
        }
    }

    /// A second pool on the same database, as another replica of the service would hold.
    pub async fn replica(&self) -> Db {
        match &self.pg_schema {
            None => {
                let url = format!("sqlite://{}/clinic.db", self.data_dir().display());
                Db::connect(&clinic::config::DatabaseUrl::new(url), 2)
                    .await
                    .expect("sqlite replica")
            }
            Some(schema) => {
                let url = Backend::postgres_url().expect("TEST_DATABASE_URL");
                let base = PgConnectOptions::from_str(&url).expect("TEST_DATABASE_URL");
                Db::connect_postgres(base.options([("search_path", schema.as_str())]), 2)
                    .await
                    .expect("pg replica")
            }
        }
    }

    /// The app's data folder (its SQLite file, uploads).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(secret) = self.chat_secret(path) {
            req = req.header("x-chat-secret", secret);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let a = answer(req.send().await.expect("request")).await;
        if path == "/api/v1/chat/sessions"
            && let (Some(id), Some(secret)) = (
                a.body["session_id"].as_str(),
                a.body["session_secret"].as_str(),
            )
        {
            self.chat_secrets
                .lock()
                .expect("secrets")
                .insert(id.to_owned(), secret.to_owned());
        }
        a
    }

    /// The secret of the chat a path is about, when this client started it.
    pub fn chat_secret(&self, path: &str) -> Option<String> {
        let id = path
            .strip_prefix("/api/v1/chat/sessions/")?
            .split('/')
            .next()?;
        self.chat_secrets.lock().expect("secrets").get(id).cloned()
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.request(Method::POST, path, None, Some(body)).await
    }

    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> Answer {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Answer {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, None, None).await
    }

    /// Sends raw bytes as a JSON body.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        let req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        answer(req.send().await.expect("request")).await
    }

    /// The last mail sent to `email`, as (subject, body), read from the outbox.
    pub async fn last_mail(&self, email: &str) -> Option<(String, String)> {
        const SQL: &str = "SELECT subject, body FROM mail_outbox WHERE recipient = $1 ORDER BY created_at DESC, id DESC LIMIT 1";
        clinic::on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(email)
            .fetch_optional(pool)
            .await)
        .expect("outbox")
    }

    pub async fn mail_count(&self, email: &str) -> i64 {
        self.scalar_i64_str(
            "SELECT COUNT(*) FROM mail_outbox WHERE recipient = $1",
            email,
        )
        .await
    }

    /// The 6-digit code in the last mail to `email`.
    pub async fn last_code(&self, email: &str) -> String {
        let (_, body) = self
            .last_mail(email)
            .await
            .unwrap_or_else(|| panic!("no mail to {email}"));
        body.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap_or_else(|| panic!("no code in {body:?}"))
            .to_owned()
    }

    pub async fn scalar_i64_str(&self, sql: &'static str, arg: &str) -> i64 {
        let (n,): (i64,) = clinic::on_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(arg)
            .fetch_one(pool)
            .await)
        .expect(sql);
        n
    }

    pub async fn execute(&self, sql: &'static str) {
        clinic::on_db!(&self.db, |pool| sqlx::query(sql)
            .execute(pool)
            .await
            .map(|_| ()))
        .expect(sql);
    }

    /// Registers and verifies a patient; returns the email.
    pub async fn verified_patient(&self, email: &str) -> String {
        self.post(
            "/api/v1/auth/register",
            json!({"email": email, "password": PASSWORD, "display_name": "Test Patient"}),
        )
        .await
        .assert_ok(202);
        let code = self.last_code(email).await;
        self.post(
            "/api/v1/auth/verify-email",
            json!({"email": email, "code": code}),
        )
        .await
        .assert_ok(200);
        email.to_owned()
    }

    /// Signs in with the test password; returns the token pair body.
    pub async fn login(&self, email: &str) -> Value {
        let a = self
            .post(
                "/api/v1/auth/login",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(a.body["status"], "authenticated", "{:#}", a.body);
        a.body
    }

    pub async fn access_token(&self, email: &str) -> String {
        self.login(email).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// A verified user holding `grants` (besides patient), signed in; returns (id, token).
    pub async fn user_with(&self, email: &str, grants: &[Value]) -> (Uuid, String) {
        self.verified_patient(email).await;
        let id: Uuid = {
            const SQL: &str = "SELECT id FROM users WHERE email = $1";
            let (id,): (Uuid,) = clinic::on_db!(&self.db, |pool| sqlx::query_as(SQL)
                .bind(email)
                .fetch_one(pool)
                .await)
            .expect("user");
            id
        };
        for grant in grants {
            let role = grant["role"].as_str().expect("role");
            let clinic: Option<Uuid> = grant
                .get("clinic_id")
                .and_then(|c| c.as_str())
                .map(|c| c.parse().expect("uuid"));
            const SQL: &str = "INSERT INTO user_roles (id, user_id, role, clinic_id, created_at) VALUES ($1, $2, $3, $4, $5)";
            clinic::on_db!(&self.db, |pool| sqlx::query(SQL)
                .bind(Uuid::now_v7())
                .bind(id)
                .bind(role)
                .bind(clinic)
                .bind(chrono::Utc::now())
                .execute(pool)
                .await
                .map(|_| ()))
            .expect("grant");
        }
        (id, self.access_token(email).await)
    }

    /// Accepts every clinic invitation waiting for the signed-in account; returns how many.
    pub async fn accept_invitations(&self, token: &str) -> usize {
        let pending = self.get_as(token, "/api/v1/invitations").await;
        let pending = pending.assert_ok(200).as_array().expect("list").clone();
        for invitation in &pending {
            let id = invitation["id"].as_str().expect("id");
            self.post_as(
                token,
                &format!("/api/v1/invitations/{id}/accept"),
                json!({}),
            )
            .await
            .assert_ok(200);
        }
        pending.len()
    }

    /// A clinic row for role tests (clinic onboarding comes with the scheduling API).
    pub async fn clinic(&self, name: &str) -> Uuid {
        let id = Uuid::now_v7();
        let now = chrono::Utc::now();
        const SQL: &str = "INSERT INTO clinics (id, name, time_zone, created_at, updated_at) VALUES ($1, $2, 'Europe/Lisbon', $3, $3)";
        clinic::on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(id)
            .bind(name)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))
        .expect("clinic");
        id
    }
}

/// A server-sent event stream as (event, data) pairs; one space after `data:` is dropped.
pub fn sse_events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let kind = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            let data: Vec<&str> = e
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            (kind.to_owned(), data.join("\n"))
        })
        .collect()
}

pub async fn answer(res: reqwest::Response) -> Answer {
    let status = res.status();
    let headers = res.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

/// A new, empty schema on the test server, with the pool's search_path set to it.
pub async fn fresh_postgres_schema(url: &str) -> (Db, String) {
    let base = PgConnectOptions::from_str(url).expect("TEST_DATABASE_URL");
    let schema = format!("t_{}", Uuid::now_v7().simple());
    let admin = sqlx::PgPool::connect_with(base.clone())
        .await
        .expect("connect to TEST_DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    let db = Db::connect_postgres(base.options([("search_path", schema.as_str())]), 5)
        .await
        .expect("pg pool");
    (db, schema)
}

/// Declares each listed `async fn(TestApp)` test once per backend: `sqlite::name` always,
/// `postgres::name` when TEST_DATABASE_URL is set (it says so and passes otherwise).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::helpers::Backend::postgres_url().is_none() {
                        eprintln!("TEST_DATABASE_URL is not set; PostgreSQL run skipped");
                        return;
                    }
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await).await;
                }
            )+
        }
    };
}
