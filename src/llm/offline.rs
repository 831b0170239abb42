//! The offline assistant: a deterministic dialogue manager that reads the conversation and
//! makes the same tool calls a model would (specialty → free times → proposal), asking
//! for what is missing. It needs no network, so the service always answers.

use serde_json::{Value, json};

use crate::llm::{Completion, CompletionFuture, Message, Provider, Role, ToolCall, ToolSpec};
use crate::tools::dates;

pub const LABEL: &str = "Offline assistant";

/// Opens the care-plan extraction prompt: the offline assistant then answers with the
/// rule-based extractor's JSON instead of conversing.
pub const EXTRACTION_TASK: &str = "Task: care-plan extraction.";

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

fn say(text: impl Into<String>) -> Completion {
    Completion {
        content: text.into(),
        model: "offline-rules-1".into(),
        ..Completion::default()
    }
}

fn call(name: &str, arguments: Value) -> Completion {
    Completion {
        tool_calls: vec![ToolCall {
            id: format!("offline-{name}"),
            name: name.into(),
            arguments: arguments.to_string(),
        }],
        model: "offline-rules-1".into(),
        ..Completion::default()
    }
}

/// The next step of the conversation.
pub fn decide(messages: &[Message]) -> Completion {
    if let Some(note) = extraction_note(messages) {
        let extraction = crate::domain::care_plans::extract_rules(note);
        return say(serde_json::to_string(&extraction).unwrap_or_default());
    }
    let user = last_user(messages).unwrap_or_default();
    match messages.last() {
        Some(m) if m.role == Role::Tool => after_tool(m, &user),
        Some(m) if m.role == Role::User => on_user(&m.content.to_lowercase(), messages),
        _ => say(
            "How can I help you today? Tell me what you need, for example \"a dermatologist next week\".",
        ),
    }
}

/// The note, when this is the care-plan extraction task rather than a conversation.
fn extraction_note(messages: &[Message]) -> Option<&str> {
    let system = messages.first().filter(|m| m.role == Role::System)?;
    if !system.content.contains(EXTRACTION_TASK) {
        return None;
    }
    messages
        .iter()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
}

fn last_user(messages: &[Message]) -> Option<String> {
    messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.to_lowercase())
}

fn has_any(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

/// A uuid in the text, as the slot and appointment buttons send them.
fn find_id(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|w| w.len() == 36 && uuid::Uuid::parse_str(w).is_ok())
        .map(str::to_owned)
}

fn part_of_day(text: &str) -> Option<&'static str> {
    ["morning", "afternoon", "evening"]
        .into_iter()
        .find(|p| text.contains(p))
}

fn wants_a_visit(text: &str) -> bool {
    has_any(
        text,
        &[
            "book",
            "appointment",
            "see someone",
            "see a",
            "see an",
            "visit",
            "available",
            "free time",
            "slot",
            "need a",
            "need an",
            "i'd like",
            "i would like",
            "can i see",
            "check",
        ],
    ) || dates::find_phrase(text).is_some()
        || part_of_day(text).is_some()
}

fn on_user(text: &str, messages: &[Message]) -> Completion {
    if let Some(id) = find_id(text) {
        if has_any(text, &["cancel"]) {
            return call("propose_cancellation", json!({"appointment_id": id}));
        }
        return call(
            "propose_booking",
            json!({"slot_id": id, "reason": first_need(messages)}),
        );
    }
    if let Some(note) = care_note(text, messages) {
        return call("extract_care_plan", json!({"note": note}));
    }
    if has_any(
        text,
        &[
            "cancel",
            "reschedule",
            "move my",
            "my appointment",
            "appointments do i",
            "what appointments",
            "upcoming",
            "appointments",
        ],
    ) {
        return call("my_appointments", json!({}));
    }
    if has_any(text, &["waitlist", "waiting list"]) {
        return match last_specialty(messages) {
            Some(slug) => call("join_waitlist", json!({"specialty": slug})),
            None => say("Which kind of doctor would you like to wait for?"),
        };
    }
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() <= 3
        && words.iter().all(|w| {
            [
                "hi",
                "hello",
                "hey",
                "good",
                "morning",
                "afternoon",
                "evening",
                "there",
            ]
            .contains(w)
        })
    {
        return say(
            "Hello! Tell me what you need, for example \"a dermatologist next week\" or describe what is bothering you.",
        );
    }
    if let Some(slug) = last_specialty(messages)
        && (dates::find_phrase(text).is_some() || part_of_day(text).is_some())
    {
        // A new day or time for the specialty already found.
        return list_slots(&slug, text);
    }
    call("find_specialty", json!({"query": text}))
}

