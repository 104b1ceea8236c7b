//! `/oauth2/authorize` and the sign-in pages: thin handlers over
//! [`SignInService`](crate::service::signin::SignInService).

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem::web::{Data, Form, Query};
use poem::{Request, Response, handler};

use super::error::{PageError, html, page_error, page_failure};
use super::pages::{denied_text, step_page};
use crate::domain::secret::Secret;
use crate::edge::ClientAddr;
use crate::service::context::Context;
use crate::service::signin::{CodeStep, FLOW_TTL, Next, ReplaceChoice, Start};
use crate::state::AppState;
use crate::web::see_other;

pub const FLOW_COOKIE: &str = "bidp_flow";
/// The longest query an authorization request may have; parameters are capped one by one
/// as well (`domain::signin`).
const MAX_AUTHORIZE_QUERY: usize = 16 * 1024;
/// Form fields longer than these are refused before they reach a counter, a flow or a log.
const FIELD_CAPS: &[(&str, usize)] = &[
    ("username", 256),
    ("password", 1024),
    ("code", 64),
    ("csrf", 128),
    ("choice", 16),
];

fn context(addr: &ClientAddr) -> Context {
    Context::anonymous_at(addr.0)
}

/// A form with a field over its cap: refused whole.
fn oversized_field(form: &HashMap<String, String>) -> Option<Response> {
    FIELD_CAPS
        .iter()
        .find(|(name, cap)| form.get(*name).is_some_and(|v| v.len() > *cap))
        .map(|&(name, cap)| page_error(PageError::FieldTooLong { name, cap }))
}

fn set_flow_cookie(jar: &CookieJar, id: String, secure: bool) {
    let mut cookie = Cookie::new_with_str(FLOW_COOKIE, id);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/oauth2");
    cookie.set_max_age(FLOW_TTL);
    cookie.set_secure(secure);
    jar.add(cookie);
}

fn flow_id(jar: &CookieJar) -> Option<String> {
    jar.get(FLOW_COOKIE).map(|c| c.value_str().to_owned())
}

/// The single sign-on session's cookie: HttpOnly, SameSite=Lax, Path=/, and `__Host-` and
/// Secure on an https issuer. It lasts as long as the browser keeps it; the server decides
/// how long the session behind it lives.
pub fn set_session_cookie(state: &AppState, jar: &CookieJar, token: String) {
    let mut cookie = Cookie::new_with_str(state.sessions.cookie_name(), token);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/");
    cookie.set_secure(state.sessions.secure());
    jar.add(cookie);
}

/// Deletes the session cookie as it was set (a `__Host-` cookie is deleted only with Secure
/// and Path=/, which a bare removal leaves out).
pub fn clear_session_cookie(state: &AppState, jar: &CookieJar) {
    let mut cookie = Cookie::new_with_str(state.sessions.cookie_name(), "");
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/");
    cookie.set_secure(state.sessions.secure());
    cookie.set_max_age(std::time::Duration::ZERO);
    jar.add(cookie);
}

pub fn session_token(state: &AppState, jar: &CookieJar) -> Option<String> {
    jar.get(state.sessions.cookie_name())
        .map(|c| c.value_str().to_owned())
}

fn render(state: &AppState, next: Next, show_bypass: bool, jar: &CookieJar) -> Response {
    match next {
        Next::Continue {
            flow,
            denied,
            enrollment,
        } => {
            let message = denied.map(denied_text);
            html(
                StatusCode::OK,
                step_page(&flow, message.as_deref(), show_bypass, enrollment.as_ref()),
            )
        }
        Next::Success { url, session } => {
            jar.remove(FLOW_COOKIE);
            if let Some(token) = session {
                set_session_cookie(state, jar, token);
            }
            see_other(&url)
        }
        Next::Expired => page_error(PageError::Expired),
        Next::Forged => page_error(PageError::Forged),
    }
}

#[handler]
pub async fn authorize(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
) -> Response {
    let query = req.uri().query().unwrap_or_default();
    if query.len() > MAX_AUTHORIZE_QUERY {
        return page_error(PageError::Rejected(
            "The sign-in request is too long.".into(),
        ));
    }
    let mut params: HashMap<String, String> = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        // RFC 6749 §3.1: no parameter may appear twice; which one to trust is unknowable.
        if params.contains_key(key.as_ref()) {
            let key: String = key.chars().take(64).collect();
            return page_error(PageError::Rejected(format!(
                "the parameter {key} appears more than once"
            )));
        }
        params.insert(key.into_owned(), value.into_owned());
    }
    let browser = session_token(state, jar);
    match state
        .signin
        .start(&params, &context(addr), browser.as_deref())
        .await
    {
        Ok(Start::Opened(id)) => {
            set_flow_cookie(jar, id, state.issuer.starts_with("https://"));
            see_other("/oauth2/signin")
        }
        Ok(Start::Rejected(message)) => page_error(PageError::Rejected(message)),
        Ok(Start::Redirect(url)) => see_other(&url),
        Ok(Start::TooMany(retry_after)) => page_error(PageError::TooManySignIns(retry_after)),
        Err(err) => page_failure(err),
    }
}

