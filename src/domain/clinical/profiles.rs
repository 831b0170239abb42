//! A patient's profile: date of birth (never an age), sex, blood group, identifiers and
//! emergency contacts, which the clinic's staff read; allergies, conditions, history and
//! medication, which only the patient and their doctors read (sealed at rest). The patient
//! writes their own; every change and every clinical read is audited.
//!
//! Also how the front desk finds a patient: by the QR code the patient shows (a sealed,
//! expiring token, never the user id), or by name, phone or date of birth among the patients
//! the clinic knows.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::{Actor, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::care::access;
use crate::domain::clinics;
use crate::domain::validate::Checks;
use crate::error::{Code, Error, Result};
use crate::notify::language::Language;
use crate::on_db;

crate::text_enum! {
    /// Sex as recorded clinically.
    pub enum Sex {
        Female = "female",
        Male = "male",
        Intersex = "intersex",
        Unknown = "unknown",
    }
}

crate::text_enum! {
    /// ABO group and Rh factor.
    pub enum BloodGroup {
        APos = "A+",
        ANeg = "A-",
        BPos = "B+",
        BNeg = "B-",
        AbPos = "AB+",
        AbNeg = "AB-",
        OPos = "O+",
        ONeg = "O-",
    }
}

/// Someone to call for the patient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyContact {
    #[schema(schema_with = crate::domain::validate::schema::person_name)]
    pub name: String,
    /// E.g. `mother`, `partner`.
    #[schema(schema_with = crate::domain::validate::schema::short_line)]
    pub relation: String,
    /// E.164, e.g. `+351912345678`.
    #[schema(schema_with = crate::domain::validate::schema::e164)]
    pub phone: String,
}

/// The clinical part of a profile (sealed; the patient and their doctors read it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClinicalProfile {
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::clinical_items)]
    pub allergies: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::clinical_items)]
    pub chronic_conditions: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::clinical_text)]
    pub medical_history: String,
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::clinical_items)]
    pub current_medication: Vec<String>,
}

/// The whole profile, as the patient writes it (a PUT: what is absent is cleared).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// `YYYY-MM-DD`, not in the future.
    #[schema(schema_with = crate::domain::validate::schema::date, nullable)]
    pub date_of_birth: Option<NaiveDate>,
    #[schema(nullable)]
    pub sex: Option<Sex>,
    #[schema(nullable)]
    pub blood_group: Option<BloodGroup>,
    #[schema(schema_with = crate::domain::validate::schema::short_line, nullable)]
    pub national_id: Option<String>,
    #[schema(schema_with = crate::domain::validate::schema::short_line, nullable)]
    pub insurance_id: Option<String>,
    /// At most 5.
    #[serde(default)]
    #[schema(max_items = 5)]
    pub emergency_contacts: Vec<EmergencyContact>,
    #[serde(default)]
    pub clinical: ClinicalProfile,
    /// The language messages are written in (kept on the account).
    #[schema(nullable)]
    pub language: Option<Language>,
}

/// A patient's profile as the reader may see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Profile {
    pub patient_id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub language: Language,
    pub date_of_birth: Option<NaiveDate>,
    pub sex: Option<Sex>,
    pub blood_group: Option<BloodGroup>,
    pub national_id: Option<String>,
    pub insurance_id: Option<String>,
    pub emergency_contacts: Vec<EmergencyContact>,
    /// Absent for readers of administrative fields only (a clinic's staff).
    pub clinical: Option<ClinicalProfile>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ProfileRow {
    patient_id: Uuid,
    name: String,
    email: String,
    phone: Option<String>,
    language: String,
    date_of_birth: Option<NaiveDate>,
    sex: Option<Sex>,
    blood_group: Option<BloodGroup>,
    national_id: Option<String>,
    insurance_id: Option<String>,
    emergency_contacts: Option<String>,
    sealed: Option<Vec<u8>>,
    updated_at: Option<DateTime<Utc>>,
}

const SELECT_PROFILE: &str = "SELECT u.id AS patient_id, u.display_name AS name, u.email, u.phone, u.language, \
    p.date_of_birth, p.sex, p.blood_group, p.national_id, p.insurance_id, p.emergency_contacts, p.sealed, p.updated_at \
    FROM users u LEFT JOIN patient_profiles p ON p.patient_id = u.id WHERE u.id = $1 AND u.erased_at IS NULL";

