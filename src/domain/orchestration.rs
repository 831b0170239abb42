//! Figures of the LLM calls for the admin console: per provider and per day, the
//! attempts, outcomes, latency percentiles, tokens and retries, from the records the
//! orchestrator writes for every attempt.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::error::Result;
use crate::on_db;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Default: seven days before `to`.
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub from: Option<DateTime<Utc>>,
    /// Default: now.
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Figures {
    pub attempts: u64,
    pub successes: u64,
    pub failures: u64,
    /// Attempts after the first of a call.
    pub retries: u64,
    pub latency_p50_ms: i64,
    pub latency_p95_ms: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// Failed attempts by error class (`timeout`, `rate_limited`, `server`, …).
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub total: Figures,
    pub by_provider: BTreeMap<String, Figures>,
    pub by_day: BTreeMap<NaiveDate, Figures>,
}

#[derive(sqlx::FromRow)]
struct Row {
    provider: String,
    attempt: i64,
    outcome: String,
    error_class: Option<String>,
    latency_ms: i64,
    tokens_in: i64,
    tokens_out: i64,
    at: DateTime<Utc>,
}

#[derive(Default)]
struct Tally {
    figures: Figures,
    latencies: Vec<i64>,
}

impl Tally {
    fn add(&mut self, r: &Row) {
        let f = &mut self.figures;
        f.attempts += 1;
        if r.attempt > 1 {
            f.retries += 1;
        }
        if r.outcome == "success" {
            f.successes += 1;
            self.latencies.push(r.latency_ms);
        } else {
            f.failures += 1;
            *f.errors
                .entry(r.error_class.clone().unwrap_or_else(|| "unknown".into()))
                .or_default() += 1;
        }
        f.tokens_in += r.tokens_in;
        f.tokens_out += r.tokens_out;
    }

    fn finish(mut self) -> Figures {
        self.latencies.sort_unstable();
        let at = |q: f64| {
            if self.latencies.is_empty() {
                0
            } else {
                self.latencies[((self.latencies.len() - 1) as f64 * q).round() as usize]
            }
        };
        self.figures.latency_p50_ms = at(0.50);
        self.figures.latency_p95_ms = at(0.95);
        self.figures
    }
}

/// The figures for a time range (system admins).
pub async fn stats(db: &Db, actor: &Actor, q: &StatsQuery) -> Result<Stats> {
    actor.require_system_admin()?;
    crate::domain::validate::query_instants([("from", q.from), ("to", q.to)])?;
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::days(7));
    const SQL: &str = "SELECT provider, attempt, outcome, error_class, latency_ms, tokens_in, tokens_out, at \
        FROM orchestration_calls WHERE at >= $1 AND at < $2 ORDER BY at LIMIT 200000";
    let rows: Vec<Row> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await)?;
    let mut total = Tally::default();
    let mut by_provider: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_day: BTreeMap<NaiveDate, Tally> = BTreeMap::new();
    for r in &rows {
        total.add(r);
        by_provider.entry(r.provider.clone()).or_default().add(r);
        by_day.entry(r.at.date_naive()).or_default().add(r);
    }
    Ok(Stats {
        from,
        to,
        total: total.finish(),
        by_provider: by_provider
            .into_iter()
            .map(|(k, t)| (k, t.finish()))
            .collect(),
        by_day: by_day.into_iter().map(|(k, t)| (k, t.finish())).collect(),
    })
}
