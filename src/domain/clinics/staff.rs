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
use crate::domain::clinics;
use crate::domain::identity::{invitations, people};
use crate::domain::validate::Checks;
use crate::error::{Error, Result};
use crate::notify::mail::Mailer;
use crate::notify::messages::{self, Kind};
use crate::on_db;

/// Who to invite and as what.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffInvite {
    #[schema(schema_with = crate::domain::validate::schema::email)]
    pub email: String,
    #[schema(schema_with = crate::domain::validate::schema::person_name)]
    pub display_name: String,
    /// `clinic_staff` (reception: bookings, check-in) or `clinic_admin` (system admins only).
    #[schema(schema_with = crate::domain::validate::schema::team_role)]
    pub role: Role,
}

/// One person's role at the clinic, or an invitation to it not yet taken up.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct StaffMember {
    /// Their account, once they have joined (absent while invited).
    pub user_id: Option<Uuid>,
    pub email: String,
    pub display_name: String,
    pub role: String,
    /// Whether they have joined: signed in (a new account) or accepted (an existing one).
    pub joined: bool,
    pub since: DateTime<Utc>,
}

/// Invites someone to a clinic's team (`invitations`: an existing account joins only when
/// it accepts), audited in one transaction, then mails the invitation. The answer is the
/// same whether or not the address had an account.
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
    let name = checks.line("display_name", &form.display_name, 2, 120);
    checks.finish()?;
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let grant = Grant::in_clinic(form.role, clinic_id);
    let invited = invitations::invite(&mut tx, actor, &email, &name, grant, None, now).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "staff.invited",
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"role": form.role.as_str(), "user": invited.joined()}),
        },
    )
    .await?;
    tx.commit().await?;
    let invitation = messages::Invitation {
        name: &name,
        clinic: Some(&clinic.name),
        role: form.role.as_str(),
        join: invited.join(db.policy().site.as_deref(), &email),
    };
    let mail = Kind::StaffInvitation(&invitation).render(people::language_of(db, &email).await?)?;
    mailer.send(&email, &mail.subject, &mail.body).await;
    Ok(StaffMember {
        user_id: None,
        email,
        display_name: name,
        role: form.role.as_str().to_owned(),
        joined: false,
        since: now,
    })
}

/// Everyone holding a role at the clinic, and the invitations not yet taken up, alike
/// whether the invited address had an account (for its staff and admins, or a system admin).
pub async fn list(db: &Db, actor: &Actor, clinic_id: Uuid) -> Result<Vec<StaffMember>> {
    clinics::require_staff_of(actor, clinic_id)?;
    const SQL: &str = "SELECT CASE WHEN u.email_verified_at IS NOT NULL THEN u.id END AS user_id, u.email, u.display_name, r.role, \
        (u.email_verified_at IS NOT NULL) AS joined, r.created_at AS since \
        FROM user_roles r JOIN users u ON u.id = r.user_id \
        WHERE r.clinic_id = $1 AND u.deactivated_at IS NULL \
        UNION ALL SELECT NULL AS user_id, i.email, i.display_name, i.role, (1 = 0) AS joined, i.created_at AS since \
        FROM clinic_invitations i WHERE i.clinic_id = $1 AND i.accepted_at IS NULL AND i.expires_at > $2 \
        ORDER BY role, display_name";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, StaffMember>(SQL)
        .bind(clinic_id)
        .bind(Utc::now())
        .fetch_all(pool)
        .await)?)
}
