//! Agent benchmark, on SQLite in a temporary folder with the demo data:
//! 1. per-turn time of the service itself with the offline assistant (no model), and
//!    where it goes: sealing and writing the session, the audit row per tool call, the
//!    rules' reading, the policy's tool calls;
//! 2. tokens sent per completed booking conversation when a model reads each message (an
//!    in-process server speaking the OpenAI wire format answers at once), against a
//!    baseline that sends the whole history and every tool schema on every call.
//!
//! `cargo bench --bench agent`

use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use clinic::agent::ChatKey;
use clinic::agent::session::{Session, SessionStore};
use clinic::config::Config;
use clinic::domain::actor::Actor;
use clinic::domain::audit::{self, Entry};
use clinic::llm::Message;
use clinic::llm::orchestrate::count_messages;
use clinic::state::AppState;
use serde_json::{Value, json};

const CONVERSATIONS: usize = 40;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> AnyResult<()> {
    clinic::install_crypto_provider();
    let (offline_dir, offline) = app(&[]).await?;
    println!(
        "{CONVERSATIONS} booking conversations (symptom → free times → pick → yes), SQLite, demo data:"
    );
    let turns = conversations(&offline, "offline").await?;
    let p = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "  offline assistant, per turn: p50 {:.2} ms, p99 {:.2} ms (the whole turn is the service: no model call)",
        ms(p(&turns, 0.5)),
        ms(p(&turns, 0.99))
    );
    turn_parts(&offline_dir)?;
    parts(&offline, &offline_dir).await?;
    offline.db.close().await;

    // A model server that answers at once, with the rules' own reading of each message.
    let router = axum::Router::new().route("/v1/chat/completions", post(understand));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let (model_dir, with_model) = app(&[
        ("OPENAI_BASE_URL", base),
        ("LLM_MODEL", "bench-reader".into()),
    ])
    .await?;
    let turns = conversations(&with_model, "model").await?;
    println!(
        "  with a model that answers at once over HTTP, per turn: p50 {:.2} ms, p99 {:.2} ms",
        ms(p(&turns, 0.5)),
        ms(p(&turns, 0.99))
    );
    turn_parts(&model_dir)?;
    tokens(&model_dir)?;
    with_model.db.close().await;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn app(extra: &[(&str, String)]) -> AnyResult<(tempfile::TempDir, AppState)> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().to_string_lossy().into_owned();
    let mut env = vec![
        ("CLINIC_DATA_DIR", data.clone()),
        ("SESSIONS_DIR", format!("{data}/sessions")),
        ("LOG_DIR", format!("{data}/logs")),
        ("ARGON2_MEMORY_KIB", "64".into()),
        ("ARGON2_ITERATIONS", "1".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    let config = Config::from_pairs(&env)?;
    let state = AppState::build(config).await?;
    clinic::demo::load(&state).await?;
    Ok((dir, state))
}

/// Runs the booking conversations; the time of each turn, sorted.
async fn conversations(state: &AppState, tag: &str) -> AnyResult<Vec<Duration>> {
    let agent = &state.agent;
    let mut turns = Vec::new();
    for i in 0..CONVERSATIONS {
        let actor = patient(state, &format!("bench-{tag}-{i}@patients.example.org")).await?;
        let start = agent
            .start(&actor, true, Some("Europe/Lisbon"), None, None)
            .await?;
        let secret = start.session_secret.clone().unwrap_or_default();
        let id = ChatKey {
            id: start.session_id,
            secret: &secret,
        };
        let t = Instant::now();
        let listed = agent
            .message(
                &actor,
                id,
                "I have an itchy rash, can I see someone next week?",
            )
            .await?;
        turns.push(t.elapsed());
        let pick = listed
            .actions
            .iter()
            .find(|a| a.kind == "pick_slot")
            .and_then(|a| a.message.clone())
            .ok_or("no slot offered")?;
        let t = Instant::now();
        agent.message(&actor, id, &pick).await?;
        turns.push(t.elapsed());
        let t = Instant::now();
        let done = agent.message(&actor, id, "yes please").await?;
        turns.push(t.elapsed());
        if done.committed.is_none() {
            return Err("a conversation did not book".into());
        }
    }
    turns.sort_unstable();
    Ok(turns)
}

/// The agent's own record of each turn (`turn` events in the orchestration log): the time
/// in the model, in the domain (tools, the booking), and the service's own rest.
fn turn_parts(dir: &tempfile::TempDir) -> AnyResult<()> {
    let log = std::fs::read_to_string(dir.path().join("logs/orchestration.log"))?;
    let mut own = Vec::new();
    let mut domain = Vec::new();
    let mut model = Vec::new();
    for line in log.lines() {
        let event: Value = serde_json::from_str(line)?;
        if event["event"] == "turn" {
            own.push(event["service_ms"].as_f64().unwrap_or(0.0));
            domain.push(event["domain_ms"].as_f64().unwrap_or(0.0));
            model.push(event["model_ms"].as_f64().unwrap_or(0.0));
        }
    }
    let q = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "    of which the service itself (the turn less the model and the domain): p50 {:.3} ms, p99 {:.3} ms over {} turns; domain p50 {:.3} ms; model p50 {:.3} ms",
        q(&mut own, 0.5),
        q(&mut own, 0.99),
        own.len(),
        q(&mut domain, 0.5),
        q(&mut model, 0.5)
    );
    Ok(())
}

