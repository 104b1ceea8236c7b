//! Signing keys.

use chrono::Utc;
use entity::signing_key;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{Store, StoreError};
use crate::domain::oauth::StoredKey;
use crate::domain::repo::KeyRepo;

impl KeyRepo for Store {
    type Error = StoreError;

    /// All keys, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        Ok(signing_key::Entity::find()
            .order_by_asc(signing_key::Column::CreatedAt)
            .order_by_asc(signing_key::Column::Kid)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| StoredKey {
                kid: row.kid,
                private_pem: row.private_pem,
                active: row.active,
            })
            .collect())
    }

    async fn insert_signing_key(&self, kid: &str, private_pem: &str) -> Result<(), StoreError> {
        signing_key::ActiveModel {
            kid: Set(kid.to_owned()),
            private_pem: Set(private_pem.to_owned()),
            active: Set(true),
            created_at: Set(Utc::now()),
        }
        .insert(&self.db)
        .await
        .map_err(StoreError::classify)?;
        Ok(())
    }

    /// Replaces a key's stored form (a legacy plain PEM being sealed).
    async fn reseal_signing_key(&self, kid: &str, stored: &str) -> Result<(), StoreError> {
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::PrivatePem, Expr::value(stored))
            .filter(signing_key::Column::Kid.eq(kid))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
