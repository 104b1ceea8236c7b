//! A user's audit trail, resetting 2-step verification, and the bypass-code policy.
use super::*;
use crate::domain::audit::{AuditEvent, AuditQuery};
use crate::domain::bypass::policy::unlimited_member;

/// A user's audit trail (help desk).
#[handler]
pub async fn audit(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path(id): Path<String>,
) -> Response {
    let back = user_path(&id);
    let session = or_respond!(
        permitted(
            state,
            jar,
            &format!("{back}/audit"),
            Some(BYPASS_CODES_MANAGE)
        )
        .await
    );
    let user_id = UserId::new(id);
    let (user, events) = match (
        state.users.get(&user_id).await,
        state
            .bypass
            .user_events(&user_id, &ctx(&session, addr))
            .await,
    ) {
        (Ok(u), Ok(e)) => (u, e),
        (Err(e), _) | (_, Err(e)) => return failure(e),
    };
    let events = audit_rows(&events);
    let title = format!("Audit: {}", user.attributes.user_name);
    let body = render(
        "audit.html",
        merged(
            frame(&session, &title),
            context! { events, back, user_name => user.attributes.user_name },
        ),
    );
    page(StatusCode::OK, body)
}

/// The audit log of every user and of the service (security administrators), newest first,
/// narrowed to one kind of event when asked.
#[handler]
pub async fn audit_log(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(permitted(state, jar, "/console/audit", Some(AUDIT_READ)).await);
    let chosen = query.get("event").and_then(|e| AuditEvent::parse(e));
    let filter = AuditQuery {
        event: chosen,
        ..AuditQuery::default()
    };
    let (events, total) = match state
        .audit
        .search(&filter, 1, 200, &ctx(&session, addr))
        .await
    {
        Ok(found) => found,
        Err(e) => return failure(e),
    };
    let kinds: Vec<&str> = AuditEvent::ALL.iter().map(|e| e.as_str()).collect();
    let body = render(
        "audit.html",
        merged(
            frame(&session, "Audit log"),
            context! {
                events => audit_rows(&events), total, kinds,
                chosen => chosen.map(AuditEvent::as_str),
            },
        ),
    );
    page(StatusCode::OK, body)
}

/// Reset 2-step verification: a confirmation page, then the reset (security administrators).
#[handler]
pub async fn reset_form(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(id): Path<String>,
) -> Response {
    let back = user_path(&id);
    let session =
        or_respond!(permitted(state, jar, &format!("{back}/reset"), Some(MFA_MANAGE)).await);
    let user = match state.users.get(&UserId::new(id)).await {
        Ok(u) => u,
        Err(e) => return failure(e),
    };
    let action = format!("{back}/reset");
    let needs_code = match state.bypass.policy().await {
        Ok(policy) => policy.reenrolment_requires_code,
        Err(e) => return failure(e),
    };
    let may_generate = session.may(BYPASS_CODES_MANAGE);
    let body = render(
        "reset.html",
        merged(
            frame(&session, "Reset 2-step verification"),
            context! { user_name => user.attributes.user_name, action, back, needs_code, may_generate },
        ),
    );
    page(StatusCode::OK, body)
}

#[handler]
pub async fn reset(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let back = user_path(&id);
    let session = or_respond!(permitted(state, jar, &back, Some(MFA_MANAGE)).await);
    if !csrf_ok(&session, &form) {
        return forged();
    }
    match state
        .mfa
        .reset(&UserId::new(id), &ctx(&session, addr))
        .await
    {
        Ok(()) if form.get("then").is_some_and(|t| t == "generate") => {
            see_other(&format!("{back}/generate?purpose=enrolment"))
        }
        Ok(()) => see_other(&format!("{back}?notice=reset")),
        Err(e) => failure(e),
    }
}

fn policy_page(
    session: &ConsoleSession,
    policy: &Policy,
    notice: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let body = render(
        "policy.html",
        merged(
            frame(session, "Bypass-code policy"),
            context! { policy => Value::from_serialize(policy.to_json()), notice, error },
        ),
    );
    page(status, body)
}

#[handler]
pub async fn policy_form(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
) -> Response {
    let session =
        or_respond!(permitted(state, jar, "/console/policy", Some(BYPASS_CODES_SETTINGS)).await);
    match state.bypass.read_policy(&ctx(&session, addr)).await {
        Ok(policy) => policy_page(&session, &policy, None, None, StatusCode::OK),
        Err(e) => failure(e),
    }
}

#[handler]
pub async fn policy_save(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session =
        or_respond!(permitted(state, jar, "/console/policy", Some(BYPASS_CODES_SETTINGS)).await);
    if !csrf_ok(&session, &form) {
        return forged();
    }
    let current = match state.bypass.policy().await {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    // The policy in force, with what the form sends over it: numbers as numbers, an empty
    // limit as no limit, an empty number as it was. A member the form does not show (a page
    // older than the member) keeps its value, so saving an old page changes nothing else.
    let serde_json::Value::Object(mut body) = current.to_json() else {
        return failure(ServiceError::bug("the policy's API form is an object"));
    };
    for name in [
        "codeLength",
        "maxActive",
        "helpDeskMaxUsage",
        "helpDeskMaxExpiryMinutes",
        "selfServiceMaxUsage",
        "selfServiceMaxExpiryMinutes",
        "bypassSessionMaxMinutes",
        "maxStartDelayDays",
        "selfServiceSetSize",
    ] {
        let Some(text) = form.get(name).map(|v| v.trim()) else {
            continue;
        };
        let limit = name.ends_with("MaxUsage") || name.ends_with("MaxExpiryMinutes");
        if text.is_empty() {
            if limit {
                body.remove(name);
                body.insert(unlimited_member(name), json!(true));
            }
            continue;
        }
        let value = match text.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(text),
        };
        if limit {
            body.remove(&unlimited_member(name));
        }
        body.insert(name.to_owned(), value);
    }
    for name in ["authenticatorReplacement", "approvalRequired"] {
        if let Some(mode) = form.get(name) {
            body.insert(name.into(), json!(mode));
        }
    }
    // A box not ticked sends nothing: the form lists the boxes it shows (a page from before
    // the list showed these three).
    let shown = form.get("shown").map_or(
        "helpDeskGenerationEnabled selfServiceGenerationEnabled reenrolmentRequiresCode",
        String::as_str,
    );
    for name in [
        "helpDeskGenerationEnabled",
        "selfServiceGenerationEnabled",
        "reenrolmentRequiresCode",
        "reasonRequired",
        "notifyUserOnIssue",
        "notifyUserOnUse",
    ] {
        if shown.split_whitespace().any(|n| n == name) {
            body.insert(
                name.to_owned(),
                json!(form.get(name).is_some_and(|v| v == "true")),
            );
        }
    }
    let body = serde_json::Value::Object(body);
    match state
        .bypass
        .replace_policy(&body, &ctx(&session, addr))
        .await
    {
        Ok(policy) => policy_page(
            &session,
            &policy,
            Some("The policy is saved."),
            None,
            StatusCode::OK,
        ),
        Err(ServiceError::Invalid(v)) => policy_page(
            &session,
            &current,
            None,
            Some(v.detail),
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => failure(e),
    }
}
