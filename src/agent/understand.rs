//! What one patient message means, as data: the intent, the need (symptoms or the kind of
//! doctor, in English), the day and part of day as said, a pick from the listed times,
//! a doctor's name, and the language. A model fills it in under a JSON Schema
//! ([`Understanding::schema`]); the rules here fill it in without one (the offline
//! assistant) and check the model's answer. What to do next is the dialogue policy's.

use serde::{Deserialize, Serialize};

use crate::agent::text::{self, has_any, near};
pub use crate::domain::clinics::doctors::PartOfDay;
use crate::tools::dates;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Wants a visit or free times, or describes a health problem.
    Book,
    /// Picks one of the times (or appointments) just listed.
    Choose,
    Cancel,
    Reschedule,
    /// Asks about their own appointments.
    MyAppointments,
    /// Asks for their own lab results.
    MyLabResults,
    /// Asks what their doctors prescribed them.
    MyPrescriptions,
    /// Asks what their care plan (treatment, reminders, what to do) is.
    MyCarePlan,
    /// Asks what they owe (their invoices).
    MyInvoices,
    /// Asks what a visit costs.
    Price,
    /// Says they did what a due reminder asked ("I took it").
    CheckIn,
    Waitlist,
    /// Asks what they have, or for medical advice.
    Question,
    Greeting,
    #[default]
    Other,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    #[default]
    En,
    Pt,
    Es,
    Other,
}

impl Lang {
    /// The language replies are written in (English for any other).
    pub fn reply(self) -> Lang {
        match self {
            Lang::Other => Lang::En,
            l => l,
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "pt" => Some(Lang::Pt),
            "es" => Some(Lang::Es),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En | Lang::Other => "en",
            Lang::Pt => "pt",
            Lang::Es => "es",
        }
    }
}

/// One message, understood. Every field but `intent` and `language` may be absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Understanding {
    pub intent: Intent,
    /// The health problem or kind of doctor, in English, in a few words.
    #[serde(default)]
    pub need: Option<String>,
    /// The day wanted, in English words as said ("tomorrow", "next monday", "in 3 days") or YYYY-MM-DD.
    #[serde(default)]
    pub day: Option<String>,
    #[serde(default)]
    pub part_of_day: Option<PartOfDay>,
    /// The number of the listed option picked (1 is the first).
    #[serde(default)]
    pub choice: Option<u32>,
    /// A doctor's name the patient asks for.
    #[serde(default)]
    pub doctor: Option<String>,
    pub language: Lang,
}

impl Understanding {
    /// The JSON Schema a model's answer must follow (every field present, null when unknown:
    /// small models keep to a closed shape better than to optional fields).
    pub fn schema() -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "intent": {"type": "string", "enum": ["book", "choose", "cancel", "reschedule", "my_appointments", "my_lab_results", "my_prescriptions", "my_care_plan", "my_invoices", "price", "check_in", "waitlist", "question", "greeting", "other"]},
                "need": {"type": ["string", "null"]},
                "day": {"type": ["string", "null"]},
                "part_of_day": {"type": ["string", "null"], "enum": ["morning", "afternoon", "evening", null]},
                "choice": {"type": ["integer", "null"]},
                "doctor": {"type": ["string", "null"]},
                "language": {"type": "string", "enum": ["en", "pt", "es", "other"]}
            },
            "required": ["intent", "need", "day", "part_of_day", "choice", "doctor", "language"],
            "additionalProperties": false
        })
    }

    /// Reads a model's answer: the JSON object in it, fields that do not fit left empty.
    pub fn from_model(answer: &str) -> Option<Understanding> {
        let start = answer.find('{')?;
        let end = answer.rfind('}')?;
        let value: serde_json::Value = serde_json::from_str(answer.get(start..=end)?).ok()?;
        let text = |k: &str| {
            value[k]
                .as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "null" && s.len() <= 200)
                .map(str::to_owned)
        };
        fn enum_of<T: serde::de::DeserializeOwned>(
            value: &serde_json::Value,
            k: &str,
        ) -> Option<T> {
            serde_json::from_value(value[k].clone()).ok()
        }
        Some(Understanding {
            intent: enum_of(&value, "intent")?,
            need: text("need"),
            day: text("day").map(|d| d.to_lowercase()),
            part_of_day: enum_of(&value, "part_of_day"),
            choice: value["choice"]
                .as_u64()
                .and_then(|c| u32::try_from(c).ok())
                .filter(|c| (1..=20).contains(c)),
            doctor: text("doctor"),
            language: enum_of(&value, "language").unwrap_or_default(),
        })
    }
}

