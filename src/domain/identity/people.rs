//! People: user accounts and the roles they hold.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::domain::actor::{Actor, Grant, Role};
use crate::error::{Code, Error, Result};
use crate::notify::language::Language;
use crate::{on_db, on_tx};

/// A user row, secrets included; never serialised as it is.
#[derive(Clone, Debug, FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub mfa_method: String,
    pub totp_secret: Option<String>,
    pub totp_pending_secret: Option<String>,
    /// The last TOTP time step accepted, so a code cannot be replayed.
    pub totp_last_step: Option<i64>,
    pub failed_logins: i64,
    pub locked_until: Option<DateTime<Utc>>,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What we write to them in.
    #[sqlx(try_from = "String")]
    pub language: Language,
}

/// The second factor a user has turned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    None,
    Totp,
    Email,
}

impl MfaMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Totp => "totp",
            Self::Email => "email",
        }
    }
}

impl User {
    pub fn mfa(&self) -> MfaMethod {
        match self.mfa_method.as_str() {
            "totp" => MfaMethod::Totp,
            "email" => MfaMethod::Email,
            _ => MfaMethod::None,
        }
    }
}

/// What a user (or an admin) sees of an account.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub email_verified: bool,
    pub mfa_method: MfaMethod,
    pub active: bool,
    pub roles: Vec<Grant>,
    /// The language of their mail and notifications.
    pub language: Language,
    pub created_at: DateTime<Utc>,
}

impl UserView {
    pub fn new(user: &User, roles: Vec<Grant>) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            email_verified: user.email_verified_at.is_some(),
            mfa_method: user.mfa(),
            active: user.deactivated_at.is_none(),
            roles,
            language: user.language,
            created_at: user.created_at,
        }
    }
}

/// `SELECT <every user column> FROM users u <tail>`, as one static string.
macro_rules! select_users {
    ($tail:literal) => {
        concat!(
            "SELECT u.id, u.email, u.display_name, u.password_hash, u.email_verified_at, u.mfa_method, ",
            "u.totp_secret, u.totp_pending_secret, u.totp_last_step, u.failed_logins, u.locked_until, u.deactivated_at, ",
            "u.created_at, u.updated_at, u.language FROM users u ",
            $tail
        )
    };
}

pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<User>> {
    const SQL: &str = select_users!("WHERE u.email = $1");
    Ok(on_db!(db, |pool| sqlx::query_as::<_, User>(SQL)
        .bind(email)
        .fetch_optional(pool)
        .await)?)
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<User>> {
    const SQL: &str = select_users!("WHERE u.id = $1");
    Ok(on_db!(db, |pool| sqlx::query_as::<_, User>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?)
}

/// A user's row within a transaction.
pub async fn find_in(tx: &mut Tx, id: Uuid) -> Result<Option<User>> {
    const SQL: &str = select_users!("WHERE u.id = $1");
    Ok(on_tx!(tx, |conn| sqlx::query_as::<_, User>(SQL)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await)?)
}

/// The language to write to `email` in: its account's, or the default for an address
/// without one.
pub async fn language_of(db: &Db, email: &str) -> Result<Language> {
    const SQL: &str = "SELECT language FROM users WHERE email = $1";
    let code: Option<String> = on_db!(db, |pool| sqlx::query_scalar(SQL)
        .bind(email)
        .fetch_optional(pool)
        .await)?;
    Ok(code.and_then(|c| Language::parse(&c)).unwrap_or_default())
}

/// A user's roles.
pub(crate) const GRANTS_SQL: &str =
    "SELECT role, clinic_id FROM user_roles WHERE user_id = $1 ORDER BY created_at, role";

pub async fn grants(db: &Db, user_id: Uuid) -> Result<Vec<Grant>> {
    let rows: Vec<(String, Option<Uuid>)> = on_db!(db, |pool| sqlx::query_as(GRANTS_SQL)
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
    Ok(grants_from(rows))
}

/// Grants from `user_roles` rows (role, clinic); a role this build does not know is skipped.
pub(crate) fn grants_from(rows: impl IntoIterator<Item = (String, Option<Uuid>)>) -> Vec<Grant> {
    rows.into_iter()
        .filter_map(|(role, clinic_id)| Role::parse(&role).map(|role| Grant { role, clinic_id }))
        .collect()
}

pub async fn view(db: &Db, user: &User) -> Result<UserView> {
    Ok(UserView::new(user, grants(db, user.id).await?))
}

/// A new account, created inside the caller's transaction.
pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub verified: bool,
    pub language: Language,
}

pub async fn insert(tx: &mut Tx, new: NewUser<'_>, now: DateTime<Utc>) -> Result<Uuid> {
    insert_with_id(tx, Uuid::now_v7(), new, now).await
}

/// [`insert`] under an id chosen by the caller (a front desk's id for a walk-in made
/// offline); an id in use is a conflict.
pub async fn insert_with_id(
    tx: &mut Tx,
    id: Uuid,
    new: NewUser<'_>,
    now: DateTime<Utc>,
) -> Result<Uuid> {
    const SQL: &str = "INSERT INTO users (id, email, display_name, password_hash, email_verified_at, created_at, updated_at, language) \
        VALUES ($1, $2, $3, $4, $5, $6, $6, $7)";
    let verified_at = new.verified.then_some(now);
    crate::exec_tx!(
        tx,
        SQL,
        id,
        new.email,
        new.display_name,
        new.password_hash,
        verified_at,
        now,
        new.language.as_str()
    )
    .map_err(|e| {
        Error::from(e).on_unique(
            "users_email_key",
            Code::Conflict,
            "That email address is already registered.",
        )
    })?;
    Ok(id)
}

/// Adds a role; an existing identical grant is left as it is.
pub async fn insert_grant(
    tx: &mut Tx,
    user_id: Uuid,
    grant: Grant,
    now: DateTime<Utc>,
) -> Result<bool> {
    const SQL: &str = "INSERT INTO user_roles (id, user_id, role, clinic_id, created_at) VALUES ($1, $2, $3, $4, $5) \
        ON CONFLICT DO NOTHING";
    let done = crate::exec_tx!(
        tx,
        SQL,
        Uuid::now_v7(),
        user_id,
        grant.role.as_str(),
        grant.clinic_id,
        now
    )?;
    Ok(done == 1)
}

/// Whether the user holds any role at the clinic.
async fn member_of(tx: &mut Tx, user_id: Uuid, clinic_id: Uuid) -> Result<bool> {
    const SQL: &str = "SELECT COUNT(*) FROM user_roles WHERE user_id = $1 AND clinic_id = $2";
    let n: i64 = on_tx!(tx, |conn| sqlx::query_scalar(SQL)
        .bind(user_id)
        .bind(clinic_id)
        .fetch_one(&mut *conn)
        .await)?;
    Ok(n > 0)
}

/// Who may hand out or take away `grant`: system admins any role; a clinic admin the
/// staff and doctor roles of their own clinic.
fn may_manage_grant(actor: &Actor, grant: &Grant) -> Result<()> {
    if actor.is_system_admin() {
        return Ok(());
    }
    let principal = actor.principal()?;
    match (grant.role, grant.clinic_id) {
        (Role::ClinicStaff | Role::Doctor, Some(clinic))
            if principal.administers_clinic(clinic) =>
        {
            Ok(())
        }
        _ => Err(Error::forbidden()),
    }
}

pub async fn grant_role(db: &Db, actor: &Actor, user_id: Uuid, grant: Grant) -> Result<UserView> {
    // Who asks comes before what they ask: an anonymous caller learns nothing of roles.
    actor.principal()?;
    grant.validate()?;
    may_manage_grant(actor, &grant)?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let user = find_in(&mut tx, user_id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    if let Some(clinic) = grant.clinic_id {
        ensure_clinic(&mut tx, clinic).await?;
        // A clinic admin changes the roles of their own team only; anyone else joins by
        // an invitation they accept (`invitations`).
        if !actor.is_system_admin() && !member_of(&mut tx, user_id, clinic).await? {
            return Err(Error::new(
                Code::Forbidden,
                "Only members of your clinic's team can be given a role here; invite others \
                 (POST /api/v1/clinics/{id}/staff), and they join when they accept.",
            ));
        }
    }
    if !insert_grant(&mut tx, user_id, grant, now).await? {
        return Err(Error::new(
            Code::RoleAlreadyGranted,
            "The user already holds that role.",
        ));
    }
    audit_role(&mut tx, actor, "role.granted", user_id, grant).await?;
    tx.commit().await?;
    view(db, &user).await
}

pub async fn revoke_role(db: &Db, actor: &Actor, user_id: Uuid, grant: Grant) -> Result<UserView> {
    // Who asks comes before what they ask: an anonymous caller learns nothing of roles.
    actor.principal()?;
    grant.validate()?;
    may_manage_grant(actor, &grant)?;
    if grant.role == Role::SystemAdmin && actor.user_id() == Some(user_id) {
        return Err(Error::new(
            Code::Conflict,
            "You cannot remove your own system admin role.",
        ));
    }
    const SQL: &str = "DELETE FROM user_roles WHERE user_id = $1 AND role = $2 \
        AND (clinic_id = $3 OR (clinic_id IS NULL AND $3 IS NULL))";
    let user = find(db, user_id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    let mut tx = db.begin().await?;
    let done = crate::exec_tx!(&mut tx, SQL, user_id, grant.role.as_str(), grant.clinic_id)?;
    if done == 0 {
        return Err(Error::not_found("role grant"));
    }
    audit_role(&mut tx, actor, "role.revoked", user_id, grant).await?;
    tx.commit().await?;
    view(db, &user).await
}

async fn audit_role(
    tx: &mut Tx,
    actor: &Actor,
    action: &'static str,
    user_id: Uuid,
    grant: Grant,
) -> Result<()> {
    crate::domain::audit::record(
        tx,
        actor,
        crate::domain::audit::Entry {
            action,
            subject: format!("user:{user_id}"),
            clinic_id: grant.clinic_id,
            details: serde_json::json!({"role": grant.role.as_str()}),
        },
    )
    .await
}

async fn ensure_clinic(tx: &mut Tx, clinic_id: Uuid) -> Result<()> {
    const SQL: &str = "SELECT id FROM clinics WHERE id = $1";
    let found: Option<(Uuid,)> = on_tx!(tx, |conn| sqlx::query_as(SQL)
        .bind(clinic_id)
        .fetch_optional(&mut *conn)
        .await)?;
    found.map(|_| ()).ok_or_else(|| Error::not_found("clinic"))
}

/// Users an admin may see: everyone for a system admin; for a clinic admin, the people
/// who hold a role in one of their clinics.
pub async fn list(db: &Db, actor: &Actor, limit: i64, offset: i64) -> Result<Vec<UserView>> {
    let limit = limit.clamp(1, 200);
    let offset = offset.max(0);
    let users: Vec<User> = if actor.is_system_admin() {
        const SQL: &str = select_users!("ORDER BY u.created_at, u.id LIMIT $1 OFFSET $2");
        on_db!(db, |pool| sqlx::query_as::<_, User>(SQL)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await)?
    } else {
        let principal = actor.principal()?;
        if principal.administered_clinics().next().is_none() {
            return Err(Error::forbidden());
        }
        const SQL: &str = select_users!(
            "WHERE EXISTS (SELECT 1 FROM user_roles r JOIN user_roles mine \
            ON mine.clinic_id = r.clinic_id AND mine.role = 'clinic_admin' AND mine.user_id = $1 \
            WHERE r.user_id = u.id) ORDER BY u.created_at, u.id LIMIT $2 OFFSET $3"
        );
        let me = principal.user_id;
        on_db!(db, |pool| sqlx::query_as::<_, User>(SQL)
            .bind(me)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await)?
    };
    let mut views = Vec::with_capacity(users.len());
    for user in &users {
        views.push(view(db, user).await?);
    }
    Ok(views)
}

/// Deactivates an account and ends all of its logins, in one transaction.
pub async fn deactivate(db: &Db, actor: &Actor, user_id: Uuid) -> Result<UserView> {
    actor.require_system_admin()?;
    if actor.user_id() == Some(user_id) {
        return Err(Error::new(
            Code::Conflict,
            "You cannot deactivate your own account.",
        ));
    }
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const DEACTIVATE: &str = "UPDATE users SET deactivated_at = $2, updated_at = $2 WHERE id = $1 AND deactivated_at IS NULL";
    const END_SESSIONS: &str = "UPDATE auth_sessions SET revoked_at = $2, revoked_reason = 'deactivated' \
        WHERE user_id = $1 AND revoked_at IS NULL";
    on_tx!(&mut tx, |conn| {
        sqlx::query(DEACTIVATE)
            .bind(user_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        sqlx::query(END_SESSIONS)
            .bind(user_id)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    let user = find_in(&mut tx, user_id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    crate::domain::audit::record(
        &mut tx,
        actor,
        crate::domain::audit::Entry {
            action: "user.deactivated",
            subject: format!("user:{user_id}"),
            clinic_id: None,
            details: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    view(db, &user).await
}

/// Creates the first system admin (or promotes an existing account), verified.
pub async fn create_admin(
    db: &Db,
    email: &str,
    display_name: &str,
    password_hash: &str,
) -> Result<Uuid> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let existing: Option<(Uuid,)> = on_tx!(&mut tx, |conn| sqlx::query_as(
        "SELECT id FROM users WHERE email = $1"
    )
    .bind(email)
    .fetch_optional(&mut *conn)
    .await)?;
    let id = match existing {
        Some((id,)) => {
            const SQL: &str = "UPDATE users SET password_hash = $2, email_verified_at = COALESCE(email_verified_at, $3), \
                deactivated_at = NULL, failed_logins = 0, locked_until = NULL, updated_at = $3 WHERE id = $1";
            crate::exec_tx!(&mut tx, SQL, id, password_hash, now)?;
            id
        }
        None => {
            let new = NewUser {
                email,
                display_name,
                password_hash: Some(password_hash),
                verified: true,
                language: Language::default(),
            };
            insert(&mut tx, new, now).await?
        }
    };
    insert_grant(&mut tx, id, Grant::global(Role::SystemAdmin), now).await?;
    tx.commit().await?;
    Ok(id)
}

/// Sets a password and marks the address verified (operator tools: demo data, invitations).
pub async fn set_password(db: &Db, email: &str, password_hash: &str) -> Result<()> {
    const SQL: &str = "UPDATE users SET password_hash = $2, email_verified_at = COALESCE(email_verified_at, $3), updated_at = $3 WHERE email = $1";
    let done = crate::exec!(db, SQL, email, password_hash, Utc::now())?;
    if done == 0 {
        Err(Error::not_found("user"))
    } else {
        Ok(())
    }
}

/// How a user hears from the service: channel, phone (E.164), time zone and language.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// `email`, `sms` or `whatsapp` (the last two need a phone).
    #[schema(schema_with = crate::domain::validate::schema::channel)]
    pub channel: String,
    /// E.164, e.g. `+351912345678`.
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::e164, nullable)]
    pub phone: Option<String>,
    /// IANA zone for reminder times, e.g. `Europe/Lisbon`.
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::time_zone, nullable)]
    pub time_zone: Option<String>,
    /// The language of mail and notifications: `en`, `pt` or `es`. Left as it was when
    /// not given; the answer always says it.
    #[serde(default)]
    #[schema(nullable)]
    pub language: Option<Language>,
}

/// How the signed-in user is reached now (the portal's form shows it).
pub async fn notifications_of(
    db: &crate::db::Db,
    actor: &crate::domain::actor::Actor,
) -> Result<NotificationSettings> {
    let me = actor.principal()?.user_id;
    const SQL: &str = "SELECT notify_channel, phone, time_zone, language FROM users WHERE id = $1";
    let (channel, phone, time_zone, language): (String, Option<String>, Option<String>, String) =
        crate::on_db!(db, |pool| sqlx::query_as(SQL)
            .bind(me)
            .fetch_one(pool)
            .await)?;
    Ok(NotificationSettings {
        channel,
        phone,
        time_zone,
        language: Language::parse(&language),
    })
}

pub async fn set_notifications(
    db: &crate::db::Db,
    actor: &Actor,
    settings: NotificationSettings,
) -> Result<NotificationSettings> {
    let p = actor.principal()?;
    let mut problems = Vec::new();
    if !["email", "sms", "whatsapp"].contains(&settings.channel.as_str()) {
        problems.push("channel: one of email, sms, whatsapp");
    }
    let phone = settings
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(phone) = phone {
        let digits = phone.strip_prefix('+').unwrap_or("");
        if !(8..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            problems.push("phone: E.164, e.g. +351912345678");
        }
    } else if settings.channel != "email" {
        problems.push("phone: needed for sms and whatsapp");
    }
    let tz = settings
        .time_zone
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if tz.is_some_and(|tz| tz.parse::<chrono_tz::Tz>().is_err()) {
        problems.push("time_zone: an IANA time zone, e.g. Europe/Lisbon");
    }
    if !problems.is_empty() {
        return Err(Error::new(Code::ValidationFailed, problems.join("; ")));
    }
    const SQL: &str = "UPDATE users SET notify_channel = $2, phone = $3, time_zone = $4, updated_at = $5, \
        language = COALESCE($6, language) WHERE id = $1 RETURNING language";
    let language: Option<String> = crate::on_db!(db, |pool| sqlx::query_scalar(SQL)
        .bind(p.user_id)
        .bind(&settings.channel)
        .bind(phone)
        .bind(tz)
        .bind(chrono::Utc::now())
        .bind(settings.language.map(Language::as_str))
        .fetch_optional(pool)
        .await)?;
    let language = language.ok_or_else(|| Error::not_found("user"))?;
    Ok(NotificationSettings {
        channel: settings.channel,
        phone: phone.map(str::to_owned),
        time_zone: tz.map(str::to_owned),
        language: Some(Language::try_from(language).map_err(Error::internal)?),
    })
}
