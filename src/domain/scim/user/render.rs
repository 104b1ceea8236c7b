//! Rendering a stored user as SCIM JSON (RFC 7643 §4.1). One serializer writes it: into a
//! JSON tree ([`User::to_scim`], what projection and PATCH work on) or, for a page of users
//! returned whole, straight into the response's bytes ([`UserResource`]) without building
//! a tree per user first.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::{Email, Name, User, UserAttributes};
use crate::domain::repo::GroupRef;
use crate::domain::scim::common::format_time;
use crate::domain::scim::{MFA_EXTENSION_SCHEMA, USER_SCHEMA};
use crate::domain::totp::TotpStatus;

/// A user as SCIM shows it: its attributes, `id`, `schemas`, `meta` and, when it has any,
/// its read-only `groups`.
pub struct UserResource<'a> {
    pub user: &'a User,
    /// The absolute URL of this user (`meta.location`).
    pub location: &'a str,
    /// The groups the user is in, and the base URL their `$ref`s are under (`…/scim/v2`);
    /// none, or an empty list, leaves `groups` out.
    pub groups: Option<(&'a [GroupRef], &'a str)>,
}

impl User {
    /// The full resource in SCIM JSON; `location` is the absolute URL of this user.
    pub fn to_scim(&self, location: &str) -> Value {
        UserResource {
            user: self,
            location,
            groups: None,
        }
        .tree()
    }
}

impl UserResource<'_> {
    /// The resource as a JSON tree, for what works on one (projection, PATCH).
    pub fn tree(&self) -> Value {
        tree(self)
    }
}

impl Serialize for UserResource<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let user = self.user;
        // The extension appears when it has a value: a TOTP factor or a stored mfaRequired.
        let extension = Extension {
            required: user.attributes.mfa_required,
            totp: user.totp,
        };
        let mut map = serializer.serialize_map(None)?;
        if extension.is_empty() {
            map.serialize_entry("schemas", &[USER_SCHEMA])?;
        } else {
            map.serialize_entry("schemas", &[USER_SCHEMA, MFA_EXTENSION_SCHEMA])?;
        }
        map.serialize_entry("id", user.id.as_str())?;
        write_attributes(&mut map, &user.attributes, &extension)?;
        if let Some((groups, base)) = self.groups.filter(|(g, _)| !g.is_empty()) {
            map.serialize_entry("groups", &Groups { groups, base })?;
        }
        map.serialize_entry(
            "meta",
            &Meta {
                resource_type: "User",
                created: format_time(user.created),
                last_modified: format_time(user.last_modified),
                location: self.location,
                version: user.etag(),
            },
        )?;
        map.end()
    }
}

/// The client-writable attributes in SCIM JSON: what [`User::to_scim`] shows and PATCH edits.
pub(super) fn attributes_to_json(attrs: &UserAttributes) -> Map<String, Value> {
    struct Attributes<'a>(&'a UserAttributes);
    impl Serialize for Attributes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(None)?;
            let extension = Extension {
                required: self.0.mfa_required,
                totp: TotpStatus::None,
            };
            write_attributes(&mut map, self.0, &extension)?;
            map.end()
        }
    }
    match tree(&Attributes(attrs)) {
        Value::Object(object) => object,
        _ => Map::new(),
    }
}

/// A JSON tree of what only writes strings, booleans and maps with string keys, which
/// cannot fail.
fn tree(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_default()
}