fn sealing_context(patient_id: Uuid) -> Vec<u8> {
    format!("profile:{patient_id}").into_bytes()
}

impl ProfileRow {
    fn into_profile(self, db: &Db, clinical: bool) -> Result<Profile> {
        let clinical = match (clinical, &self.sealed) {
            (false, _) => None,
            (true, None) => Some(ClinicalProfile::default()),
            (true, Some(sealed)) => {
                let plain = db
                    .policy()
                    .sealer
                    .open(sealed, &sealing_context(self.patient_id))
                    .map_err(|e| Error::internal(format!("profile {}: {e}", self.patient_id)))?;
                Some(serde_json::from_slice(&plain).map_err(Error::internal)?)
            }
        };
        let emergency_contacts = match &self.emergency_contacts {
            Some(json) => serde_json::from_str(json).map_err(Error::internal)?,
            None => Vec::new(),
        };
        Ok(Profile {
            patient_id: self.patient_id,
            name: self.name,
            email: self.email,
            phone: self.phone,
            language: Language::parse(&self.language).unwrap_or_default(),
            date_of_birth: self.date_of_birth,
            sex: self.sex,
            blood_group: self.blood_group,
            national_id: self.national_id,
            insurance_id: self.insurance_id,
            emergency_contacts,
            clinical,
            updated_at: self.updated_at,
        })
    }
}

async fn load(db: &Db, patient_id: Uuid) -> Result<Option<ProfileRow>> {
    Ok(on_db!(db, |pool| sqlx::query_as::<_, ProfileRow>(
        SELECT_PROFILE
    )
    .bind(patient_id)
    .fetch_optional(pool)
    .await)?)
}

/// The signed-in patient's own profile.
pub async fn mine(db: &Db, actor: &Actor) -> Result<Profile> {
    let p = actor.principal()?;
    load(db, p.user_id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?
        .into_profile(db, true)
}

/// Checks a profile as [`update_mine`] stores it; returns it trimmed.
fn check(body: &ProfileBody, today: NaiveDate) -> Result<ProfileBody> {
    let mut checks = Checks::new();
    let mut out = body.clone();
    if let Some(born) = body.date_of_birth
        && (born > today || born < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(born))
    {
        checks.fail("date_of_birth", "must be between 1900-01-01 and today");
    }
    out.national_id = body
        .national_id
        .as_deref()
        .map(|v| checks.line("national_id", v, 1, 60));
    out.insurance_id = body
        .insurance_id
        .as_deref()
        .map(|v| checks.line("insurance_id", v, 1, 60));
    if body.emergency_contacts.len() > 5 {
        checks.fail("emergency_contacts", "at most 5");
    }
    for (i, c) in out.emergency_contacts.iter_mut().enumerate() {
        c.name = checks.line(&format!("emergency_contacts[{i}].name"), &c.name, 2, 120);
        c.relation = checks.line(
            &format!("emergency_contacts[{i}].relation"),
            &c.relation,
            1,
            60,
        );
        let digits = c.phone.strip_prefix('+').unwrap_or("");
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            checks.fail(
                &format!("emergency_contacts[{i}].phone"),
                "must be E.164, e.g. +351912345678",
            );
        }
    }
    let c = &mut out.clinical;
    for (field, items) in [
        ("clinical.allergies", &mut c.allergies),
        ("clinical.chronic_conditions", &mut c.chronic_conditions),
        ("clinical.current_medication", &mut c.current_medication),
    ] {
        if items.len() > 50 {
            checks.fail(field, "at most 50 items");
        }
        for (i, item) in items.iter_mut().enumerate() {
            *item = checks.line(&format!("{field}[{i}]"), item, 1, 200);
        }
    }
    c.medical_history = checks.text("clinical.medical_history", &c.medical_history, 0, 10_000);
    checks.finish()?;
    Ok(out)
}