#[handler]
pub async fn signin_page(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let use_bypass = query.get("method").is_some_and(|m| m == "bypass");
    let Some(id) = flow_id(jar) else {
        return render(state, Next::Expired, false, jar);
    };
    match state.signin.show(&id).await {
        Ok(next) => render(state, next, use_bypass, jar),
        Err(err) => page_failure(err),
    }
}

/// A sign-in form's flow (from its cookie) and the browser's session token, or the page that
/// answers a form with no flow or an oversized field.
fn form_flow(
    state: &AppState,
    jar: &CookieJar,
    form: &HashMap<String, String>,
) -> Result<(String, Option<String>), Box<Response>> {
    let Some(id) = flow_id(jar) else {
        return Err(Box::new(render(state, Next::Expired, false, jar)));
    };
    if let Some(refused) = oversized_field(form) {
        return Err(Box::new(refused));
    }
    Ok((id, session_token(state, jar)))
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or_default()
}

#[handler]
pub async fn password(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (id, browser) = match form_flow(state, jar, &form) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let secret = Secret::new(field(&form, "password"));
    match state
        .signin
        .password(
            &id,
            field(&form, "csrf"),
            field(&form, "username"),
            secret,
            &context(addr),
            browser.as_deref(),
        )
        .await
    {
        Ok((next, rotated)) => {
            if let Some(new_id) = rotated {
                set_flow_cookie(jar, new_id, state.issuer.starts_with("https://"));
            }
            render(state, next, false, jar)
        }
        Err(err) => page_failure(err),
    }
}

/// The three code forms differ only in which check runs.
async fn code_step(
    state: &AppState,
    jar: &CookieJar,
    addr: &ClientAddr,
    form: &HashMap<String, String>,
    step: CodeStep,
) -> Response {
    let show_bypass = step == CodeStep::BypassCode;
    let (id, browser) = match form_flow(state, jar, form) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let (csrf, code, ctx) = (field(form, "csrf"), field(form, "code"), context(addr));
    match state
        .signin
        .code_step(step, &id, csrf, code, &ctx, browser.as_deref())
        .await
    {
        Ok(next) => render(state, next, show_bypass, jar),
        Err(err) => page_failure(err),
    }
}

#[handler]
pub async fn totp(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    code_step(state, jar, addr, &form, CodeStep::Totp).await
}

#[handler]
pub async fn bypass(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    code_step(state, jar, addr, &form, CodeStep::BypassCode).await
}

#[handler]
pub async fn enrol_code(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    code_step(state, jar, addr, &form, CodeStep::EnrolCode).await
}

/// "Set up a new authenticator app" or "Not now", after a bypass-code sign-in.
#[handler]
pub async fn replace(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (id, browser) = match form_flow(state, jar, &form) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let choice = match field(&form, "choice") {
        "setup" => ReplaceChoice::SetUp,
        "later" => ReplaceChoice::NotNow,
        _ => {
            return page_error(PageError::Rejected(
                "The form must say \"setup\" or \"later\".".into(),
            ));
        }
    };
    match state
        .signin
        .replace_choice(
            &id,
            field(&form, "csrf"),
            choice,
            &context(addr),
            browser.as_deref(),
        )
        .await
    {
        Ok(next) => render(state, next, false, jar),
        Err(err) => page_failure(err),
    }
}

/// "Continue" after the page that says how few saved codes are left.
#[handler]
pub async fn notice_read(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (id, browser) = match form_flow(state, jar, &form) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    match state
        .signin
        .notice_read(
            &id,
            field(&form, "csrf"),
            &context(addr),
            browser.as_deref(),
        )
        .await
    {
        Ok(next) => render(state, next, false, jar),
        Err(err) => page_failure(err),
    }
}

#[handler]
pub async fn replace_confirm(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    code_step(state, jar, addr, &form, CodeStep::Replace).await
}

#[handler]
pub async fn enroll(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    code_step(state, jar, addr, &form, CodeStep::Enroll).await
}
