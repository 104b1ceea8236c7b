//! `/Users/{id}/bypassCodes…` (the help desk), `/Me/bypassCodes…` (the signed-in user) and
//! `/BypassCodeSettings`: thin handlers over
//! [`BypassCodeService`](crate::service::bypass::BypassCodeService). The admin and `/Me`
//! operations share one body ([`Codes`]); only how the [`Subject`] is found differs.

use std::sync::Arc;

use poem::web::Data;

use crate::edge::ClientAddr;
use poem_openapi::param::{Path, Query};
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::{Value, json};

use super::ApiTags;
use super::audit::render_event;
use super::auth::ScimBearer;
use super::error::ScimError;
use super::models::{
    AuditEventList, BypassCodeList, BypassCodeRequest, BypassCodeResource, BypassCodeSet,
    BypassCodeSetRequest, BypassCodeSettingsResource, NotifyRequest,
};
use super::payload::{ScimJson, list_response};
use crate::domain::bypass::{CodeStatus, Policy};
use crate::domain::ids::UserId;
use crate::domain::scim::filter::{CompareOp, Filter, Literal, parse_filter, too_long};
use crate::domain::scim::user::format_time;
use crate::domain::scim::{ScimType, ScimViolation};
use crate::service::bypass::{CodeView, Issued};
use crate::service::context::Context;
use crate::state::AppState;

pub const BYPASS_CODE_SCHEMA: &str = "urn:bypass-idp:params:scim:schemas:core:2.0:BypassCode";
pub const SETTINGS_SCHEMA: &str = "urn:bypass-idp:params:scim:schemas:core:2.0:BypassCodeSettings";
pub const SET_SCHEMA: &str = "urn:bypass-idp:params:scim:schemas:core:2.0:BypassCodeSet";
pub const AUDIT_EVENT_SCHEMA: &str = "urn:bypass-idp:params:scim:schemas:core:2.0:AuditEvent";

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
        "purpose": view.purpose.as_str(),
        "reason": view.reason,
        "startsAt": view.starts_at.map(format_time),
        "approval": view.approval.map(|a| a.as_str()),
        "decidedBy": view.decided_by,
        "decidedAt": view.decided_at.map(format_time),
        "lifetimeMinutes": view.lifetime_minutes,
        "sendTo": view.send_to,
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
            "lastModified": format_time(view.revoked_at.or(view.last_used_at).or(view.decided_at).unwrap_or(view.created_at)),
            "location": location,
        },
    });
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    body
}

