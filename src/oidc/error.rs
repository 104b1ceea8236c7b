//! The one place OAuth 2.0 / OpenID Connect errors become responses: RFC 6749 §5.2 bodies
//! at the token endpoint, RFC 6750 §3 challenges at userinfo, and the HTML error pages of
//! the sign-in (whose words are in [`super::pages`]).

use std::time::Duration;

use poem::Response;
use poem::http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::pages;
use crate::service::ServiceError;
use crate::service::oauth::{BearerRefusal, TokenRefusal};

const REALM: &str = "Basic realm=\"bypass-idp\"";
const BEARER_REALM: &str = "Bearer realm=\"bypass-idp\"";

pub fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

/// Token responses and their errors are never cached (RFC 6749 §5.1).
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// How long a client should wait when a dependency is down.
const TOKEN_RETRY_SECONDS: u64 = 60;
const USERINFO_RETRY_SECONDS: u64 = 5;

/// A refusal at the token endpoint. `basic`: the client authenticated (or tried to) with
/// HTTP Basic, so an `invalid_client` carries a `WWW-Authenticate: Basic` challenge.
pub fn token_refusal(refusal: TokenRefusal, basic: bool) -> Response {
    let (status, code, description) = match refusal {
        TokenRefusal::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
        TokenRefusal::InvalidClient(d) => (StatusCode::UNAUTHORIZED, "invalid_client", d.into()),
        TokenRefusal::ClientLocked(wait) => {
            let seconds = wait.as_secs().max(1);
            let body = json!({"error": "invalid_client", "error_description":
                format!("too many failed client authentications; retry in {seconds} seconds")});
            let response = json_response(StatusCode::TOO_MANY_REQUESTS, body);
            return no_store(retry_after(response, seconds));
        }
        TokenRefusal::InvalidGrant(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d.into()),
        TokenRefusal::UnauthorizedClient(d) => (StatusCode::BAD_REQUEST, "unauthorized_client", d),
        TokenRefusal::UnsupportedGrantType(d) => {
            (StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
        }
        TokenRefusal::InvalidScope(d) => (StatusCode::BAD_REQUEST, "invalid_scope", d),
        // Input the store cannot hold (a NUL character in a client id).
        TokenRefusal::Failed(ServiceError::Invalid(v)) => {
            (StatusCode::BAD_REQUEST, "invalid_request", v.detail)
        }
        TokenRefusal::Failed(ServiceError::Busy(_)) => {
            let body = json!({"error": "temporarily_unavailable",
                              "error_description": "the server is busy; try again in a moment"});
            let response = json_response(StatusCode::SERVICE_UNAVAILABLE, body);
            return no_store(retry_after(response, 1));
        }
        TokenRefusal::Failed(ServiceError::Unavailable(detail)) => {
            let body = json!({"error": "temporarily_unavailable", "error_description": detail});
            let response = json_response(StatusCode::SERVICE_UNAVAILABLE, body);
            return no_store(retry_after(response, TOKEN_RETRY_SECONDS));
        }
        TokenRefusal::Failed(err) => {
            tracing::error!(error = %err, "token endpoint failed");
            let body = json!({"error": "server_error", "error_description": "internal error"});
            return no_store(json_response(StatusCode::INTERNAL_SERVER_ERROR, body));
        }
    };
    let mut response = json_response(
        status,
        json!({"error": code, "error_description": description}),
    );
    if basic && code == "invalid_client" {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    }
    no_store(response)
}

/// The 413 answer of the token endpoint (see [`crate::edge::BodyLimit`]).
pub fn token_form_too_large(max: usize) -> Response {
    let mut response = token_refusal(
        TokenRefusal::InvalidRequest(format!("the request body is larger than {max} bytes")),
        false,
    );
    response.set_status(StatusCode::PAYLOAD_TOO_LARGE);
    response
}

/// A request to a protected resource without a bearer token (RFC 6750 §3.1).
pub fn bearer_missing() -> Response {
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        json!({"error": "invalid_request"}),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(BEARER_REALM),
    );
    response
}