/// "care plan: …" / "note: …": a doctor asking for a note's checklist and plan (the note
/// as written, from the original message).
fn care_note(text: &str, messages: &[Message]) -> Option<String> {
    let original = messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)?
        .content
        .clone();
    [
        "care plan:",
        "care plan for this note:",
        "note:",
        "extract:",
    ]
    .iter()
    .find_map(|p| {
        text.find(p)
            .map(|i| original[i + p.len()..].trim().to_owned())
    })
    .filter(|n| !n.is_empty())
}

fn care_plan_found(value: &Value) -> Completion {
    let mut text = String::from("From the note:\n");
    let plan = value["plan"].as_array().cloned().unwrap_or_default();
    let checklist = value["checklist"].as_array().cloned().unwrap_or_default();
    if plan.is_empty() && checklist.is_empty() {
        return say("I found no tasks or scheduled actions in that note.");
    }
    for p in &plan {
        let how = match (p["times_per_day"].as_u64(), p["every_hours"].as_u64()) {
            (_, Some(h)) => format!("every {h} hours"),
            (Some(1), None) => "once a day".to_owned(),
            (Some(n), None) => format!("{n} times a day"),
            (None, None) => String::new(),
        };
        let days = p["duration_days"]
            .as_u64()
            .map(|d| format!(" for {d} days"))
            .unwrap_or_default();
        text.push_str(&format!(
            "- Plan: {}, {how}{days}\n",
            p["action"].as_str().unwrap_or("")
        ));
    }
    for c in &checklist {
        let due = c["due_in_days"]
            .as_u64()
            .map(|d| format!(" (in {d} days)"))
            .unwrap_or_default();
        text.push_str(&format!(
            "- To do: {}{due}\n",
            c["task"].as_str().unwrap_or("")
        ));
    }
    say(text)
}

fn list_slots(slug: &str, text: &str) -> Completion {
    let mut args = json!({"specialty": slug});
    if let Some(day) = dates::find_phrase(text) {
        args["date"] = json!(day);
    }
    if let Some(part) = part_of_day(text) {
        args["part_of_day"] = json!(part);
    }
    call("list_available_slots", args)
}

/// The first thing the patient said they needed, as the booking's reason.
fn first_need(messages: &[Message]) -> String {
    messages
        .iter()
        .find(|m| m.role == Role::User && find_id(&m.content).is_none())
        .map(|m| m.content.chars().take(200).collect())
        .unwrap_or_default()
}

/// The specialty most recently found in this conversation.
fn last_specialty(messages: &[Message]) -> Option<String> {
    messages.iter().rev().find_map(|m| {
        if m.role != Role::Tool || m.tool_name.as_deref() != Some("find_specialty") {
            return None;
        }
        let hits: Value = serde_json::from_str(&m.content).ok()?;
        hits.as_array()?.first()?["slug"]
            .as_str()
            .map(str::to_owned)
    })
}

fn after_tool(result: &Message, user: &str) -> Completion {
    let value: Value = serde_json::from_str(&result.content).unwrap_or(Value::Null);
    if let Some(error) = value.get("error") {
        return tool_failed(error);
    }
    match result.tool_name.as_deref().unwrap_or("") {
        "find_specialty" => specialty_found(&value, user),
        "list_available_slots" => slots_found(&value),
        "propose_booking" | "propose_cancellation" | "propose_reschedule" => {
            let summary = value["proposal"]["summary"]
                .as_str()
                .unwrap_or("the change");
            let hold = if value["proposal"]["expires_at"].is_string() {
                " I am holding the time for you for a few minutes."
            } else {
                ""
            };
            say(format!(
                "{summary}?{hold} Press Confirm, or reply yes, to go ahead; reply no to drop it."
            ))
        }
        "my_appointments" => appointments_found(&value, user),
        "extract_care_plan" => care_plan_found(&value),
        "join_waitlist" => {
            say("You are on the waitlist; we will offer you a time as soon as one frees up.")
        }
        _ => say("Done. Is there anything else I can help with?"),
    }
}

fn tool_failed(error: &Value) -> Completion {
    let code = error["code"].as_str().unwrap_or("");
    let message = error["message"].as_str().unwrap_or("it did not work");
    match code {
        "unauthenticated" => say(
            "To book, please log in (sign in) first; you can keep browsing without an account. Once you are signed in, pick the time again.",
        ),
        "slot_taken" | "hold_expired" => {
            say("Sorry, that time has just been taken. Would you like me to look for another one?")
        }
        "too_many_holds" => {
            say("You are already holding several times; confirm or drop one of them first.")
        }
        "forbidden" => say(format!("Sorry, I cannot do that for you: {message}")),
        _ => say(format!("Sorry, that did not work: {message}")),
    }
}

