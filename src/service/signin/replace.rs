//! The sign-in's replacement step: after a bypass-code second step, "Set up a new
//! authenticator app" or "Not now" (policy `authenticatorReplacement`), the new key, and the
//! code that makes it the user's only authenticator ([`MfaService::confirm_replacement`]).
//! Only this flow, in the browser that holds its cookie, reaches the step, and only after its
//! bypass code was accepted.
//!
//! [`MfaService::confirm_replacement`]: crate::service::mfa::MfaService::confirm_replacement

use super::{Denied, Next, SignInService};
use crate::domain::ids::{ClientId, UserId};
use crate::domain::signin::{Flow, Step};
use crate::service::ServiceError;
use crate::service::context::Context;
use crate::service::events;
use crate::service::mfa::{ReplaceEvidence, ReplaceOutcome};

/// The two buttons of the offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplaceChoice {
    SetUp,
    NotNow,
}

/// The person signing in, as the replacement's actor: the audit trail names them.
fn as_user(flow: &Flow, user: &UserId, ctx: &Context) -> Context {
    Context::user(
        user.clone(),
        Some(ClientId::new(flow.request.client_id.as_str())),
        ctx.ip,
    )
}

/// What the replacement step knows: the user, the bypass code of the second step, when the
/// password was checked, and the set-up this flow was shown, if any.
struct AtReplace<'a> {
    user: &'a UserId,
    code_id: &'a str,
    auth_time: i64,
    setup: Option<&'a str>,
}

impl<'a> AtReplace<'a> {
    fn of(flow: &'a Flow) -> Option<Self> {
        match &flow.step {
            Step::Replace {
                user_id,
                bypass_code,
                auth_time,
                setup,
                ..
            } => Some(Self {
                user: user_id,
                code_id: bypass_code,
                auth_time: *auth_time,
                setup: setup.as_deref(),
            }),
            _ => None,
        }
    }

    fn evidence(&self) -> ReplaceEvidence<'a> {
        ReplaceEvidence::CodeSignIn {
            code_id: self.code_id,
            auth_time: self.auth_time,
        }
    }
}

impl SignInService {
    /// The page for the flow as it stands (a reload): during a replacement's set-up, the key
    /// this flow was shown is shown again while it may still be confirmed.
    pub async fn show(&self, id: &str) -> Result<Next, ServiceError> {
        let Some(flow) = self.load(id).await? else {
            return Ok(Next::Expired);
        };
        let mut enrollment = None;
        if let Some(at) = AtReplace::of(&flow)
            && let Some(setup) = at.setup
        {
            enrollment = self.mfa.pending_replacement(at.user, setup).await?;
        }
        Ok(Next::Continue {
            flow,
            denied: None,
            enrollment,
        })
    }

    /// "Set up a new authenticator app" (a new key) or "Not now" (on to the client, unless
    /// the policy requires the new authenticator).
    pub async fn replace_choice(
        &self,
        id: &str,
        csrf: &str,
        choice: ReplaceChoice,
        ctx: &Context,
        browser: Option<&str>,
    ) -> Result<Next, ServiceError> {
        let flow = match self.checked(id, csrf).await? {
            Ok(flow) => flow,
            Err(next) => return Ok(next),
        };
        let Some(at) = AtReplace::of(&flow) else {
            return self.advance(id, flow, None, ctx, browser).await;
        };
        let user = at.user.clone();
        let actor = as_user(&flow, &user, ctx);
        match choice {
            ReplaceChoice::SetUp => {
                let begun = self
                    .mfa
                    .begin_replacement(&user, at.evidence(), &actor)
                    .await;
                let started = match begun {
                    Ok(started) => started,
                    Err(e) => return self.withdrawn(id, flow, e, ctx, browser).await,
                };
                let flow = flow
                    .replacement_started(Some(started.setup))
                    .map_err(|e| ServiceError::internal("sign-in step", e))?;
                if !self.update(id, &flow).await? {
                    return Ok(Next::Expired);
                }
                Ok(Next::Continue {
                    flow,
                    denied: None,
                    enrollment: Some(started.enrollment),
                })
            }
            ReplaceChoice::NotNow => match flow.clone().replacement_skipped() {
                Ok(next) => {
                    if let Some(setup) = at.setup {
                        self.mfa.abandon_replacement(&user, setup).await?;
                    }
                    events::sign_in_step("replacement", "skipped");
                    self.advance(id, next, None, ctx, browser).await
                }
                Err(_) => Ok(Next::page(flow, Some(Denied::ReplacementRequired))),
            },
        }
    }

