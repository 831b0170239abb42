//! Weekly schedules in the clinic's local time, date overrides and time off, expanded
//! into bookable intervals with the IANA time-zone database: a 09:00 slot stays 09:00
//! local across daylight-saving changes.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::validate::Checks;

/// One weekday's working hours, e.g. Monday 09:00–17:00 with lunch 12:00–13:00.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeeklyRule {
    /// `mon`, `tue`, `wed`, `thu`, `fri`, `sat` or `sun`.
    #[schema(schema_with = crate::domain::validate::schema::weekday)]
    pub weekday: String,
    /// Local start, `HH:MM`.
    #[schema(schema_with = crate::domain::validate::schema::hhmm)]
    pub start: String,
    /// Local end, `HH:MM` (after the start; no overnight shifts).
    #[schema(schema_with = crate::domain::validate::schema::hhmm)]
    pub end: String,
    /// Breaks inside the hours, as `["12:00", "13:00"]` pairs.
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::breaks)]
    pub breaks: Vec<[String; 2]>,
}

/// A doctor's schedule: the rules and how they are cut into slots.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleForm {
    pub rules: Vec<WeeklyRule>,
    /// Length of one appointment, 5 to 480 minutes.
    #[schema(minimum = 5, maximum = 480)]
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    pub slot_minutes: i64,
    /// Gap after each appointment, 0 to 240 minutes.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 240)]
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    pub buffer_minutes: i64,
    /// How long before its start a slot can still be booked (default 60 minutes).
    #[serde(default = "default_notice")]
    #[schema(minimum = 0, maximum = 43200)]
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    pub min_notice_minutes: i64,
    /// How many days ahead patients can book (default 60).
    #[serde(default = "default_horizon")]
    #[schema(minimum = 1, maximum = 366)]
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    pub horizon_days: i64,
}

fn default_notice() -> i64 {
    60
}

fn default_horizon() -> i64 {
    60
}

/// A local date with different hours (`start`/`end`), or closed (both absent).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateOverride {
    pub date: NaiveDate,
    #[schema(schema_with = crate::domain::validate::schema::hhmm, nullable)]
    pub start: Option<String>,
    #[schema(schema_with = crate::domain::validate::schema::hhmm, nullable)]
    pub end: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::short_note)]
    pub reason: String,
}

/// A checked rule, in times.
#[derive(Clone, Debug)]
pub struct DayHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub breaks: Vec<(NaiveTime, NaiveTime)>,
}

/// A checked schedule ready to expand.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub weekly: HashMap<Weekday, Vec<DayHours>>,
    pub slot: Duration,
    pub buffer: Duration,
    pub min_notice: Duration,
    pub horizon_days: i64,
}

/// One bookable interval: its instants and where it falls in local time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub local_date: NaiveDate,
    pub local_minute: i64,
}

pub fn parse_weekday(s: &str) -> Option<Weekday> {
    match s.trim().to_lowercase().get(..3)? {
        "mon" => Some(Weekday::Mon),
        "tue" => Some(Weekday::Tue),
        "wed" => Some(Weekday::Wed),
        "thu" => Some(Weekday::Thu),
        "fri" => Some(Weekday::Fri),
        "sat" => Some(Weekday::Sat),
        "sun" => Some(Weekday::Sun),
        _ => None,
    }
}

pub fn parse_time(checks: &mut Checks, field: &str, s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").unwrap_or_else(|_| {
        checks.fail(field, format!("{s:?} is not a time like 09:30"));
        NaiveTime::MIN
    })
}

impl ScheduleForm {
    /// Checks every rule, reporting all problems at once.
    pub fn check(&self) -> crate::error::Result<Schedule> {
        let mut checks = Checks::new();
        if !(5..=480).contains(&self.slot_minutes) {
            checks.fail("slot_minutes", "must be between 5 and 480");
        }
        if !(0..=240).contains(&self.buffer_minutes) {
            checks.fail("buffer_minutes", "must be between 0 and 240");
        }
        if !(0..=43_200).contains(&self.min_notice_minutes) {
            checks.fail(
                "min_notice_minutes",
                "must be between 0 and 43200 (30 days)",
            );
        }
        if !(1..=366).contains(&self.horizon_days) {
            checks.fail("horizon_days", "must be between 1 and 366");
        }
        if self.rules.len() > 50 {
            checks.fail("rules", "at most 50 rules");
        }
        let mut weekly: HashMap<Weekday, Vec<DayHours>> = HashMap::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let field = format!("rules[{i}]");
            let Some(day) = parse_weekday(&rule.weekday) else {
                checks.fail(
                    &format!("{field}.weekday"),
                    "must be mon, tue, wed, thu, fri, sat or sun",
                );
                continue;
            };
            let start = parse_time(&mut checks, &format!("{field}.start"), &rule.start);
            let end = parse_time(&mut checks, &format!("{field}.end"), &rule.end);
            if end <= start {
                checks.fail(&format!("{field}.end"), "must be after the start");
            }
            let mut breaks = Vec::new();
            for (j, [b_start, b_end]) in rule.breaks.iter().enumerate() {
                let bs = parse_time(&mut checks, &format!("{field}.breaks[{j}]"), b_start);
                let be = parse_time(&mut checks, &format!("{field}.breaks[{j}]"), b_end);
                if be <= bs || bs < start || be > end {
                    checks.fail(
                        &format!("{field}.breaks[{j}]"),
                        "must be a span inside the hours",
                    );
                }
                breaks.push((bs, be));
            }
            breaks.sort();
            let hours = weekly.entry(day).or_default();
            if hours.iter().any(|h| start < h.end && h.start < end) {
                checks.fail(&field, "overlaps another rule on the same day");
            }
            hours.push(DayHours { start, end, breaks });
        }
        checks.finish()?;
        Ok(Schedule {
            weekly,
            slot: Duration::minutes(self.slot_minutes),
            buffer: Duration::minutes(self.buffer_minutes),
            min_notice: Duration::minutes(self.min_notice_minutes),
            horizon_days: self.horizon_days,
        })
    }
}

