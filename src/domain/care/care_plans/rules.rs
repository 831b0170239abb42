//! The rule-based extractor the offline model answers with: common phrasings of doses
//! ("twice daily for 7 days", "every 8 hours", "bid"), durations ("for two weeks"),
//! starts ("starting tomorrow") and one-time tasks ("buy…", "book a follow-up in 3 weeks").

use super::{ChecklistItem, Extraction, PlanItem};

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
    // Dosing abbreviations count only as whole words ("od", not "odd").
    let padded = format!("{lower} ");
    let abbreviation = [" bid ", " tid ", " qid ", " od "]
        .iter()
        .filter_map(|m| padded.find(m));
    let cut = [
        " twice",
        " once",
        " every ",
        " for ",
        " daily",
        " in ",
        " each day",
        " starting",
    ]
    .iter()
    .filter_map(|m| lower.find(m))
    .chain(abbreviation)
    .chain(before_times)
    .min()
    .unwrap_or(sentence.len());
    // Lower-casing can change byte lengths outside ASCII: never slice off a boundary.
    let text = sentence
        .get(..cut)
        .unwrap_or(sentence)
        .trim()
        .trim_end_matches([',', ':']);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "starting tomorrow", "from tomorrow", "starting in 3 days".
fn start_in_days(text: &str, words: &[&str]) -> Option<u32> {
    if text.contains("tomorrow") {
        return Some(1);
    }
    words.windows(4).find_map(|w| {
        (["starting", "start", "from"].contains(&w[0]) && w[1] == "in")
            .then(|| number(w[2]).zip(unit_days(w[3])).map(|(n, u)| n * u))
            .flatten()
    })
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
                start_in_days: start_in_days(&text, &words),
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

    /// Whole notes as doctors write them: (note, plan rows, checklist rows).
    #[test]
    fn varied_notes_become_the_expected_checklist_and_plan() {
        type Task<'a> = (&'a str, Option<u32>);
        type Case<'a> = (&'a str, Vec<Row<&'a str>>, Vec<Task<'a>>);
        let cases: Vec<Case> = vec![
            (
                "Patient presents with otitis. Take amoxicillin 500 mg three times a day for 7 days. Buy ear drops.",
                vec![("Take amoxicillin 500 mg", Some(3), None, Some(7))],
                vec![("Buy ear drops", None)],
            ),
            (
                "Ibuprofen 400mg every 8 hours for 3 days; rest; book a follow-up in 2 weeks",
                vec![("Ibuprofen 400mg", None, Some(8), Some(3))],
                vec![("Book a follow-up", Some(14))],
            ),
            (
                "Apply hydrocortisone cream twice a day for ten days.\nAvoid hot showers.",
                vec![("Apply hydrocortisone cream", Some(2), None, Some(10))],
                vec![],
            ),
            (
                "Metformin 500 mg bid. Check blood sugar once daily for 2 weeks. Schedule HbA1c test in 3 months.",
                vec![
                    ("Metformin 500 mg", Some(2), None, None),
                    ("Check blood sugar", Some(1), None, Some(14)),
                ],
                vec![("Schedule HbA1c test", Some(90))],
            ),
            (
                "Salbutamol inhaler 2 puffs every 4 hours as needed. Get a spacer.",
                vec![("Salbutamol inhaler 2 puffs", None, Some(4), None)],
                vec![("Get a spacer", None)],
            ),
            (
                "Omeprazole 20 mg once daily for 4 weeks, before breakfast.",
                vec![("Omeprazole 20 mg", Some(1), None, Some(28))],
                vec![],
            ),
            (
                "Physiotherapy exercises 3 times a day for 6 weeks. Book physiotherapy in 1 week.",
                vec![("Physiotherapy exercises", Some(3), None, Some(42))],
                vec![("Book physiotherapy", Some(7))],
            ),
            (
                "Eye drops: one drop four times a day for 5 days.",
                vec![("Eye drops: one drop", Some(4), None, Some(5))],
                vec![],
            ),
            (
                "Start paracetamol 1 g every 6 hours for 2 days starting tomorrow.",
                vec![("Start paracetamol 1 g", None, Some(6), Some(2))],
                vec![],
            ),
            (
                "Pick up the prescription from the pharmacy. Bring your glucose diary to the next visit.",
                vec![],
                vec![
                    ("Pick up the prescription from the pharmacy", None),
                    ("Bring your glucose diary to the next visit", None),
                ],
            ),
            (
                "Lisinopril 10 mg od. Measure blood pressure twice daily for one week. Arrange a kidney function test in 10 days.",
                vec![
                    ("Lisinopril 10 mg", Some(1), None, None),
                    ("Measure blood pressure", Some(2), None, Some(7)),
                ],
                vec![("Arrange a kidney function test", Some(10))],
            ),
            (
                "Nasal spray tid for 5 days",
                vec![("Nasal spray", Some(3), None, Some(5))],
                vec![],
            ),
            (
                "Drink 2 litres of water every day. Walk 20 minutes daily for a month.",
                vec![
                    ("Drink 2 litres of water", Some(1), None, None),
                    ("Walk 20 minutes", Some(1), None, Some(30)),
                ],
                vec![],
            ),
            (
                "Call the clinic if the fever persists. Do a throat swab in 2 days.",
                vec![],
                vec![
                    ("Call the clinic if the fever persists", None),
                    ("Do a throat swab", Some(2)),
                ],
            ),
            (
                "Vitamin B12 injection every 168 hours for 4 weeks. Buy sharps container.",
                vec![("Vitamin B12 injection", None, Some(168), Some(28))],
                vec![("Buy sharps container", None)],
            ),
            (
                "Diagnosis: contact dermatitis. No medication needed.",
                vec![],
                vec![],
            ),
        ];
        assert!(cases.len() >= 15);
        for (note, want_plan, want_tasks) in cases {
            let e = extract_rules(note);
            let got: Vec<Row<&str>> = e
                .plan
                .iter()
                .map(|p| {
                    (
                        p.action.as_str(),
                        p.times_per_day,
                        p.every_hours,
                        p.duration_days,
                    )
                })
                .collect();
            assert_eq!(got, want_plan, "{note}");
            let tasks: Vec<Task> = e
                .checklist
                .iter()
                .map(|c| (c.task.as_str(), c.due_in_days))
                .collect();
            assert_eq!(tasks, want_tasks, "{note}");
            assert!(e.validate().is_ok(), "{note}: {:?}", e.validate());
        }
        let tomorrow = extract_rules("Take the tablets twice daily for 3 days starting tomorrow");
        assert_eq!(tomorrow.plan[0].start_in_days, Some(1));
        assert_eq!(tomorrow.plan[0].action, "Take the tablets");
    }
}
