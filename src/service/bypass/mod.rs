//! Bypass codes: generation under the policy, listing, revocation, email, the audit trail,
//! and verify-and-consume for sign-in.
//!
//! A code is stored only as argon2id(code, per-user salt[, pepper]); the user's codes share
//! the salt, so checking an attempt costs ONE argon2 computation and one index lookup on
//! (user_id, hash), however many codes the user has.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::access::Access;
use super::alerts::Alerts;
use super::context::Context;
use super::mfa::Guard;
use super::throttle::Throttle;
use super::{ServiceError, audit, passwords};
use crate::counters::SharedCounters;
use crate::domain::access::Action;
use crate::domain::audit::AuditEntry;
use crate::domain::audit::AuditEvent;
pub use crate::domain::bypass::Rejection;
use crate::domain::bypass::{
    Approval, CodeStatus, Policy, Purpose, StoredCode, check_generation_allowed,
};
use crate::domain::ids::UserId;
use crate::domain::repo::{AuditRepo, BypassCodeRepo, MfaRepo, UserRepo};
use crate::domain::secret::Secret;
use crate::mail::Mailer;
use crate::store::Store;

/// How long a use counter lives in Redis before it is seeded from the database again. The
/// database's conditional update is the ground truth, so a short life only bounds how long a
/// use counted here but never written there (a request killed in between) stays lost.
const USE_COUNTER_TTL: Duration = Duration::from_secs(10 * 60);
const GENERATION_ATTEMPTS: usize = 3;

mod approval;
mod create;
mod hash;
mod notify;
mod sets;
mod verify;

pub use hash::{Argon2Hasher, CodeHasher};
pub use sets::SavedSet;
pub use verify::VerifyOutcome;

