//! Generating a code: the request checked against the policy and the user, then either the
//! code (shown once, perhaps emailed, the user alerted) or a request that waits for a
//! second person.

use chrono::Utc;

use super::{BypassCodeService, Created, GENERATION_ATTEMPTS, Issued, too_many, view};
use crate::domain::access::Action;
use crate::domain::audit::AuditEvent;
use crate::domain::bypass::approval::{self as approvals, approval_deadline};
use crate::domain::bypass::{
    self, Approval, CodeRequest, GenerationRefused, NewCode, Policy, Purpose, StoredCode,
    check_eligible, check_generation_allowed,
};
use crate::domain::enrolment::{check_purpose, enrolment_gate};
use crate::domain::ids::UserId;
use crate::domain::repo::{AuditRepo, BypassCodeRepo, InsertOutcome, MfaRepo, UserRepo};
use crate::domain::secret::Secret;
use crate::service::alerts::Alert;
use crate::service::context::Context;
use crate::service::mfa::{factors, random_salt};
use crate::service::{ServiceError, audit, events};

/// A request in the audit trail's words: purpose, start, expiry, uses, reason.
pub(super) fn describe_request(request: &CodeRequest) -> String {
    let mut parts = Vec::new();
    if request.purpose == Purpose::Enrolment {
        parts.push("for enrolment only".to_owned());
    }
    if let Some(at) = request.starts_at {
        parts.push(format!("starts {}", at.to_rfc3339()));
    }
    parts.push(format!(
        "expires {}",
        request
            .expires_at
            .map_or("never".to_owned(), |t| t.to_rfc3339())
    ));
    parts.push(format!(
        "{} use(s)",
        request
            .max_uses
            .map_or("unlimited".to_owned(), |n| n.to_string())
    ));
    if let Some(reason) = &request.reason {
        parts.push(format!("reason: {reason}"));
    }
    parts.join(", ")
}

