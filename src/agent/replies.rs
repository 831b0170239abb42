//! What the agent says, in the patient's language (English, Portuguese, Spanish): one
//! template per situation, the same whichever model understood the message. Dates are
//! written with the language's own day and month names ([`crate::notify::language`], which
//! the mail and notifications share).

use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;

use crate::agent::safety::{Alarm, LocalNumbers};
use crate::agent::understand::Lang;
use crate::notify::language::{self, Language};

/// Picks the template of the language.
fn pick(lang: Lang, en: &'static str, pt: &'static str, es: &'static str) -> &'static str {
    match lang {
        Lang::Pt => pt,
        Lang::Es => es,
        Lang::En | Lang::Other => en,
    }
}

pub fn alarm(lang: Lang, alarm: Alarm, numbers: LocalNumbers) -> String {
    let emergency = numbers.emergency;
    match alarm {
        Alarm::Emergency => match lang {
            Lang::Pt => format!(
                "Isto pode ser uma emergência. Ligue já para o {emergency} ou vá à urgência mais próxima. Não posso ajudar com emergências neste chat."
            ),
            Lang::Es => format!(
                "Esto puede ser una emergencia. Llame ahora al {emergency} o vaya a urgencias más cercanas. No puedo ayudar con emergencias en este chat."
            ),
            _ => format!(
                "This may be an emergency. Please call {emergency} now or go to the nearest emergency department. I cannot help with emergencies in this chat."
            ),
        },
        Alarm::Crisis => {
            let line = numbers.crisis.unwrap_or(emergency);
            match lang {
                Lang::Pt => format!(
                    "Lamento muito que esteja a passar por isto. Não está sozinho: fale agora com alguém. Ligue para {line}, ou para o {emergency} se estiver em perigo imediato. Se puder, fique junto de alguém em quem confia."
                ),
                Lang::Es => format!(
                    "Siento mucho que estés pasando por esto. No estás solo: habla con alguien ahora. Llama al {line}, o al {emergency} si estás en peligro inmediato. Si puedes, quédate con alguien de confianza."
                ),
                _ => format!(
                    "I am very sorry you are going through this. You are not alone: please talk to someone now. Call or text the crisis line {line}, or call {emergency} if you are in immediate danger. If you can, stay with someone you trust."
                ),
            }
        }
    }
}

pub fn hello(lang: Lang) -> &'static str {
    pick(
        lang,
        "Hello! I can help you find the right kind of doctor, see free times and book. What do you need?",
        "Olá! Posso ajudar a encontrar o especialista certo, ver horários livres e marcar. Do que precisa?",
        "¡Hola! Puedo ayudarle a encontrar el especialista adecuado, ver horas libres y reservar. ¿Qué necesita?",
    )
}

pub fn ask_need(lang: Lang) -> &'static str {
    pick(
        lang,
        "Tell me what you need, for example \"a dermatologist next week\", or describe what is bothering you.",
        "Diga-me do que precisa, por exemplo \"dermatologista na próxima semana\", ou descreva o que sente.",
        "Dígame qué necesita, por ejemplo \"un dermatólogo la semana que viene\", o describa lo que le pasa.",
    )
}

pub fn no_specialty(lang: Lang) -> &'static str {
    pick(
        lang,
        "I could not tell which kind of doctor fits. Could you describe it in other words, or name the specialty (for example \"dermatology\")?",
        "Não percebi que especialista procura. Pode descrever de outra forma, ou dizer a especialidade (por exemplo \"dermatologia\")?",
        "No he entendido qué especialista busca. ¿Puede describirlo de otra forma, o decir la especialidad (por ejemplo \"dermatología\")?",
    )
}

pub fn no_diagnosis(lang: Lang, specialty: &str) -> String {
    match lang {
        Lang::Pt => format!(
            "Não posso dizer o que é: só um médico pode, depois de o ver. Para isto, o especialista indicado é {specialty}. Quer que procure horários livres?"
        ),
        Lang::Es => format!(
            "No puedo decirle qué es: solo un médico puede, después de verle. Para esto, el especialista adecuado es {specialty}. ¿Quiere que busque horas libres?"
        ),
        _ => format!(
            "I cannot tell you what it is: only a doctor can, after seeing you. For this, a {specialty} doctor is the right specialist. Would you like me to look for free times?"
        ),
    }
}

