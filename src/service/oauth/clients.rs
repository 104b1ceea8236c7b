//! OAuth client registration (used by the CLI and bootstrap) and client authentication.
//! Secrets have 256 random bits, so a SHA-256 digest compared in constant time is the right
//! store: argon2 here would only slow the token endpoint and hand attackers a DoS lever.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::ids::ClientId;
use crate::domain::oauth::Client;
use crate::domain::repo::ClientRepo;
use crate::domain::roles::{CONSOLE_CLIENT_ID, Role};
use crate::domain::scope;
use crate::domain::scope::ScopeSet;
use crate::domain::secret::Secret;
use crate::service::ServiceError;
use crate::store::{Store, StoreError};

pub const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];

/// What an operator asks to register.
#[derive(Clone, Debug, Default)]
pub struct ClientSpec {
    pub client_id: Option<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: String,
    pub grant_types: Vec<String>,
    pub public: bool,
    pub require_mfa: bool,
    pub allow_self_service_codes: bool,
    /// Sign-ins here neither offer nor accept bypass codes.
    pub refuses_bypass_codes: bool,
    /// RP-Initiated Logout: where the browser may be sent after signing out.
    pub post_logout_redirect_uris: Vec<String>,
    /// Back-Channel Logout: where logout tokens are posted.
    pub backchannel_logout_uri: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error("a client with id \"{0}\" already exists")]
    Exists(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// A registered client and, for a confidential one, the secret shown this once.
pub struct Registered {
    pub client_id: ClientId,
    pub secret: Option<Secret>,
}

/// What a client presented at the token endpoint.
pub struct ClientCredentials {
    pub client_id: ClientId,
    pub secret: Option<Secret>,
}

/// A public client identifies itself by id alone; its proof is PKCE, checked per grant.
pub async fn identify_public(
    store: &Store,
    client_id: &ClientId,
) -> Result<Option<Client>, ServiceError> {
    Ok(store.find_client(client_id).await?.filter(|c| c.public))
}

pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(buf)
}

