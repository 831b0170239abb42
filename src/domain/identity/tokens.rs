//! Logins as token families: a short-lived JWT access token, and an opaque refresh token
//! that rotates on every use. Presenting a refresh token that was already used means it
//! leaked, so the whole family (the login) is revoked.

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Identity;
use crate::db::Tx;
use crate::domain::actor::Principal;
use crate::domain::audit;
use crate::domain::identity::people::{self, User, UserView};
use crate::error::{Code, Error, Result};
use crate::{on_db, on_tx};

const ISSUER: &str = "clinic";
const AUDIENCE: &str = "clinic-api";
const REFRESH_PURPOSE: &str = "refresh_token";

/// Signs and checks access tokens (HS256 only; `none` and other algorithms are refused).
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    /// The login this token belongs to; revoking the login revokes the token.
    sid: Uuid,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// What a successful sign-in returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single-use: exchange it at `/api/v1/auth/refresh` for a new pair.
    pub refresh_token: String,
    pub user: UserView,
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    id: Uuid,
    session_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    user_id: Uuid,
    successor_sealed: Option<Vec<u8>>,
}

const FIND_REFRESH: &str = "SELECT t.id, t.session_id, t.expires_at, t.used_at, s.revoked_at, s.user_id, t.successor_sealed \
    FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id WHERE t.token_hash = $1";

/// The login behind an access token, still open, of an active user, with the user's roles
/// (one row per role; one row of NULLs without any).
pub(crate) const AUTHENTICATE_SQL: &str = "SELECT u.email, r.role, r.clinic_id FROM users u \
    JOIN auth_sessions s ON s.user_id = u.id LEFT JOIN user_roles r ON r.user_id = u.id \
    WHERE u.id = $1 AND s.id = $2 AND s.revoked_at IS NULL AND u.deactivated_at IS NULL \
    ORDER BY r.created_at, r.role";

impl Identity {
    /// Opens a new login for `user` and returns its first token pair.
    pub(super) async fn start_session(&self, user: &User) -> Result<TokenPair> {
        let now = Utc::now();
        let session_id = Uuid::now_v7();
        let mut tx = self.db.begin().await?;
        const SQL: &str = "INSERT INTO auth_sessions (id, user_id, created_at, last_used_at) VALUES ($1, $2, $3, $3)";
        crate::exec_tx!(&mut tx, SQL, session_id, user.id, now)?;
        self.forget_failed_logins(&mut tx, &user.email).await?;
        let refresh = self.insert_refresh_token(&mut tx, session_id, now).await?;
        audit::record_as(
            &mut tx,
            Some(user.id),
            audit::Entry {
                action: "auth.signed_in",
                subject: format!("user:{}", user.id),
                clinic_id: None,
                details: serde_json::json!({"session": session_id}),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(target: "audit", user = %user.id, session = %session_id, "signed in");
        self.token_pair(user, session_id, refresh, now).await
    }

    async fn token_pair(
        &self,
        user: &User,
        session_id: Uuid,
        refresh_token: String,
        now: DateTime<Utc>,
    ) -> Result<TokenPair> {
        let ttl = self.settings.access_ttl.as_secs() as i64;
        let claims = Claims {
            sub: user.id,
            sid: session_id,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl,
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.jwt.encoding)
                .map_err(|e| Error::internal(format!("signing a token: {e}")))?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            refresh_token,
            user: people::view(&self.db, user).await?,
        })
    }

    async fn insert_refresh_token(
        &self,
        tx: &mut Tx,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let token = crate::crypto::random_token();
        let hash = self.digester.digest(REFRESH_PURPOSE, &token);
        let expires_at = now + self.settings.refresh_ttl;
        const SQL: &str = "INSERT INTO refresh_tokens (id, session_id, token_hash, expires_at, created_at) \
            VALUES ($1, $2, $3, $4, $5)";
        crate::exec_tx!(tx, SQL, Uuid::now_v7(), session_id, &hash, expires_at, now)?;
        Ok(token)
    }

