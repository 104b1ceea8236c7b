//! 2-step verification state per user.

use chrono::{DateTime, Utc};
use entity::{bypass_code, user_mfa};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter, Set,
};

use super::{Store, StoreError};
use crate::domain::ids::UserId;
use crate::domain::repo::MfaRepo;
use crate::domain::totp::MfaRecord;

pub(super) fn record(row: user_mfa::Model) -> MfaRecord {
    MfaRecord {
        totp_secret: row.totp_secret,
        totp_confirmed: row.totp_confirmed,
        bypass_salt: row.bypass_salt,
        consecutive_failures: row.consecutive_failures,
        totp_confirmed_at: row.totp_confirmed_at,
        mfa_reset_at: row.mfa_reset_at,
        replacement_secret: row.replacement_secret,
        replacement_started_at: row.replacement_started_at,
    }
}

impl MfaRepo for Store {
    type Error = StoreError;

    /// Resets a user's 2-step verification: the TOTP factor goes, every code is revoked and
    /// every sign-in ends, in one transaction.
    async fn reset_mfa(
        &self,
        user_id: &UserId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let txn = self.write().await?;
        Store::clear_totp(&txn, user_id).await?;
        user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::MfaResetAt, Expr::value(now))
            .filter(user_mfa::Column::UserId.eq(user_id.as_str()))
            .exec(&txn)
            .await?;
        let revoked = Store::revoke_user_codes(&txn, user_id, None, by, now).await?;
        Store::revoke_user_grants(&txn, user_id, now).await?;
        txn.commit().await?;
        Ok(revoked)
    }

    async fn get_mfa(&self, user_id: &UserId) -> Result<Option<MfaRecord>, StoreError> {
        Ok(user_mfa::Entity::find_by_id(user_id.as_str())
            .one(&self.db)
            .await?
            .map(record))
    }

    /// The user's MFA row, created with `salt` if it does not exist yet.
    async fn ensure_mfa(&self, user_id: &UserId, salt: Vec<u8>) -> Result<MfaRecord, StoreError> {
        if let Some(row) = self.get_mfa(user_id).await? {
            return Ok(row);
        }
        let inserted = user_mfa::ActiveModel {
            user_id: Set(user_id.as_str().to_owned()),
            totp_secret: Set(None),
            totp_confirmed: Set(false),
            totp_last_step: Set(None),
            bypass_salt: Set(salt),
            consecutive_failures: Set(0),
            updated_at: Set(Utc::now()),
            totp_confirmed_at: Set(None),
            mfa_reset_at: Set(None),
            replacement_secret: Set(None),
            replacement_started_at: Set(None),
        }
        .insert(&self.db)
        .await;
        match inserted.map_err(StoreError::classify) {
            Ok(row) => Ok(record(row)),
            // A concurrent request created it first; use theirs.
            Err(StoreError::Duplicate) => self.get_mfa(user_id).await?.ok_or(StoreError::NotFound),
            Err(other) => Err(other),
        }
    }

    /// Stores a new, unconfirmed TOTP secret (sealed), replacing any unconfirmed one, in one
    /// statement: the row is inserted (with `salt`) or, if it exists without a confirmed
    /// factor, updated. Returns false if a confirmed factor exists.
    async fn set_pending_totp(
        &self,
        user_id: &UserId,
        sealed_secret: String,
        salt: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let row = user_mfa::ActiveModel {
            user_id: Set(user_id.as_str().to_owned()),
            totp_secret: Set(Some(sealed_secret)),
            totp_confirmed: Set(false),
            totp_last_step: Set(None),
            bypass_salt: Set(salt),
            consecutive_failures: Set(0),
            updated_at: Set(now),
            totp_confirmed_at: Set(None),
            mfa_reset_at: Set(None),
            replacement_secret: Set(None),
            replacement_started_at: Set(None),
        };
        let stored = user_mfa::Entity::insert(row)
            .on_conflict(
                OnConflict::column(user_mfa::Column::UserId)
                    .update_columns([
                        user_mfa::Column::TotpSecret,
                        user_mfa::Column::TotpLastStep,
                        user_mfa::Column::UpdatedAt,
                    ])
                    .action_and_where(
                        Expr::col((user_mfa::Entity, user_mfa::Column::TotpConfirmed)).eq(false),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(stored == 1)
    }

    /// Accepts a TOTP time step: confirming a pending factor, or using a confirmed one. The
    /// step must be later than any accepted before, so a code is never accepted twice, even
    /// by two instances at once.
    async fn accept_totp_step(
        &self,
        user_id: &UserId,
        sealed_secret: &str,
        step: i64,
        confirming: bool,
    ) -> Result<bool, StoreError> {
        let mut update = user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::TotpConfirmed, Expr::value(true))
            .col_expr(user_mfa::Column::TotpLastStep, Expr::value(step))
            .col_expr(user_mfa::Column::UpdatedAt, Expr::value(Utc::now()));
        if confirming {
            update = update.col_expr(user_mfa::Column::TotpConfirmedAt, Expr::value(Utc::now()));
        }
        let result = update
            .filter(user_mfa::Column::UserId.eq(user_id.as_str()))
            // The secret the code was checked against, not one set up meanwhile elsewhere.
            .filter(user_mfa::Column::TotpSecret.eq(sealed_secret))
            .filter(user_mfa::Column::TotpConfirmed.eq(!confirming))
            .filter(
                user_mfa::Column::TotpLastStep
                    .is_null()
                    .or(user_mfa::Column::TotpLastStep.lt(step)),
            )
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Counts an attempt into the user's failure streak before it is checked, unless the
    /// streak has reached `cap`; false then. A success resets the streak.
    async fn reserve_mfa_attempt(&self, user_id: &UserId, cap: i32) -> Result<bool, StoreError> {
        let result = user_mfa::Entity::update_many()
            .col_expr(
                user_mfa::Column::ConsecutiveFailures,
                Expr::col(user_mfa::Column::ConsecutiveFailures).add(1),
            )
            .filter(user_mfa::Column::UserId.eq(user_id.as_str()))
            .filter(user_mfa::Column::ConsecutiveFailures.lt(cap))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    async fn release_mfa_attempt(&self, user_id: &UserId) -> Result<(), StoreError> {
        user_mfa::Entity::update_many()
            .col_expr(
                user_mfa::Column::ConsecutiveFailures,
                Expr::col(user_mfa::Column::ConsecutiveFailures).sub(1),
            )
            .filter(user_mfa::Column::UserId.eq(user_id.as_str()))
            .filter(user_mfa::Column::ConsecutiveFailures.gt(0))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn reset_mfa_failures(&self, user_id: &UserId) -> Result<(), StoreError> {
        user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::ConsecutiveFailures, Expr::value(0))
            .filter(user_mfa::Column::UserId.eq(user_id.as_str()))
            .filter(user_mfa::Column::ConsecutiveFailures.ne(0))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// What allows a replacement and what it keeps: the bypass code of the sign-in that asks
/// (checked not revoked inside the swap), and the session that stays signed in.
#[derive(Clone, Copy, Debug, Default)]
pub struct Replacing<'a> {
    pub code_id: Option<&'a str>,
    pub kept_session: Option<&'a str>,
}

impl Store {
    /// Removes the TOTP factor and clears the failure streak.
    pub async fn clear_totp<C: ConnectionTrait>(
        db: &C,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        user_mfa::Entity::update_many()
            .col_expr(
                user_mfa::Column::TotpSecret,
                Expr::value(Option::<String>::None),
            )
            .col_expr(user_mfa::Column::TotpConfirmed, Expr::value(false))
            .col_expr(
                user_mfa::Column::TotpLastStep,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(user_mfa::Column::ConsecutiveFailures, Expr::value(0))
            .col_expr(
                user_mfa::Column::ReplacementSecret,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                user_mfa::Column::ReplacementStartedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(user_mfa::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(user_mfa::Column::UserId.eq(user_id.as_str()))
            .exec(db)
            .await?;
        Ok(())
    }

    /// Stores a new authenticator (sealed) beside the confirmed one, replacing any other
    /// being set up. Returns false when there is no confirmed authenticator to replace.
    pub async fn begin_replacement(
        &self,
        user_id: &UserId,
        sealed_secret: String,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = user_mfa::Entity::update_many()
            .col_expr(
                user_mfa::Column::ReplacementSecret,
                Expr::value(sealed_secret),
            )
            .col_expr(user_mfa::Column::ReplacementStartedAt, Expr::value(now))
            .col_expr(user_mfa::Column::UpdatedAt, Expr::value(now))
            .filter(user_mfa::Column::UserId.eq(user_id.as_str()))
            .filter(user_mfa::Column::TotpConfirmed.eq(true))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Drops the authenticator being set up, if it is still `sealed_secret` ("Not now").
    pub async fn clear_replacement(
        &self,
        user_id: &UserId,
        sealed_secret: &str,
    ) -> Result<(), StoreError> {
        user_mfa::Entity::update_many()
            .col_expr(
                user_mfa::Column::ReplacementSecret,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                user_mfa::Column::ReplacementStartedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(user_mfa::Column::UserId.eq(user_id.as_str()))
            .filter(user_mfa::Column::ReplacementSecret.eq(sealed_secret))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Makes the new authenticator `sealed_secret` (whose code for time step `step` was just
    /// checked) the user's only one, if it is still the one being set up: the old secret stops
    /// working, and every other session and grant of the user ends (all but `keep`), in one
    /// transaction. Of two confirmations, at most one replaces; false for the other.
    pub async fn commit_replacement(
        &self,
        user_id: &UserId,
        sealed_secret: &str,
        step: i64,
        allowed_by: Replacing<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.write().await?;
        // The bypass code that allowed it must still stand when the swap is made.
        if let Some(code_id) = allowed_by.code_id {
            let live = bypass_code::Entity::find_by_id(code_id)
                .filter(bypass_code::Column::UserId.eq(user_id.as_str()))
                .filter(bypass_code::Column::RevokedAt.is_null())
                .one(&txn)
                .await?;
            if live.is_none() {
                txn.rollback().await?;
                return Ok(false);
            }
        }
        let result = user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::TotpSecret, Expr::value(sealed_secret))
            .col_expr(user_mfa::Column::TotpConfirmed, Expr::value(true))
            .col_expr(user_mfa::Column::TotpLastStep, Expr::value(step))
            .col_expr(user_mfa::Column::TotpConfirmedAt, Expr::value(now))
            .col_expr(
                user_mfa::Column::ReplacementSecret,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                user_mfa::Column::ReplacementStartedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(user_mfa::Column::UpdatedAt, Expr::value(now))
            .filter(user_mfa::Column::UserId.eq(user_id.as_str()))
            .filter(user_mfa::Column::TotpConfirmed.eq(true))
            .filter(user_mfa::Column::ReplacementSecret.eq(sealed_secret))
            .exec(&txn)
            .await?;
        if result.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        Store::end_other_sessions(&txn, user_id, allowed_by.kept_session, now).await?;
        txn.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::repo::UserRepo;
    use crate::domain::scim::user::parse_user;

    #[tokio::test]
    async fn a_pending_key_makes_the_row_keeps_its_salt_and_never_replaces_a_confirmed_one() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let body = json!({"schemas": [crate::domain::scim::USER_SCHEMA], "userName": "pending"});
        let user = store
            .create_user(&parse_user(&body).unwrap().attributes, None)
            .await
            .unwrap();
        assert!(store.get_mfa(&user.id).await.unwrap().is_none());
        let pending = async |key: &str, salt: u8| {
            store
                .set_pending_totp(&user.id, format!("plain:{key}"), vec![salt; 16])
                .await
                .unwrap()
        };

        // No row yet: made, with this salt.
        assert!(pending("AAAA", 1).await);
        let row = store.get_mfa(&user.id).await.unwrap().unwrap();
        assert_eq!(row.totp_secret.as_deref(), Some("plain:AAAA"));
        assert_eq!(row.bypass_salt, vec![1; 16]);
        assert!(!row.totp_confirmed);

        // A row without a confirmed factor: the key is replaced, the salt (which the user's
        // bypass codes are hashed with) is not.
        assert!(pending("BBBB", 2).await);
        let row = store.get_mfa(&user.id).await.unwrap().unwrap();
        assert_eq!(row.totp_secret.as_deref(), Some("plain:BBBB"));
        assert_eq!(row.bypass_salt, vec![1; 16]);

        // A confirmed factor stays as it is.
        assert!(
            store
                .accept_totp_step(&user.id, "plain:BBBB", 9, true)
                .await
                .unwrap()
        );
        assert!(!pending("CCCC", 3).await);
        let row = store.get_mfa(&user.id).await.unwrap().unwrap();
        assert_eq!(row.totp_secret.as_deref(), Some("plain:BBBB"));
        assert!(row.totp_confirmed);
        assert_eq!(row.bypass_salt, vec![1; 16]);
    }
}
