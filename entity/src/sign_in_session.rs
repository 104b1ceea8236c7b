//! A single sign-on session: a browser's sign-in at this service, shared by every instance.
//! The cookie itself is never stored, only its SHA-256.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_sessions")]
pub struct Model {
    /// The public session id: `sid` in ID tokens and logout tokens.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Hex SHA-256 of the cookie's value; replaced when the session steps up.
    #[sea_orm(unique)]
    pub token_hash: String,
    pub user_id: String,
    pub created_at: DateTimeUtc,
    /// Unix seconds of the sign-in (the password check).
    pub auth_time: i64,
    /// Space-separated RFC 8176 methods.
    pub amr: String,
    pub acr: String,
    /// The bypass code that opened (or stepped up) the session.
    pub bypass_code_id: Option<String>,
    pub last_seen_at: DateTimeUtc,
    /// The absolute end.
    pub expires_at: DateTimeUtc,
    /// Until when the session signs in to clients without a page (earlier than
    /// `expires_at` for sessions opened with a bypass code).
    pub single_sign_on_until: DateTimeUtc,
    pub ip: Option<String>,
    pub ended_at: Option<DateTimeUtc>,
    pub end_reason: Option<String>,
    /// Set when the session ended and its clients are still to be told (Back-Channel
    /// Logout); cleared by the instance that takes the job.
    pub logout_pending_since: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
