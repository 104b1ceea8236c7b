//! Checking a typed code at sign-in and using it up, exactly as often as it allows.

use chrono::Utc;

use super::{BypassCodeService, USE_COUNTER_TTL};
use crate::domain::audit::AuditEvent;
pub use crate::domain::bypass::Rejection;
use crate::domain::bypass::{self, CodeStatus};
use crate::domain::enrolment::CodeUse;
use crate::domain::ids::UserId;
use crate::domain::repo::{BypassCodeRepo, MfaRepo};
use crate::service::alerts::Alert;
use crate::service::context::Context;
use crate::service::{ServiceError, audit, events, passwords};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyOutcome {
    Accepted {
        code_id: String,
        remaining: Option<i64>,
        /// For a code of a printable set: how many of the set still work.
        saved_left: Option<u64>,
    },
    Rejected(Rejection),
}

/// One attempt's outcome, and the code a refused attempt named (for the audit trail).
struct Attempt {
    outcome: VerifyOutcome,
    code_id: Option<String>,
}

impl Attempt {
    fn refused(code_id: Option<String>, reason: Rejection) -> Self {
        Self {
            outcome: VerifyOutcome::Rejected(reason),
            code_id,
        }
    }
}

impl BypassCodeService {
    /// Checks a typed code at sign-in and, if it is good, uses it up by one. Exactly as many
    /// uses succeed as the code allows, across instances: Redis takes the use atomically
    /// (seeded from the database), and the database records it with a conditional update.
    /// `at` says where the code was typed, and so which purposes it accepts.
    pub async fn verify_and_consume(
        &self,
        user_id: &UserId,
        typed: &str,
        at: CodeUse,
        ctx: &Context,
    ) -> Result<VerifyOutcome, ServiceError> {
        // Refused before anything is reserved when the Argon2 queue is full.
        passwords::check_admission()?;
        let ticket = match self.guard.begin(user_id, ctx).await? {
            Ok(ticket) => ticket,
            Err(lock) => return Ok(VerifyOutcome::Rejected(Rejection::Locked(lock))),
        };
        let attempt = match self.try_consume(user_id, typed, at).await {
            // Not checked at all: the attempt is given back, nothing was used.
            Err(ServiceError::Busy(wait)) => {
                self.guard.give_back(ticket).await?;
                return Err(ServiceError::Busy(wait));
            }
            other => other?,
        };
        let now = Utc::now();
        match &attempt.outcome {
            VerifyOutcome::Accepted {
                code_id,
                remaining,
                saved_left,
            } => {
                events::bypass_code_used();
                self.guard.succeeded(ticket).await?;
                let policy = self.policy().await?;
                if policy.notify_user_on_use {
                    let alert = Alert::CodeUsed {
                        application: ctx
                            .client_id
                            .as_ref()
                            .map_or("this service".to_owned(), |c| c.as_str().to_owned()),
                        remaining: *remaining,
                        saved_left: *saved_left,
                    };
                    // The sign-in does not wait for the mail server.
                    self.alerts.send_later(user_id, alert, now, ctx);
                }
                let detail = remaining.map(|r| format!("{r} use(s) left"));
                audit::record(
                    &self.store,
                    ctx,
                    user_id,
                    Some(code_id),
                    AuditEvent::Used,
                    detail,
                    now,
                )
                .await?;
            }
            VerifyOutcome::Rejected(rejection) => {
                if rejection.is_right_code() {
                    // The code is the user's and live, refused only for when or where it
                    // was typed: that proves possession, it is no guess.
                    self.guard.succeeded(ticket).await?;
                } else {
                    drop(ticket);
                }
                events::bypass_code_failed(rejection.as_str());
                let reason = rejection.as_str().to_owned();
                let code_id = attempt.code_id.as_deref();
                audit::record(
                    &self.store,
                    ctx,
                    user_id,
                    code_id,
                    AuditEvent::Failed,
                    Some(reason),
                    now,
                )
                .await?;
            }
        }
        Ok(attempt.outcome)
    }

    async fn try_consume(
        &self,
        user_id: &UserId,
        typed: &str,
        at: CodeUse,
    ) -> Result<Attempt, ServiceError> {
        let Some(digits) = bypass::normalize_code(typed) else {
            return Ok(Attempt::refused(None, Rejection::Wrong));
        };
        let Some(mfa) = self.store.get_mfa(user_id).await? else {
            return Ok(Attempt::refused(None, Rejection::Wrong));
        };
        let hash = self.hash(digits, mfa.bypass_salt).await?;
        let Some(row) = self.store.find_code_by_hash(user_id, &hash).await? else {
            return Ok(Attempt::refused(None, Rejection::Wrong));
        };
        let now = Utc::now();
        let status = row.state().status(now);
        if status != CodeStatus::Active {
            return Ok(Attempt::refused(
                Some(row.id),
                Rejection::for_status(status, row.starts_at),
            ));
        }
        // Said only of a live code: a revoked one tells nothing of what it was for.
        if !at.accepts(row.purpose) {
            return Ok(Attempt::refused(Some(row.id), Rejection::EnrolmentOnly));
        }
        let mut remaining = None;
        if let Some(max) = row.max_uses {
            let taken = self
                .counters
                .acquire_use(
                    &format!("bypass:{}", row.id),
                    row.use_count.max(0) as u64,
                    max as u64,
                    USE_COUNTER_TTL,
                )
                .await?;
            match taken {
                Some(count) => remaining = Some((max - count as i64).max(0)),
                None => return Ok(Attempt::refused(Some(row.id), Rejection::Exhausted)),
            }
        }
        let consumed = match self.store.consume_code(&row.id, now).await {
            Ok(consumed) => consumed,
            Err(e) => {
                // The database did not record the use: hand back the one Redis counted, so
                // the code's last use is not lost until the counter expires.
                if row.max_uses.is_some() {
                    let _ = self
                        .counters
                        .release_use(&format!("bypass:{}", row.id))
                        .await;
                }
                return Err(e.into());
            }
        };
        if !consumed {
            // Changed since we read it (used up, revoked or expired meanwhile).
            let fresh = self.store.find_code(user_id, &row.id).await?;
            let status = fresh
                .as_ref()
                .map_or(CodeStatus::Revoked, |r| r.state().status(now));
            return Ok(Attempt::refused(
                Some(row.id),
                Rejection::for_status(status, row.starts_at),
            ));
        }
        let saved_left = if row.is_saved() {
            Some(self.store.saved_codes_left(user_id, now).await?)
        } else {
            None
        };
        Ok(Attempt {
            outcome: VerifyOutcome::Accepted {
                code_id: row.id,
                remaining,
                saved_left,
            },
            code_id: None,
        })
    }
}
