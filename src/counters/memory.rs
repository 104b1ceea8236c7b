//! In-process counters and values for a single instance, bounded in size: expired entries
//! leave in deadline order (no scans), and a full map drops the entry closest to expiry.

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

    fn insert(&mut self, key: &str, value: V, until: Duration, now: Duration) {
        self.remove(key, now);
        self.prune(now);
        while self.entries.len() >= self.cap {
            let Some((_, evicted)) = self.by_deadline.pop_first() else {
                break;
            };
            self.entries.remove(&evicted);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_deadline.insert((until, seq), key.to_owned());
        self.entries.insert(key.to_owned(), (value, until, seq));
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
        .map_err(|_| CounterError("poisoned lock".into()))
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
                _ => map.insert(key, next.count, next.ends, now),
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

    async fn acquire_use(
        &self,
        key: &str,
        seed: u64,
        max: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, CounterError> {
        let now = self.now();
        let mut map = locked(&self.counters)?;
        let count = match map.get(key, now) {
            Some((count, _)) => *count,
            None => {
                map.insert(key, seed, now + ttl, now);
                seed
            }
        };
        if count >= max {
            return Ok(None);
        }
        if let Some(stored) = map.get_mut(key, now) {
            *stored = count + 1;
        }
        Ok(Some(count + 1))
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CounterError> {
        let now = self.now();
        locked(&self.values)?.insert(key, value.to_owned(), now + ttl, now);
        Ok(())
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
    async fn a_full_map_drops_what_expires_first_and_stays_bounded() {
        let counters = MemoryCounters::with_capacity(10, 3);
        let minute = Duration::from_secs(60);
        counters
            .put("soon", "a", Duration::from_secs(5))
            .await
            .unwrap();
        counters.put("late1", "b", minute).await.unwrap();
        counters.put("late2", "c", minute).await.unwrap();
        counters.put("late3", "d", minute).await.unwrap();
        assert_eq!(counters.get("soon").await.unwrap(), None);
        assert_eq!(counters.get("late1").await.unwrap().as_deref(), Some("b"));
        for i in 0..1000 {
            counters.put(&format!("k{i}"), "x", minute).await.unwrap();
        }
        assert_eq!(counters.values.lock().unwrap().len(), 3);
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
