//! Argon2id hashing for passwords, and the limiter every Argon2 computation goes through.
//! Hashing is CPU-bound and takes 19 MiB each, so it runs on the blocking pool (never
//! stalling the async workers) and at most one per core at a time: a burst of sign-ins
//! then queues instead of allocating gigabytes and thrashing.

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
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
    /// Computations waiting for a slot, and holding one (counted in units, see
    /// [`run_kdf_many`]).
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
    KdfQueue::new(cores as u64, Duration::from_millis(1000))
});

/// Sets the deadline (`kdf_queue_timeout_ms`); the process has one Argon2 queue.
pub fn set_queue_timeout(timeout: Duration) {
    KDF.timeout_ms
        .store(timeout.as_millis().max(1) as u64, Ordering::Relaxed);
}

impl KdfQueue {
    fn new(cores: u64, timeout: Duration) -> Self {
        Self {
            slots: Semaphore::new(cores as usize),
            cores,
            waiting: AtomicU64::new(0),
            running: AtomicU64::new(0),
            service_us: AtomicU64::new(FIRST_GUESS_US),
            timeout_ms: AtomicU64::new(timeout.as_millis() as u64),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    fn service_time(&self) -> Duration {
        Duration::from_micros(self.service_us.load(Ordering::Relaxed))
    }

    /// The part of the deadline a job may spend waiting and computing: the rest is kept for
    /// the step's other work (reading the flow, answering), so an admitted step answers
    /// within the deadline.
    fn budget(&self) -> Duration {
        self.timeout() * 9 / 10
    }

    /// Whether a job of `units` computations arriving now is admitted. A free slot always
    /// admits (so no average, however wrong, can shut the queue); otherwise the job must
    /// fit in the budget behind the ones ahead of it, spread over the cores.
    fn admits(&self, units: u64) -> bool {
        let (waiting, running) = (
            self.waiting.load(Ordering::Relaxed),
            self.running.load(Ordering::Relaxed),
        );
        if waiting == 0 && running < self.cores {
            return true;
        }
        let ahead = (waiting + running).saturating_sub(self.cores - 1);
        let wait = self.service_time() * ahead.div_ceil(self.cores) as u32;
        wait + self.service_time() * units as u32 <= self.budget()
    }

    /// Takes one computation's time into the average: capped at four times the average
    /// and at the deadline, so one stalled sample (a paused VM) cannot push the estimate
    /// far from what computations cost.
    fn record(&self, took: Duration, units: u64) {
        let per_unit = took.as_micros().min(u64::MAX as u128) as u64 / units.max(1);
        let old = self.service_us.load(Ordering::Relaxed);
        let cap = (old * 4).min(self.timeout_ms.load(Ordering::Relaxed) * 1000);
        let sample = per_unit.min(cap.max(1));
        // An exponential moving average (1/8 per sample); a lost race between two updates
        // only drops one sample.
        self.service_us
            .store(((old * 7 + sample) / 8).max(1), Ordering::Relaxed);
    }

    fn refuse(&self, why: &'static str) -> ServiceError {
        crate::service::events::argon2_refused(why);
        ServiceError::Busy(Duration::from_secs(1).max(self.timeout()))
    }
}

/// Counts `units` in `waiting` or `running` until dropped (also when cancelled).
struct Counted {
    counter: &'static AtomicU64,
    units: u64,
}

impl Counted {
    fn new(counter: &'static AtomicU64, units: u64) -> Self {
        counter.fetch_add(units, Ordering::Relaxed);
        Self { counter, units }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.units, Ordering::Relaxed);
    }
}

/// Refuses at once with [`ServiceError::Busy`] when a check arriving now would not be
/// admitted: for a step to call before it reads or reserves anything.
pub fn check_admission() -> Result<(), ServiceError> {
    if KDF.admits(1) {
        Ok(())
    } else {
        Err(KDF.refuse("queue_full"))
    }
}

/// Runs a key-derivation computation on the blocking pool, one per core at a time, or
/// refuses it with [`ServiceError::Busy`] if it would wait longer than the deadline: at once
/// when the queue ahead already takes longer, else when the deadline passes in the queue.
/// A refused computation never started, so the caller gives back what it reserved.
pub async fn run_kdf<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    run_kdf_many(1, work).await
}

