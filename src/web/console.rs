//! The help-desk console at `/console` and "My security" at `/account`: server-rendered
//! pages over the services, for a person signed in through this service's own OIDC flow.
//! Who may do what follows the scopes their roles gave the sign-in.

use std::collections::HashMap;
use std::sync::Arc;

use minijinja::{Value, context};
use poem::http::{StatusCode, header};
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem::web::{Data, Form, Path, Query};
use poem::{Response, handler};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{SERVICE_NAME, render, see_other};
use crate::domain::bypass::{Origin, Policy, check_minting};
use crate::domain::ids::{ClientId, UserId};
use crate::domain::roles::CONSOLE_CLIENT_ID;
use crate::domain::scim::search::SearchParams;
use crate::domain::scim::user::User;
use crate::domain::scope::{
    BYPASS_CODES_MANAGE, BYPASS_CODES_SELF, BYPASS_CODES_SETTINGS, MFA_MANAGE, MFA_READ, USERS_READ,
};
use crate::domain::totp::TotpStatus;
use crate::edge::ClientAddr;
use crate::service::ServiceError;
use crate::service::bypass::{CodeView, Created};
use crate::service::console::{ConsoleSession, LOGIN_TTL, LoginRefused};
use crate::service::context::Context;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "bidp_console";
/// The state of a console sign-in in progress, bound to the browser that started it.
const LOGIN_COOKIE: &str = "bidp_console_login";
const PAGE_SIZE: u64 = 25;

/// The console's pages may run its one script (the Copy button); nothing inline.
const CONSOLE_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("X-Frame-Options", "DENY")
        .header("Content-Security-Policy", CONSOLE_CSP)
        .header("Referrer-Policy", "no-referrer")
        .body(body)
}

fn message(status: StatusCode, title: &str, detail: &str) -> Response {
    page(
        status,
        render(
            "message.html",
            context! { title, service => SERVICE_NAME, detail },
        ),
    )
}

fn failure(err: ServiceError) -> Response {
    match err {
        ServiceError::NotFound(what) => message(
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("No such {what}."),
        ),
        ServiceError::Unavailable(_) => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The console cannot reach a service it needs. Wait a minute and reload.",
        ),
        other => {
            tracing::error!(error = %other, "console request failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Please try again later.",
            )
        }
    }
}

fn forbidden() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "No access",
        "Your account has no help-desk or administrator role, so the console is closed to you. Ask an administrator to add you to the help-desk group, or go to My security at /account.",
    )
}

/// The signed-in person, or the response that sends them to sign in.
async fn signed_in(
    state: &AppState,
    jar: &CookieJar,
    return_to: &str,
) -> Result<ConsoleSession, Response> {
    let id = jar.get(SESSION_COOKIE).map(|c| c.value_str().to_owned());
    if let Some(id) = id {
        match state.console.session(&id).await {
            Ok(Some(session)) => return Ok(session),
            Ok(None) => jar.remove(SESSION_COOKIE),
            Err(e) => return Err(failure(e)),
        }
    }
    match state.console.begin_login(return_to) {
        Ok((url, login)) => {
            let mut cookie = Cookie::new_with_str(LOGIN_COOKIE, login);
            cookie.set_http_only(true);
            cookie.set_same_site(SameSite::Lax);
            cookie.set_path("/console");
            cookie.set_max_age(LOGIN_TTL);
            cookie.set_secure(state.issuer.starts_with("https://"));
            jar.add(cookie);
            Err(see_other(&url))
        }
        Err(e) => Err(failure(e)),
    }
}

/// The value in `Ok`, or the handler returns the response in `Err`.
macro_rules! or_respond {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

/// An administrator's session that may use `scope` (when one is named), or the response
/// that signs them in or says no.
async fn permitted(
    state: &AppState,
    jar: &CookieJar,
    return_to: &str,
    scope: Option<&str>,
) -> Result<ConsoleSession, Response> {
    let session = administrator(state, jar, return_to).await?;
    match scope {
        Some(scope) if !session.may(scope) => Err(forbidden()),
        _ => Ok(session),
    }
}

/// A console page for administrators only.
async fn administrator(
    state: &AppState,
    jar: &CookieJar,
    return_to: &str,
) -> Result<ConsoleSession, Response> {
    let session = signed_in(state, jar, return_to).await?;
    if session.is_administrator() {
        Ok(session)
    } else {
        Err(forbidden())
    }
}

fn csrf_ok(session: &ConsoleSession, form: &HashMap<String, String>) -> bool {
    let sent = form.get("csrf").map(String::as_str).unwrap_or_default();
    bool::from(session.csrf.as_bytes().ct_eq(sent.as_bytes()))
}

fn forged() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "Form not accepted",
        "The form did not come from this console session. Reload the page and try again.",
    )
}

