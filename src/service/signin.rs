//! The sign-in a browser goes through for an authorization request: flow state kept
//! server-side (Redis or in-process) behind an opaque id, the password check, the second
//! factor, TOTP enrolment, and the authorization code that ends it.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;

use super::bypass::{BypassCodeService, Rejection, VerifyOutcome};
use super::context::Context;
use super::mfa::{Enrollment, Lock, MfaService, TotpOutcome};
use super::throttle::Throttle;
use super::{ServiceError, audit, passwords};
use crate::counters::SharedCounters;
use crate::domain::address::LimitAddress;
use crate::domain::audit::AuditEvent;
use crate::domain::ids::{ClientId, UserId};
use crate::domain::limits::{Limit, LimitKey};
use crate::domain::secret::Secret;
use crate::domain::signin::{self, AuthRequest, Flow, SecondFactor, Step};
use crate::domain::signin::{AMR_BYPASS_CODE, AMR_OTP};
use crate::domain::totp::TotpStatus;
use crate::ops::events;
use crate::store::Store;

pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a used authorization code is remembered, to catch its replay.
const USED_CODE_TTL: Duration = Duration::from_secs(10 * 60);

/// What an issued authorization code stands for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    pub user_id: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub grant_id: String,
    /// The bypass code the sign-in used, if it used one.
    #[serde(default)]
    pub bypass_code: Option<String>,
}

/// What the browser sees next. One per request, so the large variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    /// Show the flow's current step, with a message for the person (and, during enrolment,
    /// the new secret).
    Page {
        flow: Flow,
        message: Option<String>,
        enrollment: Option<Enrollment>,
    },
    /// The sign-in is over: send the browser back to the client.
    Redirect(String),
    /// No such flow, or it expired.
    Expired,
    /// The form's CSRF token is missing or wrong.
    Forged,
}

/// The forms that take a typed code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeStep {
    Totp,
    BypassCode,
    Enroll,
}

pub enum StartError {
    /// Never redirect: the client or redirect URI cannot be trusted.
    Page(String),
    /// Redirect back with an OAuth error.
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

pub fn code_key(code: &str) -> String {
    format!("authcode:{}", digest_hex(code))
}

pub fn used_code_key(code: &str) -> String {
    format!("authcode-used:{}", digest_hex(code))
}

/// `redirect_uri` with `params` appended to its query (RFC 6749 §4.1.2), plus `iss` (RFC 9207).
pub fn redirect_url(redirect_uri: &str, params: &[(&str, &str)], issuer: &str) -> String {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return redirect_uri.to_owned(),
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        query.append_pair("iss", issuer);
    }
    url.to_string()
}

