//! `/Users/{id}/bypassCodes…` and `/BypassCodeSettings`: thin handlers over
//! [`BypassCodeService`](crate::service::bypass::BypassCodeService).

use std::sync::Arc;

use poem::web::Data;

use crate::edge::ClientAddr;
use poem_openapi::param::{Path, Query};
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::{Value, json};

use super::ApiTags;
use super::auth::ScimBearer;
use super::error::ScimError;
use super::models::{
    AuditEventList, BypassCodeList, BypassCodeRequest, BypassCodeResource,
    BypassCodeSettingsResource, NotifyRequest,
};
use super::payload::ScimJson;
use crate::app::AppState;
use crate::domain::bypass::{CodeStatus, Origin, Policy};
use crate::domain::ids::UserId;
use crate::domain::scim::filter::{CompareOp, Filter, Literal, parse_filter};
use crate::domain::scim::user::format_time;
use crate::domain::scim::{LIST_RESPONSE_SCHEMA, ScimType, ScimViolation};
use crate::domain::scope::{BYPASS_CODES_MANAGE, BYPASS_CODES_SELF, BYPASS_CODES_SETTINGS};
use crate::service::bypass::{CodeView, Created};
use crate::service::context::Context;

pub const BYPASS_CODE_SCHEMA: &str = "urn:bypass-idp:params:scim:schemas:core:2.0:BypassCode";
pub const SETTINGS_SCHEMA: &str = "urn:bypass-idp:params:scim:schemas:core:2.0:BypassCodeSettings";
pub const AUDIT_EVENT_SCHEMA: &str = "urn:bypass-idp:params:scim:schemas:core:2.0:AuditEvent";

/// The request's actor, client and address, for the audit trail.
pub fn context(auth: &ScimBearer, remote: &ClientAddr) -> Context {
    let ip = remote.0;
    let principal = &auth.0;
    if principal.subject == principal.client_id.as_str() {
        Context::client(principal.client_id.clone(), ip)
    } else {
        Context::user(
            UserId::new(principal.subject.clone()),
            Some(principal.client_id.clone()),
            ip,
        )
    }
}

/// Renders a code; `code` is the plaintext, given only when it was just created.
pub fn render_code(base: &str, view: &CodeView, code: Option<&str>) -> Value {
    let location = format!("{base}/Users/{}/bypassCodes/{}", view.user_id, view.id);
    let mut body = json!({
        "schemas": [BYPASS_CODE_SCHEMA],
        "id": view.id,
        "status": view.status.as_str(),
        "expiresAt": view.expires_at.map(format_time),
        "maxUsageCount": view.max_uses,
        "actualUsageCount": view.use_count,
        "remainingUsageCount": view.remaining,
        "origin": view.origin,
        "createdBy": view.created_by,
        "lastUsedAt": view.last_used_at.map(format_time),
        "revokedAt": view.revoked_at.map(format_time),
        "notifications": view.notifications.iter().map(|n| json!({
            "channel": n.channel,
            "status": if n.sent { "sent" } else { "failed" },
            "detail": n.detail,
            "at": format_time(n.at),
        })).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "BypassCode",
            "created": format_time(view.created_at),
            "lastModified": format_time(view.revoked_at.or(view.last_used_at).unwrap_or(view.created_at)),
            "location": location,
        },
    });
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    body
}

pub fn render_list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// Only `status eq "…"` filters bypass codes.
pub fn status_filter(filter: Option<&str>) -> Result<Option<CodeStatus>, ScimError> {
    let Some(text) = filter.filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    let invalid = || {
        ScimError::from(ScimViolation::new(
            ScimType::InvalidFilter,
            "bypass codes filter only as status eq \"active\" (or expired, exhausted, revoked)",
        ))
    };
    match parse_filter(text)? {
        Filter::Compare(path, CompareOp::Eq, Literal::String(value))
            if path.attr.eq_ignore_ascii_case("status") && path.sub_attr.is_none() =>
        {
            CodeStatus::parse(&value).map(Some).ok_or_else(invalid)
        }
        _ => Err(invalid()),
    }
}

