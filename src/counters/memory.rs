//! In-process counters for a single instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{CounterError, Counters};

const PRUNE_ABOVE: usize = 10_000;

/// Count and end of window, per key.
type Entries = HashMap<String, (u64, Instant)>;

#[derive(Default)]
pub struct MemoryCounters {
    entries: Mutex<Entries>,
    values: Mutex<HashMap<String, (String, Instant)>>,
}

impl MemoryCounters {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Entries>, CounterError> {
        self.entries
            .lock()
            .map_err(|_| CounterError("poisoned lock".into()))
    }
}

#[async_trait::async_trait]
impl Counters for MemoryCounters {
    async fn hit(&self, key: &str, window: Duration) -> Result<(u64, Duration), CounterError> {
        let now = Instant::now();
        let mut entries = self.lock()?;
        if entries.len() > PRUNE_ABOVE {
            entries.retain(|_, (_, until)| *until > now);
        }
        let entry = entries.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        Ok((entry.0, entry.1 - now))
    }

    async fn peek(&self, key: &str) -> Result<(u64, Duration), CounterError> {
        let now = Instant::now();
        Ok(match self.lock()?.get(key) {
            Some((count, until)) if *until > now => (*count, *until - now),
            _ => (0, Duration::ZERO),
        })
    }

    async fn clear(&self, key: &str) -> Result<(), CounterError> {
        self.lock()?.remove(key);
        Ok(())
    }

    async fn acquire_use(
        &self,
        key: &str,
        seed: u64,
        max: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, CounterError> {
        let now = Instant::now();
        let mut entries = self.lock()?;
        let entry = entries.entry(key.to_owned()).or_insert((seed, now + ttl));
        if entry.1 <= now {
            *entry = (seed, now + ttl);
        }
        if entry.0 >= max {
            return Ok(None);
        }
        entry.0 += 1;
        Ok(Some(entry.0))
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CounterError> {
        let now = Instant::now();
        let mut values = self
            .values
            .lock()
            .map_err(|_| CounterError("poisoned lock".into()))?;
        if values.len() > PRUNE_ABOVE {
            values.retain(|_, (_, until)| *until > now);
        }
        values.insert(key.to_owned(), (value.to_owned(), now + ttl));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, CounterError> {
        let values = self
            .values
            .lock()
            .map_err(|_| CounterError("poisoned lock".into()))?;
        Ok(values
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone()))
    }

    async fn take(&self, key: &str) -> Result<Option<String>, CounterError> {
        let mut values = self
            .values
            .lock()
            .map_err(|_| CounterError("poisoned lock".into()))?;
        Ok(values
            .remove(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_within_a_window_and_restarts_after_it() {
        let counters = MemoryCounters::default();
        let window = Duration::from_millis(50);
        assert_eq!(counters.hit("k", window).await.unwrap().0, 1);
        assert_eq!(counters.hit("k", window).await.unwrap().0, 2);
        assert_eq!(counters.peek("k").await.unwrap().0, 2);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(counters.peek("k").await.unwrap().0, 0);
        assert_eq!(counters.hit("k", window).await.unwrap().0, 1);
        counters.clear("k").await.unwrap();
        assert_eq!(counters.peek("k").await.unwrap().0, 0);
    }

    #[tokio::test]
    async fn values_expire_and_are_taken_once() {
        let counters = MemoryCounters::default();
        counters
            .put("v", "one", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(counters.get("v").await.unwrap().as_deref(), Some("one"));
        assert_eq!(counters.take("v").await.unwrap().as_deref(), Some("one"));
        assert_eq!(counters.take("v").await.unwrap(), None);
        counters
            .put("w", "two", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(counters.get("w").await.unwrap(), None);
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