    /// The service no longer allows the replacement (`Forbidden`: the policy turned it off, or
    /// the sign-in no longer stands; `Conflict`: no authenticator to replace, after a reset):
    /// the sign-in goes on without it, and `finish` refuses what may no longer finish.
    async fn withdrawn(
        &self,
        id: &str,
        flow: Flow,
        error: ServiceError,
        ctx: &Context,
        browser: Option<&str>,
    ) -> Result<Next, ServiceError> {
        match error {
            ServiceError::Forbidden(_) | ServiceError::Conflict(_) => {
                events::sign_in_step("replacement", "withdrawn");
                let flow = flow
                    .replacement_withdrawn()
                    .map_err(|e| ServiceError::internal("sign-in step", e))?;
                self.advance(id, flow, None, ctx, browser).await
            }
            other => Err(other),
        }
    }

    /// A code from the new authenticator: replaced, and the sign-in goes on; or the page
    /// again with why not.
    pub(super) async fn confirm_replacement(
        &self,
        id: &str,
        flow: Flow,
        code: &str,
        ctx: &Context,
        browser: Option<&str>,
    ) -> Result<Next, ServiceError> {
        let Some(at) = AtReplace::of(&flow) else {
            return self.advance(id, flow, None, ctx, browser).await;
        };
        let user = at.user.clone();
        let actor = as_user(&flow, &user, ctx);
        let outcome = match at.setup {
            None => Ok(ReplaceOutcome::Superseded),
            Some(setup) => {
                self.mfa
                    .confirm_replacement(&user, code, setup, at.evidence(), &actor)
                    .await
            }
        };
        let denied = match outcome {
            Ok(ReplaceOutcome::Replaced) => {
                events::sign_in_step("replacement", "success");
                let flow = flow
                    .replaced()
                    .map_err(|e| ServiceError::internal("sign-in step", e))?;
                return self.advance(id, flow, None, ctx, browser).await;
            }
            Ok(ReplaceOutcome::Wrong) => Denied::WrongReplacementCode,
            Ok(ReplaceOutcome::Locked(lock)) => Denied::Locked(lock),
            Ok(ReplaceOutcome::Superseded) => Denied::ReplacementSuperseded,
            Err(e) => return self.withdrawn(id, flow, e, ctx, browser).await,
        };
        events::sign_in_step("replacement", "failure");
        let enrollment = match at.setup {
            Some(setup) => self.mfa.pending_replacement(&user, setup).await?,
            None => None,
        };
        let flow = if enrollment.is_none() {
            let flow = flow
                .replacement_started(None)
                .map_err(|e| ServiceError::internal("sign-in step", e))?;
            if !self.update(id, &flow).await? {
                return Ok(Next::Expired);
            }
            flow
        } else {
            flow
        };
        Ok(Next::Continue {
            flow,
            denied: Some(denied),
            enrollment,
        })
    }
}

impl SignInService {
    /// "Continue" after the page that says how few saved codes are left.
    pub async fn notice_read(
        &self,
        id: &str,
        csrf: &str,
        ctx: &Context,
        browser: Option<&str>,
    ) -> Result<Next, ServiceError> {
        let flow = match self.checked(id, csrf).await? {
            Ok(flow) => flow,
            Err(next) => return Ok(next),
        };
        let flow = match flow.clone().notice_read() {
            Ok(next) => next,
            // A form of another step: show where the flow stands.
            Err(_) => flow,
        };
        self.advance(id, flow, None, ctx, browser).await
    }
}
