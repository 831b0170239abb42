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

    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::validation(self.errors))
        }
    }
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