fn render_settings(base: &str, policy: &Policy) -> Value {
    let mut body = serde_json::to_value(policy).unwrap_or_else(|_| json!({}));
    body["schemas"] = json!([SETTINGS_SCHEMA]);
    body["meta"] = json!({"resourceType": "BypassCodeSettings", "location": format!("{base}/BypassCodeSettings")});
    body
}

fn code_list(state: &AppState, views: &[CodeView]) -> CodeListResponse {
    let base = base(state);
    let resources = views.iter().map(|v| render_code(&base, v, None)).collect();
    CodeListResponse::Ok(ScimJson::new(render_list(resources)))
}

/// The create response: the only place the plaintext appears; never cached.
fn created_response(state: &AppState, created: &Created) -> CreateCodeResponse {
    let body = render_code(&base(state), &created.view, Some(created.code.expose()));
    let location = body["meta"]["location"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    CreateCodeResponse::Created(ScimJson::new(body), location, "no-store".into())
}

/// A required string member of a small request body.
pub fn required_string<'a>(
    body: &'a Value,
    name: &str,
    detail: &str,
) -> Result<&'a str, ScimError> {
    body.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ScimViolation::new(ScimType::InvalidValue, detail).into())
}

#[derive(ApiResponse)]
pub enum CreateCodeResponse {
    /// The code was generated; this response is the only place its plaintext appears.
    /// A failed email is reported in `notifications`; the code exists either way.
    #[oai(status = 201)]
    Created(
        ScimJson<BypassCodeResource>,
        #[oai(header = "Location")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(ApiResponse)]
pub enum CodeResponse {
    /// The code (never its plaintext).
    #[oai(status = 200)]
    Ok(ScimJson<BypassCodeResource>),
}

#[derive(ApiResponse)]
pub enum CodeListResponse {
    /// The user's codes, newest first (never their plaintext).
    #[oai(status = 200)]
    Ok(ScimJson<BypassCodeList>),
}

#[derive(ApiResponse)]
pub enum RevokeCodeResponse {
    /// The code is revoked (it is kept for audit). Revoking twice is not an error.
    #[oai(status = 204)]
    Revoked,
}

#[derive(ApiResponse)]
pub enum AuditResponse {
    /// The events.
    #[oai(status = 200)]
    Ok(ScimJson<AuditEventList>),
}

#[derive(ApiResponse)]
pub enum SettingsResponse {
    /// The policy in force.
    #[oai(status = 200)]
    Ok(ScimJson<BypassCodeSettingsResource>),
}

pub struct BypassCodesApi;

fn base(state: &AppState) -> String {
    format!("{}/scim/v2", state.issuer)
}

#[OpenApi(prefix_path = "/scim/v2", tag = "ApiTags::BypassCodes")]
impl BypassCodesApi {
    /// Generate a bypass code for a user enrolled in 2-step verification (help desk).
    #[oai(
        path = "/Users/:id/bypassCodes",
        method = "post",
        operation_id = "createBypassCode"
    )]
    async fn create(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        body: ScimJson<BypassCodeRequest>,
    ) -> Result<CreateCodeResponse, ScimError> {
        auth.require(BYPASS_CODES_MANAGE)?;
        let ctx = context(&auth, remote.0);
        let created = state
            .bypass
            .create(&UserId::new(id.0), &body.value, Origin::HelpDesk, &ctx)
            .await?;
        Ok(created_response(state, &created))
    }

