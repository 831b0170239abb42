//! Rules the orchestrator applies itself, whatever the model says: red-flag symptoms get
//! the emergency answer at once, and only a clear yes or no from the user acts on the
//! pending proposal.

/// Phrases that mean "get help now", matched on the lower-cased message.
const RED_FLAGS: &[&str] = &[
    "chest pain",
    "crushing chest",
    "chest is tight",
    "tightness in my chest",
    "heart attack",
    "can't breathe",
    "cannot breathe",
    "can not breathe",
    "struggling to breathe",
    "difficulty breathing",
    "short of breath and",
    "stroke",
    "face is drooping",
    "face drooping",
    "slurred speech",
    "can't move my arm",
    "severe bleeding",
    "bleeding heavily",
    "won't stop bleeding",
    "wont stop bleeding",
    "coughing up blood",
    "vomiting blood",
    "suicid",
    "kill myself",
    "end my life",
    "want to die",
    "hurt myself",
    "overdose",
    "unconscious",
    "passed out",
    "seizure",
    "fitting",
    "anaphyla",
    "throat is closing",
    "throat closing",
    "swollen tongue",
    "worst headache of my life",
];

pub const EMERGENCY_REPLY: &str = "This may be an emergency. Please call your local emergency number now \
(112 in Europe, 911 in the US) or go to the nearest emergency department. If you are thinking about \
harming yourself, call or text a crisis line now (988 in the US) or your local emergency number. \
I cannot help with emergencies in this chat.";

pub fn is_red_flag(message: &str) -> bool {
    let text = message.to_lowercase();
    RED_FLAGS.iter().any(|p| text.contains(p))
}

/// What a message says about the pending proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    Neither,
}

pub fn answer_to_proposal(message: &str) -> Answer {
    let text: String = message
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || words.len() > 12 {
        return Answer::Neither;
    }
    let starts = |phrases: &[&str]| {
        phrases.iter().any(|p| {
            let pw: Vec<&str> = p.split(' ').collect();
            words.len() >= pw.len() && words[..pw.len()] == pw[..]
        })
    };
    const NEGATIONS: &[&str] = &[
        "no", "not", "don't", "dont", "never", "cancel", "stop", "wait", "but",
    ];
    if starts(&[
        "no",
        "nope",
        "nah",
        "not that",
        "never mind",
        "nevermind",
        "don't",
        "dont",
        "cancel that",
        "forget it",
        "decline",
    ]) {
        return Answer::No;
    }
    let yes = starts(&[
        "yes",
        "yeah",
        "yep",
        "yup",
        "sure",
        "ok",
        "okay",
        "confirm",
        "confirmed",
        "please book",
        "book it",
        "go ahead",
        "do it",
        "that's fine",
        "thats fine",
        "sounds good",
        "perfect",
        "great",
        "correct",
        "y",
        "please do",
        "that works",
        "let's do it",
        "lets do it",
    ]);
    if yes && !words.iter().skip(1).any(|w| NEGATIONS.contains(w)) {
        return Answer::Yes;
    }
    Answer::Neither
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_flags_are_caught_and_ordinary_complaints_are_not() {
        assert!(is_red_flag(
            "I have crushing chest pain and my left arm is numb"
        ));
        assert!(is_red_flag("I want to kill myself"));
        assert!(is_red_flag(
            "my dad's face is drooping and he has slurred speech"
        ));
        assert!(!is_red_flag("I have an itchy rash on my arm"));
        assert!(!is_red_flag("my knee hurts when I climb stairs"));
    }

    #[test]
    fn only_a_clear_yes_confirms() {
        for yes in [
            "yes please, book it",
            "Yes",
            "ok",
            "Sure, go ahead",
            "confirm",
            "sounds good!",
        ] {
            assert_eq!(answer_to_proposal(yes), Answer::Yes, "{yes}");
        }
        for no in [
            "no, not that one, never mind",
            "No thanks",
            "never mind",
            "don't book it",
        ] {
            assert_eq!(answer_to_proposal(no), Answer::No, "{no}");
        }
        for neither in [
            "yes but not on tuesday",
            "what about friday?",
            "is it with a woman doctor",
            "ok wait, no",
            "",
        ] {
            assert_eq!(answer_to_proposal(neither), Answer::Neither, "{neither}");
        }
    }
}
