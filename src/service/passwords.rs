//! Argon2id hashing for passwords, and the limiter every Argon2 computation goes through.
//! Hashing is CPU-bound and takes 19 MiB each, so it runs on the blocking pool (never
//! stalling the async workers) and at most one per core at a time: a burst of sign-ins
//! then queues instead of allocating gigabytes and thrashing.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use std::sync::LazyLock;

use tokio::sync::Semaphore;

use super::ServiceError;
use crate::domain::secret::Secret;

static KDF_SLOTS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// Runs a key-derivation computation on the blocking pool, one per core at a time.
pub async fn run_kdf<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let queued = std::time::Instant::now();
    let waiting = crate::service::events::Argon2Waiting::start();
    let slot = KDF_SLOTS.acquire().await;
    drop(waiting);
    crate::service::events::argon2_waited(queued.elapsed().as_secs_f64());
    let _slot = slot.map_err(|e| ServiceError::internal("hashing limiter", e))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServiceError::internal("hashing task", e))?
}

/// Hashes a secret into a PHC string with a fresh random salt (Argon2id, m=19456 KiB, t=2, p=1).
pub async fn hash(secret: Secret) -> Result<String, ServiceError> {
    run_kdf(move || {
        Argon2::default()
            .hash_password(secret.expose().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| ServiceError::internal("argon2", e))
    })
    .await
}

/// Checks a secret against a PHC string in constant time.
pub async fn verify(secret: Secret, phc: String) -> Result<bool, ServiceError> {
    run_kdf(move || {
        let parsed = PasswordHash::new(&phc)
            .map_err(|e| ServiceError::internal("stored password hash", e))?;
        Ok(Argon2::default()
            .verify_password(secret.expose().as_bytes(), &parsed)
            .is_ok())
    })
    .await
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
