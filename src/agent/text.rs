//! Reading what people type: lower case, accents folded away ("mañana" → "manana"),
//! punctuation dropped, and words compared with room for typing mistakes ("tomorow",
//! "realy", "dentsit"), so the rules that must not miss (red flags, yes and no) and the
//! offline assistant read messages as people write them.

use unicode_normalization::UnicodeNormalization;

/// The message folded for matching: lower case, no diacritics, words separated by one
/// space, apostrophes kept inside words ("can't").
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
    {
        let c = match c {
            '’' | '‘' | '`' => '\'',
            'ß' => 's',
            c => c,
        };
        if c.is_alphanumeric() || (c == '\'' && !space) {
            out.extend(c.to_lowercase());
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    let trimmed = out.trim_end().trim_end_matches('\'').len();
    out.truncate(trimmed);
    out
}

/// The words of a folded message.
pub fn words(folded: &str) -> Vec<&str> {
    folded.split(' ').filter(|w| !w.is_empty()).collect()
}

/// `word` is `target` or a slip of the keyboard away from it: one edit for words of
/// five letters or more, two from nine; shorter words must match exactly.
pub fn near(word: &str, target: &str) -> bool {
    if word == target {
        return true;
    }
    // Most words differ from the target at once (a slip must keep the first letter).
    if word.as_bytes().first() != target.as_bytes().first() {
        return false;
    }
    // Real words a slip away from words the rules look for ("cancer" is not "cancel").
    if DISTINCT.contains(&word) {
        return false;
    }
    let n = target.chars().count();
    let allowed = match n {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    };
    allowed > 0
        && word.chars().count().abs_diff(n) <= allowed
        && word.chars().next() == target.chars().next()
        && strsim::damerau_levenshtein(word, target) <= allowed
}

const DISTINCT: &[&str] = &["cancer", "answer", "cancers", "dancer", "heart", "hearts"];

/// A pattern word: `stem*` matches any word starting with `stem` (with one slip allowed on
/// stems of four letters or more), anything else matches by [`near`].
pub fn matches(word: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(stem) => {
            if word.starts_with(stem) {
                return true;
            }
            // A stem of four letters or more forgives one slip within it (not the first).
            if word.as_bytes().first() != stem.as_bytes().first() {
                return false;
            }
            let n = stem.chars().count();
            n >= 4
                && !DISTINCT.contains(&word)
                && word.chars().next() == stem.chars().next()
                && (n - 1..=n + 1).any(|k| {
                    // The word's first `k` characters, when it has that many.
                    let end = word.char_indices().nth(k).map_or(word.len(), |(i, _)| i);
                    let prefix = &word[..end];
                    (end < word.len() || prefix.chars().count() == k)
                        && strsim::damerau_levenshtein(prefix, stem) <= 1
                })
        }
        None => near(word, pattern),
    }
}

/// Where the phrase (pattern words separated by spaces, `a|b` for either) starts in
/// `words`, each word matched by [`matches`].
pub fn find_phrase(words: &[&str], phrase: &str) -> Option<usize> {
    let parts = phrase.split(' ').count();
    if parts > words.len() {
        return None;
    }
    (0..=words.len() - parts).find(|&i| {
        phrase
            .split(' ')
            .zip(&words[i..])
            .all(|(p, w)| p.split('|').any(|alt| matches(w, alt)))
    })
}

pub fn has_phrase(words: &[&str], phrase: &str) -> bool {
    find_phrase(words, phrase).is_some()
}

pub fn has_any(words: &[&str], phrases: &[&str]) -> bool {
    phrases.iter().any(|p| has_phrase(words, p))
}

/// A word of group `a` and one of group `b` within `window` words of each other, either
/// order ("chest … pain", "dolor en el pecho").
pub fn near_each_other(words: &[&str], a: &[&str], b: &[&str], window: usize) -> bool {
    let at = |group: &[&str]| -> Vec<usize> {
        words
            .iter()
            .enumerate()
            .filter(|(_, w)| group.iter().any(|p| matches(w, p)))
            .map(|(i, _)| i)
            .collect()
    };
    let (xs, ys) = (at(a), at(b));
    xs.iter()
        .any(|x| ys.iter().any(|y| x != y && x.abs_diff(*y) <= window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_fold_to_plain_words() {
        assert_eq!(fold("  Mañana, por la TARDE?! "), "manana por la tarde");
        assert_eq!(fold("I can’t breathe..."), "i can't breathe");
        assert_eq!(fold("Não consigo"), "nao consigo");
        assert_eq!(fold("'quoted'"), "quoted");
    }

    #[test]
    fn typing_slips_are_forgiven_on_long_words_only() {
        assert!(near("tomorow", "tomorrow"));
        assert!(near("realy", "really"));
        assert!(near("dentsit", "dentist"));
        assert!(!near("yes", "yet"));
        assert!(!near("no", "to"));
        assert!(matches("suicidal", "suicid*"));
        assert!(matches("sucidal", "suicid*"));
        assert!(matches("suicdal", "suicid*"));
        assert!(!matches("succeed", "suicid*"));
        let w = words("i have pain in my chest and arm");
        assert!(near_each_other(&w, &["chest"], &["pain*"], 4));
        assert!(has_phrase(
            &words("i cant breath"),
            "cant|can't breathe|breath"
        ));
    }
}
