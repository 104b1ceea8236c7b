//! The audit trail.

use entity::audit_event;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use super::{Store, StoreError};

/// One event to record.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub user_id: String,
    pub code_id: Option<String>,
    pub event: &'static str,
    pub actor: String,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Store {
    pub async fn record_event<C: ConnectionTrait>(
        db: &C,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        audit_event::ActiveModel {
            user_id: Set(event.user_id),
            code_id: Set(event.code_id),
            event: Set(event.event.to_owned()),
            actor: Set(event.actor),
            client_id: Set(event.client_id),
            ip: Set(event.ip),
            detail: Set(event.detail),
            at: Set(event.at),
            ..Default::default()
        }
        .insert(db)
        .await?;
        Ok(())
    }

    /// A code's events, oldest first.
    pub async fn code_events(&self, code_id: &str) -> Result<Vec<audit_event::Model>, StoreError> {
        Ok(audit_event::Entity::find()
            .filter(audit_event::Column::CodeId.eq(code_id))
            .order_by_asc(audit_event::Column::Id)
            .all(&self.db)
            .await?)
    }
}
