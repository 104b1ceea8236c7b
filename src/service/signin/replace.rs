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

/// The bypass code the flow's second step used, while it waits at the replacement step.
fn code_of(flow: &Flow) -> Option<(&UserId, &str)> {
    match &flow.step {
        Step::Replace {
            user_id,
            bypass_code,
            ..
        } => Some((user_id, bypass_code.as_str())),
        _ => None,
    }
}

impl SignInService {
    /// The page for the flow as it stands (a reload): during a replacement's set-up, the key
    /// being set up is shown again while it may still be confirmed.
    pub async fn show(&self, id: &str) -> Result<Next, ServiceError> {
        let Some(mut flow) = self.load(id).await? else {
            return Ok(Next::Expired);
        };
        let mut enrollment = None;
        if let Step::Replace {
            user_id,
            setting_up: true,
            ..
        } = &flow.step
        {
            enrollment = self.mfa.pending_replacement(user_id).await?;
            if enrollment.is_none()
                && let Step::Replace { setting_up, .. } = &mut flow.step
            {
                *setting_up = false;
            }
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
        let Some((user, code_id)) = code_of(&flow) else {
            return self.advance(id, flow, None, ctx, browser).await;
        };
        match choice {
            ReplaceChoice::SetUp => {
                let evidence = ReplaceEvidence::CodeSignIn { code_id };
                let actor = as_user(&flow, user, ctx);
                let enrollment = self
                    .mfa
                    .begin_replacement(&user.clone(), evidence, &actor)
                    .await?;
                let flow = flow
                    .replacement_started()
                    .map_err(|e| ServiceError::internal("sign-in step", e))?;
                self.save(id, &flow).await?;
                Ok(Next::Continue {
                    flow,
                    denied: None,
                    enrollment: Some(enrollment),
                })
            }
            ReplaceChoice::NotNow => match flow.clone().replacement_skipped() {
                Ok(next) => {
                    events::sign_in_step("replacement", "skipped");
                    self.advance(id, next, None, ctx, browser).await
                }
                Err(_) => Ok(Next::page(flow, Some(Denied::ReplacementRequired))),
            },
        }
    }

    /// A code from the new authenticator: replaced, and the sign-in goes on; or the page
    /// again with why not.
    pub(super) async fn confirm_replacement(
        &self,
        id: &str,
        flow: Flow,
        user: &UserId,
        code: &str,
        ctx: &Context,
        browser: Option<&str>,
    ) -> Result<Next, ServiceError> {
        let Some((_, code_id)) = code_of(&flow) else {
            return self.advance(id, flow, None, ctx, browser).await;
        };
        let evidence = ReplaceEvidence::CodeSignIn { code_id };
        let actor = as_user(&flow, user, ctx);
        let outcome = self
            .mfa
            .confirm_replacement(user, code, evidence, &actor)
            .await?;
        let denied = match outcome {
            ReplaceOutcome::Replaced => {
                events::sign_in_step("replacement", "success");
                let flow = flow
                    .replaced()
                    .map_err(|e| ServiceError::internal("sign-in step", e))?;
                return self.advance(id, flow, None, ctx, browser).await;
            }
            ReplaceOutcome::Wrong => Denied::WrongReplacementCode,
            ReplaceOutcome::Locked(lock) => Denied::Locked(lock),
            ReplaceOutcome::Superseded => Denied::ReplacementSuperseded,
        };
        events::sign_in_step("replacement", "failure");
        let enrollment = self.mfa.pending_replacement(user).await?;
        let mut flow = flow;
        if enrollment.is_none()
            && let Step::Replace { setting_up, .. } = &mut flow.step
        {
            *setting_up = false;
            self.save(id, &flow).await?;
        }
        Ok(Next::Continue {
            flow,
            denied: Some(denied),
            enrollment,
        })
    }
}