impl DateOverride {
    /// `None` hours means closed that day.
    pub fn hours(&self, checks: &mut Checks) -> Option<DayHours> {
        match (&self.start, &self.end) {
            (Some(s), Some(e)) => {
                let start = parse_time(checks, "start", s);
                let end = parse_time(checks, "end", e);
                if end <= start {
                    checks.fail("end", "must be after the start");
                }
                Some(DayHours {
                    start,
                    end,
                    breaks: Vec::new(),
                })
            }
            (None, None) => None,
            _ => {
                checks.fail(
                    "end",
                    "give both start and end, or neither for a closed day",
                );
                None
            }
        }
    }
}

impl Schedule {
    /// The intervals of the local dates `[from, to)`. `overrides` replace a date's weekly
    /// hours (`None`: closed); intervals touching `time_off` are left out. A local time
    /// that does not exist (the hour skipped in spring) yields no slot; one that occurs
    /// twice (autumn) takes its first occurrence.
    pub fn expand(
        &self,
        tz: Tz,
        from: NaiveDate,
        to: NaiveDate,
        overrides: &HashMap<NaiveDate, Option<DayHours>>,
        time_off: &[(DateTime<Utc>, DateTime<Utc>)],
    ) -> Vec<Interval> {
        let mut out = Vec::new();
        for date in from.iter_days().take_while(|d| *d < to) {
            let day_hours: Vec<&DayHours> = match overrides.get(&date) {
                Some(Some(hours)) => vec![hours],
                Some(None) => Vec::new(),
                None => self
                    .weekly
                    .get(&date.weekday())
                    .map(|v| v.iter().collect())
                    .unwrap_or_default(),
            };
            for hours in day_hours {
                for (start, end) in windows(hours) {
                    self.cut(tz, date, start, end, time_off, &mut out);
                }
            }
        }
        out.sort_by_key(|i| i.starts_at);
        out.dedup_by_key(|i| i.starts_at);
        out
    }

    fn cut(
        &self,
        tz: Tz,
        date: NaiveDate,
        start: NaiveTime,
        end: NaiveTime,
        time_off: &[(DateTime<Utc>, DateTime<Utc>)],
        out: &mut Vec<Interval>,
    ) {
        let mut t = date.and_time(start);
        let end = date.and_time(end);
        while t + self.slot <= end {
            if let Some(local) = tz.from_local_datetime(&t).earliest() {
                let starts_at = local.with_timezone(&Utc);
                let ends_at = starts_at + self.slot;
                if !time_off.iter().any(|(a, b)| starts_at < *b && *a < ends_at) {
                    let minute = i64::from(
                        t.time().signed_duration_since(NaiveTime::MIN).num_minutes() as i32,
                    );
                    out.push(Interval {
                        starts_at,
                        ends_at,
                        local_date: date,
                        local_minute: minute,
                    });
                }
            }
            t += self.slot + self.buffer;
        }
    }
}

