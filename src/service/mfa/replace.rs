//! Replacing a lost authenticator: a new one is set up beside the old (which keeps working),
//! and replaces it only when a code from it is confirmed. Then, in one transaction, the old
//! secret stops working and every other sign-in of the user ends; the audit trail and an
//! email say so. Two doors ask for it, each with its evidence: a sign-in whose second step
//! was a bypass code a moment ago, and `/account` with a recent strong sign-in.

use chrono::Utc;

use super::{Enrollment, Lock, MfaService};
use crate::domain::audit::AuditEvent;
use crate::domain::enrolment::{self, Replacement};
use crate::domain::ids::UserId;
use crate::domain::repo::{MfaRepo, UserRepo};
use crate::domain::totp;
use crate::service::alerts::Alert;
use crate::service::context::{Actor, Context};
use crate::service::{ServiceError, audit};

/// Why the person asking may replace the authenticator.
#[derive(Clone, Copy, Debug)]
pub enum ReplaceEvidence<'a> {
    /// This sign-in's second step was the bypass code `code_id`, a moment ago, in this
    /// browser (the sign-in flow holds it).
    CodeSignIn { code_id: &'a str },
    /// A signed-in session: how and when it signed in, and its id, which stays signed in
    /// when the others end.
    Session {
        amr: &'a [String],
        auth_time: i64,
        session_id: Option<&'a str>,
    },
}

