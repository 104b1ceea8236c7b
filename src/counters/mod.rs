//! Windowed counters for rate limits, use counters, and short-lived state (sign-in flows,
//! authorization codes): Redis when configured, so that every instance shares them, and
//! in-process maps for the embedded default.

mod memory;
mod redis_store;

use std::sync::Arc;
use std::time::Duration;

pub use memory::MemoryCounters;

use crate::domain::limits::{Decision, Limit};
pub use redis_store::{RedisCounters, RedisMode, nodes};

#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("counter store: {0}")]
    Backend(String),
    /// The in-process store holds as many values as it may; nothing live is dropped for a
    /// new one, so new sign-ins wait until entries expire.
    #[error("the in-process store is full")]
    Full,
}

/// Attempt counters under a [`Limit`], use counters of limited resources, and short-lived
/// values.
#[async_trait::async_trait]
pub trait Counters: Send + Sync {
    /// Reserves one attempt on `key` under `limit` in one atomic step, following
    /// [`Window::reserve`](crate::domain::limits::Window::reserve): of any number of
    /// concurrent callers, at most `limit.max` per window are told `Reserved`.
    async fn reserve(&self, key: &str, limit: Limit) -> Result<Decision, CounterError>;
    /// Gives one reserved attempt back ([`Window::give_back`](crate::domain::limits::Window::give_back)).
    async fn give_back(&self, key: &str) -> Result<(), CounterError>;
    /// Forgets the key's attempts.
    async fn clear(&self, key: &str) -> Result<(), CounterError>;
    /// A check that passed without reserving (see [`crate::service::throttle::Throttle::admit`]):
    /// refuses (with the time left) if any `(key, limit, clear)` is at its limit, else forgets
    /// the attempts of the keys marked `clear`. Each key's step is atomic; on Redis the keys
    /// are taken one at a time (they may live on different cluster nodes).
    async fn admit(&self, keys: &[(String, Limit, bool)])
    -> Result<Option<Duration>, CounterError>;
    /// Reads without counting: `Err` with the time left if a key is at its limit, else
    /// whether any key has attempts counted.
    async fn peek(&self, keys: &[(String, Limit)]) -> Result<Result<bool, Duration>, CounterError>;
    /// Takes one use of a limited resource atomically: if the count (seeded with `seed` when
    /// the key is missing, e.g. after a Redis restart) is below `max`, adds one and returns
    /// the new count; otherwise returns `None`.
    async fn acquire_use(
        &self,
        key: &str,
        seed: u64,
        max: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, CounterError>;
    /// Gives back a use taken by [`Counters::acquire_use`] that was not recorded after all.
    async fn release_use(&self, key: &str) -> Result<(), CounterError>;
    /// Stores short-lived state (sign-in flows, authorization codes) for `ttl`.
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CounterError>;
    /// Replaces a value that is still there (for `ttl`); false, and nothing stored, when it is
    /// gone: a sign-in flow that another request finished stays finished.
    async fn replace(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, CounterError>;
    async fn get(&self, key: &str) -> Result<Option<String>, CounterError>;
    /// Reads and deletes in one atomic step: of concurrent takers, exactly one gets the value.
    async fn take(&self, key: &str) -> Result<Option<String>, CounterError>;
    /// Deletes a value; true if this call deleted it (of concurrent callers, exactly one).
    async fn remove(&self, key: &str) -> Result<bool, CounterError>;
    /// Answers when the store can be used (readiness).
    async fn ping(&self) -> Result<(), CounterError>;
    /// Whether this is a shared store (Redis) that readiness should report.
    fn is_shared(&self) -> bool;
}

pub type SharedCounters = Arc<dyn Counters>;

/// Redis at `redis_url`, one server or a cluster's seed nodes as `mode` says (checking a
/// `rediss://` server against `ca_pem` when given, else the system's roots), or in-process
/// counters.
pub async fn open(
    redis_url: Option<&str>,
    mode: RedisMode,
    ca_pem: Option<Vec<u8>>,
    prefix: &str,
) -> Result<SharedCounters, CounterError> {
    Ok(match redis_url {
        Some(url) => Arc::new(RedisCounters::connect(url, mode, ca_pem, prefix).await?),
        None => Arc::new(MemoryCounters::default()),
    })
}
