//! 2-step verification: TOTP enrolment and checks, and the brute-force guard that every
//! second-factor attempt (TOTP or bypass code) goes through.

use std::time::Duration;

use chrono::Utc;

use super::context::Context;
use super::sealing::Sealer;
use super::{ServiceError, audit};
use crate::counters::SharedCounters;
use crate::domain::ids::UserId;
use crate::domain::secret::Secret;
use crate::domain::totp;
pub use crate::domain::totp::TotpStatus;
use crate::store::Store;

/// Failures per user within [`FAILURE_WINDOW`] that lock the second factor for the window.
pub const MAX_FAILURES_PER_WINDOW: u64 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures from one address within the window; higher, so one office behind NAT still works.
pub const MAX_FAILURES_PER_IP: u64 = 50;
/// Consecutive failures after which only an administrator's reset helps (NIST SP 800-63B §5.2.2).
pub const MAX_CONSECUTIVE_FAILURES: i32 = 100;
const SALT_BYTES: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// Try again after this long.
    Window(Duration),
    /// Too many consecutive failures: an administrator must reset 2-step verification.
    Permanent,
}

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

/// Counts failed second-factor attempts per user and per address.
#[derive(Clone)]
pub struct Guard {
    store: Store,
    counters: SharedCounters,
}

fn user_key(user_id: &UserId) -> String {
    format!("mfa-fail:user:{user_id}")
}

fn ip_key(ctx: &Context) -> Option<String> {
    ctx.ip.map(|ip| format!("mfa-fail:ip:{ip}"))
}

fn counter_error(e: crate::counters::CounterError) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

impl Guard {
    pub fn new(store: Store, counters: SharedCounters) -> Self {
        Self { store, counters }
    }

    /// Whether the user's second factor is locked for this request.
    pub async fn check(
        &self,
        user_id: &UserId,
        ctx: &Context,
    ) -> Result<Option<Lock>, ServiceError> {
        if let Some(row) = self.store.get_mfa(user_id).await?
            && row.consecutive_failures >= MAX_CONSECUTIVE_FAILURES
        {
            return Ok(Some(Lock::Permanent));
        }
        let (count, left) = self
            .counters
            .peek(&user_key(user_id))
            .await
            .map_err(counter_error)?;
        if count >= MAX_FAILURES_PER_WINDOW {
            return Ok(Some(Lock::Window(left)));
        }
        if let Some(key) = ip_key(ctx) {
            let (count, left) = self.counters.peek(&key).await.map_err(counter_error)?;
            if count >= MAX_FAILURES_PER_IP {
                return Ok(Some(Lock::Window(left)));
            }
        }
        Ok(None)
    }

    pub async fn failed(&self, user_id: &UserId, ctx: &Context) -> Result<(), ServiceError> {
        self.counters
            .hit(&user_key(user_id), FAILURE_WINDOW)
            .await
            .map_err(counter_error)?;
        if let Some(key) = ip_key(ctx) {
            self.counters
                .hit(&key, FAILURE_WINDOW)
                .await
                .map_err(counter_error)?;
        }
        self.store.add_mfa_failure(user_id).await?;
        Ok(())
    }

    pub async fn succeeded(&self, user_id: &UserId) -> Result<(), ServiceError> {
        self.counters
            .clear(&user_key(user_id))
            .await
            .map_err(counter_error)?;
        self.store.reset_mfa_failures(user_id).await?;
        Ok(())
    }
}

#[derive(Clone)]
pub struct MfaService {
    store: Store,
    sealer: Sealer,
    guard: Guard,
    issuer_name: String,
}

pub fn random_salt() -> Vec<u8> {
    let mut salt = vec![0u8; SALT_BYTES];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut salt);
    salt
}

impl MfaService {
    pub fn new(store: Store, sealer: Sealer, guard: Guard, issuer_name: String) -> Self {
        Self {
            store,
            sealer,
            guard,
            issuer_name,
        }
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

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
        if user.attributes.active == Some(false) {
            return Err(ServiceError::invalid(format!(
                "user \"{}\" is inactive; activate the user before enrolling 2-step verification",
                user.attributes.user_name
            )));
        }
        self.store.ensure_mfa(user_id, random_salt()).await?;
        let secret = totp::generate_secret();
        if !self
            .store
            .set_pending_totp(user_id, self.sealer.seal(&secret)?)
            .await?
        {
            return Err(ServiceError::Conflict(
                "the user already has a confirmed TOTP factor; reset it first (DELETE …/totp)"
                    .into(),
            ));
        }
        let otpauth_uri = totp::otpauth_uri(&secret, &self.issuer_name, &user.attributes.user_name)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        audit::record(
            &self.store,
            ctx,
            user_id,
            None,
            "totp_enrollment_started",
            None,
            Utc::now(),
        )
        .await?;
        Ok(Enrollment {
            secret_base32: totp::base32(&secret),
            otpauth_uri,
        })
    }

    /// Confirms a pending factor with a current code.
    pub async fn confirm(
        &self,
        user_id: &UserId,
        code: &str,
        ctx: &Context,
    ) -> Result<(), ServiceError> {
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
        match self.check_code(user_id, &sealed, code, true, ctx).await? {
            TotpOutcome::Accepted => {
                audit::record(
                    &self.store,
                    ctx,
                    user_id,
                    None,
                    "totp_enrolled",
                    None,
                    Utc::now(),
                )
                .await?;
                Ok(())
            }
            TotpOutcome::Locked(_) => Err(ServiceError::invalid(
                "too many wrong codes; wait 15 minutes before trying again",
            )),
            TotpOutcome::Wrong | TotpOutcome::Replayed => Err(ServiceError::invalid(
                "the code does not match; enter the current code from the authenticator app (check its clock)",
            )),
        }
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
        if let Some(lock) = self.guard.check(user_id, ctx).await? {
            return Ok(TotpOutcome::Locked(lock));
        }
        let secret = self.sealer.open(sealed)?;
        let now = Utc::now();
        let outcome = match totp::check(&secret, code, now.timestamp().max(0) as u64) {
            None => TotpOutcome::Wrong,
            Some(step) => {
                if self
                    .store
                    .accept_totp_step(user_id, step as i64, confirming)
                    .await?
                {
                    TotpOutcome::Accepted
                } else {
                    TotpOutcome::Replayed
                }
            }
        };
        if outcome == TotpOutcome::Accepted {
            self.guard.succeeded(user_id).await?;
        } else {
            self.guard.failed(user_id, ctx).await?;
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
                "totp_failed",
                Some(detail.into()),
                now,
            )
            .await?;
        }
        Ok(outcome)
    }

    /// Removes the TOTP factor and revokes every bypass code of the user.
    pub async fn reset(&self, user_id: &UserId, ctx: &Context) -> Result<(), ServiceError> {
        if self.store.get_user(user_id).await?.is_none() {
            return Err(ServiceError::NotFound("user"));
        }
        let now = Utc::now();
        let revoked = self
            .store
            .reset_mfa(user_id, &ctx.actor_label(), now)
            .await?;
        self.guard.succeeded(user_id).await?;
        audit::record(&self.store, ctx, user_id, None, "mfa_reset", None, now).await?;
        for code_id in revoked {
            audit::record(
                &self.store,
                ctx,
                user_id,
                Some(&code_id),
                "revoked",
                Some("2-step verification reset".into()),
                now,
            )
            .await?;
        }
        Ok(())
    }
}
