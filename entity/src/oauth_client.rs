//! An OAuth 2.0 client: a relying party or a provisioning/admin client.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_clients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: String,
    /// SHA-256 of the client secret; `None` for a public client.
    pub secret_digest: Option<Vec<u8>>,
    /// Space-separated scopes the client may be granted.
    pub scopes: String,
    /// Space-separated grant types the client may use.
    pub grant_types: String,
    /// Newline-separated redirect URIs, matched exactly.
    pub redirect_uris: String,
    pub is_public: bool,
    pub require_mfa: bool,
    /// Whether users' sign-ins here may carry `bypass_codes:self` (mint codes for themselves).
    pub allow_self_service_codes: bool,
    /// Whether sign-ins here offer and accept bypass codes (`client add --no-bypass-codes`).
    pub accepts_bypass_codes: bool,
    /// Newline-separated `post_logout_redirect_uri`s (RP-Initiated Logout), matched exactly.
    pub post_logout_redirect_uris: String,
    /// Where Back-Channel Logout tokens are posted, if the client takes them.
    pub backchannel_logout_uri: Option<String>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