    /// Exchanges a refresh token for a new pair. A token presented twice revokes its login,
    /// unless the second time comes within the grace window and the new token it was
    /// exchanged for is still unused: then that same new token is returned (two tabs
    /// refreshing at once share one login instead of ending it).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let now = Utc::now();
        let hash = self.digester.digest(REFRESH_PURPOSE, refresh_token.trim());
        let mut tx = self.db.begin().await?;
        let row = on_tx!(&mut tx, |conn| sqlx::query_as::<_, RefreshRow>(
            FIND_REFRESH
        )
        .bind(&hash)
        .fetch_optional(&mut *conn)
        .await)?;
        let Some(row) = row else {
            return Err(invalid_refresh());
        };
        if row.revoked_at.is_some() {
            return Err(invalid_refresh());
        }
        const USE: &str =
            "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL";
        let claimed = row.used_at.is_none() && crate::exec_tx!(&mut tx, USE, row.id, now)? == 1;
        if !claimed {
            drop(tx);
            return self.second_use(&hash, now).await;
        }
        if row.expires_at <= now {
            return Err(Error::new(
                Code::InvalidRefreshToken,
                "The refresh token has expired. Sign in again.",
            ));
        }
        let user = people::find_in(&mut tx, row.user_id)
            .await?
            .ok_or_else(invalid_refresh)?;
        if user.deactivated_at.is_some() {
            return Err(Error::new(
                Code::AccountDeactivated,
                "This account has been deactivated.",
            ));
        }
        const TOUCH: &str = "UPDATE auth_sessions SET last_used_at = $2 WHERE id = $1";
        crate::exec_tx!(&mut tx, TOUCH, row.session_id, now)?;
        let next = self
            .insert_refresh_token(&mut tx, row.session_id, now)
            .await?;
        let sealed = self
            .db
            .policy()
            .sealer
            .seal(next.as_bytes(), row.id.as_bytes());
        const SUCCESSOR: &str = "UPDATE refresh_tokens SET successor_sealed = $2 WHERE id = $1";
        crate::exec_tx!(&mut tx, SUCCESSOR, row.id, sealed)?;
        tx.commit().await?;
        self.token_pair(&user, row.session_id, next, now).await
    }

    /// A refresh token presented after it was used: within the grace window, and while its
    /// successor is unused, the same successor; otherwise it leaked, and its login ends.
    async fn second_use(&self, hash: &str, now: DateTime<Utc>) -> Result<TokenPair> {
        // Read again: a concurrent first use may have committed since.
        let row = on_db!(&self.db, |pool| sqlx::query_as::<_, RefreshRow>(
            FIND_REFRESH
        )
        .bind(hash)
        .fetch_optional(pool)
        .await)?
        .ok_or_else(invalid_refresh)?;
        if row.revoked_at.is_some() {
            return Err(invalid_refresh());
        }
        let grace = chrono::Duration::from_std(self.settings.refresh_reuse_grace)
            .unwrap_or_else(|_| chrono::Duration::zero());
        let recent = row.used_at.is_some_and(|used| now - used <= grace);
        if recent && let Some(sealed) = &row.successor_sealed {
            let successor = self
                .db
                .policy()
                .sealer
                .open(sealed, row.id.as_bytes())
                .map_err(|e| Error::internal(format!("refresh token {}: {e}", row.id)))?;
            let successor = String::from_utf8_lossy(&successor).into_owned();
            let next_hash = self.digester.digest(REFRESH_PURPOSE, &successor);
            let next = on_db!(&self.db, |pool| sqlx::query_as::<_, RefreshRow>(
                FIND_REFRESH
            )
            .bind(&next_hash)
            .fetch_optional(pool)
            .await)?;
            if next.is_some_and(|n| n.used_at.is_none() && n.expires_at > now) {
                let user = people::find(&self.db, row.user_id)
                    .await?
                    .filter(|u| u.deactivated_at.is_none())
                    .ok_or_else(invalid_refresh)?;
                return self.token_pair(&user, row.session_id, successor, now).await;
            }
        }
        let mut tx = self.db.begin().await?;
        revoke_session(&mut tx, row.session_id, now, "refresh_token_reused").await?;
        tx.commit().await?;
        tracing::warn!(target: "audit", user = %row.user_id, session = %row.session_id, "refresh token reused; login revoked");
        Err(Error::new(
            Code::RefreshTokenReused,
            "This refresh token was already used, so the login has been ended for safety. Sign in again.",
        ))
    }

    /// Ends the caller's login: its refresh tokens and access tokens stop working.
    pub async fn logout(&self, principal: &Principal) -> Result<()> {
        let mut tx = self.db.begin().await?;
        revoke_session(&mut tx, principal.session_id, Utc::now(), "logout").await?;
        tx.commit().await?;
        tracing::info!(target: "audit", user = %principal.user_id, session = %principal.session_id, "signed out");
        Ok(())
    }

    /// Checks an access token and loads who it speaks for.
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal> {
        let claims =
            jsonwebtoken::decode::<Claims>(access_token, &self.jwt.decoding, &self.jwt.validation)
                .map_err(|e| match e.kind() {
                    ErrorKind::ExpiredSignature => Error::new(
                        Code::TokenExpired,
                        "The access token has expired; refresh it.",
                    ),
                    _ => Error::new(Code::InvalidToken, "The access token is not valid."),
                })?
                .claims;
        let rows: Vec<(String, Option<String>, Option<Uuid>)> =
            on_db!(&self.db, |pool| sqlx::query_as(AUTHENTICATE_SQL)
                .bind(claims.sub)
                .bind(claims.sid)
                .fetch_all(pool)
                .await)?;
        let Some(email) = rows.first().map(|(email, _, _)| email.clone()) else {
            return Err(Error::new(
                Code::InvalidToken,
                "This login has ended; sign in again.",
            ));
        };
        let grants = people::grants_from(
            rows.into_iter()
                .filter_map(|(_, role, clinic_id)| role.map(|role| (role, clinic_id))),
        );
        Ok(Principal {
            user_id: claims.sub,
            session_id: claims.sid,
            email,
            grants,
        })
    }
}

