//! Tools that only read: specialties, clinics, doctors and free times. Anyone may use them.

use chrono::Days;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::billing;
use crate::domain::clinics::doctors::{self, DoctorFilter, PartOfDay};
use crate::domain::clinics::{self, specialties};
use crate::domain::scheduling::slots::{self, SlotQuery};
use crate::tools::{Effect, Tool, ToolContext, ToolError, dates, parse_id};
use crate::zone::TimeZone;

pub struct FindSpecialty;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindSpecialtyArgs {
    /// The patient's need in their words, e.g. "itchy rash on my arm" or "a cardiologist".
    pub query: String,
}

#[derive(Serialize)]
pub struct SpecialtyHit {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub matched: Vec<String>,
}

impl Tool for FindSpecialty {
    const NAME: &'static str = "find_specialty";
    const DESCRIPTION: &'static str = "Suggest the medical specialties that fit what the patient describes (symptoms or a kind of doctor), best first. Never a diagnosis.";
    type Args = FindSpecialtyArgs;
    type Output = Vec<SpecialtyHit>;

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        if args.query.chars().count() > 500 {
            return Err(ToolError::invalid("query: at most 500 characters"));
        }
        let hits = specialties::search(ctx.db, &args.query).await?;
        Ok(hits
            .into_iter()
            .filter(|h| h.score > 0.0)
            .take(3)
            .map(|h| SpecialtyHit {
                slug: h.specialty.slug,
                name: h.specialty.name,
                description: h.specialty.description,
                matched: h.matched,
            })
            .collect())
    }
}

pub struct SearchClinics;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchClinicsArgs {
    /// Only clinics offering this specialty slug, e.g. "dermatology".
    #[serde(default)]
    pub specialty: Option<String>,
    /// Part of the clinic's name, e.g. "Lisbon".
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Serialize)]
pub struct ClinicHit {
    pub clinic_id: Uuid,
    pub name: String,
    pub address: String,
    pub time_zone: TimeZone,
}

impl Tool for SearchClinics {
    const NAME: &'static str = "search_clinics";
    const DESCRIPTION: &'static str = "Find clinics by specialty or name.";
    type Args = SearchClinicsArgs;
    type Output = Vec<ClinicHit>;

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let found = clinics::list(ctx.db, args.specialty.as_deref(), args.name.as_deref()).await?;
        Ok(found
            .into_iter()
            .filter(|c| ctx.clinic_id.is_none_or(|mine| mine == c.id))
            .take(20)
            .map(|c| ClinicHit {
                clinic_id: c.id,
                name: c.name,
                address: c.address,
                time_zone: c.time_zone,
            })
            .collect())
    }
}

pub struct ListDoctors;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDoctorsArgs {
    /// Specialty slug, e.g. "pediatrics".
    #[serde(default)]
    pub specialty: Option<String>,
    /// ISO 639-1 language the doctor should speak, e.g. "pt".
    #[serde(default)]
    pub language: Option<String>,
    /// Only this clinic (an id from search_clinics).
    #[serde(default)]
    pub clinic_id: Option<String>,
    /// Highest fee in cents, e.g. 8000.
    #[serde(default)]
    pub max_fee_cents: Option<i64>,
}

#[derive(Serialize)]
pub struct DoctorHit {
    pub doctor_id: Uuid,
    pub name: String,
    pub clinic: String,
    pub specialties: Vec<String>,
    pub languages: Vec<String>,
    /// What a consultation costs (the clinic's price list, else the doctor's fee).
    pub fee: String,
    pub fee_cents: i64,
}

impl Tool for ListDoctors {
    const NAME: &'static str = "list_doctors";
    const DESCRIPTION: &'static str = "List bookable doctors, filtered by specialty, language, clinic or fee, with what a consultation costs: answers \"how much is a dermatology visit?\".";
    type Args = ListDoctorsArgs;
    type Output = Vec<DoctorHit>;

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let asked = args
            .clinic_id
            .as_deref()
            .map(|c| parse_id("clinic_id", c))
            .transpose()?;
        if let Some(asked) = asked {
            ctx.require_clinic(asked)?;
        }
        let clinic_id = ctx.clinic_id.or(asked);
        let filter = DoctorFilter {
            specialty: args.specialty,
            language: args.language,
            clinic_id,
            max_fee_cents: args.max_fee_cents,
            ..DoctorFilter::default()
        };
        let mut hits = Vec::new();
        for d in doctors::browse(ctx.db, &filter).await?.into_iter().take(20) {
            // What a consultation costs: the clinic's price list, else the doctor's fee.
            let (cents, currency) =
                billing::consultation_price(ctx.db, d.clinic_id, d.id, "consultation").await?;
            hits.push(DoctorHit {
                doctor_id: d.id,
                fee: format!("{} {currency}", billing::money(cents)),
                fee_cents: cents,
                name: d.display_name,
                clinic: d.clinic_name,
                specialties: d.specialties,
                languages: d.languages,
            });
        }
        Ok(hits)
    }
}

pub struct ListAvailableSlots;

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListAvailableSlotsArgs {
    /// Specialty slug from find_specialty, e.g. "dermatology". Give this or doctor_id.
    #[serde(default)]
    pub specialty: Option<String>,
    /// One doctor (an id from list_doctors).
    #[serde(default)]
    pub doctor_id: Option<String>,
    /// The day exactly as the patient said it, or YYYY-MM-DD: "tomorrow", "next tuesday", "friday", "this week". Omit for the next two weeks.
    #[serde(default)]
    pub date: Option<String>,
    /// "morning" (before 12:00), "afternoon" (12:00 to 17:00) or "evening", in the clinic's time.
    #[serde(default)]
    pub part_of_day: Option<String>,
}

