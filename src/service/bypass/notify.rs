//! Emailing a code: the plaintext typed back by an API caller (an attempt reserved per actor
//! and per code before any Argon2, mismatches audited), or held sealed by the console.

use chrono::Utc;
use subtle::ConstantTimeEq;

use super::{BypassCodeService, CodeView, HeldCode, view};
use crate::domain::access::Action;
use crate::domain::audit::AuditEvent;
use crate::domain::bypass::{self, CodeStatus, StoredCode};
use crate::domain::ids::UserId;
use crate::domain::limits::LimitKey;
use crate::domain::repo::{AuditRepo, MfaRepo, UserRepo};
use crate::domain::secret::Secret;
use crate::mail::BypassCodeMail;
use crate::service::context::Context;
use crate::service::{ServiceError, audit, events};

impl BypassCodeService {
    /// Emails a code the caller still holds, after checking it is this code. Nothing is kept.
    /// Each comparison is an attempt reserved, before any Argon2, on the actor and on the
    /// code ([`LimitKey::code_holder`]), and a mismatch is audited: this is no guessing
    /// oracle, and no way to queue Argon2 work ahead of the sign-ins.
    pub async fn notify(
        &self,
        user_id: &UserId,
        code_id: &str,
        typed: &str,
        ctx: &Context,
    ) -> Result<CodeView, ServiceError> {
        self.access.check(ctx, Action::Email, Some(user_id)).await?;
        let row = self.sendable(user_id, code_id).await?;
        let reservation = match self
            .throttle
            .reserve(LimitKey::code_holder(&ctx.actor_label(), code_id))
            .await?
        {
            Ok(reservation) => reservation,
            Err(retry_after) => {
                return Err(ServiceError::TooMany(
                    "too many wrong codes for this bypass code; try again later".into(),
                    retry_after,
                ));
            }
        };
        let mismatch = || ServiceError::invalid("\"code\" does not match this bypass code");
        let matched = match bypass::normalize_code(typed) {
            None => None,
            Some(digits) => match self.store.get_mfa(user_id).await? {
                None => None,
                Some(mfa) => match self.hash(digits.clone(), mfa.bypass_salt).await {
                    // Not checked at all: the attempt is given back.
                    Err(ServiceError::Busy(wait)) => {
                        self.throttle.give_back(reservation).await?;
                        return Err(ServiceError::Busy(wait));
                    }
                    hash => bool::from(hash?.as_slice().ct_eq(&row.code_hash)).then_some(digits),
                },
            },
        };
        let Some(digits) = matched else {
            // The reservation stays counted.
            drop(reservation);
            audit::record(
                &self.store,
                ctx,
                user_id,
                Some(code_id),
                AuditEvent::EmailRefused,
                Some("the code sent to be emailed did not match".into()),
                Utc::now(),
            )
            .await?;
            return Err(mismatch());
        };
        self.throttle.succeeded(reservation).await?;
        self.send_and_view(row, &Secret::new(bypass::display_code(&digits)), ctx)
            .await
    }

    /// Emails a code the console still holds sealed from its generation: nothing to compare.
    pub async fn notify_held(
        &self,
        user_id: &UserId,
        code_id: &str,
        held: &HeldCode,
        ctx: &Context,
    ) -> Result<CodeView, ServiceError> {
        self.access.check(ctx, Action::Email, Some(user_id)).await?;
        let row = self.sendable(user_id, code_id).await?;
        self.send_and_view(row, &held.0, ctx).await
    }

    /// The code, if it is active or scheduled (only those are sent; a request waiting for
    /// approval has no code).
    async fn sendable(&self, user_id: &UserId, code_id: &str) -> Result<StoredCode, ServiceError> {
        let row = self.find(user_id, code_id).await?;
        let status = row.state().status(Utc::now());
        if !matches!(status, CodeStatus::Active | CodeStatus::Scheduled) {
            return Err(ServiceError::invalid(format!(
                "the bypass code is {}; only active and scheduled codes can be sent",
                status.as_str()
            )));
        }
        Ok(row)
    }

    async fn send_and_view(
        &self,
        row: StoredCode,
        code: &Secret,
        ctx: &Context,
    ) -> Result<CodeView, ServiceError> {
        let user = self
            .store
            .get_user(&row.user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        self.email(&user.attributes, &row, code, ctx).await?;
        let events = self.store.code_events(&row.id).await?;
        Ok(view(row, &events, Utc::now()))
    }

    /// Emails a code to the user's primary (or only) address. A failed send is recorded and
    /// reported, never an error: the code exists either way. Several addresses without a
    /// primary one are an error, before anything is sent.
    pub(super) async fn email(
        &self,
        user: &crate::domain::scim::user::UserAttributes,
        row: &StoredCode,
        code: &Secret,
        ctx: &Context,
    ) -> Result<(), ServiceError> {
        let user_id = row.user_id.clone();
        let address = bypass::email_recipient(&user.emails)
            .map_err(ServiceError::invalid)?
            .map(str::to_owned);
        let result = match &address {
            None => Err("the user has no email address".to_owned()),
            Some(to) => self
                .mailer
                .send_bypass_code(&BypassCodeMail {
                    to,
                    user_name: &user.user_name,
                    code,
                    expires_at: row.expires_at,
                    max_uses: row.max_uses,
                    service: &self.service_name,
                    starts_at: row.starts_at.filter(|at| *at > Utc::now()),
                    reason: row.reason.as_deref(),
                })
                .await
                .map_err(|e| e.to_string()),
        };
        events::bypass_code_emailed(result.is_ok());
        let (event, detail) = match result {
            Ok(()) => (AuditEvent::Emailed, address.map(|a| format!("to {a}"))),
            Err(reason) => {
                tracing::warn!(code_id = %row.id, reason = %reason, "bypass code email failed");
                (AuditEvent::EmailFailed, Some(reason))
            }
        };
        audit::record(
            &self.store,
            ctx,
            &user_id,
            Some(&row.id),
            event,
            detail,
            Utc::now(),
        )
        .await
    }
}