/// Portuguese and Spanish words (accents folded) → the English the rules read. Longest
/// phrases first; a phrase is whole words.
const LEXICON: &[(&str, &str)] = &[
    ("pasado manana", "day after tomorrow"),
    ("depois de amanha", "day after tomorrow"),
    ("manana por la manana", "tomorrow morning"),
    ("manana en la manana", "tomorrow morning"),
    ("amanha de manha", "tomorrow morning"),
    ("por la manana", "morning"),
    ("en la manana", "morning"),
    ("de manha", "morning"),
    ("pela manha", "morning"),
    ("por la tarde", "afternoon"),
    ("en la tarde", "afternoon"),
    ("a tarde", "afternoon"),
    ("de tarde", "afternoon"),
    ("por la noche", "evening"),
    ("a noite", "evening"),
    ("de noite", "evening"),
    ("fin de semana", "weekend"),
    ("fim de semana", "weekend"),
    ("la semana que viene", "next week"),
    ("semana que viene", "next week"),
    ("la proxima semana", "next week"),
    ("proxima semana", "next week"),
    ("semana que vem", "next week"),
    ("esta semana", "this week"),
    ("proxima segunda", "next monday"),
    ("segunda que vem", "next monday"),
    ("na segunda", "on monday"),
    ("el lunes", "monday"),
    ("segunda feira", "monday"),
    ("terca feira", "tuesday"),
    ("quarta feira", "wednesday"),
    ("quinta feira", "thursday"),
    ("sexta feira", "friday"),
    ("dolor de cabeza", "headache"),
    ("dor de cabeca", "headache"),
    ("dolor de muelas", "toothache"),
    ("dolor de muela", "toothache"),
    ("dor de dente", "toothache"),
    ("dor de dentes", "toothache"),
    ("dolor de garganta", "sore throat"),
    ("dor de garganta", "sore throat"),
    ("medico de familia", "family doctor"),
    ("medico de cabecera", "family doctor"),
    ("medico de clinica geral", "family doctor"),
    ("clinico geral", "family doctor"),
    ("medicina general", "general practice"),
    ("lista de espera", "waitlist"),
    ("resultados dos exames", "my lab results"),
    ("resultados de los analisis", "my lab results"),
    ("resultados de laboratorio", "lab results"),
    ("resultados do laboratorio", "lab results"),
    ("resultados das analises", "my lab results"),
    ("meus exames", "my lab results"),
    ("mis analisis", "my lab results"),
    ("mis examenes", "my lab results"),
    ("analises", "tests"),
    ("analisis", "tests"),
    ("exames", "tests"),
    ("examenes", "tests"),
    ("resultados", "results"),
    ("resultado", "result"),
    ("plano de tratamento", "treatment plan"),
    ("plan de tratamiento", "treatment plan"),
    ("plano de cuidados", "care plan"),
    ("plan de cuidados", "care plan"),
    ("meu plano", "my plan"),
    ("mi plan", "my plan"),
    ("meus lembretes", "my reminders"),
    ("mis recordatorios", "my reminders"),
    ("ja tomei", "i took it"),
    ("ya lo tome", "i took it"),
    ("ya la tome", "i took it"),
    ("ya me lo tome", "i took it"),
    ("tomei o", "i took the"),
    ("tomei a", "i took the"),
    ("tomei os", "i took the"),
    ("me tome", "i took"),
    ("minha receita", "my prescription"),
    ("minhas receitas", "my prescriptions"),
    ("mi receta", "my prescription"),
    ("mis recetas", "my prescriptions"),
    ("receita", "prescription"),
    ("receitas", "prescriptions"),
    ("receta", "prescription"),
    ("recetas", "prescriptions"),
    ("receitou", "prescribed"),
    ("receto", "prescribed"),
    ("quanto devo", "what do i owe"),
    ("quanto lhe devo", "what do i owe"),
    ("cuanto debo", "what do i owe"),
    ("cuanto le debo", "what do i owe"),
    ("devo alguma coisa", "do i owe anything"),
    ("debo algo", "do i owe anything"),
    ("minhas faturas", "my invoices"),
    ("minha fatura", "my invoice"),
    ("mis facturas", "my invoices"),
    ("mi factura", "my invoice"),
    ("faturas", "invoices"),
    ("fatura", "invoice"),
    ("facturas", "invoices"),
    ("factura", "invoice"),
    ("quanto custa", "how much is"),
    ("quanto e", "how much is"),
    ("cuanto cuesta", "how much is"),
    ("cuanto vale", "how much is"),
    ("cuanto es", "how much is"),
    ("preco", "price"),
    ("precos", "prices"),
    ("precio", "price"),
    ("precios", "prices"),
    ("minha medicacao", "my medication"),
    ("mi medicacion", "my medication"),
    ("meus medicamentos", "my medicines"),
    ("mis medicamentos", "my medicines"),
    ("mis citas", "my appointments"),
    ("mis turnos", "my appointments"),
    ("minhas consultas", "my appointments"),
    ("tengo cita", "my appointments"),
    ("tenho consulta", "my appointments"),
    ("quiero cancelar", "cancel"),
    ("quero cancelar", "cancel"),
    ("control prenatal", "prenatal check-up"),
    ("ear hurts", "earache"),
    ("ears hurt", "earache"),
    ("cant hear", "hearing loss"),
    ("can't hear", "hearing loss"),
    ("cannot hear", "hearing loss"),
    ("tooth hurts", "toothache"),
    ("teeth hurt", "toothache"),
    ("head hurts", "headache"),
    ("skin doctor", "dermatologist"),
    ("eye doctor", "ophthalmologist"),
    ("eyes doctor", "ophthalmologist"),
    ("kids doctor", "pediatrician"),
    ("children's doctor", "pediatrician"),
    ("heart doctor", "cardiologist"),
    ("tension alta", "high blood pressure"),
    ("pressao alta", "high blood pressure"),
    ("es grave", "is it serious"),
    ("e grave", "is it serious"),
    ("sera que tengo", "do i have"),
    ("sera que tenho", "do i have"),
    ("que tengo", "what do i have"),
    ("que tenho", "what do i have"),
    ("escaleras", "stairs"),
    ("escadas", "stairs"),
    ("sin energia", "tired"),
    ("sem energia", "tired"),
    ("consulta prenatal", "prenatal check-up"),
    ("terca", "tuesday"),
    ("quarta", "wednesday"),
    ("quinta", "thursday"),
    ("sexta", "friday"),
    ("pediatria", "pediatrics"),
    ("en", "in"),
    ("em", "in"),
    // "segunda-feira" after "next monday" has been read.
    ("feira", ""),
    ("hoy", "today"),
    ("hoje", "today"),
    ("manana", "tomorrow"),
    ("amanha", "tomorrow"),
    ("lunes", "monday"),
    ("martes", "tuesday"),
    ("miercoles", "wednesday"),
    ("jueves", "thursday"),
    ("viernes", "friday"),
    ("sabado", "saturday"),
    ("domingo", "sunday"),
    ("proximo", "next"),
    ("proxima", "next"),
    ("este", "this"),
    ("esta", "this"),
    ("semana", "week"),
    ("dias", "days"),
    ("dia", "day"),
    ("semanas", "weeks"),
    ("daqui a", "in"),
    ("dentro de", "in"),
    ("tarde", "afternoon"),
    ("noche", "evening"),
    ("noite", "evening"),
    ("dentista", "dentist"),
    ("oculista", "ophthalmologist"),
    ("borroso", "blurred vision"),
    ("turva", "blurred vision"),
    ("embacada", "blurred vision"),
    ("palpitaciones", "palpitations"),
    ("palpitacoes", "palpitations"),
    ("insomnio", "insomnia"),
    ("estres", "stress"),
    ("diarrea", "diarrhea"),
    ("diarreia", "diarrhea"),
    ("vomitos", "vomiting"),
    ("lunar", "mole"),
    ("sinal", "mole"),
    ("muelas", "tooth"),
    ("muela", "tooth"),
    ("dientes", "teeth"),
    ("diente", "tooth"),
    ("dentes", "teeth"),
    ("dente", "tooth"),
    ("dolor", "pain"),
    ("duele", "pain"),
    ("doi", "pain"),
    ("dor", "pain"),
    ("dores", "pain"),
    ("piel", "skin"),
    ("pele", "skin"),
    ("manchas", "spots"),
    ("picazon", "itchy"),
    ("comichao", "itchy"),
    ("embarazo", "pregnancy"),
    ("embarazada", "pregnant"),
    ("gravidez", "pregnancy"),
    ("gravida", "pregnant"),
    ("ginecologo", "gynecologist"),
    ("ginecologa", "gynecologist"),
    ("ginecologia", "gynecology"),
    ("ansiedad", "anxiety"),
    ("ansiedade", "anxiety"),
    ("ansioso", "anxious"),
    ("ansiosa", "anxious"),
    ("depresion", "depression"),
    ("depressao", "depression"),
    ("triste", "sad"),
    ("psiquiatra", "psychiatrist"),
    ("psicologo", "psychologist"),
    ("psicologa", "psychologist"),
    ("nino", "child"),
    ("nina", "child"),
    ("ninos", "children"),
    ("hijo", "son"),
    ("hija", "daughter"),
    ("crianca", "child"),
    ("filho", "son"),
    ("filha", "daughter"),
    ("bebe", "baby"),
    ("pediatra", "pediatrician"),
    ("rodilla", "knee"),
    ("joelho", "knee"),
    ("espalda", "back"),
    ("costas", "back"),
    ("corazon", "heart"),
    ("coracao", "heart"),
    ("ojos", "eyes"),
    ("ojo", "eye"),
    ("olhos", "eyes"),
    ("olho", "eye"),
    ("vista", "vision"),
    ("oido", "ear"),
    ("oidos", "ears"),
    ("ouvido", "ear"),
    ("ouvidos", "ears"),
    ("garganta", "throat"),
    ("cabeza", "head"),
    ("cabeca", "head"),
    ("fiebre", "fever"),
    ("febre", "fever"),
    ("tos", "cough"),
    ("tosse", "cough"),
    ("gripe", "flu"),
    ("cita", "appointment"),
    ("citas", "appointments"),
    ("consulta", "appointment"),
    ("consultas", "appointments"),
    ("turno", "appointment"),
    ("reservar", "book"),
    ("marcar", "book"),
    ("agendar", "book"),
    ("pedir", "book"),
    ("cancelar", "cancel"),
    ("anular", "cancel"),
    ("desmarcar", "cancel"),
    ("cambiar", "reschedule"),
    ("mudar", "reschedule"),
    ("remarcar", "reschedule"),
    ("reprogramar", "reschedule"),
    ("dermatologo", "dermatologist"),
    ("dermatologa", "dermatologist"),
    ("cardiologo", "cardiologist"),
    ("cardiologa", "cardiologist"),
    ("oftalmologo", "ophthalmologist"),
    ("oftalmologista", "ophthalmologist"),
    ("otorrino", "ent"),
    ("otorrinolaringologo", "ent"),
    ("traumatologo", "orthopedist"),
    ("ortopedista", "orthopedist"),
    ("ortopedia", "orthopedics"),
    ("neurologo", "neurologist"),
    ("revision", "check-up"),
    ("chequeo", "check-up"),
    ("revisao", "check-up"),
    ("hola", "hello"),
    ("ola", "hello"),
    ("oi", "hello"),
    ("buenas", "hello"),
    ("el segundo", "the second"),
    ("la segunda", "the second"),
    ("o segundo", "the second"),
    ("segundo", "second"),
    ("cuarto", "fourth"),
    ("quarto", "fourth"),
    ("quinto", "fifth"),
    ("primero", "first"),
    ("primera", "first"),
    ("primeiro", "first"),
    ("primeira", "first"),
    ("tercero", "third"),
    ("tercera", "third"),
    ("terceiro", "third"),
    ("terceira", "third"),
    ("ultimo", "last"),
    ("ultima", "last"),
    ("doctora", "doctor"),
    ("doutor", "doctor"),
    ("doutora", "doctor"),
    ("medico", "doctor"),
    ("medica", "doctor"),
];

