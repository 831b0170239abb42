//! Turning what a patient said about a day ("tomorrow", "next Tuesday", "this week",
//! "2026-12-01") into local dates, in the user's zone: the model passes the words on,
//! it never does date arithmetic.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;

use crate::tools::ToolError;

/// The furthest ahead a patient can ask about: no clinic opens its diary further.
pub const MAX_DAYS_AHEAD: i64 = 730;

/// Local dates `[from, to)` that a phrase means, seen from `now` in `tz`.
pub fn resolve(
    phrase: &str,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<(NaiveDate, NaiveDate), ToolError> {
    let local_now = now.with_timezone(&tz);
    let today = local_now.date_naive();
    let text = phrase.trim().to_lowercase();
    let text = text
        .trim_start_matches("on ")
        .trim_start_matches("for ")
        .trim();
    let day = |d: NaiveDate| Ok((d, d + Days::new(1)));
    match text {
        "" => return Ok((today, today + Days::new(14))),
        "this week" => {
            let left = 7 - u64::from(today.weekday().num_days_from_monday());
            return Ok((today, today + Days::new(left)));
        }
        "next week" => {
            let monday = today + Days::new(7 - u64::from(today.weekday().num_days_from_monday()));
            return Ok((monday, monday + Days::new(7)));
        }
        "soon" | "asap" | "as soon as possible" | "any day" | "anytime" => {
            return Ok((today, today + Days::new(14)));
        }
        _ => {}
    }
    let not_past = |date: NaiveDate| {
        if date < today {
            Err(ToolError::invalid(format!(
                "{phrase:?} is in the past (today is {today}); ask which day they mean"
            )))
        } else if (date - today).num_days() > MAX_DAYS_AHEAD {
            Err(ToolError::invalid(format!(
                "{phrase:?} is more than {MAX_DAYS_AHEAD} days ahead (today is {today}); ask which day they mean"
            )))
        } else {
            day(date)
        }
    };
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return not_past(date);
    }
    // A bare weekday means the next one to come (today's, if it is that day).
    let bare = text.trim_start_matches("this ");
    if let Ok(weekday) = bare.parse::<Weekday>() {
        let ahead =
            (7 + weekday.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
        return day(today + Days::new(u64::from(ahead)));
    }
    match interim::parse_date_string(text, local_now, interim::Dialect::Uk) {
        Ok(parsed) => not_past(parsed.date_naive()),
        Err(_) => Err(ToolError::invalid(format!(
            "could not read {phrase:?} as a day; pass words like \"tomorrow\", \"next tuesday\" or a date as YYYY-MM-DD"
        ))),
    }
}

/// The words in a message that name a day, for the offline assistant to pass on.
pub fn find_phrase(message: &str) -> Option<String> {
    let text = message.to_lowercase();
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .collect();
    const WEEKDAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        match *w {
            "today" | "tomorrow" => return Some((*w).to_owned()),
            "next" | "this" if WEEKDAYS.contains(&next) || next == "week" => {
                return Some(format!("{w} {next}"));
            }
            _ if WEEKDAYS.contains(w) => return Some((*w).to_owned()),
            _ if NaiveDate::parse_from_str(w, "%Y-%m-%d").is_ok() => return Some((*w).to_owned()),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn phrases_resolve_in_the_users_zone() {
        // Tuesday 24 November 2026, 23:30 in UTC, already Wednesday in Berlin.
        let now = at("2026-11-24T23:30:00Z");
        let utc = chrono_tz::UTC;
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(resolve("tomorrow", now, utc).unwrap().0, d("2026-11-25"));
        assert_eq!(resolve("tomorrow", now, berlin).unwrap().0, d("2026-11-26"));
        assert_eq!(resolve("today", now, berlin).unwrap().0, d("2026-11-25"));
        assert_eq!(
            resolve("friday", now, utc).unwrap(),
            (d("2026-11-27"), d("2026-11-28"))
        );
        assert_eq!(resolve("tuesday", now, utc).unwrap().0, d("2026-11-24"));
        assert_eq!(
            resolve("next tuesday", now, utc).unwrap().0.weekday(),
            Weekday::Tue
        );
        assert!(resolve("next tuesday", now, utc).unwrap().0 > d("2026-11-24"));
        assert_eq!(resolve("2026-12-03", now, utc).unwrap().0, d("2026-12-03"));
        assert_eq!(
            resolve("this week", now, utc).unwrap(),
            (d("2026-11-24"), d("2026-11-30"))
        );
        assert_eq!(
            resolve("next week", now, utc).unwrap(),
            (d("2026-11-30"), d("2026-12-07"))
        );
        assert!(resolve("2020-01-01", now, utc).is_err());
        assert!(resolve("when pigs fly", now, utc).is_err());
    }

    #[test]
    fn day_words_are_found_in_messages() {
        assert_eq!(
            find_phrase("Can I see someone next Tuesday afternoon?").as_deref(),
            Some("next tuesday")
        );
        assert_eq!(
            find_phrase("Book me a cardiologist tomorrow morning").as_deref(),
            Some("tomorrow")
        );
        assert_eq!(find_phrase("on Friday morning").as_deref(), Some("friday"));
        assert_eq!(
            find_phrase("an appointment this week").as_deref(),
            Some("this week")
        );
        assert_eq!(find_phrase("I have a rash"), None);
    }
}
