//! Calendar attachments for appointment messages (RFC 5545/5546, via `icalendar`). One
//! visit keeps one UID; each newer message carries a higher SEQUENCE (the time it was
//! written), so a calendar replaces the event when the visit moves and removes it when the
//! visit is cancelled (`METHOD:CANCEL`, `STATUS:CANCELLED`).

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus};
use uuid::Uuid;

/// A visit's event as of `now`.
pub struct Visit<'a> {
    pub id: Uuid,
    pub summary: &'a str,
    pub location: &'a str,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

fn event(v: &Visit<'_>) -> Event {
    // Seconds since 2020: grows with every message about the visit, fits a u32 until 2156.
    let sequence = u32::try_from((v.now.timestamp() - 1_577_836_800).max(0)).unwrap_or(u32::MAX);
    Event::new()
        .uid(&format!("{}@clinic", v.id))
        .sequence(sequence)
        .summary(v.summary)
        .location(v.location)
        .starts(v.starts_at)
        .ends(v.ends_at)
        .done()
}

/// The visit booked or moved: one event; times in UTC, so every calendar shows them in its
/// own zone.
pub fn appointment(v: &Visit<'_>) -> String {
    let mut calendar = Calendar::new();
    calendar.append_property(("METHOD", "PUBLISH"));
    calendar.push(event(v)).done().to_string()
}

/// The visit cancelled: the same event, marked cancelled, for calendars to remove.
pub fn cancelled(v: &Visit<'_>) -> String {
    let mut event = event(v);
    event.status(EventStatus::Cancelled);
    let mut calendar = Calendar::new();
    calendar.append_property(("METHOD", "CANCEL"));
    calendar.push(event).done().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_replaces_the_booked_event() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let id = Uuid::now_v7();
        let visit = |now| Visit {
            id,
            summary: "Appointment with Dr. Ana Costa",
            location: "Lisbon Central Clinic",
            starts_at: at("2026-12-08T14:00:00Z"),
            ends_at: at("2026-12-08T14:30:00Z"),
            now,
        };
        let booked = appointment(&visit(at("2026-12-01T10:00:00Z")));
        let cancelled = cancelled(&visit(at("2026-12-02T10:00:00Z")));
        let seq = |ics: &str| -> u32 {
            ics.lines()
                .find_map(|l| l.strip_prefix("SEQUENCE:"))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        assert!(booked.contains("METHOD:PUBLISH"), "{booked}");
        assert!(cancelled.contains("METHOD:CANCEL"), "{cancelled}");
        assert!(cancelled.contains("STATUS:CANCELLED"), "{cancelled}");
        assert!(cancelled.contains(&format!("UID:{id}@clinic")));
        assert!(booked.contains(&format!("UID:{id}@clinic")));
        assert!(seq(&cancelled) > seq(&booked));
    }
}
