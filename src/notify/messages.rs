//! What we write to people, as templates: every mail and notification text is a tera
//! template per language in `messages/<lang>/<name>.tera`, compiled into the binary. A
//! template's first line is the subject; the body follows after one blank line. Each kind
//! of message is a [`Kind`] with its typed facts; dates are [`Moment`]s that a template
//! writes with the language's words (`{{ starts_at | full_date(lang="pt") }}`, see
//! [`crate::notify::language`]). Names starting with `_` are pieces other templates include.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tera::{Context, Tera};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::notify::language::{self, Language};
use crate::notify::outbox;

/// Every template by name, its texts in the order of [`Language::ALL`].
macro_rules! templates {
    ($($name:literal),+ $(,)?) => {
        &[$((
            $name,
            [
                include_str!(concat!("messages/en/", $name, ".tera")),
                include_str!(concat!("messages/pt/", $name, ".tera")),
                include_str!(concat!("messages/es/", $name, ".tera")),
            ],
        )),+]
    };
}

const TEMPLATES: &[(&str, [&str; 3])] = templates![
    "_join",
    "_role",
    "appointment_booked",
    "appointment_moved",
    "appointment_reminder",
    "appointment_cancelled",
    "calendar_event",
    "waitlist_offer",
    "plan_reminder",
    "checklist_due",
    "verify_email",
    "sign_in_code",
    "password_reset",
    "already_registered",
    "account_invitation",
    "staff_invitation",
    "doctor_invitation",
    "clinic_approved",
    "clinic_rejected",
    "follow_up_suggested",
    "lab_results_ready",
    "lab_abnormal",
    "pharmacy_alert",
    "invoice_issued",
];

/// Built once; a template that does not parse is reported by every render (and fails
/// the unit tests), never a panic.
static TERA: LazyLock<Result<Tera, String>> = LazyLock::new(build);

fn build() -> Result<Tera, String> {
    let mut tera = Tera::default();
    // Plain text: names and reasons are written as given.
    tera.autoescape_on(Vec::new());
    tera.register_filter("full_date", DateFilter(language::full_date));
    tera.register_filter("date_and_time", DateFilter(language::date_and_time));
    tera.register_filter("time_and_day", DateFilter(language::time_and_day));
    let all = TEMPLATES.iter().flat_map(|(name, texts)| {
        Language::ALL
            .iter()
            .zip(texts)
            .map(move |(lang, text)| (template_name(*lang, name), *text))
    });
    tera.add_raw_templates(all).map_err(|e| describe(&e))?;
    Ok(tera)
}

fn template_name(lang: Language, name: &str) -> String {
    format!("{}/{name}", lang.as_str())
}

/// A tera error with its causes (the outer one only names the template).
fn describe(e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn render(lang: Language, name: &str, context: &Context) -> Result<String> {
    let tera = TERA
        .as_ref()
        .map_err(|e| Error::internal(format!("message templates: {e}")))?;
    tera.render(&template_name(lang, name), context)
        .map_err(|e| {
            Error::internal(format!(
                "message {}/{name}: {}",
                lang.as_str(),
                describe(&e)
            ))
        })
}

/// A moment as a message shows it: in the zone of the clinic (or of the patient).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moment(pub DateTime<Tz>);

impl Moment {
    pub fn new(at: DateTime<Utc>, zone: Tz) -> Self {
        Self(at.with_timezone(&zone))
    }
}

/// How a [`Moment`] reaches a template: the instant and its zone's name, which the date
/// filters turn back into the local time.
#[derive(Serialize, Deserialize)]
struct MomentValue {
    utc: DateTime<Utc>,
    zone: String,
}

impl Serialize for Moment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        MomentValue {
            utc: self.0.with_timezone(&Utc),
            zone: self.0.timezone().name().to_owned(),
        }
        .serialize(s)
    }
}

/// `{{ moment | <filter>(lang="pt") }}`: the moment written in that language.
struct DateFilter(fn(Language, DateTime<Tz>) -> String);

