//! The sign-in a browser goes through for an authorization request: the single sign-on
//! session's answer (`domain::session::reuse`), flow state kept server-side (Redis or
//! in-process) behind an opaque id, the password check, the second factor, TOTP enrolment,
//! and the authorization code that ends it (`codes`).

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use tokio::sync::OnceCell;

use super::bypass::{BypassCodeService, Rejection};
use super::context::Context;
use super::logout::HintVerifier;
use super::mfa::{Enrollment, Lock, MfaService};
use super::roles::Roles;
use super::sessions::{SessionService, SignedIn};
use super::throttle::Throttle;
use super::{ServiceError, passwords};
use crate::counters::SharedCounters;
use crate::domain::address::LimitAddress;
use crate::domain::bypass::SAVED_CODES_WARNING;
use crate::domain::clock::Clock;
use crate::domain::enrolment::CodeUse;
use crate::domain::ids::ClientId;
use crate::domain::limits::{Limit, LimitKey};
use crate::domain::repo::{ClientRepo, UserRepo};
use crate::domain::secret::Secret;
use crate::domain::session::{self, Reuse, Standing};
use crate::domain::signin::{self, Flow, SecondFactor, Step};
use crate::domain::totp::TotpStatus;
use crate::service::events;
use crate::store::Store;

/// How long a sign-in flow waits for its next step.
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);

mod codes;
mod factors;
use factors::Checked;
mod replace;
pub use codes::{CODE_TTL, CodeGrant, Peeked, Redeemed, code_key, redirect_url, used_code_key};
pub use replace::ReplaceChoice;
/// What a sign-in step answers (kanidm's `CredState` shape). One per request, so the large
/// variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    /// Signed in: send the browser back to the client with this URL; `session` is the new
    /// value of the session cookie, when the sign-in opened or stepped up a session.
    Success {
        url: String,
        session: Option<String>,
    },
    /// Show the flow's current step, which says what may come next; `denied` says why the
    /// last attempt failed, and during enrolment `enrollment` holds the new secret.
    Continue {
        flow: Flow,
        denied: Option<Denied>,
        enrollment: Option<Enrollment>,
    },
    /// No such flow, or it expired or finished.
    Expired,
    /// The form's CSRF token is missing or wrong.
    Forged,
}

impl Next {
    fn page(flow: Flow, denied: Option<Denied>) -> Self {
        Self::Continue {
            flow,
            denied,
            enrollment: None,
        }
    }
}

/// Why a step's credential was refused; `oidc::pages` has the words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    WrongPassword,
    /// Too many attempts: the password or the second factor is locked.
    Locked(Lock),
    WrongTotp,
    /// A right TOTP code whose time step was already used.
    ReplayedTotp,
    BypassCode(Rejection),
    /// The code confirming a new factor was not right; a new key is shown.
    WrongEnrollmentCode,
    /// Too many wrong enrolment codes; a new key is shown.
    EnrollmentLocked(Lock),
    /// The code confirming the replacing authenticator was not right; its key is shown again.
    WrongReplacementCode,
    /// The replacing authenticator was confirmed, or set up anew, in another window, or its
    /// set-up waited too long.
    ReplacementSuperseded,
    /// "Not now" where the policy requires a new authenticator.
    ReplacementRequired,
}

/// The forms that take a typed code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeStep {
    Totp,
    BypassCode,
    /// The bypass code in front of setting up an authenticator (after a reset).
    EnrolCode,
    Enroll,
    /// A code from the authenticator replacing a lost one.
    Replace,
}

