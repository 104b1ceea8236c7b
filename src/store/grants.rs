//! Grants and refresh tokens.

use chrono::{DateTime, Utc};
use entity::{grant, refresh_token, user};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::sessions::EndReason;
use super::{Store, StoreError};
use crate::domain::ids::{ClientId, UserId};
use crate::domain::oauth::{Grant, RefreshToken};
use crate::domain::repo::GrantRepo;

fn grant_of(row: grant::Model) -> Grant {
    Grant {
        id: row.id,
        user_id: UserId::new(row.user_id),
        client_id: ClientId::new(row.client_id),
        scope: row.scope,
        auth_time: row.auth_time,
        amr: row.amr.split_whitespace().map(str::to_owned).collect(),
        acr: row.acr,
        created_at: row.created_at,
        bypass_code_id: row.bypass_code_id,
        revoked_at: row.revoked_at,
        session_id: row.session_id,
    }
}

impl GrantRepo for Store {
    type Error = StoreError;

    async fn insert_grant(&self, row: &Grant) -> Result<(), StoreError> {
        grant::ActiveModel {
            id: Set(row.id.clone()),
            user_id: Set(row.user_id.as_str().to_owned()),
            client_id: Set(row.client_id.as_str().to_owned()),
            scope: Set(row.scope.clone()),
            auth_time: Set(row.auth_time),
            amr: Set(row.amr.join(" ")),
            acr: Set(row.acr.clone()),
            created_at: Set(row.created_at),
            bypass_code_id: Set(row.bypass_code_id.clone()),
            revoked_at: Set(None),
            session_id: Set(row.session_id.clone()),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    /// The moment before which the user's sign-ins are void, if one was set.
    async fn sessions_not_before(
        &self,
        user_id: &UserId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(user::Entity::find_by_id(user_id.as_str())
            .one(&self.db)
            .await?
            .and_then(|u| u.sessions_not_before))
    }

    async fn live_grants(
        &self,
        user_id: &UserId,
        client_id: &ClientId,
    ) -> Result<Vec<Grant>, StoreError> {
        Ok(grant::Entity::find()
            .filter(grant::Column::UserId.eq(user_id.as_str()))
            .filter(grant::Column::ClientId.eq(client_id.as_str()))
            .filter(grant::Column::RevokedAt.is_null())
            .all(&self.db)
            .await?
            .into_iter()
            .map(grant_of)
            .collect())
    }

    async fn find_grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        Ok(grant::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(grant_of))
    }

    async fn revoke_grant(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(now))
            .filter(grant::Column::Id.eq(id))
            .filter(grant::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn insert_refresh_token(
        &self,
        hash: Vec<u8>,
        grant_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        refresh_token::ActiveModel {
            token_hash: Set(hash),
            grant_id: Set(grant_id.to_owned()),
            expires_at: Set(expires_at),
            used_at: Set(None),
            created_at: Set(Utc::now()),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    async fn find_refresh_token(&self, hash: &[u8]) -> Result<Option<RefreshToken>, StoreError> {
        Ok(refresh_token::Entity::find_by_id(hash.to_vec())
            .one(&self.db)
            .await?
            .map(|row| RefreshToken {
                grant_id: row.grant_id,
                expires_at: row.expires_at,
            }))
    }

    /// Marks a refresh token used; false if it already was (a replay).
    async fn use_refresh_token(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
            .filter(refresh_token::Column::TokenHash.eq(hash.to_vec()))
            .filter(refresh_token::Column::UsedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }
}

impl Store {
    /// Ends every sign-in of a user (credentials changed, user deactivated or deleted): live
    /// grants are revoked, single sign-on sessions end, and sign-ins still in progress are
    /// voided by the user's `sessions_not_before`. Returns how many grants were revoked.
    pub async fn revoke_user_grants<C: ConnectionTrait>(
        db: &C,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        user::Entity::update_many()
            .col_expr(user::Column::SessionsNotBefore, Expr::value(now))
            .filter(user::Column::Id.eq(user_id.as_str()))
            .exec(db)
            .await?;
        Store::end_user_sessions(db, user_id, EndReason::CredentialsChanged, now).await?;
        let result = grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(now))
            .filter(grant::Column::UserId.eq(user_id.as_str()))
            .filter(grant::Column::RevokedAt.is_null())
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Ends every live grant whose sign-in used the bypass code `code_id`, and the sessions it
    /// opened; returns how many grants.
    pub async fn revoke_code_grants<C: ConnectionTrait>(
        db: &C,
        code_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Store::end_code_sessions(db, code_id, now).await?;
        let result = grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(now))
            .filter(grant::Column::BypassCodeId.eq(code_id))
            .filter(grant::Column::RevokedAt.is_null())
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }
}