pub fn slots_header(lang: Lang, specialty: &str) -> String {
    match lang {
        Lang::Pt => format!("Horários livres ({specialty}):"),
        Lang::Es => format!("Horas libres ({specialty}):"),
        _ => format!("These times are free ({specialty}):"),
    }
}

/// Said when nothing was free when asked and other times are offered.
pub fn other_day(lang: Lang, asked: &str) -> String {
    match lang {
        Lang::Pt => format!("Não há horários livres {asked}; estes são os mais próximos."),
        Lang::Es => format!("No hay horas libres {asked}; estas son las más cercanas."),
        _ => format!("Nothing is free {asked}; these are the nearest times."),
    }
}

/// What the runner and the tests look for to tell "it said plainly it offers another day".
pub const OTHER_DAY_MARKERS: &[&str] = &["nothing is free", "não há horários", "no hay horas"];

pub fn pick_one(lang: Lang) -> &'static str {
    pick(
        lang,
        "Pick one (press it or say its number) and I will hold it for you.",
        "Escolha um (carregue nele ou diga o número) e eu reservo-o para si.",
        "Elija una (púlsela o diga su número) y se la reservo.",
    )
}

pub fn none_free(lang: Lang, specialty: &str) -> String {
    match lang {
        Lang::Pt => format!(
            "Não encontrei horários livres de {specialty} nas próximas semanas. Posso pô-lo na lista de espera (diga \"lista de espera\") ou procurar outro dia."
        ),
        Lang::Es => format!(
            "No he encontrado horas libres de {specialty} en las próximas semanas. Puedo apuntarle en la lista de espera (diga \"lista de espera\") o buscar otro día."
        ),
        _ => format!(
            "I found no free {specialty} times in the next weeks. I can put you on the waitlist (say \"waitlist\"), or look at another day."
        ),
    }
}

pub fn log_in(lang: Lang) -> &'static str {
    pick(
        lang,
        "To book, please log in (sign in) first; you can keep browsing without an account. Once you are signed in, pick the time again.",
        "Para marcar, inicie sessão (log in) primeiro; pode continuar a ver horários sem conta. Depois de entrar, escolha de novo o horário.",
        "Para reservar, inicie sesión (log in) primero; puede seguir mirando horas sin cuenta. Cuando haya entrado, elija de nuevo la hora.",
    )
}

pub fn confirm_booking(lang: Lang, what: &str) -> String {
    match lang {
        Lang::Pt => format!(
            "Marcar {what}? Estou a guardar este horário por alguns minutos. Carregue em Confirmar, ou responda sim; responda não para desistir."
        ),
        Lang::Es => format!(
            "¿Reservar {what}? Le guardo esta hora unos minutos. Pulse Confirmar, o responda sí; responda no para descartarla."
        ),
        _ => format!(
            "Book {what}? I am holding the time for you for a few minutes. Press Confirm, or reply yes, to go ahead; reply no to drop it."
        ),
    }
}

pub fn confirm_cancel(lang: Lang, what: &str) -> String {
    match lang {
        Lang::Pt => format!(
            "Cancelar a consulta de {what}? Carregue em Confirmar, ou responda sim; responda não para a manter."
        ),
        Lang::Es => format!(
            "¿Cancelar la cita del {what}? Pulse Confirmar, o responda sí; responda no para mantenerla."
        ),
        _ => format!(
            "Cancel your appointment on {what}? Press Confirm, or reply yes, to go ahead; reply no to keep it."
        ),
    }
}

pub fn confirm_move(lang: Lang, from: &str, to: &str) -> String {
    match lang {
        Lang::Pt => format!(
            "Mudar a consulta de {from} para {to}? Carregue em Confirmar, ou responda sim; responda não para a manter."
        ),
        Lang::Es => format!(
            "¿Cambiar la cita del {from} al {to}? Pulse Confirmar, o responda sí; responda no para mantenerla."
        ),
        _ => format!(
            "Move your appointment from {from} to {to}? Press Confirm, or reply yes, to go ahead; reply no to keep it."
        ),
    }
}

