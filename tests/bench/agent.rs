//! Agent benchmark: per-turn orchestration overhead with a model that answers at once
//! (the offline assistant), and tokens sent per completed booking conversation against a
//! baseline that sends the whole history and every tool schema on every call.
//!
//! `cargo bench --bench agent` (SQLite in a temporary folder, demo data).

use std::time::{Duration, Instant};

use clinic::app::AppState;
use clinic::config::Config;
use clinic::domain::actor::Actor;
use clinic::llm::offline::Offline;
use clinic::llm::{Message, Provider};
use serde_json::Value;

const CONVERSATIONS: usize = 40;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> AnyResult<()> {
    clinic::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let data = dir.path().to_string_lossy().into_owned();
    let env = [
        ("CLINIC_DATA_DIR", data.clone()),
        ("SESSIONS_DIR", format!("{data}/sessions")),
        ("LOG_DIR", format!("{data}/logs")),
        ("ARGON2_MEMORY_KIB", "64".into()),
        ("ARGON2_ITERATIONS", "1".into()),
    ];
    let config = Config::from_lookup(|k| {
        env.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.clone())
    })?;
    let state = AppState::build(config).await?;
    clinic::demo::load(&state).await?;
    let agent = &state.agent;

    // What the model itself costs: the offline assistant deciding one step.
    let probe = [Message::user(
        "I have an itchy rash, can I see someone next week?",
    )];
    let t = Instant::now();
    for _ in 0..10_000 {
        Offline.complete(&probe, &[]).await?;
    }
    let model_each = t.elapsed() / 10_000;

    let mut turns: Vec<Duration> = Vec::new();
    let mut model_calls_per_turn: Vec<f64> = Vec::new();
    let mut sessions = Vec::new();
    for i in 0..CONVERSATIONS {
        let email = format!("bench{i}@patients.example.org");
        let actor = patient(&state, &email).await?;
        let start = agent
            .start(&actor, true, Some("Europe/Lisbon"), None)
            .await?;
        sessions.push(start.session_id.to_string());
        let secret = start.session_secret.clone().unwrap_or_default();
        let id = clinic::agent::ChatKey {
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
        model_calls_per_turn.push(3.0);
        let pick = listed
            .actions
            .iter()
            .find(|a| a.kind == "pick_slot")
            .and_then(|a| a.message.clone())
            .ok_or("no slot offered")?;
        let t = Instant::now();
        agent.message(&actor, id, &pick).await?;
        turns.push(t.elapsed());
        model_calls_per_turn.push(2.0);
        let t = Instant::now();
        let done = agent.message(&actor, id, "yes please").await?;
        turns.push(t.elapsed());
        model_calls_per_turn.push(0.0);
        if done.committed.is_none() {
            return Err("a conversation did not book".into());
        }
    }

    // Tokens per conversation, from the orchestration log.
    let log = std::fs::read_to_string(dir.path().join("logs/orchestration.log"))?;
    let mut sent = vec![0u64; sessions.len()];
    let mut baseline = vec![0u64; sessions.len()];
    for line in log.lines() {
        let event: Value = serde_json::from_str(line)?;
        let Some(i) = event["session"]
            .as_str()
            .and_then(|s| sessions.iter().position(|x| x == s))
        else {
            continue;
        };
        match event["event"].as_str() {
            Some("pipeline_start") => {
                baseline[i] += event["tokens_full_history"].as_u64().unwrap_or(0)
            }
            Some("attempt") if event["outcome"] == "success" => {
                sent[i] += event["tokens_in"].as_u64().unwrap_or(0)
            }
            _ => {}
        }
    }

    turns.sort_unstable();
    let p = |q: f64| turns[((turns.len() - 1) as f64 * q).round() as usize];
    let model_calls: f64 =
        model_calls_per_turn.iter().sum::<f64>() / model_calls_per_turn.len() as f64;
    println!(
        "{CONVERSATIONS} booking conversations (symptom → free times → pick → yes), offline model, SQLite:"
    );
    println!(
        "  per turn: p50 {:.2} ms, p99 {:.2} ms (model time per call {:.1} µs, {:.1} calls per turn on average: overhead ≈ the turn)",
        p(0.50).as_secs_f64() * 1000.0,
        p(0.99).as_secs_f64() * 1000.0,
        model_each.as_secs_f64() * 1e6,
        model_calls
    );
    let med = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (s, b) = (med(&mut sent), med(&mut baseline));
    println!(
        "  tokens sent per booking conversation: median {s} (compacted history) vs {b} (whole history and all tool schemas every call): {:.0} %",
        100.0 * s as f64 / b as f64
    );
    state.db.close().await;
    Ok(())
}

async fn patient(state: &AppState, email: &str) -> AnyResult<Actor> {
    use clinic::domain::actor::{Grant, Principal, Role};
    use clinic::domain::people::{self, NewUser};
    let now = chrono::Utc::now();
    let mut tx = state.db.begin().await?;
    let user_id = people::insert(
        &mut tx,
        NewUser {
            email,
            display_name: "Bench Patient",
            password_hash: None,
            verified: true,
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
