//! The audit trail.

use entity::audit_event;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::{Store, StoreError};
use crate::domain::audit::{AuditEntry, AuditEvent};
use crate::domain::ids::UserId;
use crate::domain::repo::AuditRepo;

/// An event as the domain knows it; a name this version does not know (written by a newer
/// one sharing the database) is left out of what it shows, with a warning, not an error.
fn entry(row: audit_event::Model) -> Option<AuditEntry> {
    let Some(event) = AuditEvent::parse(&row.event) else {
        tracing::warn!(event = %row.event, id = row.id, "audit event name unknown to this version; not shown");
        return None;
    };
    Some(AuditEntry {
        user_id: UserId::new(row.user_id),
        code_id: row.code_id,
        event,
        actor: row.actor,
        client_id: row.client_id,
        ip: row.ip,
        detail: row.detail,
        at: row.at,
    })
}

impl AuditRepo for Store {
    type Error = StoreError;

    /// A code's events, oldest first.
    async fn code_events(&self, code_id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(audit_event::Entity::find()
            .filter(audit_event::Column::CodeId.eq(code_id))
            .order_by_asc(audit_event::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(entry)
            .collect())
    }

    async fn user_events(
        &self,
        user_id: &UserId,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(audit_event::Entity::find()
            .filter(audit_event::Column::UserId.eq(user_id.as_str()))
            .order_by_desc(audit_event::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(entry)
            .collect())
    }

    async fn append_event(&self, entry: AuditEntry) -> Result<(), StoreError> {
        Store::record_event(&self.db, entry).await
    }
}

impl Store {
    pub async fn record_event<C: ConnectionTrait>(
        db: &C,
        event: AuditEntry,
    ) -> Result<(), StoreError> {
        audit_event::ActiveModel {
            user_id: Set(event.user_id.into_string()),
            code_id: Set(event.code_id),
            event: Set(event.event.as_str().to_owned()),
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
}
