//! One sign-in of a user at a client: the authorization code and every token issued from it.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "grants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    /// Unix seconds of the password check.
    pub auth_time: i64,
    /// Space-separated RFC 8176 methods, e.g. `pwd mfa bypass_code`.
    pub amr: String,
    pub acr: String,
    pub created_at: DateTimeUtc,
    /// The bypass code the sign-in used: revoking the code revokes this grant.
    pub bypass_code_id: Option<String>,
    /// Set when the code was replayed, a used refresh token came back, the bypass code was
    /// revoked or the user's credentials changed: every token dies.
    pub revoked_at: Option<DateTimeUtc>,
    /// The sign-in session ([`super::sign_in_session`]) that gave this grant, if any.
    pub session_id: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
