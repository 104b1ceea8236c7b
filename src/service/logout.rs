//! Logout: RP-Initiated Logout 1.0 (the end-session endpoint's decision) and Back-Channel
//! Logout 1.0 (a signed logout token posted to every client a session that ended gave tokens
//! to, off the user's request, with bounded retries). Ended sessions are an outbox in the
//! database: whichever instance claims one first tells its clients, and one that ended
//! without a wake-up (a revocation in another service) is found by the next sweep.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::ServiceError;
use super::context::Context;
use super::oauth::keys::{Alg, KeyRing};
use super::sessions::SessionService;
use crate::domain::clock::Clock;
use crate::domain::ids::ClientId;
use crate::domain::oauth::Client;
use crate::domain::repo::ClientRepo;
use crate::domain::session::SignInSession;
use crate::store::Store;

pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How often ended sessions are looked for when nothing woke the announcer.
const SWEEP_INTERVAL: Duration = Duration::from_secs(2);
/// Deliveries per logout token: the first try and two retries, 1 s and 3 s later.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
const LOGOUT_TOKEN_SECONDS: i64 = 120;
/// Logout tokens in flight at once, per instance.
const MAX_DELIVERIES: usize = 32;
/// Sessions that ended (or expired) this long ago are forgotten, every so often.
const KEEP_ENDED_DAYS: i64 = 30;
const PURGE_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// What a verified `id_token_hint` says. Hints may have expired; only our signature and
/// issuer count.
#[derive(Clone, Debug)]
pub struct Hint {
    pub sub: String,
    pub aud: Vec<String>,
    pub sid: Option<String>,
}

/// Verifies ID tokens this server issued, when they come back as hints.
#[derive(Clone)]
pub struct HintVerifier {
    keys: KeyRing,
    issuer: String,
}

#[derive(Deserialize)]
struct HintHeader {
    alg: String,
    kid: String,
    #[serde(default)]
    typ: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audiences {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct HintClaims {
    iss: String,
    sub: String,
    aud: Audiences,
    #[serde(default)]
    sid: Option<String>,
}

impl HintVerifier {
    pub fn new(keys: KeyRing, issuer: String) -> Self {
        Self { keys, issuer }
    }

    /// The hint's claims if it is an ID token signed by us for this issuer; `None` otherwise.
    pub async fn verify(&self, token: &str) -> Result<Option<Hint>, ServiceError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
        let Some(header) = decode(header_b64)
            .and_then(|bytes| serde_json::from_slice::<HintHeader>(&bytes).ok())
            // An ID token, not another token signed with the same key (a logout token, or an
            // access token when those are RS256): they all name their `typ`.
            .filter(|h| h.alg == Alg::Rs256.as_str())
            .filter(|h| {
                h.typ
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case("JWT"))
            })
        else {
            return Ok(None);
        };
        let Some(signature) = decode(signature_b64) else {
            return Ok(None);
        };
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        if !self
            .keys
            .verify(
                Alg::Rs256,
                &header.kid,
                signing_input.as_bytes(),
                &signature,
            )
            .await?
        {
            return Ok(None);
        }
        let Some(claims) = decode(claims_b64)
            .and_then(|bytes| serde_json::from_slice::<HintClaims>(&bytes).ok())
            .filter(|c| c.iss == self.issuer)
        else {
            return Ok(None);
        };
        let aud = match claims.aud {
            Audiences::One(one) => vec![one],
            Audiences::Many(many) => many,
        };
        Ok(Some(Hint {
            sub: claims.sub,
            aud,
            sid: claims.sid,
        }))
    }
}

/// An RP-Initiated Logout request, from the query or the confirmation form.
#[derive(Clone, Debug, Default)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// What the end-session endpoint answers.
#[derive(Debug)]
pub enum LogoutOutcome {
    /// Signed out, or nobody was signed in: send the browser here, or show "Signed out".
    Done { redirect: Option<String> },
    /// The request does not prove it comes for this browser's user: ask them.
    Confirm,
    /// Never redirect: the client or the address cannot be trusted.
    Rejected(String),
}

#[derive(Clone)]
pub struct LogoutService {
    store: Store,
    sessions: SessionService,
    hints: HintVerifier,
    keys: KeyRing,
    issuer: String,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
}

impl LogoutService {
    pub fn new(
        store: Store,
        sessions: SessionService,
        hints: HintVerifier,
        keys: KeyRing,
        issuer: String,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServiceError> {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ServiceError::internal("back-channel HTTP client", e))?;
        Ok(Self {
            store,
            sessions,
            hints,
            keys,
            issuer,
            clock,
            http,
        })
    }

