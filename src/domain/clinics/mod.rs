//! Clinics: applications to join, the system admin's decisions, and each clinic's profile.

pub mod branding;
pub mod doctors;
pub mod patients;
pub mod prices;
pub mod reports;
pub mod specialties;
pub mod staff;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::domain::actor::{Actor, Grant, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::identity::{invitations, people};
use crate::domain::validate::Checks;
use crate::error::{Code, Error, Result};
use crate::notify::mail::Mailer;
use crate::notify::messages::{self, Kind};
use crate::zone::TimeZone;
use crate::{on_db, on_tx};

/// An application to join, as submitted by anyone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClinicApplication {
    #[schema(schema_with = crate::domain::validate::schema::clinic_name)]
    pub name: String,
    #[schema(schema_with = crate::domain::validate::schema::address)]
    pub address: String,
    /// IANA time zone, e.g. `Europe/Lisbon`.
    #[schema(schema_with = crate::domain::validate::schema::time_zone)]
    pub time_zone: String,
    #[schema(schema_with = crate::domain::validate::schema::own_name)]
    pub contact_name: String,
    /// The clinic admin's address: the invitation goes here once approved.
    #[schema(schema_with = crate::domain::validate::schema::email)]
    pub contact_email: String,
    #[schema(schema_with = crate::domain::validate::schema::phone)]
    pub contact_phone: String,
    /// Specialty slugs, e.g. `["dermatology", "cardiology"]`.
    #[serde(default)]
    #[schema(schema_with = crate::domain::clinics::specialties::slug_list_schema)]
    pub specialties: Vec<String>,
}

crate::text_enum! {
    /// Where an application to join stands.
    pub enum RequestStatus {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
    }
}

crate::text_enum! {
    /// Whether a clinic is open to patients.
    pub enum ClinicStatus {
        Active = "active",
        Suspended = "suspended",
    }
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ClinicRequest {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub time_zone: TimeZone,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_phone: String,
    #[schema(value_type = Vec<String>)]
    pub specialties: Json<Vec<String>>,
    pub status: RequestStatus,
    pub reason: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub clinic_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Clinic {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub time_zone: TimeZone,
    pub contact_email: String,
    pub contact_phone: String,
    pub description: String,
    pub status: ClinicStatus,
    pub cancellation_cutoff_minutes: i64,
    /// Sites allowed to embed the chat widget (their origins, e.g. `https://clinic.example`).
    #[sqlx(try_from = "String")]
    pub widget_origins: Origins,
    #[serde(skip)]
    pub logo_path: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Clinic {
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.tz()
    }
}

/// Changes a clinic admin may make to their clinic's profile.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClinicPatch {
    #[schema(schema_with = crate::domain::validate::schema::clinic_name, nullable)]
    pub name: Option<String>,
    #[schema(schema_with = crate::domain::validate::schema::address, nullable)]
    pub address: Option<String>,
    #[schema(schema_with = crate::domain::validate::schema::long_text, nullable)]
    pub description: Option<String>,
    #[schema(schema_with = crate::domain::validate::schema::email, nullable)]
    pub contact_email: Option<String>,
    #[schema(schema_with = crate::domain::validate::schema::phone, nullable)]
    pub contact_phone: Option<String>,
    /// Minutes before the start after which patients can no longer cancel or reschedule.
    #[serde(
        default,
        deserialize_with = "crate::domain::validate::optional_whole_number"
    )]
    #[schema(minimum = 0, maximum = 10080)]
    pub cancellation_cutoff_minutes: Option<i64>,
    /// Origins of the sites that embed the widget, e.g. `["https://clinic.example"]`.
    #[schema(schema_with = crate::domain::validate::schema::origins, nullable)]
    pub widget_origins: Option<Vec<String>>,
}

/// A clinic's widget origins, stored as `,a,b,` so one LIKE finds an origin.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
#[serde(transparent)]
pub struct Origins(pub Vec<String>);