fn ctx(session: &ConsoleSession, addr: &ClientAddr) -> Context {
    Context::user(
        session.user_id.clone(),
        Some(ClientId::new(CONSOLE_CLIENT_ID)),
        addr.0,
    )
}

/// What every console page shows in its header.
fn frame(session: &ConsoleSession, title: &str) -> Value {
    context! {
        title, service => SERVICE_NAME, csrf => session.csrf, me => session.user_name,
        admin => session.is_administrator(), may_policy => session.may(BYPASS_CODES_SETTINGS),
    }
}

/// A page's own values over the frame's (the first of two equal names wins).
fn merged(base: Value, extra: Value) -> Value {
    context! { ..extra, ..base }
}

fn person(user: &User) -> Value {
    let a = &user.attributes;
    let name = a
        .name
        .formatted
        .clone()
        .or_else(|| a.display_name.clone())
        .unwrap_or_else(|| {
            [a.name.given_name.as_deref(), a.name.family_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        });
    let email = a
        .emails
        .iter()
        .find(|e| e.primary)
        .or(a.emails.first())
        .map(|e| e.value.clone())
        .unwrap_or_default();
    context! {
        id => user.id.as_str(), user_name => a.user_name, name, email,
        status => if a.active == Some(false) { "inactive" } else { "active" },
    }
}

fn two_step(status: TotpStatus) -> &'static str {
    match status {
        TotpStatus::Enrolled => "Enrolled (authenticator app)",
        TotpStatus::Pending => "Enrolment started, not confirmed",
        TotpStatus::None => "Not enrolled",
    }
}

fn codes(views: &[CodeView]) -> Vec<Value> {
    views
        .iter()
        .map(|c| {
            context! {
                id => c.id, status => c.status.as_str(), created => when(c.created_at),
                uses_left => c.remaining.map_or("unlimited".to_owned(), |r| r.to_string()),
                expires => c.expires_at.map_or("never".to_owned(), when),
                created_by => c.created_by,
                last_used => c.last_used_at.map_or("—".to_owned(), when),
            }
        })
        .collect()
}

#[derive(serde::Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[handler]
pub async fn home(Data(state): Data<&Arc<AppState>>, jar: &CookieJar) -> Response {
    match administrator(state, jar, "/console").await {
        Ok(_) => see_other("/console/users"),
        Err(response) => response,
    }
}

#[handler]
pub async fn callback(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<Callback>,
) -> Response {
    let Some(login) = query.state else {
        return message(
            StatusCode::BAD_REQUEST,
            "Sign-in not accepted",
            "The sign-in answer had no state. Go to /console and sign in again.",
        );
    };
    // Only the browser that started this sign-in holds its state and verifier (no login CSRF).
    let login_cookie = jar.get(LOGIN_COOKIE).map(|c| c.value_str().to_owned());
    jar.remove(LOGIN_COOKIE);
    match state
        .console
        .finish_login(
            query.code.as_deref(),
            &login,
            query.error.as_deref(),
            login_cookie.as_deref(),
        )
        .await
    {
        Ok((id, _session, return_to)) => {
            let mut cookie = Cookie::new_with_str(SESSION_COOKIE, id);
            cookie.set_http_only(true);
            cookie.set_same_site(SameSite::Lax);
            cookie.set_path("/");
            cookie.set_secure(state.issuer.starts_with("https://"));
            jar.add(cookie);
            see_other(&return_to)
        }
        Err(LoginRefused::UnknownState) => message(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was not started in this browser, took too long, or was already used. Go to /console and sign in again.",
        ),
        Err(LoginRefused::Denied(why)) => {
            tracing::info!(reason = %why, "console sign-in refused");
            message(
                StatusCode::FORBIDDEN,
                "Sign-in not completed",
                "The sign-in did not complete. Go to /console and sign in again.",
            )
        }
        Err(LoginRefused::Failed(e)) => failure(e),
    }
}

