//! The tools the booking agent may call. Each tool is a type: its arguments (whose doc
//! comments are what the model reads), its result, and one `call` that runs the domain
//! with the chatting user's [`Actor`]: a tool can do nothing that user could not do over
//! REST. Side-effecting tools only *propose*; the orchestrator commits a proposal when the
//! user confirms it.

pub mod billing;
pub mod booking;
pub mod browse;
pub mod care;
pub mod dates;
pub mod records;

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::error::{Code, Error};

/// What a tool runs with: the database, the chatting user, and their clock and zone.
pub struct ToolContext<'a> {
    pub db: &'a Db,
    pub actor: &'a Actor,
    pub session_id: Uuid,
    pub now: DateTime<Utc>,
    /// The user's zone: relative dates ("next Tuesday") are resolved in it.
    pub time_zone: Tz,
    pub hold_minutes: i64,
    /// The clinic whose site the chat is on (the widget's `data-clinic`): searches, lists
    /// and bookings stay within it. `None`: the whole network.
    pub clinic_id: Option<Uuid>,
}

impl ToolContext<'_> {
    /// Refuses what belongs to another clinic than the chat's.
    pub fn require_clinic(&self, clinic_id: Uuid) -> Result<(), ToolError> {
        match self.clinic_id {
            Some(mine) if mine != clinic_id => Err(ToolError::new(
                "not_found",
                "That belongs to another clinic; this chat books only with the clinic whose site it is on. Use ids from this chat's lists.",
            )),
            _ => Ok(()),
        }
    }
}

/// A failure the model can read and correct: a stable code and a plain explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolError {
    pub code: String,
    pub message: String,
}

impl ToolError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("invalid_arguments", message)
    }
}

impl From<Error> for ToolError {
    fn from(e: Error) -> Self {
        match e.code() {
            // Internal failures are logged by the error type; the model hears no details.
            Code::Internal | Code::ServiceUnavailable => Self::new(
                e.code().as_str(),
                "The booking system could not answer just now.",
            ),
            code => Self::new(code.as_str(), e.to_string()),
        }
    }
}

/// One side effect waiting for the user's explicit yes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: Uuid,
    #[serde(flatten)]
    pub action: ProposedAction,
    /// What the user is asked to confirm, in plain words.
    pub summary: String,
    /// When the held time lapses, for bookings.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProposedAction {
    Book {
        slot_id: Uuid,
        reason: String,
    },
    Reschedule {
        appointment_id: Uuid,
        slot_id: Uuid,
    },
    Cancel {
        appointment_id: Uuid,
        reason: String,
    },
    /// The patient did what a due reminder of their care plan asked.
    CheckIn {
        reminder_id: Uuid,
    },
}

/// Who a model may be offered a tool for (the tool still checks the caller itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Browsing: anonymous visitors too.
    Anyone,
    /// Acting on one's own appointments: a signed-in user.
    SignedIn,
    /// Doctors only.
    Doctors,
    /// Never offered to a model: committing is the dialogue rules' alone.
    Nobody,
}

impl Audience {
    /// Whether a chat with this caller is offered the tool.
    pub fn includes(self, actor: &Actor) -> bool {
        match self {
            Audience::Anyone => true,
            Audience::SignedIn => actor.principal().is_ok(),
            Audience::Doctors => actor
                .principal()
                .is_ok_and(|p| p.has_role(crate::domain::actor::Role::Doctor)),
            Audience::Nobody => false,
        }
    }
}

/// What a tool's result means for the conversation, beside what the model reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    None,
    /// Free times were listed: the user may pick one of them next.
    Offered(Vec<browse::SlotChoice>),
    /// A side effect now waits for the user's yes.
    Proposed(Proposal),
}

/// A tool, defined once.
pub trait Tool: Send + Sync + 'static {
    const NAME: &'static str;
    /// What the model is told the tool is for.
    const DESCRIPTION: &'static str;
    /// Who a model may be offered it for.
    const AUDIENCE: Audience = Audience::Anyone;
    type Args: DeserializeOwned + Serialize + JsonSchema + Send + Sync;
    type Output: Serialize + Send;

    fn call(
        ctx: &ToolContext<'_>,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;

    /// What the result means for the conversation (nothing, for most tools).
    fn effect(_output: &Self::Output) -> Effect {
        Effect::None
    }
}

/// A tool's answer: what the model sees, and its typed effect.
#[derive(Clone, Debug)]
pub struct Called {
    pub seen: Value,
    pub effect: Effect,
}

pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = Result<Called, ToolError>> + Send + 'a>>;

/// A tool as the registry holds it: named, described, with a JSON Schema, called on the
/// JSON arguments a model wrote.
pub trait DynTool: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn audience(&self) -> Audience;
    fn parameters(&self) -> Value;
    fn call<'a>(&'a self, ctx: &'a ToolContext<'a>, arguments: &'a str) -> ToolFuture<'a>;
}

/// Runs a tool on typed arguments: its typed result and effect (the dialogue rules' way in).
pub async fn call<T: Tool>(
    ctx: &ToolContext<'_>,
    args: T::Args,
) -> Result<(T::Output, Effect), ToolError> {
    let output = T::call(ctx, args).await?;
    let effect = T::effect(&output);
    Ok((output, effect))
}

