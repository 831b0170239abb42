//! The rules of the clinic, by area, each module owning its SQL. Every function takes the
//! caller's [`actor::Actor`] where a permission is involved.
//!
//! Areas build on the ones listed before them and never on those after: `identity` (who
//! someone is: sign-in, people, invitations), `clinics` (clinics, doctors, staff,
//! specialties, prices, branding, reports), `scheduling` (schedules, slots, appointments,
//! waitlist), `care` (notes, care plans, reminders, access to clinical data), and
//! `erasure`, which reaches into all of them. `actor`, `audit`, `validate`,
//! `idempotency`, `orchestration` and `outbox` sit below every area.

pub mod actor;
pub mod audit;
pub mod care;
pub mod clinics;
pub mod erasure;
pub mod idempotency;
pub mod identity;
pub mod orchestration;
pub mod outbox;
#[cfg(test)]
mod query_plans;
pub mod scheduling;
pub mod validate;
