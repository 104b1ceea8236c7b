//! The end-session endpoint (RP-Initiated Logout 1.0): GET or POST from a relying party, and
//! the confirmation form this server shows when the request does not prove it is for the
//! browser's user. The decision is [`LogoutService::request`](crate::service::logout).

use std::collections::HashMap;
use std::sync::Arc;

use minijinja::context;
use poem::http::{Method, StatusCode};
use poem::web::Data;
use poem::web::cookie::CookieJar;
use poem::{Body, Request, Response, handler};

use super::error::{PageError, html, page_error, page_failure};
use super::pages::{error_page, signed_out_page};
use super::signin::session_token;
use crate::edge::ClientAddr;
use crate::service::context::Context;
use crate::service::logout::{LogoutOutcome, LogoutRequest, LogoutService};
use crate::state::AppState;
use crate::web::{SERVICE_NAME, render, see_other};

/// Longer parameters are refused: an ID token hint is a few kilobytes at most (the same cap
/// as at the authorization endpoint).
const MAX_PARAM: usize = 8192;
const MAX_BODY: usize = 16 * 1024;

fn parse(text: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(text) {
        let name: String = key.chars().take(64).collect();
        if value.len() > MAX_PARAM {
            return Err(format!("the parameter {name} is too long"));
        }
        if params
            .insert(key.into_owned(), value.into_owned())
            .is_some()
        {
            return Err(format!("the parameter {name} appears more than once"));
        }
    }
    Ok(params)
}

#[handler]
pub async fn end_session(
    req: &Request,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
) -> Response {
    let raw = if req.method() == Method::POST {
        match body.into_bytes_limit(MAX_BODY).await {
            Ok(bytes) => bytes.to_vec(),
            Err(_) => return page_error(PageError::FormTooLarge),
        }
    } else {
        req.uri().query().unwrap_or_default().as_bytes().to_vec()
    };
    let mut params = match parse(&raw) {
        Ok(params) => params,
        Err(why) => return page_error(PageError::Rejected(why)),
    };
    let browser = session_token(state, jar);
    // Our own confirmation form comes back with its token; a relying party sends none.
    let confirmed = match params.remove("csrf") {
        None => false,
        Some(sent) => {
            let genuine = browser
                .as_deref()
                .is_some_and(|token| LogoutService::confirmation_matches(token, &sent));
            if !genuine && browser.is_some() {
                return page_error(PageError::Forged);
            }
            true
        }
    };
    let request = LogoutRequest {
        id_token_hint: params.remove("id_token_hint"),
        client_id: params.remove("client_id"),
        post_logout_redirect_uri: params.remove("post_logout_redirect_uri"),
        state: params.remove("state"),
    };
    let ctx = Context::anonymous_at(addr.0);
    match state
        .logout
        .request(&request, browser.as_deref(), confirmed, &ctx)
        .await
    {
        Ok(LogoutOutcome::Done { redirect }) => {
            crate::oidc::signin::clear_session_cookie(state, jar);
            match redirect {
                Some(url) => see_other(&url),
                None => html(StatusCode::OK, signed_out_page()),
            }
        }
        Ok(LogoutOutcome::Confirm) => {
            let csrf = browser
                .as_deref()
                .map(LogoutService::confirmation_token)
                .unwrap_or_default();
            let body = render(
                "logout.html",
                context! {
                    title => "Sign out?", service => SERVICE_NAME, csrf,
                    id_token_hint => request.id_token_hint, client_id => request.client_id,
                    post_logout_redirect_uri => request.post_logout_redirect_uri,
                    state => request.state,
                },
            );
            html(StatusCode::OK, body)
        }
        Ok(LogoutOutcome::Rejected(why)) => html(
            StatusCode::BAD_REQUEST,
            error_page("Sign-out request rejected", &why),
        ),
        Err(err) => page_failure(err),
    }
}