/// A time the patient can pick, as the widget shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SlotChoice {
    pub slot_id: Uuid,
    #[serde(default)]
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// e.g. "Tue 1 Dec 14:00" in the clinic's time.
    pub when: String,
    pub weekday: String,
    pub doctor: String,
    pub clinic: String,
    pub time_zone: TimeZone,
    pub fee: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct SlotList {
    pub from: String,
    pub to: String,
    pub slots: Vec<SlotChoice>,
    /// Set when nothing was free in the asked window and nearby times are offered instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

const OFFERED: i64 = 5;

fn part_of_day(value: Option<&str>) -> Result<Option<PartOfDay>, ToolError> {
    match value.map(|v| v.trim().to_lowercase()).as_deref() {
        None | Some("") | Some("any") => Ok(None),
        Some("morning") => Ok(Some(PartOfDay::Morning)),
        Some("afternoon") => Ok(Some(PartOfDay::Afternoon)),
        Some("evening") => Ok(Some(PartOfDay::Evening)),
        Some(other) => Err(ToolError::invalid(format!(
            "part_of_day must be morning, afternoon or evening, not {other:?}"
        ))),
    }
}

impl ListAvailableSlots {
    async fn search(
        ctx: &ToolContext<'_>,
        specialty: Option<&str>,
        doctor: Option<Uuid>,
        q: SlotQuery,
    ) -> Result<Vec<SlotChoice>, ToolError> {
        let choice = |slot: &slots::Slot,
                      doctor: String,
                      clinic: String,
                      tz: TimeZone,
                      fee: Option<String>| {
            let local = slot.starts_at.with_timezone(&tz.tz());
            SlotChoice {
                slot_id: slot.id,
                starts_at: Some(slot.starts_at),
                when: local.format("%a %-d %b %H:%M").to_string(),
                weekday: local.format("%A").to_string(),
                doctor,
                clinic,
                time_zone: tz,
                fee,
            }
        };
        match (specialty, doctor) {
            (_, Some(doctor_id)) => {
                let d = doctors::get(ctx.db, doctor_id).await?.ok_or_else(|| {
                    ToolError::new("not_found", "No such doctor; use an id from list_doctors.")
                })?;
                ctx.require_clinic(d.clinic_id)?;
                let found = slots::free_for_doctor(ctx.db, doctor_id, &q, ctx.now).await?;
                Ok(found
                    .iter()
                    .map(|s| {
                        choice(
                            s,
                            d.display_name.clone(),
                            d.clinic_name.clone(),
                            d.time_zone,
                            None,
                        )
                    })
                    .collect())
            }
            (Some(slug), None) => {
                let found = slots::free_for_specialty(ctx.db, slug, &q, ctx.now).await?;
                Ok(found
                    .iter()
                    .map(|s| {
                        let fee = format!("{} {}", billing::money(s.fee_cents), s.currency);
                        choice(
                            &s.slot,
                            s.doctor_name.clone(),
                            s.clinic_name.clone(),
                            s.time_zone,
                            Some(fee),
                        )
                    })
                    .collect())
            }
            (None, None) => Err(ToolError::invalid(
                "give a specialty slug (from find_specialty) or a doctor_id (from list_doctors)",
            )),
        }
    }
}

impl Tool for ListAvailableSlots {
    const NAME: &'static str = "list_available_slots";
    const DESCRIPTION: &'static str = "Free appointment times for a specialty or one doctor, soonest first. Pass the day in the patient's words; the tool works out the date.";
    type Args = ListAvailableSlotsArgs;
    type Output = SlotList;

    fn effect(output: &SlotList) -> Effect {
        Effect::Offered(output.slots.clone())
    }

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let doctor = args
            .doctor_id
            .as_deref()
            .map(|d| parse_id("doctor_id", d))
            .transpose()?;
        let specialty = args.specialty.as_deref().map(|s| s.trim().to_lowercase());
        let part = part_of_day(args.part_of_day.as_deref())?;
        let (from, to) =
            dates::resolve(args.date.as_deref().unwrap_or(""), ctx.now, ctx.time_zone)?;
        let query = |from, to| SlotQuery {
            from: Some(from),
            to: Some(to),
            part_of_day: part,
            limit: Some(OFFERED),
            clinic_id: ctx.clinic_id,
            ..SlotQuery::default()
        };
        let slots = Self::search(ctx, specialty.as_deref(), doctor, query(from, to)).await?;
        if !slots.is_empty() {
            return Ok(SlotList {
                from: from.to_string(),
                to: to.to_string(),
                slots,
                note: None,
            });
        }
        // Nothing then: offer the nearest times in the two weeks after.
        let later = (to, to + Days::new(14));
        let slots =
            Self::search(ctx, specialty.as_deref(), doctor, query(later.0, later.1)).await?;
        let note = Some(format!(
            "Nothing free from {from} to {}; these are the nearest times after.",
            to - Days::new(1)
        ));
        Ok(SlotList {
            from: later.0.to_string(),
            to: later.1.to_string(),
            slots,
            note,
        })
    }
}
