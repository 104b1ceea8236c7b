//! In-process counters and values for a single instance, bounded in size: expired entries
//! leave in deadline order (no scans), and a full map takes nothing new rather than drop a
//! live entry: an attacker who floods it must not be able to wipe someone's lockout or
//! sign-in. A full counter map refuses new attempts (fails closed); a full value map makes
//! new sign-ins wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{CounterError, Counters};
use crate::domain::limits::{Decision, Limit, Window};

/// Attempt and use counters kept at most; each is a few dozen bytes.
const MAX_COUNTERS: usize = 500_000;
/// Flows and authorization codes kept at most; a flow is at most a few KiB (the authorize
/// endpoint caps its parameters).
const MAX_VALUES: usize = 50_000;
/// What a refused attempt is told while the counter map is full.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A map whose entries expire; deadlines are durations since the owner's origin.
struct ExpiringMap<V> {
    entries: HashMap<String, (V, Duration, u64)>,
    by_deadline: BTreeMap<(Duration, u64), String>,
    next_seq: u64,
    cap: usize,
}

impl<V> ExpiringMap<V> {
    fn new(cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_deadline: BTreeMap::new(),
            next_seq: 0,
            cap,
        }
    }

    fn prune(&mut self, now: Duration) {
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }

    fn get(&self, key: &str, now: Duration) -> Option<(&V, Duration)> {
        self.entries
            .get(key)
            .filter(|(_, until, _)| *until > now)
            .map(|(v, until, _)| (v, *until))
    }

    fn get_mut(&mut self, key: &str, now: Duration) -> Option<&mut V> {
        self.entries
            .get_mut(key)
            .filter(|(_, until, _)| *until > now)
            .map(|(v, _, _)| v)
    }

    fn remove(&mut self, key: &str, now: Duration) -> Option<V> {
        let (value, until, seq) = self.entries.remove(key)?;
        self.by_deadline.remove(&(until, seq));
        (until > now).then_some(value)
    }

    /// Inserts or replaces; false (and nothing stored) when the map is full of live entries.
    #[must_use]
    fn insert(&mut self, key: &str, value: V, until: Duration, now: Duration) -> bool {
        self.remove(key, now);
        self.prune(now);
        if self.entries.len() >= self.cap {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_deadline.insert((until, seq), key.to_owned());
        self.entries.insert(key.to_owned(), (value, until, seq));
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

pub struct MemoryCounters {
    origin: Instant,
    counters: Mutex<ExpiringMap<u64>>,
    values: Mutex<ExpiringMap<String>>,
}

impl Default for MemoryCounters {
    fn default() -> Self {
        Self::with_capacity(MAX_COUNTERS, MAX_VALUES)
    }
}

fn locked<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, CounterError> {
    mutex
        .lock()
        .map_err(|_| CounterError::Backend("poisoned lock".into()))
}

impl MemoryCounters {
    fn with_capacity(counters: usize, values: usize) -> Self {
        Self {
            origin: Instant::now(),
            counters: Mutex::new(ExpiringMap::new(counters)),
            values: Mutex::new(ExpiringMap::new(values)),
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn window(map: &ExpiringMap<u64>, key: &str, now: Duration) -> Option<Window> {
        map.get(key, now).map(|(count, ends)| Window {
            count: *count,
            ends,
        })
    }
}

#[async_trait::async_trait]
impl Counters for MemoryCounters {
    async fn reserve(&self, key: &str, limit: Limit) -> Result<Decision, CounterError> {
        let now = self.now();
        let mut map = locked(&self.counters)?;
        let current = Self::window(&map, key, now);
        let (next, decision) = Window::reserve(current, limit, now);
        if let Decision::Reserved { .. } = decision {
            match map.get_mut(key, now) {
                Some(count) if current.is_some_and(|w| w.ends == next.ends) => *count = next.count,
                _ => {
                    if !map.insert(key, next.count, next.ends, now) {
                        tracing::warn!(
                            "the in-process counter store is full; refusing new attempts"
                        );
                        return Ok(Decision::Denied {
                            retry_after: FULL_RETRY_AFTER,
                        });
                    }
                }
            }
        }
        Ok(decision)
    }

    async fn give_back(&self, key: &str) -> Result<(), CounterError> {
        let now = self.now();
        let mut map = locked(&self.counters)?;
        match Window::give_back(Self::window(&map, key, now), now) {
            Some(next) => {
                if let Some(count) = map.get_mut(key, now) {
                    *count = next.count;
                }
            }
            None => {
                map.remove(key, now);
            }
        }
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), CounterError> {
        let now = self.now();
        locked(&self.counters)?.remove(key, now);
        Ok(())
    }

    async fn admit(
        &self,
        keys: &[(String, Limit, bool)],
    ) -> Result<Option<Duration>, CounterError> {
        let now = self.now();
        let mut map = locked(&self.counters)?;
        for (key, limit, _) in keys {
            if let Some(w) = Self::window(&map, key, now)
                && w.count >= limit.max
            {
                return Ok(Some(w.ends - now));
            }
        }
        for (key, _, clear) in keys {
            if *clear {
                map.remove(key, now);
            }
        }
        Ok(None)
    }

    async fn peek(&self, keys: &[(String, Limit)]) -> Result<Result<bool, Duration>, CounterError> {
        let now = self.now();
        let map = locked(&self.counters)?;
        let mut counted = false;
        for (key, limit) in keys {
            if let Some(w) = Self::window(&map, key, now) {
                if w.count >= limit.max {
                    return Ok(Err(w.ends - now));
                }
                counted |= w.count > 0;
            }
        }
        Ok(Ok(counted))
    }

    async fn acquire_use(
        &self,
        key: &str,
        seed: u64,
        max: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, CounterError> {
        let now = self.now();
        let mut map = locked(&self.counters)?;
        let stored = map.get(key, now).map(|(count, _)| *count);
        let count = match stored {
            Some(count) => count,
            // Full: the database's conditional update still counts the use exactly.
            None if !map.insert(key, seed, now + ttl, now) => {
                return Ok((seed < max).then_some(seed + 1));
            }
            None => seed,
        };
        if count >= max {
            return Ok(None);
        }
        if let Some(stored) = map.get_mut(key, now) {
            *stored = count + 1;
        }
        Ok(Some(count + 1))
    }

    async fn release_use(&self, key: &str) -> Result<(), CounterError> {
        let now = self.now();
        if let Some(count) = locked(&self.counters)?.get_mut(key, now) {
            *count = count.saturating_sub(1);
        }
        Ok(())
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CounterError> {
        let now = self.now();
        if locked(&self.values)?.insert(key, value.to_owned(), now + ttl, now) {
            Ok(())
        } else {
            Err(CounterError::Full)
        }
    }

    async fn replace(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, CounterError> {
        let now = self.now();
        let mut values = locked(&self.values)?;
        if values.get(key, now).is_none() {
            return Ok(false);
        }
        if values.insert(key, value.to_owned(), now + ttl, now) {
            Ok(true)
        } else {
            Err(CounterError::Full)
        }
    }

    async fn get(&self, key: &str) -> Result<Option<String>, CounterError> {
        let now = self.now();
        Ok(locked(&self.values)?.get(key, now).map(|(v, _)| v.clone()))
    }

    async fn take(&self, key: &str) -> Result<Option<String>, CounterError> {
        let now = self.now();
        Ok(locked(&self.values)?.remove(key, now))
    }

    async fn remove(&self, key: &str) -> Result<bool, CounterError> {
        Ok(self.take(key).await?.is_some())
    }

    async fn ping(&self) -> Result<(), CounterError> {
        locked(&self.counters).map(|_| ())
    }

    fn is_shared(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        max: 3,
        window: Duration::from_millis(50),
    };

    #[tokio::test]
    async fn reserves_within_a_window_and_restarts_after_it() {
        let counters = MemoryCounters::default();
        for n in 1..=3 {
            assert_eq!(
                counters.reserve("k", LIMIT).await.unwrap(),
                Decision::Reserved { count: n }
            );
        }
        assert!(matches!(
            counters.reserve("k", LIMIT).await.unwrap(),
            Decision::Denied { .. }
        ));
        counters.give_back("k").await.unwrap();
        assert_eq!(
            counters.reserve("k", LIMIT).await.unwrap(),
            Decision::Reserved { count: 3 }
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            counters.reserve("k", LIMIT).await.unwrap(),
            Decision::Reserved { count: 1 }
        );
        counters.clear("k").await.unwrap();
        assert_eq!(
            counters.reserve("k", LIMIT).await.unwrap(),
            Decision::Reserved { count: 1 }
        );
    }

    #[tokio::test]
    async fn concurrent_reservations_never_pass_the_limit() {
        let counters = std::sync::Arc::new(MemoryCounters::default());
        let limit = Limit {
            max: 5,
            window: Duration::from_secs(60),
        };
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let counters = counters.clone();
                tokio::spawn(async move { counters.reserve("burst", limit).await.unwrap() })
            })
            .collect();
        let mut reserved = 0;
        for task in tasks {
            if let Decision::Reserved { .. } = task.await.unwrap() {
                reserved += 1;
            }
        }
        assert_eq!(reserved, 5);
    }

    #[tokio::test]
    async fn values_expire_and_are_taken_or_removed_once() {
        let counters = MemoryCounters::default();
        let minute = Duration::from_secs(60);
        counters.put("v", "one", minute).await.unwrap();
        assert_eq!(counters.get("v").await.unwrap().as_deref(), Some("one"));
        assert_eq!(counters.take("v").await.unwrap().as_deref(), Some("one"));
        assert_eq!(counters.take("v").await.unwrap(), None);
        counters.put("r", "x", minute).await.unwrap();
        assert!(counters.remove("r").await.unwrap());
        assert!(!counters.remove("r").await.unwrap());
        counters
            .put("w", "two", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(counters.get("w").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_full_store_keeps_what_it_has_and_refuses_new_entries() {
        let counters = MemoryCounters::with_capacity(2, 2);
        let minute = Duration::from_secs(60);
        counters.put("a", "1", minute).await.unwrap();
        counters
            .put("b", "2", Duration::from_millis(20))
            .await
            .unwrap();
        assert!(matches!(
            counters.put("c", "3", minute).await,
            Err(CounterError::Full)
        ));
        assert_eq!(counters.get("a").await.unwrap().as_deref(), Some("1"));
        counters.put("a", "replaced", minute).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        counters.put("c", "3", minute).await.unwrap();
        assert_eq!(counters.values.lock().unwrap().len(), 2, "b expired");

        // A victim's lockout survives a flood of new keys, which are refused instead.
        let limit = Limit {
            max: 1,
            window: minute,
        };
        counters.reserve("victim", limit).await.unwrap();
        counters.reserve("junk", limit).await.unwrap();
        for i in 0..100 {
            assert!(matches!(
                counters.reserve(&format!("flood{i}"), limit).await.unwrap(),
                Decision::Denied { .. }
            ));
        }
        assert!(matches!(
            counters.reserve("victim", limit).await.unwrap(),
            Decision::Denied { .. }
        ));
        // Use counters fall back to the database's count when full.
        assert_eq!(
            counters.acquire_use("use", 2, 3, minute).await.unwrap(),
            Some(3)
        );
        assert_eq!(
            counters.acquire_use("use", 3, 3, minute).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn uses_are_seeded_and_capped() {
        let counters = MemoryCounters::default();
        let ttl = Duration::from_secs(60);
        assert_eq!(counters.acquire_use("c", 1, 3, ttl).await.unwrap(), Some(2));
        assert_eq!(
            counters.acquire_use("c", 0, 3, ttl).await.unwrap(),
            Some(3),
            "the seed applies only once"
        );
        assert_eq!(counters.acquire_use("c", 0, 3, ttl).await.unwrap(), None);
    }
}