impl BypassCodeService {
    /// Generates a code for an active user enrolled in 2-step verification, under the
    /// help-desk or the self-service rules as the access decision says; or, where the policy
    /// holds it for a second person, records the request and makes no code.
    pub async fn create(
        &self,
        user_id: &UserId,
        body: &serde_json::Value,
        ctx: &Context,
    ) -> Result<Issued, ServiceError> {
        let origin = self
            .access
            .check(ctx, Action::Generate, Some(user_id))
            .await?
            .origin();
        let user = self
            .store
            .get_user(user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let policy = self.policy().await?;
        if let Err(GenerationRefused::Disabled(origin)) = check_generation_allowed(&policy, origin)
        {
            return Err(ServiceError::Forbidden(format!(
                "{} generation of bypass codes is disabled by the policy (BypassCodeSettings)",
                origin.as_str()
            )));
        }
        let now = Utc::now();
        let request: CodeRequest = bypass::parse_create(body, &policy, origin, now)?;
        let name = &user.attributes.user_name;
        check_eligible(user.is_active(), false, false)
            .map_err(|why| ServiceError::invalid(why.message(name)))?;
        let mfa = self.store.get_mfa(user_id).await?;
        let factors = factors(self.access.roles(), user_id, mfa.as_ref()).await?;
        let gate = enrolment_gate(factors, policy.reenrolment_requires_code);
        check_purpose(request.purpose, origin, factors, gate)
            .map_err(|why| ServiceError::invalid(why.message(name)))?;
        let pending = approvals::needs_approval(
            policy.approval_required,
            origin,
            &request,
            factors.administrator,
        );
        // Refused before a code (or a request) exists, not after. An approved code goes to
        // the user by email, so a request needs an address.
        let mut send_to = None;
        if request.notify_email || pending {
            let to =
                bypass::email_recipient(&user.attributes.emails).map_err(ServiceError::invalid)?;
            if to.is_none() && pending {
                return Err(ServiceError::invalid(format!(
                    "this code needs a second person's approval (approvalRequired), and an approved code is emailed to the user: user \"{name}\" has no email address"
                )));
            }
            send_to = to.filter(|_| pending).map(str::to_owned);
        }
        // An administrator's first code may come before any 2-step verification row: its
        // salt hashes the code.
        let mfa = match mfa {
            Some(mfa) => mfa,
            None => self.store.ensure_mfa(user_id, random_salt()).await?,
        };
        // Refused before any Argon2 work: a full user costs the caller nothing of ours.
        let active = self.store.count_active_codes(user_id, now).await?;
        if active >= policy.max_active as u64 {
            return Err(too_many(name, policy.max_active));
        }
        let new_code = |code_hash: Vec<u8>| NewCode {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.clone(),
            code_hash,
            origin,
            created_by: ctx.actor_label(),
            client_id: ctx.client_id.as_ref().map(|c| c.as_str().to_owned()),
            expires_at: request.expires_at,
            max_uses: request.max_uses,
            created_at: now,
            purpose: request.purpose,
            reason: request.reason.clone(),
            starts_at: request.starts_at,
            approval: None,
            lifetime_minutes: request.lifetime_minutes,
            send_to: None,
        };
        if pending {
            // No code yet: a random placeholder no typed code can match, live until the
            // approval window closes.
            let request_row = NewCode {
                expires_at: Some(approval_deadline(now)),
                approval: Some(Approval::Pending),
                send_to: send_to.clone(),
                ..new_code(rand::random::<[u8; 32]>().to_vec())
            };
            return self
                .request_approval(request_row, &request, &policy, name, ctx)
                .await;
        }
        let (plaintext, row) = self
            .insert_fresh(&mfa.bypass_salt, &policy, name, |hash| {
                new_code(hash.to_vec())
            })
            .await?;
        audit::record(
            &self.store,
            ctx,
            user_id,
            Some(&row.id),
            AuditEvent::Generated,
            Some(describe_request(&request)),
            now,
        )
        .await?;
        events::bypass_code_generated(origin.as_str());
        let code = Secret::new(bypass::display_code(&plaintext));
        if request.notify_email {
            // The mail with the code is the alert.
            self.email(&user.attributes, &row, &code, ctx).await?;
        } else if policy.notify_user_on_issue
            && let Err(e) = self.alert_issued(&row, ctx).await
        {
            // The code exists and is answered either way; the alert is best-effort.
            tracing::warn!(code_id = %row.id, error = %e, "the issue alert could not be sent");
        }
        let events = self.store.code_events(&row.id).await?;
        Ok(Issued::Code(Created {
            code,
            view: view(row, &events, now),
        }))
    }

    /// Generates a code not yet among the user's and stores the row `row` makes of its hash
    /// (a new code on a hash collision, a few times).
    async fn insert_fresh(
        &self,
        salt: &[u8],
        policy: &Policy,
        name: &str,
        row: impl Fn(&[u8; 32]) -> NewCode,
    ) -> Result<(String, StoredCode), ServiceError> {
        for _ in 0..GENERATION_ATTEMPTS {
            let plaintext = bypass::generate_code(&mut rand::rng(), policy.code_length);
            let hash = self.hash(plaintext.clone(), salt.to_vec()).await?;
            let now = Utc::now();
            match self
                .store
                .insert_code(row(&hash), policy.max_active as u64, now)
                .await?
            {
                InsertOutcome::Inserted(row) => return Ok((plaintext, *row)),
                InsertOutcome::TooManyActive => return Err(too_many(name, policy.max_active)),
                InsertOutcome::Collision => continue,
            }
        }
        Err(ServiceError::failed("generating a unique code"))
    }

    /// Tells the user a code was generated for them (who, why, how long, how often).
    async fn alert_issued(&self, row: &StoredCode, ctx: &Context) -> Result<(), ServiceError> {
        let alert = Alert::CodeIssued {
            by: self.alerts.describe(ctx, &row.user_id).await?,
            reason: row.reason.clone(),
            starts_at: row.starts_at,
            expires_at: row.expires_at,
            max_uses: row.max_uses,
        };
        self.alerts
            .send(&row.user_id, alert, row.created_at, ctx)
            .await
    }
}
