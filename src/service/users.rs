//! User provisioning: create, read, list, replace, patch and delete through the SCIM model.

use crate::domain::audit::AuditEvent;
use crate::domain::ids::UserId;
use crate::domain::repo::{PasswordChange, UserPage, UserRepo};
use crate::domain::scim::filter::parse_filter;
use crate::domain::scim::search::SearchParams;
use crate::domain::scim::user::{self, User, UserWrite, resolve_filter, resolve_sort};
use crate::domain::scim::{ScimType, ScimViolation};
use crate::store::{Store, StoreError};

use super::context::Context;
use super::{ServiceError, audit, passwords};

pub const MAX_PAGE_SIZE: u64 = 200;

#[derive(Clone)]
pub struct UserService {
    store: Store,
}

fn user_name_taken(name: &str) -> ServiceError {
    ScimViolation::new(
        ScimType::Uniqueness,
        format!("userName \"{name}\" is already taken"),
    )
    .into()
}

fn user_not_found() -> ServiceError {
    ServiceError::NotFound("user")
}

impl UserService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn password_change(write: &mut UserWrite) -> Result<PasswordChange, ServiceError> {
        match write.password.take() {
            Some(password) => Ok(PasswordChange::Set(passwords::hash(password).await?)),
            None => Ok(PasswordChange::Keep),
        }
    }

    pub async fn create(&self, mut write: UserWrite, ctx: &Context) -> Result<User, ServiceError> {
        let hash = match Self::password_change(&mut write).await? {
            PasswordChange::Set(hash) => Some(hash),
            PasswordChange::Keep => None,
        };
        let with_password = hash.is_some();
        let user = match self.store.create_user(&write.attributes, hash).await {
            Err(StoreError::Duplicate) => return Err(user_name_taken(&write.attributes.user_name)),
            other => other?,
        };
        if with_password {
            self.audit(ctx, &user.id, AuditEvent::PasswordSet, "at creation")
                .await?;
        }
        Ok(user)
    }

    async fn audit(
        &self,
        ctx: &Context,
        id: &UserId,
        event: AuditEvent,
        detail: &str,
    ) -> Result<(), ServiceError> {
        let now = chrono::Utc::now();
        audit::record(&self.store, ctx, id, None, event, Some(detail.into()), now).await
    }

    pub async fn get(&self, id: &UserId) -> Result<User, ServiceError> {
        self.store.get_user(id).await?.ok_or_else(user_not_found)
    }

    pub async fn list(&self, query: &SearchParams) -> Result<UserPage, ServiceError> {
        let filter = query
            .filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(|f| parse_filter(f).and_then(|parsed| resolve_filter(&parsed)))
            .transpose()?;
        Ok(self
            .store
            .list_users(
                filter.as_ref(),
                query.sort(resolve_sort)?,
                query.start_index.max(1),
                query.count.min(MAX_PAGE_SIZE),
            )
            .await?)
    }

    /// Stores `write` over the user if its version is still `expected_version` (when given).
    pub async fn replace(
        &self,
        id: &UserId,
        mut write: UserWrite,
        expected_version: Option<i64>,
        ctx: &Context,
    ) -> Result<User, ServiceError> {
        let was_active = self.get(id).await?.is_active();
        let password = Self::password_change(&mut write).await?;
        let password_set = matches!(password, PasswordChange::Set(_));
        // A new password or a deactivation ends every sign-in of the user at once.
        let end_sessions =
            matches!(password, PasswordChange::Set(_)) || write.attributes.active == Some(false);
        let updated = match self
            .store
            .replace_user(
                id,
                &write.attributes,
                password,
                expected_version,
                end_sessions,
            )
            .await
        {
            Err(StoreError::Duplicate) => return Err(user_name_taken(&write.attributes.user_name)),
            Err(StoreError::NotFound) => return Err(user_not_found()),
            other => other?,
        };
        if password_set {
            self.audit(
                ctx,
                id,
                AuditEvent::PasswordSet,
                "replaced; every sign-in ended",
            )
            .await?;
        }
        if was_active && !updated.is_active() {
            self.audit(ctx, id, AuditEvent::Deactivated, "every sign-in ended")
                .await?;
        }
        Ok(updated)
    }

    /// Applies a PatchOp body. The write is conditional on the version that was patched, so a
    /// concurrent change is never silently overwritten.
    pub async fn patch(
        &self,
        id: &UserId,
        body: &serde_json::Value,
        expected_version: Option<i64>,
        ctx: &Context,
    ) -> Result<User, ServiceError> {
        let current = self.get(id).await?;
        // A malformed body is refused (400) whatever If-Match says, as PUT does.
        let write = user::apply_patch(&current, body)?;
        if expected_version.is_some_and(|v| v != current.version) {
            return Err(ServiceError::VersionMismatch);
        }
        self.replace(id, write, Some(current.version), ctx).await
    }

    pub async fn delete(
        &self,
        id: &UserId,
        expected_version: Option<i64>,
        ctx: &Context,
    ) -> Result<(), ServiceError> {
        let revoked = match self
            .store
            .delete_user(id, expected_version, &ctx.actor_label())
            .await
        {
            Err(StoreError::NotFound) => return Err(user_not_found()),
            other => other?,
        };
        self.audit(
            ctx,
            id,
            AuditEvent::UserDeleted,
            "its codes revoked, its sign-ins ended",
        )
        .await?;
        let now = chrono::Utc::now();
        for code_id in revoked {
            audit::record(
                &self.store,
                ctx,
                id,
                Some(&code_id),
                AuditEvent::Revoked,
                Some("user deleted".into()),
                now,
            )
            .await?;
        }
        Ok(())
    }
}