impl tera::Filter for DateFilter {
    fn filter(
        &self,
        value: &tera::Value,
        args: &HashMap<String, tera::Value>,
    ) -> tera::Result<tera::Value> {
        let lang = args
            .get("lang")
            .and_then(tera::Value::as_str)
            .and_then(Language::parse)
            .ok_or_else(|| tera::Error::msg("a date filter needs lang=\"en\", \"pt\" or \"es\""))?;
        let moment: MomentValue = serde_json::from_value(value.clone())
            .map_err(|e| tera::Error::msg(format!("not a moment: {e}")))?;
        let zone: Tz = moment
            .zone
            .parse()
            .map_err(|e| tera::Error::msg(format!("zone {:?}: {e}", moment.zone)))?;
        Ok(tera::Value::String((self.0)(
            lang,
            moment.utc.with_timezone(&zone),
        )))
    }
}

/// A visit, for the patient: booked, moved, reminded of, cancelled.
#[derive(Clone, Debug, Serialize)]
pub struct Visit<'a> {
    pub patient: &'a str,
    pub doctor: &'a str,
    pub clinic: &'a str,
    pub starts_at: Moment,
    /// Where the patient cancels or moves it (the portal; with `PUBLIC_URL`).
    pub link: Option<String>,
}

/// A freed time held for a patient on the waitlist until `held_until`.
#[derive(Clone, Debug, Serialize)]
pub struct Offer<'a> {
    pub patient: &'a str,
    pub doctor: &'a str,
    pub clinic: &'a str,
    pub starts_at: Moment,
    pub held_until: Moment,
}

/// Something from a care plan that is due.
#[derive(Clone, Debug, Serialize)]
pub struct Task<'a> {
    pub patient: &'a str,
    /// What to do, as the plan says it, e.g. `take ibuprofen 400 mg`.
    pub task: &'a str,
    /// A signed, expiring link that checks in without signing in (with `PUBLIC_URL`).
    pub link: Option<String>,
}

/// A one-time code by mail.
#[derive(Clone, Debug, Serialize)]
pub struct Code<'a> {
    pub name: &'a str,
    pub code: &'a str,
    /// How long the code is good for.
    pub minutes: u64,
}

/// An invitation to a role: at a clinic (`clinic`), or to the service.
#[derive(Clone, Debug, Serialize)]
pub struct Invitation<'a> {
    pub name: &'a str,
    pub clinic: Option<&'a str>,
    /// The role's wire name, e.g. `clinic_staff`; templates put it in words.
    pub role: &'a str,
    pub join: Join,
}

/// How the invitee joins.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Join {
    /// A new account: it sets a password from the link (a page that mails a one-use,
    /// expiring code), or signs in with a mailed code. No link without `PUBLIC_URL`.
    SignIn { set_password: Option<String> },
    /// An existing account: it accepts `invitation` within `days` days.
    Accept { invitation: Uuid, days: i64 },
}

/// A clinic's application turned down.
#[derive(Clone, Debug, Serialize)]
pub struct Rejection<'a> {
    pub name: &'a str,
    pub clinic: &'a str,
    pub reason: &'a str,
}

/// Lab results: ready for the patient, or abnormal for the ordering doctor.
#[derive(Clone, Debug, Serialize)]
pub struct LabNews<'a> {
    /// Whom the message is to.
    pub name: &'a str,
    pub patient: &'a str,
    /// The test or panel, e.g. `Lipid panel`.
    pub test: &'a str,
    /// The values outside their range, e.g. `LDL cholesterol, Triglycerides`.
    pub abnormal: String,
}

/// What a clinic's pharmacists are told each day: medicines below their threshold and
/// batches about to expire.
#[derive(Clone, Debug, Serialize)]
pub struct StockNews<'a> {
    pub name: &'a str,
    pub clinic: &'a str,
    /// e.g. `Amoxicillin 500 mg (12 left, alert below 20)`.
    pub low: Vec<String>,
    /// e.g. `Ibuprofen 400 mg batch B-17, 30 units, expires 2026-12-20`.
    pub expiring: Vec<String>,
}

