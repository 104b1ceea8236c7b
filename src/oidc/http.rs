//! Discovery, JWKS and the token endpoint. These are OAuth/OIDC protocol documents whose
//! contract is their RFCs, so they are plain poem handlers with OAuth error bodies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, AuthenticationContextClass, IssuerUrl, JsonWebKeySetUrl,
    ResponseTypes, Scope, TokenUrl, UserInfoUrl,
};
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::AppState;
use crate::domain::ids::ClientId;
use crate::domain::limits::LimitKey;
use crate::domain::scope::{self, ScopeSet};
use crate::domain::secret::Secret;
use crate::domain::signin;
use crate::edge::ClientAddr;
use crate::oidc::tokens::TokenError;
use crate::oidc::{clients, grants};

const MAX_FORM_BYTES: usize = 64 * 1024;

pub const TOKEN_PATH: &str = "/oauth2/token";
pub const JWKS_PATH: &str = "/oauth2/jwks";
pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
pub const USERINFO_PATH: &str = "/oauth2/userinfo";
pub const END_SESSION_PATH: &str = "/oauth2/logout";

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

/// An RFC 6749 §5.2 error. Responses from the token endpoint are never cached.
pub(crate) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// `WWW-Authenticate: Basic` for a client that authenticated with Basic (§5.2).
    basic_challenge: bool,
    retry_after_seconds: Option<u64>,
}

pub(crate) fn oauth_error(status: StatusCode, code: &'static str, description: &str) -> OAuthError {
    OAuthError {
        status,
        code,
        description: description.to_owned(),
        basic_challenge: false,
        retry_after_seconds: None,
    }
}

impl OAuthError {
    fn with_basic_challenge(mut self) -> Self {
        self.basic_challenge = true;
        self
    }

    fn into_response(self) -> Response {
        let mut response = json_response(
            self.status,
            json!({"error": self.code, "error_description": self.description}),
        );
        no_store(&mut response);
        let headers = response.headers_mut();
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"bypass-idp\""),
            );
        }
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The 413 answer of the token endpoint (see [`crate::edge::BodyLimit`]).
pub fn form_too_large(max: usize) -> Response {
    oauth_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        &format!("the request body is larger than {max} bytes"),
    )
    .into_response()
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Discovery members that `CoreProviderMetadata` lacks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExtraMetadata {
    pub code_challenge_methods_supported: Vec<String>,
    pub authorization_response_iss_parameter_supported: bool,
    pub end_session_endpoint: String,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

pub type ProviderMetadata = openidconnect::ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

pub fn provider_metadata(issuer: &str) -> Result<ProviderMetadata, String> {
    let url = |path: &str| format!("{issuer}{path}");
    let claims = [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "azp",
        "at_hash",
        "name",
        "given_name",
        "family_name",
        "preferred_username",
        "email",
        "email_verified",
    ];
    let metadata = ProviderMetadata::new(
        IssuerUrl::new(issuer.to_owned()).map_err(|e| e.to_string())?,
        AuthUrl::new(url(AUTHORIZE_PATH)).map_err(|e| e.to_string())?,
        JsonWebKeySetUrl::new(url(JWKS_PATH)).map_err(|e| e.to_string())?,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        ExtraMetadata {
            code_challenge_methods_supported: vec!["S256".to_owned()],
            authorization_response_iss_parameter_supported: true,
            end_session_endpoint: url(END_SESSION_PATH),
        },
    )
    .set_token_endpoint(Some(
        TokenUrl::new(url(TOKEN_PATH)).map_err(|e| e.to_string())?,
    ))
    .set_userinfo_endpoint(Some(
        UserInfoUrl::new(url(USERINFO_PATH)).map_err(|e| e.to_string())?,
    ))
    .set_scopes_supported(Some(
        scope::KNOWN
            .iter()
            .map(|s| Scope::new((*s).to_owned()))
            .collect(),
    ))
    .set_response_modes_supported(Some(vec![CoreResponseMode::Query]))
    .set_grant_types_supported(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
        CoreGrantType::ClientCredentials,
    ]))
    .set_token_endpoint_auth_methods_supported(Some(vec![
        CoreClientAuthMethod::ClientSecretBasic,
        CoreClientAuthMethod::ClientSecretPost,
        CoreClientAuthMethod::None,
    ]))
    .set_acr_values_supported(Some(
        signin::ACR_VALUES
            .iter()
            .map(|a| AuthenticationContextClass::new((*a).to_owned()))
            .collect(),
    ))
    .set_claims_supported(Some(
        claims
            .iter()
            .map(|c| CoreClaimName::new((*c).to_owned()))
            .collect(),
    ))
    .set_claims_parameter_supported(Some(false))
    .set_request_parameter_supported(Some(false))
    .set_request_uri_parameter_supported(Some(false));
    Ok(metadata)
}

