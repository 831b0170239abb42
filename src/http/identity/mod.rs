//! Who someone is: registration, sign-in, MFA and tokens (`auth`), and one's own account,
//! invitations and record shares (`people`).

pub mod auth;
pub mod people;
