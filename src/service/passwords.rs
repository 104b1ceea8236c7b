//! Argon2id hashing for passwords (and, later, bypass codes). Hashing is CPU-bound, so it
//! runs on the blocking pool and never stalls the async workers.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::ServiceError;
use crate::domain::secret::Secret;

/// Hashes a secret into a PHC string with a fresh random salt (Argon2id, m=19456 KiB, t=2, p=1).
pub async fn hash(secret: Secret) -> Result<String, ServiceError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(secret.expose().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("hashing task: {e}")))?
}

/// Checks a secret against a PHC string in constant time.
pub async fn verify(secret: Secret, phc: String) -> Result<bool, ServiceError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&phc)
            .map_err(|e| ServiceError::Internal(format!("stored hash: {e}")))?;
        Ok(Argon2::default()
            .verify_password(secret.expose().as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("hashing task: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let first = hash(Secret::new("correct horse")).await.unwrap();
        let second = hash(Secret::new("correct horse")).await.unwrap();
        assert!(first.starts_with("$argon2id$"));
        assert_ne!(first, second, "each hash has its own salt");
        assert!(
            verify(Secret::new("correct horse"), first.clone())
                .await
                .unwrap()
        );
        assert!(!verify(Secret::new("wrong horse"), first).await.unwrap());
    }
}