    /// The confirmation form's CSRF token: derived from the session cookie, which only this
    /// browser holds, so it needs no storage.
    pub fn confirmation_token(browser_token: &str) -> String {
        let digest = Sha256::new()
            .chain_update(b"bypass-idp logout confirmation v1\0")
            .chain_update(browser_token.as_bytes())
            .finalize();
        URL_SAFE_NO_PAD.encode(digest)
    }

    pub fn confirmation_matches(browser_token: &str, sent: &str) -> bool {
        let expected = Self::confirmation_token(browser_token);
        bool::from(expected.as_bytes().ct_eq(sent.as_bytes()))
    }

    /// RP-Initiated Logout 1.0 §2–§3. `confirmed`: the user pressed Sign out on our page.
    pub async fn request(
        &self,
        request: &LogoutRequest,
        browser_token: Option<&str>,
        confirmed: bool,
        ctx: &Context,
    ) -> Result<LogoutOutcome, ServiceError> {
        let hint = match &request.id_token_hint {
            Some(token) => self.hints.verify(token).await?,
            None => None,
        };
        let client = match self.client(request, hint.as_ref()).await? {
            Ok(client) => client,
            Err(why) => return Ok(LogoutOutcome::Rejected(why)),
        };
        let redirect = match (&request.post_logout_redirect_uri, &client) {
            (None, _) => None,
            (Some(_), None) => {
                return Ok(LogoutOutcome::Rejected(
                    "post_logout_redirect_uri needs client_id or a valid id_token_hint".into(),
                ));
            }
            (Some(uri), Some(client)) => {
                if !client.post_logout_redirect_uris.iter().any(|r| r == uri) {
                    return Ok(LogoutOutcome::Rejected(
                        "post_logout_redirect_uri is not registered for this client (it must match exactly)".into(),
                    ));
                }
                Some(with_state(uri, request.state.as_deref()))
            }
        };
        let session = match browser_token {
            // An idle session still has grants to end and clients to tell.
            Some(token) => self.sessions.by_cookie(token).await?,
            None => None,
        };
        let (Some(session), Some(token)) = (session, browser_token) else {
            // Nobody is signed in here: nothing to end.
            return Ok(LogoutOutcome::Done { redirect });
        };
        if !confirmed && !self.hint_is_for(hint.as_ref(), &session).await? {
            return Ok(LogoutOutcome::Confirm);
        }
        self.sessions.sign_out(token, ctx).await?;
        Ok(LogoutOutcome::Done { redirect })
    }

    /// Whether the hint proves the request is for this browser's session (RP-Initiated
    /// Logout §2): an ID token of this session (`sid`), or, from a token without one, of its
    /// user at a client this session signed in to. An old ID token from another session does
    /// not sign the user out without asking.
    async fn hint_is_for(
        &self,
        hint: Option<&Hint>,
        session: &SignInSession,
    ) -> Result<bool, ServiceError> {
        let Some(hint) = hint.filter(|h| h.sub == session.user_id.as_str()) else {
            return Ok(false);
        };
        match &hint.sid {
            Some(sid) => Ok(*sid == session.id),
            None => {
                let clients = self.store.session_clients(&session.id).await?;
                Ok(hint.aud.iter().any(|a| clients.contains(a)))
            }
        }
    }

    /// The client the request names by `client_id` or by the hint's audience; they must agree.
    async fn client(
        &self,
        request: &LogoutRequest,
        hint: Option<&Hint>,
    ) -> Result<Result<Option<Client>, String>, ServiceError> {
        let named = match &request.client_id {
            Some(id) if id.len() <= 256 => Some(id.clone()),
            Some(_) => return Ok(Err("client_id is too long".into())),
            None => None,
        };
        if let (Some(id), Some(hint)) = (&named, hint)
            && !hint.aud.contains(id)
        {
            return Ok(Err(
                "client_id is not the audience of the id_token_hint".into()
            ));
        }
        let Some(id) = named.or_else(|| hint.and_then(|h| h.aud.first().cloned())) else {
            return Ok(Ok(None));
        };
        match self.store.find_client(&ClientId::new(id)).await? {
            Some(client) => Ok(Ok(Some(client))),
            None => Ok(Err("unknown client_id".into())),
        }
    }