/// [`run_kdf`] for a job of `units` computations (a printable set): admitted, timed and
/// counted as that many.
pub async fn run_kdf_many<T: Send + 'static>(
    units: u32,
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let queue: &'static KdfQueue = &KDF;
    let units = u64::from(units.max(1));
    if !queue.admits(units) {
        return Err(queue.refuse("queue_full"));
    }
    let budget = queue.budget();
    let own = queue.service_time() * units as u32;
    let queued = Instant::now();
    let waiting = crate::service::events::Argon2Waiting::start();
    let counted = Counted::new(&queue.waiting, units);
    // A job that fits only because a slot was free still gets the whole deadline to wait.
    let wait_for = budget.saturating_sub(own).max(Duration::from_millis(1));
    let slot = tokio::time::timeout(wait_for, queue.slots.acquire()).await;
    drop(counted);
    drop(waiting);
    crate::service::events::argon2_waited(queued.elapsed().as_secs_f64());
    let slot = match slot {
        Err(_) => return Err(queue.refuse("deadline")),
        Ok(slot) => slot.map_err(|e| ServiceError::internal("hashing limiter", e))?,
    };
    // The slot and the running count go with the computation: a request dropped meanwhile
    // (the client went away) does not free the core while Argon2 still runs on it.
    let running = Counted::new(&queue.running, units);
    let result = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let result = work();
        queue.record(started.elapsed(), units);
        drop(running);
        drop(slot);
        result
    })
    .await;
    result.map_err(|e| ServiceError::internal("hashing task", e))?
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

/// Checks a secret against a PHC string in constant time (`PasswordVerifier` of the argon2
/// crate, computed in kept memory). A stored hash it cannot compute (another algorithm,
/// parameters out of range) matches nothing.
pub async fn verify(secret: Secret, phc: String) -> Result<bool, ServiceError> {
    run_kdf(move || {
        let parsed = PasswordHash::new(&phc)
            .map_err(|e| ServiceError::internal("stored password hash", e))?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Ok(false);
        };
        let computed = (|| {
            let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
            let version = match parsed.version {
                Some(v) => Version::try_from(v).ok()?,
                None => Version::default(),
            };
            let params = Params::try_from(&parsed).ok()?;
            let blocks = params.block_count();
            if blocks > MAX_BLOCKS {
                return None;
            }
            let argon = Argon2::new(algorithm, version, params);
            let mut out = vec![0u8; expected.len()];
            with_memory(blocks, |memory| {
                argon.hash_password_into_with_memory(
                    secret.expose().as_bytes(),
                    salt,
                    &mut out,
                    memory,
                )
            })
            .ok()?;
            Output::new(&out).ok()
        })();
        // `Output`'s equality is constant-time.
        Ok(computed.is_some_and(|computed| &computed == expected))
    })
    .await
}

/// The most memory a stored hash may ask of a check (256 MiB, 13 times what this server's
/// hashes ask): past it a hash from elsewhere, or a corrupted one, would take the process's
/// memory, and it matches nothing.
const MAX_BLOCKS: usize = 256 * 1024;

