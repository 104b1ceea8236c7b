//! `/oauth2/authorize` and the sign-in pages: thin handlers over
//! [`SignInService`](crate::service::signin::SignInService).

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem::web::{Data, Form, Query, RemoteAddr};
use poem::{IntoResponse, Request, Response, handler};

use super::pages::{error_page, step_page};
use crate::app::AppState;
use crate::domain::secret::Secret;
use crate::service::context::Context;
use crate::service::signin::{CodeStep, FLOW_TTL, Next, StartError};

pub const FLOW_COOKIE: &str = "bidp_flow";

fn html(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("X-Frame-Options", "DENY")
        // No form-action: browsers apply it to the redirect that ends a form POST, and that
        // redirect goes to the client.
        .header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        )
        .header("Referrer-Policy", "no-referrer")
        .body(body)
}

fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

fn internal(err: impl std::fmt::Display) -> Response {
    tracing::error!(error = %err, "sign-in failed");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        error_page("Something went wrong", "Please try again later."),
    )
}

fn context(remote: &RemoteAddr) -> Context {
    Context::system_at(remote.as_socket_addr().map(|a| a.ip()))
}

fn flow_id(jar: &CookieJar) -> Option<String> {
    jar.get(FLOW_COOKIE).map(|c| c.value_str().to_owned())
}

fn render(next: Next, show_bypass: bool, jar: &CookieJar) -> Response {
    match next {
        Next::Page {
            flow,
            message,
            enrollment,
        } => html(
            StatusCode::OK,
            step_page(&flow, message.as_deref(), show_bypass, enrollment.as_ref()),
        ),
        Next::Redirect(url) => {
            jar.remove(FLOW_COOKIE);
            see_other(&url)
        }
        Next::Expired => html(
            StatusCode::BAD_REQUEST,
            error_page(
                "Sign-in expired",
                "This sign-in took too long or was already finished. Go back to the application and start again.",
            ),
        ),
        Next::Forged => html(
            StatusCode::BAD_REQUEST,
            error_page(
                "Form not accepted",
                "The form did not come from this sign-in. Go back to the application and start again.",
            ),
        ),
    }
}

#[handler]
pub async fn authorize(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
) -> Response {
    let mut params: HashMap<String, String> = HashMap::new();
    for (key, value) in
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
    {
        // RFC 6749 §3.1: no parameter may appear twice; which one to trust is unknowable.
        if params.insert(key.to_string(), value.into_owned()).is_some() {
            let detail = format!("the parameter {key} appears more than once");
            return html(
                StatusCode::BAD_REQUEST,
                error_page("Sign-in request rejected", &detail),
            );
        }
    }
    match state.signin.start(&params).await {
        Ok(Ok((id, _flow))) => {
            let mut cookie = Cookie::new_with_str(FLOW_COOKIE, id);
            cookie.set_http_only(true);
            cookie.set_same_site(SameSite::Lax);
            cookie.set_path("/oauth2");
            cookie.set_max_age(FLOW_TTL);
            cookie.set_secure(state.issuer.starts_with("https://"));
            jar.add(cookie);
            see_other("/oauth2/signin")
        }
        Ok(Err(StartError::Page(message))) => html(
            StatusCode::BAD_REQUEST,
            error_page("Sign-in request rejected", &message),
        ),
        Ok(Err(StartError::Redirect(url))) => see_other(&url),
        Err(err) => internal(err),
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
        return render(Next::Expired, false, jar);
    };
    match state.signin.load(&id).await {
        Ok(Some(flow)) => render(
            Next::Page {
                flow,
                message: None,
                enrollment: None,
            },
            use_bypass,
            jar,
        ),
        Ok(None) => render(Next::Expired, false, jar),
        Err(err) => internal(err),
    }
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or_default()
}

#[handler]
pub async fn password(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    remote: &RemoteAddr,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(id) = flow_id(jar) else {
        return render(Next::Expired, false, jar);
    };
    let secret = Secret::new(field(&form, "password"));
    match state
        .signin
        .password(
            &id,
            field(&form, "csrf"),
            field(&form, "username"),
            secret,
            &context(remote),
        )
        .await
    {
        Ok(next) => render(next, false, jar),
        Err(err) => internal(err),
    }
}

/// The three code forms differ only in which check runs.
async fn code_step(
    state: &AppState,
    jar: &CookieJar,
    remote: &RemoteAddr,
    form: &HashMap<String, String>,
    step: CodeStep,
) -> Response {
    let show_bypass = step == CodeStep::BypassCode;
    let Some(id) = flow_id(jar) else {
        return render(Next::Expired, show_bypass, jar);
    };
    let (csrf, code, ctx) = (field(form, "csrf"), field(form, "code"), context(remote));
    match state.signin.code_step(step, &id, csrf, code, &ctx).await {
        Ok(next) => render(next, show_bypass, jar),
        Err(err) => internal(err),
    }
}

#[handler]
pub async fn totp(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    remote: &RemoteAddr,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    code_step(state, jar, remote, &form, CodeStep::Totp).await
}

#[handler]
pub async fn bypass(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    remote: &RemoteAddr,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    code_step(state, jar, remote, &form, CodeStep::BypassCode).await
}

#[handler]
pub async fn enroll(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    remote: &RemoteAddr,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    code_step(state, jar, remote, &form, CodeStep::Enroll).await
}

/// Signs nobody out (no single sign-on session is kept) and says so.
#[handler]
pub async fn end_session(jar: &CookieJar) -> impl IntoResponse {
    jar.remove(FLOW_COOKIE);
    html(
        StatusCode::OK,
        error_page(
            "Signed out",
            "You are signed out of this identity provider.",
        ),
    )
}
