//! An RS256 signing key. Several may exist so that keys can be rotated.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// PKCS#1 PEM of the private key.
    pub private_pem: String,
    /// Only active keys sign; inactive ones stay in the JWKS until their tokens expire.
    pub active: bool,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
