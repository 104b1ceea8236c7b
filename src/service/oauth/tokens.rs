//! Access tokens: RFC 9068 JWTs signed with our key, and their verification.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::keys::{Alg, KeyRing};
use crate::domain::ids::ClientId;
use crate::domain::scope::ScopeSet;
use crate::service::ServiceError;

pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Tolerated clock difference between instances, in seconds.
const LEEWAY_SECONDS: i64 = 30;

/// Who is calling, as proven by a verified access token.
#[derive(Clone, Debug)]
pub struct Principal {
    pub subject: String,
    pub client_id: ClientId,
    pub scopes: ScopeSet,
    /// The sign-in a user's token came from; revoking it kills the token.
    pub grant: Option<String>,
    /// The [`Client::secret_fingerprint`](crate::domain::oauth::Client::secret_fingerprint)
    /// a client's own token was minted with.
    pub secret_fingerprint: Option<String>,
}

/// Why a token was refused. The message is safe to show to the caller.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token signature is invalid")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token was not issued for this server")]
    WrongAudience,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: String,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
    client_id: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    csf: Option<String>,
}

#[derive(Clone)]
pub struct AccessTokens {
    keys: KeyRing,
    issuer: String,
    ttl_seconds: i64,
}

impl AccessTokens {
    pub fn new(keys: KeyRing, issuer: String, ttl_seconds: u64) -> Self {
        Self {
            keys,
            issuer,
            ttl_seconds: ttl_seconds as i64,
        }
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    /// Issues a token whose audience is this server's own APIs (the issuer).
    pub async fn issue(
        &self,
        subject: &str,
        client_id: &ClientId,
        scopes: &ScopeSet,
        grant: Option<&str>,
        secret_fingerprint: Option<&str>,
    ) -> Result<String, ServiceError> {
        let now = Utc::now().timestamp();
        let claims = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.issuer,
            "exp": now + self.ttl_seconds,
            "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "client_id": client_id.as_str(),
            "scope": scopes.to_string(),
            "grant": grant,
            "csf": secret_fingerprint,
        });
        self.keys.sign_jwt(ACCESS_TOKEN_TYP, &claims).await
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(header_b64)?).map_err(|_| TokenError::Malformed)?;
        // Only our own access tokens: an ID token (typ JWT) must not work as a bearer token.
        let Some(alg) = Alg::parse(&header.alg) else {
            return Err(TokenError::Malformed);
        };
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(TokenError::Malformed);
        }
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        if !self
            .keys
            .verify(
                alg,
                &header.kid,
                signing_input.as_bytes(),
                &decode(signature_b64)?,
            )
            .await?
        {
            return Err(TokenError::BadSignature);
        }
        let claims: Claims =
            serde_json::from_slice(&decode(claims_b64)?).map_err(|_| TokenError::Malformed)?;
        if claims.iss != self.issuer || claims.aud != self.issuer {
            return Err(TokenError::WrongAudience);
        }
        let now = Utc::now().timestamp();
        if claims.exp + LEEWAY_SECONDS < now || claims.iat - LEEWAY_SECONDS > now {
            return Err(TokenError::Expired);
        }
        Ok(Principal {
            subject: claims.sub,
            client_id: ClientId::new(claims.client_id),
            scopes: ScopeSet::parse(&claims.scope),
            grant: claims.grant,
            secret_fingerprint: claims.csf,
        })
    }
}
