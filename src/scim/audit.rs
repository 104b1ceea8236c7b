//! `GET /AuditEvents`: the stored audit log of every user and of the service itself (policy
//! changes, role groups), for security administrators and clients with `audit:read`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::{Value, json};

use super::ApiTags;
use super::auth::ScimBearer;
use super::bypass_codes::AUDIT_EVENT_SCHEMA;
use super::error::ScimError;
use super::models::AuditLogPage;
use super::payload::{ScimJson, list_response};
use crate::domain::audit::AuditEntry;
use crate::domain::scim::user::format_time;
use crate::edge::ClientAddr;
use crate::state::AppState;

/// Events per page when the request names no `count`.
const DEFAULT_COUNT: i64 = 100;

#[derive(ApiResponse)]
pub enum AuditLogResponse {
    /// A page of events, newest first.
    #[oai(status = 200)]
    Ok(ScimJson<AuditLogPage>),
}

/// An event as a bypass code's trail shows it: what, when, by whom, from where.
pub fn render_event(entry: &AuditEntry) -> Value {
    json!({
        "schemas": [AUDIT_EVENT_SCHEMA],
        "event": entry.event.as_str(),
        "at": format_time(entry.at),
        "actor": entry.actor,
        "clientId": entry.client_id,
        "ip": entry.ip,
        "detail": entry.detail,
    })
}

/// An event as the log shows it: also whom and which code it is about.
fn render(entry: &AuditEntry) -> Value {
    let mut body = render_event(entry);
    body["userId"] = json!(entry.user_id.as_ref().map(|u| u.as_str()));
    body["codeId"] = json!(entry.code_id);
    body
}

pub struct AuditApi;

#[OpenApi(prefix_path = "/scim/v2", tag = "ApiTags::Audit")]
impl AuditApi {
    /// The audit log, newest first (scope `audit:read`). Filter with `event`, `actor` or
    /// `userId` `eq`, and `at` `gt`/`ge`/`lt`/`le` (RFC 3339), joined by `and`.
    #[oai(
        path = "/AuditEvents",
        method = "get",
        operation_id = "listAuditEvents"
    )]
    async fn list(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        /// e.g. `event eq "policy_changed" and at ge "2026-12-01T00:00:00Z"`.
        filter: Query<Option<String>>,
        /// 1-based index of the first result.
        #[oai(name = "startIndex")]
        start_index: Query<Option<i64>>,
        /// Results per page, at most 200 (default 100).
        count: Query<Option<i64>>,
    ) -> Result<AuditLogResponse, ScimError> {
        let ctx = auth.acting(state, remote.0).await?;
        let start = start_index.0.unwrap_or(1).max(1) as u64;
        let count = count.0.unwrap_or(DEFAULT_COUNT).max(0) as u64;
        let (events, total) = state
            .audit
            .search_filtered(filter.0.as_deref(), start, count, &ctx)
            .await?;
        let resources = events.iter().map(render).collect();
        Ok(AuditLogResponse::Ok(ScimJson::written(&list_response(
            resources, total, start,
        ))))
    }
}