fn write_attributes<M: SerializeMap>(
    map: &mut M,
    attrs: &UserAttributes,
    extension: &Extension,
) -> Result<(), M::Error> {
    let mut put = |key: &str, value: &Option<String>| match value {
        Some(value) => map.serialize_entry(key, value),
        None => Ok(()),
    };
    put("externalId", &attrs.external_id)?;
    put("displayName", &attrs.display_name)?;
    put("nickName", &attrs.nick_name)?;
    put("profileUrl", &attrs.profile_url)?;
    put("title", &attrs.title)?;
    put("userType", &attrs.user_type)?;
    put("preferredLanguage", &attrs.preferred_language)?;
    put("locale", &attrs.locale)?;
    put("timezone", &attrs.timezone)?;
    map.serialize_entry("userName", &attrs.user_name)?;
    if !NameView(&attrs.name).is_empty() {
        map.serialize_entry("name", &NameView(&attrs.name))?;
    }
    if let Some(active) = attrs.active {
        map.serialize_entry("active", &active)?;
    }
    if !extension.is_empty() {
        map.serialize_entry(MFA_EXTENSION_SCHEMA, extension)?;
    }
    if !attrs.emails.is_empty() {
        map.serialize_entry("emails", &Emails(&attrs.emails))?;
    }
    Ok(())
}

struct NameView<'a>(&'a Name);

impl NameView<'_> {
    fn parts(&self) -> [(&'static str, &Option<String>); 6] {
        let name = self.0;
        [
            ("formatted", &name.formatted),
            ("familyName", &name.family_name),
            ("givenName", &name.given_name),
            ("middleName", &name.middle_name),
            ("honorificPrefix", &name.honorific_prefix),
            ("honorificSuffix", &name.honorific_suffix),
        ]
    }

    fn is_empty(&self) -> bool {
        self.parts().iter().all(|(_, value)| value.is_none())
    }
}

impl Serialize for NameView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.parts() {
            if let Some(value) = value {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

struct Emails<'a>(&'a [Email]);

impl Serialize for Emails<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(EmailView))
    }
}

struct EmailView<'a>(&'a Email);

impl Serialize for EmailView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let email = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("value", &email.value)?;
        if let Some(kind) = &email.kind {
            map.serialize_entry("type", kind)?;
        }
        if let Some(display) = &email.display {
            map.serialize_entry("display", display)?;
        }
        map.serialize_entry("primary", &email.primary)?;
        map.end()
    }
}

/// The MFA extension's attributes: `mfaRequired` when stored, `totpStatus` when a factor is
/// pending or enrolled (rendered resources only: PATCH does not edit it).
struct Extension {
    required: Option<bool>,
    totp: TotpStatus,
}

impl Extension {
    fn is_empty(&self) -> bool {
        self.required.is_none() && self.totp == TotpStatus::None
    }
}

impl Serialize for Extension {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(required) = self.required {
            map.serialize_entry("mfaRequired", &required)?;
        }
        if self.totp != TotpStatus::None {
            map.serialize_entry("totpStatus", self.totp.as_str())?;
        }
        map.end()
    }
}

struct Groups<'a> {
    groups: &'a [GroupRef],
    base: &'a str,
}

impl Serialize for Groups<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.groups.iter().map(|group| GroupEntry {
            group,
            base: self.base,
        }))
    }
}

struct GroupEntry<'a> {
    group: &'a GroupRef,
    base: &'a str,
}

