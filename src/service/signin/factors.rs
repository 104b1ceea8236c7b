//! The sign-in's factor checks: a TOTP code, a bypass code (at the second step or at the
//! enrolment gate), and the enrolment of a first authenticator, each through a service that
//! reserves an attempt before it compares anything.

use super::{Denied, Next, SignInService, flow_key};
use crate::domain::enrolment::CodeUse;
use crate::domain::ids::{ClientId, UserId};
use crate::domain::signin::{Flow, SecondFactor, Step};
use crate::service::ServiceError;
use crate::service::bypass::{Rejection, VerifyOutcome};
use crate::service::context::Context;
use crate::service::events;
use crate::service::mfa::{Enrollment, TotpOutcome};

/// A checked second-factor code.
pub(super) enum Checked {
    Accepted(SecondFactor),
    Denied(Denied),
}

impl SignInService {
    pub(super) async fn check_totp(
        &self,
        user: &UserId,
        code: &str,
        ctx: &Context,
    ) -> Result<Checked, ServiceError> {
        let outcome = self.mfa.verify(user, code, ctx).await?;
        let (metric, checked) = match outcome {
            TotpOutcome::Accepted => ("success", Checked::Accepted(SecondFactor::Totp)),
            TotpOutcome::Wrong => ("failure", Checked::Denied(Denied::WrongTotp)),
            TotpOutcome::Replayed => ("failure", Checked::Denied(Denied::ReplayedTotp)),
            TotpOutcome::Locked(lock) => ("locked", Checked::Denied(Denied::Locked(lock))),
        };
        events::sign_in_step("totp", metric);
        Ok(checked)
    }

    /// Checks a bypass code typed at `application`'s sign-in; with an accepted code of a
    /// printable set, how many of the set are left.
    pub(super) async fn check_bypass_code(
        &self,
        user: &UserId,
        code: &str,
        at: CodeUse,
        application: &str,
        ctx: &Context,
    ) -> Result<(Checked, Option<u64>), ServiceError> {
        // The application signed in to is part of the record (audit, the user's alert).
        let ctx = Context {
            client_id: Some(ClientId::new(application)),
            ..ctx.clone()
        };
        let mut saved = None;
        let (metric, checked) = match self.bypass.verify_and_consume(user, code, at, &ctx).await? {
            VerifyOutcome::Accepted {
                code_id,
                saved_left,
                ..
            } => {
                saved = saved_left;
                (
                    "success",
                    Checked::Accepted(SecondFactor::BypassCode { code_id }),
                )
            }
            VerifyOutcome::Rejected(Rejection::Locked(lock)) => {
                ("locked", Checked::Denied(Denied::Locked(lock)))
            }
            VerifyOutcome::Rejected(reason) => {
                ("failure", Checked::Denied(Denied::BypassCode(reason)))
            }
        };
        events::sign_in_step("bypass_code", metric);
        Ok((checked, saved))
    }

    /// Whether the flow may still set the user's authenticator (the facts as they are now:
    /// a reset, a revoked code or a password change since its password check say no); the
    /// flow ends when it may not.
    pub(super) async fn may_set_factor(
        &self,
        id: &str,
        user: &UserId,
        auth_time: i64,
        bypass_code: &Option<String>,
    ) -> Result<bool, ServiceError> {
        let may = self
            .mfa
            .sign_in_may_set_factor(user, auth_time, bypass_code.as_deref())
            .await?;
        if !may {
            self.kv.remove(&flow_key(id)).await?;
        }
        Ok(may)
    }

    /// The authenticator set-up page of a flow at [`Step::Enroll`] whose pending key was just
    /// stored (`started`), the flow saved with it.
    pub(super) async fn enrolment_page(
        &self,
        id: &str,
        flow: Flow,
        denied: Option<Denied>,
        started: Result<Enrollment, ServiceError>,
    ) -> Result<Next, ServiceError> {
        let enrollment = match started {
            Ok(enrollment) => enrollment,
            // Confirmed meanwhile by the same form sent twice: that one goes on.
            Err(ServiceError::Conflict(_)) => return Ok(Next::Expired),
            Err(other) => return Err(other),
        };
        if !self.update(id, &flow).await? {
            return Ok(Next::Expired);
        }
        Ok(Next::Continue {
            flow,
            denied,
            enrollment: Some(enrollment),
        })
    }

    pub(super) async fn enroll(
        &self,
        id: &str,
        flow: Flow,
        user: &UserId,
        code: &str,
        ctx: &Context,
        browser: Option<&str>,
    ) -> Result<Next, ServiceError> {
        if let Step::Enroll {
            auth_time,
            bypass_code,
            ..
        } = &flow.step
            && !self
                .may_set_factor(id, user, *auth_time, bypass_code)
                .await?
        {
            return Ok(Next::Expired);
        }
        let denied = match self.mfa.confirm_code(user, code, ctx).await {
            Ok(TotpOutcome::Accepted) => None,
            Ok(TotpOutcome::Locked(lock)) => Some(Denied::EnrollmentLocked(lock)),
            Ok(TotpOutcome::Wrong | TotpOutcome::Replayed) | Err(ServiceError::Invalid(_)) => {
                Some(Denied::WrongEnrollmentCode)
            }
            // The same form sent twice: the other submission confirmed the factor and moved
            // the sign-in on; this one is done.
            Err(ServiceError::Conflict(_)) => return Ok(Next::Expired),
            Err(other) => return Err(other),
        };
        events::sign_in_step(
            "enrolment",
            if denied.is_none() {
                "success"
            } else {
                "failure"
            },
        );
        if denied.is_some() {
            // The page shows a new key: the one that failed may have been mistyped into the app.
            return self.advance(id, flow, denied, ctx, browser).await;
        }
        let flow = flow
            .enrolled()
            .map_err(|e| ServiceError::internal("sign-in step", e))?;
        self.advance(id, flow, None, ctx, browser).await
    }
}
