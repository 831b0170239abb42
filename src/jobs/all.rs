//! The jobs, one type each, over the domain's batch functions.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Job, JobFuture};
use crate::db::{Batch, Db};
use crate::domain::care::reminders;
use crate::domain::scheduling::{appointments, slots, waitlist};

const OFTEN: Duration = Duration::from_secs(30);
const DAILY_FOUR_TIMES: Duration = Duration::from_secs(6 * 3600);

/// Lapsed holds go back to the pool.
pub struct ReleaseHolds;

impl Job for ReleaseHolds {
    fn name(&self) -> &'static str {
        "release_holds"
    }
    fn every(&self) -> Duration {
        OFTEN
    }
    fn run<'a>(&'a self, db: &'a Db, now: DateTime<Utc>) -> JobFuture<'a> {
        Box::pin(async move {
            let done = slots::release_expired_holds(db, now).await?;
            Ok(Batch { done, failed: 0 })
        })
    }
}

/// Waitlist offers nobody took in time pass to the next patient.
pub struct ExpireOffers;

impl Job for ExpireOffers {
    fn name(&self) -> &'static str {
        "expire_offers"
    }
    fn every(&self) -> Duration {
        OFTEN
    }
    fn run<'a>(&'a self, db: &'a Db, now: DateTime<Utc>) -> JobFuture<'a> {
        Box::pin(waitlist::expire_offers(db, now))
    }
}

/// Care-plan check-ins past their grace are recorded as missed (and plans extended).
pub struct SweepMissedCheckIns;

impl Job for SweepMissedCheckIns {
    fn name(&self) -> &'static str {
        "sweep_missed_check_ins"
    }
    fn every(&self) -> Duration {
        OFTEN
    }
    fn run<'a>(&'a self, db: &'a Db, now: DateTime<Utc>) -> JobFuture<'a> {
        Box::pin(async move { Ok(reminders::sweep_missed(db, now).await?.0) })
    }
}

/// Appointment reminders are queued when due.
pub struct AppointmentReminders;

impl Job for AppointmentReminders {
    fn name(&self) -> &'static str {
        "appointment_reminders"
    }
    fn every(&self) -> Duration {
        OFTEN
    }
    fn run<'a>(&'a self, db: &'a Db, now: DateTime<Utc>) -> JobFuture<'a> {
        Box::pin(appointments::send_due_reminders(db, now))
    }
}

/// Every doctor's slots reach the booking horizon.
pub struct ExtendSlots;

impl Job for ExtendSlots {
    fn name(&self) -> &'static str {
        "extend_slots"
    }
    fn every(&self) -> Duration {
        DAILY_FOUR_TIMES
    }
    fn run<'a>(&'a self, db: &'a Db, now: DateTime<Utc>) -> JobFuture<'a> {
        Box::pin(slots::extend_all(db, now))
    }
}

/// Failed sign-ins older than the lockout window are forgotten.
pub struct ForgetLoginFailures;

impl Job for ForgetLoginFailures {
    fn name(&self) -> &'static str {
        "forget_login_failures"
    }
    fn every(&self) -> Duration {
        DAILY_FOUR_TIMES
    }
    fn run<'a>(&'a self, db: &'a Db, now: DateTime<Utc>) -> JobFuture<'a> {
        Box::pin(async move {
            let done = crate::domain::identity::forget_login_failures(db, now).await?;
            Ok(Batch { done, failed: 0 })
        })
    }
}

/// Erased accounts' records past the retention period are purged, and what doctors
/// removed from records that long ago, stored file bytes included.
pub struct PurgeExpiredRecords {
    pub files: std::sync::Arc<dyn crate::storage::FileStore>,
}

impl Job for PurgeExpiredRecords {
    fn name(&self) -> &'static str {
        "purge_expired_records"
    }
    fn every(&self) -> Duration {
        DAILY_FOUR_TIMES
    }
    fn run<'a>(&'a self, db: &'a Db, now: DateTime<Utc>) -> JobFuture<'a> {
        Box::pin(crate::domain::erasure::purge_expired_records(
            db,
            self.files.as_ref(),
            now,
        ))
    }
}

/// The clinics' pharmacists hear of low stock and expiring batches, once a day.
pub struct PharmacyAlerts;

impl Job for PharmacyAlerts {
    fn name(&self) -> &'static str {
        "pharmacy_alerts"
    }
    fn every(&self) -> Duration {
        DAILY_FOUR_TIMES
    }
    fn run<'a>(&'a self, db: &'a Db, now: DateTime<Utc>) -> JobFuture<'a> {
        Box::pin(crate::domain::pharmacy::alerts::notify_all(db, now))
    }
}