impl From<String> for Origins {
    fn from(stored: String) -> Self {
        Self(
            stored
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

/// `scheme://host[:port]` and nothing else (no path, no wildcard).
fn checked_origin(checks: &mut Checks, origin: &str) -> String {
    let o = origin.trim().trim_end_matches('/').to_lowercase();
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| {
        !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    });
    if !ok {
        checks.fail(
            "widget_origins",
            format!("{origin:?} is not an origin such as https://clinic.example"),
        );
    }
    o
}

/// Whether an active clinic lets `origin` embed the widget.
pub async fn widget_origin_allowed(db: &Db, origin: &str) -> bool {
    let mut checks = Checks::new();
    let origin = checked_origin(&mut checks, origin);
    if checks.finish().is_err() {
        return false;
    }
    const SQL: &str =
        "SELECT COUNT(*) FROM clinics WHERE status = 'active' AND widget_origins LIKE $1";
    let pattern = format!("%,{origin},%");
    let n: std::result::Result<i64, sqlx::Error> = on_db!(db, |pool| sqlx::query_scalar(SQL)
        .bind(&pattern)
        .fetch_one(pool)
        .await);
    n.is_ok_and(|n| n > 0)
}

macro_rules! select_clinics {
    ($tail:literal) => {
        concat!(
            "SELECT c.id, c.name, c.address, c.time_zone, c.contact_email, c.contact_phone, c.description, c.status, ",
            "c.cancellation_cutoff_minutes, c.widget_origins, c.logo_path, c.created_at FROM clinics c ",
            $tail
        )
    };
}

pub fn parse_time_zone(checks: &mut Checks, field: &str, tz: &str) -> TimeZone {
    tz.parse().unwrap_or_else(|_| {
        checks.fail(field, "must be an IANA time zone such as Europe/Lisbon");
        TimeZone::UTC
    })
}

/// Records an application to join; anyone may apply.
pub async fn apply(db: &Db, actor: &Actor, form: ClinicApplication) -> Result<ClinicRequest> {
    let mut checks = Checks::new();
    let name = checks.line("name", &form.name, 2, 200);
    let address = checks.text("address", &form.address, 3, 500);
    let time_zone = parse_time_zone(&mut checks, "time_zone", &form.time_zone);
    let contact_name = checks.line("contact_name", &form.contact_name, 1, 100);
    let contact_email = checks.email("contact_email", &form.contact_email);
    let contact_phone = checks.line("contact_phone", &form.contact_phone, 3, 40);
    if form.specialties.len() > 60 {
        checks.fail("specialties", "at most 60");
    }
    let mut slugs = Vec::new();
    for slug in &form.specialties {
        let slug = slug.trim().to_lowercase();
        if crate::domain::clinics::specialties::by_slug(db, &slug)
            .await?
            .is_none()
        {
            checks.fail("specialties", format!("unknown specialty {slug:?}"));
        }
        if !slugs.contains(&slug) {
            slugs.push(slug);
        }
    }
    checks.finish()?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO clinic_requests (id, name, address, time_zone, contact_name, contact_email, contact_phone, \
        specialties, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)";
    crate::exec_tx!(
        &mut tx,
        SQL,
        id,
        &name,
        &address,
        time_zone,
        &contact_name,
        &contact_email,
        &contact_phone,
        Json(&slugs),
        now
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "clinic_request.submitted",
            subject: format!("clinic_request:{id}"),
            clinic_id: None,
            details: json!({"time_zone": time_zone, "specialties": slugs}),
        },
    )
    .await?;
    tx.commit().await?;
    find_request(db, id)
        .await?
        .ok_or_else(|| Error::not_found("clinic request"))
}

async fn find_request(db: &Db, id: Uuid) -> Result<Option<ClinicRequest>> {
    const SQL: &str = "SELECT id, name, address, time_zone, contact_name, contact_email, contact_phone, specialties, status, \
        reason, decided_at, clinic_id, created_at FROM clinic_requests WHERE id = $1";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, ClinicRequest>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?)
}

/// Applications, oldest first, optionally by status (system admins).
pub async fn list_requests(
    db: &Db,
    actor: &Actor,
    status: Option<&str>,
) -> Result<Vec<ClinicRequest>> {
    actor.require_system_admin()?;
    const SQL: &str = "SELECT id, name, address, time_zone, contact_name, contact_email, contact_phone, specialties, status, \
        reason, decided_at, clinic_id, created_at FROM clinic_requests WHERE ($1 IS NULL OR status = $1) ORDER BY created_at LIMIT 500";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, ClinicRequest>(SQL)
        .bind(status)
        .fetch_all(pool)
        .await)?)
}

/// Marks a pending application decided; a second decision is a conflict.
async fn decide(
    tx: &mut Tx,
    actor: &Actor,
    id: Uuid,
    status: &str,
    reason: Option<&str>,
    clinic: Option<Uuid>,
) -> Result<()> {
    const SQL: &str = "UPDATE clinic_requests SET status = $2, reason = $3, decided_by = $4, decided_at = $5, clinic_id = $6, \
        updated_at = $5 WHERE id = $1 AND status = 'pending'";
    let now = Utc::now();
    let done = crate::exec_tx!(tx, SQL, id, status, reason, actor.user_id(), now, clinic)?;
    if done == 0 {
        return Err(Error::new(
            Code::Conflict,
            "This application has already been decided.",
        ));
    }
    Ok(())
}

