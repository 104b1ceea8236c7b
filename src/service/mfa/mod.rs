//! 2-step verification: TOTP enrolment and checks, and the brute-force guard that every
//! second-factor attempt (TOTP or bypass code) goes through.

use chrono::Utc;

use super::access::Access;
use super::alerts::{Alert, Alerts};
use super::context::Context;
use super::roles::Roles;
use super::sealing::Sealer;
use super::throttle::{Reservation, Throttle};
use super::{ServiceError, audit};
use crate::domain::access::Action;
use crate::domain::audit::AuditEvent;
use crate::domain::bypass::check_eligible;
use crate::domain::enrolment::{self, CodeGate, Factors};
use crate::domain::ids::UserId;
use crate::domain::limits::{LimitKey, MAX_CONSECUTIVE_FAILURES};
use crate::domain::repo::{BypassCodeRepo, MfaRepo, SignInRecord, UserRepo};
use crate::domain::scim::user::User;
use crate::domain::secret::Secret;
use crate::domain::totp;
use crate::domain::totp::MfaRecord;
pub use crate::domain::totp::TotpStatus;
use crate::service::events;
use crate::store::Store;

mod replace;
pub use replace::{ReplaceEvidence, ReplaceOutcome, ReplacementStarted};

const SALT_BYTES: usize = 16;

pub use crate::domain::limits::Lock;

/// A TOTP factor waiting for confirmation. Both values contain the secret.
pub struct Enrollment {
    pub secret_base32: Secret,
    pub otpauth_uri: Secret,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpOutcome {
    Accepted,
    Wrong,
    /// The code was right but its time step was already used.
    Replayed,
    Locked(Lock),
}

/// Guards every second-factor attempt: reserves it under the per-user and per-address
/// limits and in the user's consecutive-failure streak before the code is checked.
#[derive(Clone)]
pub struct Guard {
    store: Store,
    throttle: Throttle,
}

/// A reserved second-factor attempt; dropping it leaves the attempt counted as failed.
pub struct GuardTicket {
    reservation: Reservation,
    user_id: UserId,
    /// Whether the attempt was counted into the user's failure streak too.
    in_streak: bool,
}

impl Guard {
    pub fn new(store: Store, throttle: Throttle) -> Self {
        Self { store, throttle }
    }

    /// Reserves an attempt, or says why the factor is locked.
    pub async fn begin(
        &self,
        user_id: &UserId,
        ctx: &Context,
    ) -> Result<Result<GuardTicket, Lock>, ServiceError> {
        let row = self.store.get_mfa(user_id).await?;
        if row
            .as_ref()
            .is_some_and(|r| r.consecutive_failures >= MAX_CONSECUTIVE_FAILURES)
        {
            events::second_factor_locked(true);
            return Ok(Err(Lock::Permanent));
        }
        let reservation = match self
            .throttle
            .reserve(LimitKey::second_factor(user_id, ctx.ip))
            .await?
        {
            Ok(reservation) => reservation,
            Err(retry_after) => {
                events::second_factor_locked(false);
                return Ok(Err(Lock::Window(retry_after)));
            }
        };
        // The streak is reserved too, so a burst cannot run it past the cap.
        if row.is_some()
            && !self
                .store
                .reserve_mfa_attempt(user_id, MAX_CONSECUTIVE_FAILURES)
                .await?
        {
            return Ok(Err(Lock::Permanent));
        }
        Ok(Ok(GuardTicket {
            reservation,
            user_id: user_id.clone(),
            in_streak: row.is_some(),
        }))
    }

    /// The attempt was never checked (the server was too busy): the windows and the
    /// streak get it back.
    pub async fn give_back(&self, ticket: GuardTicket) -> Result<(), ServiceError> {
        self.throttle.give_back(ticket.reservation).await?;
        if ticket.in_streak {
            self.store.release_mfa_attempt(&ticket.user_id).await?;
        }
        Ok(())
    }

    /// The attempt was right: the streak and the user's window start over.
    pub async fn succeeded(&self, ticket: GuardTicket) -> Result<(), ServiceError> {
        self.throttle.succeeded(ticket.reservation).await?;
        self.store.reset_mfa_failures(&ticket.user_id).await?;
        Ok(())
    }

