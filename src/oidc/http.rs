//! Discovery, JWKS, the token endpoint and userinfo: they parse the request, call
//! [`OAuthService`](crate::service::oauth::OAuthService) and render its answer; every error
//! body comes from [`super::error`].

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use super::error::{
    bearer_missing, bearer_refusal, json_response, no_store, token_form_too_large, token_refusal,
};
use crate::domain::ids::ClientId;
use crate::domain::secret::Secret;
use crate::edge::ClientAddr;
use crate::service::oauth::TokenRefusal;
use crate::service::oauth::clients::ClientCredentials;
use crate::state::AppState;

const MAX_FORM_BYTES: usize = 64 * 1024;

fn json_text(body: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/json")
        .body(body.to_owned())
}

#[handler]
pub async fn discovery(Data(state): Data<&Arc<AppState>>) -> Response {
    json_text(&state.oauth.discovery())
}

#[handler]
pub async fn jwks(Data(state): Data<&Arc<AppState>>) -> Response {
    json_text(&state.oauth.jwks().await)
}

/// A refusal while reading the request, and whether it answers a Basic attempt.
struct Refused {
    refusal: TokenRefusal,
    basic: bool,
}

fn invalid_request(description: impl Into<String>) -> Refused {
    Refused {
        refusal: TokenRefusal::InvalidRequest(description.into()),
        basic: false,
    }
}

fn invalid_client(description: &'static str, basic: bool) -> Refused {
    Refused {
        refusal: TokenRefusal::InvalidClient(description),
        basic,
    }
}

/// Form fields, refusing repeated parameters (RFC 6749 §3.2).
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, Refused> {
    let mut fields = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        if fields.insert(key.to_string(), value.to_string()).is_some() {
            return Err(invalid_request(format!("parameter \"{key}\" is repeated")));
        }
    }
    Ok(fields)
}

/// Client ids reach a counter key and a log line: refuse what no registered id can be.
const MAX_CLIENT_ID_LEN: usize = 256;

fn check_client_id(client_id: &str) -> Result<(), Refused> {
    if client_id.len() > MAX_CLIENT_ID_LEN {
        return Err(invalid_client("client_id is too long", false));
    }
    Ok(())
}

/// The client's credentials, from Basic or the form, and whether Basic was used.
fn client_credentials(
    req: &Request,
    form: &mut HashMap<String, String>,
) -> Result<(ClientCredentials, bool), Refused> {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let body_secret = form.remove("client_secret");
    let body_id = form.remove("client_id");
    if let Some(encoded) = basic {
        if body_secret.is_some() {
            return Err(invalid_request(
                "use one client authentication method, not both Basic and client_secret",
            ));
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| invalid_client("malformed Basic credentials", true))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| invalid_client("malformed Basic credentials", true))?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let client_id = decode(id);
        check_client_id(&client_id)?;
        if body_id.as_deref().is_some_and(|b| b != client_id) {
            return Err(invalid_request(
                "client_id differs from the Basic credentials",
            ));
        }
        let credentials = ClientCredentials {
            client_id: ClientId::new(client_id),
            secret: Some(Secret::new(decode(secret))),
        };
        return Ok((credentials, true));
    }
    let client_id =
        body_id.ok_or_else(|| invalid_client("client authentication is required", true))?;
    check_client_id(&client_id)?;
    let credentials = ClientCredentials {
        client_id: ClientId::new(client_id),
        secret: body_secret.map(Secret::new),
    };
    Ok((credentials, false))
}

#[handler]
pub async fn token(
    req: &Request,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
) -> Response {
    let form_type = req
        .content_type()
        .and_then(|ct| ct.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.essence_str() == "application/x-www-form-urlencoded");
    if !form_type {
        let refusal = TokenRefusal::InvalidRequest(
            "send the parameters as application/x-www-form-urlencoded".into(),
        );
        return token_refusal(refusal, false);
    }
    let Ok(bytes) = body.into_bytes_limit(MAX_FORM_BYTES).await else {
        return token_form_too_large(MAX_FORM_BYTES);
    };
    match token_inner(req, &bytes, state, addr).await {
        Ok(body) => no_store(json_response(StatusCode::OK, body)),
        Err(Refused { refusal, basic }) => token_refusal(refusal, basic),
    }
}

async fn token_inner(
    req: &Request,
    bytes: &[u8],
    state: &AppState,
    addr: &ClientAddr,
) -> Result<serde_json::Value, Refused> {
    let mut form = parse_form(bytes)?;
    let (credentials, basic) = client_credentials(req, &mut form)?;
    let refused = |refusal| Refused { refusal, basic };
    let client = state
        .oauth
        .authenticate_client(
            &credentials,
            addr.0,
            form.get("grant_type").map(String::as_str),
        )
        .await
        .map_err(refused)?;
    state.oauth.grant(&client, &form).await.map_err(refused)
}

#[handler]
pub async fn userinfo(req: &Request, Data(state): Data<&Arc<AppState>>) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(bearer) = bearer else {
        return bearer_missing();
    };
    match state.oauth.userinfo(bearer).await {
        Ok(claims) => no_store(json_response(StatusCode::OK, claims)),
        Err(refusal) => bearer_refusal(refusal),
    }
}
