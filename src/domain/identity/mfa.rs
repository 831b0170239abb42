//! Second factors: TOTP (with recovery codes) or a one-time code by mail, and the short
//! challenge that sits between the first factor and the tokens.

use chrono::{DateTime, Utc};
use serde::Serialize;
use totp_rs::{Algorithm, Builder, Secret, Totp};
use utoipa::ToSchema;
use uuid::Uuid;

use super::codes::{Purpose, invalid_code};
use super::tokens::TokenPair;
use super::{Identity, LoginOutcome};
use crate::domain::actor::Actor;
use crate::domain::identity::people::{self, MfaMethod, User};
use crate::error::{Code, Error, Result};
use crate::{on_db, on_tx};

const CHALLENGE_PURPOSE: &str = "mfa_challenge";
const RECOVERY_PURPOSE: &str = "recovery_code";
const ISSUER: &str = "Clinic";
pub const RECOVERY_CODES: usize = 10;

/// Returned by password or email-code sign-in when a second factor is still needed.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaChallenge {
    /// Send it back with the second factor to `/api/v1/auth/login/mfa`.
    pub mfa_token: String,
    pub method: MfaMethod,
    pub expires_in: i64,
}

/// A TOTP secret to add to an authenticator app; it is active once confirmed.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetup {
    /// Base32 secret, for typing into the app.
    pub secret: String,
    /// `otpauth://` URL, for a QR code.
    pub otpauth_url: String,
}

/// Shown once, when TOTP is turned on: each code signs in once if the phone is lost.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct ChallengeRow {
    id: Uuid,
    user_id: Uuid,
    method: String,
    expires_at: DateTime<Utc>,
    consumed_at: Option<DateTime<Utc>>,
}

pub(super) fn totp_for(secret_b32: &str, account: &str) -> Result<Totp> {
    let secret = Secret::try_from_base32(secret_b32)
        .map_err(|e| Error::internal(format!("stored TOTP secret: {e}")))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| Error::internal(format!("building TOTP: {e}")))
}

fn unix_now() -> u64 {
    Utc::now().timestamp().max(0) as u64
}

impl Identity {
    /// Starts the second step of a sign-in for `user`, mailing a code when that is the method.
    pub(super) async fn challenge(&self, user: &User, method: MfaMethod) -> Result<LoginOutcome> {
        let now = Utc::now();
        let token = crate::crypto::random_token();
        let hash = self.digester.digest(CHALLENGE_PURPOSE, &token);
        let expires_at = now + self.settings.code_ttl;
        const SQL: &str = "INSERT INTO mfa_challenges (id, user_id, token_hash, method, expires_at, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6)";
        crate::exec!(
            &self.db,
            SQL,
            Uuid::now_v7(),
            user.id,
            &hash,
            method.as_str(),
            expires_at,
            now
        )?;
        if method == MfaMethod::Email {
            self.send_code(user, Purpose::Mfa).await?;
        }
        Ok(LoginOutcome::MfaRequired(MfaChallenge {
            mfa_token: token,
            method,
            expires_in: self.settings.code_ttl.as_secs() as i64,
        }))
    }

    /// Completes a sign-in with the second factor: a TOTP code, a recovery code, or the
    /// mailed code, depending on the challenge.
    pub async fn complete_mfa(&self, mfa_token: &str, code: &str) -> Result<TokenPair> {
        let now = Utc::now();
        let hash = self.digester.digest(CHALLENGE_PURPOSE, mfa_token.trim());
        const FIND: &str = "SELECT id, user_id, method, expires_at, consumed_at FROM mfa_challenges WHERE token_hash = $1";
        let row = on_db!(&self.db, |pool| sqlx::query_as::<_, ChallengeRow>(FIND)
            .bind(&hash)
            .fetch_optional(pool)
            .await)?;
        let challenge_gone = || {
            Error::new(
                Code::InvalidMfaChallenge,
                "This sign-in step has expired; start again.",
            )
        };
        let Some(row) = row else {
            return Err(challenge_gone());
        };
        if row.consumed_at.is_some() || row.expires_at <= now {
            return Err(challenge_gone());
        }
        const COUNT: &str =
            "UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id = $1 AND attempts < $2";
        let max = self.settings.code_max_attempts;
        let counted = crate::exec!(&self.db, COUNT, row.id, max)?;
        if counted == 0 {
            return Err(Error::new(
                Code::CodeLocked,
                "Too many wrong codes; start the sign-in again.",
            ));
        }
        let user = people::find(&self.db, row.user_id)
            .await?
            .ok_or_else(challenge_gone)?;
        match row.method.as_str() {
            "email" => self.consume_code(user.id, Purpose::Mfa, code).await?,
            _ => self.check_totp_or_recovery(&user, code).await?,
        }
        const CONSUME: &str =
            "UPDATE mfa_challenges SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL";
        let consumed = crate::exec!(&self.db, CONSUME, row.id, now)?;
        if consumed == 0 {
            return Err(challenge_gone());
        }
        self.start_session(&user).await
    }

    async fn check_totp_or_recovery(&self, user: &User, code: &str) -> Result<()> {
        let code = code.trim();
        if code.contains('-') {
            return self.use_recovery_code(user.id, code).await;
        }
        let secret = user.totp_secret.as_deref().ok_or_else(invalid_code)?;
        let step = totp_for(secret, &user.email)?
            .check(code, unix_now())
            .ok_or_else(invalid_code)?;
        // Accept each time step once (RFC 6238 §5.2): a code seen over a shoulder cannot be replayed.
        const SQL: &str = "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)";
        let step = i64::try_from(step).map_err(|_| invalid_code())?;
        let done = crate::exec!(&self.db, SQL, user.id, step)?;
        if done == 1 {
            Ok(())
        } else {
            Err(invalid_code())
        }
    }