/// Approves an application: creates the clinic and makes its contact the clinic admin
/// (a new account if needed), then mails the invitation.
pub async fn approve(db: &Db, mailer: &Mailer, actor: &Actor, id: Uuid) -> Result<Clinic> {
    actor.require_system_admin()?;
    let request = find_request(db, id)
        .await?
        .ok_or_else(|| Error::not_found("clinic request"))?;
    let now = Utc::now();
    let clinic_id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    const CLINIC: &str = "INSERT INTO clinics (id, name, time_zone, address, contact_email, contact_phone, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";
    const SPECIALTY: &str = "INSERT INTO clinic_specialties (clinic_id, specialty_id) SELECT $1, id FROM specialties WHERE slug = $2";
    on_tx!(&mut tx, |conn| {
        sqlx::query(CLINIC)
            .bind(clinic_id)
            .bind(&request.name)
            .bind(request.time_zone)
            .bind(&request.address)
            .bind(&request.contact_email)
            .bind(&request.contact_phone)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        for slug in request.specialties.iter() {
            sqlx::query(SPECIALTY)
                .bind(clinic_id)
                .bind(slug)
                .execute(&mut *conn)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    })?;
    // After the clinic exists (the request points at it); a second approval stops here.
    decide(&mut tx, actor, id, "approved", None, Some(clinic_id)).await?;
    let admin = invitations::invite(
        &mut tx,
        actor,
        &request.contact_email,
        &request.contact_name,
        Grant::in_clinic(Role::ClinicAdmin, clinic_id),
        None,
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "clinic.approved",
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"request": id, "clinic_admin": admin.joined(), "admin_invited": admin.joined().is_none()}),
        },
    )
    .await?;
    tx.commit().await?;
    let invitation = messages::Invitation {
        name: &request.contact_name,
        clinic: Some(&request.name),
        role: Role::ClinicAdmin.as_str(),
        join: admin.join(db.policy().site.as_deref(), &request.contact_email),
    };
    let language = people::language_of(db, &request.contact_email).await?;
    let mail = Kind::ClinicApproved(&invitation).render(language)?;
    mailer
        .send(&request.contact_email, &mail.subject, &mail.body)
        .await;
    get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))
}

/// Rejects an application with a reason the applicant is told.
pub async fn reject(
    db: &Db,
    mailer: &Mailer,
    actor: &Actor,
    id: Uuid,
    reason: &str,
) -> Result<ClinicRequest> {
    actor.require_system_admin()?;
    let mut checks = Checks::new();
    let reason = checks.text("reason", reason, 3, 1000);
    checks.finish()?;
    let request = find_request(db, id)
        .await?
        .ok_or_else(|| Error::not_found("clinic request"))?;
    let mut tx = db.begin().await?;
    decide(&mut tx, actor, id, "rejected", Some(&reason), None).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "clinic_request.rejected",
            subject: format!("clinic_request:{id}"),
            clinic_id: None,
            details: json!({"reason": reason}),
        },
    )
    .await?;
    tx.commit().await?;
    let rejection = messages::Rejection {
        name: &request.contact_name,
        clinic: &request.name,
        reason: &reason,
    };
    let language = people::language_of(db, &request.contact_email).await?;
    let mail = Kind::ClinicRejected(&rejection).render(language)?;
    mailer
        .send(&request.contact_email, &mail.subject, &mail.body)
        .await;
    find_request(db, id)
        .await?
        .ok_or_else(|| Error::not_found("clinic request"))
}

/// Suspends (no new bookings, hidden from patients) or reactivates a clinic.
pub async fn set_status(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    active: bool,
    reason: &str,
) -> Result<Clinic> {
    actor.require_system_admin()?;
    let (from, to, action) = if active {
        ("suspended", "active", "clinic.reactivated")
    } else {
        ("active", "suspended", "clinic.suspended")
    };
    let mut tx = db.begin().await?;
    const SQL: &str =
        "UPDATE clinics SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4";
    let done = crate::exec_tx!(&mut tx, SQL, clinic_id, to, Utc::now(), from)?;
    if done == 0 {
        get(db, clinic_id)
            .await?
            .ok_or_else(|| Error::not_found("clinic"))?;
        return Err(Error::new(
            Code::Conflict,
            format!("The clinic is not {from}."),
        ));
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action,
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"reason": reason.trim()}),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))
}

pub async fn get(db: &Db, id: Uuid) -> Result<Option<Clinic>> {
    const SQL: &str = select_clinics!("WHERE c.id = $1");
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Clinic>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?)
}

/// A clinic patients may see and book with.
pub async fn get_active(db: &Db, id: Uuid) -> Result<Clinic> {
    match get(db, id).await? {
        Some(c) if c.status == ClinicStatus::Active => Ok(c),
        _ => Err(Error::not_found("clinic")),
    }
}