/// What an authorization request leads to.
pub enum Start {
    /// A flow was opened: its id, for the cookie.
    Opened(String),
    /// Never redirect: the client or redirect URI cannot be trusted.
    Rejected(String),
    /// Redirect back to the client with an OAuth error.
    Redirect(String),
    /// This address opened too many sign-ins; try again after this long.
    TooMany(Duration),
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn flow_key(id: &str) -> String {
    format!("flow:{}", digest_hex(id))
}

#[derive(Clone)]
pub struct SignInService {
    store: Store,
    kv: SharedCounters,
    mfa: MfaService,
    bypass: BypassCodeService,
    throttle: Throttle,
    clock: Arc<dyn Clock>,
    issuer: String,
    /// New flows one address may open per [`FLOW_TTL`].
    flows_per_address: u64,
    /// The longest a whole flow may take, however often its steps are saved (setting up a
    /// new phone included): `BYPASS_IDP_SIGNIN_MAX_SECONDS`, 30 minutes by default.
    flow_max_age: Duration,
    roles: Roles,
    sessions: SessionService,
    hints: HintVerifier,
    dummy_hash: Arc<OnceCell<String>>,
}

/// What a [`SignInService`] is built from.
pub struct SignInParts {
    pub store: Store,
    pub kv: SharedCounters,
    pub throttle: Throttle,
    pub clock: Arc<dyn Clock>,
    pub mfa: MfaService,
    pub bypass: BypassCodeService,
    pub issuer: String,
    pub flows_per_address: u64,
    pub flow_max_age: Duration,
    pub roles: Roles,
    pub sessions: SessionService,
    pub hints: HintVerifier,
}

impl SignInService {
    pub fn new(parts: SignInParts) -> Self {
        Self {
            store: parts.store,
            kv: parts.kv,
            mfa: parts.mfa,
            bypass: parts.bypass,
            throttle: parts.throttle,
            clock: parts.clock,
            issuer: parts.issuer,
            flows_per_address: parts.flows_per_address,
            flow_max_age: parts.flow_max_age,
            roles: parts.roles,
            sessions: parts.sessions,
            hints: parts.hints,
            dummy_hash: Default::default(),
        }
    }

    /// Validates an authorization request and answers it from the browser's session (whose
    /// cookie is `browser_token`) or opens a flow; returns the flow id.
    pub async fn start(
        &self,
        params: &HashMap<String, String>,
        ctx: &Context,
        browser_token: Option<&str>,
    ) -> Result<Start, ServiceError> {
        let client_id = params
            .get("client_id")
            .map(String::as_str)
            .unwrap_or_default();
        let client = self.store.find_client(&ClientId::new(client_id)).await?;
        let redirect = match signin::check_client_redirect(params, client.as_ref()) {
            Ok(redirect) => redirect.to_owned(),
            Err(message) => return Ok(Start::Rejected(message)),
        };
        let client = client.ok_or(ServiceError::NotFound("client"))?;
        let request = match signin::parse_auth_request(params, &client) {
            Ok(request) => request,
            Err(e) => return Ok(self.refuse(&redirect, params, e.error, &e.description)),
        };
        let hint_subject = match params.get("id_token_hint") {
            Some(hint) => match self.hints.verify(hint).await? {
                Some(hint) => Some(hint.sub),
                None => {
                    let why = "id_token_hint is not an ID token this server issued";
                    return Ok(self.refuse(&redirect, params, "invalid_request", why));
                }
            },
            None => None,
        };
        let (session, found) = match browser_token {
            Some(token) => self.sessions.standing(token).await?,
            None => (None, None),
        };
        let standing = found.as_ref().map(|f| Standing {
            session: &f.session,
            user_name: &f.user_name,
            factor_before_session: f.factor_before_session,
        });
        let now = self.clock.now().timestamp();
        let csrf = random_token();
        let reuse = session::reuse(&request, standing.as_ref(), hint_subject.as_deref(), now);
        // Flows and authorization codes live in memory or Redis until they expire: one address
        // may open only so many, single sign-on or not.
        if let Some(ip) = ctx.ip
            && !matches!(reuse, Reuse::Refuse(_))
        {
            let limit = Limit {
                max: self.flows_per_address,
                window: FLOW_TTL,
            };
            let key = LimitKey::FlowsPerAddress(LimitAddress::of(ip), limit);
            if let Err(retry_after) = self.throttle.reserve(vec![key]).await? {
                return Ok(Start::TooMany(retry_after));
            }
        }
        let flow = match reuse {
            Reuse::Refuse(error) => {
                let why = match error {
                    "interaction_required" => "the user must complete 2-step verification",
                    _ => "the user must sign in",
                };
                return Ok(self.refuse(&redirect, params, error, why));
            }
            Reuse::Silent => {
                let Some(found) = found else {
                    return Err(ServiceError::bug("silent sign-in without a session"));
                };
                self.sessions.touch(&found.session).await?;
                let s = found.session;
                let url = self
                    .issue_code(
                        request,
                        &s.user_id,
                        s.auth_time,
                        s.amr,
                        s.bypass_code_id,
                        Some(s.id),
                        ctx,
                    )
                    .await?;
                return Ok(Start::Redirect(url));
            }
            Reuse::SecondStep => {
                let Some(found) = found else {
                    return Err(ServiceError::bug("second step without a session"));
                };
                let s = found.session;
                Flow::second_step(request, csrf, s.id, s.user_id, s.auth_time)
            }
            Reuse::SignIn => Flow::new(request, csrf, session.map(|s| s.id)),
        };
        let flow = Flow {
            deadline: now + self.flow_max_age.as_secs() as i64,
            ..flow
        };
        let id = random_token();
        self.save(&id, &flow).await?;
        Ok(Start::Opened(id))
    }

