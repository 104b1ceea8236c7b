//! Bypass codes. Use counting is a conditional update, so the database alone already
//! guarantees that a code is never used more often than allowed.

use chrono::{DateTime, Utc};
use entity::{bypass_code, user_mfa};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};

use super::{Store, StoreError};
use crate::domain::bypass::Purpose;
use crate::domain::bypass::{NewCode, StoredCode};
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
    }
}

/// Codes that are neither revoked, expired nor used up at `now`: the SQL twin of
/// [`crate::domain::bypass::CodeState::status`] being `Active` (a test ties the two).
fn active_at(now: DateTime<Utc>) -> Condition {
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
        let code = bypass_code::ActiveModel {
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
        };
        let txn = self.db.begin().await?;
        user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::UpdatedAt, Expr::value(now))
            .filter(user_mfa::Column::UserId.eq(user_id.as_str()))
            .exec(&txn)
            .await?;
        let active = bypass_code::Entity::find()
            .filter(bypass_code::Column::UserId.eq(user_id.as_str()))
            .filter(active_at(now))
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
            .filter(bypass_code::Column::UserId.eq(user_id.as_str()))
            .filter(active_at(now))
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
            .filter(active_at(now))
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
        let txn = self.db.begin().await?;
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

impl Store {
    /// Revokes every unrevoked code of a user and returns their ids.
    pub async fn revoke_user_codes<C: ConnectionTrait>(
        db: &C,
        user_id: &UserId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = bypass_code::Entity::find()
            .filter(bypass_code::Column::UserId.eq(user_id.as_str()))
            .filter(bypass_code::Column::RevokedAt.is_null())
            .all(db)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
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

    /// `active_at` (SQL) and `CodeState::status` (Rust) must agree on every code, at the
    /// boundaries too: expiring exactly now, used exactly up, revoked with uses left.
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
                for revoked in [false, true] {
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
                    let rust_active = stored.state().status(now) == CodeStatus::Active;
                    let sql_active = bypass_code::Entity::find()
                        .filter(bypass_code::Column::Id.eq(id.as_str()))
                        .filter(active_at(now))
                        .count(&store.db)
                        .await
                        .unwrap()
                        == 1;
                    assert_eq!(
                        sql_active, rust_active,
                        "expires {expires_at:?}, max {max_uses:?}, used {use_count}, revoked {revoked}"
                    );
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 48);
    }
}
