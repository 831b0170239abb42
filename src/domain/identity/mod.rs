//! Identity: registration with email verification, password and passwordless sign-in,
//! second factors, password reset, and logins as rotating token families.

mod codes;
pub mod invitations;
mod mfa;
pub mod people;
mod tokens;
#[cfg(test)]
pub(crate) use tokens::AUTHENTICATE_SQL;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use self::codes::{Purpose, invalid_code};
pub use self::mfa::{MfaChallenge, RecoveryCodes, TotpSetup};
pub(crate) use self::tokens::revoke_all_sessions;
pub use self::tokens::{JwtKeys, TokenPair};
use crate::config::Config;
use crate::crypto::Digester;
use crate::crypto::password::PasswordHashing;
use crate::db::Db;
use crate::domain::actor::{Actor, Grant, Role};
use crate::domain::audit;
use crate::domain::validate::Checks;
use crate::error::{Code, Error, Result};
use crate::notify::language::Language;
use crate::notify::mail::Mailer;
use crate::notify::messages::{self, Kind};
use crate::on_db;
use people::{MfaMethod, NewUser, User, UserView};

/// Limits and lifetimes of the identity flows.
#[derive(Clone, Debug)]
pub struct Settings {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub code_ttl: Duration,
    pub code_max_attempts: i64,
    pub login_max_failures: i64,
    pub login_lockout: Duration,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
            refresh_reuse_grace: config.refresh_reuse_grace,
            code_ttl: config.code_ttl,
            code_max_attempts: config.code_max_attempts.max(1),
            login_max_failures: config.login_max_failures.max(1),
            login_lockout: config.login_lockout,
        }
    }
}

pub struct Identity {
    db: Db,
    mailer: Mailer,
    passwords: PasswordHashing,
    digester: Digester,
    jwt: JwtKeys,
    settings: Settings,
}

/// The result of a first factor: either signed in, or a second factor is needed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoginOutcome {
    Authenticated(TokenPair),
    MfaRequired(MfaChallenge),
}

/// The answer to requests that mail a code: the same whether or not the address is known.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeSent {
    pub status: &'static str,
    pub detail: &'static str,
}

/// The digest purpose of an address whose failed sign-ins are counted.
const LOGIN_FAILURE_PURPOSE: &str = "login_failures";

/// Forgets failed sign-ins of addresses that are not locked and have been quiet for a day.
pub async fn forget_login_failures(db: &Db, now: DateTime<Utc>) -> Result<u64> {
    const SQL: &str = "DELETE FROM login_failures WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until < $2)";
    Ok(crate::exec!(db, SQL, now - chrono::Duration::days(1), now)?)
}

const CODE_SENT: CodeSent = CodeSent {
    status: "code_sent",
    detail: "If the address belongs to an account, a code is on its way.",
};

pub struct Registration<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub display_name: &'a str,
    /// What we write to them in (English when not given).
    pub language: Option<Language>,
}

impl Identity {
    pub fn new(
        db: Db,
        mailer: Mailer,
        passwords: PasswordHashing,
        jwt: JwtKeys,
        digest_key: &[u8],
        settings: Settings,
    ) -> Self {
        Self {
            db,
            mailer,
            passwords,
            digester: Digester::new(digest_key),
            jwt,
            settings,
        }
    }

    pub fn passwords(&self) -> &PasswordHashing {
        &self.passwords
    }

    /// Issues a fresh code for `purpose` and mails it to `user`.
    async fn send_code(&self, user: &User, purpose: Purpose) -> Result<()> {
        let code = self.issue_code(user.id, purpose).await?;
        let facts = messages::Code {
            name: &user.display_name,
            code: &code,
            minutes: self.settings.code_ttl.as_secs() / 60,
        };
        let mail = purpose.message(&facts).render(user.language)?;
        self.mailer
            .send(&user.email, &mail.subject, &mail.body)
            .await;
        Ok(())
    }