/// Words that only one of the three languages uses (accents folded).
const PT_WORDS: &[&str] = &[
    "nao",
    "voce",
    "estou",
    "tenho",
    "quero",
    "preciso",
    "consulta",
    "amanha",
    "hoje",
    "meu",
    "quais",
    "qual",
    "minhas",
    "meus",
    "consultas",
    "sao",
    "tem",
    "ando",
    "acho",
    "ajuda",
    "minha",
    "obrigado",
    "obrigada",
    "dor",
    "dente",
    "dentes",
    "uma",
    "marcar",
    "feira",
    "com",
    "filho",
    "filha",
    "gravida",
    "gravidez",
    "para",
    "de manha",
    "tambem",
    "olho",
    "ouvido",
    "joelho",
    "semana",
    "ola",
    "oi",
    "sim",
    "pode",
    "ansiedade",
    "isso",
    "muito",
    "quanto",
    "devo",
    "fatura",
    "faturas",
    "custa",
    "preco",
];
const ES_WORDS: &[&str] = &[
    "quiero",
    "necesito",
    "tengo",
    "cita",
    "manana",
    "hoy",
    "mi",
    "mis",
    "gracias",
    "dolor",
    "cuales",
    "citas",
    "estoy",
    "ayuda",
    "pueden",
    "verlo",
    "verla",
    "muelas",
    "una",
    "por",
    "favor",
    "hijo",
    "hija",
    "embarazada",
    "embarazo",
    "para",
    "el",
    "la",
    "los",
    "las",
    "con",
    "pero",
    "tambien",
    "ojo",
    "oido",
    "rodilla",
    "semana",
    "hola",
    "si",
    "puedo",
    "ansiedad",
    "eso",
    "muy",
    "cual",
    "proximo",
    "dentista",
    "y",
    "duele",
];
const EN_WORDS: &[&str] = &[
    "i",
    "my",
    "the",
    "a",
    "an",
    "to",
    "and",
    "need",
    "want",
    "have",
    "can",
    "see",
    "book",
    "appointment",
    "please",
    "tomorrow",
    "today",
    "next",
    "with",
    "for",
    "is",
    "it",
    "what",
    "hello",
    "hi",
    "yes",
    "doctor",
    "pain",
    "hurts",
    "week",
    "bad",
    "really",
    "morning",
    "afternoon",
    "evening",
    "dentist",
    "tooth",
    "toothache",
    "skin",
    "child",
    "son",
    "daughter",
    "this",
    "that",
    "of",
    "in",
    "on",
    "at",
    "am",
    "do",
    "does",
    "how",
    "when",
    "which",
    "time",
    "times",
    "again",
    "thanks",
    "thank",
    "you",
    "would",
    "could",
    "should",
    "there",
    "any",
    "someone",
    "instead",
    "actually",
    "about",
    "cancel",
    "move",
    "reschedule",
    "first",
    "second",
];

