//! Bypass codes. Use counting is a conditional update, so the database alone already
//! guarantees that a code is never used more often than allowed.

use chrono::{DateTime, Utc};
use entity::{bypass_code, user_mfa};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::{Store, StoreError};
use crate::domain::bypass::{Approval, NewCode, Origin, Purpose, StoredCode};
use crate::domain::ids::UserId;
use crate::domain::repo::{BypassCodeRepo, InsertOutcome};

fn stored(row: bypass_code::Model) -> StoredCode {
    StoredCode {
        id: row.id,
        user_id: UserId::new(row.user_id),
        code_hash: row.code_hash,
        origin: row.origin,
        created_by: row.created_by,
        client_id: row.client_id,
        expires_at: row.expires_at,
        max_uses: row.max_uses,
        use_count: row.use_count,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
        revoked_by: row.revoked_by,
        created_at: row.created_at,
        purpose: Purpose::parse(&row.purpose).unwrap_or_default(),
        reason: row.reason,
        starts_at: row.starts_at,
        approval: row.approval.as_deref().and_then(Approval::parse),
        decided_by: row.decided_by,
        decided_at: row.decided_at,
        lifetime_minutes: row.lifetime_minutes,
        send_to: row.send_to,
    }
}

/// Codes that are neither revoked, expired nor used up at `now` (active, scheduled or
/// waiting for approval): the SQL twin of [`crate::domain::bypass::CodeStatus::is_live`]
/// (a test ties the two).
fn live_at(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(bypass_code::Column::RevokedAt.is_null())
        .add(
            Condition::any()
                .add(bypass_code::Column::ExpiresAt.is_null())
                .add(bypass_code::Column::ExpiresAt.gt(now)),
        )
        .add(
            Condition::any()
                .add(bypass_code::Column::MaxUses.is_null())
                .add(
                    Expr::col(bypass_code::Column::UseCount)
                        .lt(Expr::col(bypass_code::Column::MaxUses)),
                ),
        )
}

/// Live codes that work now: started, and not waiting for approval. The SQL twin of the
/// status being `Active`.
fn usable_at(now: DateTime<Utc>) -> Condition {
    live_at(now)
        .add(
            Condition::any()
                .add(bypass_code::Column::StartsAt.is_null())
                .add(bypass_code::Column::StartsAt.lte(now)),
        )
        .add(
            Condition::any()
                .add(bypass_code::Column::Approval.is_null())
                .add(bypass_code::Column::Approval.ne(Approval::Pending.as_str())),
        )
}

/// What `maxActive` counts: the user's live codes, printable sets aside.
fn counted_at(user_id: &str, now: DateTime<Utc>) -> Condition {
    live_at(now)
        .add(bypass_code::Column::UserId.eq(user_id))
        .add(bypass_code::Column::Origin.ne(Origin::SavedSet.as_str()))
}

fn new_row(code: NewCode) -> bypass_code::ActiveModel {
    bypass_code::ActiveModel {
        id: Set(code.id),
        user_id: Set(code.user_id.into_string()),
        code_hash: Set(code.code_hash),
        origin: Set(code.origin.as_str().to_owned()),
        created_by: Set(code.created_by),
        client_id: Set(code.client_id),
        expires_at: Set(code.expires_at),
        max_uses: Set(code.max_uses),
        use_count: Set(0),
        last_used_at: Set(None),
        revoked_at: Set(None),
        revoked_by: Set(None),
        created_at: Set(code.created_at),
        purpose: Set(code.purpose.as_str().to_owned()),
        reason: Set(code.reason),
        starts_at: Set(code.starts_at),
        approval: Set(code.approval.map(|a| a.as_str().to_owned())),
        decided_by: Set(None),
        decided_at: Set(None),
        lifetime_minutes: Set(code.lifetime_minutes),
        send_to: Set(code.send_to),
    }
}