pub fn done(lang: Lang, kind: &str, what: &str) -> String {
    match (lang, kind) {
        (Lang::Pt, "book") => format!("Marcado: {what}. Encontra-a nas suas consultas."),
        (Lang::Pt, "cancel") => format!("Cancelada: {what}."),
        (Lang::Pt, _) => format!("Mudada: {what}. Encontra-a nas suas consultas."),
        (Lang::Es, "book") => format!("Reservada: {what}. La encontrará en sus citas."),
        (Lang::Es, "cancel") => format!("Cancelada: {what}."),
        (Lang::Es, _) => format!("Cambiada: {what}. La encontrará en sus citas."),
        (_, "book") => format!("Booked: {what}. You will find it under your appointments."),
        (_, "cancel") => format!("Cancelled: {what}."),
        _ => format!("Moved: {what}. You will find it under your appointments."),
    }
}

pub fn could_not(lang: Lang, detail: &str) -> String {
    match lang {
        Lang::Pt => format!("Desculpe, não foi possível: {detail}"),
        Lang::Es => format!("Lo siento, no se ha podido: {detail}"),
        _ => format!("Sorry, that could not be done: {detail}"),
    }
}

pub fn dropped(lang: Lang) -> &'static str {
    pick(
        lang,
        "Alright, I have dropped that; nothing was changed. What would you like instead?",
        "Está bem, desisti disso; nada foi alterado. O que prefere?",
        "De acuerdo, lo he descartado; no se ha cambiado nada. ¿Qué prefiere?",
    )
}

pub fn still_pending(lang: Lang, summary: &str) -> String {
    match lang {
        Lang::Pt => format!(
            "Ainda está à espera da sua resposta: {summary}. Responda sim para confirmar ou não para desistir."
        ),
        Lang::Es => format!(
            "Sigue pendiente de su respuesta: {summary}. Responda sí para confirmar o no para descartarlo."
        ),
        _ => format!(
            "This is still waiting for your answer: {summary}. Reply yes to confirm or no to drop it."
        ),
    }
}

pub fn nothing_pending(lang: Lang) -> &'static str {
    pick(
        lang,
        "There is nothing waiting for your confirmation. What would you like to book?",
        "Não há nada à espera de confirmação. O que gostaria de marcar?",
        "No hay nada pendiente de confirmar. ¿Qué le gustaría reservar?",
    )
}

pub fn taken(lang: Lang) -> &'static str {
    pick(
        lang,
        "Sorry, that time has just been taken. Would you like me to look for another one?",
        "Desculpe, esse horário acabou de ser ocupado. Quer que procure outro?",
        "Lo siento, esa hora acaba de ocuparse. ¿Quiere que busque otra?",
    )
}

pub fn too_many_holds(lang: Lang) -> &'static str {
    pick(
        lang,
        "You are already holding several times; confirm or drop one of them first.",
        "Já tem vários horários guardados; confirme ou largue um deles primeiro.",
        "Ya tiene varias horas guardadas; confirme o descarte alguna primero.",
    )
}

pub fn unavailable(lang: Lang) -> &'static str {
    pick(
        lang,
        "Sorry, the booking system could not answer just now. Please try again in a moment.",
        "Desculpe, o sistema de marcações não respondeu agora. Tente de novo daqui a pouco.",
        "Lo siento, el sistema de reservas no ha respondido ahora. Inténtelo de nuevo en un momento.",
    )
}

pub fn no_appointments(lang: Lang) -> &'static str {
    pick(
        lang,
        "You have no upcoming appointments.",
        "Não tem consultas marcadas.",
        "No tiene citas próximas.",
    )
}

pub fn appointments_header(lang: Lang, n: usize) -> String {
    match lang {
        Lang::Pt => format!("Tem {n} consulta(s) marcada(s):"),
        Lang::Es => format!("Tiene {n} cita(s) próxima(s):"),
        _ => format!(
            "You have {n} upcoming appointment{}:",
            if n == 1 { "" } else { "s" }
        ),
    }
}