struct Registered<T>(std::marker::PhantomData<T>);

impl<T: Tool> DynTool for Registered<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn description(&self) -> &'static str {
        T::DESCRIPTION
    }

    fn audience(&self) -> Audience {
        T::AUDIENCE
    }

    fn parameters(&self) -> Value {
        let mut schema = serde_json::to_value(schemars::schema_for!(T::Args)).unwrap_or_default();
        if let Some(o) = schema.as_object_mut() {
            o.remove("$schema");
            o.remove("title");
        }
        simplify(&mut schema);
        schema
    }

    fn call<'a>(&'a self, ctx: &'a ToolContext<'a>, arguments: &'a str) -> ToolFuture<'a> {
        Box::pin(async move {
            let text = if arguments.trim().is_empty() {
                "{}"
            } else {
                arguments
            };
            let args: T::Args = serde_json::from_str(text).map_err(|e| {
                ToolError::invalid(format!(
                    "The arguments do not fit the {} schema: {e}",
                    T::NAME
                ))
            })?;
            let (output, effect) = call::<T>(ctx, args).await?;
            let seen = serde_json::to_value(output)
                .map_err(|e| ToolError::new("internal", format!("unreadable result: {e}")))?;
            Ok(Called { seen, effect })
        })
    }
}

/// Shorter schemas for the model (they are sent on every call): an optional field is
/// simply not required, so `["string", "null"]` becomes `"string"` and `default: null` goes.
fn simplify(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            if let Some(Value::Array(types)) = map.get("type")
                && types.len() == 2
                && let Some(kind) = types.iter().find(|t| *t != "null").cloned()
                && types.iter().any(|t| t == "null")
            {
                map.insert("type".into(), kind);
            }
            map.values_mut().for_each(simplify);
        }
        Value::Array(items) => items.iter_mut().for_each(simplify),
        _ => {}
    }
}

fn register<T: Tool>() -> Box<dyn DynTool> {
    Box::new(Registered::<T>(std::marker::PhantomData))
}

/// Every tool the agent has; adding one is one file and one line here.
pub struct Registry {
    tools: Vec<Box<dyn DynTool>>,
}

impl Registry {
    pub fn new() -> Self {
        Self {
            tools: vec![
                register::<browse::FindSpecialty>(),
                register::<browse::SearchClinics>(),
                register::<browse::ListDoctors>(),
                register::<browse::ListAvailableSlots>(),
                register::<booking::ProposeBooking>(),
                register::<booking::ConfirmBooking>(),
                register::<booking::ProposeReschedule>(),
                register::<booking::ProposeCancellation>(),
                register::<booking::MyAppointments>(),
                register::<booking::JoinWaitlist>(),
                register::<care::ExtractCarePlan>(),
                register::<care::MyCarePlan>(),
                register::<care::ProposeCheckIn>(),
                register::<records::MyLabResults>(),
                register::<records::MyPrescriptions>(),
                register::<records::PatientSummary>(),
                register::<billing::MyInvoices>(),
            ],
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &dyn DynTool> {
        self.tools.iter().map(|t| t.as_ref())
    }

    pub fn get(&self, name: &str) -> Option<&dyn DynTool> {
        self.all().find(|t| t.name() == name)
    }

    /// The file each tool's schema is kept in (`tools/<name>.json`), with its content.
    pub fn schema_files(&self) -> Vec<(String, String)> {
        self.all()
            .map(|t| {
                let doc = serde_json::json!({
                    "name": t.name(),
                    "description": t.description(),
                    "parameters": t.parameters(),
                });
                let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
                (format!("{}.json", t.name()), text)
            })
            .collect()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// A uuid the model sent as text, or a tool error it can correct.
pub fn parse_id(field: &str, value: &str) -> Result<Uuid, ToolError> {
    value.trim().parse().map_err(|_| {
        ToolError::invalid(format!(
            "{field} must be an id exactly as a previous tool result gave it, not {value:?}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tools/*.json` is what the code defines; regenerate with
    /// `CLINIC_WRITE_TOOL_SCHEMAS=1 cargo test --lib tool_schemas`.
    #[test]
    fn tool_schemas_in_the_tools_folder_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
        let write = std::env::var_os("CLINIC_WRITE_TOOL_SCHEMAS").is_some();
        let registry = Registry::new();
        for (file, text) in registry.schema_files() {
            let path = dir.join(&file);
            if write {
                std::fs::write(&path, &text).unwrap();
            }
            let stored = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                stored, text,
                "tools/{file} is stale: run CLINIC_WRITE_TOOL_SCHEMAS=1 cargo test --lib tool_schemas"
            );
        }
        let names: Vec<&str> = registry.all().map(|t| t.name()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn every_argument_is_described_for_the_model() {
        for tool in Registry::new().all() {
            let params = tool.parameters();
            for (name, prop) in params["properties"].as_object().into_iter().flatten() {
                assert!(
                    prop.get("description").is_some(),
                    "{}.{name} has no description",
                    tool.name()
                );
            }
        }
    }
}
