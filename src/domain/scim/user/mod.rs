//! The SCIM User resource: its types, and the modules that read and render it (`json`),
//! change it (`patch`), cut it down (`projection`), search it (`query`) and write it out
//! (`render`). Everything works
//! on the canonical JSON form that [`normalize`] produces, so attribute names are matched
//! case-insensitively in one place.

mod json;
mod patch;
mod projection;
mod query;
mod render;

use chrono::{DateTime, Utc};

use super::common::etag_for_version;
use crate::domain::ids::UserId;
use crate::domain::secret::Secret;
use crate::domain::totp::TotpStatus;

pub use super::common::format_time;
pub use json::{MAX_EMAILS, normalize, parse_user};
pub use patch::apply_patch;
pub use projection::{
    ATTRIBUTE_LIST_PATTERN, ATTRIBUTE_PATTERN, is_attribute_path, parse_attribute_list, project,
};
pub use query::{FieldKind, FilterValue, UserField, UserFilter, resolve_filter, resolve_sort};
pub use render::UserResource;

/// Shorter passwords are refused in a POST, a PUT and a PATCH alike.
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Name {
    pub formatted: Option<String>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub honorific_prefix: Option<String>,
    pub honorific_suffix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub value: String,
    pub kind: Option<String>,
    pub primary: bool,
    pub display: Option<String>,
}

/// The client-writable attributes of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAttributes {
    pub user_name: String,
    pub external_id: Option<String>,
    pub name: Name,
    pub display_name: Option<String>,
    pub nick_name: Option<String>,
    pub profile_url: Option<String>,
    pub title: Option<String>,
    pub user_type: Option<String>,
    pub preferred_language: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    /// `None` when a client removed the attribute; only `Some(false)` blocks sign-in.
    pub active: Option<bool>,
    pub emails: Vec<Email>,
    /// Require 2-step verification at every sign-in (MFA extension); `None`: unassigned.
    pub mfa_required: Option<bool>,
}

/// What a POST, PUT or PATCH asks to store.
#[derive(Debug)]
pub struct UserWrite {
    pub attributes: UserAttributes,
    /// `None` keeps the current password (or none for a new user).
    pub password: Option<Secret>,
}

/// A stored user as the domain sees it.
#[derive(Clone, Debug)]
pub struct User {
    pub id: UserId,
    pub attributes: UserAttributes,
    pub version: i64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub totp: TotpStatus,
}

impl User {
    /// Only an explicit `active: false` blocks a user; unassigned means active.
    pub fn is_active(&self) -> bool {
        self.attributes.active != Some(false)
    }

    pub fn etag(&self) -> String {
        etag_for_version(self.version)
    }
}

/// Users the tests of every concern start from.
#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::Utc;
    use serde_json::{Value, json};

    use super::{User, UserWrite};
    use crate::domain::ids::UserId;
    use crate::domain::scim::USER_SCHEMA;
    use crate::domain::totp::TotpStatus;

    /// A POST body with names, two emails, a password and read-only attributes to ignore.
    pub(super) fn sample_body() -> Value {
        json!({
            "schemas": [USER_SCHEMA],
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@example.org", "type": "home"}
            ],
            "password": "correct horse battery",
            "id": "ignored", "meta": {"version": "ignored"}
        })
    }

    /// The user a store returns for `write`, enrolled in TOTP.
    pub(crate) fn stored(write: UserWrite) -> User {
        let now = Utc::now();
        User {
            id: UserId::new("u1"),
            attributes: write.attributes,
            version: 1,
            created: now,
            last_modified: now,
            totp: TotpStatus::Enrolled,
        }
    }
}