/// The language of a message, by the words only one language uses; `None` when it does
/// not tell (a bare "ok", a number).
pub fn language_of(folded: &str) -> Option<Lang> {
    let words = text::words(folded);
    let count = |list: &[&str]| words.iter().filter(|w| list.contains(w)).count();
    let (pt, es) = (count(PT_WORDS), count(ES_WORDS));
    // English words may be misspelt ("tomorow", "realy").
    let en = words
        .iter()
        .filter(|w| EN_WORDS.contains(w) || correct(w).is_some_and(|c| EN_WORDS.contains(&c)))
        .count();
    let best = pt.max(es).max(en);
    if best == 0 {
        return None;
    }
    if en == best && en > pt && en > es {
        Some(Lang::En)
    } else if pt > es {
        Some(Lang::Pt)
    } else if es > pt {
        Some(Lang::Es)
    } else if en == best {
        Some(Lang::En)
    } else {
        None
    }
}

/// The message in the words the rules read: folded, Portuguese and Spanish phrases put in
/// English, and typing slips of known words corrected.
pub fn normalise(message: &str) -> String {
    let folded = text::fold(message).replace('-', " ");
    let mut words: Vec<String> = text::words(&folded)
        .into_iter()
        .map(str::to_owned)
        .collect();
    // Spelling first (Spanish and Portuguese words are kept as they are known words).
    for w in words.iter_mut() {
        if let Some(fixed) = correct(w) {
            *w = fixed.to_owned();
        }
    }
    // "tooth ache" → "toothache".
    let mut joined: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if let Some(next) = words.get(i + 1) {
            let both = format!("{}{}", words[i], next);
            if VOCABULARY.contains(&both.as_str()) {
                joined.push(both);
                i += 2;
                continue;
            }
        }
        joined.push(words[i].clone());
        i += 1;
    }
    let mut out: Vec<String> = Vec::with_capacity(joined.len());
    let mut i = 0;
    while i < joined.len() {
        // The longest phrase that starts here.
        let best = LEXICON_WORDS
            .iter()
            .filter(|(parts, _)| {
                i + parts.len() <= joined.len()
                    && parts.iter().zip(&joined[i..]).all(|(p, w)| p == w)
            })
            .max_by_key(|(parts, _)| parts.len());
        match best {
            Some((parts, to)) => {
                if !to.is_empty() {
                    out.push((*to).to_owned());
                }
                i += parts.len();
            }
            None => {
                out.push(joined[i].clone());
                i += 1;
            }
        }
    }
    out.join(" ")
}

