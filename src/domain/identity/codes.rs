//! One-time codes sent by mail: random, stored as keyed digests, short-lived, consumed on
//! use, and locked after a few wrong tries (each try is counted before it is compared,
//! so parallel guesses cannot exceed the limit).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Identity;
use crate::error::{Code, Error, Result};
use crate::notify::messages;
use crate::{on_db, on_tx};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    Login,
    Mfa,
    PasswordReset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::Login => "login",
            Self::Mfa => "mfa",
            Self::PasswordReset => "password_reset",
        }
    }

    /// The mail that carries a code for this purpose.
    pub fn message<'a>(self, code: &'a messages::Code<'a>) -> messages::Kind<'a> {
        match self {
            Self::VerifyEmail => messages::Kind::VerifyEmail(code),
            Self::Login | Self::Mfa => messages::Kind::SignInCode(code),
            Self::PasswordReset => messages::Kind::PasswordReset(code),
        }
    }
}

pub const CODE_DIGITS: u32 = 6;

#[derive(sqlx::FromRow)]
struct CodeRow {
    id: Uuid,
    code_hash: String,
    expires_at: DateTime<Utc>,
}

impl Identity {
    /// Issues a fresh code for `purpose`, retiring any earlier unused one, and returns it.
    pub(super) async fn issue_code(&self, user_id: Uuid, purpose: Purpose) -> Result<String> {
        let now = Utc::now();
        let code = crate::crypto::random_digits(CODE_DIGITS);
        let id = Uuid::now_v7();
        let hash = self
            .digester
            .digest(purpose.as_str(), &format!("{id}:{code}"));
        let expires_at = now + self.settings.code_ttl;
        const RETIRE: &str = "UPDATE one_time_codes SET consumed_at = $3 \
            WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL";
        const INSERT: &str = "INSERT INTO one_time_codes (id, user_id, purpose, code_hash, expires_at, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6)";
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query(RETIRE)
                .bind(user_id)
                .bind(purpose.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await?;
            sqlx::query(INSERT)
                .bind(id)
                .bind(user_id)
                .bind(purpose.as_str())
                .bind(&hash)
                .bind(expires_at)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(code)
    }

    /// Checks and consumes the user's current code for `purpose`.
    pub(super) async fn consume_code(
        &self,
        user_id: Uuid,
        purpose: Purpose,
        code: &str,
    ) -> Result<()> {
        const CURRENT: &str = "SELECT id, code_hash, expires_at FROM one_time_codes \
            WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL ORDER BY created_at DESC LIMIT 1";
        let row = on_db!(&self.db, |pool| sqlx::query_as::<_, CodeRow>(CURRENT)
            .bind(user_id)
            .bind(purpose.as_str())
            .fetch_optional(pool)
            .await)?;
        let Some(row) = row else {
            return Err(invalid_code());
        };
        self.count_attempt(row.id).await?;
        let now = Utc::now();
        if row.expires_at <= now {
            return Err(Error::new(
                Code::CodeExpired,
                "That code has expired; ask for a new one.",
            ));
        }
        if !self.digester.matches(
            purpose.as_str(),
            &format!("{}:{}", row.id, code.trim()),
            &row.code_hash,
        ) {
            return Err(invalid_code());
        }
        const CONSUME: &str =
            "UPDATE one_time_codes SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL";
        let done = crate::exec!(&self.db, CONSUME, row.id, now)?;
        if done == 1 {
            Ok(())
        } else {
            Err(invalid_code())
        }
    }

    /// Counts one try against a code, refusing once the limit is reached.
    async fn count_attempt(&self, code_id: Uuid) -> Result<()> {
        const SQL: &str =
            "UPDATE one_time_codes SET attempts = attempts + 1 WHERE id = $1 AND attempts < $2";
        let max = self.settings.code_max_attempts;
        let done = crate::exec!(&self.db, SQL, code_id, max)?;
        if done == 1 {
            Ok(())
        } else {
            Err(Error::new(
                Code::CodeLocked,
                "Too many wrong tries for this code; ask for a new one.",
            ))
        }
    }
}

pub(super) fn invalid_code() -> Error {
    Error::new(Code::InvalidCode, "That code is not valid.")
}