pub fn which_appointment(lang: Lang) -> &'static str {
    pick(
        lang,
        "Which one do you mean? Say its number.",
        "Qual delas? Diga o número.",
        "¿Cuál de ellas? Diga su número.",
    )
}

pub fn which_day_to_move(lang: Lang, what: &str, doctor: &str) -> String {
    match lang {
        Lang::Pt => format!("Para que dia quer mudar a consulta de {what} com {doctor}?"),
        Lang::Es => format!("¿A qué día quiere cambiar la cita del {what} con {doctor}?"),
        _ => {
            format!("Which day would you like to move your appointment on {what} with {doctor} to?")
        }
    }
}

pub fn waitlisted(lang: Lang, specialty: &str) -> String {
    match lang {
        Lang::Pt => format!(
            "Ficou na lista de espera de {specialty}; avisamos assim que houver um horário."
        ),
        Lang::Es => format!(
            "Queda en la lista de espera de {specialty}; le avisaremos en cuanto haya una hora."
        ),
        _ => format!(
            "You are on the {specialty} waitlist; we will offer you a time as soon as one frees up."
        ),
    }
}

pub fn which_waitlist(lang: Lang) -> &'static str {
    pick(
        lang,
        "Which kind of doctor would you like to wait for?",
        "Para que especialidade quer ficar em lista de espera?",
        "¿Para qué especialidad quiere la lista de espera?",
    )
}

pub fn no_such_doctor(lang: Lang, name: &str) -> String {
    match lang {
        Lang::Pt => format!("Não encontrei nenhum médico com o nome {name}."),
        Lang::Es => format!("No he encontrado ningún médico llamado {name}."),
        _ => format!("I could not find a doctor called {name}."),
    }
}

pub fn only_your_own(lang: Lang) -> &'static str {
    pick(
        lang,
        "I can only show and change your own appointments, never anyone else's. What can I do for you?",
        "Só posso mostrar e alterar as suas próprias consultas, nunca as de outra pessoa. Em que posso ajudar?",
        "Solo puedo mostrar y cambiar sus propias citas, nunca las de otra persona. ¿En qué puedo ayudarle?",
    )
}

pub fn not_understood(lang: Lang) -> &'static str {
    pick(
        lang,
        "Sorry, I did not understand. Could you say it another way, or pick from the options above?",
        "Desculpe, não percebi. Pode dizer de outra forma, ou escolher uma das opções acima?",
        "Lo siento, no lo he entendido. ¿Puede decirlo de otra forma, o elegir una de las opciones de arriba?",
    )
}

pub fn care_plan_empty(lang: Lang) -> &'static str {
    pick(
        lang,
        "I found no tasks or scheduled actions in that note.",
        "Não encontrei tarefas nem ações agendadas nessa nota.",
        "No he encontrado tareas ni acciones programadas en esa nota.",
    )
}

/// The words dates are written with (English for a language replies are not written in).
fn words(lang: Lang) -> Language {
    match lang.reply() {
        Lang::Pt => Language::Pt,
        Lang::Es => Language::Es,
        Lang::En | Lang::Other => Language::En,
    }
}

/// "Tuesday 8 December", "terça-feira, 8 de dezembro", "martes 8 de diciembre".
pub fn date(lang: Lang, d: NaiveDate) -> String {
    language::date(words(lang), d)
}

/// A date and time in the clinic's zone: "Tuesday 8 December at 14:00".
pub fn when(lang: Lang, at: DateTime<Tz>) -> String {
    language::date_and_time(words(lang), at)
}

/// How "on that day" reads after a date: "on Tuesday 8 December".
pub fn on(lang: Lang, from: NaiveDate, to_exclusive: NaiveDate) -> String {
    let days = (to_exclusive - from).num_days();
    let prefix = pick(lang, "on", "em", "el");
    if days <= 1 {
        format!("{prefix} {}", date(lang, from))
    } else {
        let (a, b) = (
            date(lang, from),
            date(lang, to_exclusive.pred_opt().unwrap_or(from)),
        );
        match lang {
            Lang::Pt => format!("entre {a} e {b}"),
            Lang::Es => format!("entre el {a} y el {b}"),
            _ => format!("between {a} and {b}"),
        }
    }
}

