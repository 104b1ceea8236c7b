//! Sealing of secrets at rest (TOTP secrets, signing keys) with ChaCha20-Poly1305 when a key is
//! configured. Without a key, values are stored plainly and marked so, and become sealed
//! the next time they are written with a key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use super::ServiceError;
use crate::domain::secret::Secret;

const SEALED: &str = "v1:";
const PLAIN: &str = "plain:";

#[derive(Clone)]
pub struct Sealer {
    cipher: Option<ChaCha20Poly1305>,
}

impl Sealer {
    /// `key` is 32 bytes in standard base64 (validated by the configuration).
    pub fn new(key: Option<&Secret>) -> Result<Self, ServiceError> {
        let cipher = match key {
            Some(key) => {
                let bytes = STANDARD
                    .decode(key.expose())
                    .map_err(|e| ServiceError::internal("encryption key is not base64", e))?;
                if bytes.len() != 32 {
                    return Err(ServiceError::failed("encryption key must be 32 bytes"));
                }
                Some(ChaCha20Poly1305::new(Key::from_slice(&bytes)))
            }
            None => None,
        };
        Ok(Self { cipher })
    }

    /// Whether values are sealed (a key is configured).
    pub fn seals(&self) -> bool {
        self.cipher.is_some()
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<String, ServiceError> {
        let Some(cipher) = &self.cipher else {
            return Ok(format!("{PLAIN}{}", STANDARD.encode(plaintext)));
        };
        let nonce: [u8; 12] = rand::random();
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .map_err(|_| ServiceError::failed("sealing"))?;
        Ok(format!(
            "{SEALED}{}:{}",
            STANDARD.encode(nonce),
            STANDARD.encode(ciphertext)
        ))
    }

    pub fn open(&self, stored: &str) -> Result<Vec<u8>, ServiceError> {
        if let Some(plain) = stored.strip_prefix(PLAIN) {
            return STANDARD
                .decode(plain)
                .map_err(|e| ServiceError::internal("stored secret is corrupt", e));
        }
        let sealed = stored
            .strip_prefix(SEALED)
            .ok_or_else(|| ServiceError::failed("stored secret has an unknown format"))?;
        let cipher = self.cipher.as_ref().ok_or_else(|| {
            ServiceError::failed("a sealed secret needs BYPASS_IDP_ENCRYPTION_KEY to be set")
        })?;
        let (nonce, ciphertext) = sealed
            .split_once(':')
            .ok_or_else(|| ServiceError::failed("stored secret is corrupt"))?;
        let decode = |s: &str| {
            STANDARD
                .decode(s)
                .map_err(|e| ServiceError::internal("stored secret is corrupt", e))
        };
        let nonce = decode(nonce)?;
        if nonce.len() != 12 {
            return Err(ServiceError::failed("stored secret is corrupt"));
        }
        cipher
            .decrypt(Nonce::from_slice(&nonce), decode(ciphertext)?.as_ref())
            .map_err(|_| ServiceError::failed("cannot open a sealed secret: wrong encryption key?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Secret {
        Secret::new(STANDARD.encode([7u8; 32]))
    }

    #[test]
    fn sealed_values_round_trip_and_hide_the_plaintext() {
        let sealer = Sealer::new(Some(&key())).unwrap();
        let sealed = sealer.seal(b"totp secret bytes").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains(&STANDARD.encode(b"totp secret bytes")));
        assert_ne!(
            sealed,
            sealer.seal(b"totp secret bytes").unwrap(),
            "fresh nonce each time"
        );
        assert_eq!(sealer.open(&sealed).unwrap(), b"totp secret bytes");
    }

    #[test]
    fn wrong_key_or_no_key_cannot_open_and_plain_values_still_read() {
        let sealed = Sealer::new(Some(&key())).unwrap().seal(b"x").unwrap();
        let other = Sealer::new(Some(&Secret::new(STANDARD.encode([8u8; 32])))).unwrap();
        assert!(other.open(&sealed).is_err());
        let none = Sealer::new(None).unwrap();
        assert!(none.open(&sealed).is_err());
        let plain = none.seal(b"y").unwrap();
        assert!(plain.starts_with("plain:"));
        assert_eq!(other.open(&plain).unwrap(), b"y");
    }
}
