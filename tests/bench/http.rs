//! HTTP benchmark: the service as its clients see it, beside what the same machine does
//! in-process in the same run.
//!
//! Seeds the demo network plus `BENCH_DOCTORS` doctors (default 1,000) × 90 days of slots,
//! starts `clinic serve` as its own process and drives it with a closed-loop HTTP/1.1 load
//! generator (one keep-alive connection per client, each request sent when the previous
//! answer arrived): slot listing (one doctor, 14 days; one specialty) and bookings (a
//! patient's hold, then confirm; every booking a different free slot) at 10 and 64
//! connections, and 1,000 chat sessions with the offline assistant, 100 at a time. Each
//! figure is printed beside its in-process counterpart: the domain's booking rate and a
//! plain axum endpoint (its own process) answering the same listing bytes. Server CPU per
//! request is read from `/proc`.
//!
//! `cargo bench --bench http` runs it on SQLite; `BENCH_DATABASE_URL=postgres://…/postgres`
//! runs it on PostgreSQL (in a fresh database `clinic_bench`); `BENCH_SECONDS` (default 5)
//! is each load's length; `BENCH_PERF=<dir>` records a `perf` profile of the service
//! per load into that folder (`perf report -i <dir>/bookings-10.data`).
//!
//! The generator is in this file rather than wrk or oha: a booking is two dependent
//! requests with a token and a slot of its own, and one generator for every figure keeps
//! the ratios fair.

use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{Days, Utc};
use clinic::config::Config;
use clinic::db::Db;
use clinic::domain::actor::{Actor, Grant, Principal, Role};
use clinic::domain::identity::people::{self, NewUser};
use clinic::domain::scheduling::appointments;
use clinic::on_db;
use clinic::state::AppState;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use uuid::Uuid;

#[path = "world.rs"]
mod world;
use world::AnyResult;

const CLINICS: usize = 10;
const DAYS: i64 = 90;
const PATIENTS: usize = 64;
const CONNECTIONS: [usize; 2] = [10, 64];
const PASSWORD: &str = "bench-password-1";
const CHAT_SESSIONS: usize = 1000;
const CHAT_AT_ONCE: usize = 100;
const PLAIN_ROLE: &str = "BENCH_PLAIN_BODY";

fn main() -> AnyResult<()> {
    // The plain endpoint runs as a child of this bench, in its own process like the service.
    if let Ok(body) = std::env::var(PLAIN_ROLE) {
        return plain_server(&body);
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench())
}

