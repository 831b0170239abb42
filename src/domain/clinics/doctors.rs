//! Doctors: profiles at a clinic, their specialties, languages and fees, and the
//! patients who chose them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::{Actor, Grant, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::clinics;
use crate::domain::identity::{invitations, people};
use crate::domain::validate::Checks;
use crate::error::{Error, Result};
use crate::notify::mail::Mailer;
use crate::notify::messages::{self, Kind};
use crate::zone::TimeZone;
use crate::{on_db, on_tx};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoctorForm {
    /// As patients see it, e.g. `Dr. Ana Costa`.
    #[schema(schema_with = crate::domain::validate::schema::person_name)]
    pub display_name: String,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::long_text)]
    pub bio: String,
    /// ISO 639-1 codes, e.g. `["en", "pt"]`.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Fee of a standard visit in minor units (cents).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100000000)]
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    pub fee_cents: i64,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::currency, nullable)]
    pub currency: Option<String>,
    /// Specialty slugs offered by this doctor.
    #[schema(schema_with = crate::domain::clinics::specialties::slug_list_schema)]
    pub specialties: Vec<String>,
    /// The doctor's sign-in address: an account is created or linked and invited.
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::email, nullable)]
    pub email: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Doctor {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub clinic_name: String,
    pub time_zone: TimeZone,
    pub display_name: String,
    pub bio: String,
    pub languages: Vec<String>,
    pub fee_cents: i64,
    pub currency: String,
    pub specialties: Vec<String>,
    /// The doctor's account, kept out of answers: an account id says nothing a caller
    /// needs, and would tell an inviter whether an address already had an account.
    #[serde(skip)]
    pub user_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct DoctorRow {
    id: Uuid,
    clinic_id: Uuid,
    clinic_name: String,
    time_zone: TimeZone,
    display_name: String,
    bio: String,
    languages: String,
    fee_cents: i64,
    currency: String,
    user_id: Option<Uuid>,
    specialties: Option<String>,
}

impl From<DoctorRow> for Doctor {
    fn from(r: DoctorRow) -> Self {
        let mut specialties: Vec<String> = r
            .specialties
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        specialties.sort();
        Self {
            id: r.id,
            clinic_id: r.clinic_id,
            clinic_name: r.clinic_name,
            time_zone: r.time_zone,
            display_name: r.display_name,
            bio: r.bio,
            languages: r
                .languages
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            fee_cents: r.fee_cents,
            currency: r.currency,
            specialties,
            user_id: r.user_id,
        }
    }
}

/// The specialty slugs of one doctor.
async fn slugs_of(db: &Db, doctor_id: Uuid) -> Result<String> {
    const SQL: &str = "SELECT s.slug FROM doctor_specialties ds JOIN specialties s ON s.id = ds.specialty_id WHERE ds.doctor_id = $1";
    let rows: Vec<(String,)> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(doctor_id)
        .fetch_all(pool)
        .await)?;
    Ok(rows.into_iter().map(|(s,)| s).collect::<Vec<_>>().join(","))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DoctorFilter {
    /// Specialty slug.
    pub specialty: Option<String>,
    /// ISO 639-1 language code.
    pub language: Option<String>,
    pub clinic_id: Option<Uuid>,
    /// Maximum fee in minor units.
    pub max_fee_cents: Option<i64>,
    /// Only doctors with a free slot on or after this local date...
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub from: Option<NaiveDate>,
    /// ...and before this local date (exclusive).
    /// Between 1900 and 2199.
    #[param(pattern = "^(19|2[01])[0-9]{2}-")]
    pub to: Option<NaiveDate>,
    /// `morning` (before 12:00), `afternoon` (12:00–17:00) or `evening` (from 17:00), local time.
    pub part_of_day: Option<PartOfDay>,
    /// Part of the doctor's name.
    pub q: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartOfDay {
    Morning,
    Afternoon,
    Evening,
}

impl PartOfDay {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Morning => "morning",
            Self::Afternoon => "afternoon",
            Self::Evening => "evening",
        }
    }

    /// Local minutes since midnight, `[start, end)`.
    pub fn minutes(self) -> (i64, i64) {
        match self {
            Self::Morning => (0, 12 * 60),
            Self::Afternoon => (12 * 60, 17 * 60),
            Self::Evening => (17 * 60, 24 * 60),
        }
    }

    pub fn of_minute(minute: i64) -> Self {
        match minute {
            m if m < 12 * 60 => Self::Morning,
            m if m < 17 * 60 => Self::Afternoon,
            _ => Self::Evening,
        }
    }
}

