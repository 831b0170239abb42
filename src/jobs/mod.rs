//! Background jobs of one process: lapsed holds go back to the pool, and every
//! doctor's slots are extended to the booking horizon each day. Both are safe to run
//! on several replicas at once (each step is a conditional write).

use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;

use crate::db::Db;
use crate::domain::slots;

const HOLD_SWEEP_EVERY: Duration = Duration::from_secs(30);
const EXTEND_EVERY: Duration = Duration::from_secs(6 * 3600);

/// Starts the jobs; they stop when the returned handle is aborted.
pub fn spawn(db: Db) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(HOLD_SWEEP_EVERY);
        let mut extend = tokio::time::interval(EXTEND_EVERY);
        loop {
            tokio::select! {
                _ = sweep.tick() => release_expired_holds(&db).await,
                _ = extend.tick() => extend_slots(&db).await,
            }
        }
    })
}

pub async fn release_expired_holds(db: &Db) {
    match slots::release_expired_holds(db, Utc::now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(target: "jobs", released = n, "lapsed holds released"),
        Err(e) => tracing::warn!(target: "jobs", error = %e, "releasing lapsed holds failed"),
    }
}

pub async fn extend_slots(db: &Db) {
    match slots::extend_all(db, Utc::now()).await {
        Ok((doctors, created)) => {
            tracing::info!(target: "jobs", doctors, created, "slots extended to the horizon")
        }
        Err(e) => tracing::warn!(target: "jobs", error = %e, "extending slots failed"),
    }
}
