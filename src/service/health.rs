//! Whether the dependencies answer, for `/readyz`.

use std::time::Duration;

use crate::counters::SharedCounters;
use crate::store::Store;

#[derive(Clone)]
pub struct Health {
    store: Store,
    counters: SharedCounters,
}

/// What answered within the deadline; `redis` is `None` when counters are in-process.
#[derive(Clone, Copy, Debug)]
pub struct Readiness {
    pub database: bool,
    pub redis: Option<bool>,
    /// The counters answered (Redis, or the in-process store).
    pub counters: bool,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.database && self.counters
    }
}

impl Health {
    pub fn new(store: Store, counters: SharedCounters) -> Self {
        Self { store, counters }
    }

    /// Asks the database and Redis at once, each within `deadline`.
    pub async fn check(&self, deadline: Duration) -> Readiness {
        let (database, redis) = tokio::join!(
            tokio::time::timeout(deadline, self.store.ping()),
            tokio::time::timeout(deadline, self.counters.ping()),
        );
        let counters = matches!(redis, Ok(Ok(())));
        Readiness {
            database: matches!(database, Ok(Ok(()))),
            redis: self.counters.is_shared().then_some(counters),
            counters,
        }
    }
}
