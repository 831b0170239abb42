//! Joining a clinic role. A new address gets its account with the role at once: nobody
//! holds that account until they prove the address by signing in with a mailed code. An
//! existing account joins only when it accepts: the invitation waits until that account,
//! signed in, accepts it, and only then is the role granted (and, for a doctor, the
//! profile linked). The inviter is told the same either way, and never the account's id.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::domain::actor::{Actor, Grant, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::identity::people::{self, NewUser};
use crate::error::{Code, Error, Result};
use crate::notify::language::Language;
use crate::notify::messages::{self, Join, Kind};
use crate::{on_db, on_tx};

/// How long an invitation to an existing account can be accepted.
pub const VALID_FOR_DAYS: i64 = 14;

/// What inviting an address did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invited {
    /// The role is granted: a new account for a new address, or the inviter's own account.
    Joined(Uuid),
    /// The address has an account; it joins when it accepts this invitation.
    Pending { user_id: Uuid, invitation: Uuid },
}

impl Invited {
    /// The account that holds the role now, if any (the inviter must not be shown it).
    pub fn joined(self) -> Option<Uuid> {
        match self {
            Self::Joined(id) => Some(id),
            Self::Pending { .. } => None,
        }
    }

    /// How the invitee at `email` joins, for the invitation mail (`site`: the service's
    /// public address, for the link to set a password).
    pub fn join(self, site: Option<&str>, email: &str) -> Join {
        match self {
            Self::Joined(_) => Join::SignIn {
                set_password: crate::notify::messages::set_password_link(site, email),
            },
            Self::Pending { invitation, .. } => Join::Accept {
                invitation,
                days: VALID_FOR_DAYS,
            },
        }
    }
}

/// Grants `grant` to the account of `email` when that needs no consent (a new address, or
/// the inviter's own account), else leaves an invitation for the account to accept; for a
/// doctor, `doctor_id` is the profile the account is linked to on acceptance. Runs in the
/// caller's transaction.
pub async fn invite(
    tx: &mut Tx,
    actor: &Actor,
    email: &str,
    display_name: &str,
    grant: Grant,
    doctor_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Invited> {
    let clinic_id = grant
        .clinic_id
        .ok_or_else(|| Error::internal("an invitation needs a clinic"))?;
    const FIND: &str = "SELECT id FROM users WHERE email = $1";
    let existing: Option<Uuid> = on_tx!(tx, |conn| sqlx::query_scalar(FIND)
        .bind(email)
        .fetch_optional(&mut *conn)
        .await)?;
    let user_id = match existing {
        Some(id) if actor.user_id() != Some(id) => {
            let invitation =
                hold(tx, actor, id, email, display_name, grant, doctor_id, now).await?;
            return Ok(Invited::Pending {
                user_id: id,
                invitation,
            });
        }
        Some(id) => id,
        None => {
            let new = NewUser {
                email,
                display_name,
                password_hash: None,
                verified: false,
                language: Language::default(),
            };
            people::insert(tx, new, now).await?
        }
    };
    people::insert_grant(tx, user_id, grant, now).await?;
    if let Some(doctor) = doctor_id {
        link_doctor(tx, doctor, user_id, clinic_id).await?;
    }
    Ok(Invited::Joined(user_id))
}

#[allow(clippy::too_many_arguments)]
async fn hold(
    tx: &mut Tx,
    actor: &Actor,
    user_id: Uuid,
    email: &str,
    display_name: &str,
    grant: Grant,
    doctor_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Uuid> {
    const SQL: &str = "INSERT INTO clinic_invitations (id, clinic_id, user_id, email, display_name, role, doctor_id, invited_by, expires_at, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    let id = Uuid::now_v7();
    crate::exec_tx!(
        tx,
        SQL,
        id,
        grant.clinic_id,
        user_id,
        email,
        display_name,
        grant.role.as_str(),
        doctor_id,
        actor.user_id(),
        now + Duration::days(VALID_FOR_DAYS),
        now
    )?;
    Ok(id)
}

/// Links a doctor profile to the account that accepted it.
async fn link_doctor(tx: &mut Tx, doctor_id: Uuid, user_id: Uuid, clinic_id: Uuid) -> Result<()> {
    const SQL: &str = "UPDATE doctors SET user_id = $2 WHERE id = $1 AND clinic_id = $3 AND user_id IS NULL AND deleted_at IS NULL";
    let linked = crate::exec_tx!(tx, SQL, doctor_id, user_id, clinic_id).map_err(|e| {
        Error::from(e).on_unique(
            "doctors_user_clinic_key",
            Code::Conflict,
            "That account is already a doctor at this clinic.",
        )
    })?;
    if linked == 1 {
        Ok(())
    } else {
        Err(Error::new(
            Code::Conflict,
            "That doctor profile is gone or already linked to an account.",
        ))
    }
}

/// An invitation waiting for the signed-in account to accept it.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Invitation {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub clinic_name: String,
    /// `clinic_admin`, `clinic_staff` or `doctor`.
    pub role: String,
    pub expires_at: DateTime<Utc>,
}

/// The signed-in account's invitations that can still be accepted.
pub async fn mine(db: &Db, actor: &Actor) -> Result<Vec<Invitation>> {
    let p = actor.principal()?;
    const SQL: &str = "SELECT i.id, i.clinic_id, c.name AS clinic_name, i.role, i.expires_at \
        FROM clinic_invitations i JOIN clinics c ON c.id = i.clinic_id \
        WHERE i.user_id = $1 AND i.accepted_at IS NULL AND i.expires_at > $2 ORDER BY i.created_at";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Invitation>(SQL)
        .bind(p.user_id)
        .bind(Utc::now())
        .fetch_all(pool)
        .await)?)
}

