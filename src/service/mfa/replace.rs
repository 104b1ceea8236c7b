//! Replacing a lost authenticator: a new one is set up beside the old (which keeps working),
//! and replaces it only when a code from it is confirmed. Then, in one transaction, the old
//! secret stops working and every other sign-in of the user ends; the audit trail and an
//! email say so. Two doors ask for it, each with its evidence: a sign-in whose second step
//! was a bypass code a moment ago, and `/account` with a recent strong sign-in.
//!
//! Each set-up has an id (the digest of the sealed key, never the key): the page that showed
//! a key holds it, and only that key is shown to it again or confirmed through it. A set-up
//! started elsewhere (another window, another person at the user's account) is not.

use chrono::Utc;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Enrollment, Lock, MfaService};
use crate::domain::audit::AuditEvent;
use crate::domain::enrolment::{self, Replacement};
use crate::domain::ids::UserId;
use crate::domain::repo::{MfaRepo, UserRepo};
use crate::domain::totp;
use crate::service::alerts::Alert;
use crate::service::context::{Actor, Context};
use crate::service::{ServiceError, audit};
use crate::store::mfa::Replacing;

/// Why the person asking may replace the authenticator.
#[derive(Clone, Copy, Debug)]
pub enum ReplaceEvidence<'a> {
    /// This sign-in's password was checked at `auth_time` and its second step was the bypass
    /// code `code_id`, in this browser (the sign-in flow holds both).
    CodeSignIn { code_id: &'a str, auth_time: i64 },
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
            Self::CodeSignIn { code_id, .. } => Some(code_id),
            Self::Session { .. } => None,
        }
    }

    fn auth_time(&self) -> i64 {
        match self {
            Self::CodeSignIn { auth_time, .. } | Self::Session { auth_time, .. } => *auth_time,
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

/// A new key being set up, and the id that names it to the page that shows it.
pub struct ReplacementStarted {
    pub enrollment: Enrollment,
    pub setup: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplaceOutcome {
    Replaced,
    /// The code is not the new authenticator's current one (the attempt counted).
    Wrong,
    Locked(Lock),
    /// This set-up is no longer the one being set up: it was confirmed, or another started,
    /// elsewhere, or it waited too long. Nothing was compared.
    Superseded,
}

/// The id of a set-up: the digest of its sealed key.
fn setup_id(sealed: &str) -> String {
    Sha256::digest(sealed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn same_setup(sealed: &str, setup: &str) -> bool {
    bool::from(setup_id(sealed).as_bytes().ct_eq(setup.as_bytes()))
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
        // Read now, not when the sign-in began: a revoked code, a reset or a password change
        // since then leaves it nothing to set.
        if !self
            .sign_in_may_set_factor(user_id, evidence.auth_time(), evidence.code_id())
            .await?
        {
            return Err(ServiceError::Forbidden(
                "this sign-in no longer stands: its bypass code was revoked, or 2-step verification or the password changed since; sign in again".into(),
            ));
        }
        let confirmed = self
            .store
            .get_mfa(user_id)
            .await?
            .is_some_and(|m| m.totp_confirmed);
        let policy = crate::service::policy::load(&self.store).await?;
        match evidence {
            ReplaceEvidence::CodeSignIn { .. } => {
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
            ReplaceEvidence::Session { amr, auth_time, .. } => enrolment::may_replace(
                confirmed,
                amr,
                auth_time,
                Utc::now().timestamp(),
                policy.authenticator_replacement,
            )
            .map_err(|why| ServiceError::Forbidden(why.message().into())),
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

    /// Sets up a new authenticator beside the current one and returns its key and set-up id;
    /// any other being set up is dropped.
    pub async fn begin_replacement(
        &self,
        user_id: &UserId,
        evidence: ReplaceEvidence<'_>,
        ctx: &Context,
    ) -> Result<ReplacementStarted, ServiceError> {
        self.may_replace(user_id, evidence, ctx).await?;
        let secret = totp::generate_secret();
        let sealed = self.sealer.seal(&secret)?;
        let setup = setup_id(&sealed);
        let now = Utc::now();
        if !self.store.begin_replacement(user_id, sealed, now).await? {
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
        Ok(ReplacementStarted {
            enrollment: self.enrollment(user_id, &secret).await?,
            setup,
        })
    }

    /// The sealed key of set-up `setup`, while it is the one being set up and may still be
    /// confirmed.
    async fn pending(&self, user_id: &UserId, setup: &str) -> Result<Option<String>, ServiceError> {
        let Some(row) = self.store.get_mfa(user_id).await? else {
            return Ok(None);
        };
        Ok(row.replacement_secret.filter(|sealed| {
            same_setup(sealed, setup)
                && enrolment::setup_open(row.replacement_started_at, Utc::now())
        }))
    }

    /// The key of set-up `setup`, to show it again (after a mistyped code or a reload) while
    /// it is still the one being set up.
    pub async fn pending_replacement(
        &self,
        user_id: &UserId,
        setup: &str,
    ) -> Result<Option<Enrollment>, ServiceError> {
        match self.pending(user_id, setup).await? {
            Some(sealed) => {
                let secret = self.sealer.open(&sealed)?;
                Ok(Some(self.enrollment(user_id, &secret).await?))
            }
            None => Ok(None),
        }
    }

    /// "Not now": set-up `setup` is dropped, if it is still the one being set up.
    pub async fn abandon_replacement(
        &self,
        user_id: &UserId,
        setup: &str,
    ) -> Result<(), ServiceError> {
        if let Some(sealed) = self.pending(user_id, setup).await? {
            self.store.clear_replacement(user_id, &sealed).await?;
        }
        Ok(())
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
        self.key_for(secret, &user.attributes.user_name)
    }

    /// Checks `code` against the key of set-up `setup` (an attempt reserved like every other
    /// second-factor check) and, when right, makes it the user's only authenticator.
    pub async fn confirm_replacement(
        &self,
        user_id: &UserId,
        code: &str,
        setup: &str,
        evidence: ReplaceEvidence<'_>,
        ctx: &Context,
    ) -> Result<ReplaceOutcome, ServiceError> {
        self.may_replace(user_id, evidence, ctx).await?;
        // Nothing to compare against: no attempt is counted.
        let Some(sealed) = self.pending(user_id, setup).await? else {
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
            .commit_replacement(
                user_id,
                &sealed,
                step as i64,
                Replacing {
                    code_id: evidence.code_id(),
                    kept_session: evidence.kept_session(),
                },
                now,
            )
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
        // The replacement stands whatever happens to the mail (a failure is audited there).
        if let Err(e) = self
            .alerts
            .send(user_id, Alert::AuthenticatorReplaced, now, ctx)
            .await
        {
            tracing::warn!(error = %e, "could not record the replacement alert");
        }
        Ok(ReplaceOutcome::Replaced)
    }
}
