//! User JSON: validating a request body into canonical form, and building what to store
//! from it (rendering a stored user is `render`'s).

use chrono::DateTime;
use serde_json::{Map, Value};

use super::{Email, MIN_PASSWORD_CHARS, Name, UserAttributes, UserWrite};
use crate::domain::scim::common::{check_schemas_with, invalid_syntax, invalid_value};
use crate::domain::scim::schema::{self, AttrDef, AttrType, Mutability};
use crate::domain::scim::{MFA_EXTENSION_SCHEMA, ScimViolation, USER_SCHEMA};
use crate::domain::secret::Secret;

/// The most values one multi-valued attribute may hold.
pub const MAX_EMAILS: usize = 32;

/// Validates a value against an attribute definition and returns it with canonical
/// attribute names; `None` for null (unassigned) and for read-only attributes.
fn normalize_value(
    def: &AttrDef,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, ScimViolation> {
    if value.is_null() || def.mutability == Mutability::ReadOnly {
        return Ok(None);
    }
    if def.multi_valued {
        let items = value
            .as_array()
            .ok_or_else(|| invalid_syntax(format!("\"{path}\" must be an array")))?;
        if items.len() > MAX_EMAILS {
            return Err(invalid_value(format!(
                "\"{path}\" has {} values; at most {MAX_EMAILS} are accepted",
                items.len()
            )));
        }
        let mut normalized = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = normalize_single(def, item, &format!("{path}[{i}]"))? {
                normalized.push(v);
            }
        }
        return Ok(Some(Value::Array(normalized)));
    }
    normalize_single(def, value, path)
}

fn normalize_single(
    def: &AttrDef,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, ScimViolation> {
    match def.ty {
        AttrType::String | AttrType::Reference => {
            let text = value
                .as_str()
                .ok_or_else(|| invalid_syntax(format!("\"{path}\" must be a string")))?;
            let chars = text.chars().count();
            if chars > def.max_len {
                return Err(invalid_value(format!(
                    "\"{path}\" is {chars} characters long; at most {} are accepted",
                    def.max_len
                )));
            }
            if text.chars().any(|c| c == '\0') {
                return Err(invalid_value(format!(
                    "\"{path}\" must not contain NUL characters"
                )));
            }
            Ok(Some(Value::String(text.to_owned())))
        }
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(Some(value.clone())),
            _ => Err(invalid_syntax(format!("\"{path}\" must be true or false"))),
        },
        AttrType::DateTime => {
            let text = value.as_str().unwrap_or_default();
            DateTime::parse_from_rfc3339(text)
                .map(|_| Some(value.clone()))
                .map_err(|_| invalid_syntax(format!("\"{path}\" must be an RFC 3339 date-time")))
        }
        AttrType::Complex => {
            let object = value
                .as_object()
                .ok_or_else(|| invalid_syntax(format!("\"{path}\" must be an object")))?;
            let normalized = normalize_object(def.sub_attributes, object, path)?;
            Ok(Some(Value::Object(normalized)))
        }
    }
}

fn normalize_object(
    defs: &[AttrDef],
    object: &Map<String, Value>,
    parent: &str,
) -> Result<Map<String, Value>, ScimViolation> {
    let mut out = Map::new();
    for (key, value) in object {
        // An extension object may carry its own `schemas`; it says nothing new.
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let def = schema::find(defs, key).ok_or_else(|| {
            invalid_value(format!(
                "\"{parent}\" has no sub-attribute \"{key}\"; see /scim/v2/Schemas"
            ))
        })?;
        let path = format!("{parent}.{}", def.name);
        if let Some(v) = normalize_value(def, value, &path)?
            && out.insert(def.name.to_owned(), v).is_some()
        {
            return Err(invalid_syntax(format!("\"{path}\" is given twice")));
        }
    }
    Ok(out)
}