#[handler]
pub async fn logout(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(id) = jar.get(SESSION_COOKIE).map(|c| c.value_str().to_owned()) else {
        return see_other("/console");
    };
    if let Ok(Some(session)) = state.console.session(&id).await
        && !csrf_ok(&session, &form)
    {
        return forged();
    }
    if let Err(e) = state.console.end(&id).await {
        return failure(e);
    }
    jar.remove(SESSION_COOKIE);
    message(
        StatusCode::OK,
        "Signed out",
        "You are signed out of the console.",
    )
}

#[derive(serde::Deserialize)]
pub struct Search {
    q: Option<String>,
    page: Option<u64>,
}

/// `userName`, name or email containing the words typed.
fn search_filter(q: &str) -> Option<String> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let literal = serde_json::Value::from(q).to_string();
    Some(format!(
        "userName co {literal} or name.givenName co {literal} or name.familyName co {literal} or displayName co {literal} or emails.value co {literal}"
    ))
}

#[handler]
pub async fn users_page(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(search): Query<Search>,
) -> Response {
    let session = or_respond!(permitted(state, jar, "/console/users", Some(USERS_READ)).await);
    let q: String = search.q.unwrap_or_default().chars().take(128).collect();
    let page_no = search.page.unwrap_or(1).clamp(1, 10_000);
    let params = SearchParams {
        filter: search_filter(&q),
        start_index: (page_no - 1) * PAGE_SIZE + 1,
        count: PAGE_SIZE,
        ..Default::default()
    };
    let found = match state.users.list(&params).await {
        Ok(found) => found,
        Err(e) => return failure(e),
    };
    let users: Vec<Value> = found.users.iter().map(person).collect();
    let next = (page_no * PAGE_SIZE < found.total).then_some(page_no + 1);
    let prev = (page_no > 1).then_some(page_no - 1);
    let body = render(
        "users.html",
        merged(
            frame(&session, "Users"),
            context! { q, users, total => found.total, next, prev },
        ),
    );
    page(StatusCode::OK, body)
}

