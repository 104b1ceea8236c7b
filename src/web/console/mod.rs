//! The help-desk console at `/console` and "My security" at `/account`: server-rendered
//! pages over the services, for a person signed in through this service's own OIDC flow.
//! This module holds what every page shares (the session extractor, the page frame, the error
//! pages); each page group is a module of its own. Who may do what is the services' decision
//! (`domain::access`): a page offers what its session's scopes suggest and words a refusal.

/// The value in `Ok`, or the handler returns the response in `Err`.
macro_rules! or_respond {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

mod admin;
mod approval_pages;
mod authenticator;
mod codes;
mod security;
mod session;
mod sessions;
mod users;

pub use admin::{audit, audit_log, policy_form, policy_save, reset, reset_form};
pub use approval_pages::{approvals, decide};
pub use authenticator::{replace_form, replace_post, replace_sign_in};
pub use codes::{email_code, generate_form, generate_post, revoke_code};
pub use security::{
    account, account_code_set, account_email, account_generate, account_generate_form,
    account_revoke,
};
pub use session::{callback, home, logout};
pub use sessions::{account_end_sessions, user_end_sessions};
pub use users::{user_page, users_page};

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
use crate::domain::bypass::{CodeStatus, Origin, Policy};
use crate::domain::ids::{ClientId, UserId};
use crate::domain::roles::CONSOLE_CLIENT_ID;
use crate::domain::scim::search::SearchParams;
use crate::domain::scim::user::User;
use crate::domain::scope::{
    AUDIT_READ, BYPASS_CODES_APPROVE, BYPASS_CODES_MANAGE, BYPASS_CODES_SETTINGS, MFA_MANAGE,
    MFA_READ, ScopeSet, USERS_READ,
};
use crate::domain::secret::Secret;
use crate::domain::totp::TotpStatus;
use crate::edge::ClientAddr;
use crate::service::ServiceError;
use crate::service::bypass::CodeView;
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
        ServiceError::Forbidden(why) => message(StatusCode::FORBIDDEN, "Not allowed", &why),
        ServiceError::Invalid(v) => message(StatusCode::BAD_REQUEST, "Not accepted", &v.detail),
        ServiceError::Conflict(why) => message(StatusCode::CONFLICT, "Not done", &why),
        ServiceError::VersionMismatch => message(
            StatusCode::CONFLICT,
            "Changed meanwhile",
            "Someone changed this meanwhile. Reload the page and try again.",
        ),
        ServiceError::TooMany(why, _) => {
            message(StatusCode::TOO_MANY_REQUESTS, "Too many tries", &why)
        }
        ServiceError::Unavailable(_) => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The console cannot reach a service it needs. Wait a minute and reload.",
        ),
        ServiceError::Busy(retry_after) => {
            let mut response = message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "Too many sign-ins are being checked right now, so nothing was changed. \
                 Try again in a moment.",
            );
            response.headers_mut().insert(
                poem::http::header::RETRY_AFTER,
                retry_after.as_secs().max(1).into(),
            );
            response
        }
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
    // A console session that lapsed (idle or absolute timeout) is not renewed from the
    // browser's sign-in session: the person signs in again.
    let mut lapsed = false;
    if let Some(id) = id {
        match state.console.session(&id).await {
            Ok(Some(session)) => return Ok(session),
            // The lapsed cookie stays until a new console sign-in replaces it, so every
            // attempt until then asks for a new sign-in, not only the first.
            Ok(None) => lapsed = true,
            Err(e) => return Err(failure(e)),
        }
    }
    Err(start_login(state, jar, return_to, lapsed))
}

/// Sends the browser to sign in for the console, back to `return_to`; `reauthenticate`: a
/// new sign-in (`prompt=login`), whatever single sign-on session the browser has.
fn start_login(
    state: &AppState,
    jar: &CookieJar,
    return_to: &str,
    reauthenticate: bool,
) -> Response {
    match state.console.begin_login(return_to, reauthenticate) {
        Ok((url, login)) => {
            let mut cookie = Cookie::new_with_str(LOGIN_COOKIE, login);
            cookie.set_http_only(true);
            cookie.set_same_site(SameSite::Lax);
            cookie.set_path("/console");
            cookie.set_max_age(LOGIN_TTL);
            cookie.set_secure(state.issuer.starts_with("https://"));
            jar.add(cookie);
            see_other(&url)
        }
        Err(e) => failure(e),
    }
}

/// Deletes the console cookie as it was set (Path=/).
fn clear_console_cookie(state: &AppState, jar: &CookieJar) {
    let mut cookie = Cookie::new_with_str(SESSION_COOKIE, "");
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/");
    cookie.set_secure(state.issuer.starts_with("https://"));
    cookie.set_max_age(std::time::Duration::ZERO);
    jar.add(cookie);
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

/// The console session as the services see it: the person, their sign-in's scopes and how
/// they signed in.
fn ctx(session: &ConsoleSession, addr: &ClientAddr) -> Context {
    Context::user(
        session.user_id.clone(),
        Some(ClientId::new(CONSOLE_CLIENT_ID)),
        addr.0,
    )
    .with_authority(ScopeSet::parse(&session.scope), session.amr.clone())
}

/// What every console page shows in its header.
fn frame(session: &ConsoleSession, title: &str) -> Value {
    context! {
        title, service => SERVICE_NAME, csrf => session.csrf, me => session.user_name,
        admin => session.is_administrator(), may_policy => session.may(BYPASS_CODES_SETTINGS),
        may_audit => session.may(AUDIT_READ), may_approve => session.may(BYPASS_CODES_APPROVE),
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
                id => c.id, status => status_words(c.status), created => when(c.created_at),
                live => c.status.is_live(), reason => c.reason,
                saved => c.origin == Origin::SavedSet.as_str(),
                starts => c.starts_at.filter(|_| c.status == CodeStatus::Scheduled).map(when),
                enrolment => c.purpose == crate::domain::bypass::Purpose::Enrolment,
                uses_left => c.remaining.map_or("unlimited".to_owned(), |r| r.to_string()),
                expires => c.expires_at.map_or("never".to_owned(), when),
                created_by => c.created_by,
                last_used => c.last_used_at.map_or("—".to_owned(), when),
            }
        })
        .collect()
}

/// A code's status as people read it.
fn status_words(status: CodeStatus) -> &'static str {
    match status {
        CodeStatus::PendingApproval => "waiting for approval",
        other => other.as_str(),
    }
}

/// Audit events as the audit pages show them.
fn audit_rows(events: &[crate::domain::audit::AuditEntry]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            context! {
                at => when(e.at), event => e.event.as_str().replace('_', " "),
                user => e.user_id.as_ref().map(|u| u.as_str().to_owned()),
                code => e.code_id.as_deref().map(|c| c.chars().take(8).collect::<String>()).unwrap_or_default(),
                actor => e.actor, ip => e.ip.clone().unwrap_or_default(), detail => e.detail.clone().unwrap_or_default(),
            }
        })
        .collect()
}

/// A time as people read it, in UTC.
fn when(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Text as one segment of a console path.
fn path_part(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn user_path(id: &str) -> String {
    format!("/console/users/{}", path_part(id))
}