/// Validates a User body and returns it keyed by canonical attribute names, without the
/// `schemas` member and without read-only attributes. Unknown attributes are refused rather
/// than dropped, so that a provisioning client learns that data would be lost.
pub fn normalize(body: &Value) -> Result<Map<String, Value>, ScimViolation> {
    let object = body
        .as_object()
        .ok_or_else(|| invalid_syntax("the request body must be a JSON object"))?;
    check_schemas_with(object, USER_SCHEMA, &[MFA_EXTENSION_SCHEMA])?;
    let prefix = format!("{USER_SCHEMA}:");
    let mut out = Map::new();
    for (key, value) in object {
        let name = match key.get(..prefix.len()) {
            Some(head) if head.eq_ignore_ascii_case(&prefix) => &key[prefix.len()..],
            _ => key.as_str(),
        };
        if name.eq_ignore_ascii_case("schemas")
            || schema::READ_ONLY_COMMON
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let def = schema::find_user_attr(name).ok_or_else(|| {
            if name.starts_with("urn:") {
                invalid_value(format!("unknown schema extension \"{name}\"; see /scim/v2/Schemas"))
            } else {
                invalid_value(format!(
                    "unknown attribute \"{name}\"; the User attributes are listed at /scim/v2/Schemas"
                ))
            }
        })?;
        if let Some(v) = normalize_value(def, value, def.name)?
            && out.insert(def.name.to_owned(), v).is_some()
        {
            return Err(invalid_syntax(format!("\"{}\" is given twice", def.name)));
        }
    }
    Ok(out)
}

fn take_string(object: &mut Map<String, Value>, key: &str) -> Option<String> {
    match object.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Builds the attributes to store from a normalized body.
pub(super) fn from_normalized(mut object: Map<String, Value>) -> Result<UserWrite, ScimViolation> {
    let user_name = take_string(&mut object, "userName")
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| invalid_value("\"userName\" is required and must not be blank"))?;
    let password = match take_string(&mut object, "password") {
        Some(p) if p.chars().count() < MIN_PASSWORD_CHARS => {
            return Err(invalid_value(format!(
                "\"password\" must be at least {MIN_PASSWORD_CHARS} characters long"
            )));
        }
        other => other.map(Secret::new),
    };
    let mut name_object = match object.remove("name") {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let name = Name {
        formatted: take_string(&mut name_object, "formatted"),
        family_name: take_string(&mut name_object, "familyName"),
        given_name: take_string(&mut name_object, "givenName"),
        middle_name: take_string(&mut name_object, "middleName"),
        honorific_prefix: take_string(&mut name_object, "honorificPrefix"),
        honorific_suffix: take_string(&mut name_object, "honorificSuffix"),
    };
    let mut emails = Vec::new();
    if let Some(Value::Array(items)) = object.remove("emails") {
        for (i, item) in items.into_iter().enumerate() {
            let Value::Object(mut entry) = item else {
                continue;
            };
            let value = take_string(&mut entry, "value")
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| invalid_value(format!("\"emails[{i}].value\" is required")))?;
            emails.push(Email {
                value,
                kind: take_string(&mut entry, "type"),
                primary: entry
                    .get("primary")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                display: take_string(&mut entry, "display"),
            });
        }
    }
    if emails.iter().filter(|e| e.primary).count() > 1 {
        return Err(invalid_value(
            "at most one of \"emails\" may have \"primary\": true",
        ));
    }
    let attributes = UserAttributes {
        user_name,
        external_id: take_string(&mut object, "externalId"),
        name,
        display_name: take_string(&mut object, "displayName"),
        nick_name: take_string(&mut object, "nickName"),
        profile_url: take_string(&mut object, "profileUrl"),
        title: take_string(&mut object, "title"),
        user_type: take_string(&mut object, "userType"),
        preferred_language: take_string(&mut object, "preferredLanguage"),
        locale: take_string(&mut object, "locale"),
        timezone: take_string(&mut object, "timezone"),
        active: object.get("active").and_then(Value::as_bool),
        mfa_required: object
            .get(MFA_EXTENSION_SCHEMA)
            .and_then(|ext| ext.get("mfaRequired"))
            .and_then(Value::as_bool),
        emails,
    };
    Ok(UserWrite {
        attributes,
        password,
    })
}

