//! A SCIM user: the person who signs in.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_name: String,
    /// Lower-cased `user_name`; its unique index makes userName unique case-insensitively.
    #[sea_orm(unique)]
    pub user_name_lower: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub nick_name: Option<String>,
    pub profile_url: Option<String>,
    pub title: Option<String>,
    pub user_type: Option<String>,
    pub preferred_language: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub name_formatted: Option<String>,
    pub name_family: Option<String>,
    pub name_given: Option<String>,
    pub name_middle: Option<String>,
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    /// Lower-cased copies of the case-insensitive name attributes, for indexed filters.
    pub name_family_lower: Option<String>,
    pub name_given_lower: Option<String>,
    pub display_name_lower: Option<String>,
    /// The primary address (or else the first), lower-cased: what `sortBy=emails` orders by.
    pub email_lower: Option<String>,
    /// Unassigned (NULL) when a SCIM client removed it; only false blocks sign-in.
    pub active: Option<bool>,
    /// Require 2-step verification at every sign-in; `None`: unassigned (no).
    pub mfa_required: Option<bool>,
    /// Argon2id PHC string; never returned.
    pub password_hash: Option<String>,
    /// Incremented on every write; the SCIM ETag.
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Sign-ins before this moment are void (credentials changed, 2-step verification
    /// reset): catches those still in progress when their user's grants were revoked.
    pub sessions_not_before: Option<DateTimeUtc>,
    #[sea_orm(has_many)]
    pub emails: HasMany<super::user_email::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
