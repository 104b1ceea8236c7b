//! OAuth clients.

use chrono::Utc;
use entity::{grant, oauth_client};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};

use super::{Store, StoreError};
use crate::domain::ids::ClientId;
use crate::domain::oauth::Client;
use crate::domain::repo::ClientRepo;
use crate::domain::scope::ScopeSet;

fn client(row: oauth_client::Model) -> Client {
    Client {
        client_id: ClientId::new(row.client_id),
        secret_digest: row.secret_digest,
        scopes: ScopeSet::parse(&row.scopes),
        grant_types: row
            .grant_types
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        redirect_uris: row.redirect_uris.lines().map(str::to_owned).collect(),
        public: row.is_public,
        require_mfa: row.require_mfa,
        allow_self_service_codes: row.allow_self_service_codes,
        refuses_bypass_codes: !row.accepts_bypass_codes,
        post_logout_redirect_uris: row
            .post_logout_redirect_uris
            .lines()
            .map(str::to_owned)
            .collect(),
        backchannel_logout_uri: row.backchannel_logout_uri,
    }
}

fn row(client: Client) -> oauth_client::ActiveModel {
    oauth_client::ActiveModel {
        client_id: Set(client.client_id.into_string()),
        secret_digest: Set(client.secret_digest),
        scopes: Set(client.scopes.to_string()),
        grant_types: Set(client.grant_types.join(" ")),
        redirect_uris: Set(client.redirect_uris.join("\n")),
        is_public: Set(client.public),
        require_mfa: Set(client.require_mfa),
        allow_self_service_codes: Set(client.allow_self_service_codes),
        accepts_bypass_codes: Set(!client.refuses_bypass_codes),
        post_logout_redirect_uris: Set(client.post_logout_redirect_uris.join("\n")),
        backchannel_logout_uri: Set(client.backchannel_logout_uri),
        created_at: Set(Utc::now()),
    }
}

impl ClientRepo for Store {
    type Error = StoreError;

    async fn insert_client(&self, client: Client) -> Result<(), StoreError> {
        row(client)
            .insert(&self.db)
            .await
            .map_err(StoreError::classify)?;
        Ok(())
    }

    async fn save_client(&self, client: Client) -> Result<(), StoreError> {
        use oauth_client::Column;
        oauth_client::Entity::insert(row(client))
            .on_conflict(
                OnConflict::column(Column::ClientId)
                    .update_columns([
                        Column::SecretDigest,
                        Column::Scopes,
                        Column::GrantTypes,
                        Column::RedirectUris,
                        Column::IsPublic,
                        Column::RequireMfa,
                        Column::AllowSelfServiceCodes,
                        Column::PostLogoutRedirectUris,
                        Column::BackchannelLogoutUri,
                    ])
                    .to_owned(),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn find_client(&self, client_id: &ClientId) -> Result<Option<Client>, StoreError> {
        Ok(oauth_client::Entity::find_by_id(client_id.as_str())
            .one(&self.db)
            .await?
            .map(client))
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        Ok(oauth_client::Entity::find()
            .order_by_asc(oauth_client::Column::ClientId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(client)
            .collect())
    }

    async fn count_clients(&self) -> Result<u64, StoreError> {
        Ok(oauth_client::Entity::find().count(&self.db).await?)
    }

    /// Returns whether a client was removed. Its sign-ins end with it, so that a client
    /// registered again under the same id does not bring them back.
    async fn remove_client(&self, client_id: &ClientId) -> Result<bool, StoreError> {
        let txn = self.write().await?;
        let result = oauth_client::Entity::delete_by_id(client_id.as_str())
            .exec(&txn)
            .await?;
        grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(grant::Column::ClientId.eq(client_id.as_str()))
            .filter(grant::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(result.rows_affected > 0)
    }
}
