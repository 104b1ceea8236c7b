//! Writes audit events to the database and to the structured log (never with secrets).

use chrono::{DateTime, Utc};

use super::ServiceError;
use super::context::Context;
use crate::domain::ids::UserId;
use crate::store::Store;
use crate::store::audit::NewEvent;

pub async fn record(
    store: &Store,
    ctx: &Context,
    user_id: &UserId,
    code_id: Option<&str>,
    event: &'static str,
    detail: Option<String>,
    at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let actor = ctx.actor_label();
    tracing::info!(
        target: "audit",
        event, user_id = %user_id, code_id = code_id.unwrap_or(""), actor = %actor,
        client_id = ctx.client_id.as_ref().map(|c| c.as_str()).unwrap_or(""),
        ip = ctx.ip.map(|i| i.to_string()).unwrap_or_default(),
        detail = detail.as_deref().unwrap_or(""),
        "audit"
    );
    Store::record_event(
        &store.db,
        NewEvent {
            user_id: user_id.as_str().to_owned(),
            code_id: code_id.map(str::to_owned),
            event,
            actor,
            client_id: ctx.client_id.as_ref().map(|c| c.as_str().to_owned()),
            ip: ctx.ip.map(|i| i.to_string()),
            detail,
            at,
        },
    )
    .await?;
    Ok(())
}
