//! Administrator roles in force: a user's roles from their groups, and ending the console
//! sign-ins that carry a role the user no longer has.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;

use super::ServiceError;
use crate::domain::ids::{ClientId, UserId};
use crate::domain::methods::AMR_BYPASS_CODE;
use crate::domain::repo::{GrantRepo, GroupRepo};
use crate::domain::roles::{CONSOLE_CLIENT_ID, Role, RoleMap, console_scopes};
use crate::domain::scope::ScopeSet;
use crate::store::Store;

#[derive(Clone)]
pub struct Roles {
    store: Store,
    map: Arc<RoleMap>,
}

impl Roles {
    pub fn new(store: Store, map: RoleMap) -> Self {
        Self {
            store,
            map: Arc::new(map),
        }
    }

    pub fn map(&self) -> &RoleMap {
        &self.map
    }

    pub async fn roles_of(&self, user: &UserId) -> Result<BTreeSet<Role>, ServiceError> {
        let groups = self
            .store
            .groups_of_users(std::slice::from_ref(user))
            .await?;
        let own = groups.get(user).map(Vec::as_slice).unwrap_or_default();
        Ok(self
            .map
            .roles_of(own.iter().map(|g| (&g.id, g.display_name.as_str()))))
    }

    /// The scopes a sign-in of `user` at `client` may carry out of `requested`: at the console,
    /// the user scopes and those of the user's roles, unless the sign-in used a bypass code
    /// (a code handed out by the help desk never opens an administrator's powers); elsewhere
    /// `requested` as validated.
    pub async fn allowed_scope(
        &self,
        user: &UserId,
        client: &str,
        requested: &ScopeSet,
        amr: &[String],
    ) -> Result<ScopeSet, ServiceError> {
        if client != CONSOLE_CLIENT_ID {
            return Ok(requested.clone());
        }
        let roles = if amr.iter().any(|m| m == AMR_BYPASS_CODE) {
            BTreeSet::new()
        } else {
            self.roles_of(user).await?
        };
        let allowed = console_scopes(&roles);
        Ok(ScopeSet::from_names(
            requested.iter().filter(|s| allowed.contains(s)),
        ))
    }

    /// Ends each user's console sign-ins that carry a scope their roles no longer give.
    pub async fn end_sessions_beyond_roles(&self, users: &[UserId]) -> Result<(), ServiceError> {
        let console = ClientId::new(CONSOLE_CLIENT_ID);
        for user in users {
            let grants = self.store.live_grants(user, &console).await?;
            if grants.is_empty() {
                continue;
            }
            let allowed = console_scopes(&self.roles_of(user).await?);
            let now = Utc::now();
            for grant in grants {
                if !ScopeSet::parse(&grant.scope).is_subset(&allowed) {
                    self.store.revoke_grant(&grant.id, now).await?;
                    tracing::info!(user_id = %user, grant_id = %grant.id, "role withdrawn; console sign-in ended");
                }
            }
        }
        Ok(())
    }
}
