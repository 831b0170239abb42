//! Background jobs of one process: lapsed holds go back to the pool (and lapsed waitlist
//! offers pass to the next patient), appointment reminders are queued when due, missed
//! plan check-ins extend their plans, every doctor's slots are extended to the booking
//! horizon, old failed sign-ins are forgotten and records past retention purged. All are
//! safe to run on several replicas at once (each step is a conditional write).
//! Notifications have their own dispatcher ([`crate::notify::dispatch`]).
//!
//! A job is a type ([`Job`]); one loop runs them all when due and logs what they did.

mod all;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::db::Batch;
use crate::db::Db;
use crate::error::Result;
pub use all::{
    AppointmentReminders, ExpireOffers, ExtendSlots, ForgetLoginFailures, PharmacyAlerts,
    PurgeExpiredRecords, ReleaseHolds, SweepMissedCheckIns,
};

pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<Batch>> + Send + 'a>>;

/// Periodic work: what it is called in the logs, how often it runs, and one run.
pub trait Job: Send + Sync {
    fn name(&self) -> &'static str;
    fn every(&self) -> Duration;
    /// One run at `now`: rows done and rows that failed (a failure is logged where it
    /// happened and never stops the rest).
    fn run<'a>(&'a self, db: &'a Db, now: DateTime<Utc>) -> JobFuture<'a>;
}

/// Every job, in the order they run when due together (offers pass on before holds
/// lapse, so a released slot can go to the next patient in line).
pub fn all(files: std::sync::Arc<dyn crate::storage::FileStore>) -> Vec<Box<dyn Job>> {
    vec![
        Box::new(ExpireOffers),
        Box::new(ReleaseHolds),
        Box::new(SweepMissedCheckIns),
        Box::new(AppointmentReminders),
        Box::new(ExtendSlots),
        Box::new(PharmacyAlerts),
        Box::new(ForgetLoginFailures),
        Box::new(PurgeExpiredRecords { files }),
    ]
}

/// Runs one job once and logs its outcome (nothing when it had nothing to do).
pub async fn run(job: &dyn Job, db: &Db, now: DateTime<Utc>) -> Result<Batch> {
    let outcome = job.run(db, now).await;
    match &outcome {
        Ok(Batch { done: 0, failed: 0 }) => {}
        Ok(Batch { done, failed: 0 }) => {
            tracing::info!(target: "jobs", job = job.name(), done, "job done")
        }
        Ok(Batch { done, failed }) => {
            tracing::warn!(target: "jobs", job = job.name(), done, failed, "job done with failures")
        }
        Err(e) => tracing::warn!(target: "jobs", job = job.name(), error = %e, "job failed"),
    }
    outcome
}

/// Starts the jobs: each runs at once, then every `every()`; they stop when the returned
/// handle is aborted.
pub fn spawn(db: Db, files: std::sync::Arc<dyn crate::storage::FileStore>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let jobs = all(files);
        let mut due: Vec<Instant> = jobs.iter().map(|_| Instant::now()).collect();
        loop {
            let now = Instant::now();
            for (job, next) in jobs.iter().zip(due.iter_mut()) {
                if *next <= now {
                    let _ = run(job.as_ref(), &db, Utc::now()).await;
                    *next = now + job.every();
                }
            }
            let Some(earliest) = due.iter().min().copied() else {
                return;
            };
            tokio::time::sleep_until(earliest).await;
        }
    })
}