    /// An administrator reset the factor: the user's window starts over.
    pub async fn reset(&self, user_id: &UserId) -> Result<(), ServiceError> {
        self.throttle
            .clear(&LimitKey::SecondFactorUser(user_id.clone()))
            .await
    }
}

#[derive(Clone)]
pub struct MfaService {
    store: Store,
    sealer: Sealer,
    guard: Guard,
    access: Access,
    alerts: Alerts,
    issuer_name: String,
}

/// The facts the lost-phone rules ([`enrolment`]) decide on, from the user's 2-step
/// verification row and the roles they hold now.
pub async fn factors(
    roles: &Roles,
    user_id: &UserId,
    mfa: Option<&MfaRecord>,
) -> Result<Factors, ServiceError> {
    Ok(Factors {
        confirmed: mfa.is_some_and(|m| m.totp_confirmed),
        reset_at: mfa.and_then(|m| m.mfa_reset_at),
        administrator: !roles.roles_of(user_id).await?.is_empty(),
    })
}

/// What a sign-in setting the user's authenticator stands on, from the user as read.
fn sign_in_facts(
    read: &SignInRecord,
    auth_time: i64,
    code_live: Option<bool>,
    gate: Option<CodeGate>,
) -> enrolment::SignInFacts {
    enrolment::SignInFacts {
        user_active: read.user.is_active(),
        auth_time,
        not_before: read.sessions_not_before.map(|t| t.timestamp()),
        code_live,
        gate,
        factor_changed_at: factor_changed_at(read.mfa.as_ref()),
    }
}

/// When the user's authenticator was last set (Unix seconds), if known.
fn factor_changed_at(mfa: Option<&MfaRecord>) -> Option<i64> {
    mfa.and_then(|m| m.totp_confirmed_at).map(|t| t.timestamp())
}

pub fn random_salt() -> Vec<u8> {
    let mut salt = vec![0u8; SALT_BYTES];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut salt);
    salt
}

impl MfaService {
    pub fn new(
        store: Store,
        sealer: Sealer,
        guard: Guard,
        access: Access,
        alerts: Alerts,
        issuer_name: String,
    ) -> Self {
        Self {
            store,
            sealer,
            guard,
            access,
            alerts,
            issuer_name,
        }
    }

    /// Whether a sign-in in progress (password checked at `auth_time`, with the bypass code
    /// `code_id` if one was used) may still set the user's authenticator, by the facts as
    /// they are now ([`enrolment::sign_in_may_set_factor`]).
    pub async fn sign_in_may_set_factor(
        &self,
        user_id: &UserId,
        auth_time: i64,
        code_id: Option<&str>,
    ) -> Result<bool, ServiceError> {
        let Some(read) = self.store.sign_in_record(user_id).await? else {
            return Ok(false);
        };
        let code_live = match code_id {
            Some(id) => Some(
                self.store
                    .find_code(user_id, id)
                    .await?
                    .is_some_and(|c| c.revoked_at.is_none()),
            ),
            None => None,
        };
        let gate = self.gate_of(user_id, read.mfa.as_ref()).await?;
        Ok(enrolment::sign_in_may_set_factor(sign_in_facts(
            &read, auth_time, code_live, gate,
        )))
    }

    /// [`Self::sign_in_may_set_factor`] for the password step, on the facts it read after its
    /// password check (`read`, and the gate in front of set-up made from them).
    pub fn password_step_may_set_factor(
        read: &SignInRecord,
        auth_time: i64,
        gate: Option<CodeGate>,
    ) -> bool {
        enrolment::sign_in_may_set_factor(sign_in_facts(read, auth_time, None, gate))
    }

    /// Whether the user's authenticator was set after a sign-in's password check at
    /// `auth_time` ([`enrolment::factor_changed_since`]).
    pub async fn factor_changed_since(
        &self,
        user_id: &UserId,
        auth_time: i64,
    ) -> Result<bool, ServiceError> {
        let mfa = self.store.get_mfa(user_id).await?;
        Ok(enrolment::factor_changed_since(
            factor_changed_at(mfa.as_ref()),
            auth_time,
        ))
    }

    /// Whether setting up the user's authenticator now takes a bypass code, and why.
    pub async fn enrolment_gate(&self, user_id: &UserId) -> Result<Option<CodeGate>, ServiceError> {
        let mfa = self.store.get_mfa(user_id).await?;
        self.gate_of(user_id, mfa.as_ref()).await
    }