async fn bench() -> AnyResult<()> {
    clinic::install_crypto_provider();
    let doctors: usize = env_or("BENCH_DOCTORS", 1000);
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let window = Duration::from_secs(seconds);
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let env = environment(&dir, port).await?;
    let config = Config::from_pairs(&env)?;

    // Seed in-process, through the domain.
    let state = AppState::build(config).await?;
    let db = state.db.clone();
    println!(
        "backend: {}; seeding the demo network and {doctors} doctors × {DAYS} days…",
        db.backend()
    );
    let started = Instant::now();
    clinic::demo::load(&state).await?;
    let (_, doctor_ids) = world::clinics_and_doctors(&db, CLINICS, doctors, DAYS).await?;
    let patients = seed_patients(&state).await?;
    let specialty = busiest_specialty(&db).await?;
    let mut free = free_slots(&db).await?;
    println!(
        "seeded {} slots in {:.0} s; {} free slots to book\n",
        count(&db, "SELECT COUNT(*) FROM slots").await?,
        started.elapsed().as_secs_f64(),
        free.len()
    );

    // Fresh statistics for PostgreSQL's planner, as autovacuum gathers them after a bulk
    // load (it is off on some development servers).
    if db.backend() == "postgres" {
        on_db!(&db, |pool| sqlx::query("ANALYZE")
            .execute(pool)
            .await
            .map(|_| ()))?;
    }
    // The bulk load's write-ahead log folded into the database first, as a restart would.
    if db.backend() == "sqlite" {
        on_db!(&db, |pool| sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await
            .map(|_| ()))?;
    }
    // In-process: the domain's booking rate at 10 concurrent patients.
    let in_process_slots: Vec<Uuid> = free.split_off(free.len().saturating_sub(3000));
    let in_process = domain_bookings(&db, &patients, in_process_slots, 10, window).await?;
    println!(
        "in-process: {:.0} bookings/s through the domain (hold + confirm, 10 at once)\n",
        in_process
    );
    db.close().await;
    drop(state);

    let mut server = Server::start(&env, port)?;
    let base = format!("127.0.0.1:{port}");
    wait_ready(&base).await?;
    let tokens = sign_in(&base, &patients).await?;
    let today = Utc::now().date_naive();
    let range = format!("from={today}&to={}", today + Days::new(14));
    let doctor_paths: Arc<Vec<String>> = Arc::new(
        doctor_ids
            .iter()
            .map(|d| format!("/api/v1/doctors/{d}/slots?{range}"))
            .collect(),
    );
    let specialty_path = format!("/api/v1/specialties/{specialty}/slots?{range}");

    let mut rows: Vec<[String; 5]> = Vec::new();
    // Slot listing, against a plain endpoint answering the same bytes.
    let sample = get(&base, &doctor_paths[0], None).await?;
    let body_file = dir.path().join("listing.json");
    std::fs::write(&body_file, &sample)?;
    let plain_port = free_port()?;
    let mut plain = PlainServer::start(&body_file, plain_port)?;
    let plain_base = format!("127.0.0.1:{plain_port}");
    wait_ready(&plain_base).await?;
    for connections in CONNECTIONS {
        let paths = doctor_paths.clone();
        let cpu = server.cpu();
        let perf = server.profile(&format!("doctor-slots-{connections}"));
        let service = load(&base, connections, window, move |i| {
            Step::Get(paths[i % paths.len()].clone())
        })
        .await?;
        drop(perf);
        let cpu_ms = server.cpu_since(cpu) / service.ok.max(1) as f64;
        let paths = doctor_paths.clone();
        let bare = load(&plain_base, connections, window, move |i| {
            Step::Get(paths[i % paths.len()].clone())
        })
        .await?;
        rows.push([
            format!("doctor's slots, 14 days, {connections} connections"),
            service.summary(),
            format!("{:.0} req/s (plain axum, same bytes)", bare.rate()),
            format!("{:.0} %", 100.0 * service.rate() / bare.rate()),
            format!("{cpu_ms:.2} ms"),
        ]);
    }
    plain.stop();
    for connections in CONNECTIONS {
        let path = specialty_path.clone();
        let cpu = server.cpu();
        let perf = server.profile(&format!("specialty-slots-{connections}"));
        let service = load(&base, connections, window, move |_| Step::Get(path.clone())).await?;
        drop(perf);
        let cpu_ms = server.cpu_since(cpu) / service.ok.max(1) as f64;
        rows.push([
            format!("specialty's slots, {connections} connections"),
            service.summary(),
            String::new(),
            String::new(),
            format!("{cpu_ms:.2} ms"),
        ]);
    }

    // Bookings: hold then confirm, every one a different free slot.
    let free = Arc::new(free);
    let next = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(tokens);
    for connections in CONNECTIONS {
        let (free, next, tokens) = (free.clone(), next.clone(), tokens.clone());
        let cpu = server.cpu();
        let perf = server.profile(&format!("bookings-{connections}"));
        let service = load(&base, connections, window, move |client| {
            let slot = free[next.fetch_add(1, Ordering::Relaxed) % free.len()];
            Step::Book {
                slot,
                token: tokens[client % tokens.len()].clone(),
            }
        })
        .await?;
        drop(perf);
        let cpu_ms = server.cpu_since(cpu) / service.ok.max(1) as f64;
        rows.push([
            format!("bookings (hold + confirm), {connections} connections"),
            service.summary(),
            format!("{in_process:.0} bookings/s in-process"),
            format!("{:.0} %", 100.0 * service.rate() / in_process),
            format!("{cpu_ms:.2} ms"),
        ]);
    }

    // Chat: 1,000 sessions started, then one turn each, 100 at a time.
    let rss_before = server.rss_mb();
    let sessions = Arc::new(std::sync::Mutex::new(Vec::with_capacity(CHAT_SESSIONS)));
    let cpu = server.cpu();
    let perf = server.profile("chat-start");
    let started = {
        let sessions = sessions.clone();
        load_n(&base, CHAT_AT_ONCE, CHAT_SESSIONS, move |_| {
            Step::Start(sessions.clone())
        })
        .await?
    };
    drop(perf);
    let start_cpu = server.cpu_since(cpu) / started.ok.max(1) as f64;
    let sessions: Arc<Vec<(String, String)>> = Arc::new(
        sessions
            .lock()
            .map_err(|_| "a client panicked")?
            .drain(..)
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = server.cpu();
    let perf = server.profile("chat-turn");
    let turns = {
        let sessions = sessions.clone();
        load_n(&base, CHAT_AT_ONCE, sessions.len(), move |_| {
            let (id, secret) =
                sessions[next.fetch_add(1, Ordering::Relaxed) % sessions.len()].clone();
            Step::Turn { id, secret }
        })
        .await?
    };
    drop(perf);
    let turn_cpu = server.cpu_since(cpu) / turns.ok.max(1) as f64;
    rows.push([
        format!("chat: {CHAT_SESSIONS} sessions started, {CHAT_AT_ONCE} at once"),
        started.summary(),
        String::new(),
        String::new(),
        format!("{start_cpu:.2} ms"),
    ]);
    rows.push([
        format!("chat: one turn in each (offline assistant), {CHAT_AT_ONCE} at once"),
        turns.summary(),
        format!(
            "server RSS {rss_before:.0} MB before, {:.0} MB after ({:.0} MB of it file pages)",
            server.rss_mb(),
            server.mapped_file_mb()
        ),
        String::new(),
        format!("{turn_cpu:.2} ms"),
    ]);
    server.stop();

    println!(
        "| figure | over HTTP (ok/s, p50, p99) | same run, in-process or plain | ratio | server CPU per op |"
    );
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    Ok(())
}

fn env_or<T: FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The service's configuration: everything in `dir`, a fresh PostgreSQL database when
/// `BENCH_DATABASE_URL` is set.
async fn environment(dir: &tempfile::TempDir, port: u16) -> AnyResult<Vec<(&'static str, String)>> {
    let data = dir.path().display().to_string();
    let database = match std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(admin_url) => {
            let options = sqlx::postgres::PgConnectOptions::from_str(&admin_url)?;
            let admin = Db::connect_postgres(options, 1).await?;
            for sql in [
                "DROP DATABASE IF EXISTS clinic_bench WITH (FORCE)",
                "CREATE DATABASE clinic_bench",
            ] {
                on_db!(&admin, |pool| sqlx::query(sql)
                    .execute(pool)
                    .await
                    .map(|_| ()))?;
            }
            admin.close().await;
            match admin_url.rsplit_once('/') {
                Some((server, _)) => format!("{server}/clinic_bench"),
                None => return Err("BENCH_DATABASE_URL has no database name".into()),
            }
        }
        None => format!("sqlite://{data}/bench.db"),
    };
    Ok(vec![
        ("DATABASE_URL", database),
        ("CLINIC_DATA_DIR", data.clone()),
        ("SESSIONS_DIR", format!("{data}/sessions")),
        ("LOG_DIR", format!("{data}/logs")),
        ("CLINIC_ADDR", format!("127.0.0.1:{port}")),
        ("AUTH_RATE_LIMIT_BURST", "100000".into()),
        ("AUTH_RATE_LIMIT_REPLENISH_MS", "1".into()),
        (
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        ),
        ("LOG_FORMAT", "json".into()),
    ])
}

