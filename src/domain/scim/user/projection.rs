//! Projection (RFC 7644 §3.4.2.5): cutting a rendered resource down to the `attributes` a
//! client asked for, or without its `excludedAttributes`.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::domain::scim::filter::{AttrPath, parse_patch_path};
use crate::domain::scim::{ScimType, ScimViolation};

/// Reduces a rendered resource to what `attributes` / `excludedAttributes` ask for
/// (RFC 7644 §3.4.2.5). `id` and `schemas` are always returned.
pub fn project(resource: Value, attributes: &[AttrPath], excluded: &[AttrPath]) -> Value {
    let Value::Object(mut object) = resource else {
        return resource;
    };
    let always = |key: &str| key == "id" || key == "schemas";
    if !attributes.is_empty() {
        let mut kept = Map::new();
        for (key, value) in std::mem::take(&mut object) {
            if always(&key) {
                kept.insert(key, value);
                continue;
            }
            let wanted: Vec<&AttrPath> = attributes
                .iter()
                .filter(|a| a.attr.eq_ignore_ascii_case(&key))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            if wanted.iter().any(|a| a.sub_attr.is_none()) {
                kept.insert(key, value);
                continue;
            }
            let subs: Vec<&str> = wanted
                .iter()
                .filter_map(|a| a.sub_attr.as_deref())
                .collect();
            let keep_subs = |v: Value| match v {
                Value::Object(map) => Value::Object(
                    map.into_iter()
                        .filter(|(k, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(k)))
                        .collect(),
                ),
                other => other,
            };
            let reduced = match value {
                Value::Array(items) => Value::Array(items.into_iter().map(keep_subs).collect()),
                other => keep_subs(other),
            };
            kept.insert(key, reduced);
        }
        object = kept;
    }
    for path in excluded {
        let Some(key) = object
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&path.attr))
            .cloned()
        else {
            continue;
        };
        if always(&key) {
            continue;
        }
        match &path.sub_attr {
            None => {
                object.remove(&key);
            }
            Some(sub) => {
                let strip = |v: &mut Value| {
                    if let Some(map) = v.as_object_mut() {
                        map.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                    }
                };
                match object.get_mut(&key) {
                    Some(Value::Array(items)) => items.iter_mut().for_each(strip),
                    Some(other) => strip(other),
                    None => {}
                }
            }
        }
    }
    Value::Object(object)
}

/// One attribute path as `attributes` takes it: a name, an optional sub-attribute and an
/// optional schema URN prefix (`urn:ietf:params:scim:schemas:core:2.0:User:name.givenName`).
macro_rules! attribute_path {
    () => {
        r"(?:urn:[A-Za-z0-9:._-]*:)?[A-Za-z$][A-Za-z0-9_$-]*(?:\.[A-Za-z$][A-Za-z0-9_$-]*)?"
    };
}

/// One attribute path, as an item of a SearchRequest's `attributes` array.
pub const ATTRIBUTE_PATTERN: &str = concat!("^ *", attribute_path!(), " *$");

/// What `attributes` and `excludedAttributes` accept: comma-separated attribute paths, or
/// nothing. The OpenAPI document declares these patterns and [`parse_attribute_list`]
/// enforces them, so what the document allows is what the server takes; names it does not
/// know select nothing.
pub const ATTRIBUTE_LIST_PATTERN: &str = concat!(
    "^ *(?:",
    attribute_path!(),
    "(?: *, *",
    attribute_path!(),
    ")*)? *$"
);

/// Whether `text` is one attribute path ([`ATTRIBUTE_PATTERN`]).
pub fn is_attribute_path(text: &str) -> bool {
    static ATTRIBUTE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(ATTRIBUTE_PATTERN).expect("ATTRIBUTE_PATTERN compiles"));
    ATTRIBUTE.is_match(text)
}

static ATTRIBUTE_LIST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(ATTRIBUTE_LIST_PATTERN).expect("ATTRIBUTE_LIST_PATTERN compiles"));

/// Parses a comma-separated `attributes` or `excludedAttributes` parameter.
pub fn parse_attribute_list(text: &str) -> Result<Vec<AttrPath>, ScimViolation> {
    if !ATTRIBUTE_LIST.is_match(text) {
        return Err(ScimViolation::new(
            ScimType::InvalidValue,
            "an attribute list is comma-separated attribute names such as \"userName,name.givenName\"",
        ));
    }
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            parse_patch_path(s)
                .map(|p| p.attr)
                .map_err(|e| ScimViolation::new(ScimType::InvalidValue, e.detail))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{parse_attribute_list, project};
    use crate::domain::scim::user::fixtures::{sample_body, stored};
    use crate::domain::scim::user::parse_user;

    #[test]
    fn projection_keeps_id_and_schemas() {
        let user = stored(parse_user(&sample_body()).unwrap());
        let rendered = user.to_scim("loc");
        let only = project(
            rendered.clone(),
            &parse_attribute_list("userName,name.givenName").unwrap(),
            &[],
        );
        let keys: Vec<&String> = only.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert_eq!(only["name"], json!({"givenName": "Barbara"}));
        let without = project(
            rendered,
            &[],
            &parse_attribute_list("emails,name.familyName,id").unwrap(),
        );
        assert!(without.get("emails").is_none());
        assert!(without["name"].get("familyName").is_none());
        assert_eq!(without["id"], "u1");
    }

    #[test]
    fn attribute_lists_are_what_the_pattern_says() {
        for accepted in [
            "",
            "userName",
            " userName , name.givenName ",
            "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName,emails",
            "unknownButWellFormed",
        ] {
            assert!(parse_attribute_list(accepted).is_ok(), "{accepted:?}");
        }
        for refused in [
            "8",
            "a.b.c",
            "emails[type eq \"work\"]",
            "a,,b",
            "a,",
            "\tuserName",
            "é",
        ] {
            assert!(parse_attribute_list(refused).is_err(), "{refused:?}");
        }
        assert!(super::is_attribute_path("name.givenName"));
        assert!(!super::is_attribute_path(""));
    }
}
