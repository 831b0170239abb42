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
    if let Some(days) = days_ahead(text) {
        return day(today + Days::new(days));
    }
    match text {
        "" => return Ok((today, today + Days::new(14))),
        "tonight" => return day(today),
        "weekend" | "this weekend" | "the weekend" | "next weekend" => {
            let ahead = (12 - today.weekday().num_days_from_monday()) % 7;
            let saturday = today + Days::new(u64::from(ahead));
            let saturday = if text == "next weekend" && ahead < 5 {
                saturday + Days::new(7)
            } else {
                saturday
            };
            return Ok((saturday, saturday + Days::new(2)));
        }
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
    // A bare weekday means the next one to come (today's, if it is that day); "next
    // friday" the first one after today.
    let (next, bare) = match text.strip_prefix("next ") {
        Some(rest) => (true, rest),
        None => (false, text.trim_start_matches("this ")),
    };
    if let Ok(weekday) = bare.parse::<Weekday>() {
        let mut ahead =
            (7 + weekday.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
        if next && ahead == 0 {
            ahead = 7;
        }
        return day(today + Days::new(u64::from(ahead)));
    }
    match interim::parse_date_string(text, local_now, interim::Dialect::Uk) {
        Ok(parsed) => not_past(parsed.date_naive()),
        Err(_) => Err(ToolError::invalid(format!(
            "could not read {phrase:?} as a day; pass words like \"tomorrow\", \"next tuesday\" or a date as YYYY-MM-DD"
        ))),
    }
}

/// "in 3 days", "in two weeks", "day after tomorrow": how many days from today.
fn days_ahead(text: &str) -> Option<u64> {
    if text.ends_with("day after tomorrow") {
        return Some(2);
    }
    let rest = text.strip_prefix("in ")?;
    let (n, unit) = rest.split_once(' ')?;
    let n = number(n)?;
    match unit {
        "day" | "days" => Some(n),
        "week" | "weeks" => Some(7 * n),
        _ => None,
    }
}

fn number(word: &str) -> Option<u64> {
    const WORDS: [&str; 11] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    match word {
        "a" | "an" => Some(1),
        "couple" => Some(2),
        w => w
            .parse::<u64>()
            .ok()
            .or_else(|| WORDS.iter().position(|x| *x == w).map(|n| n as u64))
            .filter(|n| *n <= 60),
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
        // "since monday", "last friday": when it started, not the day wanted.
        if i > 0
            && ["since", "last", "from", "ago", "desde", "passada", "pasado"]
                .contains(&words[i - 1])
        {
            continue;
        }
        let after = words.get(i + 2).copied().unwrap_or("");
        if *w == "day" && next == "after" && after == "tomorrow" {
            return Some("day after tomorrow".into());
        }
        if *w == "in" && number(next).is_some() && ["day", "days", "week", "weeks"].contains(&after)
        {
            return Some(format!("in {next} {after}"));
        }
        if *w == "in" && next == "a" && after == "couple" {
            let unit = words.get(i + 4).copied().unwrap_or("");
            if ["days", "weeks"].contains(&unit) {
                return Some(format!("in 2 {unit}"));
            }
        }
        match *w {
            "today" | "tomorrow" | "tonight" => return Some((*w).to_owned()),
            "weekend" => {
                let prev = if i > 0 { words[i - 1] } else { "" };
                return Some(
                    if prev == "next" {
                        "next weekend"
                    } else {
                        "weekend"
                    }
                    .into(),
                );
            }
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
        assert_eq!(resolve("in 3 days", now, utc).unwrap().0, d("2026-11-27"));
        assert_eq!(
            resolve("day after tomorrow", now, utc).unwrap().0,
            d("2026-11-26")
        );
        assert_eq!(
            resolve("in two weeks", now, utc).unwrap().0,
            d("2026-12-08")
        );
        assert_eq!(
            resolve("weekend", now, utc).unwrap(),
            (d("2026-11-28"), d("2026-11-30"))
        );
        assert_eq!(resolve("next friday", now, utc).unwrap().0, d("2026-11-27"));
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
        assert_eq!(
            find_phrase("fever since monday, can I come tomorrow").as_deref(),
            Some("tomorrow")
        );
        assert_eq!(
            find_phrase("the day after tomorrow please").as_deref(),
            Some("day after tomorrow")
        );
        assert_eq!(
            find_phrase("can I come in 3 days").as_deref(),
            Some("in 3 days")
        );
        assert_eq!(find_phrase("in two weeks").as_deref(), Some("in two weeks"));
        assert_eq!(find_phrase("this weekend?").as_deref(), Some("weekend"));
    }
}