    /// [`Self::enrolment_gate`], for a 2-step verification row already read.
    pub async fn gate_of(
        &self,
        user_id: &UserId,
        mfa: Option<&MfaRecord>,
    ) -> Result<Option<CodeGate>, ServiceError> {
        let factors = factors(self.access.roles(), user_id, mfa).await?;
        let policy = super::policy::load(&self.store).await?;
        Ok(enrolment::enrolment_gate(
            factors,
            policy.reenrolment_requires_code,
        ))
    }

    /// Starts enrolment on the user's behalf (an administrator or provisioning client), as
    /// the access decision allows; the sign-in's own enrolment is [`Self::start_enrollment`].
    pub async fn enrol_for(
        &self,
        user_id: &UserId,
        ctx: &Context,
    ) -> Result<Enrollment, ServiceError> {
        self.access
            .check(ctx, Action::ManageAuthenticator, Some(user_id))
            .await?;
        self.start_enrollment(user_id, ctx).await
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Whether the user has 2-step verification, for a caller the access decision lets ask.
    pub async fn status_for(
        &self,
        user_id: &UserId,
        ctx: &Context,
    ) -> Result<TotpStatus, ServiceError> {
        self.access
            .check(ctx, Action::ReadStatus, Some(user_id))
            .await?;
        self.status(user_id).await
    }

    /// Whether the user has 2-step verification, for the services' own use.
    pub async fn status(&self, user_id: &UserId) -> Result<TotpStatus, ServiceError> {
        Ok(self
            .store
            .get_mfa(user_id)
            .await?
            .map_or(TotpStatus::None, |row| {
                TotpStatus::of(row.totp_secret.is_some(), row.totp_confirmed)
            }))
    }

    /// Starts (or restarts) TOTP enrolment for an active user without a confirmed factor.
    pub async fn start_enrollment(
        &self,
        user_id: &UserId,
        ctx: &Context,
    ) -> Result<Enrollment, ServiceError> {
        let user = self
            .store
            .get_user(user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        self.start_enrollment_of(&user, ctx).await
    }

    /// [`Self::start_enrollment`] for a user this request has just read (a sign-in's
    /// password step): the pending key is stored in one statement, with the user's 2-step
    /// verification row made if they had none.
    pub async fn start_enrollment_of(
        &self,
        user: &User,
        ctx: &Context,
    ) -> Result<Enrollment, ServiceError> {
        check_eligible(user.is_active(), false, false)
            .map_err(|why| ServiceError::invalid(why.message(&user.attributes.user_name)))?;
        let secret = totp::generate_secret();
        if !self
            .store
            .set_pending_totp(&user.id, self.sealer.seal(&secret)?, random_salt())
            .await?
        {
            return Err(ServiceError::Conflict(
                "the user already has a confirmed TOTP factor; reset it first (DELETE …/totp)"
                    .into(),
            ));
        }
        let enrollment = self.key_for(&secret, &user.attributes.user_name)?;
        audit::record(
            &self.store,
            ctx,
            &user.id,
            None,
            AuditEvent::TotpEnrollmentStarted,
            None,
            Utc::now(),
        )
        .await?;
        Ok(enrollment)
    }

    /// The key and the `otpauth://` link an authenticator app takes for `secret`.
    fn key_for(&self, secret: &[u8], user_name: &str) -> Result<Enrollment, ServiceError> {
        let otpauth_uri = totp::otpauth_uri(secret, &self.issuer_name, user_name)
            .map_err(|e| ServiceError::internal("otpauth URI", e))?;
        Ok(Enrollment {
            secret_base32: totp::base32(secret),
            otpauth_uri,
        })
    }

    /// Confirms a pending factor with a current code; a refused code is an error whose
    /// detail says why (the API's form of [`Self::confirm_code`]).
    pub async fn confirm(
        &self,
        user_id: &UserId,
        code: &str,
        ctx: &Context,
    ) -> Result<(), ServiceError> {
        self.access
            .check(ctx, Action::ManageAuthenticator, Some(user_id))
            .await?;
        match self.confirm_code(user_id, code, ctx).await? {
            TotpOutcome::Accepted => Ok(()),
            TotpOutcome::Locked(_) => Err(ServiceError::invalid(
                "too many wrong codes; wait 15 minutes before trying again",
            )),
            TotpOutcome::Wrong | TotpOutcome::Replayed => Err(ServiceError::invalid(
                "the code does not match; enter the current code from the authenticator app (check its clock)",
            )),
        }
    }

    /// Checks a code against the pending factor and confirms the factor when it is right.
    pub async fn confirm_code(
        &self,
        user_id: &UserId,
        code: &str,
        ctx: &Context,
    ) -> Result<TotpOutcome, ServiceError> {
        let row = self
            .store
            .get_mfa(user_id)
            .await?
            .ok_or(ServiceError::NotFound("user or TOTP enrolment"))?;
        if row.totp_confirmed {
            return Err(ServiceError::Conflict(
                "the TOTP factor is already confirmed".into(),
            ));
        }
        let sealed = row.totp_secret.ok_or_else(|| {
            ServiceError::invalid("no TOTP enrolment is pending; start one first (POST …/totp)")
        })?;
        let outcome = self.check_code(user_id, &sealed, code, true, ctx).await?;
        if outcome == TotpOutcome::Accepted {
            audit::record(
                &self.store,
                ctx,
                user_id,
                None,
                AuditEvent::TotpEnrolled,
                None,
                Utc::now(),
            )
            .await?;
        }
        Ok(outcome)
    }

    /// Checks a TOTP code at sign-in.
    pub async fn verify(
        &self,
        user_id: &UserId,
        code: &str,
        ctx: &Context,
    ) -> Result<TotpOutcome, ServiceError> {
        let Some(row) = self.store.get_mfa(user_id).await? else {
            return Ok(TotpOutcome::Wrong);
        };
        match row.totp_secret {
            Some(sealed) if row.totp_confirmed => {
                self.check_code(user_id, &sealed, code, false, ctx).await
            }
            _ => Ok(TotpOutcome::Wrong),
        }
    }

    async fn check_code(
        &self,
        user_id: &UserId,
        sealed: &str,
        code: &str,
        confirming: bool,
        ctx: &Context,
    ) -> Result<TotpOutcome, ServiceError> {
        let ticket = match self.guard.begin(user_id, ctx).await? {
            Ok(ticket) => ticket,
            Err(lock) => return Ok(TotpOutcome::Locked(lock)),
        };
        let secret = self.sealer.open(sealed)?;
        let now = Utc::now();
        let outcome = match totp::check(&secret, code, now.timestamp().max(0) as u64) {
            None => TotpOutcome::Wrong,
            Some(step) => {
                if self
                    .store
                    .accept_totp_step(user_id, sealed, step as i64, confirming)
                    .await?
                {
                    TotpOutcome::Accepted
                } else {
                    TotpOutcome::Replayed
                }
            }
        };
        if outcome == TotpOutcome::Accepted {
            self.guard.succeeded(ticket).await?;
        } else {
            let detail = if outcome == TotpOutcome::Replayed {
                "replayed code"
            } else {
                "wrong code"
            };
            audit::record(
                &self.store,
                ctx,
                user_id,
                None,
                AuditEvent::TotpFailed,
                Some(detail.into()),
                now,
            )
            .await?;
        }
        Ok(outcome)
    }

    /// Removes the TOTP factor and revokes every bypass code of the user.
    pub async fn reset(&self, user_id: &UserId, ctx: &Context) -> Result<(), ServiceError> {
        self.access
            .check(ctx, Action::ManageAuthenticator, Some(user_id))
            .await?;
        if self.store.get_user(user_id).await?.is_none() {
            return Err(ServiceError::NotFound("user"));
        }
        // The reset is remembered on the row, which a user who never enrolled lacks.
        self.store.ensure_mfa(user_id, random_salt()).await?;
        let now = Utc::now();
        let revoked = self
            .store
            .reset_mfa(user_id, &ctx.actor_label(), now)
            .await?;
        self.guard.reset(user_id).await?;
        audit::record(
            &self.store,
            ctx,
            user_id,
            None,
            AuditEvent::MfaReset,
            None,
            now,
        )
        .await?;
        for code_id in revoked {
            audit::record(
                &self.store,
                ctx,
                user_id,
                Some(&code_id),
                AuditEvent::Revoked,
                Some("2-step verification reset".into()),
                now,
            )
            .await?;
        }
        self.alerts.send(user_id, Alert::MfaReset, now, ctx).await
    }
}
