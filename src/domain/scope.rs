//! OAuth scopes: the names this server knows and set arithmetic on them.

use std::collections::BTreeSet;

pub const SCIM_USERS: &str = "scim:users";
/// SCIM Groups: create, change and delete groups and their members.
pub const SCIM_GROUPS: &str = "scim:groups";
/// Find and read users, without changing them (the help desk).
pub const USERS_READ: &str = "users:read";
/// Read a user's 2-step verification state, without changing it (the help desk).
pub const MFA_READ: &str = "mfa:read";
pub const BYPASS_CODES_MANAGE: &str = "bypass_codes:manage";
pub const BYPASS_CODES_SELF: &str = "bypass_codes:self";
/// Changing the bypass-code policy: apart from `bypass_codes:manage`, so a help desk that
/// generates codes cannot lift its own limits.
pub const BYPASS_CODES_SETTINGS: &str = "bypass_codes:settings";
pub const MFA_MANAGE: &str = "mfa:manage";
/// Reading the audit log of every user (`/AuditEvents`): security administrators.
pub const AUDIT_READ: &str = "audit:read";
/// Approving (or rejecting) another person's request for a bypass code that the policy
/// holds for two people: security administrators.
pub const BYPASS_CODES_APPROVE: &str = "bypass_codes:approve";

/// Scopes an OAuth client may be registered with.
pub const KNOWN: &[&str] = &[
    "openid",
    "profile",
    "email",
    "offline_access",
    SCIM_USERS,
    SCIM_GROUPS,
    USERS_READ,
    BYPASS_CODES_MANAGE,
    BYPASS_CODES_SETTINGS,
    BYPASS_CODES_SELF,
    MFA_MANAGE,
    MFA_READ,
    AUDIT_READ,
    BYPASS_CODES_APPROVE,
];

/// Scopes any user's sign-in may carry. Administrative scopes belong to clients acting for
/// themselves, and to a user's sign-in at the console only as far as the user's roles go
/// (`domain::roles`).
pub const USER: &[&str] = &[
    "openid",
    "profile",
    "email",
    "offline_access",
    BYPASS_CODES_SELF,
];

/// The scopes of the bootstrap administrator client.
pub const ADMIN: &[&str] = &[
    SCIM_USERS,
    SCIM_GROUPS,
    BYPASS_CODES_MANAGE,
    BYPASS_CODES_SETTINGS,
    MFA_MANAGE,
    AUDIT_READ,
];

/// A set of scope tokens, parsed from and printed as a space-separated string (RFC 6749 §3.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    pub fn parse(text: &str) -> Self {
        Self(text.split_ascii_whitespace().map(str::to_owned).collect())
    }

    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self(names.into_iter().map(str::to_owned).collect())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The first scope that is not in [`KNOWN`], if any.
    pub fn first_unknown(&self) -> Option<&str> {
        self.iter().find(|scope| !KNOWN.contains(scope))
    }
}

impl std::fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let joined: Vec<&str> = self.iter().collect();
        f.write_str(&joined.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_space_separated() {
        let scopes = ScopeSet::parse("  scim:users   openid ");
        assert_eq!(scopes.to_string(), "openid scim:users");
        assert!(scopes.contains("openid"));
        assert!(!scopes.contains("email"));
    }

    #[test]
    fn subset_and_unknown() {
        let granted = ScopeSet::parse("scim:users");
        let allowed = ScopeSet::parse("scim:users mfa:manage");
        assert!(granted.is_subset(&allowed));
        assert!(!allowed.is_subset(&granted));
        assert_eq!(
            ScopeSet::parse("openid admin:all").first_unknown(),
            Some("admin:all")
        );
        assert_eq!(allowed.first_unknown(), None);
    }
}