pub fn part_of_day(lang: Lang, part: &str) -> &'static str {
    match (part, lang) {
        ("morning", Lang::Pt) => "de manhã",
        ("morning", Lang::Es) => "por la mañana",
        ("morning", _) => "in the morning",
        ("afternoon", Lang::Pt) => "à tarde",
        ("afternoon", Lang::Es) => "por la tarde",
        ("afternoon", _) => "in the afternoon",
        (_, Lang::Pt) => "à noite",
        (_, Lang::Es) => "por la noche",
        _ => "in the evening",
    }
}

/// A specialty's name in the patient's language (the catalogue's English name otherwise).
pub fn specialty(lang: Lang, slug: &str, english: &str) -> String {
    let (pt, es) = match slug {
        "general-practice" => ("medicina geral e familiar", "medicina general"),
        "internal-medicine" => ("medicina interna", "medicina interna"),
        "dermatology" => ("dermatologia", "dermatología"),
        "orthopedics" => ("ortopedia", "traumatología"),
        "cardiology" => ("cardiologia", "cardiología"),
        "neurology" => ("neurologia", "neurología"),
        "pediatrics" => ("pediatria", "pediatría"),
        "obstetrics-gynecology" => ("ginecologia e obstetrícia", "ginecología y obstetricia"),
        "ophthalmology" => ("oftalmologia", "oftalmología"),
        "ent" => ("otorrinolaringologia", "otorrinolaringología"),
        "gastroenterology" => ("gastrenterologia", "gastroenterología"),
        "endocrinology" => ("endocrinologia", "endocrinología"),
        "psychiatry" => ("psiquiatria", "psiquiatría"),
        "psychology" => ("psicologia", "psicología"),
        "pulmonology" => ("pneumologia", "neumología"),
        "urology" => ("urologia", "urología"),
        "dentistry" => ("medicina dentária", "odontología"),
        "physiotherapy" => ("fisioterapia", "fisioterapia"),
        "oncology" => ("oncologia", "oncología"),
        _ => (english, english),
    };
    match lang {
        Lang::Pt => pt.to_owned(),
        Lang::Es => es.to_owned(),
        _ => english.to_owned(),
    }
}

pub fn log_in_to_read(lang: Lang) -> &'static str {
    pick(
        lang,
        "Your results and prescriptions are private: please log in (sign in) first, then ask again.",
        "Para ver os seus resultados e receitas, que são privados, inicie sessão (log in) primeiro e depois pergunte de novo.",
        "Por favor, inicie sesión (log in) para ver sus resultados y recetas: son privados. Después vuelva a preguntar.",
    )
}

pub fn no_lab_results(lang: Lang) -> &'static str {
    pick(
        lang,
        "You have no lab results yet. They appear here once your doctor has reviewed them.",
        "Ainda não tem resultados de análises. Aparecem aqui depois de o seu médico os rever.",
        "Todavía no tiene resultados de laboratorio. Aparecen aquí cuando su médico los haya revisado.",
    )
}

pub fn lab_results_header(lang: Lang) -> &'static str {
    pick(
        lang,
        "Your latest lab results:",
        "Os seus últimos resultados de análises:",
        "Sus últimos resultados de laboratorio:",
    )
}

/// A test whose values the doctor has not reviewed yet.
pub fn awaiting_review(lang: Lang) -> &'static str {
    pick(
        lang,
        "waiting for your doctor's review",
        "à espera da revisão do seu médico",
        "pendiente de la revisión de su médico",
    )
}

/// How a value stands against its reference range.
pub fn flag(lang: Lang, flag: crate::domain::clinical::labs::Flag) -> Option<&'static str> {
    use crate::domain::clinical::labs::Flag;
    match flag {
        Flag::High => Some(pick(lang, "high", "alto", "alto")),
        Flag::Low => Some(pick(lang, "low", "baixo", "bajo")),
        Flag::Normal => Some(pick(lang, "normal", "normal", "normal")),
        Flag::Unflagged => None,
    }
}

