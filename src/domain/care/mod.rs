//! Care: doctors' notes, the care plans and reminders drawn from them, and `access`, the one
//! place that decides who reads a patient's clinical data.

pub mod access;
pub mod care_plans;
pub mod notes;
pub mod reminders;
