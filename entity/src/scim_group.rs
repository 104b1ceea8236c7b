//! A SCIM group: a named set of users; some names carry administrator roles.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub display_name: String,
    /// Lower-cased `display_name`; its unique index makes names unique case-insensitively.
    #[sea_orm(unique)]
    pub display_name_lower: String,
    pub external_id: Option<String>,
    /// Incremented on every write; the SCIM ETag.
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(has_many)]
    pub members: HasMany<super::group_member::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
