//! Totals of user searches kept while the users are unchanged, so that paging through a
//! filter most users match (`totalResults` on every page) counts its matches once, not once
//! per page.
//!
//! Every write of a user adds one to `user_changes` in its own transaction, and the sum of
//! that table only grows. A total is counted in the same statement (the same snapshot) as
//! the sum, and kept under it; it is given again only while the sum read then is still the
//! same, that is while no write of any user has committed since, from this instance or any
//! other sharing the database, or from the command line. So a kept total is exact. (A
//! total is also given for at most a minute, for writers that do not add to the table.)

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use super::StoreError;

/// How many filters' totals are kept at once (past it the set is dropped whole), and the
/// longest statement kept (a longer filter is counted each time): at most about 4 MiB.
const MAX_KEPT: usize = 1024;
const MAX_KEY_BYTES: usize = 4096;
/// The rows of `user_changes` (the migration's `STRIPES`).
const STRIPES: u64 = 16;

/// The sum of `user_changes`, as one column (also read with a page of users, so that the page
/// shows which state of the users it is of).
pub(super) const CHANGES: &str = "(SELECT CAST(sum(n) AS BIGINT) FROM user_changes)";

/// How long a kept total is given at most: a backstop for writes that do not add to
/// `user_changes` (an instance of an older version during a rolling upgrade, SQL by hand),
/// which then show within this time.
const MAX_AGE: Duration = Duration::from_secs(60);

/// How long a rough count ([`Totals::rough_count`]) is used before it is counted again.
const ROUGH_AGE: Duration = Duration::from_secs(10);

/// A total and the sum of `user_changes` it was counted at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    pub total: u64,
    /// `None` where the table was emptied by hand (nothing is kept then).
    pub changes: Option<i64>,
}

/// A user's position in a search's page order ([`Totals::position_at_or_before`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptPosition {
    pub at: u64,
    pub user: String,
    pub since: Instant,
}

#[derive(Default)]
pub struct Totals {
    kept: Mutex<Kept>,
    /// The last rough count: its statement's key, the total and when it was counted.
    rough: Mutex<Option<(String, u64, Instant)>>,
}

/// The totals counted at one sum of `user_changes`, and when; and where users stood in the
/// page orders read at that sum ([`Totals::keep_positions`]).
#[derive(Default)]
struct Kept {
    changes: Option<i64>,
    totals: HashMap<String, (u64, Instant)>,
    positions: HashMap<String, BTreeMap<u64, (String, Instant)>>,
}

/// How many searches' positions are kept, and how many positions per search (past either,
/// what is kept is dropped): at most about 3 MiB.
const MAX_ORDERS: usize = 256;
const MAX_POSITIONS: usize = 64;

impl Totals {
    /// The number of rows `count` (a `SELECT COUNT(*) …`) finds, from memory while no user has
    /// changed since it was counted.
    pub async fn count(
        &self,
        db: &DatabaseConnection,
        count: Statement,
    ) -> Result<u64, StoreError> {
        let key = key(&count);
        let changes = Self::changes(db).await?;
        if let Some(total) = changes.and_then(|c| self.kept(c, &key, Instant::now())) {
            return Ok(total);
        }
        Ok(self.count_now(db, count).await?.total)
    }

    /// What `count` found when last counted, under the latest sum of `user_changes` this
    /// instance has seen, without a statement: current only where a statement shows that sum
    /// still (a page read with [`CHANGES`], or [`Totals::changes`]).
    pub fn recall(&self, count: &Statement) -> Option<Counted> {
        let key = key(count);
        let changes = self
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .changes?;
        self.kept(changes, &key, Instant::now())
            .map(|total| Counted {
                total,
                changes: Some(changes),
            })
    }

    /// Counts now, with the sum of `user_changes` in the same statement (the same snapshot),
    /// and keeps the total under that sum.
    pub async fn count_now<C: ConnectionTrait>(
        &self,
        db: &C,
        count: Statement,
    ) -> Result<Counted, StoreError> {
        let key = key(&count);
        let row = db
            .query_one_raw(Statement {
                sql: format!("SELECT {CHANGES}, ({})", count.sql),
                ..count
            })
            .await?
            .ok_or(StoreError::Corrupt("a count without a row"))?;
        let changes: Option<i64> = row.try_get_by_index(0)?;
        let total: i64 = row.try_get_by_index(1)?;
        let total = u64::try_from(total).unwrap_or(0);
        // No sum (the table emptied by hand): counted each time.
        if let Some(changes) = changes {
            self.keep(changes, key, total, Instant::now());
        }
        Ok(Counted { total, changes })
    }

