//! What of a conversation goes to the model and to the audit log: the history within the
//! token budget (oldest turns folded into a summary), earlier tool traffic left out, and
//! tool arguments with free text redacted.

use serde_json::{Value, json};

use crate::agent::session::Session;
use crate::llm::orchestrate::count_messages;
use crate::llm::{Message, Role};
use crate::tools::Tool;
use crate::tools::browse::FindSpecialty;

/// The history as the model gets it. Earlier turns keep what was said; their tool calls
/// and results are left out (the patient has seen them, and a picked slot comes back as
/// its id), except the specialty found, which a later "and on Friday?" builds on.
pub fn compact(messages: &[Message]) -> Vec<Message> {
    let current = messages
        .iter()
        .rposition(|m| m.role == Role::User)
        .unwrap_or(0);
    let kept_call = |m: &Message| m.tool_calls.iter().any(|c| c.name == FindSpecialty::NAME);
    let kept_ids: Vec<&str> = messages[..current]
        .iter()
        .filter(|m| kept_call(m))
        .flat_map(|m| m.tool_calls.iter().map(|c| c.id.as_str()))
        .collect();
    messages
        .iter()
        .enumerate()
        .filter(|(i, m)| {
            *i >= current
                || match m.role {
                    Role::Tool => m
                        .tool_call_id
                        .as_deref()
                        .is_some_and(|id| kept_ids.contains(&id)),
                    Role::Assistant if !m.tool_calls.is_empty() => kept_call(m),
                    _ => true,
                }
        })
        .map(|(_, m)| m.clone())
        .collect()
}

/// Redacts tool arguments for the audit log: ids and choices stay, free text does not.
pub fn redact(arguments: &str) -> Value {
    const KEEP: &[&str] = &[
        "specialty",
        "date",
        "part_of_day",
        "include_past",
        "language",
        "max_fee_cents",
    ];
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(map)) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let keep = k.ends_with("_id") || KEEP.contains(&k.as_str());
                    (k, if keep { v } else { json!("[redacted]") })
                })
                .collect(),
        ),
        Ok(_) | Err(_) => json!("[unreadable]"),
    }
}

/// Folds the oldest turns into the summary until the history fits the token budget.
pub fn fold_oldest(s: &mut Session, budget: u32) {
    while count_messages(&s.messages, &[]) > budget {
        // Cut at the second user message, so a tool call stays with its result.
        let Some(cut) = s
            .messages
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, m)| m.role == Role::User)
            .map(|(i, _)| i)
        else {
            break;
        };
        for m in s.messages.drain(..cut) {
            let who = match m.role {
                Role::User => "Patient",
                Role::Assistant if !m.content.is_empty() => "Assistant",
                _ => continue,
            };
            let line: String = m.content.chars().take(160).collect();
            s.summary.push_str(&format!("{who}: {line}\n"));
        }
        let excess = s.summary.chars().count().saturating_sub(1500);
        if excess > 0 {
            s.summary = s.summary.chars().skip(excess).collect();
        }
    }
}