/// A clinic's doctors, as its pages list them.
pub async fn of_clinic(db: &Db, clinic_id: Uuid) -> Result<Vec<Doctor>> {
    browse(
        db,
        &DoctorFilter {
            clinic_id: Some(clinic_id),
            ..Default::default()
        },
    )
    .await
}

/// Doctors patients can book: active, at active clinics, matching every given filter.
pub async fn browse(db: &Db, f: &DoctorFilter) -> Result<Vec<Doctor>> {
    const SQL: &str = "SELECT d.id, d.clinic_id, c.name AS clinic_name, c.time_zone, d.display_name, d.bio, d.languages, \
        d.fee_cents, d.currency, d.user_id, NULL AS specialties FROM doctors d JOIN clinics c ON c.id = d.clinic_id \
        WHERE d.active = TRUE AND d.deleted_at IS NULL AND c.status = 'active' \
        AND ($1 IS NULL OR EXISTS (SELECT 1 FROM doctor_specialties ds JOIN specialties s ON s.id = ds.specialty_id \
             WHERE ds.doctor_id = d.id AND s.slug = $1)) \
        AND ($2 IS NULL OR d.languages LIKE $2) AND ($3 IS NULL OR d.clinic_id = $3) AND ($4 IS NULL OR d.fee_cents <= $4) \
        AND ($5 IS NULL OR lower(d.display_name) LIKE $5) \
        AND ($6 IS NULL OR EXISTS (SELECT 1 FROM slots sl WHERE sl.doctor_id = d.id AND sl.status = 'open' \
             AND sl.starts_at > $10 AND sl.local_date >= $6 AND sl.local_date < $7 AND sl.local_minute >= $8 AND sl.local_minute < $9)) \
        ORDER BY d.display_name, d.id LIMIT 200";
    let language = f
        .language
        .as_ref()
        .map(|l| format!("%,{},%", l.trim().to_lowercase()));
    let name =
        f.q.as_ref()
            .map(|q| format!("%{}%", q.trim().to_lowercase()));
    crate::domain::validate::query_dates([("from", f.from), ("to", f.to)])?;
    let availability = f.from.is_some() || f.to.is_some() || f.part_of_day.is_some();
    let from = availability.then(|| f.from.unwrap_or_else(|| Utc::now().date_naive()));
    let to = f.to.or_else(|| from.map(|d| d + chrono::Days::new(366)));
    let (min_minute, max_minute) = f
        .part_of_day
        .map(PartOfDay::minutes)
        .unwrap_or((0, 24 * 60));
    let rows = on_db!(db, |pool| sqlx::query_as::<_, DoctorRow>(SQL)
        .bind(f.specialty.as_deref())
        .bind(language.as_deref())
        .bind(f.clinic_id)
        .bind(f.max_fee_cents)
        .bind(name.as_deref())
        .bind(from)
        .bind(to)
        .bind(min_minute)
        .bind(max_minute)
        .bind(Utc::now())
        .fetch_all(pool)
        .await)?;
    with_specialties(db, rows).await
}

async fn with_specialties(db: &Db, rows: Vec<DoctorRow>) -> Result<Vec<Doctor>> {
    let mut out = Vec::with_capacity(rows.len());
    for mut row in rows {
        row.specialties = Some(slugs_of(db, row.id).await?);
        out.push(Doctor::from(row));
    }
    Ok(out)
}

