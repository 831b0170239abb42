//! Rules the agent applies itself, whatever the model says: red-flag symptoms and crisis
//! language get the emergency or crisis answer at once (English, Portuguese and Spanish,
//! misspelt and unpunctuated too), and only a clear yes or no from the user acts on the
//! pending proposal.

use crate::agent::text::{self, has_any, near_each_other};

/// Why a message must not get an ordinary answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alarm {
    /// Possible medical emergency: call the emergency number.
    Emergency,
    /// Thoughts of suicide or self-harm: a crisis line, and the emergency number.
    Crisis,
}

/// Self-harm and suicide, as phrases (`*` ends a stem, `a|b` is either word).
const CRISIS: &[&str] = &[
    "suicid*",
    "kill|killing myself",
    "end|ending|take|taking my life",
    "end|ending|take|taking my own life",
    "end it all",
    "want|wanted|going to die",
    "wanna die",
    "wish i was|were dead",
    "better off dead",
    "better off without me",
    "better off if i",
    "if i was|were gone",
    "want|going to end it",
    "no point in|to living|live",
    "cant|can't go on",
    "cannot go on",
    "no quiero seguir viviendo",
    "estarian mejor sin mi",
    "nao aguento mais viver",
    "estariam melhor sem mim",
    "dont|don't want to live|exist",
    "do not want to live|exist",
    "dont|don't want to be alive",
    "no reason to live",
    "to hurt|harm|cut|kill myself",
    "harm|harming myself",
    "hurting myself on purpose",
    "self harm*",
    "selfharm*",
    // Spanish
    "matarme",
    "quitarme la vida",
    "acabar con mi vida",
    "quiero|quisiera morir*",
    "no quiero vivir",
    "hacerme dano",
    "me quiero morir",
    "me quiero hacer dano",
    "quiero hacerme dano",
    "quero me magoar",
    "me magoar",
    // Portuguese
    "me matar",
    "matar me",
    "tirar a minha vida",
    "acabar com a minha vida",
    "quero morrer",
    "nao quero viver",
    "nao quero mais viver",
    "me machucar",
];

/// Red flags written as phrases.
const EMERGENCY_PHRASES: &[&str] = &[
    "heart attack",
    "cant|can't|cannot|couldnt|couldn't breathe|breath|breathing",
    "can not breathe|breath",
    "not breathing",
    "struggling|hard to breathe|breath",
    "difficulty|trouble|struggling breathing",
    "short of breath",
    "stroke",
    "face drooping|droopy",
    "face is drooping|droopy",
    "slurred|slurring speech|words",
    "speech is|was|sounds slurred",
    "talking|speaking funny|strange|slurred",
    "cant|can't|cannot|couldnt|couldn't move her|his|my|their arm|leg|face|side",
    "sudden weakness|numbness",
    "one side of her|his|my face|body",
    "overdos*",
    "too many pills|tablets",
    "took|taken|swallowed|drank too many",
    "whole bottle|box|pack|packet of",
    "swallowed|drank bleach|poison*",
    "poisoned",
    "drank|swallowed|ate|took bleach|detergent|poison|antifreeze|chlorine",
    // Spanish and Portuguese: drank or swallowed bleach, poison
    "bebio|trago|tomo|bebeu|engoliu|tomou lejia|veneno|lixivia|detergente|cloro",
    "bebio|trago|tomo|bebeu|engoliu|tomou * lejia|veneno|lixivia|detergente|cloro",
    "unconscious",
    "passed out",
    "not waking up",
    "wont|won't|doesnt|doesn't stop bleeding",
    "will not stop bleeding",
    "bleeding wont|won't|doesnt|doesn't stop",
    "bleeding heavily|badly|a lot",
    "severe|heavy bleeding",
    "coughing|vomiting blood",
    "throwing up blood",
    "seizure*",
    "anaphyla*",
    "throat closing|swelling",
    "throat is closing|swelling",
    "tongue|lips|face|throat swelling|swollen",
    "tongue|lips|face|throat are|is swelling|swollen",
    "swollen tongue|lips|throat",
    "worst headache",
    // Spanish
    "infarto",
    "no puedo respirar",
    "me ahogo",
    "dificultad para respirar",
    "derrame cerebral",
    "ictus",
    "cara torcida|caida",
    "sobredosis",
    "demasiadas pastillas",
    "envenen*",
    "intoxicac*",
    "inconsciente",
    "desmayad*",
    "no para de sangrar",
    "sangrando mucho",
    "hemorragia",
    "convulsion*",
    "se me cierra la garganta",
    // Portuguese
    "ataque cardiaco",
    "nao consigo respirar",
    "falta de ar",
    "avc",
    "boca torta",
    "fala enrolada|arrastada",
    "comprimidos demais",
    "muitos comprimidos",
    "envenenad*",
    "desmaiad*",
    "nao para de sangrar",
    "sangrando muito",
    "convuls*",
    "garganta fechando|inchada",
];