/// A code as the API shows it: never the plaintext, which only [`Created`] carries.
#[derive(Clone, Debug)]
pub struct CodeView {
    pub id: String,
    pub user_id: UserId,
    pub status: CodeStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub use_count: i64,
    pub remaining: Option<i64>,
    pub origin: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub notifications: Vec<Notification>,
    pub purpose: Purpose,
    pub reason: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub approval: Option<Approval>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The lifetime asked for, in minutes from the start (`None`: never expires).
    pub lifetime_minutes: Option<i64>,
    /// For a request: where the approved code is emailed.
    pub send_to: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Notification {
    pub channel: &'static str,
    pub sent: bool,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// A new code and, once only, its plaintext.
pub struct Created {
    pub code: Secret,
    pub view: CodeView,
}

/// What a create request gave: a code, or a request waiting for a second person (no code
/// exists yet; the approval makes it and emails it to the user).
pub enum Issued {
    Code(Created),
    Pending(CodeView),
}

/// A plaintext this service generated and the console kept sealed in the session that
/// generated it: emailing it compares nothing, so it needs no attempt. Only the console's
/// session store makes one.
pub struct HeldCode(Secret);

impl HeldCode {
    pub(in crate::service) fn new(code: Secret) -> Self {
        Self(code)
    }

    /// The plaintext, for the code window that shows it again after emailing.
    pub fn code(&self) -> &Secret {
        &self.0
    }
}

/// What a [`BypassCodeService`] is built from.
pub struct BypassParts {
    pub store: Store,
    pub counters: SharedCounters,
    pub guard: Guard,
    pub access: Access,
    pub hasher: Arc<dyn CodeHasher>,
    pub mailer: Arc<Mailer>,
    pub alerts: Alerts,
    pub service_name: String,
}

#[derive(Clone)]
pub struct BypassCodeService {
    store: Store,
    counters: SharedCounters,
    guard: Guard,
    throttle: Throttle,
    access: Access,
    hasher: Arc<dyn CodeHasher>,
    mailer: Arc<Mailer>,
    alerts: Alerts,
    service_name: String,
}

fn notifications(events: &[AuditEntry]) -> Vec<Notification> {
    events
        .iter()
        .filter(|e| e.event.is_notification())
        .map(|e| Notification {
            channel: "email",
            sent: e.event == AuditEvent::Emailed,
            detail: e.detail.clone(),
            at: e.at,
        })
        .collect()
}

fn view(code: StoredCode, events: &[AuditEntry], now: DateTime<Utc>) -> CodeView {
    let state = code.state();
    CodeView {
        status: state.status(now),
        remaining: state.remaining(),
        notifications: notifications(events),
        id: code.id,
        user_id: code.user_id,
        expires_at: code.expires_at,
        max_uses: code.max_uses,
        use_count: code.use_count,
        origin: code.origin,
        created_by: code.created_by,
        created_at: code.created_at,
        last_used_at: code.last_used_at,
        revoked_at: code.revoked_at,
        purpose: code.purpose,
        reason: code.reason,
        starts_at: code.starts_at,
        approval: code.approval,
        decided_by: code.decided_by,
        decided_at: code.decided_at,
        lifetime_minutes: code.lifetime_minutes,
        send_to: code.send_to,
    }
}

fn too_many(name: &str, max_active: u32) -> ServiceError {
    ServiceError::Conflict(format!(
        "user \"{name}\" already has {max_active} active bypass codes (maxActive); revoke one first"
    ))
}

impl BypassCodeService {
    pub fn new(parts: BypassParts) -> Self {
        Self {
            throttle: Throttle::new(parts.counters.clone()),
            store: parts.store,
            counters: parts.counters,
            guard: parts.guard,
            access: parts.access,
            hasher: parts.hasher,
            mailer: parts.mailer,
            alerts: parts.alerts,
            service_name: parts.service_name,
        }
    }

    /// The policy in force, for the services' own use (limits, sign-in).
    pub async fn policy(&self) -> Result<Policy, ServiceError> {
        super::policy::load(&self.store).await
    }

    /// The policy, for a caller who asks to read it.
    pub async fn read_policy(&self, ctx: &Context) -> Result<Policy, ServiceError> {
        self.access.check(ctx, Action::ReadPolicy, None).await?;
        self.policy().await
    }

    /// Replaces the policy with the one `body` states in the API's form
    /// ([`Policy::from_json`]), if the caller may change it.
    pub async fn replace_policy(
        &self,
        body: &serde_json::Value,
        ctx: &Context,
    ) -> Result<Policy, ServiceError> {
        self.access.check(ctx, Action::ChangePolicy, None).await?;
        let policy = Policy::from_json(body)?;
        self.store_policy(&policy, ctx).await?;
        Ok(policy)
    }

    async fn store_policy(&self, policy: &Policy, ctx: &Context) -> Result<(), ServiceError> {
        let text = serde_json::to_string(policy)
            .map_err(|e| ServiceError::internal("bypass-code policy", e))?;
        super::policy::store(&self.store, text).await?;
        // The audit trail states it as the API does: no `null`, every limit or its switch.
        let detail = policy.to_json().to_string();
        audit::record_service(&self.store, ctx, AuditEvent::PolicyChanged, Some(detail)).await?;
        Ok(())
    }

    async fn hash(&self, code: String, salt: Vec<u8>) -> Result<[u8; 32], ServiceError> {
        let hasher = self.hasher.clone();
        passwords::run_kdf(move || hasher.hash(&code, &salt)).await
    }

    /// Why the caller may not generate a code for `user_id` now, in words for a person, or
    /// `None` if they may (the account page asks before it offers the form).
    pub async fn generation_refused(
        &self,
        user_id: &UserId,
        ctx: &Context,
    ) -> Result<Option<String>, ServiceError> {
        let origin = match self
            .access
            .check(ctx, Action::Generate, Some(user_id))
            .await
        {
            Ok(permit) => permit.origin(),
            Err(ServiceError::Forbidden(why)) => return Ok(Some(why)),
            Err(other) => return Err(other),
        };
        let policy = self.policy().await?;
        if check_generation_allowed(&policy, origin).is_err() {
            return Ok(Some(format!(
                "{} generation of bypass codes is disabled by the policy",
                origin.as_str()
            )));
        }
        let enrolled = self
            .store
            .get_mfa(user_id)
            .await?
            .is_some_and(|m| m.totp_confirmed);
        Ok((!enrolled)
            .then(|| "Set up an authenticator app first: bypass codes stand in for it.".into()))
    }

    pub async fn list(
        &self,
        user_id: &UserId,
        status: Option<CodeStatus>,
        ctx: &Context,
    ) -> Result<Vec<CodeView>, ServiceError> {
        self.access
            .check(ctx, Action::ReadCodes, Some(user_id))
            .await?;
        if self.store.get_user(user_id).await?.is_none() {
            return Err(ServiceError::NotFound("user"));
        }
        let now = Utc::now();
        let mut views = Vec::new();
        for row in self.store.list_codes(user_id).await? {
            let events = self.store.code_events(&row.id).await?;
            let code = view(row, &events, now);
            if status.is_none_or(|s| s == code.status) {
                views.push(code);
            }
        }
        Ok(views)
    }

    async fn find(&self, user_id: &UserId, code_id: &str) -> Result<StoredCode, ServiceError> {
        self.store
            .find_code(user_id, code_id)
            .await?
            .ok_or(ServiceError::NotFound("bypass code"))
    }

    pub async fn get(
        &self,
        user_id: &UserId,
        code_id: &str,
        ctx: &Context,
    ) -> Result<CodeView, ServiceError> {
        self.access
            .check(ctx, Action::ReadCodes, Some(user_id))
            .await?;
        let row = self.find(user_id, code_id).await?;
        let events = self.store.code_events(code_id).await?;
        Ok(view(row, &events, Utc::now()))
    }

    pub async fn events(
        &self,
        user_id: &UserId,
        code_id: &str,
        ctx: &Context,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        self.access
            .check(ctx, Action::ReadAudit, Some(user_id))
            .await?;
        self.find(user_id, code_id).await?;
        Ok(self.store.code_events(code_id).await?)
    }

    /// The user's audit trail, newest first: who generated, emailed, used, failed and revoked
    /// which code, when and from where.
    pub async fn user_events(
        &self,
        user_id: &UserId,
        ctx: &Context,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        self.access
            .check(ctx, Action::ReadAudit, Some(user_id))
            .await?;
        if self.store.get_user(user_id).await?.is_none() {
            return Err(ServiceError::NotFound("user"));
        }
        Ok(self.store.user_events(user_id, 200).await?)
    }

    /// Revokes a code; revoking twice is not an error. The code stays, for audit. A request
    /// still waiting for approval is withdrawn or rejected instead ([`Self::cancel_request`]).
    pub async fn revoke(
        &self,
        user_id: &UserId,
        code_id: &str,
        ctx: &Context,
    ) -> Result<(), ServiceError> {
        self.access
            .check(ctx, Action::Revoke, Some(user_id))
            .await?;
        let row = self.find(user_id, code_id).await?;
        let now = Utc::now();
        if row.state().status(now) == CodeStatus::PendingApproval {
            // A request is withdrawn by its requester and rejected by an approver, under
            // the approval rule, whichever door closes it.
            self.cancel_request(user_id, code_id, ctx).await?;
            return Ok(());
        }
        if self
            .store
            .revoke_code(code_id, &ctx.actor_label(), now)
            .await?
        {
            audit::record(
                &self.store,
                ctx,
                user_id,
                Some(code_id),
                AuditEvent::Revoked,
                None,
                now,
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::counters::MemoryCounters;
    use crate::domain::enrolment::CodeUse;
    use crate::domain::scim::user::parse_user;

    /// Counts argon2 computations.
    struct Counting {
        inner: Argon2Hasher,
        calls: AtomicUsize,
    }

    impl CodeHasher for Counting {
        fn hash(&self, code: &str, salt: &[u8]) -> Result<[u8; 32], ServiceError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.inner.hash(code, salt)
        }
    }

    async fn service(
        codes: usize,
    ) -> (
        BypassCodeService,
        Arc<Counting>,
        UserId,
        Vec<Secret>,
        tempfile::TempDir,
    ) {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let body = json!({"schemas": [crate::domain::scim::USER_SCHEMA], "userName": "counted"});
        let user = store
            .create_user(&parse_user(&body).unwrap().attributes, None)
            .await
            .unwrap();
        store.ensure_mfa(&user.id, vec![9; 16]).await.unwrap();
        assert!(
            store
                .set_pending_totp(&user.id, "plain:AAAA".into(), vec![9; 16])
                .await
                .unwrap()
        );
        assert!(
            store
                .accept_totp_step(&user.id, "plain:AAAA", 1, true)
                .await
                .unwrap()
        );
        let counters: SharedCounters = Arc::new(MemoryCounters::default());
        let hasher = Arc::new(Counting {
            inner: Argon2Hasher::new(None),
            calls: AtomicUsize::new(0),
        });
        let outbox = tempfile::tempdir().unwrap();
        let mailer = Arc::new(
            Mailer::new(None, outbox.path().to_path_buf(), "idp <idp@localhost>").unwrap(),
        );
        let alerts = Alerts::new(store.clone(), mailer.clone(), "test".into());
        let service = BypassCodeService::new(BypassParts {
            store: store.clone(),
            counters: counters.clone(),
            guard: Guard::new(
                store.clone(),
                crate::service::throttle::Throttle::new(counters),
            ),
            access: Access::new(crate::service::roles::Roles::new(
                store,
                crate::domain::roles::RoleMap::default(),
            )),
            hasher: hasher.clone(),
            mailer,
            alerts,
            service_name: "test".into(),
        });
        let mut plaintexts = Vec::new();
        for _ in 0..codes {
            let created = service
                .create(
                    &user.id,
                    &json!({"expiresIn": {"days": 1}, "maxUsageCount": 10}),
                    &Context::system(),
                )
                .await
                .unwrap();
            let Issued::Code(created) = created else {
                panic!("a bounded code needs no approval");
            };
            plaintexts.push(created.code);
        }
        (service, hasher, user.id, plaintexts, outbox)
    }

    async fn calls_for(
        service: &BypassCodeService,
        counter: &Counting,
        user: &UserId,
        code: &str,
    ) -> usize {
        counter.calls.store(0, Ordering::SeqCst);
        service
            .verify_and_consume(user, code, CodeUse::SecondStep, &Context::system())
            .await
            .unwrap();
        counter.calls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn one_argon2_computation_per_attempt_whatever_the_number_of_codes() {
        let max_active = Policy::default().max_active as usize;
        for codes in [1, max_active] {
            let (service, counter, user, plaintexts, _outbox) = service(codes).await;
            assert_eq!(
                calls_for(&service, &counter, &user, "0000-0000-0001").await,
                1,
                "wrong code, {codes} codes"
            );
            for code in &plaintexts {
                assert_eq!(
                    calls_for(&service, &counter, &user, code.expose()).await,
                    1,
                    "right code, {codes} codes"
                );
            }
            // A typed value that cannot be a code costs nothing.
            assert_eq!(calls_for(&service, &counter, &user, "not-a-code").await, 0);
        }
    }

    #[tokio::test]
    async fn a_full_user_is_refused_before_any_argon2() {
        let max_active = Policy::default().max_active as usize;
        let (service, counter, user, _, _outbox) = service(max_active).await;
        counter.calls.store(0, Ordering::SeqCst);
        let refused = service
            .create(
                &user,
                &json!({"expiresIn": {"days": 1}}),
                &Context::system(),
            )
            .await;
        assert!(
            matches!(refused, Err(ServiceError::Conflict(_))),
            "{:?}",
            refused.err()
        );
        assert_eq!(
            counter.calls.load(Ordering::SeqCst),
            0,
            "maxActive is checked first"
        );
    }
}
