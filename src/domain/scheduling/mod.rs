//! Scheduling: weekly schedules expanded into slots, holds and bookings, the waitlist.
//! Built on the clinics area; the care area builds on it.

pub mod appointments;
pub mod schedules;
pub mod shifts;
pub mod slots;
pub mod sync;
pub mod waitlist;