    /// An OAuth error back at the client, with its `state` and our `iss`.
    fn refuse(
        &self,
        redirect: &str,
        params: &HashMap<String, String>,
        error: &str,
        description: &str,
    ) -> Start {
        let mut pairs = vec![("error", error), ("error_description", description)];
        // A state too long to accept is too long to echo.
        if let Some(state) = params
            .get("state")
            .filter(|s| s.len() <= signin::MAX_PARAM_LEN)
        {
            pairs.push(("state", state));
        }
        Start::Redirect(redirect_url(redirect, &pairs, &self.issuer))
    }

    /// How long the flow may wait now: its idle time, cut at its deadline.
    fn time_left(&self, flow: &Flow) -> Option<Duration> {
        let left = flow.deadline - self.clock.now().timestamp();
        (left > 0).then(|| FLOW_TTL.min(Duration::from_secs(left as u64)))
    }

    /// Stores a flow under a new id.
    async fn save(&self, id: &str, flow: &Flow) -> Result<(), ServiceError> {
        let text =
            serde_json::to_string(flow).map_err(|e| ServiceError::internal("sign-in flow", e))?;
        let ttl = self.time_left(flow).unwrap_or(Duration::from_secs(1));
        Ok(self.kv.put(&flow_key(id), &text, ttl).await?)
    }

    /// Saves a flow's next step, if the flow is still there and within its deadline: a flow
    /// another request finished (or that ran out) stays finished. False when it is gone.
    async fn update(&self, id: &str, flow: &Flow) -> Result<bool, ServiceError> {
        let Some(ttl) = self.time_left(flow) else {
            self.kv.remove(&flow_key(id)).await?;
            return Ok(false);
        };
        let text =
            serde_json::to_string(flow).map_err(|e| ServiceError::internal("sign-in flow", e))?;
        Ok(self.kv.replace(&flow_key(id), &text, ttl).await?)
    }

    pub async fn load(&self, id: &str) -> Result<Option<Flow>, ServiceError> {
        let Some(text) = self.kv.get(&flow_key(id)).await? else {
            return Ok(None);
        };
        let Ok(mut flow) = serde_json::from_str::<Flow>(&text) else {
            return Ok(None);
        };
        let now = self.clock.now().timestamp();
        // A flow saved before deadlines were kept gets one from now.
        if flow.deadline == 0 {
            flow.deadline = now + self.flow_max_age.as_secs() as i64;
        }
        if now >= flow.deadline {
            self.kv.remove(&flow_key(id)).await?;
            return Ok(None);
        }
        Ok(Some(flow))
    }

    /// Loads the flow and checks the form's CSRF token against it.
    async fn checked(&self, id: &str, csrf: &str) -> Result<Result<Flow, Next>, ServiceError> {
        let Some(flow) = self.load(id).await? else {
            return Ok(Err(Next::Expired));
        };
        if !bool::from(flow.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
            return Ok(Err(Next::Forged));
        }
        Ok(Ok(flow))
    }

    /// Saves the flow and says what to show, or finishes it when it is authenticated.
    async fn advance(
        &self,
        id: &str,
        flow: Flow,
        denied: Option<Denied>,
        ctx: &Context,
        browser: Option<&str>,
    ) -> Result<Next, ServiceError> {
        match &flow.step {
            Step::Authenticated { .. } => {
                // Only the request that deletes the flow may end it: one authorization
                // request, at most one authorization code, however often the form is sent.
                if !self.kv.remove(&flow_key(id)).await? {
                    return Ok(Next::Expired);
                }
                self.finish(flow, ctx, browser).await
            }
            Step::Enroll {
                user_id,
                auth_time,
                bypass_code,
            } => {
                if !self
                    .may_set_factor(id, user_id, *auth_time, bypass_code)
                    .await?
                {
                    return Ok(Next::Expired);
                }
                let started = self.mfa.start_enrollment(user_id, ctx).await;
                self.enrolment_page(id, flow, denied, started).await
            }
            _ => {
                if !self.update(id, &flow).await? {
                    return Ok(Next::Expired);
                }
                Ok(Next::page(flow, denied))
            }
        }
    }

    /// Whether `password` is the found user's. Unknown users and users without a password
    /// cost the same Argon2 computation, so timing tells nothing.
    async fn check_password(
        &self,
        stored: Option<String>,
        password: Secret,
    ) -> Result<bool, ServiceError> {
        let phc = match stored {
            Some(hash) => hash,
            None => self
                .dummy_hash
                .get_or_try_init(|| passwords::hash(Secret::new(random_token())))
                .await?
                .clone(),
        };
        passwords::verify(password, phc).await
    }

