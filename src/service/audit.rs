//! Writes audit events to the database and to the structured log (never with secrets), and
//! reads the log back for those allowed to.

use chrono::{DateTime, Utc};

use super::ServiceError;
use super::access::Access;
use super::context::Context;
use crate::domain::access::Action;
use crate::domain::audit::{AuditEntry, AuditEvent, AuditQuery};
use crate::domain::ids::UserId;
use crate::domain::repo::AuditRepo;
use crate::domain::scim::filter::parse_filter;
use crate::store::Store;

/// The most events one page of the log holds.
pub const MAX_LOG_PAGE: u64 = 200;

/// The audit log of every user, for those the access decision lets read it.
#[derive(Clone)]
pub struct AuditLog {
    store: Store,
    access: Access,
}

impl AuditLog {
    pub fn new(store: Store, access: Access) -> Self {
        Self { store, access }
    }

    /// The events a SCIM `filter` selects (see [`AuditQuery::from_filter`]); the caller's
    /// right to read the log is checked before the filter is.
    pub async fn search_filtered(
        &self,
        filter: Option<&str>,
        start_index: u64,
        count: u64,
        ctx: &Context,
    ) -> Result<(Vec<AuditEntry>, u64), ServiceError> {
        self.access.check(ctx, Action::ReadAuditLog, None).await?;
        let query = match filter.filter(|f| !f.trim().is_empty()) {
            Some(text) => AuditQuery::from_filter(&parse_filter(text)?)?,
            None => AuditQuery::default(),
        };
        self.search(&query, start_index, count, ctx).await
    }

    /// The events `query` selects, newest first, a page from `start_index` (1-based), and
    /// how many there are in all.
    pub async fn search(
        &self,
        query: &AuditQuery,
        start_index: u64,
        count: u64,
        ctx: &Context,
    ) -> Result<(Vec<AuditEntry>, u64), ServiceError> {
        self.access.check(ctx, Action::ReadAuditLog, None).await?;
        Ok(self
            .store
            .search_events(query, start_index.max(1), count.min(MAX_LOG_PAGE))
            .await?)
    }
}

/// Records an event about `user_id` (and one of their codes, when given).
pub async fn record(
    store: &Store,
    ctx: &Context,
    user_id: &UserId,
    code_id: Option<&str>,
    event: AuditEvent,
    detail: Option<String>,
    at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    write(store, ctx, Some(user_id), code_id, event, detail, at).await
}

/// Records an event about the service rather than one user (a policy change, a role group).
pub async fn record_service(
    store: &Store,
    ctx: &Context,
    event: AuditEvent,
    detail: Option<String>,
) -> Result<(), ServiceError> {
    write(store, ctx, None, None, event, detail, Utc::now()).await
}

async fn write(
    store: &Store,
    ctx: &Context,
    user_id: Option<&UserId>,
    code_id: Option<&str>,
    event: AuditEvent,
    detail: Option<String>,
    at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let entry = AuditEntry {
        user_id: user_id.cloned(),
        code_id: code_id.map(str::to_owned),
        event,
        actor: ctx.actor_label(),
        client_id: ctx.client_id.as_ref().map(|c| c.as_str().to_owned()),
        ip: ctx.ip.map(|i| i.to_string()),
        detail,
        at,
    };
    tracing::info!(
        target: "audit",
        event = event.as_str(), user_id = user_id.map(UserId::as_str).unwrap_or(""), code_id = entry.code_id.as_deref().unwrap_or(""),
        actor = %entry.actor, client_id = entry.client_id.as_deref().unwrap_or(""),
        ip = entry.ip.as_deref().unwrap_or(""), detail = entry.detail.as_deref().unwrap_or(""),
        "audit"
    );
    store.append_event(entry).await?;
    Ok(())
}