    /// Mails a `purpose` code to the active account at `email` when `wanted` holds for
    /// it; the answer is the same whether or not it did.
    async fn send_code_to(
        &self,
        email: &str,
        purpose: Purpose,
        wanted: impl Fn(&User) -> bool,
    ) -> Result<CodeSent> {
        let email = checked_email(email)?;
        if let Some(user) = people::find_by_email(&self.db, &email).await?
            && user.deactivated_at.is_none()
            && wanted(&user)
        {
            self.send_code(&user, purpose).await?;
        }
        Ok(CODE_SENT)
    }

    /// Registers a patient account and mails a verification code. An address that is
    /// already registered gets a notice instead, and the caller sees the same answer.
    pub async fn register(&self, form: Registration<'_>) -> Result<CodeSent> {
        let mut checks = Checks::new();
        let email = checks.email("email", form.email);
        checks.password("password", form.password);
        let display_name = checks.line("display_name", form.display_name, 1, 100);
        checks.finish()?;

        // Hashed whether or not the address is taken, so the answer takes as long either way.
        let hash = self.passwords.hash(form.password).await?;
        if let Some(existing) = people::find_by_email(&self.db, &email).await? {
            if existing.email_verified_at.is_none() && existing.deactivated_at.is_none() {
                self.send_code(&existing, Purpose::VerifyEmail).await?;
            } else {
                let mail = Kind::AlreadyRegistered.render(existing.language)?;
                self.mailer
                    .send(&existing.email, &mail.subject, &mail.body)
                    .await;
            }
            return Ok(CODE_SENT);
        }

        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        let new = NewUser {
            email: &email,
            display_name: &display_name,
            password_hash: Some(&hash),
            verified: false,
            language: form.language.unwrap_or_default(),
        };
        let id = match people::insert(&mut tx, new, now).await {
            Ok(id) => id,
            // Two registrations raced for the address; the other one won.
            Err(e) if e.code() == Code::Conflict => return Ok(CODE_SENT),
            Err(e) => return Err(e),
        };
        people::insert_grant(&mut tx, id, Grant::global(Role::Patient), now).await?;
        tx.commit().await?;
        tracing::info!(target: "audit", user = %id, "patient registered");

        let user = people::find(&self.db, id)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        self.send_code(&user, Purpose::VerifyEmail).await?;
        Ok(CODE_SENT)
    }

    /// Sends a new verification code to an unverified account.
    pub async fn resend_verification(&self, email: &str) -> Result<CodeSent> {
        self.send_code_to(email, Purpose::VerifyEmail, |user| {
            user.email_verified_at.is_none()
        })
        .await
    }

    /// Marks the address verified when the code matches.
    pub async fn verify_email(&self, email: &str, code: &str) -> Result<UserView> {
        let user = self.user_for_code(email).await?;
        self.consume_code(user.id, Purpose::VerifyEmail, code)
            .await?;
        self.mark_verified(&user).await?;
        tracing::info!(target: "audit", user = %user.id, "email verified");
        let user = people::find(&self.db, user.id)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        people::view(&self.db, &user).await
    }

