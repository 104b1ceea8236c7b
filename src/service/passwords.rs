//! Argon2id hashing for passwords, and the limiter every Argon2 computation goes through.
//! Hashing is CPU-bound and takes 19 MiB each, so it runs on the blocking pool (never
//! stalling the async workers) and at most one per core at a time: a burst of sign-ins
//! then queues instead of allocating gigabytes and thrashing.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::ServiceError;
use crate::domain::secret::Secret;

/// The admission queue in front of Argon2: one slot per core, and a deadline. A computation
/// that would wait past the deadline is refused at once ([`ServiceError::Busy`]) instead of
/// joining a queue that only grows: under overload the checks that are admitted still
/// answer within the deadline, and the refused ones are told to come back.
struct KdfQueue {
    slots: Semaphore,
    cores: u64,
    /// Computations waiting for a slot, and holding one.
    waiting: AtomicU64,
    running: AtomicU64,
    /// A moving average of one computation's time on its slot, in microseconds.
    service_us: AtomicU64,
    timeout_ms: AtomicU64,
}

/// What one Argon2 computation is taken to cost before any has been measured (19 MiB, t=2).
const FIRST_GUESS_US: u64 = 20_000;

static KDF: LazyLock<KdfQueue> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    KdfQueue {
        slots: Semaphore::new(cores),
        cores: cores as u64,
        waiting: AtomicU64::new(0),
        running: AtomicU64::new(0),
        service_us: AtomicU64::new(FIRST_GUESS_US),
        timeout_ms: AtomicU64::new(1000),
    }
});

/// Sets the deadline (`kdf_queue_timeout_ms`); the process has one Argon2 queue.
pub fn set_queue_timeout(timeout: Duration) {
    KDF.timeout_ms
        .store(timeout.as_millis().max(1) as u64, Ordering::Relaxed);
}

impl KdfQueue {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    fn service_time(&self) -> Duration {
        Duration::from_micros(self.service_us.load(Ordering::Relaxed))
    }

    /// How long a computation arriving now would wait for a slot: the ones ahead of it,
    /// spread over the cores, each taking the average time.
    fn expected_wait(&self) -> Duration {
        let busy = self.waiting.load(Ordering::Relaxed) + self.running.load(Ordering::Relaxed);
        let ahead = (busy + 1).saturating_sub(self.cores);
        self.service_time() * (ahead.div_ceil(self.cores)) as u32
    }

    fn record(&self, took: Duration) {
        let sample = took.as_micros().min(u64::MAX as u128) as u64;
        // An exponential moving average (1/8 per sample); a lost race between two updates
        // only drops one sample.
        let old = self.service_us.load(Ordering::Relaxed);
        let new = (old * 7 + sample) / 8;
        self.service_us.store(new.max(1), Ordering::Relaxed);
    }

    fn refuse(&self, why: &'static str) -> ServiceError {
        crate::service::events::argon2_refused(why);
        ServiceError::Busy(Duration::from_secs(1).max(self.timeout()))
    }
}

/// Counts a computation in `waiting` or `running` until dropped (also when cancelled).
struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs a key-derivation computation on the blocking pool, one per core at a time, or
/// refuses it with [`ServiceError::Busy`] if it would wait longer than the deadline: at once
/// when the queue ahead already takes longer, else when the deadline passes in the queue.
/// A refused computation never started, so the caller gives back what it reserved.
pub async fn run_kdf<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let queue = &*KDF;
    let deadline = queue.timeout();
    let service = queue.service_time();
    // Admitted only if waiting and computing both fit in the deadline.
    if queue.expected_wait() + service > deadline {
        return Err(queue.refuse("queue_full"));
    }
    let queued = Instant::now();
    let waiting = crate::service::events::Argon2Waiting::start();
    let counted = Counted::new(&queue.waiting);
    let slot = tokio::time::timeout(deadline.saturating_sub(service), queue.slots.acquire()).await;
    drop(counted);
    drop(waiting);
    crate::service::events::argon2_waited(queued.elapsed().as_secs_f64());
    let slot = match slot {
        Err(_) => return Err(queue.refuse("deadline")),
        Ok(slot) => slot.map_err(|e| ServiceError::internal("hashing limiter", e))?,
    };
    let running = Counted::new(&queue.running);
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        let result = work();
        (result, started.elapsed())
    })
    .await;
    drop(running);
    drop(slot);
    let (result, took) = result.map_err(|e| ServiceError::internal("hashing task", e))?;
    queue.record(took);
    result
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
