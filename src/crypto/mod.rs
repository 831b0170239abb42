//! Secrets at rest: password hashes, and keyed digests of codes and tokens.

pub mod password;
pub mod seal;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::Rng;
use rand::RngCore;
use sha2::Sha256;

/// Keyed digests of one-time codes and tokens. The database holds only these, so a copy
/// of it does not let anyone sign in; the key lives outside the database.
#[derive(Clone)]
pub struct Digester {
    key: Vec<u8>,
}

impl Digester {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// HMAC-SHA256 over `purpose` and `value`, base64url without padding.
    pub fn digest(&self, purpose: &str, value: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Compares `value` with a stored digest in constant time.
    pub fn matches(&self, purpose: &str, value: &str, stored: &str) -> bool {
        let Ok(stored) = URL_SAFE_NO_PAD.decode(stored) else {
            return false;
        };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.verify_slice(&stored).is_ok()
    }
}

/// A random opaque token (256 bits), base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random numeric code of `digits` digits, leading zeros kept.
pub fn random_digits(digits: u32) -> String {
    let mut rng = rand::rng();
    (0..digits)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// A recovery code such as `k7qm-2xfd-9prw`: 60 bits from an unambiguous alphabet.
pub fn recovery_code() -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    let mut rng = rand::rng();
    let groups: Vec<String> = (0..3)
        .map(|_| {
            (0..4)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect()
        })
        .collect();
    groups.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_keyed_and_bound_to_purpose() {
        let a = Digester::new(b"key-a");
        let b = Digester::new(b"key-b");
        let d = a.digest("login", "123456");
        assert!(a.matches("login", "123456", &d));
        assert!(!a.matches("login", "123457", &d));
        assert!(!a.matches("password_reset", "123456", &d));
        assert!(!b.matches("login", "123456", &d));
        assert!(!a.matches("login", "123456", "not base64!"));
    }

    #[test]
    fn codes_have_the_promised_shape() {
        let code = random_digits(6);
        assert_eq!(code.len(), 6);
        assert!(code.chars().all(|c| c.is_ascii_digit()));
        let rc = recovery_code();
        assert_eq!(rc.len(), 14);
        assert_ne!(random_token(), random_token());
    }
}
