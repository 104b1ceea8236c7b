//! A printable self-service set: the policy's `selfServiceSetSize` once-codes the user makes
//! for themselves, to print or download and keep. They do not count toward `maxActive`; a
//! new set replaces the previous one in one transaction; the plaintexts exist only in the
//! answer to the request that made them.

use chrono::Utc;

use super::{BypassCodeService, CodeView, view};
use crate::domain::access::Action;
use crate::domain::audit::AuditEvent;
use crate::domain::bypass::{self, NewCode, Origin, Purpose, check_eligible};
use crate::domain::ids::UserId;
use crate::domain::limits::LimitKey;
use crate::domain::repo::{MfaRepo, UserRepo};
use crate::domain::secret::Secret;
use crate::service::alerts::Alert;
use crate::service::context::Context;
use crate::service::{ServiceError, audit, events, passwords};

/// A new set and, once only, its codes.
pub struct SavedSet {
    pub codes: Vec<Secret>,
    pub views: Vec<CodeView>,
    pub user_name: String,
}

impl BypassCodeService {
    /// Makes a new printable set for the signed-in user (`size` codes, at most the policy's
    /// `selfServiceSetSize`; that many when `None`), revoking the previous set. Only for
    /// oneself, under the self-service rules (a sign-in with the authenticator).
    pub async fn create_set(
        &self,
        user_id: &UserId,
        size: Option<i64>,
        ctx: &Context,
    ) -> Result<SavedSet, ServiceError> {
        self.access
            .check(ctx, Action::GenerateSet, Some(user_id))
            .await?;
        let policy = self.policy().await?;
        if bypass::check_generation_allowed(&policy, Origin::SavedSet).is_err() {
            return Err(ServiceError::Forbidden(
                "selfService generation of bypass codes is disabled by the policy (BypassCodeSettings)".into(),
            ));
        }
        let allowed = policy.self_service_set_size as i64;
        let size = size.unwrap_or(allowed);
        if !(1..=allowed).contains(&size) {
            return Err(ServiceError::invalid(format!(
                "\"size\" must be between 1 and {allowed} (selfServiceSetSize)"
            )));
        }
        let user = self
            .store
            .get_user(user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let mfa = self.store.get_mfa(user_id).await?;
        let enrolled = mfa.as_ref().is_some_and(|m| m.totp_confirmed);
        check_eligible(user.is_active(), enrolled, true)
            .map_err(|why| ServiceError::invalid(why.message(&user.attributes.user_name)))?;
        let salt = mfa.map(|m| m.bypass_salt).unwrap_or_default();
        // Counted whatever happens next: each set costs a computation per code.
        let key = LimitKey::SavedSets(user_id.clone());
        let reservation = match self.throttle.reserve(vec![key]).await? {
            Ok(reservation) => reservation,
            Err(retry_after) => {
                return Err(ServiceError::TooMany(
                    "too many sets of saved codes made recently; use the last one, or try again \
                     later"
                        .into(),
                    retry_after,
                ));
            }
        };
        let now = Utc::now();
        let expires_at = policy
            .self_service_max_expiry_minutes
            .map(|m| now + chrono::Duration::minutes(m));
        for _ in 0..super::GENERATION_ATTEMPTS {
            let plaintexts: Vec<String> = (0..size)
                .map(|_| bypass::generate_code(&mut rand::rng(), policy.code_length))
                .collect();
            // One job of hashing work for the whole set, admitted as `size` computations.
            let (hasher, salt, codes) = (self.hasher.clone(), salt.clone(), plaintexts.clone());
            let hashed = passwords::run_kdf_many(size as u32, move || {
                codes
                    .iter()
                    .map(|code| hasher.hash(code, &salt))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
            let hashes = match hashed {
                // Nothing made: the set is not counted.
                Err(ServiceError::Busy(wait)) => {
                    self.throttle.give_back(reservation).await?;
                    return Err(ServiceError::Busy(wait));
                }
                hashes => hashes?,
            };
            if has_repeats(&hashes) {
                continue;
            }
            let rows: Vec<NewCode> = hashes
                .iter()
                .map(|hash| NewCode {
                    id: uuid::Uuid::new_v4().to_string(),
                    user_id: user_id.clone(),
                    code_hash: hash.to_vec(),
                    origin: Origin::SavedSet,
                    created_by: ctx.actor_label(),
                    client_id: ctx.client_id.as_ref().map(|c| c.as_str().to_owned()),
                    expires_at,
                    max_uses: Some(1),
                    created_at: now,
                    purpose: Purpose::SignIn,
                    reason: None,
                    starts_at: None,
                    approval: None,
                    lifetime_minutes: policy.self_service_max_expiry_minutes,
                    send_to: None,
                })
                .collect();
            let Some(stored) = self.store.replace_saved_set(user_id, rows, now).await? else {
                continue;
            };
            for (n, row) in stored.iter().enumerate() {
                let detail = format!("saved set, code {} of {size}", n + 1);
                audit::record(
                    &self.store,
                    ctx,
                    user_id,
                    Some(&row.id),
                    AuditEvent::Generated,
                    Some(detail),
                    now,
                )
                .await?;
                events::bypass_code_generated(Origin::SavedSet.as_str());
            }
            if policy.notify_user_on_issue {
                let alert = Alert::SetIssued { size: stored.len() };
                // The set is made and answered either way; the alert is best-effort.
                if let Err(e) = self.alerts.send(user_id, alert, now, ctx).await {
                    tracing::warn!(error = %e, "the saved-set alert could not be sent");
                }
            }
            return Ok(SavedSet {
                codes: plaintexts
                    .iter()
                    .map(|p| Secret::new(bypass::display_code(p)))
                    .collect(),
                views: stored.into_iter().map(|row| view(row, &[], now)).collect(),
                user_name: user.attributes.user_name,
            });
        }
        Err(ServiceError::failed("generating a unique set of codes"))
    }
}

fn has_repeats(hashes: &[[u8; 32]]) -> bool {
    let mut seen = std::collections::HashSet::new();
    !hashes.iter().all(|h| seen.insert(*h))
}