/// The discovery document, built once: it depends only on the issuer.
pub fn discovery_body(issuer: &str) -> Result<String, String> {
    provider_metadata(issuer).and_then(|m| serde_json::to_string(&m).map_err(|e| e.to_string()))
}

fn json_text(body: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/json")
        .body(body.to_owned())
}

#[handler]
pub async fn discovery(Data(state): Data<&Arc<AppState>>) -> Response {
    json_text(&state.discovery)
}

#[handler]
pub async fn jwks(Data(state): Data<&Arc<AppState>>) -> Response {
    json_text(&state.keys.jwks_body().await)
}

/// Form fields, refusing repeated parameters (RFC 6749 §3.2).
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let mut fields = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        if fields.insert(key.to_string(), value.to_string()).is_some() {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("parameter \"{key}\" is repeated"),
            ));
        }
    }
    Ok(fields)
}

/// Client ids reach a counter key and a log line: refuse what no registered id can be.
const MAX_CLIENT_ID_LEN: usize = 256;

fn check_client_id(client_id: &str) -> Result<(), OAuthError> {
    if client_id.len() > MAX_CLIENT_ID_LEN {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is too long",
        ));
    }
    Ok(())
}

/// How the client presented its credentials.
struct ClientCredentials {
    client_id: ClientId,
    secret: Option<Secret>,
    via_basic: bool,
}

fn client_credentials(
    req: &Request,
    form: &mut HashMap<String, String>,
) -> Result<ClientCredentials, OAuthError> {
    let invalid_client = |description: &str| {
        oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description).with_basic_challenge()
    };
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
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "use one client authentication method, not both Basic and client_secret",
            ));
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| invalid_client("malformed Basic credentials"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| invalid_client("malformed Basic credentials"))?;
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
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_id differs from the Basic credentials",
            ));
        }
        return Ok(ClientCredentials {
            client_id: ClientId::new(client_id),
            secret: Some(Secret::new(decode(secret))),
            via_basic: true,
        });
    }
    let client_id = body_id.ok_or_else(|| invalid_client("client authentication is required"))?;
    check_client_id(&client_id)?;
    Ok(ClientCredentials {
        client_id: ClientId::new(client_id),
        secret: body_secret.map(Secret::new),
        via_basic: false,
    })
}

#[handler]
pub async fn token(
    req: &Request,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
) -> Response {
    match token_inner(req, body, state, addr.0).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn token_inner(
    req: &Request,
    body: Body,
    state: &AppState,
    ip: Option<IpAddr>,
) -> Result<Response, OAuthError> {
    let form_type = req
        .content_type()
        .and_then(|ct| ct.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.essence_str() == "application/x-www-form-urlencoded");
    if !form_type {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let bytes = body.into_bytes_limit(MAX_FORM_BYTES).await.map_err(|_| {
        oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the request body is too large",
        )
    })?;
    let mut form = parse_form(&bytes)?;
    let credentials = client_credentials(req, &mut form)?;

    // Only a presented secret can be guessed, so only those attempts are limited: a request
    // naming a client without a secret never counts against the client's real traffic.
    // Keyed per address, so failures elsewhere cannot lock the client out either.
    let reservation = match &credentials.secret {
        Some(_) => {
            match state
                .throttle
                .reserve(LimitKey::client_auth(&credentials.client_id, ip))
                .await
                .map_err(service_failure)?
            {
                Ok(reservation) => Some(reservation),
                Err(retry_after) => {
                    let seconds = retry_after.as_secs().max(1);
                    let mut error = oauth_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "invalid_client",
                        &format!(
                            "too many failed client authentications; retry in {seconds} seconds"
                        ),
                    );
                    error.retry_after_seconds = Some(seconds);
                    return Err(error);
                }
            }
        }
        None => None,
    };
    let client = match &credentials.secret {
        Some(secret) => clients::authenticate(&state.store, &credentials.client_id, secret)
            .await
            .map_err(service_failure)?,
        None => clients::identify_public(&state.store, &credentials.client_id)
            .await
            .map_err(service_failure)?,
    };
    let Some(client) = client else {
        tracing::warn!(client_id = %credentials.client_id, ip = ?ip, "client authentication failed");
        let error = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
        return Err(if credentials.via_basic {
            error.with_basic_challenge()
        } else {
            error
        });
    };
    if let Some(reservation) = reservation {
        state
            .throttle
            .succeeded(reservation)
            .await
            .map_err(service_failure)?;
    }

    let grant_type = form.get("grant_type").ok_or_else(|| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        )
    })?;
    let known = ["client_credentials", "authorization_code", "refresh_token"];
    if !known.contains(&grant_type.as_str()) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type \"{grant_type}\" is not supported here"),
        ));
    }
    if !client.may_use(grant_type) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            &format!("this client is not registered for {grant_type}"),
        ));
    }
    let body = match grant_type.as_str() {
        "authorization_code" => grants::authorization_code(state, &client, &form).await?,
        "refresh_token" => grants::refresh_token(state, &client, &form).await?,
        _ => client_credentials_grant(state, &client, &form).await?,
    };
    let mut response = json_response(StatusCode::OK, body);
    no_store(&mut response);
    Ok(response)
}