    /// List a user's bypass codes; `filter=status eq "active"` narrows the list.
    #[oai(
        path = "/Users/:id/bypassCodes",
        method = "get",
        operation_id = "listBypassCodes"
    )]
    async fn list(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
        /// Only `status eq "active"|"expired"|"exhausted"|"revoked"`.
        filter: Query<Option<String>>,
    ) -> Result<CodeListResponse, ScimError> {
        auth.require(BYPASS_CODES_MANAGE)?;
        let status = status_filter(filter.0.as_deref())?;
        let views = state.bypass.list(&UserId::new(id.0), status).await?;
        Ok(code_list(state, &views))
    }

    /// Read one bypass code.
    #[oai(
        path = "/Users/:id/bypassCodes/:code_id",
        method = "get",
        operation_id = "getBypassCode"
    )]
    async fn get(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
        code_id: Path<String>,
    ) -> Result<CodeResponse, ScimError> {
        auth.require(BYPASS_CODES_MANAGE)?;
        let view = state.bypass.get(&UserId::new(id.0), &code_id.0).await?;
        Ok(CodeResponse::Ok(ScimJson::new(render_code(
            &base(state),
            &view,
            None,
        ))))
    }

    /// Revoke a bypass code.
    #[oai(
        path = "/Users/:id/bypassCodes/:code_id",
        method = "delete",
        operation_id = "revokeBypassCode"
    )]
    async fn revoke(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        code_id: Path<String>,
    ) -> Result<RevokeCodeResponse, ScimError> {
        auth.require(BYPASS_CODES_MANAGE)?;
        let ctx = context(&auth, remote.0);
        state
            .bypass
            .revoke(&UserId::new(id.0), &code_id.0, &ctx)
            .await?;
        Ok(RevokeCodeResponse::Revoked)
    }

    /// Email an active code to the user again. Send the code itself: the server stores
    /// only its hash, checks that it matches, and keeps nothing.
    #[oai(
        path = "/Users/:id/bypassCodes/:code_id/notifications",
        method = "post",
        operation_id = "notifyBypassCode"
    )]
    async fn notify(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        code_id: Path<String>,
        body: ScimJson<NotifyRequest>,
    ) -> Result<CodeResponse, ScimError> {
        auth.require(BYPASS_CODES_MANAGE)?;
        let ctx = context(&auth, remote.0);
        let code = required_string(
            &body.value,
            "code",
            "\"code\" is required: the code to send",
        )?;
        let view = state
            .bypass
            .notify(&UserId::new(id.0), &code_id.0, code, &ctx)
            .await?;
        Ok(CodeResponse::Ok(ScimJson::new(render_code(
            &base(state),
            &view,
            None,
        ))))
    }

    /// A bypass code's audit trail: generated, emailed, used, failed, revoked.
    #[oai(
        path = "/Users/:id/bypassCodes/:code_id/auditEvents",
        method = "get",
        operation_id = "listBypassCodeEvents"
    )]
    async fn events(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
        code_id: Path<String>,
    ) -> Result<AuditResponse, ScimError> {
        auth.require(BYPASS_CODES_MANAGE)?;
        let events = state.bypass.events(&UserId::new(id.0), &code_id.0).await?;
        let resources = events
            .into_iter()
            .map(|e| {
                json!({
                    "schemas": [AUDIT_EVENT_SCHEMA],
                    "event": e.event,
                    "at": format_time(e.at),
                    "actor": e.actor,
                    "clientId": e.client_id,
                    "ip": e.ip,
                    "detail": e.detail,
                })
            })
            .collect();
        Ok(AuditResponse::Ok(ScimJson::new(render_list(resources))))
    }

    /// The bypass-code policy (scope `bypass_codes:manage` or `bypass_codes:settings`).
    #[oai(
        path = "/BypassCodeSettings",
        method = "get",
        operation_id = "getBypassCodeSettings"
    )]
    async fn get_settings(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
    ) -> Result<SettingsResponse, ScimError> {
        // The help desk reads the limits it works within; only the policy scope changes them.
        auth.require_any(&[BYPASS_CODES_MANAGE, BYPASS_CODES_SETTINGS])?;
        let policy = state.bypass.policy().await?;
        Ok(SettingsResponse::Ok(ScimJson::new(render_settings(
            &base(state),
            &policy,
        ))))
    }

    /// Replace the bypass-code policy (scope `bypass_codes:settings`). Absent fields take
    /// their defaults; a `null` limit means no limit.
    #[oai(
        path = "/BypassCodeSettings",
        method = "put",
        operation_id = "replaceBypassCodeSettings"
    )]
    async fn put_settings(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        body: ScimJson<BypassCodeSettingsResource>,
    ) -> Result<SettingsResponse, ScimError> {
        auth.require(BYPASS_CODES_SETTINGS)?;
        let mut value = body.value;
        if let Some(object) = value.as_object_mut() {
            for read_only in ["schemas", "meta", "id"] {
                object.remove(read_only);
            }
        }
        let policy = Policy::from_json(&value)?;
        state
            .bypass
            .set_policy(&policy, &context(&auth, remote.0))
            .await?;
        Ok(SettingsResponse::Ok(ScimJson::new(render_settings(
            &base(state),
            &policy,
        ))))
    }
}