/// The working spans of a day: its hours minus its breaks.
fn windows(hours: &DayHours) -> Vec<(NaiveTime, NaiveTime)> {
    let mut spans = Vec::new();
    let mut cursor = hours.start;
    for (bs, be) in &hours.breaks {
        if *bs > cursor {
            spans.push((cursor, *bs));
        }
        cursor = cursor.max(*be);
    }
    if hours.end > cursor {
        spans.push((cursor, hours.end));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(rules: &[(&str, &str, &str)], slot: i64) -> Schedule {
        ScheduleForm {
            rules: rules
                .iter()
                .map(|(d, s, e)| WeeklyRule {
                    weekday: (*d).into(),
                    start: (*s).into(),
                    end: (*e).into(),
                    breaks: vec![],
                })
                .collect(),
            slot_minutes: slot,
            buffer_minutes: 0,
            min_notice_minutes: 0,
            horizon_days: 60,
        }
        .check()
        .unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn starts(schedule: &Schedule, tz: Tz, day: &str) -> Vec<DateTime<Utc>> {
        let d = date(day);
        schedule
            .expand(tz, d, d.succ_opt().unwrap(), &HashMap::new(), &[])
            .into_iter()
            .map(|i| i.starts_at)
            .collect()
    }

    #[test]
    fn nine_oclock_stays_nine_oclock_across_european_changes() {
        let s = form(&[("sun", "09:00", "10:00"), ("sat", "09:00", "10:00")], 60);
        let lisbon = chrono_tz::Europe::Lisbon;
        // Spring forward in the EU: Sunday 29 March 2026, 01:00 UTC.
        assert_eq!(
            starts(&s, lisbon, "2026-03-28"),
            [utc("2026-03-28T09:00:00Z")]
        );
        assert_eq!(
            starts(&s, lisbon, "2026-03-29"),
            [utc("2026-03-29T08:00:00Z")]
        );
        // Fall back: Sunday 25 October 2026.
        assert_eq!(
            starts(&s, lisbon, "2026-10-24"),
            [utc("2026-10-24T08:00:00Z")]
        );
        assert_eq!(
            starts(&s, lisbon, "2026-10-25"),
            [utc("2026-10-25T09:00:00Z")]
        );
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(
            starts(&s, berlin, "2026-03-29"),
            [utc("2026-03-29T07:00:00Z")]
        );
        assert_eq!(
            starts(&s, berlin, "2026-10-25"),
            [utc("2026-10-25T08:00:00Z")]
        );
    }

    #[test]
    fn the_skipped_hour_has_no_slots_and_the_repeated_hour_is_used_once() {
        let s = form(&[("sun", "01:00", "04:00")], 30);
        let ny = chrono_tz::America::New_York;
        // 8 March 2026: 02:00 jumps to 03:00, so 02:00 and 02:30 do not exist.
        let spring: Vec<String> = starts(&s, ny, "2026-03-08")
            .iter()
            .map(|t| t.with_timezone(&ny).format("%H:%M").to_string())
            .collect();
        assert_eq!(spring, ["01:00", "01:30", "03:00", "03:30"]);
        // 1 November 2026: 01:00–02:00 happens twice; each slot is offered once (EDT).
        let fall = starts(&s, ny, "2026-11-01");
        assert_eq!(fall.len(), 6);
        assert_eq!(fall[0], utc("2026-11-01T05:00:00Z"));
        assert_eq!(fall[1], utc("2026-11-01T05:30:00Z"));
        assert_eq!(fall[2], utc("2026-11-01T07:00:00Z"), "02:00 EST");
        let mut sorted = fall.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), fall.len());
    }

    #[test]
    fn breaks_buffers_overrides_and_time_off_shape_the_day() {
        let s = ScheduleForm {
            rules: vec![WeeklyRule {
                weekday: "mon".into(),
                start: "09:00".into(),
                end: "12:00".into(),
                breaks: vec![["10:00".into(), "10:30".into()]],
            }],
            slot_minutes: 30,
            buffer_minutes: 10,
            min_notice_minutes: 0,
            horizon_days: 30,
        }
        .check()
        .unwrap();
        let utc_tz = chrono_tz::UTC;
        let monday = date("2026-11-23");
        let minutes = |v: Vec<Interval>| v.into_iter().map(|i| i.local_minute).collect::<Vec<_>>();
        // 09:00 (09:40 would end after the break) | break | 10:30, 11:10 (11:50 would end after 12:00)
        assert_eq!(
            minutes(s.expand(
                utc_tz,
                monday,
                monday.succ_opt().unwrap(),
                &HashMap::new(),
                &[]
            )),
            [540, 630, 670]
        );
        let closed = HashMap::from([(monday, None)]);
        assert!(
            s.expand(utc_tz, monday, monday.succ_opt().unwrap(), &closed, &[])
                .is_empty()
        );
        let off = [(utc("2026-11-23T09:30:00Z"), utc("2026-11-23T10:45:00Z"))];
        assert_eq!(
            minutes(s.expand(
                utc_tz,
                monday,
                monday.succ_opt().unwrap(),
                &HashMap::new(),
                &off
            )),
            [540, 670]
        );
        // Tuesday has no rule.
        assert!(
            s.expand(
                utc_tz,
                date("2026-11-24"),
                date("2026-11-25"),
                &HashMap::new(),
                &[]
            )
            .is_empty()
        );
    }

    #[test]
    fn bad_rules_are_all_reported() {
        let err = ScheduleForm {
            rules: vec![
                WeeklyRule {
                    weekday: "funday".into(),
                    start: "09:00".into(),
                    end: "10:00".into(),
                    breaks: vec![],
                },
                WeeklyRule {
                    weekday: "mon".into(),
                    start: "10:00".into(),
                    end: "09:00".into(),
                    breaks: vec![],
                },
                WeeklyRule {
                    weekday: "tue".into(),
                    start: "9am".into(),
                    end: "10:00".into(),
                    breaks: vec![],
                },
            ],
            slot_minutes: 1,
            buffer_minutes: 0,
            min_notice_minutes: 0,
            horizon_days: 30,
        }
        .check()
        .unwrap_err();
        let crate::error::Error::Client { fields, .. } = err else {
            panic!()
        };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "slot_minutes",
                "rules[0].weekday",
                "rules[1].end",
                "rules[2].start"
            ]
        );
    }
}
