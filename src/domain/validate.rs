//! Field checks that collect every problem of a request before answering.

use crate::error::{Error, FieldError, Result};

#[derive(Default)]
pub struct Checks {
    errors: Vec<FieldError>,
}

pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 128;
pub const MAX_EMAIL: usize = 254;

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

    /// Trims and checks a free-text field by its length in characters.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> String {
        let value = value.trim();
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
        } else if len > max {
            self.fail(field, format!("must be at most {max} characters"));
        } else if value.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
        }
        value.to_owned()
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
}