pub fn lock_message(lock: Lock) -> String {
    match lock {
        Lock::Window(left) => {
            let minutes = left.as_secs().div_ceil(60).max(1);
            format!(
                "Too many attempts. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )
        }
        Lock::Permanent => {
            "Too many failed attempts. Ask your help desk to reset your 2-step verification."
                .to_owned()
        }
    }
}

#[derive(Clone)]
pub struct SignInService {
    store: Store,
    kv: SharedCounters,
    mfa: MfaService,
    bypass: BypassCodeService,
    throttle: Throttle,
    issuer: String,
    /// New flows one address may open per [`FLOW_TTL`].
    flows_per_address: u64,
    dummy_hash: std::sync::Arc<OnceCell<String>>,
}

impl SignInService {
    pub fn new(
        store: Store,
        kv: SharedCounters,
        mfa: MfaService,
        bypass: BypassCodeService,
        issuer: String,
        flows_per_address: u64,
    ) -> Self {
        Self {
            store,
            throttle: Throttle::new(kv.clone()),
            kv,
            mfa,
            bypass,
            issuer,
            flows_per_address,
            dummy_hash: Default::default(),
        }
    }

    /// Validates an authorization request and opens a flow; returns the flow id.
    pub async fn start(
        &self,
        params: &HashMap<String, String>,
        ctx: &Context,
    ) -> Result<Result<(String, Flow), StartError>, ServiceError> {
        let client_id = params
            .get("client_id")
            .map(String::as_str)
            .unwrap_or_default();
        let client = self.store.find_client(&ClientId::new(client_id)).await?;
        let redirect = match signin::check_client_redirect(params, client.as_ref()) {
            Ok(redirect) => redirect.to_owned(),
            Err(message) => return Ok(Err(StartError::Page(message))),
        };
        let client = client.ok_or(ServiceError::NotFound("client"))?;
        let request = match signin::parse_auth_request(params, &client) {
            Ok(request) => request,
            Err(e) => {
                let mut pairs = vec![
                    ("error", e.error),
                    ("error_description", e.description.as_str()),
                ];
                // A state too long to accept is too long to echo.
                if let Some(state) = params
                    .get("state")
                    .filter(|s| s.len() <= signin::MAX_PARAM_LEN)
                {
                    pairs.push(("state", state));
                }
                return Ok(Err(StartError::Redirect(redirect_url(
                    &redirect,
                    &pairs,
                    &self.issuer,
                ))));
            }
        };
        // Flows live in memory or Redis until they expire: one address may open only so many.
        if let Some(ip) = ctx.ip {
            let limit = Limit {
                max: self.flows_per_address,
                window: FLOW_TTL,
            };
            let key = LimitKey::FlowsPerAddress(LimitAddress::of(ip), limit);
            if let Err(retry_after) = self.throttle.reserve(vec![key]).await? {
                return Ok(Err(StartError::TooMany(retry_after)));
            }
        }
        let id = random_token();
        let flow = Flow::new(request, random_token());
        self.save(&id, &flow).await?;
        Ok(Ok((id, flow)))
    }

    async fn save(&self, id: &str, flow: &Flow) -> Result<(), ServiceError> {
        let text =
            serde_json::to_string(flow).map_err(|e| ServiceError::internal("sign-in flow", e))?;
        Ok(self.kv.put(&flow_key(id), &text, FLOW_TTL).await?)
    }

    pub async fn load(&self, id: &str) -> Result<Option<Flow>, ServiceError> {
        match self.kv.get(&flow_key(id)).await? {
            Some(text) => Ok(serde_json::from_str(&text).ok()),
            None => Ok(None),
        }
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
        message: Option<String>,
        ctx: &Context,
    ) -> Result<Next, ServiceError> {
        match &flow.step {
            Step::Authenticated { .. } => {
                // Only the request that deletes the flow may end it: one authorization
                // request, at most one authorization code, however often the form is sent.
                if !self.kv.remove(&flow_key(id)).await? {
                    return Ok(Next::Expired);
                }
                self.finish(flow, ctx).await
            }
            Step::Enroll { user_id, .. } => {
                let enrollment = self
                    .mfa
                    .start_enrollment(&UserId::new(user_id.clone()), ctx)
                    .await?;
                self.save(id, &flow).await?;
                Ok(Next::Page {
                    flow,
                    message,
                    enrollment: Some(enrollment),
                })
            }
            _ => {
                self.save(id, &flow).await?;
                Ok(Next::Page {
                    flow,
                    message,
                    enrollment: None,
                })
            }
        }
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
    ) -> Result<(Next, Option<String>), ServiceError> {
        let flow = match self.checked(id, csrf).await? {
            Ok(flow) if flow.step == Step::Password => flow,
            Ok(flow) => return Ok((self.advance(id, flow, None, ctx).await?, None)),
            Err(next) => return Ok((next, None)),
        };
        let page = |flow: Flow, message: String| {
            Ok((
                Next::Page {
                    flow,
                    message: Some(message),
                    enrollment: None,
                },
                None,
            ))
        };
        let keys = LimitKey::password(user_name, ctx.ip);
        let reservation = match self.throttle.reserve(keys).await? {
            Ok(reservation) => reservation,
            Err(retry_after) => {
                events::sign_in_step("password", "locked");
                return page(flow, lock_message(Lock::Window(retry_after)));
            }
        };
        let found = self.store.find_user_for_sign_in(user_name.trim()).await?;
        // Unknown users cost the same Argon2 computation, so timing tells nothing.
        let phc = match found.as_ref().and_then(|(_, hash)| hash.clone()) {
            Some(hash) => hash,
            None => self
                .dummy_hash
                .get_or_try_init(|| passwords::hash(Secret::new(random_token())))
                .await?
                .clone(),
        };
        let matches = passwords::verify(password, phc).await?;
        let user = match found {
            Some((user, Some(_))) if matches && user.attributes.active != Some(false) => user,
            // The reservation stays: this was a failed attempt.
            _ => {
                events::sign_in_step("password", "failure");
                return page(flow, "Wrong username or password.".to_owned());
            }
        };
        events::sign_in_step("password", "success");
        self.throttle.succeeded(reservation).await?;
        let has_totp = user.totp == TotpStatus::Enrolled;
        let required = user.attributes.mfa_required == Some(true);
        let flow = flow
            .password_verified(
                user.id.into_string(),
                Utc::now().timestamp(),
                has_totp,
                required,
            )
            .map_err(|e| ServiceError::internal("sign-in step", e))?;
        let new_id = random_token();
        self.save(&new_id, &flow).await?;
        // Of two submissions of this form, one moves the flow; the other finds it gone.
        if !self.kv.remove(&flow_key(id)).await? {
            self.kv.remove(&flow_key(&new_id)).await?;
            return Ok((Next::Expired, None));
        }
        let next = self.advance(&new_id, flow, None, ctx).await?;
        Ok((next, Some(new_id)))
    }

    pub async fn code_step(
        &self,
        step: CodeStep,
        id: &str,
        csrf: &str,
        code: &str,
        ctx: &Context,
    ) -> Result<Next, ServiceError> {
        let flow = match self.checked(id, csrf).await? {
            Ok(flow) => flow,
            Err(next) => return Ok(next),
        };
        let user = match (&flow.step, step) {
            (Step::SecondFactor { user_id, .. }, CodeStep::Totp | CodeStep::BypassCode)
            | (Step::Enroll { user_id, .. }, CodeStep::Enroll) => UserId::new(user_id.clone()),
            // A form of another step (back button, second tab): show where the flow stands.
            _ => return self.advance(id, flow, None, ctx).await,
        };
        let checked = match step {
            CodeStep::Totp => self.check_totp(&user, code, ctx).await?,
            CodeStep::BypassCode => self.check_bypass_code(&user, code, ctx).await?,
            CodeStep::Enroll => return self.enroll(id, flow, &user, code, ctx).await,
        };
        match checked {
            Ok(factor) => {
                let flow = flow
                    .second_factor_verified(factor)
                    .map_err(|e| ServiceError::internal("sign-in step", e))?;
                self.advance(id, flow, None, ctx).await
            }
            Err(message) => Ok(Next::Page {
                flow,
                message: Some(message),
                enrollment: None,
            }),
        }
    }

    /// `Ok` when the code is accepted, else what to tell the person.
    async fn check_totp(
        &self,
        user: &UserId,
        code: &str,
        ctx: &Context,
    ) -> Result<Result<SecondFactor, String>, ServiceError> {
        let outcome = self.mfa.verify(user, code, ctx).await?;
        events::sign_in_step(
            "totp",
            match outcome {
                TotpOutcome::Accepted => "success",
                TotpOutcome::Locked(_) => "locked",
                _ => "failure",
            },
        );
        Ok(Err(match outcome {
            TotpOutcome::Accepted => return Ok(Ok(SecondFactor::Totp)),
            TotpOutcome::Wrong => {
                "That code is not right. Enter the 6-digit code your authenticator app shows now."
                    .to_owned()
            }
            TotpOutcome::Replayed => {
                "That code was already used. Wait for the next code and enter it.".to_owned()
            }
            TotpOutcome::Locked(lock) => lock_message(lock),
        }))
    }

    /// `Ok` when the code is accepted, else what to tell the person.
    async fn check_bypass_code(
        &self,
        user: &UserId,
        code: &str,
        ctx: &Context,
    ) -> Result<Result<SecondFactor, String>, ServiceError> {
        let reason = match self.bypass.verify_and_consume(user, code, ctx).await? {
            VerifyOutcome::Accepted { code_id, .. } => {
                events::sign_in_step("bypass_code", "success");
                return Ok(Ok(SecondFactor::BypassCode { code_id }));
            }
            VerifyOutcome::Rejected(reason) => reason,
        };
        let outcome = if matches!(reason, Rejection::Locked(_)) {
            "locked"
        } else {
            "failure"
        };
        events::sign_in_step("bypass_code", outcome);
        Ok(Err(match reason {
            Rejection::Wrong => {
                "That bypass code is not right. Check it and try again; dashes and spaces do not matter.".to_owned()
            }
            Rejection::Expired => {
                "That bypass code has expired. Ask your help desk for a new one.".to_owned()
            }
            Rejection::Revoked => {
                "That bypass code was revoked. Ask your help desk for a new one.".to_owned()
            }
            Rejection::Exhausted => {
                "That bypass code has been used up. Ask your help desk for a new one.".to_owned()
            }
            Rejection::Locked(lock) => lock_message(lock),
        }))
    }

    async fn enroll(
        &self,
        id: &str,
        flow: Flow,
        user: &UserId,
        code: &str,
        ctx: &Context,
    ) -> Result<Next, ServiceError> {
        let confirmed = self.mfa.confirm(user, code, ctx).await;
        let outcome = if confirmed.is_ok() {
            "success"
        } else {
            "failure"
        };
        events::sign_in_step("enrolment", outcome);
        match confirmed {
            Ok(()) => {
                let flow = flow
                    .enrolled()
                    .map_err(|e| ServiceError::internal("sign-in step", e))?;
                self.advance(id, flow, None, ctx).await
            }
            Err(ServiceError::Invalid(v)) => {
                let message = format!(
                    "{} A new key is shown below: add it to your app again.",
                    v.detail
                );
                self.advance(id, flow, Some(message), ctx).await
            }
            Err(other) => Err(other),
        }
    }

    /// Issues the authorization code for a flow its caller has claimed (deleted).
    async fn finish(&self, flow: Flow, ctx: &Context) -> Result<Next, ServiceError> {
        let Step::Authenticated {
            user_id,
            auth_time,
            amr,
            bypass_code,
        } = flow.step
        else {
            return Err(ServiceError::bug("finish before authentication"));
        };
        let request: AuthRequest = flow.request;
        events::signed_in(if amr.iter().any(|m| m == AMR_BYPASS_CODE) {
            "bypass_code"
        } else if amr.iter().any(|m| m == AMR_OTP) {
            "otp"
        } else {
            "password"
        });
        let code = random_token();
        let grant = CodeGrant {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            scope: request.scope.clone(),
            user_id: user_id.clone(),
            auth_time,
            amr: amr.clone(),
            grant_id: uuid::Uuid::new_v4().to_string(),
            bypass_code,
        };
        let text = serde_json::to_string(&grant)
            .map_err(|e| ServiceError::internal("authorization code", e))?;
        self.kv.put(&code_key(&code), &text, CODE_TTL).await?;
        audit::record(
            &self.store,
            ctx,
            &UserId::new(user_id),
            None,
            AuditEvent::SignedIn,
            Some(format!(
                "client {} amr {}",
                request.client_id,
                amr.join(" ")
            )),
            Utc::now(),
        )
        .await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        Ok(Next::Redirect(redirect_url(
            &request.redirect_uri,
            &params,
            &self.issuer,
        )))
    }

    /// Redeems an authorization code exactly once. A second redemption revokes the grant.
    pub async fn redeem(
        &self,
        code: &str,
    ) -> Result<Result<CodeGrant, &'static str>, ServiceError> {
        match self.kv.take(&code_key(code)).await? {
            Some(text) => {
                let grant: CodeGrant = serde_json::from_str(&text)
                    .map_err(|e| ServiceError::internal("stored authorization code", e))?;
                self.kv
                    .put(&used_code_key(code), &grant.grant_id, USED_CODE_TTL)
                    .await?;
                Ok(Ok(grant))
            }
            None => {
                if let Some(grant_id) = self.kv.get(&used_code_key(code)).await? {
                    self.store.revoke_grant(&grant_id, Utc::now()).await?;
                    tracing::warn!(grant_id = %grant_id, "authorization code replayed; grant revoked");
                    return Ok(Err(
                        "the authorization code was already used; the tokens issued from it are revoked",
                    ));
                }
                Ok(Err("the authorization code is invalid or expired"))
            }
        }
    }
}