pub async fn get(db: &Db, id: Uuid) -> Result<Option<Doctor>> {
    const SQL: &str = "SELECT d.id, d.clinic_id, c.name AS clinic_name, c.time_zone, d.display_name, d.bio, d.languages, \
        d.fee_cents, d.currency, d.user_id, NULL AS specialties FROM doctors d JOIN clinics c ON c.id = d.clinic_id \
        WHERE d.id = $1 AND d.deleted_at IS NULL";
    let row = on_db!(db, |pool| sqlx::query_as::<_, DoctorRow>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?;
    Ok(with_specialties(db, row.into_iter().collect()).await?.pop())
}

/// The doctor profiles linked to a user account.
pub async fn ids_of_user(db: &Db, user_id: Uuid) -> Result<Vec<Uuid>> {
    const SQL: &str = "SELECT id FROM doctors WHERE user_id = $1 AND deleted_at IS NULL";
    let rows: Vec<(Uuid,)> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

fn check_form(checks: &mut Checks, form: &DoctorForm) -> (String, String, String, String) {
    let name = checks.line("display_name", &form.display_name, 2, 120);
    let bio = checks.text("bio", &form.bio, 0, 4000);
    let mut languages = Vec::new();
    for l in &form.languages {
        let l = l.trim().to_lowercase();
        if l.len() != 2 || !l.chars().all(|c| c.is_ascii_lowercase()) {
            checks.fail(
                "languages",
                format!("{l:?} is not an ISO 639-1 code such as \"en\""),
            );
        } else if !languages.contains(&l) {
            languages.push(l);
        }
    }
    if languages.is_empty() {
        languages.push("en".into());
    }
    if !(0..=100_000_000).contains(&form.fee_cents) {
        checks.fail("fee_cents", "must be between 0 and 100000000");
    }
    let currency = checks.currency("currency", form.currency.as_deref().unwrap_or("EUR"));
    if form.specialties.is_empty() {
        checks.fail("specialties", "at least one specialty");
    }
    (name, bio, format!(",{},", languages.join(",")), currency)
}

/// The specialties named by slug, each once (a slug given twice, even apart, counts once);
/// an unknown one fails the check.
async fn specialty_ids(db: &Db, checks: &mut Checks, slugs: &[String]) -> Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    for slug in slugs {
        match crate::domain::clinics::specialties::by_slug(db, slug.trim()).await? {
            Some(s) if !ids.contains(&s.id) => ids.push(s.id),
            Some(_) => {}
            None => checks.fail("specialties", format!("unknown specialty {slug:?}")),
        }
    }
    Ok(ids)
}

/// Adds a doctor to a clinic (its admins). With an email, the account is invited
/// (`invitations`): a new address gets an account linked to the profile with the doctor
/// role there; an existing account is linked when it accepts. The invitation is mailed.
pub async fn create(
    db: &Db,
    mailer: &Mailer,
    actor: &Actor,
    clinic_id: Uuid,
    form: DoctorForm,
) -> Result<Doctor> {
    clinics::require_admin_of(actor, clinic_id)?;
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let mut checks = Checks::new();
    let (name, bio, languages, currency) = check_form(&mut checks, &form);
    let email = form.email.as_deref().map(|e| checks.email("email", e));
    let specialty_ids = specialty_ids(db, &mut checks, &form.specialties).await?;
    checks.finish()?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    const INSERT: &str = "INSERT INTO doctors (id, clinic_id, display_name, bio, languages, fee_cents, currency, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
    const SPECIALTY: &str =
        "INSERT INTO doctor_specialties (doctor_id, specialty_id) VALUES ($1, $2)";
    on_tx!(&mut tx, |conn| {
        sqlx::query(INSERT)
            .bind(id)
            .bind(clinic_id)
            .bind(&name)
            .bind(&bio)
            .bind(&languages)
            .bind(form.fee_cents)
            .bind(&currency)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        for sid in &specialty_ids {
            sqlx::query(SPECIALTY)
                .bind(id)
                .bind(sid)
                .execute(&mut *conn)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    })?;
    // The account joins now (a new address, or the admin's own) or when it accepts.
    let invited = match &email {
        None => None,
        Some(email) => Some(
            invitations::invite(
                &mut tx,
                actor,
                email,
                &name,
                Grant::in_clinic(Role::Doctor, clinic_id),
                Some(id),
                now,
            )
            .await?,
        ),
    };
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "doctor.created",
            subject: format!("doctor:{id}"),
            clinic_id: Some(clinic_id),
            details: json!({"user": invited.and_then(|i| i.joined()), "invited": invited.is_some()}),
        },
    )
    .await?;
    tx.commit().await?;
    if let (Some(email), Some(invited)) = (&email, invited) {
        let invitation = messages::Invitation {
            name: &name,
            clinic: Some(&clinic.name),
            role: Role::Doctor.as_str(),
            join: invited.join(db.policy().site.as_deref(), email),
        };
        let language = people::language_of(db, email).await?;
        let mail = Kind::DoctorInvitation(&invitation).render(language)?;
        mailer.send(email, &mail.subject, &mail.body).await;
    }
    find(db, id).await
}

/// A doctor's profile as their clinic's admins change it (the sign-in address stays: the
/// account was invited when the doctor was added).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoctorProfile {
    #[schema(schema_with = crate::domain::validate::schema::person_name)]
    pub display_name: String,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::long_text)]
    pub bio: String,
    /// ISO 639-1 codes, e.g. `["en", "pt"]`.
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100000000)]
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    pub fee_cents: i64,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::currency, nullable)]
    pub currency: Option<String>,
    #[schema(schema_with = crate::domain::clinics::specialties::slug_list_schema)]
    pub specialties: Vec<String>,
}