/// [`LEXICON`]'s phrases as words, split once.
static LEXICON_WORDS: std::sync::LazyLock<Vec<(Vec<&'static str>, &'static str)>> =
    std::sync::LazyLock::new(|| {
        LEXICON
            .iter()
            .map(|(from, to)| (from.split(' ').collect(), *to))
            .collect()
    });

/// English words the rules act on: days, parts of the day, intents and common needs.
const VOCABULARY: &[&str] = &[
    "today",
    "tomorrow",
    "tonight",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "morning",
    "afternoon",
    "evening",
    "weekend",
    "next",
    "week",
    "days",
    "weeks",
    "after",
    "appointment",
    "appointments",
    "book",
    "booking",
    "cancel",
    "reschedule",
    "waitlist",
    "available",
    "doctor",
    "dentist",
    "toothache",
    "headache",
    "stomachache",
    "earache",
    "backache",
    "really",
    "please",
    "pediatrician",
    "dermatologist",
    "cardiologist",
    "gynecologist",
    "psychiatrist",
    "psychologist",
    "orthopedist",
    "ophthalmologist",
    "neurologist",
    "pregnant",
    "pregnancy",
    "anxiety",
    "anxious",
    "depression",
    "depressed",
    "rash",
    "itchy",
    "skin",
    "knee",
    "tooth",
    "teeth",
    "vision",
    "throat",
    "check-up",
    "checkup",
    "children",
    "daughter",
    "son",
    "baby",
    "fever",
    "cough",
    "panic",
    "attacks",
    "sleep",
    "stairs",
    "instead",
    "another",
    "different",
    "change",
    "earlier",
    "later",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "last",
    "english",
    "morning",
    "specialist",
    "pain",
    "hurts",
    "prescription",
    "prescriptions",
    "prescribed",
    "medication",
    "medications",
    "results",
    "invoice",
    "invoices",
    "balance",
    "price",
    "prices",
];

/// The known word a slip of the keyboard away, if the word is not known as it is.
fn correct(word: &str) -> Option<&'static str> {
    if word.chars().count() < 5
        || VOCABULARY.contains(&word)
        || LEXICON.iter().any(|(from, _)| *from == word)
    {
        return None;
    }
    VOCABULARY.iter().copied().find(|v| near(word, v))
}

const ORDINALS: &[(&str, u32)] = &[
    ("first", 1),
    ("second", 2),
    ("third", 3),
    ("fourth", 4),
    ("fifth", 5),
    ("1st", 1),
    ("2nd", 2),
    ("3rd", 3),
    ("4th", 4),
    ("5th", 5),
];

