//! Background jobs of one process: lapsed holds go back to the pool (and lapsed waitlist
//! offers pass to the next patient), appointment reminders are queued when due, missed
//! plan check-ins extend their plans, and every
//! doctor's slots are extended to the booking horizon each day. All are safe to run on
//! several replicas at once (each step is a conditional write). Notifications have their
//! own dispatcher ([`crate::notify::dispatch`]).

use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;

use crate::db::Db;
use crate::domain::{reminders, slots, waitlist};

const HOLD_SWEEP_EVERY: Duration = Duration::from_secs(30);
const EXTEND_EVERY: Duration = Duration::from_secs(6 * 3600);

/// Starts the jobs; they stop when the returned handle is aborted.
pub fn spawn(db: Db) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(HOLD_SWEEP_EVERY);
        let mut extend = tokio::time::interval(EXTEND_EVERY);
        loop {
            tokio::select! {
                _ = sweep.tick() => {
                    expire_offers(&db).await;
                    release_expired_holds(&db).await;
                    sweep_missed(&db).await;
                    appointment_reminders(&db).await;
                }
                _ = extend.tick() => {
                    extend_slots(&db).await;
                    forget_login_failures(&db).await;
                    purge_expired_records(&db).await;
                }
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

pub async fn expire_offers(db: &Db) {
    match waitlist::expire_offers(db, Utc::now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(target: "jobs", expired = n, "lapsed waitlist offers passed on"),
        Err(e) => tracing::warn!(target: "jobs", error = %e, "passing on lapsed offers failed"),
    }
}

pub async fn appointment_reminders(db: &Db) {
    match crate::domain::appointments::send_due_reminders(db, Utc::now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(target: "jobs", queued = n, "appointment reminders queued"),
        Err(e) => {
            tracing::warn!(target: "jobs", error = %e, "queueing appointment reminders failed")
        }
    }
}

pub async fn sweep_missed(db: &Db) {
    match reminders::sweep_missed(db, Utc::now()).await {
        Ok((0, _)) => {}
        Ok((missed, extended)) => {
            tracing::info!(target: "jobs", missed, extended, "missed check-ins recorded")
        }
        Err(e) => tracing::warn!(target: "jobs", error = %e, "recording missed check-ins failed"),
    }
}

pub async fn forget_login_failures(db: &Db) {
    if let Err(e) = crate::domain::identity::forget_login_failures(db, Utc::now()).await {
        tracing::warn!(target: "jobs", error = %e, "forgetting old failed sign-ins failed");
    }
}

pub async fn purge_expired_records(db: &Db) {
    match crate::domain::erasure::purge_expired_records(db, Utc::now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(target: "jobs", accounts = n, "records past retention purged"),
        Err(e) => {
            tracing::warn!(target: "jobs", error = %e, "purging records past retention failed")
        }
    }
}
