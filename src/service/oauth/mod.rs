//! OAuth 2.0 and OpenID Connect as operations: client registration and authentication, the
//! token endpoint's grants, access tokens, signing keys, userinfo and bearer-token checks.
//! Refusals are typed ([`TokenRefusal`], [`BearerRefusal`]); `oidc::error` alone turns them
//! into protocol bodies.

pub mod clients;
pub mod discovery;
mod grants;
pub mod keys;
pub mod tokens;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use self::clients::{ClientCache, ClientCredentials};
use self::keys::KeyRing;
use self::tokens::{AccessTokens, Principal, TokenError};
use super::ServiceError;
use super::signin::SignInService;
use super::throttle::Throttle;
use crate::counters::CounterError;
use crate::domain::ids::{ClientId, UserId};
use crate::domain::limits::LimitKey;
use crate::domain::oauth::{Client, Grant};
use crate::domain::repo::{ClientRepo, GrantRepo, UserRepo};
use crate::domain::roles::CONSOLE_CLIENT_ID;
use crate::domain::scim::user::User;
use crate::domain::scope::{self, ScopeSet};
use crate::store::{Store, StoreError};

/// Why the token endpoint refuses a request (RFC 6749 §5.2), or our own failure.
#[derive(Debug)]
pub enum TokenRefusal {
    InvalidRequest(String),
    InvalidClient(&'static str),
    /// Too many failed client authentications from this address: retry after this long.
    ClientLocked(Duration),
    InvalidGrant(&'static str),
    UnauthorizedClient(String),
    UnsupportedGrantType(String),
    InvalidScope(String),
    Failed(ServiceError),
}

/// Why a bearer token is refused (RFC 6750 §3.1), or our own failure.
#[derive(Debug)]
pub enum BearerRefusal {
    /// 401 `invalid_token`; the reason is safe to show.
    InvalidToken(String),
    /// 403 `insufficient_scope`.
    InsufficientScope(&'static str),
    Failed(ServiceError),
}

macro_rules! failed_from {
    ($refusal:ident) => {
        impl From<ServiceError> for $refusal {
            fn from(err: ServiceError) -> Self {
                Self::Failed(err)
            }
        }
        impl From<StoreError> for $refusal {
            fn from(err: StoreError) -> Self {
                Self::Failed(err.into())
            }
        }
        impl From<CounterError> for $refusal {
            fn from(err: CounterError) -> Self {
                Self::Failed(err.into())
            }
        }
    };
}
failed_from!(TokenRefusal);
failed_from!(BearerRefusal);

impl From<TokenError> for BearerRefusal {
    fn from(err: TokenError) -> Self {
        match err {
            // Our failure, not the token's: the caller must not drop its session over it.
            TokenError::Service(e) => Self::Failed(e),
            refused => Self::InvalidToken(refused.to_string()),
        }
    }
}

/// The signed-in user behind a user token, and how they signed in.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: UserId,
    pub amr: Vec<String>,
}

const GRANT_TYPES: &[&str] = &["client_credentials", "authorization_code", "refresh_token"];

#[derive(Clone)]
pub struct OAuthService {
    store: Store,
    keys: KeyRing,
    tokens: AccessTokens,
    throttle: Throttle,
    signin: SignInService,
    issuer: String,
    /// How long a sign-in's refresh tokens may be rotated, from the sign-in.
    refresh_token_lifetime: chrono::Duration,
    discovery: Arc<str>,
    clients: Arc<ClientCache>,
}

/// What an [`OAuthService`] is built from.
pub struct OAuthParts {
    pub store: Store,
    pub keys: KeyRing,
    pub tokens: AccessTokens,
    pub throttle: Throttle,
    pub signin: SignInService,
    pub issuer: String,
    pub refresh_token_lifetime: chrono::Duration,
}

impl OAuthService {
    pub fn new(parts: OAuthParts) -> Result<Self, ServiceError> {
        let discovery = discovery::discovery_body(&parts.issuer)?.into();
        Ok(Self {
            store: parts.store,
            keys: parts.keys,
            tokens: parts.tokens,
            throttle: parts.throttle,
            signin: parts.signin,
            issuer: parts.issuer,
            refresh_token_lifetime: parts.refresh_token_lifetime,
            discovery,
            clients: Arc::default(),
        })
    }

    /// The discovery document, built once: it depends only on the issuer.
    pub fn discovery(&self) -> Arc<str> {
        self.discovery.clone()
    }

    /// The JWKS document, rebuilt when the keys are.
    pub async fn jwks(&self) -> Arc<str> {
        self.keys.jwks_body().await
    }

    pub fn tokens(&self) -> &AccessTokens {
        &self.tokens
    }

    /// Authenticates the client at the token endpoint. Only a presented secret can be
    /// guessed, so only those attempts are limited, per client and address: a request naming
    /// a client without a secret never counts against the client's real traffic, and
    /// failures elsewhere cannot lock the client out.
    /// A client_credentials request may be answered from the [`ClientCache`]; every other
    /// grant reads the client fresh.
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
        ip: Option<IpAddr>,
        grant_type: Option<&str>,
    ) -> Result<Client, TokenRefusal> {
        let Some(secret) = &credentials.secret else {
            // A public client's proof is PKCE, checked per grant; no secret, nothing to guess.
            return clients::identify_public(&self.store, &credentials.client_id)
                .await?
                .ok_or(TokenRefusal::InvalidClient("client authentication failed"));
        };
        // A limited key refuses at once, before anything about the secret is looked at, so
        // right and wrong secrets take the same path. Below the limit, the secret is
        // compared first and only a failure is reserved. Failures stay exactly limited under
        // parallel guessing, and concurrent requests of a busy client never lock each
        // other out.
        let keys = LimitKey::client_auth(&credentials.client_id, ip);
        let counted = match self.throttle.check(&keys).await? {
            Ok(counted) => counted,
            Err(retry_after) => return Err(TokenRefusal::ClientLocked(retry_after)),
        };
        let client = if grant_type == Some("client_credentials") {
            let id = &credentials.client_id;
            self.clients.authenticate(&self.store, id, secret).await?
        } else {
            let client = self.store.find_client(&credentials.client_id).await?;
            clients::check_secret(client, secret)
        };
        match client {
            // Failures counted before: settle them (re-checking the limit atomically).
            Some(client) if counted => match self.throttle.admit(keys).await? {
                Ok(()) => Ok(client),
                Err(retry_after) => Err(TokenRefusal::ClientLocked(retry_after)),
            },
            Some(client) => Ok(client),
            None => match self.throttle.reserve(keys).await? {
                // Dropped unsettled: the reservation stays counted as a failure.
                Ok(_failure) => {
                    tracing::warn!(client_id = %credentials.client_id, ip = ?ip, "client authentication failed");
                    Err(TokenRefusal::InvalidClient("client authentication failed"))
                }
                Err(retry_after) => Err(TokenRefusal::ClientLocked(retry_after)),
            },
        }
    }

    /// Runs the grant `form` asks for and returns the token response body.
    pub async fn grant(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
    ) -> Result<Value, TokenRefusal> {
        let grant_type = required(form, "grant_type")?;
        if !GRANT_TYPES.contains(&grant_type) {
            return Err(TokenRefusal::UnsupportedGrantType(format!(
                "grant_type \"{grant_type}\" is not supported here"
            )));
        }
        // The console's sign-ins carry a person's roles: only the console's own callback
        // redeems them (OAuthService::console_sign_in), so those roles never leave it.
        if client.client_id.as_str() == CONSOLE_CLIENT_ID {
            return Err(TokenRefusal::UnauthorizedClient(
                "the console's sign-ins are redeemed by the console only".into(),
            ));
        }
        if !client.may_use(grant_type) {
            return Err(TokenRefusal::UnauthorizedClient(format!(
                "this client is not registered for {grant_type}"
            )));
        }
        match grant_type {
            "authorization_code" => self.authorization_code(client, form).await,
            "refresh_token" => self.refresh_token(client, form).await,
            _ => self.client_credentials(client, form.get("scope")).await,
        }
    }

    async fn client_credentials(
        &self,
        client: &Client,
        requested: Option<&String>,
    ) -> Result<Value, TokenRefusal> {
        let allowed =
            ScopeSet::from_names(client.scopes.iter().filter(|s| !scope::USER.contains(s)));
        let granted = match requested {
            Some(requested) => {
                let requested = ScopeSet::parse(requested);
                if !requested.is_subset(&allowed) {
                    return Err(TokenRefusal::InvalidScope(format!(
                        "this client may request only: {allowed}"
                    )));
                }
                requested
            }
            None => allowed,
        };
        if granted.is_empty() {
            return Err(TokenRefusal::InvalidScope("no scope to grant".into()));
        }
        let access_token = self
            .tokens
            .issue(
                client.client_id.as_str(),
                &client.client_id,
                &granted,
                None,
                client.secret_fingerprint().as_deref(),
            )
            .await?;
        tracing::info!(client_id = %client.client_id, scope = %granted, "access token issued");
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.tokens.ttl_seconds(),
            "scope": granted.to_string(),
        }))
    }

    /// Verifies a bearer token for this server's APIs: a valid signature, a sign-in that was
    /// not revoked, and a client that still exists (removing a client revokes its tokens).
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Principal, BearerRefusal> {
        let principal = self.tokens.verify(token).await?;
        if let Some(grant_id) = &principal.grant
            && !self
                .store
                .find_grant(grant_id)
                .await?
                .is_some_and(|g| g.is_live())
        {
            return Err(BearerRefusal::InvalidToken(
                "the sign-in behind this token was revoked".into(),
            ));
        }
        let Some(client) = self.store.find_client(&principal.client_id).await? else {
            return Err(BearerRefusal::InvalidToken(
                "the client of this token no longer exists".into(),
            ));
        };
        if principal.secret_fingerprint.is_some()
            && principal.secret_fingerprint != client.secret_fingerprint()
        {
            return Err(BearerRefusal::InvalidToken(
                "the client of this token was registered again since".into(),
            ));
        }
        Ok(principal)
    }

    /// The user a user token stands for, while the user is active; `None` for a client's
    /// own token.
    pub async fn session(&self, principal: &Principal) -> Result<Option<Session>, BearerRefusal> {
        let Some(grant_id) = principal.grant.as_deref() else {
            return Ok(None);
        };
        let grant = self.store.find_grant(grant_id).await?.ok_or_else(|| {
            BearerRefusal::InvalidToken("the sign-in behind this token is gone".into())
        })?;
        // A user deactivated since the sign-in keeps no access through older tokens.
        let active = self
            .store
            .get_user(&grant.user_id)
            .await?
            .is_some_and(|u| u.is_active());
        if !active {
            return Err(BearerRefusal::InvalidToken(
                "the user of this token is inactive or gone".into(),
            ));
        }
        Ok(Some(Session {
            user_id: grant.user_id,
            amr: grant.amr,
        }))
    }

    /// Redeems a code issued to this service's own console (PKCE, exact redirect URI) and
    /// returns the sign-in it stands for and its user, as the token endpoint would.
    pub async fn console_sign_in(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<(Grant, User), TokenRefusal> {
        let client = self
            .store
            .find_client(&ClientId::new(CONSOLE_CLIENT_ID))
            .await?
            .ok_or(TokenRefusal::InvalidClient(
                "the console client is not registered",
            ))?;
        let form: HashMap<String, String> = [
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (grant, _) = self.redeem_code(&client, &form).await?;
        let user = self.live_user(&grant).await?;
        Ok((grant, user))
    }

    /// Whether a sign-in still stands (not revoked; its user active and not reset since).
    pub async fn grant_is_live(&self, grant_id: &str) -> Result<bool, ServiceError> {
        let Some(grant) = self.store.find_grant(grant_id).await? else {
            return Ok(false);
        };
        if !grant.is_live() {
            return Ok(false);
        }
        match self.live_user(&grant).await {
            Ok(_) => Ok(true),
            Err(TokenRefusal::Failed(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// The userinfo claims (OIDC Core §5.3) the token's scopes allow.
    pub async fn userinfo(&self, token: &str) -> Result<Value, BearerRefusal> {
        // The same checks as for this server's APIs: a removed client's tokens stop here too.
        let principal = self.authenticate_bearer(token).await?;
        if !principal.scopes.contains("openid") {
            return Err(BearerRefusal::InsufficientScope(
                "the token lacks the openid scope",
            ));
        }
        self.user_claims_for(&principal).await?.ok_or_else(|| {
            BearerRefusal::InvalidToken(
                "the sign-in behind this token is revoked or the user is gone".into(),
            )
        })
    }
}

fn required<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, TokenRefusal> {
    form.get(name)
        .map(String::as_str)
        .ok_or_else(|| TokenRefusal::InvalidRequest(format!("{name} is required")))
}