/// A pick from a list of `offered` options: "1", "the first one", "option 2", "the last".
pub fn choice_in(normalised: &str, offered: usize) -> Option<u32> {
    if offered == 0 {
        return None;
    }
    let words = text::words(normalised);
    if words.len() > 8 {
        return None;
    }
    let in_range = |n: u32| (1..=offered as u32).contains(&n).then_some(n);
    for (i, w) in words.iter().enumerate() {
        if let Ok(n) = w.parse::<u32>() {
            // "in 3 days" is a day, not a pick; "10:30" is a time.
            let next = words.get(i + 1).copied().unwrap_or("");
            if ["days", "day", "weeks", "week", "am", "pm", "h"].contains(&next)
                || (i > 0 && words[i - 1] == "in")
            {
                continue;
            }
            return in_range(n);
        }
        if let Some((_, n)) = ORDINALS.iter().find(|(o, _)| o == w) {
            return in_range(*n);
        }
        if *w == "last" {
            return Some(offered as u32);
        }
    }
    None
}

const CANCEL: &[&str] = &["cancel*", "call off"];
const RESCHEDULE: &[&str] = &[
    "reschedul*",
    "move my|the|it|that",
    "change my|the appointment|booking|time|day",
    "another time|day for my",
    "postpone*",
];
const MY_APPOINTMENTS: &[&str] = &[
    "my appointments|appointment|bookings|booking|visits",
    "what appointments",
    "upcoming",
    "when is my",
    "do i have any|an",
];
const WAITLIST: &[&str] = &["waitlist", "waiting list", "wait list"];
/// Asking what one owes ("what do I owe?", "my bills", "quanto devo?").
const MY_INVOICES: &[&str] = &[
    "do i owe",
    "i owe",
    "my bill|bills|invoice|invoices|balance|receipt|receipts",
    "outstanding|unpaid|open balance|bill|bills|invoice|invoices|payment|payments",
    "invoice|invoices",
    "pay my|the bill|bills|invoice|invoices|balance",
];
/// Asking what a visit costs ("how much is a dermatology visit?", "what's the fee?").
/// Single words a slip away from others are left out ("costs" is near "Costa", "charge"
/// near "change").
const PRICE: &[&str] = &[
    "how much is|does|do|for|would|will|are|to",
    "price|prices|cost|fee|fees",
    "what does it|a|the|one cost|costs",
];
/// Asking for one's own lab results ("what were my last lab results?", "my cholesterol
/// results", "resultados dos exames").
const MY_LAB_RESULTS: &[&str] = &[
    "lab|labs|laboratory|test|tests|blood result|results|values|report",
    "bloodwork|blood work",
    "my lab|labs|tests|results|bloodwork",
    "cholesterol|glucose|hba1c|a1c|ldl|hdl|thyroid|tsh|hemoglobin|haemoglobin result|results|level|levels|value|values",
];
/// Asking for one's care plan ("what is my care plan?", "what should I be doing?", "my
/// reminders", "o meu plano de tratamento").
const MY_CARE_PLAN: &[&str] = &[
    "care|treatment|medication plan",
    "did i take|use|do",
    "have i taken",
    "my plan|reminders|treatment|checklist",
    "what should|do i be|have doing|taking",
    "what do i have|need to do",
];
/// Saying one did what a reminder asked ("I took my medicine", "done, I took it").
const CHECK_IN: &[&str] = &[
    "i took|used|applied it|my|the|them|both",
    "i have|ve taken|used|applied it|my|the|them",
    "i've|ive taken|used|applied it|my|the|them",
    "just took|used|applied",
    "i did it",
    "check me in",
    "check in my|the reminder|medicine|medication|dose",
];
/// Asking what one was prescribed ("what did the doctor prescribe?", "my prescriptions").
const MY_PRESCRIPTIONS: &[&str] = &[
    "my prescription|prescriptions|medication|medications|medicines|meds",
    "prescribed",
    "prescriptions",
    "did the|my doctor|dr prescribe",
    "did you|they|she|he prescribe",
];
const QUESTION: &[&str] = &[
    "do i have",
    "is it|this|that serious|cancer|dangerous|normal|contagious",
    "what is wrong",
    "what do i have",
    "what could|can|might it|this be",
    "diagnos*",
    "should i take",
    "what medicine|medication|pill|pills",
];
/// Conditions a patient may ask about ("is it cancer?"): a question about one asks for a
/// diagnosis.
const CONDITIONS: &[&str] = &[
    "cancer",
    "tumor",
    "tumour",
    "diabetes",
    "infection",
    "infected",
    "serious",
    "dangerous",
    "contagious",
    "normal",
    "broken",
    "fracture*",
    "allergic",
    "allergy",
    "covid",
    "melanoma",
    "is it bad",
];

const GREETING: &[&str] = &[
    "hello",
    "hi",
    "hey",
    "good morning|afternoon|evening",
    "thanks",
    "thank you",
];
const BOOK: &[&str] = &[
    "book",
    "appointment",
    "see someone|somebody|a|an|the|dr|doctor",
    "visit",
    "available",
    "free time|times|slot|slots",
    "slot|slots",
    "need a|an|to",
    "i'd like|want",
    "i would like",
    "can i see|get",
    "talk|speak to|with someone|somebody|a",
    "see someone|somebody",
    "check up",
    "check-up",
    "checkup",
];

