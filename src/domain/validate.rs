//! Field checks that collect every problem of a request before answering.

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::{Code, Error, FieldError, Result};

#[derive(Default)]
pub struct Checks {
    errors: Vec<FieldError>,
}

pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 128;
pub const MAX_EMAIL: usize = 254;

/// The dates a request may name: wide enough for any clinic's past and future, narrow
/// enough that every date computed from one stays representable.
pub const EARLIEST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(d) => d,
    None => panic!("a valid date"),
};
pub const LATEST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2199, 12, 31) {
    Some(d) => d,
    None => panic!("a valid date"),
};

/// Refuses query dates outside [`EARLIEST_DATE`, `LATEST_DATE`] with 400 `invalid_query`,
/// naming each field and the range.
pub fn query_dates<'a>(
    dates: impl IntoIterator<Item = (&'a str, Option<NaiveDate>)>,
) -> Result<()> {
    let fields: Vec<FieldError> = dates
        .into_iter()
        .filter_map(|(field, d)| {
            d.filter(|d| !(EARLIEST_DATE..=LATEST_DATE).contains(d))
                .map(|_| field)
        })
        .map(|field| FieldError {
            field: field.to_owned(),
            message: format!("must be between {EARLIEST_DATE} and {LATEST_DATE}"),
        })
        .collect();
    if fields.is_empty() {
        Ok(())
    } else {
        Err(Error::Client {
            code: Code::InvalidQuery,
            detail: format!("Dates must be between {EARLIEST_DATE} and {LATEST_DATE}.").into(),
            fields,
        })
    }
}

/// A date a body names, within [`EARLIEST_DATE`, `LATEST_DATE`].
pub fn check_date(checks: &mut Checks, field: &str, date: NaiveDate) {
    if !(EARLIEST_DATE..=LATEST_DATE).contains(&date) {
        checks.fail(
            field,
            format!("must be between {EARLIEST_DATE} and {LATEST_DATE}"),
        );
    }
}

/// [`query_dates`] for instants (by their UTC date).
pub fn query_instants<'a>(
    instants: impl IntoIterator<Item = (&'a str, Option<DateTime<Utc>>)>,
) -> Result<()> {
    query_dates(
        instants
            .into_iter()
            .map(|(field, t)| (field, t.map(|t| t.date_naive()))),
    )
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Trims and checks free text that may span lines (notes, messages, reasons, bios) by
    /// its length in characters. Line breaks and tabs are text (CRLF and CR become LF);
    /// other control characters and bidirectional overrides are refused, named.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> String {
        let value = value.trim().replace("\r\n", "\n").replace('\r', "\n");
        if self.length(field, &value, min, max)
            && let Some(c) = value
                .chars()
                .find(|&c| c != '\n' && c != '\t' && is_hidden_control(c))
        {
            self.fail(field, format!("must not contain {}", describe(c)));
        }
        value
    }

    /// Trims and checks a one-line value (a person's or a clinic's name, a phone): no line
    /// breaks, control or bidirectional characters, nor invisible ones that would make two
    /// names look alike (a zero-width joiner or non-joiner only inside a word of a script
    /// that needs it).
    pub fn line(&mut self, field: &str, value: &str, min: usize, max: usize) -> String {
        let value = value.trim().to_owned();
        if self.length(field, &value, min, max) {
            let chars: Vec<char> = value.chars().collect();
            let bad = chars.iter().enumerate().find(|&(i, &c)| {
                is_hidden_control(c)
                    || is_invisible(c)
                    || (matches!(c, '\u{200C}' | '\u{200D}') && !inside_word(&chars, i))
            });
            if let Some((_, &c)) = bad {
                self.fail(field, format!("must not contain {}", describe(c)));
            }
        }
        value
    }

    fn length(&mut self, field: &str, value: &str, min: usize, max: usize) -> bool {
        let len = value.chars().count();
        if len < min {
            self.fail(
                field,
                if min == 1 {
                    "must not be empty".into()
                } else {
                    format!("must be at least {min} characters")
                },
            );
            false
        } else if len > max {
            self.fail(field, format!("must be at most {max} characters"));
            false
        } else {
            true
        }
    }

    /// Checks an email address and returns it trimmed and lower-cased.
    pub fn email(&mut self, field: &str, value: &str) -> String {
        let email = value.trim().to_lowercase();
        if email.len() > MAX_EMAIL {
            self.fail(field, format!("must be at most {MAX_EMAIL} characters"));
        } else if !email_address::EmailAddress::is_valid(&email) || !email.contains('.') {
            self.fail(field, "is not a valid email address");
        }
        email
    }

    /// Checks a phone number in E.164 (`+351912345678`) and returns it trimmed.
    pub fn phone(&mut self, field: &str, value: &str) -> String {
        let phone = value.trim().to_owned();
        let digits = phone.strip_prefix('+').unwrap_or("");
        if !(8..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            self.fail(field, "must be E.164, e.g. +351912345678");
        }
        phone
    }

    /// Checks an ISO 4217 currency code and returns it upper-cased.
    pub fn currency(&mut self, field: &str, value: &str) -> String {
        let currency = value.trim().to_uppercase();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            self.fail(field, "must be an ISO 4217 code such as EUR");
        }
        currency
    }

    pub fn password(&mut self, field: &str, value: &str) {
        let len = value.chars().count();
        if len < MIN_PASSWORD {
            self.fail(field, format!("must be at least {MIN_PASSWORD} characters"));
        } else if len > MAX_PASSWORD {
            self.fail(field, format!("must be at most {MAX_PASSWORD} characters"));
        }
    }

    /// Checks a one-time code's shape (the value itself is checked against the store).
    pub fn code(&mut self, field: &str, value: &str, max: usize) -> String {
        let code = value.trim().to_lowercase();
        if code.is_empty() || code.len() > max {
            self.fail(field, format!("must be 1 to {max} characters"));
        }
        code
    }

    /// [`Checks::finish`] for query parameters: a bad query is a 400 `invalid_query`.
    pub fn finish_query(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Client {
                code: Code::InvalidQuery,
                detail: "Some query parameters are invalid.".into(),
                fields: self.errors,
            })
        }
    }

    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::validation(self.errors))
        }
    }
}

