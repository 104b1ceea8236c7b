//! What a code is stored as: Argon2id with the user's salt and the optional pepper.

use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::secret::Secret;
use crate::service::ServiceError;

/// Turns a code into the 32-byte value stored for it.
pub trait CodeHasher: Send + Sync {
    fn hash(&self, code: &str, salt: &[u8]) -> Result<[u8; 32], ServiceError>;
}

/// Argon2id, m=19456 KiB, t=2, p=1, 32-byte output, with the pepper as Argon2's secret input.
pub struct Argon2Hasher {
    pepper: Option<Vec<u8>>,
}

impl Argon2Hasher {
    pub fn new(pepper: Option<&Secret>) -> Self {
        Self {
            pepper: pepper.map(|p| p.expose().as_bytes().to_vec()),
        }
    }
}

impl CodeHasher for Argon2Hasher {
    fn hash(&self, code: &str, salt: &[u8]) -> Result<[u8; 32], ServiceError> {
        let argon = match &self.pepper {
            Some(pepper) => Argon2::new_with_secret(
                pepper,
                Algorithm::Argon2id,
                Version::V0x13,
                Params::default(),
            )
            .map_err(|e| ServiceError::internal("argon2", e))?,
            None => Argon2::default(),
        };
        let mut out = [0u8; 32];
        crate::service::passwords::with_memory(argon.params().block_count(), |memory| {
            argon.hash_password_into_with_memory(code.as_bytes(), salt, &mut out, memory)
        })
        .map_err(|e| ServiceError::internal("argon2", e))?;
        Ok(out)
    }
}