/// Only `status eq "…"` filters bypass codes.
pub fn status_filter(filter: Option<&str>) -> Result<Option<CodeStatus>, ScimError> {
    // A blank filter is no filter; a long one is refused like any other (MAX_FILTER_LEN).
    let Some(text) = filter.filter(|f| !f.trim().is_empty() || too_long(f)) else {
        return Ok(None);
    };
    let invalid = || {
        ScimError::from(ScimViolation::new(
            ScimType::InvalidFilter,
            "bypass codes filter only as status eq \"active\" (or scheduled, pendingApproval, expired, exhausted, revoked)",
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
    let mut body = policy.to_json();
    body["schemas"] = json!([SETTINGS_SCHEMA]);
    body["meta"] = json!({"resourceType": "BypassCodeSettings", "location": format!("{base}/BypassCodeSettings")});
    body
}

/// The `size` of a set request: an object with at most `schemas` and `size`.
fn set_size(body: &Value) -> Result<Option<i64>, ScimError> {
    let invalid =
        |detail: &str| ScimError::from(ScimViolation::new(ScimType::InvalidValue, detail));
    let object = body
        .as_object()
        .ok_or_else(|| invalid("the request body must be a JSON object"))?;
    if let Some(name) = object.keys().find(|k| {
        !["schemas", "size"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(k))
    }) {
        return Err(invalid(&format!(
            "unknown member \"{name}\"; a set request takes only \"size\""
        )));
    }
    match object.iter().find(|(k, _)| k.eq_ignore_ascii_case("size")) {
        None => Ok(None),
        Some((_, Value::Null)) => Ok(None),
        Some((_, size)) => size
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid("\"size\" must be a whole number")),
    }
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
    /// The policy holds this code for a second person (`approvalRequired`): the request is
    /// recorded with `status: "pendingApproval"` and no code exists yet. Someone else with
    /// `bypass_codes:approve` approves it at `…/approval`; the code is then made and emailed
    /// to the user, and no administrator sees it.
    #[oai(status = 202)]
    Pending(
        ScimJson<BypassCodeResource>,
        #[oai(header = "Location")] String,
    ),
}

#[derive(ApiResponse)]
pub enum SetResponse {
    /// The new set: its codes appear in this answer only. The previous set no longer works.
    #[oai(status = 201)]
    Created(
        ScimJson<BypassCodeSet>,
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

/// Whose codes a request works on, and who asks (with what authority). Whether they may is
/// the service's decision ([`crate::domain::access`]), the same for every door.
pub struct Subject {
    user_id: UserId,
    ctx: Context,
}

impl Subject {
    /// The user named in the path.
    async fn named(
        state: &AppState,
        auth: &ScimBearer,
        remote: &ClientAddr,
        id: String,
    ) -> Result<Self, ScimError> {
        Ok(Self {
            user_id: UserId::new(id),
            ctx: auth.acting(state, remote).await?,
        })
    }

    /// The signed-in user behind a user token; refused for a client's own token.
    async fn me(
        state: &AppState,
        auth: &ScimBearer,
        remote: &ClientAddr,
    ) -> Result<Self, ScimError> {
        let session = state.oauth.session(&auth.0).await?.ok_or_else(|| {
            ScimError::forbidden_detail("/Me needs a user's access token from a sign-in")
        })?;
        Ok(Self {
            user_id: session.user_id,
            ctx: auth
                .context(remote)
                .with_authority(auth.0.scopes.clone(), session.amr),
        })
    }
}

/// The operations on a subject's codes, shared by [`BypassCodesApi`] and [`MeApi`].
struct Codes;

impl Codes {
    async fn create(
        state: &AppState,
        subject: Subject,
        body: &Value,
    ) -> Result<CreateCodeResponse, ScimError> {
        let created = match state
            .bypass
            .create(&subject.user_id, body, &subject.ctx)
            .await?
        {
            Issued::Code(created) => created,
            Issued::Pending(view) => {
                let body = render_code(&state.scim_base(), &view, None);
                let location = body["meta"]["location"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                return Ok(CreateCodeResponse::Pending(ScimJson::new(body), location));
            }
        };
        let body = render_code(
            &state.scim_base(),
            &created.view,
            Some(created.code.expose()),
        );
        let location = body["meta"]["location"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // The only place the plaintext appears: never cached.
        Ok(CreateCodeResponse::Created(
            ScimJson::new(body),
            location,
            "no-store".into(),
        ))
    }

    async fn list(
        state: &AppState,
        subject: Subject,
        filter: Option<&str>,
    ) -> Result<CodeListResponse, ScimError> {
        let status = status_filter(filter)?;
        let views = state
            .bypass
            .list(&subject.user_id, status, &subject.ctx)
            .await?;
        let base = state.scim_base();
        let resources: Vec<Value> = views.iter().map(|v| render_code(&base, v, None)).collect();
        let total = resources.len() as u64;
        Ok(CodeListResponse::Ok(ScimJson::written(&list_response(
            resources, total, 1,
        ))))
    }

    async fn get(
        state: &AppState,
        subject: Subject,
        code_id: &str,
    ) -> Result<CodeResponse, ScimError> {
        let view = state
            .bypass
            .get(&subject.user_id, code_id, &subject.ctx)
            .await?;
        Ok(Self::one(state, &view))
    }

    async fn revoke(
        state: &AppState,
        subject: Subject,
        code_id: &str,
    ) -> Result<RevokeCodeResponse, ScimError> {
        state
            .bypass
            .revoke(&subject.user_id, code_id, &subject.ctx)
            .await?;
        Ok(RevokeCodeResponse::Revoked)
    }

    fn one(state: &AppState, view: &CodeView) -> CodeResponse {
        CodeResponse::Ok(ScimJson::new(render_code(&state.scim_base(), view, None)))
    }
}

pub struct BypassCodesApi;

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
        let subject = Subject::named(state, &auth, remote.0, id.0).await?;
        Codes::create(state, subject, &body.value).await
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
        remote: Data<&ClientAddr>,
        id: Path<String>,
        /// Only `status eq "active"|"scheduled"|"pendingApproval"|"expired"|"exhausted"|"revoked"`.
        filter: Query<Option<String>>,
    ) -> Result<CodeListResponse, ScimError> {
        let subject = Subject::named(state, &auth, remote.0, id.0).await?;
        Codes::list(state, subject, filter.0.as_deref()).await
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
        remote: Data<&ClientAddr>,
        id: Path<String>,
        code_id: Path<String>,
    ) -> Result<CodeResponse, ScimError> {
        let subject = Subject::named(state, &auth, remote.0, id.0).await?;
        Codes::get(state, subject, &code_id.0).await
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
        let subject = Subject::named(state, &auth, remote.0, id.0).await?;
        Codes::revoke(state, subject, &code_id.0).await
    }

    /// Approve a request for a code that waits for a second person (`pendingApproval`).
    /// Needs `bypass_codes:approve`, and someone other than the requester. The code is made
    /// now (the user's eligibility checked again) and emailed to the user; this answer never
    /// carries it. A request older than 24 hours has expired (409).
    #[oai(
        path = "/Users/:id/bypassCodes/:code_id/approval",
        method = "post",
        operation_id = "approveBypassCode"
    )]
    async fn approve(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        code_id: Path<String>,
    ) -> Result<CodeResponse, ScimError> {
        let subject = Subject::named(state, &auth, remote.0, id.0).await?;
        let view = state
            .bypass
            .approve(&subject.user_id, &code_id.0, &subject.ctx)
            .await?;
        Ok(Codes::one(state, &view))
    }

    /// Close a request waiting for approval: the requester withdraws it (`withdrawn`), an
    /// approver rejects it (`rejected`). It is kept, revoked, for audit.
    #[oai(
        path = "/Users/:id/bypassCodes/:code_id/approval",
        method = "delete",
        operation_id = "rejectBypassCode"
    )]
    async fn reject(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        code_id: Path<String>,
    ) -> Result<CodeResponse, ScimError> {
        let subject = Subject::named(state, &auth, remote.0, id.0).await?;
        let view = state
            .bypass
            .cancel_request(&subject.user_id, &code_id.0, &subject.ctx)
            .await?;
        Ok(Codes::one(state, &view))
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
        let subject = Subject::named(state, &auth, remote.0, id.0).await?;
        let code = required_string(
            &body.value,
            "code",
            "\"code\" is required: the code to send",
        )?;
        let view = state
            .bypass
            .notify(&subject.user_id, &code_id.0, code, &subject.ctx)
            .await?;
        Ok(Codes::one(state, &view))
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
        remote: Data<&ClientAddr>,
        id: Path<String>,
        code_id: Path<String>,
    ) -> Result<AuditResponse, ScimError> {
        let subject = Subject::named(state, &auth, remote.0, id.0).await?;
        let events = state
            .bypass
            .events(&subject.user_id, &code_id.0, &subject.ctx)
            .await?;
        let resources: Vec<Value> = events.iter().map(render_event).collect();
        let total = resources.len() as u64;
        Ok(AuditResponse::Ok(ScimJson::written(&list_response(
            resources, total, 1,
        ))))
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
        remote: Data<&ClientAddr>,
    ) -> Result<SettingsResponse, ScimError> {
        // The help desk reads the limits it works within; only the policy scope changes them.
        let ctx = auth.acting(state, remote.0).await?;
        let policy = state.bypass.read_policy(&ctx).await?;
        Ok(SettingsResponse::Ok(ScimJson::new(render_settings(
            &state.scim_base(),
            &policy,
        ))))
    }

    /// Replace the bypass-code policy (scope `bypass_codes:settings`). Absent members take
    /// their defaults; `null` and unknown members are refused (400); a limit is lifted only by
    /// its `…Unlimited: true` switch.
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
        let ctx = auth.acting(state, remote.0).await?;
        let mut value = body.value;
        if let Some(object) = value.as_object_mut() {
            // `schemas` stays: Policy::from_json checks its type.
            for read_only in ["meta", "id"] {
                object.remove(read_only);
            }
        }
        let policy = state.bypass.replace_policy(&value, &ctx).await?;
        Ok(SettingsResponse::Ok(ScimJson::new(render_settings(
            &state.scim_base(),
            &policy,
        ))))
    }
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
        remote: Data<&ClientAddr>,
        /// Only `status eq "active"|"scheduled"|"pendingApproval"|"expired"|"exhausted"|"revoked"`.
        filter: Query<Option<String>>,
    ) -> Result<CodeListResponse, ScimError> {
        let subject = Subject::me(state, &auth, remote.0).await?;
        Codes::list(state, subject, filter.0.as_deref()).await
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
        let subject = Subject::me(state, &auth, remote.0).await?;
        Codes::create(state, subject, &body.value).await
    }

    /// Make a printable set of once-codes for yourself (the policy's `selfServiceSetSize`,
    /// or `size` up to it). They do not count toward `maxActive`; the previous set stops
    /// working. The codes appear in this answer only. Needs a sign-in with the
    /// authenticator app.
    #[oai(
        path = "/Me/bypassCodeSets",
        method = "post",
        operation_id = "createMyBypassCodeSet"
    )]
    async fn create_set(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        body: ScimJson<BypassCodeSetRequest>,
    ) -> Result<SetResponse, ScimError> {
        let subject = Subject::me(state, &auth, remote.0).await?;
        let size = set_size(&body.value)?;
        let set = state
            .bypass
            .create_set(&subject.user_id, size, &subject.ctx)
            .await?;
        let base = state.scim_base();
        let body = json!({
            "schemas": [SET_SCHEMA],
            "codes": set.codes.iter().map(|c| c.expose()).collect::<Vec<_>>(),
            "Resources": set.views.iter().map(|v| render_code(&base, v, None)).collect::<Vec<_>>(),
        });
        Ok(SetResponse::Created(ScimJson::new(body), "no-store".into()))
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
        remote: Data<&ClientAddr>,
        code_id: Path<String>,
    ) -> Result<CodeResponse, ScimError> {
        let subject = Subject::me(state, &auth, remote.0).await?;
        Codes::get(state, subject, &code_id.0).await
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
        let subject = Subject::me(state, &auth, remote.0).await?;
        Codes::revoke(state, subject, &code_id.0).await
    }
}
