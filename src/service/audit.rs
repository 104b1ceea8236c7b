//! Writes audit events to the database and to the structured log (never with secrets).

use chrono::{DateTime, Utc};

use super::ServiceError;
use super::context::Context;
use crate::domain::audit::{AuditEntry, AuditEvent};
use crate::domain::ids::UserId;
use crate::domain::repo::AuditRepo;
use crate::store::Store;

pub async fn record(
    store: &Store,
    ctx: &Context,
    user_id: &UserId,
    code_id: Option<&str>,
    event: AuditEvent,
    detail: Option<String>,
    at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let entry = AuditEntry {
        user_id: user_id.clone(),
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
        event = event.as_str(), user_id = %user_id, code_id = entry.code_id.as_deref().unwrap_or(""),
        actor = %entry.actor, client_id = entry.client_id.as_deref().unwrap_or(""),
        ip = entry.ip.as_deref().unwrap_or(""), detail = entry.detail.as_deref().unwrap_or(""),
        "audit"
    );
    store.append_event(entry).await?;
    Ok(())
}