    /// A count for choosing how to read a page, never shown: up to [`ROUGH_AGE`] old, so it
    /// may miss the latest writes, and it costs no statement while it is that young (one
    /// statement is kept, the users' count is the one asked for).
    pub async fn rough_count(
        &self,
        db: &DatabaseConnection,
        count: Statement,
    ) -> Result<u64, StoreError> {
        let key = key(&count);
        let now = Instant::now();
        if let Some((kept, total, at)) = &*self.rough.lock().unwrap_or_else(|e| e.into_inner())
            && *kept == key
            && now.saturating_duration_since(*at) < ROUGH_AGE
        {
            return Ok(*total);
        }
        let total = self.count(db, count).await?;
        *self.rough.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, total, now));
        Ok(total)
    }

    fn kept(&self, changes: i64, key: &str, now: Instant) -> Option<u64> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.changes != Some(changes) {
            return None;
        }
        kept.totals
            .get(key)
            .filter(|(_, at)| now.saturating_duration_since(*at) < MAX_AGE)
            .map(|(total, _)| *total)
    }

    fn keep(&self, changes: i64, key: String, total: u64, now: Instant) {
        if key.len() > MAX_KEY_BYTES {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        // Totals of another sum are of no use: a newer one means users changed; an older one
        // is a slower reader's (its total is kept, the newer ones are counted again) or a
        // database that went back (restored, failed over), whose old totals must not count.
        if kept.changes != Some(changes) {
            kept.positions.clear();
        }
        if kept.changes != Some(changes) || kept.totals.len() >= MAX_KEPT {
            kept.totals.clear();
            kept.changes = Some(changes);
        }
        kept.totals.insert(key, (total, now));
    }

    /// Keeps where users stood in a search's page order (`key`: its count statement's key and
    /// the order, [`Totals::order_key`]), read at the sum `changes`: the user at each
    /// position, from 0. Kept only while that is the sum totals are kept under, and dropped
    /// with them; so a position is given only while no user has changed since.
    pub fn keep_positions(
        &self,
        changes: i64,
        key: String,
        since: Instant,
        at: impl IntoIterator<Item = (u64, String)>,
    ) {
        if key.len() > MAX_KEY_BYTES {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.changes != Some(changes) {
            return;
        }
        if kept.positions.len() >= MAX_ORDERS && !kept.positions.contains_key(&key) {
            kept.positions.clear();
        }
        let positions = kept.positions.entry(key).or_default();
        for (position, user) in at {
            if positions.len() >= MAX_POSITIONS {
                positions.clear();
            }
            positions.insert(position, (user, since));
        }
    }

    /// The kept position nearest at or before `position` in a search's page order, if the
    /// users are still at the sum `changes`: the user there, and when the position (or the
    /// one it was read on from) was read by skipping. At most as old as a total may be
    /// (writers that do not add to `user_changes`), so pages read on from pages read on do
    /// not keep a position alive past that.
    pub fn position_at_or_before(
        &self,
        changes: i64,
        key: &str,
        position: u64,
    ) -> Option<KeptPosition> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.changes != Some(changes) {
            return None;
        }
        let (at, (user, since)) = kept.positions.get(key)?.range(..=position).next_back()?;
        (Instant::now().saturating_duration_since(*since) < MAX_AGE).then(|| KeptPosition {
            at: *at,
            user: user.clone(),
            since: *since,
        })
    }

    /// What positions in a search's page order are kept under: its count statement and the
    /// order.
    pub fn order_key(count: &Statement, order: impl std::fmt::Debug) -> String {
        format!("{}\u{0}{order:?}", key(count))
    }

    /// The sum of `user_changes` now (`None`: the table emptied by hand).
    pub async fn changes(db: &DatabaseConnection) -> Result<Option<i64>, StoreError> {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT {CHANGES}"),
            ))
            .await?
            .ok_or(StoreError::Corrupt("a sum without a row"))?;
        Ok(row.try_get_by_index::<Option<i64>>(0)?)
    }
}

