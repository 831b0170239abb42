//! An IANA time zone, parsed once where it enters (a request, the configuration, a stored
//! row) and carried typed from there: a zone name that does not parse is an error at that
//! point, never a silent UTC later.

use std::fmt;
use std::str::FromStr;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A time zone of the IANA database, e.g. `Europe/Lisbon`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeZone(Tz);

impl TimeZone {
    pub const UTC: TimeZone = TimeZone(chrono_tz::UTC);

    /// The zone, for date arithmetic.
    pub fn tz(self) -> Tz {
        self.0
    }

    /// Its IANA name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl From<Tz> for TimeZone {
    fn from(tz: Tz) -> Self {
        Self(tz)
    }
}

impl FromStr for TimeZone {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Tz::from_str(name.trim())
            .map(Self)
            .map_err(|_| format!("{name:?} is not an IANA time zone (like Europe/Lisbon)"))
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for TimeZone {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("An IANA time zone."))
            .examples(["Europe/Lisbon"])
            .into()
    }
}

impl utoipa::ToSchema for TimeZone {}

crate::text_column!(TimeZone, name);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_name_parses_once_and_a_bad_one_is_refused() {
        let lisbon: TimeZone = "Europe/Lisbon".parse().unwrap();
        assert_eq!(lisbon.name(), "Europe/Lisbon");
        assert_eq!(serde_json::to_string(&lisbon).unwrap(), "\"Europe/Lisbon\"");
        let back: TimeZone = serde_json::from_str("\"Europe/Lisbon\"").unwrap();
        assert_eq!(back, lisbon);
        assert!("Mars/Olympus".parse::<TimeZone>().is_err());
        assert!(serde_json::from_str::<TimeZone>("\"Mars/Olympus\"").is_err());
    }
}
