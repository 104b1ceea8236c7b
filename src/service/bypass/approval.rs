//! Two-person approval: a request waits, with no code, until someone else with
//! `bypass_codes:approve` approves it; only then is the code made, and it goes to the user
//! by email, so no administrator ever sees it.

use std::collections::HashMap;

use chrono::Utc;

use super::create::describe_request;
use super::{BypassCodeService, CodeView, Issued, view};
use crate::domain::access::Action;
use crate::domain::audit::AuditEvent;
use crate::domain::bypass::approval::{self, Cancel, DecisionRefused};
use crate::domain::bypass::{self, CodeRequest, NewCode, Policy, StoredCode, check_eligible};
use crate::domain::enrolment::{check_purpose, enrolment_gate};
use crate::domain::ids::UserId;
use crate::domain::repo::{AuditRepo, BypassCodeRepo, InsertOutcome, MfaRepo, UserRepo};
use crate::domain::secret::Secret;
use crate::service::context::Context;
use crate::service::mfa::factors;
use crate::service::{ServiceError, audit};
use crate::store::bypass::ApproveOutcome;

/// An open request with the name of the user it is for (the approvals page).
pub struct OpenRequest {
    pub user_name: String,
    /// Who asked, in words: a person's user name, or `the application "<id>"`.
    pub requested_by: String,
    pub view: CodeView,
}

fn refused(why: DecisionRefused) -> ServiceError {
    match why {
        DecisionRefused::OwnRequest => ServiceError::Forbidden(why.message()),
        DecisionRefused::NotPending(_)
        | DecisionRefused::Lapsed
        | DecisionRefused::AddressChanged
        | DecisionRefused::NoLongerAllowed(_) => ServiceError::Conflict(why.message()),
    }
}

impl BypassCodeService {
    /// Records a request that waits for approval (`row` has its placeholder hash).
    pub(super) async fn request_approval(
        &self,
        row: NewCode,
        request: &CodeRequest,
        policy: &Policy,
        name: &str,
        ctx: &Context,
    ) -> Result<Issued, ServiceError> {
        let now = row.created_at;
        let user_id = row.user_id.clone();
        let row = match self
            .store
            .insert_code(row, policy.max_active as u64, now)
            .await?
        {
            InsertOutcome::Inserted(row) => *row,
            InsertOutcome::TooManyActive => {
                return Err(super::too_many(name, policy.max_active));
            }
            InsertOutcome::Collision => return Err(ServiceError::failed("recording the request")),
        };
        let mut detail = describe_request(request);
        if request.lifetime_minutes.is_some() {
            detail.push_str(" (the expiry counts from the approval)");
        }
        audit::record(
            &self.store,
            ctx,
            &user_id,
            Some(&row.id),
            AuditEvent::ApprovalRequested,
            Some(detail),
            now,
        )
        .await?;
        Ok(Issued::Pending(view(row, &[], now)))
    }

    /// Approves a request: the caller must hold `bypass_codes:approve` and not be its
    /// requester. The user must still be able to have the code; it is made now and emailed
    /// to them. The answer never carries the code.
    pub async fn approve(
        &self,
        user_id: &UserId,
        code_id: &str,
        ctx: &Context,
    ) -> Result<CodeView, ServiceError> {
        self.access
            .check(ctx, Action::Approve, Some(user_id))
            .await?;
        let request = self.find(user_id, code_id).await?;
        let now = Utc::now();
        approval::check_approval(&request, &ctx.actor_label(), now).map_err(refused)?;
        let user = self
            .store
            .get_user(user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let name = &user.attributes.user_name;
        // Eligibility again: the user may have been deactivated, reset or enrolled since.
        check_eligible(user.is_active(), false, false)
            .map_err(|why| ServiceError::invalid(why.message(name)))?;
        let policy = self.policy().await?;
        let mfa = self.store.get_mfa(user_id).await?;
        let factors = factors(self.access.roles(), user_id, mfa.as_ref()).await?;
        let gate = enrolment_gate(factors, policy.reenrolment_requires_code);
        let origin = bypass::Origin::parse(&request.origin).unwrap_or(bypass::Origin::HelpDesk);
        check_purpose(request.purpose, origin, factors, gate)
            .map_err(|why| ServiceError::invalid(why.message(name)))?;
        let recipient =
            bypass::email_recipient(&user.attributes.emails).map_err(ServiceError::invalid)?;
        approval::check_still_valid(&request, recipient, &policy, now).map_err(refused)?;
        let salt = mfa
            .ok_or_else(|| ServiceError::invalid("the user has no 2-step verification record"))?
            .bypass_salt;
        let expires_at = approval::approved_expiry(&request, now);
        let by = ctx.actor_label();
        let (plaintext, row) = 'made: {
            for _ in 0..super::GENERATION_ATTEMPTS {
                let plaintext = bypass::generate_code(&mut rand::rng(), policy.code_length);
                let hash = self.hash(plaintext.clone(), salt.clone()).await?;
                match self
                    .store
                    .approve_code(code_id, hash.to_vec(), expires_at, &by, now)
                    .await?
                {
                    ApproveOutcome::Approved(row) => break 'made (plaintext, *row),
                    ApproveOutcome::Collision => continue,
                    ApproveOutcome::NotPending => {
                        // Decided by someone else meanwhile.
                        let now_row = self.find(user_id, code_id).await?;
                        let status = now_row.state().status(Utc::now());
                        return Err(refused(DecisionRefused::NotPending(status)));
                    }
                }
            }
            return Err(ServiceError::failed("generating a unique code"));
        };
        audit::record(
            &self.store,
            ctx,
            user_id,
            Some(code_id),
            AuditEvent::Approved,
            Some(format!("requested by {}", request.created_by)),
            now,
        )
        .await?;
        // The mail with the code is the user's alert; the code is not kept anywhere else.
        let code = Secret::new(bypass::display_code(&plaintext));
        drop(plaintext);
        self.email(&user.attributes, &row, &code, ctx).await?;
        let events = self.store.code_events(code_id).await?;
        Ok(view(row, &events, Utc::now()))
    }

