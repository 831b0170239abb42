//! Password hashing with argon2id. Hashing runs on the blocking pool: it is slow on purpose.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::Argon2Params;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug)]
pub struct PasswordHashing {
    params: Argon2Params,
}

impl PasswordHashing {
    pub fn new(params: Argon2Params) -> Result<Self> {
        // Reject bad parameters at start-up rather than at the first login.
        build(params)?;
        Ok(Self { params })
    }

    /// The PHC string (`$argon2id$v=19$m=...`) for `password`, with a fresh random salt.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let params = self.params;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            let hasher = build(params)?;
            hasher
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| Error::internal(format!("hashing a password: {e}")))
        })
        .await
        .map_err(|e| Error::internal(format!("password hashing task: {e}")))?
    }

    /// Whether `password` matches `stored`. With no stored hash (an unknown user, or an
    /// account without a password) a dummy hash is still checked, so the answer takes
    /// the same time either way and does not reveal which accounts exist.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool> {
        let params = self.params;
        let password = password.to_owned();
        let stored = stored.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let hasher = build(params)?;
            match stored {
                Some(hash) => Ok(hasher
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()),
                None => {
                    let _ = hasher.hash_password(password.as_bytes());
                    Ok(false)
                }
            }
        })
        .await
        .map_err(|e| Error::internal(format!("password hashing task: {e}")))?
    }
}

fn build(p: Argon2Params) -> Result<Argon2<'static>> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
        .map_err(|e| Error::internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Argon2Params = Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let h = PasswordHashing::new(CHEAP).unwrap();
        let a = h.hash("correct horse").await.unwrap();
        let b = h.hash("correct horse").await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(h.verify("correct horse", Some(&a)).await.unwrap());
        assert!(!h.verify("wrong horse", Some(&a)).await.unwrap());
        assert!(!h.verify("correct horse", None).await.unwrap());
        assert!(!h.verify("x", Some("not a phc string")).await.unwrap());
    }
}
