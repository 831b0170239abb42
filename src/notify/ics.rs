//! Calendar attachments for appointment messages (RFC 5545, via `icalendar`).

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike};
use uuid::Uuid;

/// One event; times in UTC, so every calendar shows them in its own zone.
pub fn appointment(
    id: Uuid,
    summary: &str,
    location: &str,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> String {
    let event = Event::new()
        .uid(&format!("{id}@clinic"))
        .summary(summary)
        .location(location)
        .starts(starts_at)
        .ends(ends_at)
        .done();
    Calendar::new().push(event).done().to_string()
}