    async fn use_recovery_code(&self, user_id: Uuid, code: &str) -> Result<()> {
        let hash = self.digester.digest(
            RECOVERY_PURPOSE,
            &format!("{user_id}:{}", code.to_lowercase()),
        );
        const SQL: &str = "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL";
        let done = crate::exec!(&self.db, SQL, user_id, &hash, Utc::now())?;
        if done == 1 {
            tracing::info!(target: "audit", user = %user_id, "recovery code used");
            Ok(())
        } else {
            Err(invalid_code())
        }
    }

    /// Creates a TOTP secret for the caller; it takes effect once [`Self::enable_totp`] sees a code from it.
    pub async fn setup_totp(&self, actor: &Actor) -> Result<TotpSetup> {
        let principal = actor.principal()?;
        let secret = Secret::generate().to_base32();
        let totp = totp_for(&secret, &principal.email)?;
        let url = totp
            .to_url()
            .map_err(|e| Error::internal(format!("otpauth url: {e}")))?;
        const SQL: &str =
            "UPDATE users SET totp_pending_secret = $2, updated_at = $3 WHERE id = $1";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(principal.user_id)
            .bind(&secret)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(TotpSetup {
            secret,
            otpauth_url: url,
        })
    }

    /// Turns TOTP on after the user proves their app has the secret; returns fresh recovery codes.
    pub async fn enable_totp(&self, actor: &Actor, code: &str) -> Result<RecoveryCodes> {
        let principal = actor.principal()?;
        let user = people::find(&self.db, principal.user_id)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        if user.mfa() == MfaMethod::Totp {
            return Err(Error::new(Code::MfaAlreadyEnabled, "TOTP is already on."));
        }
        let pending = user.totp_pending_secret.as_deref().ok_or_else(|| {
            Error::new(
                Code::MfaNotEnabled,
                "Start with /api/v1/auth/mfa/totp/setup.",
            )
        })?;
        let step = totp_for(pending, &user.email)?
            .check(code.trim(), unix_now())
            .ok_or_else(invalid_code)?;
        let now = Utc::now();
        let codes: Vec<String> = (0..RECOVERY_CODES)
            .map(|_| crate::crypto::recovery_code())
            .collect();
        let mut tx = self.db.begin().await?;
        const ENABLE: &str = "UPDATE users SET mfa_method = 'totp', totp_secret = totp_pending_secret, \
            totp_pending_secret = NULL, totp_last_step = $2, updated_at = $3 WHERE id = $1";
        const CLEAR: &str = "DELETE FROM recovery_codes WHERE user_id = $1";
        const ADD: &str = "INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4)";
        let step = i64::try_from(step).map_err(|_| invalid_code())?;
        on_tx!(&mut tx, |conn| {
            sqlx::query(ENABLE)
                .bind(user.id)
                .bind(step)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            sqlx::query(CLEAR).bind(user.id).execute(&mut *conn).await?;
            for code in &codes {
                let hash = self
                    .digester
                    .digest(RECOVERY_PURPOSE, &format!("{}:{code}", user.id));
                sqlx::query(ADD)
                    .bind(Uuid::now_v7())
                    .bind(user.id)
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok::<_, sqlx::Error>(())
        })?;
        tx.commit().await?;
        tracing::info!(target: "audit", user = %user.id, "TOTP turned on");
        Ok(RecoveryCodes {
            recovery_codes: codes,
        })
    }

    /// Uses a mailed code as the second factor.
    pub async fn enable_email_mfa(&self, actor: &Actor) -> Result<()> {
        let principal = actor.principal()?;
        const SQL: &str = "UPDATE users SET mfa_method = 'email', updated_at = $2 WHERE id = $1 AND mfa_method = 'none'";
        let done = crate::exec!(&self.db, SQL, principal.user_id, Utc::now())?;
        if done == 0 {
            return Err(Error::new(
                Code::MfaAlreadyEnabled,
                "A second factor is already on; turn it off first.",
            ));
        }
        tracing::info!(target: "audit", user = %principal.user_id, "email second factor turned on");
        Ok(())
    }

    /// Turns the second factor off; the current password is required.
    pub async fn disable_mfa(&self, actor: &Actor, password: &str) -> Result<()> {
        let principal = actor.principal()?;
        let user = people::find(&self.db, principal.user_id)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        if user.mfa() == MfaMethod::None {
            return Err(Error::new(Code::MfaNotEnabled, "No second factor is on."));
        }
        if !self
            .passwords
            .verify(password, user.password_hash.as_deref())
            .await?
        {
            return Err(Error::new(
                Code::InvalidCredentials,
                "The password is not correct.",
            ));
        }
        let mut tx = self.db.begin().await?;
        const OFF: &str = "UPDATE users SET mfa_method = 'none', totp_secret = NULL, totp_pending_secret = NULL, \
            totp_last_step = NULL, updated_at = $2 WHERE id = $1";
        const CLEAR: &str = "DELETE FROM recovery_codes WHERE user_id = $1";
        on_tx!(&mut tx, |conn| {
            sqlx::query(OFF)
                .bind(user.id)
                .bind(Utc::now())
                .execute(&mut *conn)
                .await?;
            sqlx::query(CLEAR)
                .bind(user.id)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })?;
        tx.commit().await?;
        tracing::info!(target: "audit", user = %user.id, "second factor turned off");
        Ok(())
    }
}