    /// Checks username and password. On success the flow moves to a new id (returned, for
    /// the cookie), so an id planted in a browser before sign-in is worth nothing after it.
    pub async fn password(
        &self,
        id: &str,
        csrf: &str,
        user_name: &str,
        password: Secret,
        ctx: &Context,
        browser: Option<&str>,
    ) -> Result<(Next, Option<String>), ServiceError> {
        // Refused before anything is read or reserved when the Argon2 queue is full: a crowd
        // of refused steps costs the core as little as possible.
        passwords::check_admission()?;
        let flow = match self.checked(id, csrf).await? {
            Ok(flow) if flow.wants_password() => flow,
            Ok(flow) => return Ok((self.advance(id, flow, None, ctx, browser).await?, None)),
            Err(next) => return Ok((next, None)),
        };
        let page = |flow: Flow, denied: Denied| Ok((Next::page(flow, Some(denied)), None));
        let keys = LimitKey::password(user_name, ctx.ip);
        let reservation = match self.throttle.reserve(keys).await? {
            Ok(reservation) => reservation,
            Err(retry_after) => {
                events::sign_in_step("password", "locked");
                return page(flow, Denied::Locked(Lock::Window(retry_after)));
            }
        };
        let (found, stored) = match self.store.find_user_for_sign_in(user_name.trim()).await? {
            Some((id, hash)) => (Some(id), hash),
            None => (None, None),
        };
        let matches = match self.check_password(stored.clone(), password).await {
            // Not checked at all: the attempt is given back.
            Err(ServiceError::Busy(wait)) => {
                events::sign_in_step("password", "busy");
                self.throttle.give_back(reservation).await?;
                return Err(ServiceError::Busy(wait));
            }
            other => other?,
        };
        // What the rest of the step stands on is read now, after the check (which may have
        // waited in the Argon2 queue): a deactivation, a reset or a new password meanwhile
        // counts. The password checked must still be the user's.
        let read = match (matches, found, stored) {
            (true, Some(id), Some(checked)) => {
                self.store.sign_in_record(&id).await?.filter(|read| {
                    read.user.is_active() && read.password_hash.as_deref() == Some(&checked)
                })
            }
            _ => None,
        };
        let read = match read {
            Some(read) => read,
            // The reservation stays: this was a failed attempt.
            _ => {
                events::sign_in_step("password", "failure");
                return page(flow, Denied::WrongPassword);
            }
        };
        events::sign_in_step("password", "success");
        self.throttle.succeeded(reservation).await?;
        let user = &read.user;
        let has_totp = user.totp == TotpStatus::Enrolled;
        let required = user.attributes.mfa_required == Some(true);
        // The gate matters only to a user without an authenticator: the others are asked
        // for theirs, and their sign-in reads nothing more.
        let gate = if has_totp {
            None
        } else {
            self.mfa.gate_of(&user.id, read.mfa.as_ref()).await?
        };
        let now = self.clock.now().timestamp();
        let flow = flow
            .password_verified(user.id.clone(), now, has_totp, required, gate)
            .map_err(|e| ServiceError::internal("sign-in step", e))?;
        let new_id = random_token();
        self.save(&new_id, &flow).await?;
        // Of two submissions of this form, one moves the flow; the other finds it gone.
        if !self.kv.remove(&flow_key(id)).await? {
            self.kv.remove(&flow_key(&new_id)).await?;
            return Ok((Next::Expired, None));
        }
        let next = if matches!(flow.step, Step::Enroll { .. }) {
            // The facts setting up an authenticator stands on were read after the password
            // check, moments ago: they are not read again.
            if !MfaService::password_step_may_set_factor(&read, now, gate) {
                self.kv.remove(&flow_key(&new_id)).await?;
                return Ok((Next::Expired, None));
            }
            let started = self.mfa.start_enrollment_of(user, ctx).await;
            self.enrolment_page(&new_id, flow, None, started).await?
        } else {
            self.advance(&new_id, flow, None, ctx, browser).await?
        };
        Ok((next, Some(new_id)))
    }

