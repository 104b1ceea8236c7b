//! The discovery document (OpenID Connect Discovery 1.0, RFC 8414) and the endpoint paths it
//! advertises.

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, AuthenticationContextClass, IssuerUrl, JsonWebKeySetUrl,
    ResponseTypes, Scope, TokenUrl, UserInfoUrl,
};
use serde::{Deserialize, Serialize};

use crate::domain::methods;
use crate::domain::scope;
use crate::service::ServiceError;

pub const TOKEN_PATH: &str = "/oauth2/token";
pub const JWKS_PATH: &str = "/oauth2/jwks";
pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
pub const USERINFO_PATH: &str = "/oauth2/userinfo";
pub const END_SESSION_PATH: &str = "/oauth2/logout";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

fn bad_url(err: openidconnect::url::ParseError) -> ServiceError {
    ServiceError::internal("issuer URL", err)
}

/// Discovery members that `CoreProviderMetadata` lacks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExtraMetadata {
    pub code_challenge_methods_supported: Vec<String>,
    pub authorization_response_iss_parameter_supported: bool,
    pub end_session_endpoint: String,
    pub backchannel_logout_supported: bool,
    pub backchannel_logout_session_supported: bool,
    pub frontchannel_logout_supported: bool,
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

pub fn provider_metadata(issuer: &str) -> Result<ProviderMetadata, ServiceError> {
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
        "sid",
    ];
    let metadata = ProviderMetadata::new(
        IssuerUrl::new(issuer.to_owned()).map_err(bad_url)?,
        AuthUrl::new(url(AUTHORIZE_PATH)).map_err(bad_url)?,
        JsonWebKeySetUrl::new(url(JWKS_PATH)).map_err(bad_url)?,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        ExtraMetadata {
            code_challenge_methods_supported: vec!["S256".to_owned()],
            authorization_response_iss_parameter_supported: true,
            end_session_endpoint: url(END_SESSION_PATH),
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
            frontchannel_logout_supported: false,
        },
    )
    .set_token_endpoint(Some(TokenUrl::new(url(TOKEN_PATH)).map_err(bad_url)?))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(url(USERINFO_PATH)).map_err(bad_url)?))
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
        methods::ACR_VALUES
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
pub fn discovery_body(issuer: &str) -> Result<String, ServiceError> {
    serde_json::to_string(&provider_metadata(issuer)?)
        .map_err(|e| ServiceError::internal("discovery document", e))
}