fn validate(spec: &ClientSpec) -> Result<(), ClientError> {
    let invalid = |m: String| Err(ClientError::Invalid(m));
    if let Some(id) = &spec.client_id
        && (id.is_empty()
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
    {
        return invalid("--client-id must be 1-128 characters of A-Z a-z 0-9 - _ .".into());
    }
    let scopes = ScopeSet::parse(&spec.scopes);
    if let Some(unknown) = scopes.first_unknown() {
        return invalid(format!(
            "unknown scope \"{unknown}\"; known scopes: {}",
            crate::domain::scope::KNOWN.join(" ")
        ));
    }
    for grant in &spec.grant_types {
        if !GRANT_TYPES.contains(&grant.as_str()) {
            return invalid(format!(
                "unknown grant type \"{grant}\"; use one of {}",
                GRANT_TYPES.join(", ")
            ));
        }
    }
    if scopes.contains(scope::BYPASS_CODES_SELF) && !spec.allow_self_service_codes {
        return invalid(format!(
            "{} lets the client mint bypass codes for whoever signs in to it: register it with --allow-self-service-codes if it is trusted that far",
            scope::BYPASS_CODES_SELF
        ));
    }
    if spec.public && spec.grant_types.iter().any(|g| g == "client_credentials") {
        return invalid("a public client cannot use client_credentials: it has no secret".into());
    }
    if spec.grant_types.iter().any(|g| g == "authorization_code") && spec.redirect_uris.is_empty() {
        return invalid("authorization_code needs at least one --redirect-uri".into());
    }
    let uris = spec
        .redirect_uris
        .iter()
        .map(|u| ("redirect URI", u))
        .chain(
            spec.post_logout_redirect_uris
                .iter()
                .map(|u| ("post-logout redirect URI", u)),
        )
        .chain(
            spec.backchannel_logout_uri
                .iter()
                .map(|u| ("back-channel logout URI", u)),
        );
    for (what, uri) in uris {
        let parsed = url::Url::parse(uri)
            .map_err(|e| ClientError::Invalid(format!("{what} \"{uri}\": {e}")))?;
        if parsed.fragment().is_some() {
            return invalid(format!(
                "{what} \"{uri}\" must not have a fragment (RFC 6749 §3.1.2)"
            ));
        }
        if uri.contains(char::is_whitespace) {
            return invalid(format!("{what} \"{uri}\" must not contain white space"));
        }
    }
    if let Some(uri) = &spec.backchannel_logout_uri
        && !(uri.starts_with("https://") || uri.starts_with("http://"))
    {
        return invalid(format!(
            "back-channel logout URI \"{uri}\" must be an http or https address"
        ));
    }
    Ok(())
}

pub async fn register(store: &Store, spec: ClientSpec) -> Result<Registered, ClientError> {
    validate(&spec)?;
    let client_id = ClientId::new(spec.client_id.clone().unwrap_or_else(|| random_token(16)));
    let secret = (!spec.public).then(|| Secret::new(random_token(32)));
    let new = Client {
        client_id: client_id.clone(),
        secret_digest: secret.as_ref().map(|s| digest(s.expose())),
        scopes: ScopeSet::parse(&spec.scopes),
        grant_types: spec.grant_types,
        redirect_uris: spec.redirect_uris,
        public: spec.public,
        require_mfa: spec.require_mfa,
        allow_self_service_codes: spec.allow_self_service_codes,
        refuses_bypass_codes: spec.refuses_bypass_codes,
        post_logout_redirect_uris: spec.post_logout_redirect_uris,
        backchannel_logout_uri: spec.backchannel_logout_uri,
    };
    match store.insert_client(new).await {
        Err(StoreError::Duplicate) => Err(ClientError::Exists(client_id.into_string())),
        Err(other) => Err(ClientError::Service(other.into())),
        Ok(()) => Ok(Registered { client_id, secret }),
    }
}

/// Registers (or updates) this service's own console as a public client of itself, with PKCE,
/// redirected to `{issuer}/console/callback`. A user's sign-in there may carry the scopes of
/// the user's roles; at every other client it never carries an administrative scope.
pub async fn ensure_console(store: &Store, issuer: &str) -> Result<(), ServiceError> {
    let scopes = scope::USER
        .iter()
        .copied()
        .chain(Role::ALL.iter().flat_map(|r| r.scopes().iter().copied()));
    let console = Client {
        client_id: ClientId::new(CONSOLE_CLIENT_ID),
        secret_digest: None,
        scopes: ScopeSet::from_names(scopes),
        // No refresh token: the console's sign-ins live in its own sessions only.
        grant_types: vec!["authorization_code".into()],
        redirect_uris: vec![format!("{issuer}/console/callback")],
        public: true,
        require_mfa: true,
        allow_self_service_codes: true,
        refuses_bypass_codes: false,
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
    };
    Ok(store.save_client(console).await?)
}

/// Confidential clients looked up recently, for the client_credentials grant only: its tokens
/// are for this server's own APIs, which check on every request that the client still exists
/// with the same secret ([`Client::secret_fingerprint`]). So a removed client may still be
/// answered for up to [`CLIENT_CACHE_TTL`], but what it gets is refused wherever it is shown.
/// Other grants read the client fresh. Unknown ids are never remembered, so guessing ids
/// cannot fill the cache, and it holds at most [`CLIENT_CACHE_ENTRIES`] clients.
#[derive(Default)]
pub struct ClientCache {
    entries: std::sync::Mutex<HashMap<ClientId, (Client, Instant)>>,
}

pub const CLIENT_CACHE_TTL: Duration = Duration::from_secs(5);
pub const CLIENT_CACHE_ENTRIES: usize = 4096;

impl ClientCache {
    /// The client `client_id` if `secret` is its secret. A secret that does not match the
    /// remembered client is checked again against the store, so a client registered again
    /// is served with its new secret at once.
    pub async fn authenticate(
        &self,
        store: &Store,
        client_id: &ClientId,
        secret: &Secret,
    ) -> Result<Option<Client>, ServiceError> {
        let now = Instant::now();
        let remembered = self
            .lock()
            .get(client_id)
            .filter(|(_, at)| now.duration_since(*at) < CLIENT_CACHE_TTL)
            .map(|(client, _)| client.clone());
        if let Some(client) = check_secret(remembered, secret) {
            return Ok(Some(client));
        }
        Ok(check_secret(
            self.refresh(store, client_id, now).await?,
            secret,
        ))
    }

    async fn refresh(
        &self,
        store: &Store,
        client_id: &ClientId,
        now: Instant,
    ) -> Result<Option<Client>, ServiceError> {
        let found = store.find_client(client_id).await?;
        let mut entries = self.lock();
        match &found {
            Some(client) => {
                if entries.len() >= CLIENT_CACHE_ENTRIES {
                    entries.retain(|_, (_, at)| now.duration_since(*at) < CLIENT_CACHE_TTL);
                }
                if entries.len() < CLIENT_CACHE_ENTRIES {
                    entries.insert(client_id.clone(), (client.clone(), now));
                }
            }
            None => {
                entries.remove(client_id);
            }
        }
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientId, (Client, Instant)>> {
        // A panic while holding the lock leaves nothing half-written worth refusing over.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The client if `secret` is its secret, compared in constant time. Unknown clients cost the
/// same digest comparison as known ones, so timing does not reveal which client ids exist.
pub fn check_secret(client: Option<Client>, secret: &Secret) -> Option<Client> {
    let presented = digest(secret.expose());
    let stored = client
        .as_ref()
        .and_then(|c| c.secret_digest.clone())
        .unwrap_or_else(|| vec![0u8; presented.len()]);
    let matches: bool = presented.ct_eq(&stored).into();
    client.filter(|c| matches && c.secret_digest.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClientSpec {
        ClientSpec {
            client_id: Some("rp".into()),
            redirect_uris: vec!["https://rp.example/cb".into()],
            scopes: "openid email".into(),
            grant_types: vec!["authorization_code".into()],
            public: false,
            require_mfa: false,
            allow_self_service_codes: false,
            refuses_bypass_codes: false,
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
        }
    }

    #[test]
    fn validation_catches_bad_registrations() {
        assert!(validate(&spec()).is_ok());
        let bad = [
            ClientSpec {
                scopes: "openid admin".into(),
                ..spec()
            },
            ClientSpec {
                grant_types: vec!["password".into()],
                ..spec()
            },
            ClientSpec {
                redirect_uris: vec!["https://rp.example/cb#frag".into()],
                ..spec()
            },
            ClientSpec {
                redirect_uris: vec!["not a uri".into()],
                ..spec()
            },
            ClientSpec {
                redirect_uris: vec![],
                ..spec()
            },
            ClientSpec {
                public: true,
                grant_types: vec!["client_credentials".into()],
                ..spec()
            },
            ClientSpec {
                client_id: Some("has space".into()),
                ..spec()
            },
        ];
        for case in bad {
            assert!(
                matches!(validate(&case), Err(ClientError::Invalid(_))),
                "{case:?}"
            );
        }
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token(32);
        assert_eq!(a.len(), 43, "256 bits in unpadded base64url");
        assert_ne!(a, random_token(32));
    }
}