/// Said after results: the assistant shows values, the doctor interprets them.
pub fn results_are_for_your_doctor(lang: Lang) -> &'static str {
    pick(
        lang,
        "I can't interpret results; your doctor can tell you what they mean for you.",
        "Não posso interpretar resultados; o seu médico pode explicar o que significam para si.",
        "No puedo interpretar resultados; su médico puede explicarle qué significan para usted.",
    )
}

pub fn no_prescriptions(lang: Lang) -> &'static str {
    pick(
        lang,
        "You have no prescriptions from signed visits yet.",
        "Ainda não tem receitas de consultas assinadas.",
        "Todavía no tiene recetas de consultas firmadas.",
    )
}

pub fn prescriptions_header(lang: Lang) -> &'static str {
    pick(
        lang,
        "What your doctors prescribed:",
        "O que os seus médicos receitaram:",
        "Lo que sus médicos le recetaron:",
    )
}

/// How often and for how long: "twice a day for 7 days", "every 8 hours", "as needed".
pub fn dosing(
    lang: Lang,
    times_per_day: Option<i64>,
    every_hours: Option<i64>,
    days: Option<i64>,
) -> String {
    let often = match (times_per_day, every_hours) {
        (Some(t), _) => match lang.reply() {
            Lang::Pt => format!("{t} vez(es) por dia"),
            Lang::Es => format!("{t} vez/veces al día"),
            _ => match t {
                1 => "once a day".to_owned(),
                2 => "twice a day".to_owned(),
                t => format!("{t} times a day"),
            },
        },
        (None, Some(h)) => match lang.reply() {
            Lang::Pt => format!("de {h} em {h} horas"),
            Lang::Es => format!("cada {h} horas"),
            _ => format!("every {h} hours"),
        },
        (None, None) => pick(lang, "as needed", "quando necessário", "cuando lo necesite").into(),
    };
    match days {
        Some(d) => match lang.reply() {
            Lang::Pt => format!("{often} durante {d} dias"),
            Lang::Es => format!("{often} durante {d} días"),
            _ => format!("{often} for {d} days"),
        },
        None => often,
    }
}

pub fn no_care_plan(lang: Lang) -> &'static str {
    pick(
        lang,
        "You have no care plan in force. When your doctor writes one, its steps and reminders appear here.",
        "Não tem nenhum plano de cuidados em curso. Quando o seu médico escrever um, os passos e lembretes aparecem aqui.",
        "No tiene ningún plan de cuidados en curso. Cuando su médico escriba uno, sus pasos y recordatorios aparecerán aquí.",
    )
}

pub fn care_plan_header(lang: Lang, doctors: &str) -> String {
    match lang.reply() {
        Lang::Pt => format!("O seu plano de cuidados ({doctors}):"),
        Lang::Es => format!("Su plan de cuidados ({doctors}):"),
        _ => format!("Your care plan (from {doctors}):"),
    }
}

/// Before a due date: "by", "até", "antes del".
pub fn by(lang: Lang) -> &'static str {
    pick(lang, "by", "até", "antes del")
}

pub fn next_reminders(lang: Lang) -> &'static str {
    pick(
        lang,
        "Next reminders:",
        "Próximos lembretes:",
        "Próximos recordatorios:",
    )
}

/// "Due now:" or "Missed:", before a reminder's action.
pub fn due_now(lang: Lang, missed: bool) -> &'static str {
    match missed {
        true => pick(lang, "Missed:", "Em falta:", "Pendiente:"),
        false => pick(lang, "Due now:", "Agora:", "Ahora:"),
    }
}

pub fn done_today(lang: Lang) -> &'static str {
    pick(lang, "Done today:", "Feito hoje:", "Hecho hoy:")
}

pub fn confirm_check_in(lang: Lang, summary: &str) -> String {
    match lang.reply() {
        Lang::Pt => format!("{summary}? Carregue em Confirmar, ou responda sim."),
        Lang::Es => format!("{summary}? Pulse Confirmar, o responda sí."),
        _ => format!("{summary}? Press Confirm, or answer yes."),
    }
}