/// What a count is kept under: its statement and values.
fn key(count: &Statement) -> String {
    format!("{}\u{0}{:?}", count.sql, count.values)
}

/// Adds one to the changes of the users, inside the transaction that writes `user_id`.
pub async fn changed<C: ConnectionTrait>(db: &C, user_id: &str) -> Result<(), StoreError> {
    let stripe = user_id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % STRIPES;
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        format!("UPDATE user_changes SET n = n + 1 WHERE stripe = {stripe}"),
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_is_given_only_under_the_sum_it_was_counted_at_and_not_for_long() {
        let totals = Totals::default();
        let t0 = Instant::now();
        totals.keep(5, "a".into(), 10, t0);
        assert_eq!(totals.kept(5, "a", t0), Some(10));
        assert_eq!(totals.kept(6, "a", t0), None, "a user changed since");
        assert_eq!(totals.kept(5, "b", t0), None);
        assert_eq!(totals.kept(5, "a", t0 + MAX_AGE), None, "too old");
        // Another sum drops what was kept: newer, or older (a database restored).
        totals.keep(7, "b".into(), 3, t0);
        assert_eq!(totals.kept(7, "b", t0), Some(3));
        assert_eq!(totals.kept(5, "a", t0), None);
        totals.keep(6, "c".into(), 1, t0);
        assert_eq!(totals.kept(6, "c", t0), Some(1));
        assert_eq!(totals.kept(7, "b", t0), None);
    }

    #[test]
    fn a_position_is_given_only_under_the_sum_it_was_read_at() {
        let totals = Totals::default();
        let now = Instant::now();
        totals.keep(5, "count".into(), 100, now);
        let at = |position: u64, user: &str| (position, user.to_owned());
        let given = |position: u64, user: &str| {
            Some(KeptPosition {
                at: position,
                user: user.to_owned(),
                since: now,
            })
        };
        totals.keep_positions(5, "order".into(), now, [at(10, "a"), at(19, "b")]);
        assert_eq!(totals.position_at_or_before(5, "order", 9), None);
        assert_eq!(totals.position_at_or_before(5, "order", 10), given(10, "a"));
        assert_eq!(totals.position_at_or_before(5, "order", 18), given(10, "a"));
        assert_eq!(totals.position_at_or_before(5, "order", 50), given(19, "b"));
        assert_eq!(totals.position_at_or_before(5, "other", 50), None);
        assert_eq!(
            totals.position_at_or_before(6, "order", 50),
            None,
            "users changed"
        );
        // Positions read at another sum than totals are kept under are not kept.
        totals.keep_positions(4, "order".into(), now, [at(30, "c")]);
        assert_eq!(totals.position_at_or_before(5, "order", 50), given(19, "b"));
        // A position read on from one first read too long ago is not given, however it
        // was kept since.
        if let Some(old) = now.checked_sub(MAX_AGE) {
            totals.keep_positions(5, "order".into(), old, [at(40, "d")]);
            assert_eq!(totals.position_at_or_before(5, "order", 45), None);
        }
        // A total of a newer sum drops them.
        totals.keep(6, "count".into(), 101, now);
        assert_eq!(totals.position_at_or_before(6, "order", 50), None);
    }

    #[test]
    fn what_is_kept_stays_bounded() {
        let totals = Totals::default();
        let now = Instant::now();
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        totals.keep(1, long.clone(), 1, now);
        assert_eq!(totals.kept(1, &long, now), None);
        for i in 0..MAX_KEPT + 10 {
            totals.keep(1, format!("k{i}"), i as u64, now);
        }
        for i in 0..(MAX_ORDERS + 10) as u64 {
            let order = format!("o{i}");
            let at = (0..MAX_POSITIONS as u64 + 10).map(|p| (p, "u".into()));
            totals.keep_positions(1, order, now, at);
        }
        let kept = totals.kept.lock().unwrap();
        assert!(kept.totals.len() <= MAX_KEPT);
        assert!(kept.positions.len() <= MAX_ORDERS);
        assert!(kept.positions.values().all(|p| p.len() <= MAX_POSITIONS));
    }
}