/// Body parts and sensations that together are a red flag ("pain in my chest",
/// "dolor en el pecho", "aperto no peito", "my arm is numb and my chest hurts").
const CHEST: &[&str] = &["chest", "pecho", "peito", "torax"];
const CHEST_FEELING: &[&str] = &[
    "pain*", "hurt*", "tight*", "pressure", "crush*", "squeez*", "dolor", "duele", "opresion",
    "dor", "doi", "aperto", "apertado", "pressao",
];

pub fn alarm(message: &str) -> Option<Alarm> {
    let folded = text::fold(message);
    let words = text::words(&folded);
    if has_any(&words, CRISIS) {
        return Some(Alarm::Crisis);
    }
    if has_any(&words, EMERGENCY_PHRASES) || near_each_other(&words, CHEST, CHEST_FEELING, 5) {
        return Some(Alarm::Emergency);
    }
    None
}

/// The numbers to call where the patient is (known from their time zone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalNumbers {
    pub emergency: &'static str,
    /// A suicide and crisis line, where one is known.
    pub crisis: Option<&'static str>,
}

/// By time zone: the patient's country decides the numbers. Unknown zones get the two most
/// widespread emergency numbers.
pub fn local_numbers(time_zone: &str) -> LocalNumbers {
    let n = |emergency, crisis| LocalNumbers { emergency, crisis };
    match time_zone {
        "Europe/Lisbon" | "Atlantic/Madeira" | "Atlantic/Azores" => {
            n("112", Some("SNS 24: 808 24 24 24"))
        }
        "Europe/Madrid" | "Atlantic/Canary" | "Africa/Ceuta" => n("112", Some("024")),
        "Europe/Berlin" | "Europe/Busingen" => n("112", Some("0800 111 0 111")),
        "Europe/London" => n("999", Some("Samaritans 116 123")),
        "Europe/Dublin" => n("112", Some("Samaritans 116 123")),
        "America/Sao_Paulo" | "America/Fortaleza" | "America/Recife" | "America/Bahia"
        | "America/Manaus" | "America/Belem" => n("192", Some("CVV 188")),
        "America/Mexico_City" | "America/Monterrey" | "America/Cancun" | "America/Tijuana" => {
            n("911", Some("800 911 2000"))
        }
        tz if tz.starts_with("America/") => n("911", Some("988")),
        tz if tz.starts_with("Europe/") => n("112", None),
        _ => n("112 / 911", None),
    }
}

/// What a message says about the pending proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    Neither,
}

const NO: &[&str] = &[
    "no",
    "nope",
    "nah",
    "not that",
    "never mind",
    "nevermind",
    "don't",
    "dont",
    "do not",
    "cancel that",
    "forget it",
    "decline",
    "nao",
    "nem pensar",
    "esquece",
    "deixa",
    "olvidalo",
    "mejor no",
    "cancela",
];