#[derive(sqlx::FromRow)]
struct Pending {
    clinic_id: Uuid,
    role: String,
    doctor_id: Option<Uuid>,
}

/// The invited account accepts: the role is granted (and a doctor's profile linked) and
/// audited, in one transaction. Anyone else, or an expired or used invitation, gets
/// `not_found`.
pub async fn accept(db: &Db, actor: &Actor, id: Uuid) -> Result<Invitation> {
    let p = actor.principal()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const CLAIM: &str = "UPDATE clinic_invitations SET accepted_at = $3 \
        WHERE id = $1 AND user_id = $2 AND accepted_at IS NULL AND expires_at > $3 \
        RETURNING clinic_id, role, doctor_id";
    let pending = on_tx!(&mut tx, |conn| sqlx::query_as::<_, Pending>(CLAIM)
        .bind(id)
        .bind(p.user_id)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await)?
    .ok_or_else(|| Error::not_found("invitation"))?;
    let role = Role::parse(&pending.role)
        .ok_or_else(|| Error::internal(format!("invitation {id}: role {}", pending.role)))?;
    let grant = Grant::in_clinic(role, pending.clinic_id);
    people::insert_grant(&mut tx, p.user_id, grant, now).await?;
    if let Some(doctor) = pending.doctor_id {
        link_doctor(&mut tx, doctor, p.user_id, pending.clinic_id).await?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "invitation.accepted",
            subject: format!("user:{}", p.user_id),
            clinic_id: Some(pending.clinic_id),
            details: json!({"role": pending.role, "invitation": id}),
        },
    )
    .await?;
    const VIEW: &str = "SELECT i.id, i.clinic_id, c.name AS clinic_name, i.role, i.expires_at \
        FROM clinic_invitations i JOIN clinics c ON c.id = i.clinic_id WHERE i.id = $1";
    let accepted = on_tx!(&mut tx, |conn| sqlx::query_as::<_, Invitation>(VIEW)
        .bind(id)
        .fetch_one(&mut *conn)
        .await)?;
    tx.commit().await?;
    Ok(accepted)
}

/// A system admin opens an account with one role; the person signs in with a mailed code
/// (and may set a password by resetting it). For a clinic role an existing account is
/// invited like any other; for another role an existing address is a conflict.
pub async fn create_user(
    db: &Db,
    mailer: &crate::notify::mail::Mailer,
    actor: &Actor,
    email: &str,
    display_name: &str,
    grant: Grant,
) -> Result<()> {
    actor.require_system_admin()?;
    let mut checks = crate::domain::validate::Checks::new();
    let email = checks.email("email", email);
    let name = checks.line("display_name", display_name, 2, 120);
    checks.finish()?;
    grant.validate()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let invited = if grant.clinic_id.is_some() {
        invite(&mut tx, actor, &email, &name, grant, None, now).await?
    } else {
        let new = NewUser {
            email: &email,
            display_name: &name,
            password_hash: None,
            verified: false,
            language: Language::default(),
        };
        let id = people::insert(&mut tx, new, now).await.map_err(|e| {
            e.on_unique(
                "users_email_key",
                Code::Conflict,
                "An account with this address exists; give it the role from its row.",
            )
        })?;
        people::insert_grant(&mut tx, id, grant, now).await?;
        Invited::Joined(id)
    };
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "user.created",
            subject: match invited.joined() {
                Some(id) => format!("user:{id}"),
                None => "invitation".to_owned(),
            },
            clinic_id: grant.clinic_id,
            details: serde_json::json!({"role": grant.role.as_str(), "user": invited.joined()}),
        },
    )
    .await?;
    tx.commit().await?;
    let invitation = messages::Invitation {
        name: &name,
        clinic: None,
        role: grant.role.as_str(),
        join: invited.join(db.policy().site.as_deref(), &email),
    };
    let mail =
        Kind::AccountInvitation(&invitation).render(people::language_of(db, &email).await?)?;
    mailer.send(&email, &mail.subject, &mail.body).await;
    Ok(())
}
