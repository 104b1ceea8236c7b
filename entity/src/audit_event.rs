//! One entry of the audit trail (bypass codes and 2-step verification).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: String,
    pub code_id: Option<String>,
    /// generated, emailed, email_failed, used, failed, revoked, totp_*…
    pub event: String,
    /// `client:<id>`, `user:<id>` or `system`.
    pub actor: String,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
    pub at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
