//! The languages people hear from us in, and how a date reads in each: the day and month
//! names and the order of a date's parts, shared by the messages and the assistant's replies.

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A language we write to people in (ISO 639-1): `en`, `pt` or `es`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Pt,
    Es,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::En, Language::Pt, Language::Es];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Pt => "pt",
            Self::Es => "es",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == code)
    }
}

/// A column read back (the schema's CHECK holds it to the supported codes).
impl TryFrom<String> for Language {
    type Error = String;

    fn try_from(code: String) -> Result<Self, String> {
        Self::parse(&code).ok_or_else(|| format!("unsupported language {code:?}"))
    }
}

const WEEKDAYS: [[&str; 7]; 3] = [
    [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ],
    [
        "segunda-feira",
        "terça-feira",
        "quarta-feira",
        "quinta-feira",
        "sexta-feira",
        "sábado",
        "domingo",
    ],
    [
        "lunes",
        "martes",
        "miércoles",
        "jueves",
        "viernes",
        "sábado",
        "domingo",
    ],
];

const MONTHS: [[&str; 12]; 3] = [
    [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    [
        "janeiro",
        "fevereiro",
        "março",
        "abril",
        "maio",
        "junho",
        "julho",
        "agosto",
        "setembro",
        "outubro",
        "novembro",
        "dezembro",
    ],
    [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
];

fn index(lang: Language) -> usize {
    match lang {
        Language::En => 0,
        Language::Pt => 1,
        Language::Es => 2,
    }
}

fn weekday(lang: Language, d: NaiveDate) -> &'static str {
    WEEKDAYS[index(lang)][d.weekday().num_days_from_monday() as usize]
}

fn month(lang: Language, d: NaiveDate) -> &'static str {
    MONTHS[index(lang)][d.month0() as usize]
}

fn hh_mm(at: DateTime<Tz>) -> String {
    format!("{:02}:{:02}", at.hour(), at.minute())
}

/// "Tuesday 8 December", "terça-feira, 8 de dezembro", "martes 8 de diciembre".
pub fn date(lang: Language, d: NaiveDate) -> String {
    let (weekday, day, month) = (weekday(lang, d), d.day(), month(lang, d));
    match lang {
        Language::En => format!("{weekday} {day} {month}"),
        Language::Pt => format!("{weekday}, {day} de {month}"),
        Language::Es => format!("{weekday} {day} de {month}"),
    }
}

/// "Tuesday 8 December at 14:00", "terça-feira, 8 de dezembro às 14:00",
/// "martes 8 de diciembre a las 14:00" (the time as the zone of `at` shows it).
pub fn date_and_time(lang: Language, at: DateTime<Tz>) -> String {
    let (date, time) = (date(lang, at.date_naive()), hh_mm(at));
    match lang {
        Language::En => format!("{date} at {time}"),
        Language::Pt => format!("{date} às {time}"),
        Language::Es => format!("{date} a las {time}"),
    }
}

/// With the year and the zone's abbreviation: "Tuesday 8 December 2026 at 14:00 (WET)",
/// "terça-feira, 8 de dezembro de 2026 às 14:00 (WET)",
/// "martes 8 de diciembre de 2026 a las 14:00 (WET)".
pub fn full_date(lang: Language, at: DateTime<Tz>) -> String {
    let (date, year, time) = (date(lang, at.date_naive()), at.year(), hh_mm(at));
    let zone = at.format("%Z");
    match lang {
        Language::En => format!("{date} {year} at {time} ({zone})"),
        Language::Pt => format!("{date} de {year} às {time} ({zone})"),
        Language::Es => format!("{date} de {year} a las {time} ({zone})"),
    }
}

/// The time, then the day: "14:00 on 8 December", "14:00 de 8 de dezembro",
/// "14:00 del 8 de diciembre".
pub fn time_and_day(lang: Language, at: DateTime<Tz>) -> String {
    let d = at.date_naive();
    let (time, day, month) = (hh_mm(at), d.day(), month(lang, d));
    match lang {
        Language::En => format!("{time} on {day} {month}"),
        Language::Pt => format!("{time} de {day} de {month}"),
        Language::Es => format!("{time} del {day} de {month}"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn english_dates_read_as_chrono_writes_them() {
        let lisbon: Tz = "Europe/Lisbon".parse().unwrap();
        for at in [
            Utc.with_ymd_and_hms(2026, 12, 8, 14, 5, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 7, 1, 8, 30, 0).unwrap(),
            Utc.with_ymd_and_hms(2027, 3, 28, 0, 59, 0).unwrap(),
        ] {
            let local = at.with_timezone(&lisbon);
            assert_eq!(
                full_date(Language::En, local),
                local.format("%A %-d %B %Y at %H:%M (%Z)").to_string()
            );
            assert_eq!(
                date_and_time(Language::En, local),
                local.format("%A %-d %B at %H:%M").to_string()
            );
            assert_eq!(
                time_and_day(Language::En, local),
                local.format("%H:%M on %-d %B").to_string()
            );
        }
    }

    #[test]
    fn portuguese_and_spanish_dates_use_their_own_words() {
        let lisbon: Tz = "Europe/Lisbon".parse().unwrap();
        let at = Utc
            .with_ymd_and_hms(2026, 12, 8, 14, 0, 0)
            .unwrap()
            .with_timezone(&lisbon);
        assert_eq!(
            full_date(Language::Pt, at),
            "terça-feira, 8 de dezembro de 2026 às 14:00 (WET)"
        );
        assert_eq!(
            full_date(Language::Es, at),
            "martes 8 de diciembre de 2026 a las 14:00 (WET)"
        );
        assert_eq!(time_and_day(Language::Pt, at), "14:00 de 8 de dezembro");
        assert_eq!(
            date_and_time(Language::Es, at),
            "martes 8 de diciembre a las 14:00"
        );
    }

    #[test]
    fn codes_round_trip() {
        for lang in Language::ALL {
            assert_eq!(Language::parse(lang.as_str()), Some(lang));
            assert_eq!(
                serde_json::to_value(lang).unwrap(),
                serde_json::json!(lang.as_str())
            );
        }
        assert_eq!(Language::parse("fr"), None);
    }
}
