//! Access tokens: RFC 9068 JWTs signed with our key, and their verification.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

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

#[derive(Clone, Deserialize)]
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
    verified: Arc<Mutex<HashMap<[u8; 32], Verified>>>,
}

/// An access token whose signature was checked: by which key, and what it says. A client sends
/// the same token for up to an hour, and checking an ECDSA or RSA signature again each time
/// costs more than the rest of a small SCIM request. What the signature does not settle is
/// checked again on every use (the key still held, the issuer and audience, the time), as
/// for a token seen the first time; only tokens that passed every check are kept.
struct Verified {
    alg: Alg,
    kid: String,
    claims: Claims,
}

/// The most verified tokens kept; when full, the expired ones go, and if none is, half.
const VERIFIED_MAX: usize = if cfg!(test) { 8 } else { 4096 };

impl AccessTokens {
    pub fn new(keys: KeyRing, issuer: String, ttl_seconds: u64) -> Self {
        Self {
            keys,
            issuer,
            ttl_seconds: ttl_seconds as i64,
            verified: Arc::default(),
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
        // Kept by the SHA-256 of the whole token: the same bytes, so the same signature.
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let kept = self
            .kept()
            .get(&digest)
            .map(|v| (v.alg, v.kid.clone(), v.claims.clone()));
        if let Some((alg, kid, claims)) = kept {
            if !self.keys.holds(alg, &kid).await {
                self.kept().remove(&digest);
                return Err(TokenError::BadSignature);
            }
            return self.principal(claims);
        }
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
        let principal = self.principal(claims.clone())?;
        let mut kept = self.kept();
        if kept.len() >= VERIFIED_MAX {
            let now = Utc::now().timestamp();
            kept.retain(|_, v| v.claims.exp + LEEWAY_SECONDS >= now);
            // None expired: half go (the map's order, not the clients'), so the next half of
            // the bound's new tokens are kept without another scan, and the rest stay.
            if kept.len() >= VERIFIED_MAX {
                let gone: Vec<[u8; 32]> = kept.keys().take(VERIFIED_MAX / 2).copied().collect();
                for digest in gone {
                    kept.remove(&digest);
                }
            }
        }
        let kid = header.kid;
        kept.insert(digest, Verified { alg, kid, claims });
        Ok(principal)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Verified>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a token with a good signature stands for, if it is ours and of now.
    fn principal(&self, claims: Claims) -> Result<Principal, TokenError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::sealing::Sealer;
    use crate::store::Store;

    async fn tokens() -> AccessTokens {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let keys = KeyRing::open(store, Sealer::new(None).unwrap(), Alg::Es256)
            .await
            .unwrap();
        AccessTokens::new(keys, "https://idp.example".into(), 3600)
    }

    async fn issued(tokens: &AccessTokens, subject: &str) -> String {
        let client = ClientId::new("c1");
        let scopes = ScopeSet::parse("scim:users");
        tokens
            .issue(subject, &client, &scopes, None, None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_kept_token_still_needs_its_key_and_nothing_else_rides_on_it() {
        let tokens = tokens().await;
        let token = issued(&tokens, "alice").await;
        for _ in 0..2 {
            let principal = tokens.verify(&token).await.unwrap();
            assert_eq!(principal.subject, "alice");
            assert!(principal.scopes.contains("scim:users"));
        }
        // Other claims under the kept token's signature: checked afresh, and refused.
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["scope"] = "scim:users scim:groups".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        assert!(matches!(
            tokens.verify(&forged).await,
            Err(TokenError::BadSignature)
        ));
        // The key gone: the kept token goes with it.
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        tokens.keys.forget(header["kid"].as_str().unwrap()).await;
        assert!(matches!(
            tokens.verify(&token).await,
            Err(TokenError::BadSignature)
        ));
    }

    #[tokio::test]
    async fn the_kept_tokens_are_bounded() {
        let tokens = tokens().await;
        let mut all = Vec::new();
        for i in 0..VERIFIED_MAX * 3 {
            let token = issued(&tokens, &format!("user{i}")).await;
            tokens.verify(&token).await.unwrap();
            assert!(tokens.kept().len() <= VERIFIED_MAX);
            all.push(token);
        }
        // Those let go verify again, from their signature.
        for (i, token) in all.iter().enumerate() {
            assert_eq!(
                tokens.verify(token).await.unwrap().subject,
                format!("user{i}")
            );
        }
    }
}