    /// Runs the announcer until the task is aborted: woken when a session ends here, and
    /// sweeping every [`SWEEP_INTERVAL`] for sessions ended elsewhere. Now and then it also
    /// forgets sessions that ended long ago.
    pub fn spawn_announcer(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let deliveries = Arc::new(Semaphore::new(MAX_DELIVERIES));
            let mut last_purge = std::time::Instant::now();
            loop {
                tokio::select! {
                    _ = self.sessions.wake.notified() => {}
                    _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
                }
                if let Err(e) = self.announce(&deliveries).await {
                    tracing::warn!(error = %e, "back-channel logout sweep failed");
                }
                if last_purge.elapsed() >= PURGE_INTERVAL {
                    last_purge = std::time::Instant::now();
                    let before = self.clock.now() - chrono::Duration::days(KEEP_ENDED_DAYS);
                    if let Err(e) = self.store.purge_sessions(before).await {
                        tracing::warn!(error = %e, "purging old sessions failed");
                    }
                }
            }
        })
    }

    /// Claims ended sessions and posts a logout token to each of their clients that takes one,
    /// at most [`MAX_DELIVERIES`] at a time.
    async fn announce(&self, deliveries: &Arc<Semaphore>) -> Result<(), ServiceError> {
        loop {
            let batch = self.store.claim_logouts(50).await?;
            if batch.is_empty() {
                return Ok(());
            }
            for session in batch {
                // One session's failure does not drop the rest of a claimed batch.
                if let Err(e) = self.announce_one(&session, deliveries).await {
                    tracing::warn!(error = %e, sid = %session.id, "back-channel logout not sent");
                }
            }
        }
    }

    async fn announce_one(
        &self,
        session: &SignInSession,
        deliveries: &Arc<Semaphore>,
    ) -> Result<(), ServiceError> {
        for client_id in self.store.session_clients(&session.id).await? {
            let client = self.store.find_client(&ClientId::new(client_id)).await?;
            let Some((client, uri)) =
                client.and_then(|c| c.backchannel_logout_uri.clone().map(|u| (c, u)))
            else {
                continue;
            };
            // At most MAX_DELIVERIES in flight: the sweep waits here rather than piling up.
            let Ok(permit) = deliveries.clone().acquire_owned().await else {
                return Ok(());
            };
            let token = self.logout_token(session, &client).await?;
            let http = self.http.clone();
            tokio::spawn(async move {
                deliver(http, uri, token, client.client_id.into_string()).await;
                drop(permit);
            });
        }
        Ok(())
    }

    /// Back-Channel Logout 1.0 §2.4: signed like our ID tokens, `typ` `logout+jwt`.
    async fn logout_token(
        &self,
        session: &SignInSession,
        client: &Client,
    ) -> Result<String, ServiceError> {
        let now = self.clock.now().timestamp();
        let claims = json!({
            "iss": self.issuer,
            "aud": client.client_id.as_str(),
            "iat": now,
            "exp": now + LOGOUT_TOKEN_SECONDS,
            "jti": uuid::Uuid::new_v4().to_string(),
            "sub": session.user_id.as_str(),
            "sid": session.id,
            "events": { BACKCHANNEL_EVENT: {} },
        });
        self.keys
            .sign_with_id_token_key(LOGOUT_TOKEN_TYP, &claims)
            .await
    }
}

/// Posts one logout token, retrying a failed delivery (no answer, or a 5xx) twice.
async fn deliver(http: reqwest::Client, uri: String, token: String, client_id: String) {
    let mut delays = RETRY_DELAYS.iter();
    loop {
        let sent = http
            .post(&uri)
            .form(&[("logout_token", token.as_str())])
            .send()
            .await;
        let outcome = match &sent {
            Ok(response) if response.status().is_success() => "delivered",
            // The client read the token and refused it: sending it again changes nothing.
            Ok(response) if response.status().is_client_error() => "refused",
            _ => "failed",
        };
        if outcome != "failed" {
            super::events::backchannel_logout(outcome);
            if outcome == "refused" {
                tracing::warn!(client_id = %client_id, "back-channel logout refused by the client");
            }
            return;
        }
        match delays.next() {
            Some(delay) => tokio::time::sleep(*delay).await,
            None => {
                super::events::backchannel_logout("failed");
                tracing::warn!(client_id = %client_id, "back-channel logout not delivered after retries");
                return;
            }
        }
    }
}

/// `uri` with `state` added to its query, as RP-Initiated Logout §3 returns it.
fn with_state(uri: &str, state: Option<&str>) -> String {
    let Some(state) = state else {
        return uri.to_owned();
    };
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair("state", state);
            url.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}