pub fn nothing_due(lang: Lang) -> &'static str {
    pick(
        lang,
        "Nothing in your care plan is due to check in right now. Ask \"what is my care plan?\" to see what comes next.",
        "Nada do seu plano de cuidados está por registar agora. Pergunte \"qual é o meu plano?\" para ver o que vem a seguir.",
        "Nada de su plan de cuidados está pendiente de registrar ahora. Pregunte \"¿cuál es mi plan?\" para ver lo que sigue.",
    )
}

pub fn checked_in(lang: Lang, action: &str) -> String {
    match lang.reply() {
        Lang::Pt => format!("Registado: {action}. Obrigado!"),
        Lang::Es => format!("Registrado: {action}. ¡Gracias!"),
        _ => format!("Checked in: {action}. Thank you!"),
    }
}

pub fn no_invoices(lang: Lang) -> &'static str {
    pick(
        lang,
        "You have no invoices with us yet, so you owe nothing.",
        "Ainda não tem faturas connosco, por isso não deve nada.",
        "Todavía no tiene facturas con nosotros, así que no debe nada.",
    )
}

pub fn nothing_owed(lang: Lang) -> &'static str {
    pick(
        lang,
        "You owe nothing: every invoice is paid. Your latest invoices:",
        "Não deve nada: todas as faturas estão pagas. As suas últimas faturas:",
        "No debe nada: todas las facturas están pagadas. Sus últimas facturas:",
    )
}

/// `owed`: the sums per currency, e.g. "45.00 EUR".
pub fn you_owe(lang: Lang, owed: &str) -> String {
    match lang {
        Lang::Pt => format!("Tem {owed} por pagar. As suas últimas faturas:"),
        Lang::Es => format!("Tiene {owed} pendiente de pago. Sus últimas facturas:"),
        _ => format!("You owe {owed}. Your latest invoices:"),
    }
}

/// An invoice's state in a few words: "paid", "void", "45.00 EUR to pay".
pub fn invoice_state(
    lang: Lang,
    status: crate::domain::billing::InvoiceStatus,
    owed: &str,
) -> String {
    use crate::domain::billing::InvoiceStatus;
    match status {
        InvoiceStatus::Paid => pick(lang, "paid", "paga", "pagada").into(),
        InvoiceStatus::Void => pick(lang, "voided", "anulada", "anulada").into(),
        _ => match lang {
            Lang::Pt => format!("{owed} por pagar"),
            Lang::Es => format!("{owed} pendiente"),
            _ => format!("{owed} to pay"),
        },
    }
}

pub fn invoices_on_portal(lang: Lang) -> &'static str {
    pick(
        lang,
        "You can open and download each invoice on your page (My invoices); the front desk takes payments.",
        "Pode abrir e descarregar cada fatura na sua página (As minhas faturas); a receção recebe os pagamentos.",
        "Puede abrir y descargar cada factura en su página (Mis facturas); la recepción cobra los pagos.",
    )
}

pub fn no_prices(lang: Lang) -> &'static str {
    pick(
        lang,
        "I could not find a price for that here. The front desk can tell you what it costs.",
        "Não encontrei um preço para isso aqui. A receção pode dizer-lhe quanto custa.",
        "No he encontrado un precio para eso aquí. La recepción puede decirle cuánto cuesta.",
    )
}

/// The first line of a price answer, for a specialty when one was asked about.
pub fn prices_header(lang: Lang, specialty: Option<&str>) -> String {
    match (lang, specialty) {
        (Lang::Pt, Some(s)) => format!("Uma consulta de {s} custa:"),
        (Lang::Pt, None) => "O que custa uma consulta:".into(),
        (Lang::Es, Some(s)) => format!("Una consulta de {s} cuesta:"),
        (Lang::Es, None) => "Lo que cuesta una consulta:".into(),
        (_, Some(s)) => format!("A consultation in {s} costs:"),
        (_, None) => "What a consultation costs:".into(),
    }
}

pub fn look_for_times(lang: Lang) -> &'static str {
    pick(
        lang,
        "Would you like me to look for free times?",
        "Quer que procure horários livres?",
        "¿Quiere que busque horas libres?",
    )
}