/// The rules' reading of a message, with how many options were just offered.
pub fn rules(message: &str, offered: usize) -> Understanding {
    let folded = text::fold(message);
    let language = language_of(&folded).unwrap_or(Lang::Other);
    let normalised = normalise(message);
    let words = text::words(&normalised);
    let day = dates::find_phrase(&normalised);
    let part_of_day = part_of_day(&words);
    let choice = choice_in(&normalised, offered);
    let doctor = doctor_named(message);
    let intent = if has_any(&words, CANCEL) {
        Intent::Cancel
    } else if has_any(&words, RESCHEDULE) {
        Intent::Reschedule
    } else if has_any(&words, WAITLIST) {
        Intent::Waitlist
    } else if choice.is_some() && day.is_none() {
        Intent::Choose
    } else if has_any(&words, MY_INVOICES) {
        Intent::MyInvoices
    } else if has_any(&words, MY_APPOINTMENTS) && !has_any(&words, &["book", "need"]) {
        Intent::MyAppointments
    } else if has_any(&words, CHECK_IN)
        && !has_any(&words, &["book", "appointment", "not", "didn't", "forgot"])
    {
        Intent::CheckIn
    } else if has_any(&words, MY_CARE_PLAN) && !has_any(&words, &["book", "appointment"]) {
        Intent::MyCarePlan
    } else if has_any(&words, MY_LAB_RESULTS) && !has_any(&words, &["book", "need", "want"]) {
        Intent::MyLabResults
    } else if has_any(&words, MY_PRESCRIPTIONS) && !has_any(&words, &["book", "need", "want"]) {
        Intent::MyPrescriptions
    } else if has_any(&words, PRICE) {
        Intent::Price
    } else if has_any(&words, QUESTION) || (message.contains('?') && has_any(&words, CONDITIONS)) {
        Intent::Question
    } else if words.len() <= 4 && has_any(&words, GREETING) {
        Intent::Greeting
    } else if has_any(&words, BOOK) || day.is_some() || part_of_day.is_some() || doctor.is_some() {
        Intent::Book
    } else {
        // A description of a problem ("my knee hurts") is a wish to see someone about it.
        Intent::Other
    };
    // The words as written too: the catalogue knows "check-up", and English as typed.
    let need = if folded == normalised {
        normalised.clone()
    } else {
        format!("{normalised}\n{}", message.trim())
    };
    Understanding {
        intent,
        need: Some(need).filter(|n| !n.trim().is_empty()),
        day,
        part_of_day,
        choice,
        doctor,
        language,
    }
}

fn part_of_day(words: &[&str]) -> Option<PartOfDay> {
    if has_any(words, &["morning", "am", "early"]) {
        Some(PartOfDay::Morning)
    } else if has_any(words, &["afternoon", "lunchtime", "after lunch"]) {
        Some(PartOfDay::Afternoon)
    } else if has_any(words, &["evening", "tonight", "after work", "night"]) {
        Some(PartOfDay::Evening)
    } else {
        None
    }
}

/// "Dr. Costa", "doctor Ana Costa", "dra. Gómez": the name after the title (after "doctor"
/// only a capitalised one: "which doctor should I see" names nobody).
fn doctor_named(message: &str) -> Option<String> {
    let tokens: Vec<&str> = message
        .split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let i = tokens.iter().position(|t| {
        let t = text::fold(t);
        ["dr", "dra", "doctor", "doctora", "doutor", "doutora"].contains(&t.as_str())
    })?;
    let abbreviated = matches!(text::fold(tokens[i]).as_str(), "dr" | "dra");
    let name: Vec<String> = tokens[i + 1..]
        .iter()
        .take(2)
        .take_while(|w| {
            let folded = text::fold(w);
            folded.len() >= 3
                && !STOP.contains(&folded.as_str())
                && (abbreviated || w.chars().next().is_some_and(char::is_uppercase))
        })
        .map(|w| text::fold(w))
        .collect();
    (!name.is_empty()).then(|| name.join(" "))
}