#[handler]
pub async fn user_page(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = format!(
        "/console/users/{}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    let session = or_respond!(permitted(state, jar, &path, Some(USERS_READ)).await);
    let user_id = UserId::new(id);
    let found = match state.users.get(&user_id).await {
        Ok(u) => u,
        Err(e) => return failure(e),
    };
    let status = if session.may(MFA_READ) {
        state.mfa.status(&user_id).await
    } else {
        Ok(TotpStatus::None)
    };
    let views = if session.may(BYPASS_CODES_MANAGE) {
        state.bypass.list(&user_id, None).await
    } else {
        Ok(Vec::new())
    };
    let (status, views) = match (status, views) {
        (Ok(s), Ok(v)) => (s, v),
        (Err(e), _) | (_, Err(e)) => return failure(e),
    };
    let notice = query.get("notice").and_then(|n| match n.as_str() {
        "revoked" => Some("The bypass code is revoked."),
        "reset" => Some("2-step verification is reset: the authenticator, every bypass code and every sign-in of this user are gone."),
        _ => None,
    });
    let body = render(
        "user.html",
        merged(
            frame(&session, &found.attributes.user_name),
            context! {
                user => person(&found), two_step => two_step(status), codes => codes(&views),
                may_manage => session.may(BYPASS_CODES_MANAGE), may_reset => session.may(MFA_MANAGE),
                revoke_base => format!("{path}/codes"), notice,
            },
        ),
    );
    page(StatusCode::OK, body)
}

/// The generate form's fields, as typed.
fn form_values(form: &HashMap<String, String>) -> Value {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    context! { expiry => get("expiry"), days => get("days"), hours => get("hours"), minutes => get("minutes"), usage => get("usage"), times => get("times") }
}

/// The create body the form asks for, or the field that is wrong.
fn create_body(
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, (&'static str, String)> {
    let number = |field: &'static str, key: &str| -> Result<i64, (&'static str, String)> {
        let text = form.get(key).map(|s| s.trim()).unwrap_or_default();
        if text.is_empty() {
            return Ok(0);
        }
        text.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or((field, format!("{key} must be a whole number")))
    };
    let mut body = json!({});
    if form.get("expiry").map(String::as_str) == Some("never") {
        body["neverExpires"] = json!(true);
    } else {
        let (d, h, m) = (
            number("expiry", "days")?,
            number("expiry", "hours")?,
            number("expiry", "minutes")?,
        );
        if d.saturating_add(h).saturating_add(m) == 0 {
            return Err((
                "expiry",
                "Say in how many days, hours or minutes the code expires, or choose Never expires."
                    .into(),
            ));
        }
        body["expiresIn"] = json!({"days": d, "hours": h, "minutes": m});
    }
    match form.get("usage").map(String::as_str) {
        Some("unlimited") => body["unlimitedUsage"] = json!(true),
        Some("times") => {
            let n = number("usage", "times")?;
            if n == 0 {
                return Err(("usage", "Say how many times the code may be used.".into()));
            }
            body["maxUsageCount"] = json!(n);
        }
        _ => body["maxUsageCount"] = json!(1),
    }
    Ok(body)
}

/// A refusal in the words of the form: the API's member names become the labels a person
/// sees.
fn in_form_words(detail: &str) -> String {
    [
        ("\"expiresIn\"", "Expires in"),
        ("\"neverExpires\"", "Never expires"),
        ("\"maxUsageCount\"", "Number of times"),
        ("\"unlimitedUsage\"", "Unlimited"),
        ("helpDesk policy", "help-desk policy"),
        ("selfService policy", "self-service policy"),
    ]
    .iter()
    .fold(detail.to_owned(), |text, (api, label)| {
        text.replace(api, label)
    })
}

/// A time as people read it, in UTC.
fn when(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Which field a refusal of the service is about.
fn field_of(detail: &str) -> &'static str {
    if detail.contains("expiresIn") || detail.contains("neverExpires") {
        "expiry"
    } else if detail.contains("maxUsageCount") || detail.contains("unlimitedUsage") {
        "usage"
    } else {
        "general"
    }
}

fn limits(policy: &Policy, origin: Origin) -> Value {
    let (expiry, usage) = match origin {
        Origin::HelpDesk => (
            policy.help_desk_max_expiry_minutes,
            policy.help_desk_max_usage,
        ),
        Origin::SelfService => (
            policy.self_service_max_expiry_minutes,
            policy.self_service_max_usage,
        ),
    };
    context! {
        expiry => expiry.map_or("Policy: any expiry, or never.".to_owned(), |m| format!("Policy: at most {m} minutes ({}); never is not allowed.", human_minutes(m))),
        usage => usage.map_or("Policy: any number of uses, or unlimited.".to_owned(), |n| format!("Policy: at most {n} use{}; unlimited is not allowed.", if n == 1 { "" } else { "s" })),
    }
}

fn human_minutes(minutes: i64) -> String {
    let (d, h, m) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    [(d, "day"), (h, "hour"), (m, "minute")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whom a generate page is for, and where its form and links go.
struct Target {
    user_id: UserId,
    origin: Origin,
    action: String,
    back: String,
    email_action_base: String,
}

fn target_for(session: &ConsoleSession, id: Option<String>) -> Target {
    match id {
        Some(id) => {
            let base = format!(
                "/console/users/{}",
                url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            );
            Target {
                user_id: UserId::new(id),
                origin: Origin::HelpDesk,
                action: format!("{base}/generate"),
                back: base.clone(),
                email_action_base: format!("{base}/codes"),
            }
        }
        None => Target {
            user_id: session.user_id.clone(),
            origin: Origin::SelfService,
            action: "/account/generate".into(),
            back: "/account".into(),
            email_action_base: "/account/codes".into(),
        },
    }
}

async fn generate_page(
    state: &AppState,
    session: &ConsoleSession,
    target: &Target,
    form: &HashMap<String, String>,
    errors: Value,
    status: StatusCode,
) -> Response {
    let user = match state.users.get(&target.user_id).await {
        Ok(u) => u,
        Err(e) => return failure(e),
    };
    let (enrolled, policy) = match (
        state.mfa.status(&target.user_id).await,
        state.bypass.policy().await,
    ) {
        (Ok(s), Ok(p)) => (s == TotpStatus::Enrolled, p),
        (Err(e), _) | (_, Err(e)) => return failure(e),
    };
    let body = render(
        "generate.html",
        merged(
            frame(session, "Generate bypass code"),
            context! {
                enrolled, user_name => user.attributes.user_name, action => target.action, back => target.back,
                form => form_values(form), errors, limits => limits(&policy, target.origin),
            },
        ),
    );
    page(status, body)
}

fn code_page(
    session: &ConsoleSession,
    target: &Target,
    user_name: &str,
    created: &Created,
    sent: Option<String>,
    failed: Option<String>,
    may_email: bool,
) -> Response {
    let view = &created.view;
    let summary = format!(
        "{}, {}",
        view.expires_at
            .map_or("never expires".to_owned(), |t| format!(
                "expires {}",
                when(t)
            )),
        view.max_uses
            .map_or("unlimited uses".to_owned(), |n| if n == 1 {
                "usable once".to_owned()
            } else {
                format!("usable {n} times")
            }),
    );
    let body = render(
        "code.html",
        merged(
            frame(session, "Bypass code"),
            context! {
                user_name, summary, code => created.code.expose(), sent, failed, may_email,
                email_action => format!("{}/{}/email", target.email_action_base, view.id), back => target.back,
            },
        ),
    );
    page(StatusCode::OK, body)
}

async fn generate(
    state: &AppState,
    session: &ConsoleSession,
    target: Target,
    addr: &ClientAddr,
    form: HashMap<String, String>,
) -> Response {
    if !csrf_ok(session, &form) {
        return forged();
    }
    let body = match create_body(&form) {
        Ok(body) => body,
        Err((field, text)) => {
            return generate_page(
                state,
                session,
                &target,
                &form,
                Value::from_serialize(HashMap::from([(field, text)])),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    match state
        .bypass
        .create(&target.user_id, &body, target.origin, &ctx(session, addr))
        .await
    {
        Ok(created) => {
            let user_name = match state.users.get(&target.user_id).await {
                Ok(u) => u.attributes.user_name,
                Err(e) => return failure(e),
            };
            code_page(session, &target, &user_name, &created, None, None, true)
        }
        Err(ServiceError::Invalid(v)) => {
            let errors = HashMap::from([(field_of(&v.detail), in_form_words(&v.detail))]);
            generate_page(
                state,
                session,
                &target,
                &form,
                Value::from_serialize(errors),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(ServiceError::Forbidden(detail) | ServiceError::Conflict(detail)) => {
            generate_page(
                state,
                session,
                &target,
                &form,
                Value::from_serialize(HashMap::from([("general", detail)])),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => failure(e),
    }
}

#[handler]
pub async fn generate_form(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(id): Path<String>,
) -> Response {
    let session = or_respond!(
        permitted(
            state,
            jar,
            &format!("/console/users/{id}/generate"),
            Some(BYPASS_CODES_MANAGE)
        )
        .await
    );
    let target = target_for(&session, Some(id));
    let defaults = HashMap::from([
        ("expiry".to_owned(), "in".to_owned()),
        ("days".to_owned(), "1".to_owned()),
        ("usage".to_owned(), "once".to_owned()),
    ]);
    generate_page(
        state,
        &session,
        &target,
        &defaults,
        Value::from(()),
        StatusCode::OK,
    )
    .await
}

#[handler]
pub async fn generate_post(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(
        permitted(
            state,
            jar,
            &format!("/console/users/{id}"),
            Some(BYPASS_CODES_MANAGE)
        )
        .await
    );
    let target = target_for(&session, Some(id));
    if let Some(refused) = may_mint_for(state, &session, &target.user_id).await {
        return refused;
    }
    generate(state, &session, target, addr, form).await
}

/// The help desk mints for others: its own codes come from My security (under the
/// self-service rules), and an administrator's only from a security administrator.
async fn may_mint_for(
    state: &AppState,
    session: &ConsoleSession,
    target: &UserId,
) -> Option<Response> {
    if *target == session.user_id {
        return Some(message(
            StatusCode::FORBIDDEN,
            "Not here",
            "Generate codes for yourself on My security, where the self-service rules apply.",
        ));
    }
    if session.may(MFA_MANAGE) {
        return None;
    }
    match state.groups.roles_of(target).await {
        Ok(roles) if roles.is_empty() => None,
        Ok(_) => Some(message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This user is an administrator: only a security administrator may generate bypass codes for them.",
        )),
        Err(e) => Some(failure(e)),
    }
}

async fn email(
    state: &AppState,
    session: &ConsoleSession,
    target: Target,
    code_id: &str,
    addr: &ClientAddr,
    form: HashMap<String, String>,
) -> Response {
    if !csrf_ok(session, &form) {
        return forged();
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let view = match state
        .bypass
        .notify(&target.user_id, code_id, &code, &ctx(session, addr))
        .await
    {
        Ok(view) => view,
        Err(ServiceError::Invalid(v)) => {
            return message(StatusCode::BAD_REQUEST, "Not sent", &v.detail);
        }
        Err(e) => return failure(e),
    };
    let user_name = match state.users.get(&target.user_id).await {
        Ok(u) => u.attributes.user_name,
        Err(e) => return failure(e),
    };
    let last = view.notifications.last();
    let (sent, failed) = match last {
        Some(n) if n.sent => (
            Some(format!("Emailed {}.", n.detail.clone().unwrap_or_default())),
            None,
        ),
        Some(n) => (
            None,
            Some(format!(
                "The email could not be sent: {}",
                n.detail.clone().unwrap_or_default()
            )),
        ),
        None => (None, None),
    };
    let created = Created {
        code: crate::domain::secret::Secret::new(code),
        view,
    };
    code_page(session, &target, &user_name, &created, sent, failed, false)
}

#[handler]
pub async fn email_code(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path((id, code_id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(
        permitted(
            state,
            jar,
            &format!("/console/users/{id}"),
            Some(BYPASS_CODES_MANAGE)
        )
        .await
    );
    email(
        state,
        &session,
        target_for(&session, Some(id)),
        &code_id,
        addr,
        form,
    )
    .await
}

#[handler]
pub async fn revoke_code(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path((id, code_id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(
        permitted(
            state,
            jar,
            &format!("/console/users/{id}"),
            Some(BYPASS_CODES_MANAGE)
        )
        .await
    );
    if !csrf_ok(&session, &form) {
        return forged();
    }
    let target = target_for(&session, Some(id));
    match state
        .bypass
        .revoke(&target.user_id, &code_id, &ctx(&session, addr))
        .await
    {
        Ok(()) => see_other(&format!("{}?notice=revoked", target.back)),
        Err(e) => failure(e),
    }
}

/// "My security": any signed-in user, with or without a role.
#[handler]
pub async fn account(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account").await);
    let (status, views, policy) = match (
        state.mfa.status(&session.user_id).await,
        state.bypass.list(&session.user_id, None).await,
        state.bypass.policy().await,
    ) {
        (Ok(s), Ok(v), Ok(p)) => (s, v, p),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return failure(e),
    };
    let why_not = if !session.may(BYPASS_CODES_SELF) {
        Some("This sign-in cannot manage your own codes.")
    } else if status != TotpStatus::Enrolled {
        Some("Set up an authenticator app first: bypass codes stand in for it.")
    } else if !policy.self_service_generation_enabled {
        Some(
            "Your organisation does not let people generate their own bypass codes; ask the help desk.",
        )
    } else if check_minting(Origin::SelfService, &session.amr).is_err() {
        Some(
            "You signed in with a bypass code: sign in with your authenticator app to generate new ones.",
        )
    } else {
        None
    };
    let notice = (query.get("notice").map(String::as_str) == Some("revoked"))
        .then_some("The bypass code is revoked.");
    let body = render(
        "account.html",
        merged(
            frame(&session, "My security"),
            context! { two_step => two_step(status), codes => codes(&views), revoke_base => "/account/codes", may_generate => why_not.is_none(), why_not, notice },
        ),
    );
    page(StatusCode::OK, body)
}

fn self_service(session: &ConsoleSession) -> Option<Response> {
    (!session.may(BYPASS_CODES_SELF)).then(forbidden)
}

#[handler]
pub async fn account_generate_form(Data(state): Data<&Arc<AppState>>, jar: &CookieJar) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account/generate").await);
    if let Some(refused) = self_service(&session) {
        return refused;
    }
    let defaults = HashMap::from([
        ("expiry".to_owned(), "never".to_owned()),
        ("usage".to_owned(), "once".to_owned()),
    ]);
    generate_page(
        state,
        &session,
        &target_for(&session, None),
        &defaults,
        Value::from(()),
        StatusCode::OK,
    )
    .await
}

#[handler]
pub async fn account_generate(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account").await);
    if let Some(refused) = self_service(&session) {
        return refused;
    }
    if let Err(refused) = check_minting(Origin::SelfService, &session.amr) {
        return message(StatusCode::FORBIDDEN, "Not allowed", refused.message());
    }
    generate(state, &session, target_for(&session, None), addr, form).await
}

#[handler]
pub async fn account_email(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path(code_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account").await);
    if let Some(refused) = self_service(&session) {
        return refused;
    }
    email(
        state,
        &session,
        target_for(&session, None),
        &code_id,
        addr,
        form,
    )
    .await
}

#[handler]
pub async fn account_revoke(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path(code_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account").await);
    if let Some(refused) = self_service(&session) {
        return refused;
    }
    if !csrf_ok(&session, &form) {
        return forged();
    }
    match state
        .bypass
        .revoke(&session.user_id, &code_id, &ctx(&session, addr))
        .await
    {
        Ok(()) => see_other("/account?notice=revoked"),
        Err(e) => failure(e),
    }
}

fn user_path(id: &str) -> String {
    format!(
        "/console/users/{}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

/// A user's audit trail (help desk).
#[handler]
pub async fn audit(
    Data(state): Data<&Arc<AppState>>,
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
        state.bypass.user_events(&user_id).await,
    ) {
        (Ok(u), Ok(e)) => (u, e),
        (Err(e), _) | (_, Err(e)) => return failure(e),
    };
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            context! {
                at => when(e.at), event => e.event.as_str().replace('_', " "),
                code => e.code_id.as_deref().map(|c| c.chars().take(8).collect::<String>()).unwrap_or_default(),
                actor => e.actor, ip => e.ip.clone().unwrap_or_default(), detail => e.detail.clone().unwrap_or_default(),
            }
        })
        .collect();
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
    let body = render(
        "reset.html",
        merged(
            frame(&session, "Reset 2-step verification"),
            context! { user_name => user.attributes.user_name, action, back },
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
            context! { policy => Value::from_serialize(policy), notice, error },
        ),
    );
    page(status, body)
}

#[handler]
pub async fn policy_form(Data(state): Data<&Arc<AppState>>, jar: &CookieJar) -> Response {
    let session =
        or_respond!(permitted(state, jar, "/console/policy", Some(BYPASS_CODES_SETTINGS)).await);
    match state.bypass.policy().await {
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
    // The form in the API's shape: numbers as numbers, empty limits as no limit.
    let mut body = serde_json::Map::new();
    for name in [
        "codeLength",
        "maxActive",
        "helpDeskMaxUsage",
        "helpDeskMaxExpiryMinutes",
        "selfServiceMaxUsage",
        "selfServiceMaxExpiryMinutes",
    ] {
        let text = form.get(name).map(|v| v.trim()).unwrap_or_default();
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            match text.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => json!(text),
            }
        };
        body.insert(name.to_owned(), value);
    }
    for name in ["helpDeskGenerationEnabled", "selfServiceGenerationEnabled"] {
        body.insert(
            name.to_owned(),
            json!(form.get(name).is_some_and(|v| v == "true")),
        );
    }
    let current = match state.bypass.policy().await {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    let policy = match Policy::from_json(&serde_json::Value::Object(body)) {
        Ok(policy) => policy,
        Err(v) => {
            return policy_page(
                &session,
                &current,
                None,
                Some(v.detail),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    match state.bypass.set_policy(&policy, &ctx(&session, addr)).await {
        Ok(()) => policy_page(
            &session,
            &policy,
            Some("The policy is saved."),
            None,
            StatusCode::OK,
        ),
        Err(e) => failure(e),
    }
}
