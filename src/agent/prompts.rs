//! The prompts, as tera templates in `prompts/` (compiled into the binary). Each template
//! starts with a `version:` comment that is recorded with every model call.

use serde::Serialize;
use tera::{Context, Tera};

use crate::error::{Error, Result};

const SYSTEM: &str = include_str!("../../prompts/system.tera");
const EXTRACT: &str = include_str!("../../prompts/extract_plan.tera");
const UNDERSTAND: &str = include_str!("../../prompts/understand.tera");
const DRAFT_RECORD: &str = include_str!("../../prompts/draft_record.tera");

pub struct Prompts {
    tera: Tera,
    system_version: String,
    extract_version: String,
    draft_record_version: String,
    /// Rendered once: the same bytes on every call, so servers can reuse their prompt cache.
    understand: String,
    understand_version: String,
}

/// What the system prompt is rendered from.
#[derive(Serialize)]
pub struct SystemFacts<'a> {
    pub service: &'a str,
    pub today: String,
    pub weekday: String,
    pub time_zone: &'a str,
    /// The signed-in user's name, if any.
    pub user: Option<&'a str>,
    pub summary: &'a str,
    /// The user's interface language (ISO 639-1), if known.
    pub language: Option<&'a str>,
}

fn version_of(template: &str) -> String {
    template
        .lines()
        .next()
        .and_then(|l| l.split("version:").nth(1))
        .map(|v| v.trim().trim_end_matches("-#}").trim().to_owned())
        .unwrap_or_else(|| "unversioned".into())
}

impl Prompts {
    pub fn new() -> Result<Self> {
        let mut tera = Tera::default();
        tera.add_raw_template("system", SYSTEM)
            .map_err(|e| Error::internal(format!("prompts/system.tera: {e}")))?;
        tera.add_raw_template("extract_plan", EXTRACT)
            .map_err(|e| Error::internal(format!("prompts/extract_plan.tera: {e}")))?;
        tera.add_raw_template("draft_record", DRAFT_RECORD)
            .map_err(|e| Error::internal(format!("prompts/draft_record.tera: {e}")))?;
        let understand = Tera::one_off(UNDERSTAND, &Context::new(), false)
            .map_err(|e| Error::internal(format!("prompts/understand.tera: {e}")))?;
        Ok(Self {
            understand: understand.trim().to_owned(),
            understand_version: version_of(UNDERSTAND),
            tera,
            system_version: version_of(SYSTEM),
            extract_version: version_of(EXTRACT),
            draft_record_version: version_of(DRAFT_RECORD),
        })
    }

    /// The system prompt of the understanding call (no per-call facts in it).
    pub fn understand(&self) -> &str {
        &self.understand
    }

    pub fn understand_version(&self) -> &str {
        &self.understand_version
    }

    pub fn extract_version(&self) -> &str {
        &self.extract_version
    }

    /// The care-plan extraction prompt, with the output's JSON Schema.
    pub fn extract(&self, today: &str, schema: &str) -> Result<String> {
        let mut context = Context::new();
        context.insert("today", today);
        context.insert("schema", schema);
        self.tera
            .render("extract_plan", &context)
            .map_err(|e| Error::internal(format!("rendering the extraction prompt: {e}")))
    }

    pub fn draft_record_version(&self) -> &str {
        &self.draft_record_version
    }

    /// The visit-record drafting prompt, with the output's JSON Schema.
    pub fn draft_record(&self, schema: &str) -> Result<String> {
        let mut context = Context::new();
        context.insert("schema", schema);
        self.tera
            .render("draft_record", &context)
            .map_err(|e| Error::internal(format!("rendering the record-draft prompt: {e}")))
    }

    pub fn system_version(&self) -> &str {
        &self.system_version
    }

    pub fn system(&self, facts: &SystemFacts<'_>) -> Result<String> {
        let context = Context::from_serialize(facts)
            .map_err(|e| Error::internal(format!("prompt facts: {e}")))?;
        self.tera
            .render("system", &context)
            .map_err(|e| Error::internal(format!("rendering the system prompt: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_prompt_carries_the_date_zone_and_user_and_a_version() {
        let prompts = Prompts::new().unwrap();
        assert_eq!(prompts.system_version(), "system-2026-11-24.2");
        let text = prompts
            .system(&SystemFacts {
                service: "Clinic",
                today: "2026-11-24".into(),
                weekday: "Tuesday".into(),
                time_zone: "Europe/Lisbon",
                user: Some("Ana"),
                summary: "",
                language: Some("pt"),
            })
            .unwrap();
        assert!(text.contains("interface is set to \"pt\""));
        assert!(text.contains("Today is Tuesday 2026-11-24"));
        assert!(text.contains("Europe/Lisbon"));
        assert!(text.contains("signed in as Ana"));
        assert!(!text.contains("version:"));
    }
}