fn free_port() -> AnyResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn seed_patients(state: &AppState) -> AnyResult<Vec<Uuid>> {
    let hash = state.identity.passwords().hash(PASSWORD).await?;
    let now = Utc::now();
    let mut ids = Vec::with_capacity(PATIENTS);
    let mut tx = state.db.begin().await?;
    for i in 0..PATIENTS {
        let email = format!("patient{i}@bench.example.org");
        let id = people::insert(
            &mut tx,
            NewUser {
                email: &email,
                display_name: &format!("Bench Patient {i}"),
                password_hash: Some(&hash),
                verified: true,
                language: Default::default(),
            },
            now,
        )
        .await?;
        people::insert_grant(&mut tx, id, Grant::global(Role::Patient), now).await?;
        ids.push(id);
    }
    tx.commit().await?;
    Ok(ids)
}

/// The specialty with the most doctors.
async fn busiest_specialty(db: &Db) -> AnyResult<String> {
    const SQL: &str = "SELECT sp.slug FROM specialties sp JOIN doctor_specialties ds ON ds.specialty_id = sp.id \
        GROUP BY sp.slug ORDER BY COUNT(*) DESC, sp.slug LIMIT 1";
    let (slug,): (String,) = on_db!(db, |pool| sqlx::query_as(SQL).fetch_one(pool).await)?;
    Ok(slug)
}