/// An invoice issued to a patient (its PDF goes with the mail).
#[derive(Clone, Debug, Serialize)]
pub struct InvoiceNews<'a> {
    pub name: &'a str,
    pub clinic: &'a str,
    pub number: &'a str,
    /// e.g. `64.00 EUR`.
    pub total: String,
    /// Where the patient sees it (with `PUBLIC_URL`).
    pub link: Option<String>,
}

/// One kind of message, with what it says.
#[derive(Clone, Debug)]
pub enum Kind<'a> {
    AppointmentBooked(&'a Visit<'a>),
    AppointmentMoved(&'a Visit<'a>),
    AppointmentReminder(&'a Visit<'a>),
    AppointmentCancelled(&'a Visit<'a>),
    WaitlistOffer(&'a Offer<'a>),
    PlanReminder(&'a Task<'a>),
    ChecklistDue(&'a Task<'a>),
    VerifyEmail(&'a Code<'a>),
    SignInCode(&'a Code<'a>),
    PasswordReset(&'a Code<'a>),
    /// Someone registered again with an address that has an account.
    AlreadyRegistered,
    /// A system admin opened an account for someone.
    AccountInvitation(&'a Invitation<'a>),
    StaffInvitation(&'a Invitation<'a>),
    DoctorInvitation(&'a Invitation<'a>),
    /// The applicant's clinic is approved and they are invited as its admin.
    ClinicApproved(&'a Invitation<'a>),
    ClinicRejected(&'a Rejection<'a>),
    /// A signed visit record asks for a follow-up: the doctor's first free time then.
    FollowUpSuggested(&'a Visit<'a>),
    /// The doctor reviewed the patient's results.
    LabResultsReady(&'a LabNews<'a>),
    /// Results outside their range, for the ordering doctor.
    LabAbnormal(&'a LabNews<'a>),
    /// Low stock and expiring batches, for the clinic's pharmacists.
    PharmacyAlert(&'a StockNews<'a>),
    /// An invoice issued to the patient.
    InvoiceIssued(&'a InvoiceNews<'a>),
}

/// A message ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

impl From<Rendered> for outbox::Message {
    fn from(r: Rendered) -> Self {
        Self {
            subject: r.subject,
            body: r.body,
            ics: None,
            attachment: None,
        }
    }
}

impl Kind<'_> {
    /// The template's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AppointmentBooked(_) => "appointment_booked",
            Self::AppointmentMoved(_) => "appointment_moved",
            Self::AppointmentReminder(_) => "appointment_reminder",
            Self::AppointmentCancelled(_) => "appointment_cancelled",
            Self::WaitlistOffer(_) => "waitlist_offer",
            Self::PlanReminder(_) => "plan_reminder",
            Self::ChecklistDue(_) => "checklist_due",
            Self::VerifyEmail(_) => "verify_email",
            Self::SignInCode(_) => "sign_in_code",
            Self::PasswordReset(_) => "password_reset",
            Self::AlreadyRegistered => "already_registered",
            Self::AccountInvitation(_) => "account_invitation",
            Self::StaffInvitation(_) => "staff_invitation",
            Self::DoctorInvitation(_) => "doctor_invitation",
            Self::ClinicApproved(_) => "clinic_approved",
            Self::ClinicRejected(_) => "clinic_rejected",
            Self::FollowUpSuggested(_) => "follow_up_suggested",
            Self::LabResultsReady(_) => "lab_results_ready",
            Self::LabAbnormal(_) => "lab_abnormal",
            Self::PharmacyAlert(_) => "pharmacy_alert",
            Self::InvoiceIssued(_) => "invoice_issued",
        }
    }

    fn context(&self) -> Result<Context> {
        let context = match self {
            Self::AppointmentBooked(v)
            | Self::AppointmentMoved(v)
            | Self::AppointmentReminder(v)
            | Self::AppointmentCancelled(v)
            | Self::FollowUpSuggested(v) => Context::from_serialize(v),
            Self::LabResultsReady(n) | Self::LabAbnormal(n) => Context::from_serialize(n),
            Self::WaitlistOffer(o) => Context::from_serialize(o),
            Self::PlanReminder(t) | Self::ChecklistDue(t) => Context::from_serialize(t),
            Self::VerifyEmail(c) | Self::SignInCode(c) | Self::PasswordReset(c) => {
                Context::from_serialize(c)
            }
            Self::AlreadyRegistered => Ok(Context::new()),
            Self::AccountInvitation(i)
            | Self::StaffInvitation(i)
            | Self::DoctorInvitation(i)
            | Self::ClinicApproved(i) => Context::from_serialize(i),
            Self::ClinicRejected(r) => Context::from_serialize(r),
            Self::PharmacyAlert(n) => Context::from_serialize(n),
            Self::InvoiceIssued(n) => Context::from_serialize(n),
        };
        context.map_err(|e| Error::internal(format!("message {}: {}", self.name(), describe(&e))))
    }

    /// The subject and body in `lang`.
    pub fn render(&self, lang: Language) -> Result<Rendered> {
        let text = render(lang, self.name(), &self.context()?)?;
        let (subject, body) = text
            .split_once("\n\n")
            .map(|(subject, body)| (subject.trim(), body.trim_end()))
            .filter(|(subject, body)| {
                !subject.is_empty() && !subject.contains('\n') && !body.is_empty()
            })
            .ok_or_else(|| {
                Error::internal(format!(
                    "message {}/{}: not a subject line, a blank line and a body",
                    lang.as_str(),
                    self.name()
                ))
            })?;
        Ok(Rendered {
            subject: subject.to_owned(),
            body: body.to_owned(),
        })
    }
}

