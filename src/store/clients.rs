//! OAuth clients.

use chrono::Utc;
use entity::oauth_client;
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, QueryOrder, Set};

use super::{Store, StoreError};
use crate::domain::ids::ClientId;

/// A client as registered; the secret digest is compared, never shown.
#[derive(Clone)]
pub struct NewClient {
    pub client_id: ClientId,
    pub secret_digest: Option<Vec<u8>>,
    pub scopes: String,
    pub grant_types: String,
    pub redirect_uris: Vec<String>,
    pub is_public: bool,
    pub require_mfa: bool,
}

impl Store {
    pub async fn insert_client(&self, client: NewClient) -> Result<(), StoreError> {
        oauth_client::ActiveModel {
            client_id: Set(client.client_id.into_string()),
            secret_digest: Set(client.secret_digest),
            scopes: Set(client.scopes),
            grant_types: Set(client.grant_types),
            redirect_uris: Set(client.redirect_uris.join("\n")),
            is_public: Set(client.is_public),
            require_mfa: Set(client.require_mfa),
            created_at: Set(Utc::now()),
        }
        .insert(&self.db)
        .await
        .map_err(StoreError::classify)?;
        Ok(())
    }

    pub async fn find_client(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<oauth_client::Model>, StoreError> {
        Ok(oauth_client::Entity::find_by_id(client_id.as_str())
            .one(&self.db)
            .await?)
    }

    pub async fn list_clients(&self) -> Result<Vec<oauth_client::Model>, StoreError> {
        Ok(oauth_client::Entity::find()
            .order_by_asc(oauth_client::Column::ClientId)
            .all(&self.db)
            .await?)
    }

    pub async fn count_clients(&self) -> Result<u64, StoreError> {
        Ok(oauth_client::Entity::find().count(&self.db).await?)
    }

    /// Returns whether a client was removed.
    pub async fn remove_client(&self, client_id: &ClientId) -> Result<bool, StoreError> {
        let result = oauth_client::Entity::delete_by_id(client_id.as_str())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }
}