/// A refused bearer token at userinfo, with its challenge; our own failures carry no detail.
pub fn bearer_refusal(refusal: BearerRefusal) -> Response {
    let (status, error, description) = match refusal {
        BearerRefusal::InvalidToken(d) => (StatusCode::UNAUTHORIZED, "invalid_token", d),
        BearerRefusal::InsufficientScope(d) => {
            (StatusCode::FORBIDDEN, "insufficient_scope", d.to_owned())
        }
        // Our failure, not the token's: the client must not drop its session over it.
        BearerRefusal::Failed(ServiceError::Unavailable(_)) => {
            let response = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "temporarily_unavailable"}),
            );
            return no_store(retry_after(response, USERINFO_RETRY_SECONDS));
        }
        BearerRefusal::Failed(err) => {
            tracing::error!(error = %err, "userinfo failed");
            let response = json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "server_error"}),
            );
            return no_store(response);
        }
    };
    let mut response = json_response(
        status,
        json!({"error": error, "error_description": description}),
    );
    let challenge =
        format!("{BEARER_REALM}, error=\"{error}\", error_description=\"{description}\"");
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Why a sign-in page cannot go on; the words are in [`pages::error_text`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageError {
    /// The authorization request itself is bad and cannot be sent back to the client.
    Rejected(String),
    /// No such flow, or it expired or finished.
    Expired,
    /// The form's CSRF token is missing or wrong.
    Forged,
    /// The form body is over the sign-in forms' limit.
    FormTooLarge,
    /// A field is over its cap.
    FieldTooLong { name: &'static str, cap: usize },
    /// This address opened too many sign-ins; try again after this long.
    TooManySignIns(Duration),
    /// A dependency is down.
    Unavailable,
    /// Too many checks are queued; nothing of the step was done or counted.
    Busy(Duration),
    /// Our own failure.
    Internal,
}

/// Security headers of every HTML page.
pub fn html(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("X-Frame-Options", "DENY")
        .header(
            "Content-Security-Policy",
            crate::web::CONTENT_SECURITY_POLICY,
        )
        .header("Referrer-Policy", "no-referrer")
        .body(body)
}

pub fn page_error(error: PageError) -> Response {
    let status = match &error {
        PageError::Rejected(_)
        | PageError::Expired
        | PageError::Forged
        | PageError::FieldTooLong { .. } => StatusCode::BAD_REQUEST,
        PageError::FormTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        PageError::TooManySignIns(_) => StatusCode::TOO_MANY_REQUESTS,
        PageError::Unavailable | PageError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        PageError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let (title, detail) = pages::error_text(&error);
    let response = html(status, pages::error_page(title, &detail));
    match error {
        PageError::TooManySignIns(wait) => retry_after(response, wait.as_secs().max(1)),
        PageError::Unavailable => retry_after(response, 60),
        PageError::Busy(wait) => retry_after(response, wait.as_secs().max(1)),
        _ => response,
    }
}

/// A service failure on a sign-in page: 503 when a dependency is down, else 500; logged.
pub fn page_failure(err: ServiceError) -> Response {
    if let ServiceError::Busy(wait) = err {
        return page_error(PageError::Busy(wait));
    }
    if let ServiceError::Unavailable(detail) = &err {
        tracing::warn!(reason = %detail, "sign-in refused: busy");
        return page_error(PageError::Unavailable);
    }
    if let ServiceError::Invalid(v) = err {
        return page_error(PageError::Rejected(v.detail));
    }
    tracing::error!(error = %err, "sign-in failed");
    page_error(PageError::Internal)
}

/// The 413 answer of the sign-in forms (see [`crate::edge::BodyLimit`]).
pub fn form_too_large(_max: usize) -> Response {
    page_error(PageError::FormTooLarge)
}
