//! Who is asking: the typed identity every domain function checks its rules against.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Code, Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SystemAdmin,
    ClinicAdmin,
    ClinicStaff,
    Doctor,
    Patient,
    Pharmacist,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SystemAdmin => "system_admin",
            Self::ClinicAdmin => "clinic_admin",
            Self::ClinicStaff => "clinic_staff",
            Self::Doctor => "doctor",
            Self::Patient => "patient",
            Self::Pharmacist => "pharmacist",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::SystemAdmin,
            Self::ClinicAdmin,
            Self::ClinicStaff,
            Self::Doctor,
            Self::Patient,
            Self::Pharmacist,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// Roles that only mean something inside one clinic.
    pub fn requires_clinic(self) -> bool {
        matches!(self, Self::ClinicAdmin | Self::ClinicStaff | Self::Doctor)
    }

    /// Roles that may carry a clinic (a pharmacist may belong to a clinic's pharmacy).
    pub fn allows_clinic(self) -> bool {
        self.requires_clinic() || self == Self::Pharmacist
    }
}

/// One role held by a user, scoped to a clinic where the role is a clinic role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic_id: Option<Uuid>,
}

impl Grant {
    pub fn global(role: Role) -> Self {
        Self {
            role,
            clinic_id: None,
        }
    }

    pub fn in_clinic(role: Role, clinic_id: Uuid) -> Self {
        Self {
            role,
            clinic_id: Some(clinic_id),
        }
    }

    /// Checks the clinic scope fits the role.
    pub fn validate(&self) -> Result<()> {
        match (
            self.role.requires_clinic(),
            self.role.allows_clinic(),
            self.clinic_id,
        ) {
            (true, _, None) => Err(Error::validation(vec![crate::error::FieldError {
                field: "clinic_id".into(),
                message: format!("the {} role needs a clinic_id", self.role.as_str()),
            }])),
            (false, false, Some(_)) => Err(Error::validation(vec![crate::error::FieldError {
                field: "clinic_id".into(),
                message: format!("the {} role is not scoped to a clinic", self.role.as_str()),
            }])),
            _ => Ok(()),
        }
    }
}

/// An authenticated user, as established by a valid access token.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: Uuid,
    /// The login (refresh-token family) the access token belongs to.
    pub session_id: Uuid,
    pub email: String,
    pub grants: Vec<Grant>,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.grants.iter().any(|g| g.role == role)
    }

    pub fn is_system_admin(&self) -> bool {
        self.has_role(Role::SystemAdmin)
    }

    pub fn has_role_in(&self, role: Role, clinic_id: Uuid) -> bool {
        self.grants
            .iter()
            .any(|g| g.role == role && g.clinic_id == Some(clinic_id))
    }

    /// System admins administer every clinic; a clinic admin only their own.
    pub fn administers_clinic(&self, clinic_id: Uuid) -> bool {
        self.is_system_admin() || self.has_role_in(Role::ClinicAdmin, clinic_id)
    }

    /// The clinics this user administers as a clinic admin.
    pub fn administered_clinics(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.grants
            .iter()
            .filter(|g| g.role == Role::ClinicAdmin)
            .filter_map(|g| g.clinic_id)
    }
}

/// The caller of a domain function: nobody in particular, a signed-in user, or the
/// service itself (CLI commands and background jobs run by the operator).
#[derive(Clone, Debug)]
pub enum Actor {
    Anonymous,
    User(Principal),
    System,
}

impl Actor {
    /// The signed-in user, or `unauthenticated`.
    pub fn principal(&self) -> Result<&Principal> {
        match self {
            Self::User(p) => Ok(p),
            Self::Anonymous | Self::System => {
                Err(Error::new(Code::Unauthenticated, "Sign in to do this."))
            }
        }
    }

    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Self::User(p) => Some(p.user_id),
            _ => None,
        }
    }

    pub fn is_system_admin(&self) -> bool {
        match self {
            Self::User(p) => p.is_system_admin(),
            Self::System => true,
            Self::Anonymous => false,
        }
    }

    /// Passes for system admins (and the service itself); otherwise `forbidden`
    /// (or `unauthenticated` for anonymous callers).
    pub fn require_system_admin(&self) -> Result<()> {
        if self.is_system_admin() {
            return Ok(());
        }
        self.principal()?;
        Err(Error::forbidden())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(grants: Vec<Grant>) -> Principal {
        Principal {
            user_id: Uuid::now_v7(),
            session_id: Uuid::now_v7(),
            email: "a@b.c".into(),
            grants,
        }
    }

    #[test]
    fn clinic_admin_administers_only_their_clinic() {
        let (mine, theirs) = (Uuid::now_v7(), Uuid::now_v7());
        let admin = user(vec![Grant::in_clinic(Role::ClinicAdmin, mine)]);
        assert!(admin.administers_clinic(mine));
        assert!(!admin.administers_clinic(theirs));
        let sys = user(vec![Grant::global(Role::SystemAdmin)]);
        assert!(sys.administers_clinic(theirs));
    }

    #[test]
    fn grants_check_their_clinic_scope() {
        assert!(Grant::global(Role::Doctor).validate().is_err());
        assert!(
            Grant::in_clinic(Role::Patient, Uuid::now_v7())
                .validate()
                .is_err()
        );
        assert!(Grant::global(Role::Pharmacist).validate().is_ok());
        assert!(
            Grant::in_clinic(Role::Pharmacist, Uuid::now_v7())
                .validate()
                .is_ok()
        );
        for r in [
            "system_admin",
            "clinic_admin",
            "clinic_staff",
            "doctor",
            "patient",
            "pharmacist",
        ] {
            assert_eq!(Role::parse(r).map(Role::as_str), Some(r));
        }
    }

    #[test]
    fn anonymous_is_not_an_admin() {
        assert_eq!(
            Actor::Anonymous.require_system_admin().unwrap_err().code(),
            Code::Unauthenticated
        );
        let patient = Actor::User(user(vec![Grant::global(Role::Patient)]));
        assert_eq!(
            patient.require_system_admin().unwrap_err().code(),
            Code::Forbidden
        );
        assert!(Actor::System.require_system_admin().is_ok());
    }
}
