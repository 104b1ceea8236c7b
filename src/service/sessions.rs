//! Single sign-on sessions: opened when a sign-in ends, found behind the browser's cookie
//! (only its SHA-256 is stored), stepped up, listed and ended. Ending one queues
//! Back-Channel Logout for the clients it gave tokens to ([`super::logout`]).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration};
use rand::RngExt;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::access::Access;
use super::bypass::BypassCodeService;
use super::context::Context;
use super::{ServiceError, audit};
use crate::domain::access::Action;
use crate::domain::audit::AuditEvent;
use crate::domain::clock::Clock;
use crate::domain::ids::UserId;
use crate::domain::methods::acr_for;
use crate::domain::repo::{BypassCodeRepo, GrantRepo, MfaRepo, UserRepo};
use crate::domain::scim::user::User;
use crate::domain::session::{Lifetimes, SignInSession, factor_predates};
use crate::store::Store;
use crate::store::sessions::{EndReason, Grants};

/// The cookie on an https issuer: `__Host-` binds it to this origin, Secure and Path=/.
pub const SECURE_COOKIE: &str = "__Host-bidp_session";
/// The cookie on a plain-http issuer (development and tests).
pub const PLAIN_COOKIE: &str = "bidp_session";
/// Cookie values longer than this are not looked up.
const MAX_TOKEN_LEN: usize = 128;

/// How sessions are configured.
#[derive(Clone, Copy, Debug)]
pub struct SessionSettings {
    pub idle: Duration,
    pub max: Duration,
    pub per_user: usize,
}

/// A session the browser may sign in with, and what the authorization endpoint weighs.
pub struct Found {
    pub session: SignInSession,
    pub user_name: String,
    pub factor_before_session: bool,
}

/// A session just opened or stepped up: the cookie's new value goes to the browser.
pub struct Opened {
    pub token: String,
    pub session: SignInSession,
}

/// A session as the account and console pages list it.
pub struct SessionView {
    pub session: SignInSession,
    /// The clients it gave tokens to.
    pub clients: Vec<String>,
}

/// What a sign-in that ends brings to its session.
pub struct SignedIn<'a> {
    pub user_id: &'a UserId,
    pub auth_time: i64,
    pub amr: &'a [String],
    pub bypass_code: Option<&'a str>,
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Clone)]
pub struct SessionService {
    store: Store,
    clock: Arc<dyn Clock>,
    bypass: BypassCodeService,
    access: Access,
    settings: SessionSettings,
    secure: bool,
    /// Wakes the Back-Channel Logout announcer when a session ends.
    pub(super) wake: Arc<Notify>,
}