    /// `DELETE …/approval`: the requester withdraws their request; anyone else rejects it,
    /// and needs the power to approve.
    pub async fn cancel_request(
        &self,
        user_id: &UserId,
        code_id: &str,
        ctx: &Context,
    ) -> Result<CodeView, ServiceError> {
        let request = self.find_visible(user_id, code_id, ctx).await?;
        let now = Utc::now();
        let by = ctx.actor_label();
        let cancel = approval::cancellation(&request, &by, now).map_err(refused)?;
        let action = match cancel {
            Cancel::Withdraw => Action::Generate,
            Cancel::Reject => Action::Approve,
        };
        self.access.check(ctx, action, Some(user_id)).await?;
        if !self
            .store
            .close_request(code_id, cancel.approval(), &by, now)
            .await?
        {
            let status = self.find(user_id, code_id).await?.state().status(now);
            return Err(refused(DecisionRefused::NotPending(status)));
        }
        let event = match cancel {
            Cancel::Withdraw => AuditEvent::Withdrawn,
            Cancel::Reject => AuditEvent::Rejected,
        };
        audit::record(&self.store, ctx, user_id, Some(code_id), event, None, now).await?;
        let row = self.find(user_id, code_id).await?;
        let events = self.store.code_events(code_id).await?;
        Ok(view(row, &events, Utc::now()))
    }

    /// The code, if the caller may see the user's codes or decide their requests.
    async fn find_visible(
        &self,
        user_id: &UserId,
        code_id: &str,
        ctx: &Context,
    ) -> Result<StoredCode, ServiceError> {
        let read = self
            .access
            .check(ctx, Action::ReadCodes, Some(user_id))
            .await;
        if read.is_err() {
            self.access
                .check(ctx, Action::Approve, Some(user_id))
                .await?;
        }
        self.find(user_id, code_id).await
    }

    /// Every open request, oldest first, for someone who may approve.
    pub async fn open_requests(&self, ctx: &Context) -> Result<Vec<OpenRequest>, ServiceError> {
        self.access.check(ctx, Action::ReadRequests, None).await?;
        let now = Utc::now();
        let mut requests = Vec::new();
        // A help desk asks for many codes: each requester is looked up once.
        let mut requesters: HashMap<String, String> = HashMap::new();
        for row in self.store.open_requests(now, 200).await? {
            let user_name = match self.store.get_user(&row.user_id).await? {
                Some(user) => user.attributes.user_name,
                None => continue,
            };
            let requested_by = match requesters.get(&row.created_by) {
                Some(words) => words.clone(),
                None => {
                    let words = self.alerts.actor_words(&row.created_by).await?;
                    requesters.insert(row.created_by.clone(), words.clone());
                    words
                }
            };
            // No code exists yet, so none was emailed: a request has no notifications.
            requests.push(OpenRequest {
                user_name,
                requested_by,
                view: view(row, &[], now),
            });
        }
        Ok(requests)
    }
}
