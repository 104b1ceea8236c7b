//! Console sessions: after a person signs in to the console through this service's own
//! OpenID Connect flow (authorization code + PKCE, as the `bypass-idp-console` client), the
//! console keeps a server-side session (Redis or in-process) behind an opaque cookie, with an
//! idle and an absolute timeout. A session lasts only while its sign-in (grant) does, so a
//! role taken away or a revocation ends it too.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ServiceError;
use super::bypass::HeldCode;
use super::oauth::{OAuthService, TokenRefusal};
use crate::counters::SharedCounters;
use crate::domain::clock::Clock;
use crate::domain::ids::UserId;
use crate::domain::roles::{CONSOLE_CLIENT_ID, Role};
use crate::domain::scope::{self, ScopeSet};
use crate::domain::secret::Secret;

/// A session ends after this long without a request…
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// …and this long after the sign-in, whatever happens.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 60 * 60);
/// How long a generated code stays held (sealed) for the code window's Email button.
pub const HOLD_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a console sign-in may take, from the first redirect to the callback.
pub const LOGIN_TTL: Duration = Duration::from_secs(10 * 60);
pub const CALLBACK_PATH: &str = "/console/callback";

/// A signed-in console user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsoleSession {
    pub user_id: UserId,
    pub user_name: String,
    pub grant_id: String,
    pub scope: String,
    pub amr: Vec<String>,
    /// Echoed by every form of the console; compared in constant time.
    pub csrf: String,
    /// When the sign-in happened (Unix seconds).
    pub started: i64,
    /// The cookie's value: never stored, so what it seals (a held code) opens only for the
    /// browser that holds the cookie.
    #[serde(skip)]
    pub cookie: String,
}

impl ConsoleSession {
    pub fn may(&self, scope: &str) -> bool {
        ScopeSet::parse(&self.scope).contains(scope)
    }

    /// Whether any administrator role came with the sign-in.
    pub fn is_administrator(&self) -> bool {
        let scopes = ScopeSet::parse(&self.scope);
        Role::ALL
            .iter()
            .any(|r| r.scopes().iter().any(|s| scopes.contains(s)))
    }
}

#[derive(Serialize, Deserialize)]
struct PendingLogin {
    state: String,
    verifier: String,
    return_to: String,
}

/// Why a callback did not produce a session.
#[derive(Debug)]
pub enum LoginRefused {
    /// No such login started here, or it expired.
    UnknownState,
    /// The authorization server said no (e.g. the person cancelled).
    Denied(String),
    Failed(ServiceError),
}

impl From<ServiceError> for LoginRefused {
    fn from(err: ServiceError) -> Self {
        Self::Failed(err)
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key(kind: &str, secret: &str) -> String {
    let digest: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{kind}:{digest}")
}

#[derive(Clone)]
pub struct ConsoleService {
    kv: SharedCounters,
    oauth: OAuthService,
    clock: Arc<dyn Clock>,
    issuer: String,
}

impl ConsoleService {
    pub fn new(
        kv: SharedCounters,
        oauth: OAuthService,
        clock: Arc<dyn Clock>,
        issuer: String,
    ) -> Self {
        Self {
            kv,
            oauth,
            clock,
            issuer,
        }
    }

    fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.issuer)
    }