/// Parses the body of a POST or PUT; `active` defaults to true there.
pub fn parse_user(body: &Value) -> Result<UserWrite, ScimViolation> {
    let mut write = from_normalized(normalize(body)?)?;
    write.attributes.active.get_or_insert(true);
    Ok(write)
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::parse_user;
    use crate::domain::scim::schema::{self, AttrDef, AttrType, Mutability};
    use crate::domain::scim::user::fixtures::{sample_body, stored};
    use crate::domain::scim::{MFA_EXTENSION_SCHEMA, ScimType, USER_SCHEMA};

    #[test]
    fn parses_a_full_user_ignoring_read_only_attributes() {
        let write = parse_user(&sample_body()).unwrap();
        assert_eq!(write.attributes.user_name, "bjensen");
        assert_eq!(write.attributes.name.given_name.as_deref(), Some("Barbara"));
        assert_eq!(write.attributes.emails.len(), 2);
        assert_eq!(
            write.attributes.active,
            Some(true),
            "active defaults to true"
        );
        assert_eq!(write.password.unwrap().expose(), "correct horse battery");
    }

    #[test]
    fn attribute_names_are_case_insensitive() {
        let write = parse_user(
            &json!({"SCHEMAS": [USER_SCHEMA], "USERNAME": "x", "Name": {"GIVENNAME": "A"}}),
        )
        .unwrap();
        assert_eq!(write.attributes.user_name, "x");
        assert_eq!(write.attributes.name.given_name.as_deref(), Some("A"));
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let cases = [
            (json!([]), ScimType::InvalidSyntax),
            (json!({"userName": "x"}), ScimType::InvalidValue),
            (
                json!({"schemas": ["urn:example:Unknown", USER_SCHEMA], "userName": "x"}),
                ScimType::InvalidValue,
            ),
            (json!({"schemas": [USER_SCHEMA]}), ScimType::InvalidValue),
            (
                json!({"schemas": [USER_SCHEMA], "userName": "  "}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": [USER_SCHEMA], "userName": 7}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"schemas": [USER_SCHEMA], "userName": "x", "active": "yes"}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"schemas": [USER_SCHEMA], "userName": "x".repeat(257)}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": [USER_SCHEMA], "userName": "a\u{0}b"}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": [USER_SCHEMA], "userName": "x", "shoeSize": 9}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": [USER_SCHEMA], "userName": "x", "password": "short"}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": [USER_SCHEMA], "userName": "x", "emails": [{"type": "work"}]}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": [USER_SCHEMA], "userName": "x",
                       "emails": [{"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}]}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": [USER_SCHEMA], "userName": "x", "username": "z"}),
                ScimType::InvalidSyntax,
            ),
        ];
        for (body, expected) in cases {
            let err = parse_user(&body).unwrap_err();
            assert_eq!(err.scim_type, expected, "{body}: {}", err.detail);
        }
    }

    #[test]
    fn renders_what_it_parsed() {
        let user = stored(parse_user(&sample_body()).unwrap());
        let rendered = user.to_scim("https://idp/scim/v2/Users/u1");
        assert_eq!(rendered["meta"]["version"], "W/\"1\"");
        assert!(
            rendered.get("password").is_none(),
            "password is never returned"
        );
        let reparsed = parse_user(&rendered).unwrap();
        assert_eq!(reparsed.attributes, user.attributes);
    }

    /// A value of the right type for a leaf attribute, different from every default.
    fn sample_value(def: &AttrDef) -> Value {
        match def.ty {
            AttrType::Boolean => json!(false),
            AttrType::DateTime => json!("2026-01-31T12:00:00Z"),
            _ => json!(format!("{}-sample", def.name)),
        }
    }

    #[test]
    fn every_writable_schema_attribute_survives_parse_and_render() {
        // Parsing and rendering name each attribute by hand; a schema attribute that one of
        // them forgets would be accepted and then silently dropped.
        let tops = schema::USER_ATTRIBUTES
            .iter()
            .chain([&schema::EXTERNAL_ID, &schema::MFA_EXTENSION]);
        let writable = |def: &&AttrDef| def.mutability == Mutability::ReadWrite;
        let mut body = Map::new();
        let mut leaves = Vec::new();
        for def in tops.filter(writable) {
            let value = if def.ty == AttrType::Complex {
                let mut object = Map::new();
                for sub in def.sub_attributes.iter().filter(writable) {
                    object.insert(sub.name.to_owned(), sample_value(sub));
                    let index = if def.multi_valued { "/0" } else { "" };
                    leaves.push(format!("/{}{index}/{}", def.name, sub.name));
                }
                if def.multi_valued {
                    json!([object])
                } else {
                    Value::Object(object)
                }
            } else {
                leaves.push(format!("/{}", def.name));
                sample_value(def)
            };
            body.insert(def.name.to_owned(), value);
        }
        body.insert("schemas".into(), json!([USER_SCHEMA, MFA_EXTENSION_SCHEMA]));
        let body = Value::Object(body);
        let rendered = stored(parse_user(&body).unwrap()).to_scim("loc");
        for leaf in leaves {
            assert_eq!(rendered.pointer(&leaf), body.pointer(&leaf), "{leaf}");
        }
    }
}