/// An integer field that also takes a JSON number with no fraction (`60.0`), as JSON
/// Schema counts those as integers (`#[serde(deserialize_with = "…")]`).
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    use serde::Deserialize;
    let n = serde_json::Number::deserialize(d)?;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (i64::MIN as f64..=i64::MAX as f64).contains(f))
                .map(|f| f as i64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number")))
}

/// [`whole_number`] for an optional field.
pub fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<i64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] i64);
    use serde::Deserialize;
    Ok(Option::<Whole>::deserialize(d)?.map(|w| w.0))
}

/// Control characters (line breaks and tabs included) and the bidirectional embeddings,
/// overrides and isolates that can make text read differently from what it is.
fn is_hidden_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing (zero-width space, word joiner, byte-order mark,
/// directional marks, soft hyphen, Mongolian vowel separator).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{2060}'
            ..='\u{2064}' | '\u{FEFF}'
    )
}

/// A joiner between two letters of a script that is not Latin (Persian, Indic scripts).
fn inside_word(chars: &[char], i: usize) -> bool {
    let letter = |c: Option<&char>| c.is_some_and(|c| c.is_alphabetic() && !c.is_ascii());
    i > 0 && letter(chars.get(i - 1)) && letter(chars.get(i + 1))
}

fn describe(c: char) -> String {
    match c {
        '\n' => "a line break".into(),
        '\t' => "a tab".into(),
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {
            format!("the bidirectional control U+{:04X}", u32::from(c))
        }
        c if c.is_control() => format!("the control character U+{:04X}", u32::from(c)),
        c => format!("the invisible character U+{:04X}", u32::from(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn collects_every_bad_field() {
        let mut c = Checks::new();
        assert_eq!(c.email("email", "  Ann@Example.ORG "), "ann@example.org");
        c.email("email2", "not-an-email");
        c.password("password", "short");
        c.text("name", &"x".repeat(201), 1, 200);
        c.text("empty", "   ", 1, 200);
        let err = c.finish().unwrap_err();
        assert_eq!(err.code(), Code::ValidationFailed);
        match err {
            Error::Client { fields, .. } => {
                let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
                assert_eq!(names, ["email2", "password", "name", "empty"]);
            }
            other => panic!("{other:?}"),
        }
    }

    fn problem(check: impl FnOnce(&mut Checks)) -> Option<String> {
        let mut c = Checks::new();
        check(&mut c);
        match c.finish() {
            Ok(()) => None,
            Err(Error::Client { fields, .. }) => Some(fields[0].message.clone()),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn far_dates_are_a_bad_query_that_names_the_range() {
        let far = NaiveDate::from_ymd_opt(262_142, 12, 20);
        let err = query_dates([("from", far), ("to", None)]).unwrap_err();
        assert_eq!(err.code(), Code::InvalidQuery);
        assert_eq!(
            err.for_people(),
            "from: must be between 1900-01-01 and 2199-12-31"
        );
        assert!(query_dates([("from", NaiveDate::from_ymd_opt(2026, 12, 2))]).is_ok());
    }

    #[test]
    fn free_text_keeps_lines_and_tabs_and_names_what_it_refuses() {
        let mut c = Checks::new();
        assert_eq!(
            c.text("note", "Line one\r\n\tLine two\rthree", 1, 100),
            "Line one\n\tLine two\nthree"
        );
        assert!(c.finish().is_ok());
        assert_eq!(
            problem(|c| {
                c.text("note", "ring \u{7} bell", 1, 100);
            })
            .as_deref(),
            Some("must not contain the control character U+0007")
        );
        assert_eq!(
            problem(|c| {
                c.text("note", "abc \u{202E}fed", 1, 100);
            })
            .as_deref(),
            Some("must not contain the bidirectional control U+202E")
        );
    }

    #[test]
    fn names_refuse_invisible_and_directional_characters() {
        for (name, why) in [
            ("Ana\u{200B}Costa", "the invisible character U+200B"),
            ("Ana\u{202E}atsoC", "the bidirectional control U+202E"),
            ("Ana\u{2066}Costa", "the bidirectional control U+2066"),
            ("Ana\nCosta", "a line break"),
            ("Ana\u{200D}Costa", "the invisible character U+200D"),
            ("\u{FEFF}Ana", "the invisible character U+FEFF"),
        ] {
            assert_eq!(
                problem(|c| {
                    c.line("display_name", name, 1, 100);
                })
                .as_deref(),
                Some(format!("must not contain {why}").as_str()),
                "{name:?}"
            );
        }
        // A Persian name keeps its zero-width non-joiner; accents and other scripts pass.
        for name in [
            "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}",
            "Zoë O'Brien-Łukasz",
            "山田 太郎",
        ] {
            assert_eq!(
                problem(|c| {
                    c.line("display_name", name, 1, 100);
                }),
                None,
                "{name:?}"
            );
        }
    }
}

/// The same rules as the checks above, as JSON Schema for the API description, so that a
/// value the description accepts is one the service accepts (`#[schema(schema_with = …)]`).
pub mod schema {
    use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};

    /// Characters free text may not hold: controls other than tab and line breaks, and
    /// bidirectional embeddings, overrides and isolates.
    const TEXT_EXCLUDED: &str = r"\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069";
    /// Characters a one-line value may not hold: every control, and invisible or
    /// directional characters.
    const LINE_EXCLUDED: &str =
        r"\x00-\x1F\x7F-\x9F\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2069\uFEFF";

    fn string(min: usize, max: usize, pattern: String) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length((min > 0).then_some(min))
            .max_length(Some(max))
            .pattern(Some(pattern))
            .build()
    }

    /// Free text of `min` to `max` characters. The description asks for no surrounding
    /// white space (the service trims it, then counts), so its lengths are the service's.
    fn text(min: usize, max: usize) -> Object {
        let pattern = if min == 0 {
            format!("^[^{TEXT_EXCLUDED}]*$")
        } else {
            format!(r"^[^\s{TEXT_EXCLUDED}]([^{TEXT_EXCLUDED}]*[^\s{TEXT_EXCLUDED}])?$")
        };
        string(min, max, pattern)
    }

    /// A one-line value of `min` to `max` characters, with nothing to trim.
    fn line(min: usize, max: usize) -> Object {
        string(
            min,
            max,
            format!(r"^[^\s{LINE_EXCLUDED}]([^{LINE_EXCLUDED}]*[^\s{LINE_EXCLUDED}])?$"),
        )
    }

    pub fn email() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(super::MAX_EMAIL))
            .pattern(Some(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"))
            .build()
    }

    pub fn password() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(super::MIN_PASSWORD))
            .max_length(Some(super::MAX_PASSWORD))
            .build()
    }

    /// A person's name as they give it when registering.
    pub fn own_name() -> Object {
        line(1, 100)
    }

    /// A person's name as a clinic enters it.
    pub fn person_name() -> Object {
        line(2, 120)
    }

    /// A clinic's name.
    pub fn clinic_name() -> Object {
        line(2, 200)
    }

    /// A postal address (may span lines).
    pub fn address() -> Object {
        text(3, 500)
    }

    /// A phone number as written.
    pub fn phone() -> Object {
        line(3, 40)
    }

    /// A chat message.
    pub fn message() -> Object {
        text(1, 2000)
    }

    /// A doctor's note.
    pub fn note() -> Object {
        text(1, crate::domain::care::notes::MAX_CHARS)
    }

    /// A reason given with a booking or a cancellation (may be empty).
    pub fn reason() -> Object {
        text(0, 1000)
    }

    /// A description or a biography (may be empty).
    pub fn long_text() -> Object {
        text(0, 4000)
    }

    /// A waitlist note (may be empty).
    pub fn short_note() -> Object {
        text(0, 500)
    }

    /// Why an admin decided as they did (3 to 1,000 characters).
    pub fn decision_reason() -> Object {
        text(3, 1000)
    }

    fn pattern(pattern: &str) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .build()
    }

    fn one_of(values: &[&str]) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied()))
            .build()
    }

    /// A local time of day, `HH:MM`.
    pub fn hhmm() -> Object {
        pattern("^([01][0-9]|2[0-3]):[0-5][0-9]$")
    }

    /// Breaks as `["HH:MM", "HH:MM"]` pairs.
    pub fn breaks() -> utoipa::openapi::schema::Array {
        use utoipa::openapi::schema::ArrayBuilder;
        ArrayBuilder::new()
            .items(
                ArrayBuilder::new()
                    .items(hhmm())
                    .min_items(Some(2))
                    .max_items(Some(2)),
            )
            .build()
    }

    pub fn weekday() -> Object {
        one_of(&["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    }

    /// A visit type: lower-case words joined by `_`, 2 to 40 characters.
    pub fn visit_type() -> Object {
        let mut o = pattern("^[a-z0-9]+(_[a-z0-9]+)*$");
        o.min_length = Some(2);
        o.max_length = Some(40);
        o
    }

    /// An ISO 4217 code (any case).
    pub fn currency() -> Object {
        pattern("^[A-Za-z]{3}$")
    }

    /// An E.164 phone number.
    pub fn e164() -> Object {
        pattern(r"^\+[0-9]{8,15}$")
    }

    pub fn channel() -> Object {
        one_of(&["email", "sms", "whatsapp"])
    }

    /// The roles a clinic's team is invited to here (doctors come with their profile).
    pub fn team_role() -> Object {
        one_of(&["clinic_staff", "clinic_admin"])
    }

    /// Web origins that embed the widget, e.g. `https://clinic.example` (at most 20).
    pub fn origins() -> utoipa::openapi::schema::Array {
        use utoipa::openapi::schema::ArrayBuilder;
        ArrayBuilder::new()
            .items(pattern(r"^https?://[A-Za-z0-9.\-:\[\]]+/?$"))
            .max_items(Some(20))
            .build()
    }

    /// A short clinical item: an allergy, a condition, a medicine, a test name.
    pub fn clinical_item() -> Object {
        line(1, 200)
    }

    /// A list of up to 50 short clinical items.
    pub fn clinical_items() -> utoipa::openapi::schema::Array {
        use utoipa::openapi::schema::ArrayBuilder;
        ArrayBuilder::new()
            .items(clinical_item())
            .max_items(Some(50))
            .build()
    }

    /// Clinical free text: findings, a plan, a history (may be empty).
    pub fn clinical_text() -> Object {
        text(0, 10_000)
    }

    /// Why a signed record is amended or removed (3 to 1,000 characters).
    pub fn amendment_reason() -> Object {
        text(3, 1000)
    }

    /// An addendum to a signed record.
    pub fn addendum() -> Object {
        text(1, 10_000)
    }

    /// An identifier as written on a card: a national or insurance number, a relation.
    pub fn short_line() -> Object {
        line(1, 60)
    }

    /// A calendar date from 1900 to 2199.
    pub fn date() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
            .pattern(Some("^(19|2[01])[0-9]{2}-[0-9]{2}-[0-9]{2}$"))
            .build()
    }

    /// An ICD-10 code as written, e.g. `J45.9` or `j459`.
    pub fn icd10() -> Object {
        pattern("^[A-Za-z][0-9]{2}(\\.?[0-9A-Za-z]{1,2})?$")
    }

    /// `true`: the only answer that starts a conversation.
    pub fn consent() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([true]))
            .build()
    }

    /// An IANA time zone name, as the bundled database knows them.
    pub fn time_zone() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
            .build()
    }
}