/// Active clinics, optionally offering a specialty (by slug) or matching a name.
pub async fn list(db: &Db, specialty: Option<&str>, q: Option<&str>) -> Result<Vec<Clinic>> {
    const SQL: &str = select_clinics!(
        "WHERE c.status = 'active' AND ($1 IS NULL OR EXISTS (SELECT 1 FROM clinic_specialties cs JOIN specialties s \
         ON s.id = cs.specialty_id WHERE cs.clinic_id = c.id AND s.slug = $1)) \
         AND ($2 IS NULL OR lower(c.name) LIKE $2) ORDER BY c.name LIMIT 200"
    );
    let pattern = q.map(|q| format!("%{}%", q.trim().to_lowercase()));
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Clinic>(SQL)
        .bind(specialty)
        .bind(pattern.as_deref())
        .fetch_all(pool)
        .await)?)
}

/// Every clinic, suspended ones too, for system admins; a clinic admin's own clinics.
pub async fn list_all(db: &Db, actor: &Actor) -> Result<Vec<Clinic>> {
    let p = actor.principal()?;
    const SQL: &str = select_clinics!("ORDER BY c.name LIMIT 1000");
    let mut all = on_db!(db, |pool| sqlx::query_as::<_, Clinic>(SQL)
        .fetch_all(pool)
        .await)?;
    if !actor.is_system_admin() {
        all.retain(|c| p.administers_clinic(c.id));
        if all.is_empty() {
            return Err(Error::forbidden());
        }
    }
    Ok(all)
}

/// Specialty slugs a clinic offers.
pub async fn specialties_of(db: &Db, clinic_id: Uuid) -> Result<Vec<String>> {
    const SQL: &str = "SELECT s.slug FROM clinic_specialties cs JOIN specialties s ON s.id = cs.specialty_id WHERE cs.clinic_id = $1 ORDER BY s.slug";
    let rows: Vec<(String,)> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(clinic_id)
        .fetch_all(pool)
        .await)?;
    Ok(rows.into_iter().map(|(s,)| s).collect())
}

/// Updates the profile (the clinic's admins, or a system admin).
pub async fn update(db: &Db, actor: &Actor, clinic_id: Uuid, patch: ClinicPatch) -> Result<Clinic> {
    require_admin_of(actor, clinic_id)?;
    let current = get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let mut checks = Checks::new();
    let name = patch
        .name
        .map(|v| checks.line("name", &v, 2, 200))
        .unwrap_or(current.name);
    let address = patch
        .address
        .map(|v| checks.text("address", &v, 3, 500))
        .unwrap_or(current.address);
    let description = patch
        .description
        .map(|v| checks.text("description", &v, 0, 4000))
        .unwrap_or(current.description);
    let contact_email = patch
        .contact_email
        .map(|v| checks.email("contact_email", &v))
        .unwrap_or(current.contact_email);
    let contact_phone = patch
        .contact_phone
        .map(|v| checks.line("contact_phone", &v, 3, 40))
        .unwrap_or(current.contact_phone);
    let cutoff = patch
        .cancellation_cutoff_minutes
        .unwrap_or(current.cancellation_cutoff_minutes);
    let origins = match patch.widget_origins {
        Some(list) if list.len() > 20 => {
            checks.fail("widget_origins", "at most 20 origins");
            String::from(",")
        }
        Some(list) => {
            let mut v: Vec<String> = list
                .iter()
                .map(|o| checked_origin(&mut checks, o))
                .collect();
            v.sort();
            v.dedup();
            format!(",{},", v.join(","))
        }
        None => format!(",{},", current.widget_origins.0.join(",")),
    }
    .replace(",,", ",");
    if !(0..=10_080).contains(&cutoff) {
        checks.fail(
            "cancellation_cutoff_minutes",
            "must be between 0 and 10080 (a week)",
        );
    }
    checks.finish()?;
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE clinics SET name = $2, address = $3, description = $4, contact_email = $5, contact_phone = $6, \
        cancellation_cutoff_minutes = $7, updated_at = $8, widget_origins = $9 WHERE id = $1";
    crate::exec_tx!(
        &mut tx,
        SQL,
        clinic_id,
        &name,
        &address,
        &description,
        &contact_email,
        &contact_phone,
        cutoff,
        Utc::now(),
        &origins
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "clinic.updated",
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"cancellation_cutoff_minutes": cutoff}),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))
}

/// System admins, or an admin of this clinic.
pub fn require_admin_of(actor: &Actor, clinic_id: Uuid) -> Result<()> {
    if actor.is_system_admin() || actor.principal()?.administers_clinic(clinic_id) {
        Ok(())
    } else {
        Err(Error::forbidden())
    }
}

/// Clinic admins and receptionists of this clinic (and system admins).
pub fn require_staff_of(actor: &Actor, clinic_id: Uuid) -> Result<()> {
    if actor.is_system_admin() {
        return Ok(());
    }
    let p = actor.principal()?;
    if p.administers_clinic(clinic_id) || p.has_role_in(Role::ClinicStaff, clinic_id) {
        Ok(())
    } else {
        Err(Error::forbidden())
    }
}
