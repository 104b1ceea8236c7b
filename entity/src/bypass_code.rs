//! A bypass code, stored only as its Argon2id hash.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bypass_codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    /// argon2id(code, per-user salt[, pepper]), 32 bytes; unique per user.
    pub code_hash: Vec<u8>,
    /// `helpDesk` or `selfService`.
    pub origin: String,
    /// Who generated it: `client:<id>` or `user:<id>`.
    pub created_by: String,
    pub client_id: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
    /// `None` means unlimited.
    pub max_uses: Option<i64>,
    pub use_count: i64,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<String>,
    pub created_at: DateTimeUtc,
    /// `signIn` (the second step of a sign-in) or `enrolment` (only to set up a first
    /// authenticator after a reset).
    pub purpose: String,
    /// Why it was given (a ticket, a sentence).
    pub reason: Option<String>,
    /// When it starts to work, if it was scheduled.
    pub starts_at: Option<DateTimeUtc>,
    /// `pending` (no code exists yet; `code_hash` is a random placeholder and `expires_at`
    /// the end of the approval window), `approved`, `rejected` or `withdrawn`; `None` for a
    /// code that needed no approval.
    pub approval: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTimeUtc>,
    /// The lifetime asked for, in minutes from the start (counted from the approval).
    pub lifetime_minutes: Option<i64>,
    /// For a request: the address the approved code goes to, fixed when it was asked for
    /// (an approval refuses to send it anywhere else).
    pub send_to: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