async fn client_credentials_grant(
    state: &AppState,
    client: &clients::AuthenticatedClient,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let allowed = ScopeSet::from_names(client.scopes.iter().filter(|s| !scope::USER.contains(s)));
    let granted = match form.get("scope") {
        Some(requested) => {
            let requested = ScopeSet::parse(requested);
            if !requested.is_subset(&allowed) {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("this client may request only: {allowed}"),
                ));
            }
            requested
        }
        None => allowed,
    };
    if granted.is_empty() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "no scope to grant",
        ));
    }
    let access_token = state
        .tokens
        .issue(client.client_id.as_str(), &client.client_id, &granted, None)
        .await
        .map_err(service_failure)?;
    tracing::info!(client_id = %client.client_id, scope = %granted, "access token issued");
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.tokens.ttl_seconds(),
        "scope": granted.to_string(),
    }))
}

/// A service failure: 503 `temporarily_unavailable` when a dependency is busy, else ours.
pub(crate) fn service_failure(err: impl Into<crate::service::ServiceError>) -> OAuthError {
    match err.into() {
        crate::service::ServiceError::Unavailable(detail) => {
            let mut error = oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &detail,
            );
            error.retry_after_seconds = Some(60);
            error
        }
        other => server_error(&other),
    }
}

/// A failure of ours: logged, and reported without details.
pub(crate) fn server_error(err: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %err, "token endpoint failed");
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal error",
    )
}

/// A service failure at userinfo: 503 with `Retry-After` when a dependency is down, else 500;
/// no internals either way.
fn unavailable_or_failed(err: crate::service::ServiceError) -> Response {
    let mut response = match err {
        crate::service::ServiceError::Unavailable(_) => {
            let mut response = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "temporarily_unavailable"}),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(5));
            response
        }
        other => {
            tracing::error!(error = %other, "userinfo failed");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "server_error"}),
            )
        }
    };
    no_store(&mut response);
    response
}

#[handler]
pub async fn userinfo(req: &Request, Data(state): Data<&Arc<AppState>>) -> Response {
    let challenge = |error: &str, description: &str, status: StatusCode| {
        let value = format!(
            "Bearer realm=\"bypass-idp\", error=\"{error}\", error_description=\"{description}\""
        );
        let mut response = json_response(
            status,
            json!({"error": error, "error_description": description}),
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(bearer) = bearer else {
        let mut response = json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_request"}),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"bypass-idp\""),
        );
        return response;
    };
    let principal = match state.tokens.verify(bearer).await {
        Ok(p) => p,
        // Our failure, not the token's: the client must not drop its session over it.
        Err(TokenError::Service(e)) => return unavailable_or_failed(e),
        Err(e) => return challenge("invalid_token", &e.to_string(), StatusCode::UNAUTHORIZED),
    };
    if !principal.scopes.contains("openid") {
        return challenge(
            "insufficient_scope",
            "the token lacks the openid scope",
            StatusCode::FORBIDDEN,
        );
    }
    match grants::user_claims_for(state, &principal).await {
        Ok(Some(claims)) => {
            let mut response = json_response(StatusCode::OK, claims);
            no_store(&mut response);
            response
        }
        Ok(None) => challenge(
            "invalid_token",
            "the sign-in behind this token is revoked or the user is gone",
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => unavailable_or_failed(e),
    }
}
