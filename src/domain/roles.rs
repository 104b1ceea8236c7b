//! Administrator roles: which groups make a user a help-desk, user or security
//! administrator, and the scopes each role lets that user's console sign-in carry.

use std::collections::BTreeSet;

use super::ids::GroupId;
use super::scope::{
    self, AUDIT_READ, BYPASS_CODES_APPROVE, BYPASS_CODES_MANAGE, BYPASS_CODES_SETTINGS, MFA_MANAGE,
    MFA_READ, SCIM_GROUPS, SCIM_USERS, ScopeSet, USERS_READ,
};

/// This service's own console: the one client at which a user's sign-in may carry the
/// scopes of the user's roles.
pub const CONSOLE_CLIENT_ID: &str = "bypass-idp-console";

/// Scopes some role gives: a user's sign-in may ask for them at the console only.
pub fn is_role_scope(scope: &str) -> bool {
    Role::ALL.iter().any(|r| r.scopes().contains(&scope))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Find users, see their 2-step status, generate, email and revoke their bypass codes,
    /// read the audit trail.
    Helpdesk,
    /// Manage users and groups over SCIM.
    UserAdmin,
    /// Change the bypass-code policy, reset 2-step verification, read the audit log, and act
    /// on administrators' codes (with the help-desk role).
    SecurityAdmin,
}

impl Role {
    pub const ALL: [Self; 3] = [Self::Helpdesk, Self::UserAdmin, Self::SecurityAdmin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Helpdesk => "helpdesk",
            Self::UserAdmin => "user-admin",
            Self::SecurityAdmin => "security-admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// The scopes the role adds to a console sign-in.
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Self::Helpdesk => &[USERS_READ, MFA_READ, BYPASS_CODES_MANAGE],
            Self::UserAdmin => &[SCIM_USERS, SCIM_GROUPS, USERS_READ],
            Self::SecurityAdmin => &[
                BYPASS_CODES_SETTINGS,
                MFA_MANAGE,
                MFA_READ,
                USERS_READ,
                AUDIT_READ,
                BYPASS_CODES_APPROVE,
            ],
        }
    }
}

/// Which group grants which role: by display name (ignoring case) or by group id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleMap {
    entries: Vec<(String, Role)>,
}

impl Default for RoleMap {
    fn default() -> Self {
        Self {
            entries: vec![
                ("Help desk administrators".into(), Role::Helpdesk),
                ("Security administrators".into(), Role::SecurityAdmin),
                ("User administrators".into(), Role::UserAdmin),
            ],
        }
    }
}

impl RoleMap {
    /// Parses `group=role;group=role` (a group named by display name or id).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (group, role) = pair
                .rsplit_once('=')
                .ok_or_else(|| format!("\"{pair}\" is not group=role"))?;
            let role = Role::parse(role).ok_or_else(|| {
                format!(
                    "unknown role \"{}\"; roles: helpdesk, user-admin, security-admin",
                    role.trim()
                )
            })?;
            let group = group.trim();
            if group.is_empty() {
                return Err(format!("\"{pair}\" names no group"));
            }
            entries.push((group.to_owned(), role));
        }
        Ok(Self { entries })
    }

    /// The roles that membership of these groups (id, display name) grants.
    pub fn roles_of<'a>(
        &self,
        groups: impl IntoIterator<Item = (&'a GroupId, &'a str)>,
    ) -> BTreeSet<Role> {
        let mut roles = BTreeSet::new();
        for (id, name) in groups {
            for (group, role) in &self.entries {
                if group.eq_ignore_ascii_case(name) || group == id.as_str() {
                    roles.insert(*role);
                }
            }
        }
        roles
    }

    /// Whether a group with this id or name grants any role: changing it can change roles.
    pub fn grants_roles(&self, id: &GroupId, name: &str) -> bool {
        !self.roles_of([(id, name)]).is_empty()
    }
}

/// The scopes a user's sign-in at the console may carry: the user scopes and their roles'.
pub fn console_scopes(roles: &BTreeSet<Role>) -> ScopeSet {
    ScopeSet::from_names(
        scope::USER
            .iter()
            .copied()
            .chain(roles.iter().flat_map(|r| r.scopes().iter().copied())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_groups_grant_their_roles_by_name_in_any_case() {
        let map = RoleMap::default();
        let (a, b) = (GroupId::new("g1"), GroupId::new("g2"));
        let roles = map.roles_of([(&a, "help desk ADMINISTRATORS"), (&b, "Everyone")]);
        assert_eq!(roles.into_iter().collect::<Vec<_>>(), vec![Role::Helpdesk]);
        assert!(map.roles_of([(&b, "Everyone")]).is_empty());
    }

    #[test]
    fn a_map_names_groups_by_name_or_id() {
        let map = RoleMap::parse("Tier 1 = helpdesk; 0b7c=security-admin").unwrap();
        let id = GroupId::new("0b7c");
        assert_eq!(
            map.roles_of([(&id, "renamed")])
                .into_iter()
                .collect::<Vec<_>>(),
            vec![Role::SecurityAdmin]
        );
        assert!(map.grants_roles(&GroupId::new("x"), "tier 1"));
        assert!(RoleMap::parse("Tier 1=owner").is_err());
        assert!(RoleMap::parse("nobody").is_err());
        assert!(RoleMap::parse("=helpdesk").is_err());
        assert_eq!(RoleMap::parse("").unwrap().entries.len(), 0);
    }

    #[test]
    fn console_scopes_add_only_the_roles_scopes() {
        let none = console_scopes(&BTreeSet::new());
        assert!(!none.contains(BYPASS_CODES_MANAGE));
        assert!(none.contains("openid"));
        let helpdesk = console_scopes(&BTreeSet::from([Role::Helpdesk]));
        assert!(helpdesk.contains(BYPASS_CODES_MANAGE) && helpdesk.contains(USERS_READ));
        assert!(!helpdesk.contains(BYPASS_CODES_SETTINGS) && !helpdesk.contains(SCIM_USERS));
    }
}