impl ReplaceEvidence<'_> {
    fn code_id(&self) -> Option<&str> {
        match self {
            Self::CodeSignIn { code_id } => Some(code_id),
            Self::Session { .. } => None,
        }
    }

    fn kept_session(&self) -> Option<&str> {
        match self {
            Self::CodeSignIn { .. } => None,
            Self::Session { session_id, .. } => *session_id,
        }
    }

    fn door(&self) -> &'static str {
        match self {
            Self::CodeSignIn { .. } => "at sign-in with a bypass code",
            Self::Session { .. } => "from My security",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplaceOutcome {
    Replaced,
    /// The code is not the new authenticator's current one (the attempt counted).
    Wrong,
    Locked(Lock),
    /// Nothing is being set up any more: it was confirmed, or a newer one started, in
    /// another window, or it waited too long.
    Superseded,
}

impl MfaService {
    /// Whether the person behind `ctx` may replace `user_id`'s authenticator, on `evidence`.
    async fn may_replace(
        &self,
        user_id: &UserId,
        evidence: ReplaceEvidence<'_>,
        ctx: &Context,
    ) -> Result<(), ServiceError> {
        if !matches!(&ctx.actor, Actor::User(id) if id == user_id) {
            return Err(ServiceError::Forbidden(
                "only the user replaces their own authenticator; an administrator resets it".into(),
            ));
        }
        let confirmed = self
            .store
            .get_mfa(user_id)
            .await?
            .is_some_and(|m| m.totp_confirmed);
        match evidence {
            ReplaceEvidence::CodeSignIn { .. } => {
                let policy = crate::service::bypass::load_policy(&self.store).await?;
                if policy.authenticator_replacement == Replacement::Off {
                    return Err(ServiceError::Forbidden(
                        "the policy does not offer replacing the authenticator after a bypass-code sign-in".into(),
                    ));
                }
                if !confirmed {
                    return Err(ServiceError::Conflict(
                        enrolment::ReplaceRefused::NothingToReplace.message().into(),
                    ));
                }
                Ok(())
            }
            ReplaceEvidence::Session { amr, auth_time, .. } => {
                enrolment::may_replace(confirmed, amr, auth_time, Utc::now().timestamp())
                    .map_err(|why| ServiceError::Forbidden(why.message().into()))
            }
        }
    }

    /// Why the person behind `ctx` may not replace the authenticator now, in words for them,
    /// or `None` if they may (a page asks before it offers the set-up).
    pub async fn replacement_refused(
        &self,
        user_id: &UserId,
        evidence: ReplaceEvidence<'_>,
        ctx: &Context,
    ) -> Result<Option<String>, ServiceError> {
        match self.may_replace(user_id, evidence, ctx).await {
            Ok(()) => Ok(None),
            Err(ServiceError::Forbidden(why) | ServiceError::Conflict(why)) => Ok(Some(why)),
            Err(other) => Err(other),
        }
    }

    /// Sets up a new authenticator beside the current one and returns its key; any other
    /// being set up is dropped.
    pub async fn begin_replacement(
        &self,
        user_id: &UserId,
        evidence: ReplaceEvidence<'_>,
        ctx: &Context,
    ) -> Result<Enrollment, ServiceError> {
        self.may_replace(user_id, evidence, ctx).await?;
        let secret = totp::generate_secret();
        let now = Utc::now();
        if !self
            .store
            .begin_replacement(user_id, self.sealer.seal(&secret)?, now)
            .await?
        {
            return Err(ServiceError::Conflict(
                enrolment::ReplaceRefused::NothingToReplace.message().into(),
            ));
        }
        audit::record(
            &self.store,
            ctx,
            user_id,
            evidence.code_id(),
            AuditEvent::TotpEnrollmentStarted,
            Some(format!("replacement, {}", evidence.door())),
            now,
        )
        .await?;
        self.enrollment(user_id, &secret).await
    }

    /// The key being set up, while it may still be confirmed (to show it again after a
    /// mistyped code or a reload).
    pub async fn pending_replacement(
        &self,
        user_id: &UserId,
    ) -> Result<Option<Enrollment>, ServiceError> {
        let Some(row) = self.store.get_mfa(user_id).await? else {
            return Ok(None);
        };
        match row.replacement_secret {
            Some(sealed) if enrolment::setup_open(row.replacement_started_at, Utc::now()) => {
                let secret = self.sealer.open(&sealed)?;
                Ok(Some(self.enrollment(user_id, &secret).await?))
            }
            _ => Ok(None),
        }
    }

    async fn enrollment(
        &self,
        user_id: &UserId,
        secret: &[u8],
    ) -> Result<Enrollment, ServiceError> {
        let user = self
            .store
            .get_user(user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let otpauth_uri = totp::otpauth_uri(secret, &self.issuer_name, &user.attributes.user_name)
            .map_err(|e| ServiceError::internal("otpauth URI", e))?;
        Ok(Enrollment {
            secret_base32: totp::base32(secret),
            otpauth_uri,
        })
    }

    /// Checks `code` against the authenticator being set up (an attempt reserved like every
    /// other second-factor check) and, when right, makes it the user's only one.
    pub async fn confirm_replacement(
        &self,
        user_id: &UserId,
        code: &str,
        evidence: ReplaceEvidence<'_>,
        ctx: &Context,
    ) -> Result<ReplaceOutcome, ServiceError> {
        self.may_replace(user_id, evidence, ctx).await?;
        let row = self.store.get_mfa(user_id).await?;
        let pending = row.and_then(|r| {
            r.replacement_secret
                .filter(|_| enrolment::setup_open(r.replacement_started_at, Utc::now()))
        });
        // Nothing to compare against: no attempt is counted.
        let Some(sealed) = pending else {
            return Ok(ReplaceOutcome::Superseded);
        };
        let ticket = match self.guard.begin(user_id, ctx).await? {
            Ok(ticket) => ticket,
            Err(lock) => return Ok(ReplaceOutcome::Locked(lock)),
        };
        let now = Utc::now();
        let secret = self.sealer.open(&sealed)?;
        let Some(step) = totp::check(&secret, code, now.timestamp().max(0) as u64) else {
            drop(ticket);
            audit::record(
                &self.store,
                ctx,
                user_id,
                evidence.code_id(),
                AuditEvent::TotpFailed,
                Some("wrong code for the new authenticator".into()),
                now,
            )
            .await?;
            return Ok(ReplaceOutcome::Wrong);
        };
        let replaced = self
            .store
            .commit_replacement(user_id, &sealed, step as i64, evidence.kept_session(), now)
            .await?;
        self.guard.succeeded(ticket).await?;
        if !replaced {
            return Ok(ReplaceOutcome::Superseded);
        }
        let detail = format!(
            "{}; the old authenticator stopped working and the user's other sessions ended",
            evidence.door()
        );
        audit::record(
            &self.store,
            ctx,
            user_id,
            evidence.code_id(),
            AuditEvent::AuthenticatorReplaced,
            Some(detail),
            now,
        )
        .await?;
        self.alerts
            .send(user_id, Alert::AuthenticatorReplaced, now, ctx)
            .await?;
        Ok(ReplaceOutcome::Replaced)
    }
}
