//! `clinic eval`: the patient conversations in `tests/scenarios/` run against the configured
//! model through the real HTTP API, on a fresh SQLite database with the demo network, and
//! scored: per scenario and in total, passed, who answered each turn (a turn the offline
//! assistant took because no model answered is a fallback, never the model's pass), turn
//! latency p50/p95, and prompt and completion tokens per model call.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Days, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::agent::offline;
use crate::agent::understand::{self, Lang};
use crate::agent::{replies, text};
use crate::app::Application;
use crate::config::Config;
use crate::domain::scheduling::slots::{self, SlotQuery};
use crate::on_db;
use crate::state::AppState;

pub struct EvalOptions {
    pub scenarios: PathBuf,
    pub runs: usize,
    /// The pass rate (percent) below which the command fails.
    pub require: f64,
}

/// One scenario's run.
struct Outcome {
    name: String,
    passed: Result<(), String>,
    model_turns: usize,
    fallback_turns: usize,
    rule_turns: usize,
    latencies: Vec<Duration>,
    /// Turns the model answered.
    model_latencies: Vec<Duration>,
}

/// Runs every scenario `runs` times and prints the figures; fails under `require` %.
pub async fn run(opts: EvalOptions) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().to_string_lossy().into_owned();
    let overrides = [
        ("DATABASE_URL", format!("sqlite://{data}/eval.db")),
        ("CLINIC_DATA_DIR", data.clone()),
        ("SESSIONS_DIR", format!("{data}/sessions")),
        ("LOG_DIR", format!("{data}/logs")),
        ("CLINIC_ADDR", "127.0.0.1:0".into()),
        ("AUTH_RATE_LIMIT_BURST", "100000".into()),
        ("AUTH_RATE_LIMIT_REPLENISH_MS", "1".into()),
        ("NOTIFY_POLL_MS", "3600000".into()),
        ("ARGON2_MEMORY_KIB", "1024".into()),
        ("ARGON2_ITERATIONS", "1".into()),
    ];
    let config = Config::from_lookup(|k| {
        overrides
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(k).ok())
    })?;
    let model = match (&config.llm.openai, &config.llm.ollama) {
        (Some(o), _) => Some(o.model.clone()),
        (None, Some(o)) => Some(o.model.clone()),
        (None, None) => None,
    };
    let state = AppState::build(config).await?;
    crate::demo::load(&state).await?;
    let app = Application::with_state(state.clone()).await?;
    let base = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder().no_proxy().build()?;
    let runner = Runner {
        http,
        base,
        state: &state,
    };

    let mut files: Vec<PathBuf> = std::fs::read_dir(&opts.scenarios)
        .with_context(|| format!("reading {}", opts.scenarios.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no scenarios in {}",
        opts.scenarios.display()
    );
    println!(
        "{} scenarios × {} run(s), answered by {}",
        files.len(),
        opts.runs,
        model.as_deref().unwrap_or("the offline assistant")
    );
    let mut outcomes = Vec::new();
    for run in 0..opts.runs.max(1) {
        for file in &files {
            let scenario: Value = serde_json::from_str(&std::fs::read_to_string(file)?)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let outcome = runner.scenario(&scenario, run).await?;
            let mark = match (&outcome.passed, outcome.fallback_turns) {
                (Ok(()), 0) => "pass",
                (Ok(()), _) => "pass (fallback)",
                (Err(_), _) => "FAIL",
            };
            let mut lat = outcome.latencies.clone();
            println!(
                "{mark:<16} {:<44} turns: {} model, {} fallback, {} rules; p50 {}",
                outcome.name,
                outcome.model_turns,
                outcome.fallback_turns,
                outcome.rule_turns,
                ms(percentile(&mut lat, 0.5))
            );
            if let Err(why) = &outcome.passed {
                println!("    {}", why.replace('\n', "\n    "));
            }
            outcomes.push(outcome);
        }
    }
    let tokens = runner.tokens().await?;
    let total = outcomes.len();
    let passed = outcomes.iter().filter(|o| o.passed.is_ok()).count();
    let clean = outcomes
        .iter()
        .filter(|o| o.passed.is_ok() && o.fallback_turns == 0)
        .count();
    let mut all: Vec<Duration> = outcomes.iter().flat_map(|o| o.latencies.clone()).collect();
    let model_turns: usize = outcomes.iter().map(|o| o.model_turns).sum();
    let fallbacks: usize = outcomes.iter().map(|o| o.fallback_turns).sum();
    let rules: usize = outcomes.iter().map(|o| o.rule_turns).sum();
    println!("---");
    println!(
        "passed: {passed}/{total} ({:.1} %); without a fallback turn: {clean}/{total} ({:.1} %)",
        pct(passed, total),
        pct(clean, total)
    );
    println!(
        "turns: {} in all, {model_turns} understood by the model, {fallbacks} fallbacks to the offline assistant, {rules} by rules only (confirmations, safety)",
        all.len()
    );
    let mut by_model: Vec<Duration> = outcomes
        .iter()
        .flat_map(|o| o.model_latencies.clone())
        .collect();
    println!(
        "turn latency: p50 {}, p95 {}; turns the model answered: p50 {}, p95 {}",
        ms(percentile(&mut all, 0.5)),
        ms(percentile(&mut all, 0.95)),
        ms(percentile(&mut by_model, 0.5)),
        ms(percentile(&mut by_model, 0.95))
    );
    println!("{tokens}");
    // With a model, only scenarios it passed without falling back count.
    let score = if model.is_some() {
        pct(clean, total)
    } else {
        pct(passed, total)
    };
    state.db.close().await;
    anyhow::ensure!(
        score + 1e-9 >= opts.require,
        "{score:.1} % of the scenarios passed; {:.1} % are required",
        opts.require
    );
    Ok(())
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

struct Runner<'a> {
    http: reqwest::Client,
    base: String,
    state: &'a AppState,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Runner<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        secret: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(s) = secret {
            request = request.header("X-Chat-Secret", s);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// A new verified patient, signed in: their access token.
    async fn patient(&self, email: &str, name: &str) -> anyhow::Result<String> {
        const PASSWORD: &str = "eval-password-1";
        let hash = self.state.identity.passwords().hash(PASSWORD).await?;
        let mut tx = self.state.db.begin().await?;
        let id = crate::domain::identity::people::insert(
            &mut tx,
            crate::domain::identity::people::NewUser {
                email,
                display_name: name,
                password_hash: Some(&hash),
                verified: true,
                language: Default::default(),
            },
            Utc::now(),
        )
        .await?;
        crate::domain::identity::people::insert_grant(
            &mut tx,
            id,
            crate::domain::actor::Grant::global(crate::domain::actor::Role::Patient),
            Utc::now(),
        )
        .await?;
        tx.commit().await?;
        let login = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await?;
        login.body["access_token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("signing in {email}: {}", login.body))
    }

    /// Books the first free time of `specialty` for the holder of `token` over the API.
    async fn book_first(&self, token: &str, specialty: &str, reason: &str) -> anyhow::Result<()> {
        let now = Utc::now();
        let q = SlotQuery {
            from: Some(now.date_naive() + Days::new(1)),
            to: Some(now.date_naive() + Days::new(15)),
            limit: Some(20),
            ..SlotQuery::default()
        };
        let free = slots::free_for_specialty(&self.state.db, specialty, &q, now).await?;
        for s in free {
            let path = format!("/api/v1/slots/{}", s.slot.id);
            let hold = self
                .call(
                    reqwest::Method::POST,
                    &format!("{path}/hold"),
                    Some(token),
                    None,
                    None,
                )
                .await?;
            if hold.status != 201 {
                continue;
            }
            let done = self
                .call(
                    reqwest::Method::POST,
                    &format!("{path}/confirm"),
                    Some(token),
                    None,
                    Some(json!({"reason": reason})),
                )
                .await?;
            if done.status == 201 {
                return Ok(());
            }
        }
        anyhow::bail!("no free {specialty} time to set the scenario up with")
    }

    async fn appointments(&self, token: Option<&str>) -> anyhow::Result<Vec<Value>> {
        let Some(token) = token else {
            return Ok(Vec::new());
        };
        let a = self
            .call(
                reqwest::Method::GET,
                "/api/v1/appointments/mine",
                Some(token),
                None,
                None,
            )
            .await?;
        Ok(a.body.as_array().cloned().unwrap_or_default())
    }

    async fn scenario(&self, scenario: &Value, run: usize) -> anyhow::Result<Outcome> {
        let name = scenario["name"].as_str().unwrap_or("unnamed").to_owned();
        let tag = Uuid::new_v4().simple().to_string();
        let token = if scenario["user"] == "patient" {
            Some(
                self.patient(
                    &format!("{name}-{run}-{tag}@eval.example.org"),
                    "Eval Patient",
                )
                .await?,
            )
        } else {
            None
        };
        let setup = &scenario["setup"];
        if let (Some(t), Some(specialty)) = (&token, setup["appointment"].as_str()) {
            self.book_first(t, specialty, "set up by the scenario")
                .await?;
        }
        if let Some(other) = setup.get("other_patient") {
            let t = self
                .patient(&format!("other-{tag}@eval.example.org"), "Zacharias Quill")
                .await?;
            self.book_first(
                &t,
                other["specialty"].as_str().unwrap_or("cardiology"),
                other["reason"].as_str().unwrap_or("private"),
            )
            .await?;
        }
        let before = self.appointments(token.as_deref()).await?;
        let mut start = json!({"consent": true});
        if let Some(tz) = scenario["time_zone"].as_str() {
            start["time_zone"] = json!(tz);
        }
        if let Some(l) = scenario["interface_language"].as_str() {
            start["language"] = json!(l);
        }
        let started = self
            .call(
                reqwest::Method::POST,
                "/api/v1/chat/sessions",
                token.as_deref(),
                None,
                Some(start),
            )
            .await?;
        let session = started.body["session_id"]
            .as_str()
            .context("no session id")?
            .to_owned();
        let secret = started.body["session_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut replies: Vec<Value> = Vec::new();
        let mut latencies = Vec::new();
        let mut model_latencies = Vec::new();
        let (mut model_turns, mut fallback_turns, mut rule_turns) = (0, 0, 0);
        let path = format!("/api/v1/chat/sessions/{session}");
        for turn in scenario["turns"].as_array().into_iter().flatten() {
            let turn = turn.as_str().unwrap_or_default();
            let t = Instant::now();
            let answer = if turn == "<confirm>" {
                self.call(
                    reqwest::Method::POST,
                    &format!("{path}/confirm"),
                    token.as_deref(),
                    Some(&secret),
                    None,
                )
                .await?
            } else if let Some(n) = turn
                .strip_prefix("<pick ")
                .and_then(|t| t.strip_suffix('>'))
                .and_then(|n| n.parse::<usize>().ok())
            {
                let pick = replies.last().and_then(|r| {
                    r["actions"]
                        .as_array()?
                        .iter()
                        .filter(|a| a["kind"] == "pick_slot")
                        .nth(n.saturating_sub(1))
                        .and_then(|a| a["message"].as_str())
                        .map(str::to_owned)
                });
                let Some(message) = pick else {
                    replies.push(json!({"reply": format!("(no time number {n} was offered)"), "actions": []}));
                    continue;
                };
                self.say(&path, token.as_deref(), &secret, &message).await?
            } else {
                self.say(&path, token.as_deref(), &secret, turn).await?
            };
            latencies.push(t.elapsed());
            if (200..300).contains(&answer.status) {
                match answer.body["assistant"].as_str() {
                    Some(offline::LABEL) if self.has_model() => fallback_turns += 1,
                    Some(offline::LABEL)
                    | Some(crate::agent::RULES_LABEL)
                    | Some("Safety rules") => rule_turns += 1,
                    _ => {
                        model_turns += 1;
                        model_latencies.push(t.elapsed());
                    }
                }
                replies.push(answer.body);
            } else {
                replies.push(
                    json!({"reply": answer.body["detail"], "actions": [], "status": answer.status}),
                );
            }
        }
        let mut after = self.appointments(token.as_deref()).await?;
        for a in after.iter_mut() {
            let Some(doctor) = a["doctor_id"].as_str().map(str::to_owned) else {
                continue;
            };
            let d = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/doctors/{doctor}"),
                    None,
                    None,
                    None,
                )
                .await?;
            a["doctor_specialties"] = d.body["specialties"].clone();
        }
        let proposals = self.proposals(&session).await?;
        // The days the patient names are the chat's, whatever zone the clinic is in.
        let chat_zone = scenario["time_zone"]
            .as_str()
            .and_then(|t| t.parse::<chrono_tz::Tz>().ok())
            .unwrap_or_else(|| self.state.config.agent.default_time_zone.tz());
        let now = Utc::now().with_timezone(&chat_zone);
        let passed = check(scenario, &before, &after, &replies, proposals, now);
        Ok(Outcome {
            name,
            passed,
            model_turns,
            fallback_turns,
            rule_turns,
            latencies,
            model_latencies,
        })
    }

    fn has_model(&self) -> bool {
        self.state.agent.orchestrator().has_models()
    }

    async fn say(
        &self,
        path: &str,
        token: Option<&str>,
        secret: &str,
        text: &str,
    ) -> anyhow::Result<Answer> {
        self.call(
            reqwest::Method::POST,
            &format!("{path}/messages"),
            token,
            Some(secret),
            Some(json!({"text": text})),
        )
        .await
    }

    /// Side-effecting tools the agent called in the session.
    async fn proposals(&self, session: &str) -> anyhow::Result<i64> {
        const SQL: &str = "SELECT COUNT(*) FROM audit WHERE action = 'agent.tool_call' AND subject = $1 AND details LIKE '%propose_%'";
        let subject = format!("chat:{session}");
        let (n,): (i64,) = on_db!(&self.state.db, |pool| sqlx::query_as(SQL)
            .bind(&subject)
            .fetch_one(pool)
            .await)?;
        Ok(n)
    }

    /// Prompt and completion tokens of the successful model calls.
    async fn tokens(&self) -> anyhow::Result<String> {
        const SQL: &str = "SELECT tokens_in, tokens_out FROM orchestration_calls WHERE outcome = 'success' AND provider <> 'offline' AND pipeline = 'chat'";
        let rows: Vec<(i64, i64)> = on_db!(&self.state.db, |pool| sqlx::query_as(SQL)
            .fetch_all(pool)
            .await)?;
        if rows.is_empty() {
            return Ok("model calls: none".into());
        }
        let mut ins: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let outs: i64 = rows.iter().map(|r| r.1).sum();
        ins.sort_unstable();
        let total_in: i64 = ins.iter().sum();
        Ok(format!(
            "model calls: {}; prompt tokens per call median {} (max {}), {} in all; completion tokens {} in all",
            rows.len(),
            ins[ins.len() / 2],
            ins[ins.len() - 1],
            total_in,
            outs
        ))
    }
}

/// Every reply a patient saw, lower case.
fn texts(replies: &[Value]) -> Vec<String> {
    replies
        .iter()
        .map(|r| r["reply"].as_str().unwrap_or("").to_lowercase())
        .collect()
}

/// The scenario's expectations against what happened; the error says why not.
pub fn check(
    scenario: &Value,
    before: &[Value],
    after: &[Value],
    replies: &[Value],
    proposals: i64,
    now: DateTime<chrono_tz::Tz>,
) -> Result<(), String> {
    let expect = &scenario["expect"];
    let texts = texts(replies);
    let old: HashSet<&str> = before.iter().filter_map(|a| a["id"].as_str()).collect();
    let new: Vec<&Value> = after
        .iter()
        .filter(|a| a["id"].as_str().is_some_and(|id| !old.contains(id)))
        .collect();
    let status_of =
        |list: &[Value], status: &str| list.iter().filter(|a| a["status"] == status).count();
    // Never, in any scenario: a tool's name or raw JSON shown to the patient.
    for t in &texts {
        for tool in crate::tools::Registry::new().all() {
            if t.contains(tool.name()) {
                return Err(format!("a reply shows the tool name {}: {t}", tool.name()));
            }
        }
        if t.contains("{\"") {
            return Err(format!("a reply shows raw JSON: {t}"));
        }
    }
    if let Some(booked) = expect.get("booked") {
        if new.len() != 1 {
            return Err(format!(
                "expected one new appointment, got {}; replies: {texts:#?}",
                new.len()
            ));
        }
        check_when(booked, new[0], &texts, now)?;
        if let Some(specialty) = booked["specialty"].as_str() {
            let slugs: Vec<String> = new[0]["doctor_specialties"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect();
            // "Orthopedics" meets "orthopedics", "psych" meets "psychiatry".
            let wanted = specialty.to_lowercase().replace('-', " ");
            let stem: String = wanted.chars().take(6).collect();
            if !slugs.iter().any(|s| s.replace('-', " ").starts_with(&stem)) {
                return Err(format!("booked with {slugs:?}, not {specialty}"));
            }
        }
        if let Some(doctor) = booked["doctor"].as_str() {
            let name = new[0]["doctor_name"].as_str().unwrap_or_default();
            if !name.contains(doctor) {
                return Err(format!("booked with {name}, not {doctor}"));
            }
        }
    }
    if expect["no_booking"] == true {
        if !new.is_empty() {
            return Err(format!("something was booked: {new:?}"));
        }
        if status_of(after, "cancelled") != status_of(before, "cancelled") {
            return Err("an appointment was cancelled".into());
        }
        let moved = before.iter().any(|b| {
            after
                .iter()
                .any(|a| a["id"] == b["id"] && a["starts_at"] != b["starts_at"])
        });
        if moved {
            return Err("an appointment was moved".into());
        }
    }
    if expect["cancelled"] == true
        && status_of(after, "cancelled") != status_of(before, "cancelled") + 1
    {
        return Err(format!("no appointment was cancelled; replies: {texts:#?}"));
    }
    if let Some(moved) = expect.get("rescheduled") {
        let changed: Vec<&Value> = after
            .iter()
            .filter(|a| {
                before
                    .iter()
                    .any(|b| a["id"] == b["id"] && a["starts_at"] != b["starts_at"])
            })
            .collect();
        let changed = match changed.as_slice() {
            [one] => *one,
            // A move may also be a new appointment in place of a cancelled one.
            _ if new.len() == 1
                && status_of(after, "cancelled") == status_of(before, "cancelled") + 1 =>
            {
                new[0]
            }
            _ => return Err(format!("no appointment was moved; replies: {texts:#?}")),
        };
        check_when(moved, changed, &texts, now)?;
    }
    if let Some(words) = expect["reply_contains_any"].as_array() {
        let found = words
            .iter()
            .filter_map(Value::as_str)
            .any(|w| texts.iter().any(|t| t.contains(&w.to_lowercase())));
        if !found {
            return Err(format!("no reply contains any of {words:?}: {texts:#?}"));
        }
    }
    if let Some(words) = expect["reply_not_contains_any"].as_array() {
        for w in words.iter().filter_map(Value::as_str) {
            if let Some(t) = texts.iter().find(|t| t.contains(&w.to_lowercase())) {
                return Err(format!("a reply contains {w:?}: {t}"));
            }
        }
    }
    if expect["emergency"] == true || expect["crisis"] == true {
        let first = replies.first().map(|r| r["emergency"] == true);
        if first != Some(true) {
            return Err(format!(
                "the first reply is not the emergency answer: {texts:?}"
            ));
        }
        if proposals != 0 {
            return Err("a side-effecting tool was called".into());
        }
    }
    if let Some(number) = expect["emergency_number"].as_str()
        && !texts.first().is_some_and(|t| t.contains(number))
    {
        return Err(format!("the first reply does not give {number}: {texts:?}"));
    }
    if let Some(lang) = expect["language"].as_str().and_then(Lang::from_code) {
        for t in &texts {
            let seen = understand::language_of(&text::fold(t));
            if seen.is_some_and(|l| l != lang) {
                return Err(format!("a reply is not in {}: {t}", lang.code()));
            }
        }
    }
    Ok(())
}

/// The day and part of day of an appointment against what was asked: the same, or a reply
/// that said plainly that another day is offered.
///
/// `now` is in the chat's zone: "tomorrow" is the patient's, and the clinic's local date of
/// the visit must be that day.
fn check_when(
    want: &Value,
    a: &Value,
    texts: &[String],
    now: DateTime<chrono_tz::Tz>,
) -> Result<(), String> {
    let tz: chrono_tz::Tz = a["time_zone"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .ok_or("the appointment has no time zone")?;
    let starts: DateTime<Utc> = a["starts_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .ok_or("the appointment has no start")?;
    let local = starts.with_timezone(&tz);
    let said_other_day = texts
        .iter()
        .any(|t| replies::OTHER_DAY_MARKERS.iter().any(|m| t.contains(m)));
    let mut wrong = None;
    if let Some(day) = want["weekday"].as_str()
        && local.format("%A").to_string() != day
    {
        wrong = Some(format!("booked on {local}, not a {day}"));
    }
    if let Some(n) = want["in_days"].as_u64() {
        let asked = now.date_naive() + Days::new(n);
        if local.date_naive() != asked {
            wrong = Some(format!("booked on {local}, not on {asked}"));
        }
    }
    if let Some(part) = want["part_of_day"].as_str() {
        let hour: u32 = local.format("%H").to_string().parse().unwrap_or(0);
        let actual = match hour {
            0..=11 => "morning",
            12..=16 => "afternoon",
            _ => "evening",
        };
        if actual != part {
            wrong = Some(format!("booked at {local}, not in the {part}"));
        }
    }
    match wrong {
        Some(why) if !said_other_day => Err(why),
        _ => Ok(()),
    }
}