    /// Starts a sign-in: where to send the browser, and what the browser must keep (in an
    /// HttpOnly cookie) and bring back: the state, the PKCE verifier and where to return. Nothing
    /// is stored here before a sign-in succeeds, so anonymous requests cannot fill the store,
    /// and a code and state planted in someone else's browser open nothing.
    /// The console asks the sign-in session for a sign-in at most [`ABSOLUTE_TIMEOUT`] old
    /// (`max_age`), and for a new one (`prompt=login`) when `reauthenticate`: after its own
    /// session lapsed, so its limits hold on top of single sign-on.
    pub fn begin_login(
        &self,
        return_to: &str,
        reauthenticate: bool,
    ) -> Result<(String, String), ServiceError> {
        let state = random_token();
        let verifier = random_token();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let pending = PendingLogin {
            state: state.clone(),
            verifier,
            return_to: safe_return(return_to).to_owned(),
        };
        let cookie = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&pending).map_err(|e| ServiceError::internal("console login", e))?,
        );
        let scopes: Vec<&str> = ["openid", "profile", scope::BYPASS_CODES_SELF]
            .into_iter()
            .chain(Role::ALL.iter().flat_map(|r| r.scopes().iter().copied()))
            .collect();
        let mut url = url::Url::parse(&format!("{}/oauth2/authorize", self.issuer))
            .map_err(|e| ServiceError::internal("issuer URL", e))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CONSOLE_CLIENT_ID)
            .append_pair("redirect_uri", &self.redirect_uri())
            .append_pair("scope", &ScopeSet::from_names(scopes).to_string())
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("max_age", &ABSOLUTE_TIMEOUT.as_secs().to_string());
        if reauthenticate {
            url.query_pairs_mut().append_pair("prompt", "login");
        }
        Ok((url.to_string(), cookie))
    }

    /// Ends a sign-in: checks the state against the browser's login cookie, redeems the code
    /// (single use, PKCE) and opens a session; returns its id and where to go.
    pub async fn finish_login(
        &self,
        code: Option<&str>,
        state: &str,
        error: Option<&str>,
        login_cookie: Option<&str>,
    ) -> Result<(String, ConsoleSession, String), LoginRefused> {
        let pending: Option<PendingLogin> = login_cookie
            .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let Some(pending) =
            pending.filter(|p| bool::from(p.state.as_bytes().ct_eq(state.as_bytes())))
        else {
            return Err(LoginRefused::UnknownState);
        };
        if let Some(error) = error {
            return Err(LoginRefused::Denied(error.chars().take(64).collect()));
        }
        let code = code.ok_or_else(|| LoginRefused::Denied("no code".into()))?;
        let (grant, user) = match self
            .oauth
            .console_sign_in(code, &pending.verifier, &self.redirect_uri())
            .await
        {
            Ok(found) => found,
            Err(TokenRefusal::Failed(e)) => return Err(LoginRefused::Failed(e)),
            Err(refused) => {
                return Err(LoginRefused::Denied(
                    format!("{refused:?}").chars().take(120).collect(),
                ));
            }
        };
        let id = random_token();
        let session = ConsoleSession {
            cookie: id.clone(),
            user_name: user.attributes.user_name.clone(),
            user_id: grant.user_id.clone(),
            grant_id: grant.id.clone(),
            scope: grant.scope.clone(),
            amr: grant.amr.clone(),
            csrf: random_token(),
            // The absolute limit counts from the sign-in, which single sign-on may have
            // made before this console session.
            started: grant.auth_time,
        };
        self.save(&id, &session).await?;
        // Checked again: the cookie came back from the browser.
        Ok((id, session, safe_return(&pending.return_to).to_owned()))
    }

    async fn save(&self, id: &str, session: &ConsoleSession) -> Result<(), ServiceError> {
        let text = serde_json::to_string(session)
            .map_err(|e| ServiceError::internal("console session", e))?;
        Ok(self
            .kv
            .put(&key("console", id), &text, IDLE_TIMEOUT)
            .await?)
    }

    /// The session behind a cookie, while it is within both timeouts and its sign-in stands;
    /// each use restarts the idle timeout.
    pub async fn session(&self, id: &str) -> Result<Option<ConsoleSession>, ServiceError> {
        let Some(text) = self.kv.get(&key("console", id)).await? else {
            return Ok(None);
        };
        let Ok(mut session) = serde_json::from_str::<ConsoleSession>(&text) else {
            return Ok(None);
        };
        session.cookie = id.to_owned();
        let age = self.clock.now().timestamp() - session.started;
        if age > ABSOLUTE_TIMEOUT.as_secs() as i64
            || !self.oauth.grant_is_live(&session.grant_id).await?
        {
            self.kv.remove(&key("console", id)).await?;
            return Ok(None);
        }
        self.save(id, &session).await?;
        Ok(Some(session))
    }

    /// Keeps a code this session just generated, sealed with a key derived from the session's
    /// cookie (which the server never stores) and bound to the code's id, for [`HOLD_TTL`].
    pub async fn hold(
        &self,
        session: &ConsoleSession,
        code_id: &str,
        code: &Secret,
    ) -> Result<(), ServiceError> {
        let nonce: [u8; 12] = rand::random();
        let sealed = held_cipher(&session.cookie)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: code.expose().as_bytes(),
                    aad: code_id.as_bytes(),
                },
            )
            .map_err(|_| ServiceError::failed("sealing a held code"))?;
        let text = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(sealed)
        );
        Ok(self
            .kv
            .put(&held_key(&session.cookie, code_id), &text, HOLD_TTL)
            .await?)
    }

    /// The code this session holds under `code_id`, while it does.
    pub async fn held(
        &self,
        session: &ConsoleSession,
        code_id: &str,
    ) -> Result<Option<HeldCode>, ServiceError> {
        let Some(text) = self.kv.get(&held_key(&session.cookie, code_id)).await? else {
            return Ok(None);
        };
        let opened = text.split_once('.').and_then(|(nonce, sealed)| {
            let nonce = URL_SAFE_NO_PAD
                .decode(nonce)
                .ok()
                .filter(|n| n.len() == 12)?;
            let sealed = URL_SAFE_NO_PAD.decode(sealed).ok()?;
            held_cipher(&session.cookie)
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &sealed,
                        aad: code_id.as_bytes(),
                    },
                )
                .ok()
        });
        Ok(opened
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|code| HeldCode::new(Secret::new(code))))
    }

    /// Lets go of a held code (it was emailed): the plaintext is kept no longer than needed.
    pub async fn release(
        &self,
        session: &ConsoleSession,
        code_id: &str,
    ) -> Result<(), ServiceError> {
        self.kv.remove(&held_key(&session.cookie, code_id)).await?;
        Ok(())
    }

    pub async fn end(&self, id: &str) -> Result<(), ServiceError> {
        self.kv.remove(&key("console", id)).await?;
        Ok(())
    }
}

fn held_cipher(cookie: &str) -> ChaCha20Poly1305 {
    let key = Sha256::new()
        .chain_update(b"bypass-idp console held code v1\0")
        .chain_update(cookie.as_bytes())
        .finalize();
    ChaCha20Poly1305::new(&key)
}

fn held_key(cookie: &str, code_id: &str) -> String {
    key("console-held", &format!("{cookie}:{code_id}"))
}

/// Only console paths are returned to: never another origin.
fn safe_return(path: &str) -> &str {
    let console = path == "/console"
        || path.starts_with("/console/")
        || path == "/account"
        || path.starts_with("/account/");
    if console && !path.contains("//") && !path.contains('\\') {
        path
    } else {
        "/console"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_only_to_console_paths() {
        assert_eq!(safe_return("/console/users/1"), "/console/users/1");
        assert_eq!(safe_return("/account"), "/account");
        assert_eq!(safe_return("/account/generate"), "/account/generate");
        for evil in [
            "https://evil.example",
            "//evil.example",
            "/console//evil",
            "/consolex",
            "/\\evil",
        ] {
            assert_eq!(safe_return(evil), "/console", "{evil}");
        }
    }
}
