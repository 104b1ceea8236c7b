//! A user's 2-step verification state: TOTP factor, bypass-code salt, failure streak.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_mfa")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// The TOTP secret, sealed (`v1:` + nonce + ciphertext) when an encryption key is set,
    /// else `plain:` + base32. `None` when no TOTP factor exists.
    pub totp_secret: Option<String>,
    pub totp_confirmed: bool,
    /// The last accepted TOTP time step; a code for it or an earlier one is a replay.
    pub totp_last_step: Option<i64>,
    /// Per-user salt of the bypass-code hashes.
    pub bypass_salt: Vec<u8>,
    /// Failed second-factor attempts since the last success (NIST SP 800-63B caps it at 100).
    pub consecutive_failures: i32,
    pub updated_at: DateTimeUtc,
    /// When the TOTP factor was confirmed; `None` for factors confirmed before this was kept.
    pub totp_confirmed_at: Option<DateTimeUtc>,
    /// When an administrator last reset 2-step verification: while no factor is confirmed
    /// since, enrolling again takes a bypass code (policy `reenrolmentRequiresCode`).
    pub mfa_reset_at: Option<DateTimeUtc>,
    /// A new authenticator being set up to replace the confirmed one, sealed like
    /// `totp_secret`; it replaces that one only when a code from it is confirmed.
    pub replacement_secret: Option<String>,
    pub replacement_started_at: Option<DateTimeUtc>,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: HasOne<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