/// Argon2's working memory (19 MiB at m=19456 KiB), kept between computations: allocated
/// afresh, each computation paid for fresh pages (faults and zeroing) on top of Argon2's own
/// time. At most one is kept per slot of the queue (one per core), the most computations that
/// run at once. It is not cleared in between: Argon2 writes every block before it reads it,
/// and the allocator did not clear freed memory either.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Runs `compute` on `blocks` blocks of kept Argon2 memory.
pub fn with_memory<R>(blocks: usize, compute: impl FnOnce(&mut [Block]) -> R) -> R {
    let kept = MEMORY.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut memory = match kept {
        Some(memory) if memory.len() == blocks => memory,
        _ => vec![Block::new(); blocks],
    };
    let result = compute(&mut memory);
    let mut kept = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    if (kept.len() as u64) < KDF.cores {
        kept.push(memory);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever parameters a stored hash was made with (kept memory of another size, Argon2i,
    /// a longer output), `verify` says what the crate's own verifier says.
    #[tokio::test]
    async fn verify_agrees_with_the_crate_for_any_parameters() {
        use argon2::password_hash::PasswordVerifier;
        let made = [
            (Algorithm::Argon2id, Params::default()),
            (Algorithm::Argon2id, Params::new(8192, 1, 1, None).unwrap()),
            (
                Algorithm::Argon2i,
                Params::new(19456, 2, 1, Some(64)).unwrap(),
            ),
            (Algorithm::Argon2id, Params::default()),
        ];
        for (algorithm, params) in made {
            let argon = Argon2::new(algorithm, Version::V0x13, params);
            let phc = argon.hash_password(b"right horse").unwrap().to_string();
            for (guess, right) in [("right horse", true), ("wrong horse", false), ("", false)] {
                let parsed = PasswordHash::new(&phc).unwrap();
                let theirs = Argon2::default()
                    .verify_password(guess.as_bytes(), &parsed)
                    .is_ok();
                let ours = verify(Secret::new(guess), phc.clone()).await.unwrap();
                assert_eq!((ours, theirs), (right, right), "{phc} with {guess:?}");
            }
        }
        // Not Argon2, or no hash in it: matches nothing.
        let other = "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
        assert!(!verify(Secret::new("x"), other.into()).await.unwrap());
        let bare = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ";
        assert!(!verify(Secret::new("x"), bare.into()).await.unwrap());
        // Asking 4 GiB: refused without a computation (the crate would try).
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$\
                    RdescudvJCsgt3ub+b+dWRWJTmaaJObG0xHp2ODE0BE";
        let started = Instant::now();
        assert!(!verify(Secret::new("x"), huge.into()).await.unwrap());
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_free_slot_always_admits_and_a_full_queue_refuses_past_the_deadline() {
        let queue = KdfQueue::new(1, Duration::from_millis(100));
        assert!(queue.admits(1));
        // An average far above the deadline (a stalled sample) cannot shut an idle queue.
        queue.service_us.store(10_000_000, Ordering::Relaxed);
        assert!(queue.admits(1));
        // Busy: one running, five waiting at 20 ms each is 120 ms ahead.
        queue.service_us.store(20_000, Ordering::Relaxed);
        queue.running.store(1, Ordering::Relaxed);
        queue.waiting.store(3, Ordering::Relaxed);
        assert!(!queue.admits(1), "80 + 20 ms is over the 90 ms budget");
        queue.waiting.store(2, Ordering::Relaxed);
        assert!(queue.admits(1), "60 + 20 ms fits in 90");
        queue.waiting.store(5, Ordering::Relaxed);
        assert!(!queue.admits(1), "120 ms ahead");
        // A set of ten is ten computations.
        queue.waiting.store(0, Ordering::Relaxed);
        assert!(!queue.admits(10));
        assert!(queue.admits(3));
        assert!(!queue.admits(4));
    }

    #[test]
    fn one_stalled_sample_moves_the_average_a_little() {
        let queue = KdfQueue::new(1, Duration::from_millis(1000));
        queue.service_us.store(20_000, Ordering::Relaxed);
        queue.record(Duration::from_secs(30), 1);
        let after = queue.service_us.load(Ordering::Relaxed);
        assert!(after <= 30_000, "{after}");
        // A set's time is spread over its codes.
        queue.service_us.store(20_000, Ordering::Relaxed);
        queue.record(Duration::from_millis(200), 10);
        assert_eq!(queue.service_us.load(Ordering::Relaxed), 20_000);
    }

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