/// The signed-in user behind a token, with how they signed in; refused for client tokens.
async fn me(state: &AppState, auth: &ScimBearer) -> Result<(UserId, Vec<String>), ScimError> {
    auth.require(BYPASS_CODES_SELF)?;
    let principal = &auth.0;
    let grant_id = principal.grant.as_deref().ok_or_else(|| {
        ScimError::forbidden_detail("/Me needs a user's access token from a sign-in")
    })?;
    let grant = state
        .store
        .find_grant(grant_id)
        .await
        .map_err(|e| ScimError::from(crate::service::ServiceError::from(e)))?
        .ok_or_else(|| ScimError::unauthorized("the sign-in behind this token is gone", true))?;
    let user_id = UserId::new(principal.subject.clone());
    // A user deactivated since the sign-in keeps no access through older tokens.
    let active = state
        .users
        .get(&user_id)
        .await
        .map(|u| u.attributes.active != Some(false));
    if !matches!(active, Ok(true)) {
        return Err(ScimError::unauthorized(
            "the user of this token is inactive or gone",
            true,
        ));
    }
    Ok((
        user_id,
        grant.amr.split_whitespace().map(str::to_owned).collect(),
    ))
}

pub struct MeApi;

#[OpenApi(prefix_path = "/scim/v2", tag = "ApiTags::BypassCodes")]
impl MeApi {
    /// The signed-in user's own bypass codes (never their plaintext).
    #[oai(
        path = "/Me/bypassCodes",
        method = "get",
        operation_id = "listMyBypassCodes"
    )]
    async fn list(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        /// Only `status eq "active"|"expired"|"exhausted"|"revoked"`.
        filter: Query<Option<String>>,
    ) -> Result<CodeListResponse, ScimError> {
        let (user, _) = me(state, &auth).await?;
        let status = status_filter(filter.0.as_deref())?;
        let views = state.bypass.list(&user, status).await?;
        Ok(code_list(state, &views))
    }

    /// Generate a bypass code for yourself, to keep for when your phone is not at hand.
    /// Allowed by the self-service policy, and only after a sign-in with the authenticator
    /// app: a bypass code cannot mint more bypass codes.
    #[oai(
        path = "/Me/bypassCodes",
        method = "post",
        operation_id = "createMyBypassCode"
    )]
    async fn create(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        body: ScimJson<BypassCodeRequest>,
    ) -> Result<CreateCodeResponse, ScimError> {
        let (user, amr) = me(state, &auth).await?;
        if !amr.iter().any(|m| m == crate::domain::signin::AMR_OTP) {
            return Err(ScimError::forbidden_detail(
                "sign in with your authenticator app (not a bypass code) to generate bypass codes",
            ));
        }
        let ctx = context(&auth, remote.0);
        let created = state
            .bypass
            .create(&user, &body.value, Origin::SelfService, &ctx)
            .await?;
        Ok(created_response(state, &created))
    }

    /// One of your bypass codes.
    #[oai(
        path = "/Me/bypassCodes/:code_id",
        method = "get",
        operation_id = "getMyBypassCode"
    )]
    async fn get(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        code_id: Path<String>,
    ) -> Result<CodeResponse, ScimError> {
        let (user, _) = me(state, &auth).await?;
        let view = state.bypass.get(&user, &code_id.0).await?;
        Ok(CodeResponse::Ok(ScimJson::new(render_code(
            &base(state),
            &view,
            None,
        ))))
    }

    /// Revoke one of your bypass codes.
    #[oai(
        path = "/Me/bypassCodes/:code_id",
        method = "delete",
        operation_id = "revokeMyBypassCode"
    )]
    async fn revoke(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        code_id: Path<String>,
    ) -> Result<RevokeCodeResponse, ScimError> {
        let (user, _) = me(state, &auth).await?;
        state
            .bypass
            .revoke(&user, &code_id.0, &context(&auth, remote.0))
            .await?;
        Ok(RevokeCodeResponse::Revoked)
    }
}
