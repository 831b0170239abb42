//! A clinic's team: its admins and receptionists, invited by address. Doctors join
//! through their profile (`doctors::create`), which invites the same way.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::{Actor, Grant, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::validate::Checks;
use crate::domain::{clinics, people};
use crate::error::{Error, Result};
use crate::notify::mail::Mailer;
use crate::on_db;

/// Who to invite and as what.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffInvite {
    pub email: String,
    pub display_name: String,
    /// `clinic_staff` (reception: bookings, check-in) or `clinic_admin` (system admins only).
    pub role: Role,
}

/// One person's role at the clinic.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct StaffMember {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: String,
    /// Whether they have signed in at least once (their address is verified).
    pub joined: bool,
    pub since: DateTime<Utc>,
}

/// Invites someone to a clinic's team: the account is found or created, the role granted
/// and audited in one transaction, then the invitation is mailed.
pub async fn invite(
    db: &Db,
    mailer: &Mailer,
    actor: &Actor,
    clinic_id: Uuid,
    form: StaffInvite,
) -> Result<StaffMember> {
    clinics::require_admin_of(actor, clinic_id)?;
    match form.role {
        Role::ClinicStaff => {}
        Role::ClinicAdmin if actor.is_system_admin() => {}
        Role::ClinicAdmin => return Err(Error::forbidden()),
        _ => {
            let mut checks = Checks::new();
            checks.fail(
                "role",
                "invite clinic_staff or clinic_admin here; doctors are added with their profile",
            );
            checks.finish()?;
        }
    }
    let mut checks = Checks::new();
    let email = checks.email("email", &form.email);
    let name = checks.text("display_name", &form.display_name, 2, 120);
    checks.finish()?;
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let grant = Grant::in_clinic(form.role, clinic_id);
    let user_id = people::invite(&mut tx, &email, &name, grant, now).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "staff.invited",
            subject: format!("user:{user_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"role": form.role.as_str()}),
        },
    )
    .await?;
    tx.commit().await?;
    let body = format!(
        "Hello {name},\n\n{} added you to its team as {}. Sign in with this address: ask for a sign-in code \
         (POST /api/v1/auth/login/code/start), then set a password with a password reset if you like.\n",
        clinic.name,
        form.role.as_str().replace('_', " "),
    );
    mailer
        .send(&email, &format!("You have joined {}", clinic.name), &body)
        .await;
    list(db, actor, clinic_id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user_id && m.role == form.role.as_str())
        .ok_or_else(|| Error::not_found("staff member"))
}

/// Everyone holding a role at the clinic (its staff and admins, or a system admin).
pub async fn list(db: &Db, actor: &Actor, clinic_id: Uuid) -> Result<Vec<StaffMember>> {
    clinics::require_staff_of(actor, clinic_id)?;
    const SQL: &str = "SELECT u.id AS user_id, u.email, u.display_name, r.role, \
        (u.email_verified_at IS NOT NULL) AS joined, r.created_at AS since \
        FROM user_roles r JOIN users u ON u.id = r.user_id \
        WHERE r.clinic_id = $1 AND u.deactivated_at IS NULL ORDER BY r.role, u.display_name";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, StaffMember>(SQL)
        .bind(clinic_id)
        .fetch_all(pool)
        .await)?)
}