/// The patient replaces their profile (audited, without its contents).
pub async fn update_mine(db: &Db, actor: &Actor, body: &ProfileBody) -> Result<Profile> {
    let p = actor.principal()?;
    let now = Utc::now();
    let body = check(body, now.date_naive())?;
    let patient_id = p.user_id;
    let sealer = &db.policy().sealer;
    let clinical = serde_json::to_vec(&body.clinical).map_err(Error::internal)?;
    let sealed = sealer.seal(&clinical, &sealing_context(patient_id));
    let contacts = serde_json::to_string(&body.emergency_contacts).map_err(Error::internal)?;
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO patient_profiles (patient_id, date_of_birth, sex, blood_group, national_id, insurance_id, \
        emergency_contacts, sealed, key_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
        ON CONFLICT (patient_id) DO UPDATE SET date_of_birth = $2, sex = $3, blood_group = $4, national_id = $5, \
        insurance_id = $6, emergency_contacts = $7, sealed = $8, key_id = $9, updated_at = $10";
    crate::exec_tx!(
        &mut tx,
        SQL,
        patient_id,
        body.date_of_birth,
        body.sex,
        body.blood_group,
        body.national_id.as_deref(),
        body.insurance_id.as_deref(),
        contacts,
        sealed,
        i64::from(sealer.current_key_id()),
        now
    )?;
    if let Some(lang) = body.language {
        const LANG: &str = "UPDATE users SET language = $2, updated_at = $3 WHERE id = $1";
        crate::exec_tx!(&mut tx, LANG, patient_id, lang.as_str(), now)?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "profile.updated",
            subject: format!("patient:{patient_id}"),
            clinic_id: None,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    mine(db, actor).await
}

/// Whether the caller is staff (admin or receptionist) of a clinic that knows the patient.
async fn staff_of_knowing_clinic(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<bool> {
    let p = actor.principal()?;
    for g in &p.grants {
        if let (Role::ClinicAdmin | Role::ClinicStaff, Some(clinic_id)) = (g.role, g.clinic_id)
            && clinics::patients::knows_now(db, clinic_id, patient_id).await?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A patient's profile for another reader: the patient's doctors read all of it (audited),
/// the staff of a clinic that knows the patient the administrative fields. Anyone else is
/// refused as if the patient did not exist.
pub async fn get(db: &Db, actor: &Actor, patient_id: Uuid) -> Result<Profile> {
    let p = actor.principal()?;
    let row = load(db, patient_id)
        .await?
        .ok_or_else(|| Error::not_found("patient"))?;
    if p.user_id == patient_id {
        return row.into_profile(db, true);
    }
    if staff_of_knowing_clinic(db, actor, patient_id).await? {
        // A doctor who is also staff reads the clinical part when they treat the patient.
        let clinical = access::read_scope(db, actor, patient_id, "profile.read")
            .await
            .is_ok();
        return read(db, actor, row, clinical).await;
    }
    access::read_scope(db, actor, patient_id, "profile.read").await?;
    read(db, actor, row, true).await
}

/// The whole profile, for a reader whose access to the patient's record the caller
/// checked (the chart, which audits the read).
pub(crate) async fn whole_unaudited(db: &Db, patient_id: Uuid) -> Result<Profile> {
    load(db, patient_id)
        .await?
        .ok_or_else(|| Error::not_found("patient"))?
        .into_profile(db, true)
}

async fn read(db: &Db, actor: &Actor, row: ProfileRow, clinical: bool) -> Result<Profile> {
    let profile = row.into_profile(db, clinical)?;
    if clinical {
        audit::record_alone(
            db,
            actor.user_id(),
            Entry {
                action: "profile.read",
                subject: format!("patient:{}", profile.patient_id),
                clinic_id: None,
                details: json!({}),
            },
        )
        .await?;
    }
    Ok(profile)
}

// ---- QR identity ---------------------------------------------------------------------

/// How long a QR code shown at a desk stays good.
pub const QR_LIFETIME: Duration = Duration::minutes(15);

/// What a QR code carries, sealed (authenticated encryption: it can be neither read nor
/// forged without the service's key).
#[derive(Serialize, Deserialize)]
struct QrClaims {
    /// The patient.
    p: Uuid,
    /// The profile's QR epoch when it was made: raising it revokes the code.
    e: i64,
    /// The only clinic it opens the patient at, when the patient chose one.
    c: Option<Uuid>,
    /// Expiry, Unix seconds.
    x: i64,
}

const QR_PREFIX: &str = "cq1.";
const QR_CONTEXT: &[u8] = b"patient-qr";

/// A token the patient shows at a clinic's desk, and when it expires.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct QrToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

async fn qr_epoch(db: &Db, patient_id: Uuid) -> Result<i64> {
    const SQL: &str = "SELECT qr_epoch FROM patient_profiles WHERE patient_id = $1";
    let epoch: Option<i64> = on_db!(db, |pool| sqlx::query_scalar(SQL)
        .bind(patient_id)
        .fetch_optional(pool)
        .await)?;
    Ok(epoch.unwrap_or(0))
}

/// A fresh QR token for the signed-in patient, good for [`QR_LIFETIME`], at any clinic or
/// only at `clinic_id`.
pub async fn qr_token(db: &Db, actor: &Actor, clinic_id: Option<Uuid>) -> Result<QrToken> {
    let p = actor.principal()?;
    if let Some(id) = clinic_id {
        clinics::get(db, id)
            .await?
            .ok_or_else(|| Error::not_found("clinic"))?;
    }
    let expires_at = Utc::now() + QR_LIFETIME;
    let claims = QrClaims {
        p: p.user_id,
        e: qr_epoch(db, p.user_id).await?,
        c: clinic_id,
        x: expires_at.timestamp(),
    };
    let plain = serde_json::to_vec(&claims).map_err(Error::internal)?;
    let sealed = db.policy().sealer.seal(&plain, QR_CONTEXT);
    Ok(QrToken {
        token: format!("{QR_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)),
        expires_at,
    })
}

/// The patient revokes every QR code made so far.
pub async fn revoke_qr(db: &Db, actor: &Actor) -> Result<()> {
    let p = actor.principal()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO patient_profiles (patient_id, qr_epoch, created_at, updated_at) VALUES ($1, 1, $2, $2) \
        ON CONFLICT (patient_id) DO UPDATE SET qr_epoch = patient_profiles.qr_epoch + 1, updated_at = $2";
    crate::exec_tx!(&mut tx, SQL, p.user_id, now)?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "profile.qr_revoked",
            subject: format!("patient:{}", p.user_id),
            clinic_id: None,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn invalid_qr(detail: &'static str) -> Error {
    Error::new(Code::InvalidQrToken, detail)
}

/// A clinic's staff open the patient whose QR code they scanned: a forged, expired or
/// revoked code, or one made for another clinic, is refused. The patient is registered at
/// the clinic (showing the code at its desk is the patient's act), and the administrative
/// profile is returned. Audited.
pub async fn identify(db: &Db, actor: &Actor, clinic_id: Uuid, token: &str) -> Result<Profile> {
    clinics::require_staff_of(actor, clinic_id)?;
    let sealed = token
        .trim()
        .strip_prefix(QR_PREFIX)
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .ok_or_else(|| invalid_qr("This is not a patient QR code of this service."))?;
    let plain = db
        .policy()
        .sealer
        .open(&sealed, QR_CONTEXT)
        .map_err(|_| invalid_qr("This QR code was not made by this service."))?;
    let claims: QrClaims = serde_json::from_slice(&plain)
        .map_err(|_| invalid_qr("This QR code was not made by this service."))?;
    let now = Utc::now();
    if claims.x < now.timestamp() {
        return Err(invalid_qr(
            "This QR code has expired; ask the patient to show a fresh one.",
        ));
    }
    if claims.c.is_some_and(|c| c != clinic_id) {
        return Err(invalid_qr("This QR code was made for another clinic."));
    }
    if claims.e != qr_epoch(db, claims.p).await? {
        return Err(invalid_qr("The patient has revoked this QR code."));
    }
    let row = load(db, claims.p)
        .await?
        .ok_or_else(|| invalid_qr("This patient's account no longer exists."))?;
    let mut tx = db.begin().await?;
    register_in(&mut tx, clinic_id, claims.p, now).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "patient.identified",
            subject: format!("patient:{}", claims.p),
            clinic_id: Some(clinic_id),
            details: json!({"by": "qr"}),
        },
    )
    .await?;
    tx.commit().await?;
    row.into_profile(db, false)
}

/// Registers the patient at the clinic (once).
pub(crate) async fn register_in(
    tx: &mut crate::db::Tx,
    clinic_id: Uuid,
    patient_id: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    clinics::patients::register(tx, clinic_id, patient_id, now).await
}

// ---- Search ----------------------------------------------------------------------------

/// What the front desk searches by; at least one of `q`, `phone`, `date_of_birth`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PatientQuery {
    /// Part of the name or the email (2 to 100 characters).
    #[param(min_length = 2, max_length = 100)]
    pub q: Option<String>,
    /// The phone, exactly as registered (E.164).
    #[param(pattern = r"^\+[0-9]{8,15}$")]
    pub phone: Option<String>,
    /// The date of birth, exactly.
    #[param(pattern = "^(19|2[01])[0-9]{2}-[0-9]{2}-[0-9]{2}$")]
    pub date_of_birth: Option<NaiveDate>,
    /// 1-based page (default 1).
    #[param(minimum = 1, maximum = 1000)]
    pub page: Option<u32>,
    /// Results per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
}

/// One patient in a search: what the front desk needs to tell people apart.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct PatientCard {
    pub patient_id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
}

/// A page of search results.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PatientPage {
    pub patients: Vec<PatientCard>,
    pub page: u32,
    pub per_page: u32,
    /// Whether a further page exists.
    pub more: bool,
}

/// The clinic's staff search the patients the clinic knows (audited).
pub async fn search(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    query: &PatientQuery,
) -> Result<PatientPage> {
    clinics::require_staff_of(actor, clinic_id)?;
    let mut checks = Checks::new();
    let q = query
        .q
        .as_deref()
        .map(|q| checks.line("q", q, 2, 100).to_lowercase());
    if query.q.is_none() && query.phone.is_none() && query.date_of_birth.is_none() {
        checks.fail("q", "give a name, a phone or a date of birth");
    }
    checks.finish_query()?;
    let per_page = query.per_page.unwrap_or(20).clamp(1, 100);
    let page = query.page.unwrap_or(1).clamp(1, 1000);
    let pattern = q.map(|q| {
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    const SQL: &str = concat!(
        "SELECT u.id AS patient_id, u.display_name AS name, u.email, u.phone, p.date_of_birth \
         FROM users u LEFT JOIN patient_profiles p ON p.patient_id = u.id \
         WHERE u.erased_at IS NULL AND ",
        crate::known_to_clinic!("u.id"),
        " AND ($2 IS NULL OR lower(u.display_name) LIKE $2 ESCAPE '\\' OR u.email LIKE $2 ESCAPE '\\') \
         AND ($3 IS NULL OR u.phone = $3) AND ($4 IS NULL OR p.date_of_birth = $4) \
         ORDER BY u.display_name, u.id LIMIT $5 OFFSET $6"
    );
    let mut patients = on_db!(db, |pool| sqlx::query_as::<_, PatientCard>(SQL)
        .bind(clinic_id)
        .bind(pattern.as_deref())
        .bind(query.phone.as_deref())
        .bind(query.date_of_birth)
        .bind(i64::from(per_page) + 1)
        .bind(i64::from(page - 1) * i64::from(per_page))
        .fetch_all(pool)
        .await)?;
    let more = patients.len() > per_page as usize;
    patients.truncate(per_page as usize);
    audit::record_alone(
        db,
        actor.user_id(),
        Entry {
            action: "patient.searched",
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"results": patients.len()}),
        },
    )
    .await?;
    Ok(PatientPage {
        patients,
        page,
        per_page,
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_checked_field_by_field() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let body = ProfileBody {
            date_of_birth: NaiveDate::from_ymd_opt(2027, 1, 1),
            emergency_contacts: vec![EmergencyContact {
                name: "Rui".into(),
                relation: "brother".into(),
                phone: "912345678".into(),
            }],
            clinical: ClinicalProfile {
                allergies: vec![" penicillin ".into(), "".into()],
                ..ClinicalProfile::default()
            },
            ..ProfileBody::default()
        };
        let text = format!("{:?}", check(&body, today).unwrap_err());
        for field in [
            "date_of_birth",
            "emergency_contacts[0].phone",
            "clinical.allergies[1]",
        ] {
            assert!(text.contains(field), "{field}: {text}");
        }
        let fine = ProfileBody {
            date_of_birth: NaiveDate::from_ymd_opt(1980, 5, 17),
            clinical: ClinicalProfile {
                allergies: vec![" penicillin ".into()],
                ..ClinicalProfile::default()
            },
            ..ProfileBody::default()
        };
        assert_eq!(
            check(&fine, today).unwrap().clinical.allergies,
            vec!["penicillin"]
        );
    }
}