    async fn mark_verified(&self, user: &User) -> Result<()> {
        const SQL: &str = "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2), updated_at = $2 WHERE id = $1";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(user.id)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The account a code-bearing request names; an unknown address fails like a wrong code.
    async fn user_for_code(&self, email: &str) -> Result<User> {
        let email = checked_email(email)?;
        match people::find_by_email(&self.db, &email).await? {
            Some(user) if user.deactivated_at.is_none() => Ok(user),
            _ => Err(invalid_code()),
        }
    }

    /// Signs in with email and password. Repeated failures lock the address for a while,
    /// alike whether or not an account has it, so neither the answers nor the lockout tell
    /// which addresses exist.
    pub async fn login(&self, email: &str, password: &str) -> Result<LoginOutcome> {
        let email = email.trim().to_lowercase();
        if email.len() > crate::domain::validate::MAX_EMAIL
            || password.len() > crate::domain::validate::MAX_PASSWORD * 4
        {
            return Err(bad_credentials());
        }
        let address = self.digester.digest(LOGIN_FAILURE_PURPOSE, &email);
        let now = Utc::now();
        const LOCKED: &str = "SELECT locked_until FROM login_failures WHERE email_digest = $1";
        let locked: Option<Option<DateTime<Utc>>> =
            on_db!(&self.db, |pool| sqlx::query_scalar(LOCKED)
                .bind(&address)
                .fetch_optional(pool)
                .await)?;
        if let Some(until) = locked.flatten().filter(|until| *until > now) {
            let minutes = (until - now).num_minutes() + 1;
            return Err(Error::new(
                Code::AccountLocked,
                format!(
                    "Too many failed sign-ins; try again in {minutes} minutes or reset your password."
                ),
            ));
        }
        let user = people::find_by_email(&self.db, &email).await?;
        let ok = self
            .passwords
            .verify(
                password,
                user.as_ref().and_then(|u| u.password_hash.as_deref()),
            )
            .await?;
        let subject = match &user {
            Some(u) => format!("user:{}", u.id),
            None => format!("address:{}", address.get(..16).unwrap_or_default()),
        };
        let Some(user) = user.filter(|_| ok) else {
            self.count_failed_login(&address, subject, now).await?;
            return Err(bad_credentials());
        };
        if user.deactivated_at.is_some() {
            return Err(Error::new(
                Code::AccountDeactivated,
                "This account has been deactivated.",
            ));
        }
        if user.email_verified_at.is_none() {
            return Err(Error::new(
                Code::EmailNotVerified,
                "Verify your email address first; we can send a new code.",
            ));
        }
        match user.mfa() {
            MfaMethod::None => Ok(LoginOutcome::Authenticated(
                self.start_session(&user).await?,
            )),
            method => self.challenge(&user, method).await,
        }
    }

    /// Clears an address's failed sign-ins: it signed in, or proved it holds the mailbox.
    pub(super) async fn forget_failed_logins(
        &self,
        tx: &mut crate::db::Tx,
        email: &str,
    ) -> Result<()> {
        let address = self.digester.digest(LOGIN_FAILURE_PURPOSE, email);
        const SQL: &str = "DELETE FROM login_failures WHERE email_digest = $1";
        crate::exec_tx!(tx, SQL, &address)?;
        Ok(())
    }

    /// Counts a failed sign-in for an address; the last one allowed locks it. Both are
    /// audited (`subject`: the account, or for an address without one a digest of it).
    async fn count_failed_login(
        &self,
        address: &str,
        subject: String,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let until = now + self.settings.login_lockout;
        const SQL: &str = "INSERT INTO login_failures (email_digest, failures, locked_until, updated_at) \
            VALUES ($1, 1, CASE WHEN 1 >= $2 THEN $3 END, $4) \
            ON CONFLICT (email_digest) DO UPDATE SET failures = login_failures.failures + 1, \
            locked_until = CASE WHEN login_failures.failures + 1 >= $2 THEN $3 ELSE login_failures.locked_until END, \
            updated_at = $4 RETURNING failures";
        let mut tx = self.db.begin().await?;
        let failures: i64 = crate::on_tx!(&mut tx, |conn| sqlx::query_scalar(SQL)
            .bind(address)
            .bind(self.settings.login_max_failures)
            .bind(until)
            .bind(now)
            .fetch_one(&mut *conn)
            .await)?;
        let user = subject.strip_prefix("user:").and_then(|id| id.parse().ok());
        audit::record_as(
            &mut tx,
            user,
            audit::Entry {
                action: "auth.sign_in_failed",
                subject: subject.clone(),
                clinic_id: None,
                details: serde_json::json!({"failures": failures}),
            },
        )
        .await?;
        if failures == self.settings.login_max_failures {
            audit::record_as(
                &mut tx,
                user,
                audit::Entry {
                    action: "auth.locked",
                    subject,
                    clinic_id: None,
                    details: serde_json::json!({"until": until}),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The signed-in user proves again that it is them, before something that cannot be
    /// undone: their password, or for an account without one a sign-in code mailed to them
    /// (`POST /api/v1/auth/login/code/start`).
    pub async fn reauthenticate(
        &self,
        actor: &crate::domain::actor::Actor,
        password: Option<&str>,
        code: Option<&str>,
    ) -> Result<()> {
        let p = actor.principal()?;
        let user = people::find(&self.db, p.user_id)
            .await?
            .ok_or_else(bad_credentials)?;
        match (password, code) {
            (Some(password), _) if user.password_hash.is_some() => {
                if self
                    .passwords
                    .verify(password, user.password_hash.as_deref())
                    .await?
                {
                    Ok(())
                } else {
                    Err(bad_credentials())
                }
            }
            (_, Some(code)) => self.consume_code(user.id, Purpose::Login, code).await,
            _ => Err(Error::new(
                Code::ValidationFailed,
                "Confirm with your password, or with a sign-in code mailed to you \
                 (POST /api/v1/auth/login/code/start).",
            )),
        }
    }

    /// Mails a sign-in code (passwordless login).
    pub async fn start_passwordless(&self, email: &str) -> Result<CodeSent> {
        self.send_code_to(email, Purpose::Login, |_| true).await
    }

    /// Signs in with a mailed code. The code proves the address, so it also verifies it;
    /// TOTP users still give their TOTP code.
    pub async fn finish_passwordless(&self, email: &str, code: &str) -> Result<LoginOutcome> {
        let user = self.user_for_code(email).await?;
        self.consume_code(user.id, Purpose::Login, code).await?;
        self.mark_verified(&user).await?;
        match user.mfa() {
            MfaMethod::Totp => self.challenge(&user, MfaMethod::Totp).await,
            _ => Ok(LoginOutcome::Authenticated(
                self.start_session(&user).await?,
            )),
        }
    }

    /// Mails a password-reset code.
    pub async fn start_password_reset(&self, email: &str) -> Result<CodeSent> {
        self.send_code_to(email, Purpose::PasswordReset, |_| true)
            .await
    }

    /// Sets a new password with a mailed code, unlocks the account and ends every login.
    pub async fn finish_password_reset(
        &self,
        email: &str,
        code: &str,
        new_password: &str,
    ) -> Result<()> {
        let mut checks = Checks::new();
        checks.password("new_password", new_password);
        checks.finish()?;
        let user = self.user_for_code(email).await?;
        self.consume_code(user.id, Purpose::PasswordReset, code)
            .await?;
        let hash = self.passwords.hash(new_password).await?;
        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        const SQL: &str = "UPDATE users SET password_hash = $2, failed_logins = 0, locked_until = NULL, \
            email_verified_at = COALESCE(email_verified_at, $3), updated_at = $3 WHERE id = $1";
        crate::exec_tx!(&mut tx, SQL, user.id, &hash, now)?;
        tokens::revoke_all_sessions(&mut tx, user.id, now, "password_reset").await?;
        self.forget_failed_logins(&mut tx, &user.email).await?;
        tx.commit().await?;
        tracing::info!(target: "audit", user = %user.id, "password reset; all logins ended");
        Ok(())
    }

    /// The caller's own account.
    pub async fn me(&self, actor: &Actor) -> Result<UserView> {
        let principal = actor.principal()?;
        let user = people::find(&self.db, principal.user_id)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        people::view(&self.db, &user).await
    }
}

fn checked_email(email: &str) -> Result<String> {
    let mut checks = Checks::new();
    let email = checks.email("email", email);
    checks.finish()?;
    Ok(email)
}

fn bad_credentials() -> Error {
    Error::new(
        Code::InvalidCredentials,
        "The email or password is not correct.",
    )
}