const YES: &[&str] = &[
    "yes",
    "yeah",
    "yep",
    "yup",
    "yea",
    "sure",
    "ok",
    "okay",
    "k",
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
    "si",
    "claro",
    "vale",
    "de acuerdo",
    "confirmo",
    "perfecto",
    "reservalo",
    "adelante",
    "sim",
    "pode ser",
    "confirmar",
    "esta bem",
    "ta bem",
    "certo",
    "perfeito",
    "pode marcar",
    "marca",
    "bora",
];

const NEGATIONS: &[&str] = &[
    "no", "not", "don't", "dont", "never", "cancel", "stop", "wait", "but", "nao", "pero", "mas",
    "espera",
];

pub fn answer_to_proposal(message: &str) -> Answer {
    let folded = text::fold(message);
    let words = text::words(&folded);
    if words.is_empty() || words.len() > 12 {
        return Answer::Neither;
    }
    // Exact words here: a slip that turns "no" into "yes" must not book.
    let starts = |phrases: &[&str]| {
        phrases.iter().any(|p| {
            let pw: Vec<&str> = p.split(' ').collect();
            words.len() >= pw.len() && words[..pw.len()] == pw[..]
        })
    };
    if starts(NO) {
        return Answer::No;
    }
    if starts(YES) && !words.iter().skip(1).any(|w| NEGATIONS.contains(w)) {
        return Answer::Yes;
    }
    Answer::Neither
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_flags_are_caught_in_three_languages_misspelt_too() {
        for m in [
            "I have crushing chest pain and my left arm is numb",
            "chest pain left arm numb",
            "my chest realy hurts and my arm is numb",
            "my dad's face is drooping and he has slurred speech",
            "I took too many pills",
            "my son swallowed bleach",
            "I cant breath",
            "tengo un dolor muy fuerte en el pecho",
            "no puedo respirar",
            "estou com uma dor no peito muito forte",
            "nao consigo respirar",
            "my lips are swelling after a bee sting",
            "she won't stop bleeding",
            "my mom suddenly cant move her left arm and her speech is slurred",
            "o meu filho bebeu lixívia",
        ] {
            assert_eq!(alarm(m), Some(Alarm::Emergency), "{m}");
        }
        for m in [
            "I want to kill myself",
            "i want to end my life",
            "feeling sucidal tonight",
            "i dont want to live anymore",
            "quiero morirme",
            "ya no quiero vivir",
            "quero morrer",
            "penso em me matar",
            "me quiero hacer daño, ya no aguanto más",
            "i think everyone would be better off if i was gone",
        ] {
            assert_eq!(alarm(m), Some(Alarm::Crisis), "{m}");
        }
        for m in [
            "I have an itchy rash on my arm",
            "my knee hurts when I climb stairs",
            "I need a dentist tomorrow morning",
            "tengo dolor de muelas",
            "quero marcar uma consulta de pediatria",
            "I feel anxious all the time",
            "can I see a cardiologist for a check-up",
        ] {
            assert_eq!(alarm(m), None, "{m}");
        }
    }

    #[test]
    fn local_numbers_follow_the_time_zone() {
        assert_eq!(local_numbers("America/New_York").emergency, "911");
        assert_eq!(local_numbers("America/New_York").crisis, Some("988"));
        assert_eq!(local_numbers("Europe/Lisbon").emergency, "112");
        assert_eq!(local_numbers("Europe/Madrid").crisis, Some("024"));
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
            "sí, por favor",
            "sim",
            "vale",
        ] {
            assert_eq!(answer_to_proposal(yes), Answer::Yes, "{yes}");
        }
        for no in [
            "no, not that one, never mind",
            "No thanks",
            "never mind",
            "don't book it",
            "não",
        ] {
            assert_eq!(answer_to_proposal(no), Answer::No, "{no}");
        }
        for neither in [
            "yes but not on tuesday",
            "what about friday?",
            "is it with a woman doctor",
            "ok wait, no",
            "",
            "sí pero no el martes",
        ] {
            assert_eq!(answer_to_proposal(neither), Answer::Neither, "{neither}");
        }
    }
}
