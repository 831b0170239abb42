//! Sealing data at rest with AES-256-GCM (chat contexts now; notes later). A sealed
//! value carries the id of the key that sealed it, so keys can rotate: new values are
//! sealed with the current key, old ones open with the key their id names.

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const NONCE: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed data is damaged or was sealed with another key")]
    Unreadable,
    #[error("no key with id {0:08x} is configured")]
    UnknownKey(u32),
}

/// The current key and any older ones still able to open what they sealed.
#[derive(Clone)]
pub struct Sealer {
    current: (u32, Aes256Gcm),
    older: Vec<(u32, Aes256Gcm)>,
}

/// A key's id: the first four bytes of its SHA-256, so ids need no bookkeeping.
fn key_id(key: &[u8; 32]) -> u32 {
    let h = Sha256::digest(key);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

impl Sealer {
    pub fn new(current: &[u8; 32], older: &[[u8; 32]]) -> Self {
        let cipher = |k: &[u8; 32]| (key_id(k), Aes256Gcm::new(k.into()));
        Self {
            current: cipher(current),
            older: older.iter().map(cipher).collect(),
        }
    }

    /// The id of the key that seals now (stored beside sealed data for rotation).
    pub fn current_key_id(&self) -> u32 {
        self.current.0
    }

    /// `version | key id | nonce | ciphertext+tag`; `context` is authenticated, not stored
    /// (a sealed value cannot be moved to another record).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE] = rand::random();
        let (id, cipher) = &self.current;
        let payload = aes_gcm::aead::Payload {
            msg: plaintext,
            aad: context,
        };
        // Encryption with a valid key and a 12-byte nonce cannot fail for our sizes.
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 4 + NONCE + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + 4 + NONCE + 16 || sealed[0] != VERSION {
            return Err(SealError::Unreadable);
        }
        let id = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let cipher = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|(k, _)| *k == id)
            .map(|(_, c)| c)
            .ok_or(SealError::UnknownKey(id))?;
        let nonce: [u8; NONCE] = sealed[5..5 + NONCE]
            .try_into()
            .map_err(|_| SealError::Unreadable)?;
        let nonce = Nonce::from(nonce);
        let payload = aes_gcm::aead::Payload {
            msg: &sealed[5 + NONCE..],
            aad: context,
        };
        cipher
            .decrypt(&nonce, payload)
            .map_err(|_| SealError::Unreadable)
    }
}

/// What marks a sealed value in a text column.
const TEXT_PREFIX: &str = "sealed:";

impl Sealer {
    /// Seals free text for a text column: `sealed:` and base64url. Empty text stays empty
    /// (nothing to hide, and it reads as "none given").
    pub fn seal_text(&self, text: &str, context: &[u8]) -> String {
        use base64::Engine;
        if text.is_empty() {
            return String::new();
        }
        let sealed = self.seal(text.as_bytes(), context);
        format!(
            "{TEXT_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        )
    }

    /// Opens what [`Sealer::seal_text`] wrote; text stored before it was sealed reads as it is.
    pub fn open_text(&self, stored: &str, context: &[u8]) -> Result<String, SealError> {
        use base64::Engine;
        let Some(encoded) = stored.strip_prefix(TEXT_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| SealError::Unreadable)?;
        let plain = self.open(&sealed, context)?;
        String::from_utf8(plain).map_err(|_| SealError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_text_opens_with_its_context_and_plain_text_reads_as_it_was() {
        let sealer = Sealer::new(&[3u8; 32], &[]);
        let stored = sealer.seal_text("chest pain at night", b"appointment:1");
        assert!(
            stored.starts_with(TEXT_PREFIX) && !stored.contains("chest"),
            "{stored}"
        );
        assert_eq!(
            sealer.open_text(&stored, b"appointment:1").unwrap(),
            "chest pain at night"
        );
        assert!(sealer.open_text(&stored, b"appointment:2").is_err());
        assert_eq!(
            sealer.open_text("written before sealing", b"x").unwrap(),
            "written before sealing"
        );
        assert_eq!(sealer.seal_text("", b"x"), "");
    }

    #[test]
    fn sealed_data_opens_only_with_its_key_and_context_and_survives_rotation() {
        let old = [7u8; 32];
        let new = [9u8; 32];
        let before = Sealer::new(&old, &[]);
        let sealed = before.seal(b"my rash", b"session-1");
        assert!(!sealed.windows(7).any(|w| w == b"my rash"));
        assert_eq!(before.open(&sealed, b"session-1").unwrap(), b"my rash");
        assert!(before.open(&sealed, b"session-2").is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(before.open(&tampered, b"session-1").is_err());
        let rotated = Sealer::new(&new, &[old]);
        assert_eq!(rotated.open(&sealed, b"session-1").unwrap(), b"my rash");
        assert!(matches!(
            Sealer::new(&new, &[]).open(&sealed, b"session-1"),
            Err(SealError::UnknownKey(_))
        ));
    }
}