impl SessionService {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        bypass: BypassCodeService,
        access: Access,
        settings: SessionSettings,
        issuer: &str,
    ) -> Self {
        Self {
            store,
            clock,
            bypass,
            access,
            settings,
            secure: issuer.starts_with("https://"),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The cookie's name: `__Host-` prefixed when the issuer is https.
    pub fn cookie_name(&self) -> &'static str {
        cookie_name(self.secure)
    }

    pub fn secure(&self) -> bool {
        self.secure
    }

    async fn lifetimes(&self) -> Result<Lifetimes, ServiceError> {
        let policy = self.bypass.policy().await?;
        Ok(Lifetimes {
            idle: self.settings.idle,
            max: self.settings.max,
            bypass_single_sign_on: Duration::minutes(policy.bypass_session_max_minutes.into()),
        })
    }

    /// The live session behind a cookie value, while its user is active and nothing voided
    /// the user's sign-ins since it began.
    pub async fn find(&self, token: &str) -> Result<Option<SignInSession>, ServiceError> {
        Ok(self
            .find_with_user(token)
            .await?
            .map(|(session, _)| session))
    }

    /// The stored session behind a cookie value, whatever its state.
    async fn by_token(&self, token: &str) -> Result<Option<SignInSession>, ServiceError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        Ok(self.store.session_by_token(&token_digest(token)).await?)
    }

    /// The session behind a cookie that has neither ended nor passed its absolute end, idle
    /// or not: what a logout or a new sign-in in that browser ends or renews.
    pub async fn by_cookie(&self, token: &str) -> Result<Option<SignInSession>, ServiceError> {
        let session = self.by_token(token).await?;
        let now = self.clock.now();
        Ok(session.filter(|s| s.ended_at.is_none() && now < s.expires_at))
    }

    /// [`Self::find`], with the session's user as read for the check.
    async fn find_with_user(
        &self,
        token: &str,
    ) -> Result<Option<(SignInSession, User)>, ServiceError> {
        let Some(session) = self.by_token(token).await? else {
            return Ok(None);
        };
        if !session.is_live(self.clock.now(), self.settings.idle) {
            return Ok(None);
        }
        let Some(user) = self.store.get_user(&session.user_id).await? else {
            return Ok(None);
        };
        if !user.is_active() {
            return Ok(None);
        }
        let not_before = self.store.sessions_not_before(&session.user_id).await?;
        if not_before.is_some_and(|t| session.auth_time < t.timestamp()) {
            return Ok(None);
        }
        Ok(Some((session, user)))
    }

    /// The browser's session behind `token` (see [`Self::find`]), and whether it may sign
    /// the user in to a client without a page: while it is within its single sign-on window.
    pub async fn standing(
        &self,
        token: &str,
    ) -> Result<(Option<SignInSession>, Option<Found>), ServiceError> {
        let Some((session, user)) = self.find_with_user(token).await? else {
            return Ok((None, None));
        };
        if !session.signs_in(self.clock.now(), self.settings.idle) {
            return Ok((Some(session), None));
        }
        let mfa = self.store.get_mfa(&session.user_id).await?;
        let factor_before_session = mfa.is_some_and(|m| {
            factor_predates(m.totp_confirmed, m.totp_confirmed_at, session.auth_time)
        });
        let found = Found {
            user_name: user.attributes.user_name.clone(),
            session: session.clone(),
            factor_before_session,
        };
        Ok((Some(session), Some(found)))
    }

    /// Records that the session was used now (at most one write a minute).
    pub async fn touch(&self, session: &SignInSession) -> Result<(), ServiceError> {
        let now = self.clock.now();
        if now - session.last_seen_at < Duration::seconds(60) {
            return Ok(());
        }
        Ok(self.store.touch_session(&session.id, now).await?)
    }

    /// A sign-in just ended in a browser whose cookie names `current` now (read when the
    /// sign-in ends, not when it began: another tab may have signed in meanwhile; idle or not,
    /// see [`Self::by_cookie`]). The same user's session is renewed in place: the same `sid`
    /// the clients hold, a new cookie, the new `auth_time` and methods. Any other session
    /// there ends. Otherwise a new session opens, and a user over the limit loses the oldest.
    /// `step_up`: the sign-in was the second step of `current`, which it renews while that is
    /// still live, or nothing. `None`: nothing opened (the session to step up ended, or the
    /// bypass code the sign-in used was revoked meanwhile).
    pub async fn signed_in(
        &self,
        signed_in: SignedIn<'_>,
        ctx: &Context,
        current: Option<SignInSession>,
        step_up: bool,
    ) -> Result<Option<Opened>, ServiceError> {
        let now = self.clock.now();
        let since = DateTime::from_timestamp(signed_in.auth_time, 0).unwrap_or(now);
        let (expires_at, single_sign_on_until) = self.lifetimes().await?.ends(since, signed_in.amr);
        // The sign-in as a new session; renewing one keeps its id, start and address.
        let fresh = SignInSession {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: signed_in.user_id.clone(),
            created_at: now,
            auth_time: signed_in.auth_time,
            amr: signed_in.amr.to_vec(),
            acr: acr_for(signed_in.amr).to_owned(),
            bypass_code_id: signed_in.bypass_code.map(str::to_owned),
            last_seen_at: now,
            expires_at,
            single_sign_on_until,
            ip: ctx.ip.map(|ip| ip.to_string()),
            ended_at: None,
        };
        let token = new_token();
        let mut opened = None;
        if let Some(previous) = current {
            if previous.user_id == fresh.user_id {
                let renewed = SignInSession {
                    id: previous.id.clone(),
                    created_at: previous.created_at,
                    ip: previous.ip.clone(),
                    ..fresh.clone()
                };
                // A second step stands on the session's password check: only while the
                // session is live. A new password check renews an idle session too.
                let idle = step_up.then_some(self.settings.idle);
                let digest = token_digest(&token);
                if self
                    .store
                    .renew_session(&renewed.id, &digest, &renewed, idle)
                    .await?
                {
                    opened = Some(renewed);
                }
            }
            if opened.is_none() {
                if step_up {
                    return Ok(None);
                }
                self.store
                    .end_session(&previous.id, EndReason::Replaced, Grants::KeepOffline, now)
                    .await?;
                self.wake.notify_one();
            }
        } else if step_up {
            return Ok(None);
        }
        let session = match opened {
            Some(session) => session,
            None => self.insert(fresh, &token).await?,
        };
        // Checked after the session exists: a revocation that commits before this read is
        // seen here, and one that commits after it finds the session and ends it.
        if let Some(code_id) = &session.bypass_code_id {
            let code = self.store.find_code(&session.user_id, code_id).await?;
            if code.is_none_or(|c| c.revoked_at.is_some()) {
                self.store
                    .end_session(&session.id, EndReason::CodeRevoked, Grants::All, now)
                    .await?;
                return Ok(None);
            }
        }
        Ok(Some(Opened { token, session }))
    }

    /// Stores a new session; a user over the limit loses the oldest.
    async fn insert(
        &self,
        session: SignInSession,
        token: &str,
    ) -> Result<SignInSession, ServiceError> {
        let now = session.created_at;
        self.store
            .insert_session(&session, &token_digest(token))
            .await?;
        let open = self.store.open_sessions(&session.user_id, now).await?;
        // Newest first: those past the limit are the oldest.
        for extra in open.iter().skip(self.settings.per_user) {
            self.store
                .end_session(&extra.id, EndReason::TooMany, Grants::KeepOffline, now)
                .await?;
            self.wake.notify_one();
        }
        Ok(session)
    }

    /// Signs the browser out: its session ends with its grants, except `offline_access`
    /// ones (OpenID Connect Core §11). Returns the session that ended.
    pub async fn sign_out(
        &self,
        token: &str,
        ctx: &Context,
    ) -> Result<Option<SignInSession>, ServiceError> {
        // Found by its cookie even after the idle timeout: its grants still live, and the
        // client asking for logout must see them end.
        let Some(session) = self.by_token(token).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if self
            .store
            .end_session(&session.id, EndReason::SignedOut, Grants::KeepOffline, now)
            .await?
        {
            self.wake.notify_one();
            let detail = format!("session {}", short(&session.id));
            audit::record(
                &self.store,
                ctx,
                &session.user_id,
                None,
                AuditEvent::SignedOut,
                Some(detail),
                now,
            )
            .await?;
        }
        Ok(Some(session))
    }

    /// The user's open sessions, newest first, with the clients each gave tokens to.
    pub async fn list(
        &self,
        ctx: &Context,
        user_id: &UserId,
    ) -> Result<Vec<SessionView>, ServiceError> {
        self.access
            .check(ctx, Action::ReadSessions, Some(user_id))
            .await?;
        let now = self.clock.now();
        let mut views = Vec::new();
        for session in self.store.open_sessions(user_id, now).await? {
            if !session.is_live(now, self.settings.idle) {
                continue;
            }
            let clients = self.store.session_clients(&session.id).await?;
            views.push(SessionView { session, clients });
        }
        Ok(views)
    }

    /// Whether `ctx` may end `user_id`'s sessions: what a page asks before it offers the button.
    pub async fn may_end(&self, ctx: &Context, user_id: &UserId) -> Result<bool, ServiceError> {
        match self
            .access
            .check(ctx, Action::EndSessions, Some(user_id))
            .await
        {
            Ok(_) => Ok(true),
            Err(ServiceError::Forbidden(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// "Sign out everywhere": every session of the user ends, with every grant of the user
    /// (`offline_access` ones too), and sign-ins still in progress are voided. Returns how
    /// many sessions ended.
    pub async fn end_everywhere(
        &self,
        ctx: &Context,
        user_id: &UserId,
    ) -> Result<u64, ServiceError> {
        self.access
            .check(ctx, Action::EndSessions, Some(user_id))
            .await?;
        let now = self.clock.now();
        let ended = self.store.sign_out_everywhere(user_id, now).await?;
        self.wake.notify_one();
        audit::record(
            &self.store,
            ctx,
            user_id,
            None,
            AuditEvent::SessionsEnded,
            Some(format!("{ended} session(s)")),
            now,
        )
        .await?;
        Ok(ended)
    }
}

/// The first characters of an id, for audit details.
fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// `__Host-` requires Secure, Path=/ and no Domain: only an https issuer can set it.
fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE } else { PLAIN_COOKIE }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_host_prefixed_only_on_https() {
        assert_eq!(cookie_name(true), "__Host-bidp_session");
        assert_eq!(cookie_name(false), "bidp_session");
    }
}