const STOP: &[&str] = &[
    "for",
    "and",
    "the",
    "on",
    "at",
    "next",
    "this",
    "tomorrow",
    "today",
    "instead",
    "please",
    "para",
    "por",
    "con",
    "com",
    "who",
    "that",
    "about",
    "appointment",
    "visit",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_and_translated_messages_read_as_english() {
        assert_eq!(
            normalise("tooth ache realy bad, dentist tomorow morning?"),
            "toothache really bad dentist tomorrow morning"
        );
        assert_eq!(
            normalise("Necesito un dentista mañana por la mañana"),
            "necesito un dentist tomorrow morning"
        );
        assert_eq!(
            normalise("consulta de pediatria na próxima segunda-feira à tarde"),
            "appointment de pediatrics na next monday afternoon"
        );
    }

    #[test]
    fn the_rules_read_intent_day_part_and_language() {
        let u = rules("tooth ache realy bad, dentist tomorow morning?", 0);
        assert_eq!(u.intent, Intent::Book);
        assert_eq!(u.day.as_deref(), Some("tomorrow"));
        assert_eq!(u.part_of_day, Some(PartOfDay::Morning));
        assert_eq!(u.language, Lang::En);
        let u = rules(
            "Quiero una cita con el dermatólogo el viernes por la tarde",
            0,
        );
        assert_eq!(u.language, Lang::Es);
        assert_eq!(u.day.as_deref(), Some("friday"));
        assert_eq!(u.part_of_day, Some(PartOfDay::Afternoon));
        let u = rules("Preciso de uma consulta para o meu filho amanhã", 0);
        assert_eq!(u.language, Lang::Pt);
        assert_eq!(u.day.as_deref(), Some("tomorrow"));
        assert_eq!(rules("the second one please", 5).intent, Intent::Choose);
        assert_eq!(rules("the second one please", 5).choice, Some(2));
        assert_eq!(rules("can I come in 3 days", 5).choice, None);
        assert_eq!(
            rules("I want to cancel my appointment", 0).intent,
            Intent::Cancel
        );
        assert_eq!(
            rules("can I see Dr. Costa instead", 0).doctor.as_deref(),
            Some("costa")
        );
    }

    #[test]
    fn asking_for_ones_own_results_or_prescriptions_is_read_as_such() {
        for asked in [
            "what were my last lab results?",
            "Can you show me my blood test results",
            "are my cholesterol levels ok?",
            "my labs please",
            "Quais são os resultados dos meus exames?",
            "¿Ya están los resultados de mis análisis?",
        ] {
            assert_eq!(rules(asked, 0).intent, Intent::MyLabResults, "{asked}");
        }
        for asked in [
            "what did the doctor prescribe?",
            "what was I prescribed last time",
            "show my prescriptions",
            "what are my medications",
            "Qual é a minha receita?",
            "¿Qué me recetó la doctora?",
        ] {
            assert_eq!(rules(asked, 0).intent, Intent::MyPrescriptions, "{asked}");
        }
        for asked in [
            "what is my care plan?",
            "What should I be taking and for how long?",
            "show me my reminders",
            "Qual é o meu plano de tratamento?",
            "¿Cuál es mi plan de tratamiento?",
        ] {
            assert_eq!(rules(asked, 0).intent, Intent::MyCarePlan, "{asked}");
        }
        for said in [
            "I took it",
            "i've taken my medicine",
            "Just took the pills",
            "já tomei",
            "Ya lo tomé",
        ] {
            assert_eq!(rules(said, 0).intent, Intent::CheckIn, "{said}");
        }
        assert_eq!(
            rules("did I take my medicine today?", 0).intent,
            Intent::MyCarePlan
        );
        for said in [
            "I have a mole that changed colour",
            "book me with Dr Costa",
            "costa please",
        ] {
            assert_ne!(rules(said, 0).intent, Intent::Price, "{said}");
        }
        for asked in [
            "what do I owe?",
            "Do I owe you anything",
            "show me my bills",
            "any unpaid invoices?",
            "I want to pay my bill",
            "Quanto devo?",
            "¿Cuánto debo?",
            "mis facturas",
        ] {
            assert_eq!(rules(asked, 0).intent, Intent::MyInvoices, "{asked}");
        }
        for asked in [
            "how much is a dermatology visit?",
            "what does a consultation cost",
            "what are your prices",
            "what does it costs",
            "Quanto custa uma consulta de dermatologia?",
            "¿Cuánto cuesta una consulta con el dermatólogo?",
        ] {
            assert_eq!(rules(asked, 0).intent, Intent::Price, "{asked}");
        }
        assert_ne!(rules("I forgot, I took nothing", 0).intent, Intent::CheckIn);
        // A wish for a test or a medicine is not a question about one's record.
        for asked in [
            "I need a blood test",
            "book a check-up with lab tests",
            "should I take ibuprofen?",
        ] {
            let intent = rules(asked, 0).intent;
            assert!(
                !matches!(intent, Intent::MyLabResults | Intent::MyPrescriptions),
                "{asked}: {intent:?}"
            );
        }
    }

    #[test]
    fn a_model_answer_is_read_leniently() {
        let u = Understanding::from_model(
            "```json\n{\"intent\":\"book\",\"need\":\"toothache\",\"day\":\"Tomorrow\",\"part_of_day\":\"morning\",\"choice\":null,\"doctor\":\"null\",\"language\":\"xx\"}```",
        )
        .unwrap();
        assert_eq!(u.intent, Intent::Book);
        assert_eq!(u.day.as_deref(), Some("tomorrow"));
        assert_eq!(u.doctor, None);
        assert_eq!(u.language, Lang::En);
        assert!(Understanding::from_model("I think you want a dentist").is_none());
    }
}
