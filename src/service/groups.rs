//! Groups: create, read, list, replace, patch and delete, with members that must be users;
//! a change to a group that grants a role ends the console sign-ins its former members can no
//! longer justify.

use std::collections::HashMap;

use super::context::{Actor, Context};
use super::roles::Roles;
use super::{ServiceError, audit, users::MAX_PAGE_SIZE};
use crate::domain::audit::AuditEvent;
use crate::domain::ids::{GroupId, UserId};
use crate::domain::repo::{GroupPage, GroupRef, GroupRepo};
use crate::domain::scim::filter::parse_filter;
use crate::domain::scim::group::{Group, GroupChange, GroupWrite, resolve_filter, resolve_sort};
use crate::domain::scim::search::SearchParams;
use crate::domain::scim::{ScimType, ScimViolation};
use crate::store::{Store, StoreError};

/// Member ids for an audit line: the first 20, then how many more.
fn id_list(ids: &[UserId]) -> String {
    const SHOWN: usize = 20;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .map(UserId::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    if text.is_empty() { "none".into() } else { text }
}

/// What PATCH changes do, for the audit trail of a role-granting group.
fn describe_changes(changes: &[GroupChange]) -> String {
    changes
        .iter()
        .map(|change| match change {
            GroupChange::SetDisplayName(name) => format!("renamed to \"{name}\""),
            GroupChange::SetExternalId(_) => "externalId set".to_owned(),
            GroupChange::AddMembers(ids) => format!("members added: {}", id_list(ids)),
            GroupChange::RemoveMembers(ids) => format!("members removed: {}", id_list(ids)),
            GroupChange::RemoveAllMembers => "every member removed".to_owned(),
            GroupChange::ReplaceMembers(ids) => format!("members now: {}", id_list(ids)),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Clone)]
pub struct GroupService {
    store: Store,
    roles: Roles,
}

fn name_taken(name: &str) -> ServiceError {
    ScimViolation::new(
        ScimType::Uniqueness,
        format!("a group named \"{name}\" already exists"),
    )
    .into()
}

fn not_found() -> ServiceError {
    ServiceError::NotFound("group")
}

impl GroupService {
    pub fn new(store: Store, roles: Roles) -> Self {
        Self { store, roles }
    }

    /// Members must be users of this server: a dangling reference is refused, not stored.
    async fn check_members(&self, users: &[UserId]) -> Result<(), ServiceError> {
        if let Some(missing) = self.store.missing_users(users).await?.first() {
            return Err(ScimViolation::new(
                ScimType::InvalidValue,
                format!("member \"{missing}\" is not a user of this server"),
            )
            .into());
        }
        Ok(())
    }

    pub async fn create(&self, write: GroupWrite, ctx: &Context) -> Result<Group, ServiceError> {
        // Not created yet: its name alone decides (an id cannot be named before it exists).
        self.check_role_change(ctx, &GroupId::new(""), &[&write.display_name])?;
        self.check_members(&write.members).await?;
        let created = match self.store.create_group(&write).await {
            Err(StoreError::Duplicate) => return Err(name_taken(&write.display_name)),
            other => other?,
        };
        if self.grants_roles(&created.id, &[&created.display_name]) {
            let what = format!("created; members: {}", id_list(&write.members));
            self.audit_role_group(ctx, &created.id, &created.display_name, &what)
                .await?;
        }
        Ok(created)
    }

    /// A stored audit event for a change to a role-granting group.
    async fn audit_role_group(
        &self,
        ctx: &Context,
        id: &GroupId,
        name: &str,
        what: &str,
    ) -> Result<(), ServiceError> {
        let detail = format!("group \"{name}\" ({id}) {what}");
        audit::record_service(&self.store, ctx, AuditEvent::RoleGroupChanged, Some(detail)).await
    }

    pub async fn get(&self, id: &GroupId, with_members: bool) -> Result<Group, ServiceError> {
        self.store
            .get_group(id, with_members)
            .await?
            .ok_or_else(not_found)
    }

    pub async fn list(
        &self,
        query: &SearchParams,
        with_members: bool,
    ) -> Result<GroupPage, ServiceError> {
        let filter = query
            .filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(|f| parse_filter(f).and_then(|parsed| resolve_filter(&parsed)))
            .transpose()?;
        Ok(self
            .store
            .list_groups(
                filter.as_ref(),
                query.sort(resolve_sort)?,
                query.start_index.max(1),
                query.count.min(MAX_PAGE_SIZE),
                with_members,
            )
            .await?)
    }

    /// Whether changing this group can change anyone's roles (before or after the change).
    fn grants_roles(&self, id: &GroupId, names: &[&str]) -> bool {
        names.iter().any(|n| self.roles.map().grants_roles(id, n))
    }

    /// Who holds a role is decided by provisioning clients and the CLI, never from a user's
    /// own session: otherwise a user administrator could make themselves a security
    /// administrator.
    fn check_role_change(
        &self,
        ctx: &Context,
        id: &GroupId,
        names: &[&str],
    ) -> Result<(), ServiceError> {
        if matches!(ctx.actor, Actor::User(_)) && self.grants_roles(id, names) {
            return Err(ServiceError::Forbidden(
                "this group grants administrator roles; only a provisioning client or the \
                 command line changes it, not a user's session"
                    .into(),
            ));
        }
        Ok(())
    }

    pub async fn replace(
        &self,
        id: &GroupId,
        write: GroupWrite,
        expected_version: Option<i64>,
        ctx: &Context,
    ) -> Result<Group, ServiceError> {
        let before = self.get(id, false).await?;
        self.check_role_change(ctx, id, &[&before.display_name, &write.display_name])?;
        self.check_members(&write.members).await?;
        let members_before = match self.store.replace_group(id, &write, expected_version).await {
            Err(StoreError::Duplicate) => return Err(name_taken(&write.display_name)),
            Err(StoreError::NotFound) => return Err(not_found()),
            other => other?,
        };
        if self.grants_roles(id, &[&before.display_name, &write.display_name]) {
            self.roles
                .end_sessions_beyond_roles(&members_before)
                .await?;
            let added: Vec<UserId> = write
                .members
                .iter()
                .filter(|m| !members_before.contains(m))
                .cloned()
                .collect();
            let removed: Vec<UserId> = members_before
                .iter()
                .filter(|m| !write.members.contains(m))
                .cloned()
                .collect();
            let what = format!(
                "replaced; members added: {}; members removed: {}",
                id_list(&added),
                id_list(&removed)
            );
            self.audit_role_group(ctx, id, &write.display_name, &what)
                .await?;
        }
        self.get(id, true).await
    }

    /// Applies PATCH changes; the member list is not read unless a change replaces it.
    pub async fn patch(
        &self,
        id: &GroupId,
        changes: &[GroupChange],
        expected_version: Option<i64>,
        ctx: &Context,
    ) -> Result<Group, ServiceError> {
        let before = self.get(id, false).await?;
        let new_name = changes.iter().rev().find_map(|c| match c {
            GroupChange::SetDisplayName(name) => Some(name.as_str()),
            _ => None,
        });
        let names = [before.display_name.as_str(), new_name.unwrap_or_default()];
        self.check_role_change(ctx, id, &names)?;
        let named: Vec<UserId> = changes
            .iter()
            .flat_map(|c| c.named_users().iter().cloned())
            .collect();
        self.check_members(&named).await?;
        let removed = match self.store.change_group(id, changes, expected_version).await {
            Err(StoreError::Duplicate) => {
                let name = changes.iter().rev().find_map(|c| match c {
                    GroupChange::SetDisplayName(name) => Some(name.as_str()),
                    _ => None,
                });
                return Err(name_taken(name.unwrap_or(&before.display_name)));
            }
            Err(StoreError::NotFound) => return Err(not_found()),
            other => other?,
        };
        let after = self.get(id, false).await?;
        if self.grants_roles(id, &[&before.display_name, &after.display_name]) {
            let what = format!("changed: {}", describe_changes(changes));
            self.audit_role_group(ctx, id, &after.display_name, &what)
                .await?;
        }
        let renamed = after.display_name != before.display_name;
        if renamed && self.grants_roles(id, &[&before.display_name, &after.display_name]) {
            // A new name may take a role from every member, not only the removed ones.
            let all = self
                .store
                .get_group(id, true)
                .await?
                .and_then(|g| g.members);
            let mut users: Vec<UserId> = all
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.user_id)
                .collect();
            users.extend(removed);
            self.roles.end_sessions_beyond_roles(&users).await?;
        } else if !removed.is_empty() && self.grants_roles(id, &[&after.display_name]) {
            self.roles.end_sessions_beyond_roles(&removed).await?;
        }
        Ok(after)
    }

    /// Deletes a group; its members stay users.
    pub async fn delete(
        &self,
        id: &GroupId,
        expected_version: Option<i64>,
        ctx: &Context,
    ) -> Result<(), ServiceError> {
        let before = self.get(id, false).await?;
        self.check_role_change(ctx, id, &[&before.display_name])?;
        let members = match self.store.delete_group(id, expected_version).await {
            Err(StoreError::NotFound) => return Err(not_found()),
            other => other?,
        };
        if self.grants_roles(id, &[&before.display_name]) {
            self.roles.end_sessions_beyond_roles(&members).await?;
            let what = format!("deleted; its members lose the role: {}", id_list(&members));
            self.audit_role_group(ctx, id, &before.display_name, &what)
                .await?;
        }
        Ok(())
    }

    /// The administrator roles a user holds through their groups.
    pub async fn roles_of(
        &self,
        user: &UserId,
    ) -> Result<std::collections::BTreeSet<crate::domain::roles::Role>, ServiceError> {
        self.roles.roles_of(user).await
    }

    /// The groups of each user, for `User.groups`.
    pub async fn of_users(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Vec<GroupRef>>, ServiceError> {
        Ok(self.store.groups_of_users(users).await?)
    }

    /// A group by display name (ignoring case), for the CLI.
    pub async fn find_by_name(&self, name: &str) -> Result<Option<Group>, ServiceError> {
        let params = SearchParams {
            filter: Some(format!("displayName eq {}", serde_json::Value::from(name))),
            start_index: 1,
            count: 1,
            ..Default::default()
        };
        Ok(self.list(&params, false).await?.groups.into_iter().next())
    }
}