fn specialty_found(hits: &Value, user: &str) -> Completion {
    let Some(best) = hits.as_array().and_then(|h| h.first()) else {
        return say(
            "I could not tell which kind of doctor fits. Could you describe it in other words, or name the specialty (for example \"dermatology\")?",
        );
    };
    let slug = best["slug"].as_str().unwrap_or_default();
    let name = best["name"].as_str().unwrap_or(slug);
    if wants_a_visit(user) {
        return list_slots(slug, user);
    }
    let description = best["description"].as_str().unwrap_or_default();
    say(format!(
        "I cannot tell you what it is: only a doctor can, after seeing you. For this, a {name} doctor is the right specialist ({}). Would you like me to look for free times?",
        description.trim_end_matches('.').to_lowercase()
    ))
}

fn slots_found(list: &Value) -> Completion {
    let slots = list["slots"].as_array().cloned().unwrap_or_default();
    if slots.is_empty() {
        return say(
            "I found no free times in the next weeks. I can put you on the waitlist, or look for another day: just tell me which.",
        );
    }
    let mut text = String::new();
    if let Some(note) = list["note"].as_str() {
        text.push_str(note);
        text.push(' ');
    }
    text.push_str("These times are free:\n");
    for (i, s) in slots.iter().enumerate() {
        let fee = s["fee"]
            .as_str()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        text.push_str(&format!(
            "{}. {}, {} at {}{}\n",
            i + 1,
            s["when"].as_str().unwrap_or(""),
            s["doctor"].as_str().unwrap_or(""),
            s["clinic"].as_str().unwrap_or(""),
            fee
        ));
    }
    text.push_str("Pick one and I will hold it for you.");
    say(text)
}

fn appointments_found(list: &Value, user: &str) -> Completion {
    let items = list.as_array().cloned().unwrap_or_default();
    if user.contains("cancel") && items.len() == 1 {
        let id = items[0]["appointment_id"].as_str().unwrap_or_default();
        return call("propose_cancellation", json!({"appointment_id": id}));
    }
    if items.is_empty() {
        return say("You have no upcoming appointments.");
    }
    let mut text = format!(
        "You have {} upcoming appointment{}:\n",
        items.len(),
        if items.len() == 1 { "" } else { "s" }
    );
    for a in &items {
        text.push_str(&format!(
            "- {} with {} at {} ({})\n",
            a["when"].as_str().unwrap_or(""),
            a["doctor"].as_str().unwrap_or(""),
            a["clinic"].as_str().unwrap_or(""),
            a["status"].as_str().unwrap_or("")
        ));
    }
    if user.contains("cancel") || user.contains("reschedul") {
        text.push_str("Which one do you mean?");
    }
    say(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, content: Value) -> Message {
        Message {
            tool_name: Some(name.into()),
            tool_call_id: Some(format!("offline-{name}")),
            ..Message {
                role: Role::Tool,
                content: content.to_string(),
                tool_calls: vec![],
                tool_call_id: None,
                tool_name: None,
            }
        }
    }

    #[test]
    fn a_symptom_and_a_day_lead_to_the_specialtys_free_times() {
        let mut conv = vec![Message::user(
            "I have an itchy rash on my arm. Can I see someone next Tuesday afternoon?",
        )];
        let first = decide(&conv);
        assert_eq!(first.tool_calls[0].name, "find_specialty");
        conv.push(tool(
            "find_specialty",
            json!([{"slug": "dermatology", "name": "Dermatology", "description": "Skin."}]),
        ));
        let second = decide(&conv);
        assert_eq!(second.tool_calls[0].name, "list_available_slots");
        let args: Value = serde_json::from_str(&second.tool_calls[0].arguments).unwrap();
        assert_eq!(
            args,
            json!({"specialty": "dermatology", "date": "next tuesday", "part_of_day": "afternoon"})
        );
    }

    #[test]
    fn a_question_about_a_disease_gets_a_specialist_not_a_diagnosis() {
        let conv = vec![
            Message::user("Do I have diabetes? I am thirsty all the time"),
            tool(
                "find_specialty",
                json!([{"slug": "endocrinology", "name": "Endocrinology", "description": "Hormones."}]),
            ),
        ];
        let reply = decide(&conv).content;
        assert!(reply.contains("cannot tell you what it is"), "{reply}");
        assert!(reply.contains("Endocrinology doctor"), "{reply}");
    }

    #[test]
    fn a_picked_slot_is_proposed_and_a_refusal_is_explained() {
        let id = "0193a4b2-0000-7000-8000-000000000001";
        let conv = vec![
            Message::user("rash"),
            Message::user(format!("Book slot {id}")),
        ];
        let c = decide(&conv);
        assert_eq!(c.tool_calls[0].name, "propose_booking");
        assert!(c.tool_calls[0].arguments.contains(id));
        let refused = vec![tool(
            "propose_booking",
            json!({"error": {"code": "unauthenticated", "message": "x"}}),
        )];
        assert!(decide(&refused).content.contains("log in"));
    }
}