/// Where a turn's time goes, each part measured alone (medians of 200).
async fn parts(state: &AppState, dir: &tempfile::TempDir) -> AnyResult<()> {
    const N: usize = 200;
    let median = |mut v: Vec<Duration>| {
        v.sort_unstable();
        ms(v[v.len() / 2])
    };
    let sessions = SessionStore::Files {
        dir: dir.path().join("bench-sessions"),
        sealer: clinic::crypto::seal::Sealer::new(&[7u8; 32], &[]),
    };
    let mut s = Session::new(None, chrono_tz::Europe::Lisbon.into(), chrono::Utc::now());
    for i in 0..6 {
        s.messages.push(Message::user(format!(
            "message {i}: I have an itchy rash, can I see someone next week?"
        )));
        s.messages.push(Message::assistant(
            "These times are free (Dermatology):\n1. Tuesday 8 December at 14:00, Dr. Ana Costa, Lisbon Central Clinic (60.00 EUR)\n",
        ));
    }
    let mut save = Vec::new();
    for _ in 0..N {
        let t = Instant::now();
        sessions.save(&s).await?;
        save.push(t.elapsed());
    }
    let actor = Actor::Anonymous;
    let mut audits = Vec::new();
    for _ in 0..N {
        let t = Instant::now();
        let mut tx = state.db.begin().await?;
        audit::record(
            &mut tx,
            &actor,
            Entry {
                action: "agent.tool_call",
                subject: format!("chat:{}", s.id),
                clinic_id: None,
                details: json!({"tool": "list_available_slots", "outcome": "ok"}),
            },
        )
        .await?;
        tx.commit().await?;
        audits.push(t.elapsed());
    }
    let mut reading = Vec::new();
    for _ in 0..N {
        let t = Instant::now();
        std::hint::black_box(clinic::agent::understand::rules(
            "tooth ache realy bad, dentist tomorow morning?",
            5,
        ));
        reading.push(t.elapsed());
    }
    let specs: Vec<clinic::llm::ToolSpec> = clinic::tools::Registry::new()
        .all()
        .map(|t| clinic::llm::ToolSpec {
            name: t.name().into(),
            description: t.description().into(),
            parameters: t.parameters(),
        })
        .collect();
    let mut counting = Vec::new();
    for _ in 0..N {
        let t = Instant::now();
        std::hint::black_box(count_messages(&s.messages, &specs));
        counting.push(t.elapsed());
    }
    println!(
        "  parts, median each: session sealed and written {:.3} ms; one audit row (its own transaction) {:.3} ms; rules' reading {:.3} ms; counting a 12-message history's tokens {:.3} ms (only done when a model is called)",
        median(save),
        median(audits),
        median(reading),
        median(counting)
    );
    Ok(())
}

/// The reader: the rules' reading of the quoted message, as a model would answer.
async fn understand(Json(request): Json<Value>) -> Json<Value> {
    let user = request["messages"][1]["content"].as_str().unwrap_or("");
    let message = user
        .rsplit_once("Message: ")
        .map(|(_, m)| m.trim_matches('"'))
        .unwrap_or(user);
    let reading = clinic::agent::understand::rules(message, 5);
    let content = serde_json::to_string(&reading).unwrap_or_default();
    Json(
        json!({"id": "bench", "object": "chat.completion", "created": 0, "model": "bench-reader",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}),
    )
}

/// Tokens per conversation and per call, from the orchestration log.
fn tokens(dir: &tempfile::TempDir) -> AnyResult<()> {
    let log = std::fs::read_to_string(dir.path().join("logs/orchestration.log"))?;
    let mut sent: std::collections::HashMap<String, u64> = Default::default();
    let mut baseline: std::collections::HashMap<String, u64> = Default::default();
    let mut per_call = Vec::new();
    for line in log.lines() {
        let event: Value = serde_json::from_str(line)?;
        let Some(session) = event["session"].as_str().map(str::to_owned) else {
            continue;
        };
        match event["event"].as_str() {
            Some("pipeline_start") => {
                *baseline.entry(session).or_default() +=
                    event["tokens_full_history"].as_u64().unwrap_or(0)
            }
            Some("attempt") if event["outcome"] == "success" => {
                let n = event["tokens_in"].as_u64().unwrap_or(0);
                per_call.push(n);
                *sent.entry(session).or_default() += n;
            }
            _ => {}
        }
    }
    let med = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let (s, b) = (
        med(sent.values().copied().collect()),
        med(baseline.values().copied().collect()),
    );
    println!(
        "  prompt tokens per model call: median {} over {} calls",
        med(per_call.clone()),
        per_call.len()
    );
    println!(
        "  tokens sent per booking conversation: median {s} (the message and the fixed reading prompt) vs {b} (whole history and all tool schemas every call): {:.0} %",
        100.0 * s as f64 / b.max(1) as f64
    );
    Ok(())
}

async fn patient(state: &AppState, email: &str) -> AnyResult<Actor> {
    use clinic::domain::actor::{Grant, Principal, Role};
    use clinic::domain::identity::people::{self, NewUser};
    let now = chrono::Utc::now();
    let mut tx = state.db.begin().await?;
    let user_id = people::insert(
        &mut tx,
        NewUser {
            email,
            display_name: "Bench Patient",
            password_hash: None,
            verified: true,
            language: Default::default(),
        },
        now,
    )
    .await?;
    people::insert_grant(&mut tx, user_id, Grant::global(Role::Patient), now).await?;
    tx.commit().await?;
    Ok(Actor::User(Principal {
        user_id,
        session_id: uuid::Uuid::now_v7(),
        email: email.to_owned(),
        grants: vec![Grant::global(Role::Patient)],
    }))
}
