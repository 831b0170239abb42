//! Care plans from doctors' notes: a checklist (one-time tasks) and a plan (scheduled
//! actions). This is the rule-based extractor the offline model uses; storing notes and
//! plans, and reminders, build on it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Extraction {
    /// One-time tasks, e.g. "Buy ibuprofen".
    pub checklist: Vec<ChecklistItem>,
    /// Scheduled actions, e.g. "Take amoxicillin" twice a day for 7 days.
    pub plan: Vec<PlanItem>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChecklistItem {
    pub task: String,
    /// Days from the note until it is due, when the note says ("in 3 weeks" → 21).
    pub due_in_days: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanItem {
    /// What to do, e.g. "Take amoxicillin 500 mg".
    pub action: String,
    /// How many times a day ("twice daily" → 2); absent when an interval is given.
    pub times_per_day: Option<u32>,
    /// Hours between doses ("every 8 hours" → 8).
    pub every_hours: Option<u32>,
    /// For how many days; absent means until the doctor says otherwise.
    pub duration_days: Option<u32>,
}

fn number(word: &str) -> Option<u32> {
    const WORDS: [&str; 13] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    match word {
        "a" | "an" | "once" => Some(1),
        "twice" => Some(2),
        "thrice" => Some(3),
        _ => word
            .parse()
            .ok()
            .or_else(|| WORDS.iter().position(|w| *w == word).map(|n| n as u32)),
    }
}

fn unit_days(word: &str) -> Option<u32> {
    match word.trim_end_matches('s') {
        "day" => Some(1),
        "week" => Some(7),
        "month" => Some(30),
        _ => None,
    }
}

/// "for 7 days", "for two weeks", "in 3 weeks": the days, after the given keyword.
fn span_after(words: &[&str], keyword: &str) -> Option<u32> {
    words.windows(3).find_map(|w| {
        (w[0] == keyword)
            .then(|| number(w[1]).zip(unit_days(w[2])).map(|(n, u)| n * u))
            .flatten()
    })
}

fn times_per_day(text: &str, words: &[&str]) -> Option<u32> {
    if text.contains("twice") && (text.contains("day") || text.contains("daily")) {
        return Some(2);
    }
    for (abbrev, n) in [(" bid", 2), (" tid", 3), (" qid", 4), (" od", 1)] {
        if format!(" {text} ").contains(&format!("{abbrev} ")) {
            return Some(n);
        }
    }
    // "three times a day", "2 times daily", "once daily", "once a day"
    words
        .windows(3)
        .find_map(|w| {
            let n = number(w[0])?;
            let daily = (w[1] == "times" && (w[2] == "a" || w[2] == "daily" || w[2] == "per"))
                || (w[0] == "once" && (w[1] == "daily" || w[1] == "a"));
            daily.then_some(n)
        })
        .or_else(|| {
            (text.contains("daily") || text.contains("every day") || text.contains("each day"))
                .then_some(1)
        })
}

fn every_hours(words: &[&str]) -> Option<u32> {
    words.windows(3).find_map(|w| {
        (w[0] == "every" && w[2].trim_end_matches('s') == "hour")
            .then(|| number(w[1]))
            .flatten()
    })
}

/// The action part of a sentence: up to the first frequency or duration words.
fn action(sentence: &str) -> String {
    let lower = sentence.to_lowercase();
    // "three times a day": the count before "times" belongs to the frequency.
    let before_times = lower.find(" times ").and_then(|t| lower[..t].rfind(' '));
    let cut = [
        " twice",
        " once",
        " every ",
        " for ",
        " daily",
        " in ",
        " bid",
        " tid",
        " qid",
        " each day",
    ]
    .iter()
    .filter_map(|m| lower.find(m))
    .chain(before_times)
    .min()
    .unwrap_or(sentence.len());
    let text = sentence[..cut].trim().trim_end_matches([',', ':']);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Reads a note sentence by sentence.
pub fn extract_rules(note: &str) -> Extraction {
    let mut out = Extraction::default();
    for sentence in note
        .split(['.', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let text = sentence.to_lowercase();
        let words: Vec<&str> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let per_day = times_per_day(&text, &words);
        let interval = every_hours(&words);
        let duration = span_after(&words, "for");
        if per_day.is_some() || interval.is_some() {
            out.plan.push(PlanItem {
                action: action(sentence),
                times_per_day: if interval.is_some() { None } else { per_day },
                every_hours: interval,
                duration_days: duration,
            });
        } else if words.first().is_some_and(|w| {
            [
                "buy", "get", "pick", "book", "schedule", "arrange", "call", "bring", "do",
            ]
            .contains(w)
        }) {
            out.checklist.push(ChecklistItem {
                task: action(sentence),
                due_in_days: span_after(&words, "in"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (action, times per day, every hours, duration days)
    type Row<S> = (S, Option<u32>, Option<u32>, Option<u32>);

    fn plan(note: &str) -> Vec<Row<String>> {
        extract_rules(note)
            .plan
            .into_iter()
            .map(|p| (p.action, p.times_per_day, p.every_hours, p.duration_days))
            .collect()
    }

    #[test]
    fn common_phrasings_become_plan_and_checklist_items() {
        let cases: &[(&str, Row<&str>)] = &[
            (
                "Take amoxicillin 500 mg twice daily for 7 days.",
                ("Take amoxicillin 500 mg", Some(2), None, Some(7)),
            ),
            (
                "Ibuprofen 400 mg every 8 hours for 5 days",
                ("Ibuprofen 400 mg", None, Some(8), Some(5)),
            ),
            (
                "Apply the cream three times a day for two weeks",
                ("Apply the cream", Some(3), None, Some(14)),
            ),
            (
                "Take vitamin D once daily for 3 months",
                ("Take vitamin D", Some(1), None, Some(90)),
            ),
            (
                "Use the inhaler 2 times per day",
                ("Use the inhaler", Some(2), None, None),
            ),
            (
                "Paracetamol 1 g every six hours as needed",
                ("Paracetamol 1 g", None, Some(6), None),
            ),
            ("Drink water daily", ("Drink water", Some(1), None, None)),
            (
                "Walk 30 minutes every day for four weeks",
                ("Walk 30 minutes", Some(1), None, Some(28)),
            ),
            (
                "Metformin 500mg bid",
                ("Metformin 500mg", Some(2), None, None),
            ),
            (
                "Eye drops four times a day for ten days",
                ("Eye drops", Some(4), None, Some(10)),
            ),
        ];
        for (note, want) in cases {
            let got = plan(note);
            assert_eq!(got.len(), 1, "{note}: {got:?}");
            assert_eq!(
                (got[0].0.as_str(), got[0].1, got[0].2, got[0].3),
                *want,
                "{note}"
            );
        }
        let e = extract_rules(
            "Buy a blood pressure monitor. Book a follow-up in 3 weeks. Get blood tests done in 10 days. Rest well",
        );
        let tasks: Vec<(&str, Option<u32>)> = e
            .checklist
            .iter()
            .map(|c| (c.task.as_str(), c.due_in_days))
            .collect();
        assert_eq!(
            tasks,
            [
                ("Buy a blood pressure monitor", None),
                ("Book a follow-up", Some(21)),
                ("Get blood tests done", Some(10))
            ]
        );
        assert!(e.plan.is_empty());
    }
}
