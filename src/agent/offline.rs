//! The offline assistant as a provider: the agent hands it to the orchestrator as the one
//! tried last, so a task always gets an answer without a network. For the care-plan extraction it answers with the rule-based
//! extractor's JSON. Chat turns never reach it: without a model, the agent's dialogue
//! policy reads messages with its own rules (`agent::understand`).

use crate::llm::{Completion, CompletionFuture, Message, Provider, Role, ToolSpec};

pub const LABEL: &str = "Offline assistant";

/// Opens the care-plan extraction prompt: the offline provider then answers with the
/// rule-based extractor's JSON.
pub const EXTRACTION_TASK: &str = "Task: care-plan extraction.";

/// Opens the visit-record drafting prompt: the offline provider answers with
/// [`draft_rules`].
pub const DRAFT_TASK: &str = "Task: visit-record draft.";

#[derive(Default)]
pub struct Offline;

impl Provider for Offline {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn model(&self) -> &str {
        "offline-rules-1"
    }

    fn complete<'a>(
        &'a self,
        messages: &'a [Message],
        _tools: &'a [ToolSpec],
    ) -> CompletionFuture<'a> {
        Box::pin(async move { Ok(decide(messages)) })
    }
}

/// The extraction of the note in the conversation, or an empty answer to anything else.
pub fn decide(messages: &[Message]) -> Completion {
    let content = match (
        task_input(messages, EXTRACTION_TASK),
        task_input(messages, DRAFT_TASK),
    ) {
        (Some(note), _) => {
            serde_json::to_string(&crate::domain::care::care_plans::extract_rules(note))
                .unwrap_or_default()
        }
        (None, Some(transcript)) => {
            serde_json::to_string(&draft_rules(transcript)).unwrap_or_default()
        }
        (None, None) => String::new(),
    };
    Completion {
        content,
        model: "offline-rules-1".into(),
        ..Completion::default()
    }
}

/// What the task reads (the note, the transcript), when this is that task.
fn task_input<'a>(messages: &'a [Message], task: &str) -> Option<&'a str> {
    let system = messages.first().filter(|m| m.role == Role::System)?;
    if !system.content.contains(task) {
        return None;
    }
    messages
        .iter()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
}

/// A visit record drafted from a transcript by rules: the patient's first words as the
/// complaint, vital signs said with their names, the doctor's examination and plan
/// sentences, and "come back in two weeks" as the follow-up. Diagnoses are left to the
/// doctor.
pub fn draft_rules(transcript: &str) -> crate::domain::clinical::records::RecordDraft {
    use crate::domain::clinical::records::RecordDraft;
    let mut draft = RecordDraft::default();
    let mut findings = Vec::new();
    let mut plan = Vec::new();
    for line in transcript.lines() {
        let (speaker, said) = match line.split_once(':') {
            Some((who, rest)) if who.trim().len() <= 20 => (who.trim().to_lowercase(), rest.trim()),
            _ => (String::new(), line.trim()),
        };
        if said.is_empty() {
            continue;
        }
        let doctor = speaker.starts_with("doctor") || speaker.starts_with("dr");
        let patient = speaker.starts_with("patient");
        if patient && draft.chief_complaint.is_empty() {
            draft.chief_complaint = said.chars().take(300).collect();
        }
        for sentence in sentences(said) {
            let s = sentence.trim();
            let lower = s.to_lowercase();
            read_vitals(&lower, &mut draft.vitals);
            if doctor || speaker.is_empty() {
                if FINDING_WORDS.iter().any(|w| lower.contains(w)) {
                    findings.push(s.to_owned());
                } else if PLAN_WORDS.iter().any(|w| lower.contains(w)) {
                    plan.push(s.to_owned());
                }
                if draft.follow_up_days.is_none()
                    && (lower.contains("back") || lower.contains("follow"))
                {
                    draft.follow_up_days = days_in(&lower);
                }
            }
        }
    }
    draft.findings = findings.join(" ").chars().take(10_000).collect();
    draft.plan = plan.join(" ").chars().take(10_000).collect();
    // What is out of range was misheard: the doctor enters it.
    let mut checks = crate::domain::validate::Checks::new();
    draft.vitals.check(&mut checks, "");
    if checks.finish().is_err() {
        draft.vitals = Default::default();
    }
    draft
}

const FINDING_WORDS: [&str; 10] = [
    "examination",
    "i can see",
    "i hear",
    "looks",
    "sounds",
    "swollen",
    "tender",
    "inflamed",
    "your lungs",
    "your throat",
];

const PLAN_WORDS: [&str; 10] = [
    "take ",
    "prescrib",
    "start ",
    "apply",
    "we will",
    "we'll",
    "i'll order",
    "test",
    "rest",
    "drink",
];

/// Sentences: text up to a `.`, `!` or `?` followed by a space or the end ("37.9" is
/// one number, not two sentences).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = matches!(c, '.' | '!' | '?')
            && chars.peek().is_none_or(|(_, next)| next.is_whitespace());
        if ends {
            out.push(&text[start..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The first number after any of `names` in `text`, within a few words.
fn number_after(text: &str, names: &[&str]) -> Option<f64> {
    let at = names
        .iter()
        .filter_map(|n| text.find(n).map(|i| i + n.len()))
        .min()?;
    let rest: String = text[at..].chars().take(40).collect();
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    let digits: String = rest[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    digits.trim_end_matches('.').parse().ok()
}

fn read_vitals(text: &str, v: &mut crate::domain::clinical::vitals::Vitals) {
    if let Some(at) = text.find("blood pressure").or_else(|| text.find("bp ")) {
        let rest: String = text[at..].chars().take(40).collect();
        if let Some((high, low)) = rest.split_once('/') {
            let high: String = high
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            let high: String = high.chars().rev().collect();
            let low: String = low.chars().take_while(|c| c.is_ascii_digit()).collect();
            v.systolic_mmhg = v.systolic_mmhg.or(high.parse().ok());
            v.diastolic_mmhg = v.diastolic_mmhg.or(low.parse().ok());
        }
    }
    v.temperature_c = v
        .temperature_c
        .or(number_after(text, &["temperature", "temp "]));
    v.heart_rate_bpm = v
        .heart_rate_bpm
        .or(number_after(text, &["heart rate", "pulse"]));
    v.spo2_percent = v
        .spo2_percent
        .or(number_after(text, &["saturation", "spo2", "sats"]));
    v.respiratory_rate_per_min = v
        .respiratory_rate_per_min
        .or(number_after(text, &["breathing rate", "respiratory rate"]));
    v.weight_kg = v.weight_kg.or(number_after(text, &["weigh"]));
    v.height_cm = v.height_cm.or(number_after(text, &["height", "tall"]));
}

/// "in two weeks", "in 10 days", "in a month" → days.
fn days_in(text: &str) -> Option<i64> {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).find_map(|w| {
        let n = match w[0] {
            "a" | "an" | "one" => 1,
            "two" => 2,
            "three" => 3,
            "four" => 4,
            "five" => 5,
            "six" => 6,
            n => n.parse().ok()?,
        };
        let unit = match w[1].trim_end_matches('s') {
            "day" => 1,
            "week" => 7,
            "month" => 30,
            _ => return None,
        };
        Some(n * unit).filter(|d| (1..=365).contains(d))
    })
}
