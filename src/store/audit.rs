//! The audit trail.

use entity::audit_event;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::{Store, StoreError};
use crate::domain::audit::{AuditEntry, AuditEvent, AuditQuery};
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
        user_id: (!row.user_id.is_empty()).then(|| UserId::new(row.user_id)),
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

    async fn search_events(
        &self,
        query: &AuditQuery,
        start_index: u64,
        count: u64,
    ) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        use audit_event::Column;
        let mut select = audit_event::Entity::find();
        if let Some(event) = query.event {
            select = select.filter(Column::Event.eq(event.as_str()));
        }
        if let Some(actor) = &query.actor {
            select = select.filter(Column::Actor.eq(actor.as_str()));
        }
        if let Some(user) = &query.user_id {
            select = select.filter(Column::UserId.eq(user.as_str()));
        }
        if let Some(since) = query.since {
            select = select.filter(Column::At.gte(since));
        }
        if let Some(until) = query.until {
            select = select.filter(Column::At.lt(until));
        }
        let total = select.clone().count(&self.db).await?;
        let rows = if count == 0 {
            Vec::new()
        } else {
            select
                .order_by_desc(Column::Id)
                .offset(start_index.saturating_sub(1))
                .limit(count)
                .all(&self.db)
                .await?
        };
        Ok((rows.into_iter().filter_map(entry).collect(), total))
    }
}

impl Store {
    pub async fn record_event<C: ConnectionTrait>(
        db: &C,
        event: AuditEntry,
    ) -> Result<(), StoreError> {
        audit_event::ActiveModel {
            // Events about no user are stored with an empty user id.
            user_id: Set(event.user_id.map(UserId::into_string).unwrap_or_default()),
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
