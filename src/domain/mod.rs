//! The rules of the clinic, one module per aggregate, each owning its SQL. Every function
//! takes the caller's [`actor::Actor`] where a permission is involved.

pub mod actor;
pub mod appointments;
pub mod audit;
pub mod branding;
pub mod care_access;
pub mod care_plans;
pub mod clinics;
pub mod doctors;
pub mod erasure;
pub mod idempotency;
pub mod identity;
pub mod invitations;
pub mod notes;
pub mod orchestration;
pub mod people;
pub mod prices;
pub mod reminders;
pub mod reports;
pub mod schedules;
pub mod slots;
pub mod specialties;
pub mod staff;
pub mod validate;
pub mod waitlist;