/// Ends one login; `reason` is kept for the admin console.
pub(super) async fn revoke_session(
    tx: &mut Tx,
    session_id: Uuid,
    now: DateTime<Utc>,
    reason: &str,
) -> Result<()> {
    const SQL: &str = "UPDATE auth_sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL \
        RETURNING user_id";
    let revoked: Option<Uuid> = on_tx!(tx, |conn| sqlx::query_scalar(SQL)
        .bind(session_id)
        .bind(now)
        .bind(reason)
        .fetch_optional(&mut *conn)
        .await)?;
    if let Some(user) = revoked {
        audit_revocation(tx, user, reason, json!({"session": session_id})).await?;
    }
    Ok(())
}

/// Audits logins ended for `reason` (logout, a reused refresh token, a password reset).
async fn audit_revocation(
    tx: &mut Tx,
    user: Uuid,
    reason: &str,
    details: serde_json::Value,
) -> Result<()> {
    let mut details = details;
    details["reason"] = json!(reason);
    audit::record_as(
        tx,
        Some(user),
        audit::Entry {
            action: "auth.session_revoked",
            subject: format!("user:{user}"),
            clinic_id: None,
            details,
        },
    )
    .await
}

/// Ends every login of a user (after a password reset or deactivation).
pub(crate) async fn revoke_all_sessions(
    tx: &mut Tx,
    user_id: Uuid,
    now: DateTime<Utc>,
    reason: &str,
) -> Result<()> {
    const SQL: &str = "UPDATE auth_sessions SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL";
    let ended = crate::exec_tx!(tx, SQL, user_id, now, reason)?;
    if ended > 0 {
        audit_revocation(tx, user_id, reason, json!({"logins": ended})).await?;
    }
    Ok(())
}

fn invalid_refresh() -> Error {
    Error::new(
        Code::InvalidRefreshToken,
        "The refresh token is not valid. Sign in again.",
    )
}