/// Changes a doctor's profile: name, bio, languages, fee and specialties (their clinic's
/// admins), audited.
pub async fn update(db: &Db, actor: &Actor, id: Uuid, profile: DoctorProfile) -> Result<Doctor> {
    let doctor = find(db, id).await?;
    clinics::require_admin_of(actor, doctor.clinic_id)?;
    let form = DoctorForm {
        display_name: profile.display_name,
        bio: profile.bio,
        languages: profile.languages,
        fee_cents: profile.fee_cents,
        currency: profile.currency,
        specialties: profile.specialties,
        email: None,
    };
    let mut checks = Checks::new();
    let (name, bio, languages, currency) = check_form(&mut checks, &form);
    let specialty_ids = specialty_ids(db, &mut checks, &form.specialties).await?;
    checks.finish()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const UPDATE: &str = "UPDATE doctors SET display_name = $2, bio = $3, languages = $4, fee_cents = $5, currency = $6, updated_at = $7 WHERE id = $1";
    const CLEAR: &str = "DELETE FROM doctor_specialties WHERE doctor_id = $1";
    const SPECIALTY: &str =
        "INSERT INTO doctor_specialties (doctor_id, specialty_id) VALUES ($1, $2)";
    on_tx!(&mut tx, |conn| {
        sqlx::query(UPDATE)
            .bind(id)
            .bind(&name)
            .bind(&bio)
            .bind(&languages)
            .bind(form.fee_cents)
            .bind(&currency)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        sqlx::query(CLEAR).bind(id).execute(&mut *conn).await?;
        for sid in &specialty_ids {
            sqlx::query(SPECIALTY)
                .bind(id)
                .bind(sid)
                .execute(&mut *conn)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    })?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "doctor.updated",
            subject: format!("doctor:{id}"),
            clinic_id: Some(doctor.clinic_id),
            details: json!({"fee_cents": form.fee_cents, "specialties": form.specialties.len()}),
        },
    )
    .await?;
    tx.commit().await?;
    find(db, id).await
}

/// A doctor that exists, or `not_found`.
pub async fn find(db: &Db, id: Uuid) -> Result<Doctor> {
    get(db, id).await?.ok_or_else(|| Error::not_found("doctor"))
}

/// A doctor the caller runs as their clinic's staff (schedules, time off), else
/// `not_found` or `forbidden`.
pub async fn for_staff(db: &Db, actor: &Actor, id: Uuid) -> Result<Doctor> {
    let doctor = find(db, id).await?;
    clinics::require_staff_of(actor, doctor.clinic_id)?;
    Ok(doctor)
}

/// A doctor who is the caller, or whom the caller runs as their clinic's staff.
pub async fn for_self_or_staff(db: &Db, actor: &Actor, id: Uuid) -> Result<Doctor> {
    let doctor = find(db, id).await?;
    if doctor.user_id != Some(actor.principal()?.user_id) {
        clinics::require_staff_of(actor, doctor.clinic_id)?;
    }
    Ok(doctor)
}

/// A patient chooses a doctor (their regular doctor).
pub async fn select(db: &Db, actor: &Actor, doctor_id: Uuid) -> Result<Doctor> {
    let principal = actor.principal()?;
    let doctor = find(db, doctor_id).await?;
    const SQL: &str = "INSERT INTO patient_doctors (patient_id, doctor_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    let mut tx = db.begin().await?;
    crate::exec_tx!(&mut tx, SQL, principal.user_id, doctor_id, Utc::now())?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "doctor.selected",
            subject: format!("doctor:{doctor_id}"),
            clinic_id: Some(doctor.clinic_id),
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(doctor)
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct PatientSummary {
    pub id: Uuid,
    pub display_name: String,
    pub email: String,
    /// When they chose this doctor, if they did.
    pub selected_at: Option<DateTime<Utc>>,
    pub next_appointment: Option<DateTime<Utc>>,
}

/// A doctor's patients: those who chose them or have an appointment with them. Only
/// the doctor themself and their clinic's staff may ask.
pub async fn patients(db: &Db, actor: &Actor, doctor_id: Uuid) -> Result<Vec<PatientSummary>> {
    for_self_or_staff(db, actor, doctor_id).await?;
    const SQL: &str = "SELECT u.id, u.display_name, u.email, \
        (SELECT pd.created_at FROM patient_doctors pd WHERE pd.patient_id = u.id AND pd.doctor_id = $1) AS selected_at, \
        (SELECT MIN(a.starts_at) FROM appointments a WHERE a.patient_id = u.id AND a.doctor_id = $1 AND a.status = 'booked' AND a.starts_at > $2) AS next_appointment \
        FROM users u WHERE EXISTS (SELECT 1 FROM patient_doctors pd WHERE pd.patient_id = u.id AND pd.doctor_id = $1) \
        OR EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = u.id AND a.doctor_id = $1 AND a.status <> 'cancelled') \
        ORDER BY u.display_name, u.id";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, PatientSummary>(SQL)
        .bind(doctor_id)
        .bind(Utc::now())
        .fetch_all(pool)
        .await)?)
}