/// The title of a visit's calendar event, e.g. "Appointment with Dr Rui Costa".
pub fn calendar_summary(lang: Language, visit: &Visit<'_>) -> Result<String> {
    let context = Context::from_serialize(visit)
        .map_err(|e| Error::internal(format!("calendar_event: {}", describe(&e))))?;
    Ok(render(lang, "calendar_event", &context)?.trim().to_owned())
}

/// The page where an invited person sets their password, for `email`, on this service's
/// public address (none without one).
pub fn set_password_link(site: Option<&str>, email: &str) -> Option<String> {
    let site = site?.trim_end_matches('/');
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .finish();
    Some(format!("{site}/admin/password?{query}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::TimeZone;

    use super::*;

    fn lisbon(y: i32, m: u32, d: u32, h: u32, min: u32) -> Moment {
        Moment::new(
            Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap(),
            "Europe/Lisbon".parse().unwrap(),
        )
    }

    fn visit() -> Visit<'static> {
        Visit {
            patient: "Ana Silva",
            doctor: "Dr Rui Costa",
            clinic: "Harbour Clinic",
            starts_at: lisbon(2026, 12, 8, 14, 0),
            link: Some("https://clinic.example/me/appointments/0192".into()),
        }
    }

    /// One of every kind; a new kind without a sample here fails the coverage test.
    fn every_kind<'a>(
        visit: &'a Visit<'a>,
        offer: &'a Offer<'a>,
        task: &'a Task<'a>,
        code: &'a Code<'a>,
        (joined, pending): (&'a Invitation<'a>, &'a Invitation<'a>),
        rejection: &'a Rejection<'a>,
        (lab, stock, invoice): (&'a LabNews<'a>, &'a StockNews<'a>, &'a InvoiceNews<'a>),
    ) -> Vec<Kind<'a>> {
        vec![
            Kind::AppointmentBooked(visit),
            Kind::AppointmentMoved(visit),
            Kind::AppointmentReminder(visit),
            Kind::AppointmentCancelled(visit),
            Kind::WaitlistOffer(offer),
            Kind::PlanReminder(task),
            Kind::ChecklistDue(task),
            Kind::VerifyEmail(code),
            Kind::SignInCode(code),
            Kind::PasswordReset(code),
            Kind::AlreadyRegistered,
            Kind::AccountInvitation(joined),
            Kind::AccountInvitation(pending),
            Kind::StaffInvitation(joined),
            Kind::StaffInvitation(pending),
            Kind::DoctorInvitation(pending),
            Kind::ClinicApproved(joined),
            Kind::ClinicRejected(rejection),
            Kind::FollowUpSuggested(visit),
            Kind::LabResultsReady(lab),
            Kind::LabAbnormal(lab),
            Kind::PharmacyAlert(stock),
            Kind::InvoiceIssued(invoice),
        ]
    }

    fn with_every_kind(mut check: impl FnMut(&[Kind<'_>])) {
        let visit = visit();
        let offer = Offer {
            patient: "Ana Silva",
            doctor: "Dr Rui Costa",
            clinic: "Harbour Clinic",
            starts_at: lisbon(2026, 7, 1, 8, 30),
            held_until: lisbon(2026, 6, 30, 18, 0),
        };
        let task = Task {
            patient: "Ana Silva",
            task: "take ibuprofen 400 mg",
            link: Some("https://clinic.example/r/token".into()),
        };
        let code = Code {
            name: "Ana Silva",
            code: "123456",
            minutes: 15,
        };
        let joined = Invitation {
            name: "Rita Reis",
            clinic: Some("Harbour Clinic"),
            role: "clinic_staff",
            join: Join::SignIn {
                set_password: Some(
                    "https://clinic.example/admin/password?email=ana%40example.org".into(),
                ),
            },
        };
        let pending = Invitation {
            role: "doctor",
            join: Join::Accept {
                invitation: Uuid::nil(),
                days: 14,
            },
            ..joined.clone()
        };
        let rejection = Rejection {
            name: "Rita Reis",
            clinic: "Harbour Clinic",
            reason: "no licence number",
        };
        let lab = LabNews {
            name: "Dr Rui Costa",
            patient: "Ana Silva",
            test: "Lipid panel",
            abnormal: "LDL cholesterol".into(),
        };
        let invoice = InvoiceNews {
            name: "Ana Silva",
            clinic: "Harbour Clinic",
            number: "HAR-2026-000123",
            total: "64.00 EUR".into(),
            link: Some("https://clinic.example/invoices/0192".into()),
        };
        let stock = StockNews {
            name: "Paula Farmácia",
            clinic: "Harbour Clinic",
            low: vec!["Amoxicillin 500 mg (12 left, alert below 20)".into()],
            expiring: vec!["Ibuprofen 400 mg batch B-17, 30 units, expires 2026-12-20".into()],
        };
        check(&every_kind(
            &visit,
            &offer,
            &task,
            &code,
            (&joined, &pending),
            &rejection,
            (&lab, &stock, &invoice),
        ));
    }

    #[test]
    fn every_message_renders_in_every_language() {
        with_every_kind(|kinds| {
            for lang in Language::ALL {
                for kind in kinds {
                    let r = kind
                        .render(lang)
                        .unwrap_or_else(|e| panic!("{} in {lang:?}: {e}", kind.name()));
                    for text in [&r.subject, &r.body] {
                        assert!(!text.trim().is_empty(), "{} in {lang:?}", kind.name());
                        assert!(
                            !["{{", "}}", "{%", "%}", "{#"]
                                .iter()
                                .any(|t| text.contains(t)),
                            "{} in {lang:?} left template syntax: {text}",
                            kind.name()
                        );
                    }
                }
                let summary = calendar_summary(lang, &visit()).unwrap();
                assert!(summary.contains("Dr Rui Costa") && !summary.contains('\n'));
            }
        });
    }

    #[test]
    fn every_template_is_a_message_or_a_piece_of_one() {
        let mut kinds = BTreeSet::new();
        with_every_kind(|all| kinds.extend(all.iter().map(Kind::name)));
        kinds.insert("calendar_event");
        let templates: BTreeSet<&str> = TEMPLATES
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !name.starts_with('_'))
            .collect();
        assert_eq!(kinds, templates);
    }

    #[test]
    fn an_invitation_links_to_the_page_that_sets_a_password() {
        let link = set_password_link(Some("https://clinic.example/"), "rita+desk@example.org");
        assert_eq!(
            link.as_deref(),
            Some("https://clinic.example/admin/password?email=rita%2Bdesk%40example.org")
        );
        assert_eq!(set_password_link(None, "rita@example.org"), None);
        let invited = Invitation {
            name: "Rita Reis",
            clinic: Some("Harbour Clinic"),
            role: "clinic_staff",
            join: Join::SignIn {
                set_password: link.clone(),
            },
        };
        for lang in Language::ALL {
            let mail = Kind::StaffInvitation(&invited).render(lang).unwrap();
            assert!(
                mail.body.contains(link.as_deref().unwrap()),
                "{lang:?}: {}",
                mail.body
            );
        }
        let without = Invitation {
            join: Join::SignIn { set_password: None },
            ..invited
        };
        let mail = Kind::StaffInvitation(&without)
            .render(Language::En)
            .unwrap();
        assert!(mail.body.contains("Email me a code"), "{}", mail.body);
    }

    /// A Portuguese template writes its dates, and includes its pieces, in Portuguese.
    #[test]
    fn each_template_keeps_to_its_own_language() {
        for (name, texts) in TEMPLATES {
            for (lang, text) in Language::ALL.iter().zip(texts) {
                for other in Language::ALL.iter().filter(|l| *l != lang) {
                    let code = other.as_str();
                    assert!(
                        !text.contains(&format!("lang=\"{code}\""))
                            && !text.contains(&format!("\"{code}/")),
                        "{}/{name} names {code}",
                        lang.as_str()
                    );
                }
            }
        }
    }

    /// The English texts are the ones the service has always sent (with the visit's link
    /// when the service knows its address).
    #[test]
    fn english_reads_as_before() {
        let unlinked = Visit {
            link: None,
            ..visit()
        };
        assert!(
            Kind::AppointmentBooked(&unlinked)
                .render(Language::En)
                .unwrap()
                .body
                .ends_with("at 14:00 (WET).")
        );
        let visit = visit();
        assert_eq!(
            Kind::AppointmentBooked(&visit)
                .render(Language::En)
                .unwrap(),
            Rendered {
                subject: "Your appointment is booked".into(),
                body: "Hello Ana Silva, your appointment with Dr Rui Costa at Harbour Clinic is booked for \
                    Tuesday 8 December 2026 at 14:00 (WET).\n\n\
                    To cancel or move it: https://clinic.example/me/appointments/0192"
                    .into(),
            }
        );
        let code = Code {
            name: "Ana",
            code: "123456",
            minutes: 15,
        };
        assert_eq!(
            Kind::SignInCode(&code).render(Language::En).unwrap().body,
            "Hello Ana,\n\nYour sign-in code is 123456\n\nIt expires in 15 minutes. \
             If you did not ask for it, ignore this message."
        );
        let invited = Invitation {
            name: "Rita",
            clinic: Some("Team Clinic"),
            role: "clinic_staff",
            join: Join::SignIn {
                set_password: Some(
                    "https://clinic.example/admin/password?email=ana%40example.org".into(),
                ),
            },
        };
        let staff = Kind::StaffInvitation(&invited)
            .render(Language::En)
            .unwrap();
        assert_eq!(staff.subject, "Join Team Clinic");
        assert_eq!(
            staff.body,
            "Hello Rita,\n\nTeam Clinic invites you to its team as clinic staff.\n\n\
             Set your password here: https://clinic.example/admin/password?email=ana%40example.org \
             (the page mails you a code that works once and expires). You can also sign in with a \
             code mailed to you: choose \"Email me a code\" on the sign-in page."
        );
        assert_eq!(
            calendar_summary(Language::En, &visit).unwrap(),
            "Appointment with Dr Rui Costa"
        );
    }

    #[test]
    fn portuguese_dates_use_portuguese_words() {
        let visit = visit();
        let r = Kind::AppointmentBooked(&visit)
            .render(Language::Pt)
            .unwrap();
        assert_eq!(r.subject, "A sua consulta está marcada");
        assert!(
            r.body
                .contains("terça-feira, 8 de dezembro de 2026 às 14:00 (WET)"),
            "{}",
            r.body
        );
    }
}