/// Free slots 2 to 60 days out, shuffled so that consecutive bookings hit different doctors.
async fn free_slots(db: &Db) -> AnyResult<Vec<Uuid>> {
    const SQL: &str = "SELECT id FROM slots WHERE status = 'open' AND starts_at >= $1 AND starts_at < $2 LIMIT 200000";
    let now = Utc::now();
    let rows: Vec<(Uuid,)> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(now + chrono::Duration::days(2))
        .bind(now + chrono::Duration::days(60))
        .fetch_all(pool)
        .await)?;
    let mut ids: Vec<Uuid> = rows.into_iter().map(|(id,)| id).collect();
    ids.sort_by_key(|id| id.as_u128().wrapping_mul(0x9e37_79b9_7f4a_7c15));
    Ok(ids)
}

async fn count(db: &Db, sql: &'static str) -> AnyResult<i64> {
    let (n,): (i64,) = on_db!(db, |pool| sqlx::query_as(sql).fetch_one(pool).await)?;
    Ok(n)
}

/// Bookings per second through `appointments::hold` and `confirm`, `at_once` patients at a time.
async fn domain_bookings(
    db: &Db,
    patients: &[Uuid],
    slots: Vec<Uuid>,
    at_once: usize,
    window: Duration,
) -> AnyResult<f64> {
    let slots = Arc::new(slots);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, patient) in patients.iter().take(at_once).enumerate() {
        let (db, slots, next) = (db.clone(), slots.clone(), next.clone());
        let actor = Actor::User(Principal {
            user_id: *patient,
            session_id: Uuid::now_v7(),
            email: format!("patient{client}@bench.example.org"),
            grants: vec![Grant::global(Role::Patient)],
        });
        tasks.push(tokio::spawn(async move {
            let mut booked = 0usize;
            while started.elapsed() < window {
                let Some(slot) = slots.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                appointments::hold(&db, &actor, *slot, 5).await?;
                appointments::confirm(&db, &actor, *slot, "bench").await?;
                booked += 1;
            }
            Ok::<_, clinic::error::Error>(booked)
        }));
    }
    let mut booked = 0;
    for task in tasks {
        booked += task.await??;
    }
    Ok(booked as f64 / started.elapsed().as_secs_f64())
}

/// One unit of work of a client.
enum Step {
    Get(String),
    /// Hold the slot, then confirm it.
    Book {
        slot: Uuid,
        token: String,
    },
    /// Start a conversation; its id and secret go to the list.
    Start(Arc<std::sync::Mutex<Vec<(String, String)>>>),
    /// Send one message to a conversation.
    Turn {
        id: String,
        secret: String,
    },
}

#[derive(Default)]
struct Outcome {
    ok: usize,
    failed: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let mut v = self.latencies.clone();
        v.sort_unstable();
        v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0
    }

    fn summary(&self) -> String {
        let failed = if self.failed > 0 {
            format!(", {} failed", self.failed)
        } else {
            String::new()
        };
        format!(
            "{:.0}/s, p50 {:.2} ms, p99 {:.2} ms{failed}",
            self.rate(),
            self.percentile(0.5),
            self.percentile(0.99)
        )
    }
}