    pub async fn code_step(
        &self,
        step: CodeStep,
        id: &str,
        csrf: &str,
        code: &str,
        ctx: &Context,
        browser: Option<&str>,
    ) -> Result<Next, ServiceError> {
        let flow = match self.checked(id, csrf).await? {
            Ok(flow) => flow,
            Err(next) => return Ok(next),
        };
        let user = match (&flow.step, step) {
            (Step::SecondFactor { user_id, .. }, CodeStep::Totp | CodeStep::BypassCode)
            | (Step::EnrolCode { user_id, .. }, CodeStep::EnrolCode)
            | (Step::Enroll { user_id, .. }, CodeStep::Enroll)
            | (Step::Replace { user_id, .. }, CodeStep::Replace) => user_id.clone(),
            // A form of another step (back button, second tab): show where the flow stands.
            _ => return self.advance(id, flow, None, ctx, browser).await,
        };
        let uses_code = matches!(step, CodeStep::BypassCode | CodeStep::EnrolCode);
        if uses_code && flow.request.refuses_bypass_codes {
            // Nothing is checked or counted: this application takes no codes at all.
            events::sign_in_step("bypass_code", "refused");
            let denied = Denied::BypassCode(Rejection::RefusedHere);
            return Ok(Next::page(flow, Some(denied)));
        }
        let application = flow.request.client_id.clone();
        let mut saved_left = None;
        let checked = match step {
            CodeStep::Totp => self.check_totp(&user, code, ctx).await?,
            CodeStep::BypassCode | CodeStep::EnrolCode => {
                let at = if step == CodeStep::BypassCode {
                    CodeUse::SecondStep
                } else {
                    CodeUse::Enrolment
                };
                let (checked, left) = self
                    .check_bypass_code(&user, code, at, &application, ctx)
                    .await?;
                saved_left = left;
                checked
            }
            CodeStep::Enroll => return self.enroll(id, flow, &user, code, ctx, browser).await,
            CodeStep::Replace => {
                return self.confirm_replacement(id, flow, code, ctx, browser).await;
            }
        };
        let flow = match checked {
            Checked::Denied(denied) => return Ok(Next::page(flow, Some(denied))),
            Checked::Accepted(SecondFactor::BypassCode { code_id })
                if step == CodeStep::EnrolCode =>
            {
                flow.enrolment_code_verified(code_id)
            }
            Checked::Accepted(factor) => {
                let replacement = self.bypass.policy().await?.authenticator_replacement;
                flow.second_factor_verified(factor, replacement)
            }
        };
        let mut flow = flow.map_err(|e| ServiceError::internal("sign-in step", e))?;
        flow.saved_codes_left = saved_left.filter(|left| *left <= SAVED_CODES_WARNING);
        // With no offer to set up a new authenticator to say it on, the sign-in stops to
        // say how few saved codes are left.
        if flow.saved_codes_left.is_some() && matches!(flow.step, Step::Authenticated { .. }) {
            flow = flow
                .saved_codes_low()
                .map_err(|e| ServiceError::internal("sign-in step", e))?;
        }
        self.advance(id, flow, None, ctx, browser).await
    }

    /// Opens (or steps up) the browser's session and issues the authorization code, for a
    /// flow its caller has claimed (deleted).
    async fn finish(
        &self,
        flow: Flow,
        ctx: &Context,
        browser: Option<&str>,
    ) -> Result<Next, ServiceError> {
        let Step::Authenticated {
            user_id,
            auth_time,
            amr,
            bypass_code,
        } = flow.step
        else {
            return Err(ServiceError::bug("finish before authentication"));
        };
        // The browser's session as it stands now: another tab may have signed in meanwhile.
        let current = match browser {
            Some(token) => self.sessions.by_cookie(token).await?,
            None => None,
        };
        // A second step belongs to the session it was asked for, still this browser's.
        if flow.step_up && current.as_ref().map(|s| &s.id) != flow.browser_session.as_ref() {
            return Ok(Next::Expired);
        }
        // The authenticator was set after this sign-in's password check, by another sign-in
        // (a replacement ends every other sign-in, those in progress too).
        if !flow.factor_set_here && self.mfa.factor_changed_since(&user_id, auth_time).await? {
            return Ok(Next::Expired);
        }
        let signed_in = SignedIn {
            user_id: &user_id,
            auth_time,
            amr: &amr,
            bypass_code: bypass_code.as_deref(),
        };
        let opened = self
            .sessions
            .signed_in(signed_in, ctx, current, flow.step_up)
            .await?;
        let Some(opened) = opened else {
            // The session to step up ended, or the bypass code was revoked meanwhile.
            return Ok(Next::Expired);
        };
        let url = self
            .issue_code(
                flow.request,
                &user_id,
                auth_time,
                amr,
                bypass_code,
                Some(opened.session.id),
                ctx,
            )
            .await?;
        Ok(Next::Success {
            url,
            session: Some(opened.token),
        })
    }
}