impl Serialize for GroupEntry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let id = self.group.id.as_str();
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("value", id)?;
        map.serialize_entry("$ref", &format!("{}/Groups/{id}", self.base))?;
        map.serialize_entry("display", &self.group.display_name)?;
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    resource_type: &'static str,
    created: String,
    last_modified: String,
    location: &'a str,
    version: String,
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::domain::ids::{GroupId, UserId};

    fn everything() -> User {
        let some = |s: &str| Some(s.to_owned());
        User {
            id: UserId::new("u-1"),
            attributes: UserAttributes {
                user_name: "bjensen".into(),
                external_id: some("ext-1"),
                name: Name {
                    formatted: some("Ms. Barbara J Jensen III"),
                    family_name: some("Jensen"),
                    given_name: some("Barbara"),
                    middle_name: some("Jane"),
                    honorific_prefix: some("Ms."),
                    honorific_suffix: some("III"),
                },
                display_name: some("Babs"),
                nick_name: some("Babs"),
                profile_url: some("https://example.com/bjensen"),
                title: some("Tour Guide"),
                user_type: some("Employee"),
                preferred_language: some("en-US"),
                locale: some("en-US"),
                timezone: some("America/Los_Angeles"),
                active: Some(true),
                emails: vec![
                    Email {
                        value: "b@home.example".into(),
                        kind: some("home"),
                        primary: false,
                        display: Some("\"home\" \\ 🏠".into()),
                    },
                    Email {
                        value: "bjensen@example.com".into(),
                        kind: None,
                        primary: true,
                        display: None,
                    },
                ],
                mfa_required: Some(false),
            },
            version: 3,
            created: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            last_modified: Utc.timestamp_millis_opt(1_700_000_100_456).unwrap(),
            totp: TotpStatus::Pending,
        }
    }

    #[test]
    fn every_attribute_is_rendered_under_its_scim_name() {
        let user = everything();
        let groups = vec![GroupRef {
            id: GroupId::new("g-1"),
            display_name: "Tour \"Guides\"".into(),
        }];
        let resource = UserResource {
            user: &user,
            location: "https://idp.example/scim/v2/Users/u-1",
            groups: Some((&groups, "https://idp.example/scim/v2")),
        };
        let expected = json!({
            "schemas": [USER_SCHEMA, MFA_EXTENSION_SCHEMA],
            "id": "u-1",
            "externalId": "ext-1",
            "userName": "bjensen",
            "name": {
                "formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen",
                "givenName": "Barbara", "middleName": "Jane", "honorificPrefix": "Ms.",
                "honorificSuffix": "III",
            },
            "displayName": "Babs", "nickName": "Babs",
            "profileUrl": "https://example.com/bjensen", "title": "Tour Guide",
            "userType": "Employee", "preferredLanguage": "en-US", "locale": "en-US",
            "timezone": "America/Los_Angeles", "active": true,
            MFA_EXTENSION_SCHEMA: {"mfaRequired": false, "totpStatus": "pending"},
            "emails": [
                {"value": "b@home.example", "type": "home", "display": "\"home\" \\ 🏠", "primary": false},
                {"value": "bjensen@example.com", "primary": true},
            ],
            "groups": [{"value": "g-1", "$ref": "https://idp.example/scim/v2/Groups/g-1",
                        "display": "Tour \"Guides\""}],
            "meta": {
                "resourceType": "User", "created": "2023-11-14T22:13:20.123Z",
                "lastModified": "2023-11-14T22:15:00.456Z",
                "location": "https://idp.example/scim/v2/Users/u-1", "version": "W/\"3\"",
            },
        });
        // Written into a tree and written as bytes, the same resource.
        assert_eq!(tree(&resource), expected);
        let bytes = serde_json::to_vec(&resource).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), expected);
        // Without groups (or with none), and what PATCH edits: no `id`, `meta` or TOTP state.
        let mut alone = expected.clone();
        alone.as_object_mut().unwrap().remove("groups");
        assert_eq!(user.to_scim("https://idp.example/scim/v2/Users/u-1"), alone);
        let attributes = Value::Object(attributes_to_json(&user.attributes));
        let mut edited = alone;
        let object = edited.as_object_mut().unwrap();
        for key in ["schemas", "id", "meta"] {
            object.remove(key);
        }
        object.insert(MFA_EXTENSION_SCHEMA.into(), json!({"mfaRequired": false}));
        assert_eq!(attributes, edited);
    }

    #[test]
    fn unassigned_attributes_are_left_out() {
        let mut user = everything();
        user.attributes = UserAttributes {
            user_name: "bare".into(),
            external_id: None,
            name: Name::default(),
            display_name: None,
            nick_name: None,
            profile_url: None,
            title: None,
            user_type: None,
            preferred_language: None,
            locale: None,
            timezone: None,
            active: None,
            emails: Vec::new(),
            mfa_required: None,
        };
        user.totp = TotpStatus::None;
        let rendered = user.to_scim("loc");
        let keys: Vec<&str> = rendered
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["id", "meta", "schemas", "userName"]);
        assert_eq!(rendered["schemas"], json!([USER_SCHEMA]));
    }
}