/// `connections` clients, each doing `step(client)` over and over for `window`.
async fn load<F>(base: &str, connections: usize, window: Duration, step: F) -> AnyResult<Outcome>
where
    F: Fn(usize) -> Step + Send + Sync + 'static,
{
    run_clients(base, connections, Limit::For(window), step).await
}

/// `connections` clients doing `total` steps between them.
async fn load_n<F>(base: &str, connections: usize, total: usize, step: F) -> AnyResult<Outcome>
where
    F: Fn(usize) -> Step + Send + Sync + 'static,
{
    run_clients(base, connections, Limit::Total(total), step).await
}

#[derive(Clone, Copy)]
enum Limit {
    For(Duration),
    Total(usize),
}

async fn run_clients<F>(base: &str, connections: usize, limit: Limit, step: F) -> AnyResult<Outcome>
where
    F: Fn(usize) -> Step + Send + Sync + 'static,
{
    let step = Arc::new(step);
    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..connections {
        let (base, step, issued) = (base.to_owned(), step.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            let mut conn = Connection::open(&base).await?;
            loop {
                match limit {
                    Limit::For(w) if started.elapsed() >= w => break,
                    Limit::Total(n) if issued.fetch_add(1, Ordering::Relaxed) >= n => break,
                    _ => {}
                }
                let t = Instant::now();
                match conn.perform(&base, step(client)).await? {
                    true => {
                        out.ok += 1;
                        out.latencies.push(t.elapsed());
                    }
                    false => out.failed += 1,
                }
            }
            Ok::<_, String>(out)
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        let out = task.await?.map_err(|e| format!("a client failed: {e}"))?;
        total.ok += out.ok;
        total.failed += out.failed;
        total.latencies.extend(out.latencies);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// A keep-alive HTTP/1.1 connection, opened again if the server closes it.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    async fn open(base: &str) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(base)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Self { sender })
    }

    async fn send(
        &mut self,
        base: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        secret: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes), String> {
        if self.sender.ready().await.is_err() {
            *self = Self::open(base).await?;
        }
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", base);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        if let Some(s) = secret {
            request = request.header("x-chat-secret", s);
        }
        let body = match body {
            Some(b) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(b.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| e.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    }

    /// Does one step; `false` when the service refused it.
    async fn perform(&mut self, base: &str, step: Step) -> Result<bool, String> {
        match step {
            Step::Get(path) => {
                let (status, _) = self
                    .send(base, Method::GET, &path, None, None, None)
                    .await?;
                Ok(status == StatusCode::OK)
            }
            Step::Book { slot, token } => {
                let hold = format!("/api/v1/slots/{slot}/hold");
                let (status, _) = self
                    .send(base, Method::POST, &hold, Some(&token), None, None)
                    .await?;
                if status != StatusCode::CREATED {
                    return Ok(false);
                }
                let confirm = format!("/api/v1/slots/{slot}/confirm");
                let body = json!({"reason": "bench"});
                let (status, _) = self
                    .send(base, Method::POST, &confirm, Some(&token), None, Some(body))
                    .await?;
                Ok(status == StatusCode::CREATED)
            }
            Step::Start(sessions) => {
                let start = json!({"consent": true, "time_zone": "Europe/Lisbon"});
                let (status, bytes) = self
                    .send(
                        base,
                        Method::POST,
                        "/api/v1/chat/sessions",
                        None,
                        None,
                        Some(start),
                    )
                    .await?;
                if status != StatusCode::CREATED {
                    return Ok(false);
                }
                let reply: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                let (Some(id), Some(secret)) = (
                    reply["session_id"].as_str(),
                    reply["session_secret"].as_str(),
                ) else {
                    return Err(format!("no session in {reply}"));
                };
                sessions
                    .lock()
                    .map_err(|_| "a client panicked".to_owned())?
                    .push((id.to_owned(), secret.to_owned()));
                Ok(true)
            }
            Step::Turn { id, secret } => {
                let path = format!("/api/v1/chat/sessions/{id}/messages");
                let text = json!({"text": "My knee hurts when I climb stairs, I'd like an appointment this week"});
                let (status, _) = self
                    .send(base, Method::POST, &path, None, Some(&secret), Some(text))
                    .await?;
                Ok(status == StatusCode::OK)
            }
        }
    }
}

async fn get(base: &str, path: &str, token: Option<&str>) -> AnyResult<Bytes> {
    let mut conn = Connection::open(base).await?;
    let (status, bytes) = conn
        .send(base, Method::GET, path, token, None, None)
        .await?;
    if status != StatusCode::OK {
        return Err(format!("GET {path}: {status}").into());
    }
    Ok(bytes)
}

async fn wait_ready(base: &str) -> AnyResult<()> {
    for _ in 0..200 {
        if get(base, "/healthz", None).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("nothing answers on {base}").into())
}

async fn sign_in(base: &str, patients: &[Uuid]) -> AnyResult<Vec<String>> {
    let mut conn = Connection::open(base).await?;
    let mut tokens = Vec::with_capacity(patients.len());
    for i in 0..patients.len() {
        let body = json!({"email": format!("patient{i}@bench.example.org"), "password": PASSWORD});
        let (status, bytes) = conn
            .send(
                base,
                Method::POST,
                "/api/v1/auth/login",
                None,
                None,
                Some(body),
            )
            .await?;
        let answer: Value = serde_json::from_slice(&bytes)?;
        match answer["access_token"].as_str() {
            Some(t) if status == StatusCode::OK => tokens.push(t.to_owned()),
            _ => return Err(format!("signing in: {status} {answer}").into()),
        }
    }
    Ok(tokens)
}

/// The service, `clinic serve`, as its own process.
struct Server {
    child: Child,
    ticks_per_second: f64,
}

impl Server {
    fn start(env: &[(&'static str, String)], port: u16) -> AnyResult<Self> {
        let child = Command::new(env!("CARGO_BIN_EXE_clinic"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self {
            child,
            ticks_per_second: clock_ticks(),
        })
    }

    /// CPU seconds the process has used so far (user + system).
    fn cpu(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) / self.ticks_per_second
    }

    /// Milliseconds of CPU used since `before`.
    fn cpu_since(&self, before: f64) -> f64 {
        (self.cpu() - before) * 1000.0
    }

    /// With `BENCH_PERF=<dir>`, `perf record` samples the service (with call graphs) until
    /// the returned guard is dropped, into `<dir>/<name>.data`.
    fn profile(&self, name: &str) -> Option<Profiler> {
        let dir = std::env::var("BENCH_PERF").ok()?;
        let child = Command::new("perf")
            .args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-o"])
            .arg(format!("{dir}/{name}.data"))
            .args(["-p", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        std::thread::sleep(Duration::from_millis(300));
        Some(Profiler(child))
    }

    fn rss_mb(&self) -> f64 {
        self.status_mb("VmRSS:")
    }

    /// The part of the resident memory that is mapped files (the binary, libraries):
    /// pages of the operating system's file cache, shared, not the service's own.
    fn mapped_file_mb(&self) -> f64 {
        self.status_mb("RssFile:")
    }

    fn status_mb(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running `perf record`, stopped (SIGINT, so it writes its file) when dropped.
struct Profiler(Child);

impl Drop for Profiler {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// This bench again, as the plain endpoint's process.
struct PlainServer(Child);

impl PlainServer {
    fn start(body: &std::path::Path, port: u16) -> AnyResult<Self> {
        Ok(Self(
            Command::new(std::env::current_exe()?)
                .env(PLAIN_ROLE, body)
                .env("BENCH_PLAIN_PORT", port.to_string())
                .stdout(Stdio::null())
                .spawn()?,
        ))
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for PlainServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Answers every GET with the bytes in `body_file`, as JSON: what axum alone costs.
fn plain_server(body_file: &str) -> AnyResult<()> {
    let body = Bytes::from(std::fs::read(body_file)?);
    let port: u16 = env_or("BENCH_PLAIN_PORT", 0);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let app = axum::Router::new().fallback(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            });
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            axum::serve(listener, app).await?;
            Ok(())
        })
}
