//! The one adapter between the attempt limits of [`crate::domain::limits`] and the counter
//! store: reserve every key of an attempt before checking it, then settle on success.

use std::time::Duration;

use super::ServiceError;
use crate::counters::SharedCounters;
use crate::domain::limits::{Decision, LimitKey, OnSuccess};

#[derive(Clone)]
pub struct Throttle {
    counters: SharedCounters,
}

/// Attempts reserved on every key of one check. Dropping it counts the attempt as failed,
/// which is also what happens when a check errors half-way.
#[must_use = "a reservation is settled with Throttle::succeeded or dropped as a failure"]
pub struct Reservation {
    keys: Vec<LimitKey>,
}

impl Throttle {
    pub fn new(counters: SharedCounters) -> Self {
        Self { counters }
    }

    /// Reserves one attempt on each key, or none: a key at its limit gives back the ones
    /// already reserved and answers how long until an attempt is possible again.
    pub async fn reserve(
        &self,
        keys: Vec<LimitKey>,
    ) -> Result<Result<Reservation, Duration>, ServiceError> {
        for (i, key) in keys.iter().enumerate() {
            if let Decision::Denied { retry_after } =
                self.counters.reserve(&key.key(), key.limit()).await?
            {
                for taken in &keys[..i] {
                    self.counters.give_back(&taken.key()).await?;
                }
                return Ok(Err(retry_after));
            }
        }
        Ok(Ok(Reservation { keys }))
    }

    /// The checked secret was right: clear or give back each key, as its rule says.
    pub async fn succeeded(&self, reservation: Reservation) -> Result<(), ServiceError> {
        for key in reservation.keys {
            match key.on_success() {
                OnSuccess::Clear => self.counters.clear(&key.key()).await?,
                OnSuccess::GiveBack => self.counters.give_back(&key.key()).await?,
            }
        }
        Ok(())
    }

    /// The attempt was never checked (the server was too busy): every key gets its
    /// attempt back, as if it had not been made.
    pub async fn give_back(&self, reservation: Reservation) -> Result<(), ServiceError> {
        for key in reservation.keys {
            self.counters.give_back(&key.key()).await?;
        }
        Ok(())
    }

    /// Settles a success that was never reserved, for secrets too long to guess (client
    /// secrets: [`Throttle::check`] first, then the comparison, and only a failure is
    /// reserved with [`Throttle::reserve`]). Refuses if a key reached its limit meanwhile,
    /// else settles as [`Throttle::succeeded`] would. Concurrent successes never refuse
    /// each other.
    pub async fn admit(&self, keys: Vec<LimitKey>) -> Result<Result<(), Duration>, ServiceError> {
        let keys: Vec<_> = keys
            .iter()
            .map(|key| (key.key(), key.limit(), key.on_success() == OnSuccess::Clear))
            .collect();
        Ok(match self.counters.admit(&keys).await? {
            Some(retry_after) => Err(retry_after),
            None => Ok(()),
        })
    }

    /// Reads the keys without counting: `Err` with the time left if one is at its limit,
    /// else whether any has attempts counted (so a success has something to settle).
    pub async fn check(&self, keys: &[LimitKey]) -> Result<Result<bool, Duration>, ServiceError> {
        let keys: Vec<_> = keys.iter().map(|key| (key.key(), key.limit())).collect();
        Ok(self.counters.peek(&keys).await?)
    }

    /// Forgets a key's attempts (an administrator's reset).
    pub async fn clear(&self, key: &LimitKey) -> Result<(), ServiceError> {
        Ok(self.counters.clear(&key.key()).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::counters::MemoryCounters;
    use crate::domain::ids::UserId;

    #[tokio::test]
    async fn a_denied_key_gives_back_the_keys_reserved_before_it() {
        let throttle = Throttle::new(Arc::new(MemoryCounters::default()));
        let ip = Some("192.0.2.1".parse().unwrap());
        let user = UserId::new("u");
        // Five failures lock the user; the address (limit 50) must not be charged for the
        // attempts that the user key refuses.
        for _ in 0..5 {
            let reserved = throttle
                .reserve(LimitKey::second_factor(&user, ip))
                .await
                .unwrap();
            assert!(reserved.is_ok());
        }
        for _ in 0..20 {
            assert!(
                throttle
                    .reserve(LimitKey::second_factor(&user, ip))
                    .await
                    .unwrap()
                    .is_err()
            );
        }
        let other = UserId::new("v");
        let mut reservations = Vec::new();
        for _ in 0..5 {
            reservations.push(
                throttle
                    .reserve(LimitKey::second_factor(&other, ip))
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        // 5 + 5 attempts on the address so far; a success gives one back and clears "v".
        throttle
            .succeeded(reservations.pop().unwrap())
            .await
            .unwrap();
        assert!(
            throttle
                .reserve(LimitKey::second_factor(&other, ip))
                .await
                .unwrap()
                .is_ok(),
            "a success clears the user's streak"
        );
    }
}