/// Touching the user's MFA row serialises concurrent changes to the user's codes.
async fn lock_user<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    user_mfa::Entity::update_many()
        .col_expr(user_mfa::Column::UpdatedAt, Expr::value(now))
        .filter(user_mfa::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

impl BypassCodeRepo for Store {
    type Error = StoreError;

    /// Inserts a code unless the user already has `max_active` active ones. Touching the
    /// user's MFA row first serialises concurrent creations for the same user.
    async fn insert_code(
        &self,
        code: NewCode,
        max_active: u64,
        now: DateTime<Utc>,
    ) -> Result<InsertOutcome, StoreError> {
        let user_id = code.user_id.as_str().to_owned();
        let code = new_row(code);
        let txn = self.write().await?;
        lock_user(&txn, &user_id, now).await?;
        let active = bypass_code::Entity::find()
            .filter(counted_at(&user_id, now))
            .count(&txn)
            .await?;
        if active >= max_active {
            return Ok(InsertOutcome::TooManyActive);
        }
        let inserted = match code.insert(&txn).await.map_err(StoreError::classify) {
            Ok(row) => row,
            Err(StoreError::Duplicate) => return Ok(InsertOutcome::Collision),
            Err(other) => return Err(other),
        };
        txn.commit().await?;
        Ok(InsertOutcome::Inserted(Box::new(stored(inserted))))
    }

    async fn count_active_codes(
        &self,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(bypass_code::Entity::find()
            .filter(counted_at(user_id.as_str(), now))
            .count(&self.db)
            .await?)
    }

    async fn list_codes(&self, user_id: &UserId) -> Result<Vec<StoredCode>, StoreError> {
        Ok(bypass_code::Entity::find()
            .filter(bypass_code::Column::UserId.eq(user_id.as_str()))
            .order_by_desc(bypass_code::Column::CreatedAt)
            .order_by_asc(bypass_code::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(stored)
            .collect())
    }

    async fn find_code(
        &self,
        user_id: &UserId,
        code_id: &str,
    ) -> Result<Option<StoredCode>, StoreError> {
        Ok(bypass_code::Entity::find_by_id(code_id)
            .filter(bypass_code::Column::UserId.eq(user_id.as_str()))
            .one(&self.db)
            .await?
            .map(stored))
    }

    /// The user's code with this hash: an index hit on (user_id, code_hash).
    async fn find_code_by_hash(
        &self,
        user_id: &UserId,
        hash: &[u8],
    ) -> Result<Option<StoredCode>, StoreError> {
        Ok(bypass_code::Entity::find()
            .filter(bypass_code::Column::UserId.eq(user_id.as_str()))
            .filter(bypass_code::Column::CodeHash.eq(hash.to_vec()))
            .one(&self.db)
            .await?
            .map(stored))
    }

    /// Records one use if the code is still active at `now`; false if it no longer is.
    async fn consume_code(&self, code_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = bypass_code::Entity::update_many()
            .col_expr(
                bypass_code::Column::UseCount,
                Expr::col(bypass_code::Column::UseCount).add(1),
            )
            .col_expr(bypass_code::Column::LastUsedAt, Expr::value(now))
            .filter(bypass_code::Column::Id.eq(code_id))
            .filter(usable_at(now))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Revokes one code and ends the sign-ins that used it; false if it was already revoked
    /// (its sign-ins are ended again all the same: a grant issued meanwhile dies too).
    async fn revoke_code(
        &self,
        code_id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.write().await?;
        let result = bypass_code::Entity::update_many()
            .col_expr(bypass_code::Column::RevokedAt, Expr::value(now))
            .col_expr(bypass_code::Column::RevokedBy, Expr::value(by))
            .filter(bypass_code::Column::Id.eq(code_id))
            .filter(bypass_code::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        Store::revoke_code_grants(&txn, code_id, now).await?;
        txn.commit().await?;
        Ok(result.rows_affected == 1)
    }
}

/// How an approval's write went.
#[derive(Debug)]
pub enum ApproveOutcome {
    Approved(Box<StoredCode>),
    /// The request was decided, or lapsed, meanwhile.
    NotPending,
    /// Another of the user's codes has the same hash: generate again.
    Collision,
}

impl Store {
    /// Makes an open request a code: its hash and expiry, approved by `by`. A
    /// compare-and-swap on the request still being open, so two approvals make one code.
    pub async fn approve_code(
        &self,
        code_id: &str,
        hash: Vec<u8>,
        expires_at: Option<DateTime<Utc>>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ApproveOutcome, StoreError> {
        let result = bypass_code::Entity::update_many()
            .col_expr(bypass_code::Column::CodeHash, Expr::value(hash))
            .col_expr(bypass_code::Column::ExpiresAt, Expr::value(expires_at))
            .col_expr(
                bypass_code::Column::Approval,
                Expr::value(Approval::Approved.as_str()),
            )
            .col_expr(bypass_code::Column::DecidedBy, Expr::value(by))
            .col_expr(bypass_code::Column::DecidedAt, Expr::value(now))
            .filter(bypass_code::Column::Id.eq(code_id))
            .filter(bypass_code::Column::Approval.eq(Approval::Pending.as_str()))
            .filter(live_at(now))
            .exec(&self.db)
            .await
            .map_err(StoreError::classify);
        match result {
            Ok(r) if r.rows_affected == 1 => {}
            Ok(_) => return Ok(ApproveOutcome::NotPending),
            Err(StoreError::Duplicate) => return Ok(ApproveOutcome::Collision),
            Err(other) => return Err(other),
        }
        let row = bypass_code::Entity::find_by_id(code_id)
            .one(&self.db)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(ApproveOutcome::Approved(Box::new(stored(row))))
    }

    /// Closes an open request as rejected or withdrawn (it is kept, revoked, for audit);
    /// false if it was no longer open.
    pub async fn close_request(
        &self,
        code_id: &str,
        outcome: Approval,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = bypass_code::Entity::update_many()
            .col_expr(bypass_code::Column::Approval, Expr::value(outcome.as_str()))
            .col_expr(bypass_code::Column::DecidedBy, Expr::value(by))
            .col_expr(bypass_code::Column::DecidedAt, Expr::value(now))
            .col_expr(bypass_code::Column::RevokedAt, Expr::value(now))
            .col_expr(bypass_code::Column::RevokedBy, Expr::value(by))
            .filter(bypass_code::Column::Id.eq(code_id))
            .filter(bypass_code::Column::Approval.eq(Approval::Pending.as_str()))
            .filter(live_at(now))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Open requests of every user, oldest first (the approvals page).
    pub async fn open_requests(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<StoredCode>, StoreError> {
        Ok(bypass_code::Entity::find()
            .filter(bypass_code::Column::Approval.eq(Approval::Pending.as_str()))
            .filter(live_at(now))
            .order_by_asc(bypass_code::Column::CreatedAt)
            .order_by_asc(bypass_code::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(stored)
            .collect())
    }

    /// Replaces the user's printable set with `codes` in one transaction: every code of
    /// the old set still unrevoked is revoked, and the sign-ins made with them end. `None` when a hash collides with another of
    /// the user's codes (generate the set again).
    pub async fn replace_saved_set(
        &self,
        user_id: &UserId,
        codes: Vec<NewCode>,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<StoredCode>>, StoreError> {
        let txn = self.write().await?;
        lock_user(&txn, user_id.as_str(), now).await?;
        let by = format!("user:{}", user_id.as_str());
        let old = Store::revoke_user_codes(&txn, user_id, Some(Origin::SavedSet), &by, now).await?;
        // A sign-in made with a code of the old set ends with it, as with any revocation.
        for id in &old {
            Store::revoke_code_grants(&txn, id, now).await?;
        }
        let mut rows = Vec::with_capacity(codes.len());
        for code in codes {
            match new_row(code)
                .insert(&txn)
                .await
                .map_err(StoreError::classify)
            {
                Ok(row) => rows.push(stored(row)),
                Err(StoreError::Duplicate) => return Ok(None),
                Err(other) => return Err(other),
            }
        }
        txn.commit().await?;
        Ok(Some(rows))
    }

    /// How many codes of the user's printable set still work.
    pub async fn saved_codes_left(
        &self,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(bypass_code::Entity::find()
            .filter(bypass_code::Column::UserId.eq(user_id.as_str()))
            .filter(bypass_code::Column::Origin.eq(Origin::SavedSet.as_str()))
            .filter(usable_at(now))
            .count(&self.db)
            .await?)
    }

    /// Revokes every unrevoked code of a user (of one origin only, if given) and returns
    /// their ids.
    pub async fn revoke_user_codes<C: ConnectionTrait>(
        db: &C,
        user_id: &UserId,
        origin: Option<Origin>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut find = bypass_code::Entity::find()
            .filter(bypass_code::Column::UserId.eq(user_id.as_str()))
            .filter(bypass_code::Column::RevokedAt.is_null());
        if let Some(origin) = origin {
            find = find.filter(bypass_code::Column::Origin.eq(origin.as_str()));
        }
        let ids: Vec<String> = find.all(db).await?.into_iter().map(|c| c.id).collect();
        if !ids.is_empty() {
            bypass_code::Entity::update_many()
                .col_expr(bypass_code::Column::RevokedAt, Expr::value(now))
                .col_expr(bypass_code::Column::RevokedBy, Expr::value(by))
                .filter(bypass_code::Column::Id.is_in(ids.clone()))
                .filter(bypass_code::Column::RevokedAt.is_null())
                .exec(db)
                .await?;
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use sea_orm::{PaginatorTrait, QueryFilter};

    use super::*;
    use crate::domain::bypass::{CodeStatus, Origin};
    use crate::domain::repo::UserRepo;
    use crate::domain::scim::user::parse_user;

    /// The store under test: PostgreSQL when `DATABASE_URL` names one, else SQLite in memory.
    async fn store() -> Store {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
            .unwrap_or_else(|| "sqlite::memory:".into());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// `live_at` and `usable_at` (SQL) and `CodeState::status` (Rust) must agree on every
    /// code, at the boundaries too: expiring exactly now, used exactly up, revoked with uses
    /// left, scheduled, waiting for approval.
    #[tokio::test]
    async fn the_sql_active_condition_agrees_with_the_rust_status() {
        let store = store().await;
        let name = format!("active-{}", uuid::Uuid::new_v4());
        let body =
            serde_json::json!({"schemas": [crate::domain::scim::USER_SCHEMA], "userName": name});
        let user = store
            .create_user(&parse_user(&body).unwrap().attributes, None)
            .await
            .unwrap();
        let now = Utc::now();
        let expiries = [
            None,
            Some(now - Duration::minutes(1)),
            Some(now),
            Some(now + Duration::minutes(1)),
        ];
        let limits = [
            (None, 0),
            (None, 5),
            (Some(1), 0),
            (Some(1), 1),
            (Some(2), 1),
            (Some(2), 3),
        ];
        let mut cases = 0;
        for expires_at in expiries {
            for (max_uses, use_count) in limits {
                for (revoked, starts, pending) in [
                    (false, false, false),
                    (true, false, false),
                    (false, true, false),
                    (false, false, true),
                ] {
                    let id = uuid::Uuid::new_v4().to_string();
                    let code = NewCode {
                        id: id.clone(),
                        user_id: user.id.clone(),
                        code_hash: id.as_bytes().to_vec(),
                        origin: Origin::HelpDesk,
                        created_by: "system".into(),
                        client_id: None,
                        expires_at,
                        max_uses,
                        created_at: now - Duration::hours(1),
                        purpose: Purpose::SignIn,
                        reason: None,
                        starts_at: starts.then_some(now + Duration::minutes(1)),
                        approval: pending.then_some(Approval::Pending),
                        lifetime_minutes: None,
                        send_to: None,
                    };
                    // Inserted while nothing is active yet at an early "now", so the cap never bites.
                    let early = now - Duration::days(365);
                    assert!(matches!(
                        store.insert_code(code, u64::MAX, early).await.unwrap(),
                        InsertOutcome::Inserted(_)
                    ));
                    let mut update = bypass_code::Entity::update_many()
                        .col_expr(bypass_code::Column::UseCount, Expr::value(use_count))
                        .filter(bypass_code::Column::Id.eq(id.as_str()));
                    if revoked {
                        update = update.col_expr(bypass_code::Column::RevokedAt, Expr::value(now));
                    }
                    update.exec(&store.db).await.unwrap();
                    let stored = store.find_code(&user.id, &id).await.unwrap().unwrap();
                    let status = stored.state().status(now);
                    for (condition, rust) in [
                        (live_at(now), status.is_live()),
                        (usable_at(now), status == CodeStatus::Active),
                    ] {
                        let sql = bypass_code::Entity::find()
                            .filter(bypass_code::Column::Id.eq(id.as_str()))
                            .filter(condition)
                            .count(&store.db)
                            .await
                            .unwrap()
                            == 1;
                        assert_eq!(
                            sql, rust,
                            "expires {expires_at:?}, max {max_uses:?}, used {use_count}, revoked {revoked}, starts {starts}, pending {pending}: {status:?}"
                        );
                    }
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 96);
    }
}
