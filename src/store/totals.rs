//! Totals of user searches kept while the users are unchanged, so that paging through a
//! filter most users match (`totalResults` on every page) counts its matches once, not once
//! per page.
//!
//! Every write of a user adds one to `user_changes` in its own transaction, and the sum of
//! that table only grows. A total is counted in the same statement (the same snapshot) as
//! the sum, and kept under it; it is given again only while the sum read then is still the
//! same, that is while no write of any user has committed since, from this instance or any
//! other sharing the database, or from the command line. So a kept total is exact.

use std::collections::HashMap;
use std::sync::Mutex;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::StoreError;

/// How many filters' totals are kept at once (past it the set is dropped whole), and the
/// longest statement kept (a longer filter is counted each time): at most about 4 MiB.
const MAX_KEPT: usize = 1024;
const MAX_KEY_BYTES: usize = 4096;
/// The rows of `user_changes` (the migration's `STRIPES`).
const STRIPES: u64 = 16;

/// The sum of `user_changes`, as one column.
const CHANGES: &str = "(SELECT CAST(sum(n) AS BIGINT) FROM user_changes)";

#[derive(Default)]
pub struct Totals {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    changes: i64,
    totals: HashMap<String, u64>,
}

impl Totals {
    /// The number of rows `count` (a `SELECT COUNT(*) …`) finds, from memory while no user has
    /// changed since it was counted.
    pub async fn count(
        &self,
        db: &DatabaseConnection,
        count: Statement,
    ) -> Result<u64, StoreError> {
        let key = format!("{}\u{0}{:?}", count.sql, count.values);
        let backend = db.get_database_backend();
        let changes = Self::changes(db, backend).await?;
        if let Some(total) = self.kept(changes, &key) {
            return Ok(total);
        }
        let row = db
            .query_one_raw(Statement {
                sql: format!("SELECT {CHANGES}, ({})", count.sql),
                ..count
            })
            .await?
            .ok_or(StoreError::Corrupt("a count without a row"))?;
        let changes: i64 = row.try_get_by_index(0)?;
        let total: i64 = row.try_get_by_index(1)?;
        let total = u64::try_from(total).unwrap_or(0);
        self.keep(changes, key, total);
        Ok(total)
    }

    fn kept(&self, changes: i64, key: &str) -> Option<u64> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        (kept.changes == changes)
            .then(|| kept.totals.get(key).copied())
            .flatten()
    }

    fn keep(&self, changes: i64, key: String, total: u64) {
        if key.len() > MAX_KEY_BYTES {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        // Totals of an older state are of no use any more; a total counted before one just
        // kept (an older snapshot) is not kept.
        if changes > kept.changes || kept.totals.len() >= MAX_KEPT {
            kept.totals.clear();
            kept.changes = changes.max(kept.changes);
        }
        if changes == kept.changes {
            kept.totals.insert(key, total);
        }
    }

    async fn changes(db: &DatabaseConnection, backend: DbBackend) -> Result<i64, StoreError> {
        let row = db
            .query_one_raw(Statement::from_string(backend, format!("SELECT {CHANGES}")))
            .await?
            .ok_or(StoreError::Corrupt("a sum without a row"))?;
        Ok(row.try_get_by_index::<Option<i64>>(0)?.unwrap_or(0))
    }
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
    fn a_total_is_given_only_under_the_changes_it_was_counted_at() {
        let totals = Totals::default();
        totals.keep(5, "a".into(), 10);
        assert_eq!(totals.kept(5, "a"), Some(10));
        assert_eq!(totals.kept(6, "a"), None, "a user changed since");
        assert_eq!(totals.kept(5, "b"), None);
        // A total of a newer state drops the older ones; one of an older state is not kept.
        totals.keep(7, "b".into(), 3);
        assert_eq!(totals.kept(7, "b"), Some(3));
        assert_eq!(totals.kept(5, "a"), None);
        totals.keep(6, "c".into(), 1);
        assert_eq!(totals.kept(6, "c"), None);
        assert_eq!(totals.kept(7, "c"), None);
    }

    #[test]
    fn what_is_kept_stays_bounded() {
        let totals = Totals::default();
        totals.keep(1, "x".repeat(MAX_KEY_BYTES + 1), 1);
        assert_eq!(totals.kept(1, &"x".repeat(MAX_KEY_BYTES + 1)), None);
        for i in 0..MAX_KEPT + 10 {
            totals.keep(1, format!("k{i}"), i as u64);
        }
        let kept = totals.kept.lock().unwrap();
        assert!(kept.totals.len() <= MAX_KEPT);
    }
}
