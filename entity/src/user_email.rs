//! One entry of a user's multi-valued `emails` attribute.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_emails")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: String,
    /// Order in which the client sent the values, so that responses keep it.
    pub position: i32,
    pub value: String,
    pub value_lower: String,
    pub kind: Option<String>,
    pub is_primary: bool,
    pub display: Option<String>,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: HasOne<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
