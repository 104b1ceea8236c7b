//! User PATCH (RFC 7644 §3.5.2): applying add, replace and remove operations to the canonical
//! JSON of a user, value filters such as `emails[type eq "work"]` included.

use serde_json::{Map, Value, json};

use super::json::{from_normalized, normalize};
use super::render::attributes_to_json;
use super::{MIN_PASSWORD_CHARS, User, UserWrite};
use crate::domain::scim::common::{check_schemas, compare_strings, invalid_syntax, invalid_value};
use crate::domain::scim::filter::{
    AttrPath, CompareOp, Filter, Literal, PatchPath, parse_patch_path,
};
use crate::domain::scim::schema::{self, AttrDef, AttrType, Mutability};
use crate::domain::scim::{
    MAX_PATCH_OPERATIONS, MFA_EXTENSION_SCHEMA, PATCH_OP_SCHEMA, ScimType, ScimViolation,
    USER_SCHEMA,
};
use crate::domain::secret::Secret;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchOpKind {
    Add,
    Replace,
    Remove,
}

/// Applies a PatchOp body (RFC 7644 §3.5.2) to a user and returns what to store. The
/// operations run on the canonical JSON of the user, which is then validated as a whole:
/// a PATCH can never store what a PUT would refuse.
pub fn apply_patch(user: &User, body: &Value) -> Result<UserWrite, ScimViolation> {
    let object = body
        .as_object()
        .ok_or_else(|| invalid_syntax("the request body must be a JSON object"))?;
    check_schemas(object, PATCH_OP_SCHEMA)?;
    let operations = object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(|| invalid_syntax("\"Operations\" is required and must be an array"))?;
    if operations.is_empty() {
        return Err(invalid_value(
            "\"Operations\" must contain at least one operation",
        ));
    }
    if operations.len() > MAX_PATCH_OPERATIONS {
        return Err(ScimViolation::new(
            ScimType::TooMany,
            format!("at most {MAX_PATCH_OPERATIONS} operations are accepted in one PATCH"),
        ));
    }
    let mut doc = attributes_to_json(&user.attributes);
    let mut password = None;
    for (i, operation) in operations.iter().enumerate() {
        let operation = operation
            .as_object()
            .ok_or_else(|| invalid_syntax(format!("\"Operations[{i}]\" must be an object")))?;
        let get = |name: &str| {
            operation
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let kind = match get("op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => PatchOpKind::Add,
            Some("replace") => PatchOpKind::Replace,
            Some("remove") => PatchOpKind::Remove,
            _ => {
                return Err(invalid_value(format!(
                    "\"Operations[{i}].op\" must be \"add\", \"replace\" or \"remove\""
                )));
            }
        };
        let path = match get("path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(parse_patch_path(p)?),
            Some(_) => {
                return Err(invalid_syntax(format!(
                    "\"Operations[{i}].path\" must be a string"
                )));
            }
        };
        let value = get("value");
        if kind != PatchOpKind::Remove && value.is_none() {
            return Err(invalid_value(format!(
                "\"Operations[{i}].value\" is required for add and replace"
            )));
        }
        apply_operation(&mut doc, &mut password, kind, path.as_ref(), value)?;
    }
    doc.insert("schemas".into(), json!([USER_SCHEMA]));
    // Not parse_user: an `active` the operations removed stays unassigned.
    let mut write = from_normalized(normalize(&Value::Object(doc))?)?;
    if password.is_some() {
        write.password = password;
    }
    Ok(write)
}

/// Microsoft Entra sends booleans as the strings "True" and "False" in PATCH values.
fn coerce_boolean(def: &AttrDef, value: &Value) -> Value {
    match (def.ty, value.as_str()) {
        (AttrType::Boolean, Some(s)) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
        (AttrType::Boolean, Some(s)) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
        _ => value.clone(),
    }
}

/// The top-level attribute a path names and the sub-attribute within it, if any. The MFA
/// extension is addressed as `urn:…:mfa:2.0:User` (whole) or `urn:…:mfa:2.0:User:attr`.
fn resolve_top(attr: &AttrPath) -> Result<(&'static AttrDef, Option<String>), ScimViolation> {
    let unknown = |what: String| ScimViolation::new(ScimType::InvalidPath, what);
    match &attr.schema {
        Some(schema) if schema.eq_ignore_ascii_case(MFA_EXTENSION_SCHEMA) => {
            return Ok((&schema::MFA_EXTENSION, Some(attr.attr.clone())));
        }
        Some(schema)
            if format!("{schema}:{}", attr.attr).eq_ignore_ascii_case(MFA_EXTENSION_SCHEMA) =>
        {
            return Ok((&schema::MFA_EXTENSION, attr.sub_attr.clone()));
        }
        Some(schema) if !schema.eq_ignore_ascii_case(USER_SCHEMA) => {
            return Err(unknown(format!("unknown schema \"{schema}\" in path")));
        }
        _ => {}
    }
    let def = schema::find_user_attr(&attr.attr)
        .ok_or_else(|| unknown(format!("unknown attribute \"{}\"", attr.attr)))?;
    Ok((def, attr.sub_attr.clone()))
}

fn apply_operation(
    doc: &mut Map<String, Value>,
    password: &mut Option<Secret>,
    kind: PatchOpKind,
    path: Option<&PatchPath>,
    value: Option<&Value>,
) -> Result<(), ScimViolation> {
    let Some(path) = path else {
        if kind == PatchOpKind::Remove {
            return Err(ScimViolation::new(
                ScimType::NoTarget,
                "\"remove\" requires a \"path\"",
            ));
        }
        let object = value.and_then(Value::as_object).ok_or_else(|| {
            invalid_syntax("without a \"path\", \"value\" must be an object of attributes")
        })?;
        for (key, v) in object {
            let attr = filter_attr_path(key)?;
            let target = PatchPath {
                attr,
                value_filter: None,
                sub_attr: None,
            };
            apply_operation(doc, password, kind, Some(&target), Some(v))?;
        }
        return Ok(());
    };
    let (def, sub_attr) = resolve_top(&path.attr)?;
    if def.mutability == Mutability::ReadOnly {
        return Err(ScimViolation::new(
            ScimType::Mutability,
            format!("\"{}\" is read-only", def.name),
        ));
    }
    if def.name == "password" {
        return match kind {
            PatchOpKind::Remove => Err(ScimViolation::new(
                ScimType::Mutability,
                "\"password\" can be replaced but not removed",
            )),
            _ => match value.and_then(Value::as_str) {
                Some(p)
                    if p.chars().count() >= MIN_PASSWORD_CHARS
                        && p.chars().count() <= def.max_len =>
                {
                    *password = Some(Secret::new(p));
                    Ok(())
                }
                _ => Err(invalid_value(format!(
                    "\"password\" must be a string of {MIN_PASSWORD_CHARS} to {} characters",
                    def.max_len
                ))),
            },
        };
    }
    let name = def.name;
    if def.multi_valued {
        return apply_multi_valued(doc, def, kind, path, value);
    }
    // Singular attribute, possibly a sub-attribute of a complex one.
    if path.value_filter.is_some() {
        return Err(ScimViolation::new(
            ScimType::InvalidPath,
            format!("\"{name}\" is single-valued and cannot take a value filter"),
        ));
    }
    match (&sub_attr, def.ty) {
        (Some(sub), AttrType::Complex) => {
            let sub_def = schema::find(def.sub_attributes, sub).ok_or_else(|| {
                ScimViolation::new(
                    ScimType::InvalidPath,
                    format!("\"{name}\" has no sub-attribute \"{sub}\""),
                )
            })?;
            if sub_def.mutability == Mutability::ReadOnly {
                return Err(ScimViolation::new(
                    ScimType::Mutability,
                    format!("\"{}\" is read-only", sub_def.name),
                ));
            }
            let parent = doc.entry(name).or_insert_with(|| Value::Object(Map::new()));
            let parent = parent
                .as_object_mut()
                .ok_or_else(|| invalid_syntax(format!("\"{name}\" is not complex")))?;
            match kind {
                PatchOpKind::Remove => {
                    parent.remove(sub_def.name);
                }
                _ => {
                    parent.insert(
                        sub_def.name.to_owned(),
                        coerce_boolean(sub_def, value.unwrap_or(&Value::Null)),
                    );
                }
            }
        }
        (Some(sub), _) => {
            return Err(ScimViolation::new(
                ScimType::InvalidPath,
                format!("\"{name}\" has no sub-attribute \"{sub}\""),
            ));
        }
        (None, AttrType::Complex) => match kind {
            PatchOpKind::Remove => {
                doc.remove(name);
            }
            _ => {
                // add and replace both merge the given sub-attributes (RFC 7644 §3.5.2.1, §3.5.2.3).
                let given = value
                    .and_then(Value::as_object)
                    .ok_or_else(|| invalid_syntax(format!("\"{name}\" must be an object")))?;
                let parent = doc.entry(name).or_insert_with(|| Value::Object(Map::new()));
                if let Some(parent) = parent.as_object_mut() {
                    for (k, v) in given {
                        if k.eq_ignore_ascii_case("schemas") {
                            continue;
                        }
                        let sub_def = schema::find(def.sub_attributes, k).ok_or_else(|| {
                            invalid_value(format!("\"{name}\" has no sub-attribute \"{k}\""))
                        })?;
                        // Echoed read-only values are ignored, as in a PUT.
                        if sub_def.mutability != Mutability::ReadOnly {
                            parent.insert(sub_def.name.to_owned(), coerce_boolean(sub_def, v));
                        }
                    }
                }
            }
        },
        (None, _) => match kind {
            PatchOpKind::Remove => {
                doc.remove(name);
            }
            _ => {
                doc.insert(
                    name.to_owned(),
                    coerce_boolean(def, value.unwrap_or(&Value::Null)),
                );
            }
        },
    }
    Ok(())
}

fn apply_multi_valued(
    doc: &mut Map<String, Value>,
    def: &AttrDef,
    kind: PatchOpKind,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimViolation> {
    let name = def.name;
    // `emails.value` without a filter addresses the sub-attribute of every value.
    let sub_attr = path.sub_attr.as_ref().or(path.attr.sub_attr.as_ref());
    let sub_def = match sub_attr {
        Some(sub) => Some(schema::find(def.sub_attributes, sub).ok_or_else(|| {
            ScimViolation::new(
                ScimType::InvalidPath,
                format!("\"{name}\" has no sub-attribute \"{sub}\""),
            )
        })?),
        None => None,
    };
    let mut items: Vec<Value> = match doc.remove(name) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let as_items = |value: Option<&Value>| -> Vec<Value> {
        match value {
            Some(Value::Array(values)) => values.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => vec![other.clone()],
        }
    };
    let selected: Vec<usize> = match &path.value_filter {
        Some(filter) => {
            let mut matched = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if matches_value(def, filter, item)? {
                    matched.push(i);
                }
            }
            matched
        }
        None => (0..items.len()).collect(),
    };
    match (kind, sub_def, path.value_filter.is_some()) {
        (PatchOpKind::Remove, None, _) => {
            let mut index = 0;
            items.retain(|_| {
                let keep = !selected.contains(&index);
                index += 1;
                keep
            });
        }
        (PatchOpKind::Remove, Some(sub), _) => {
            for &i in &selected {
                if let Some(entry) = items[i].as_object_mut() {
                    entry.remove(sub.name);
                }
            }
        }
        (_, Some(sub), has_filter) => {
            if has_filter && selected.is_empty() {
                return Err(ScimViolation::new(
                    ScimType::NoTarget,
                    format!("no value of \"{name}\" matches the filter"),
                ));
            }
            let new_value = coerce_boolean(sub, value.unwrap_or(&Value::Null));
            for &i in &selected {
                if let Some(entry) = items[i].as_object_mut() {
                    entry.insert(sub.name.to_owned(), new_value.clone());
                }
            }
        }
        (_, None, true) => {
            if selected.is_empty() {
                return Err(ScimViolation::new(
                    ScimType::NoTarget,
                    format!("no value of \"{name}\" matches the filter"),
                ));
            }
            let replacement = value.cloned().unwrap_or(Value::Null);
            let replacement = replacement.as_object().ok_or_else(|| {
                invalid_syntax(format!("a value of \"{name}\" must be an object"))
            })?;
            for &i in &selected {
                if let Some(entry) = items[i].as_object_mut() {
                    for (k, v) in replacement {
                        let sub = schema::find(def.sub_attributes, k).ok_or_else(|| {
                            invalid_value(format!("\"{name}\" has no sub-attribute \"{k}\""))
                        })?;
                        entry.insert(sub.name.to_owned(), coerce_boolean(sub, v));
                    }
                }
            }
        }
        (PatchOpKind::Add, None, false) => {
            let new_items = as_items(value);
            for new in new_items {
                // Adding a value already present is a no-op (RFC 7644 §3.5.2.1).
                if !items.iter().any(|existing| same_value(existing, &new)) {
                    items.push(new);
                }
            }
        }
        (PatchOpKind::Replace, None, false) => {
            items = as_items(value);
        }
    }
    // A new primary value demotes the others (RFC 7643 §2.4).
    let primaries: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| item.get("primary").and_then(Value::as_bool) == Some(true))
        .map(|(i, _)| i)
        .collect();
    if primaries.len() > 1 {
        let keep = *primaries.last().unwrap_or(&0);
        for i in primaries {
            if i != keep
                && let Some(entry) = items[i].as_object_mut()
            {
                entry.insert("primary".into(), Value::Bool(false));
            }
        }
    }
    if !items.is_empty() {
        doc.insert(name.to_owned(), Value::Array(items));
    }
    Ok(())
}

fn same_value(a: &Value, b: &Value) -> bool {
    let field = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    field(a, "value").is_some()
        && field(a, "value") == field(b, "value")
        && field(a, "type") == field(b, "type")
}

fn filter_attr_path(key: &str) -> Result<AttrPath, ScimViolation> {
    parse_patch_path(key).map(|p| p.attr)
}

/// Evaluates a value filter (the part inside `emails[...]`) against one value, in memory.
fn matches_value(def: &AttrDef, filter: &Filter, item: &Value) -> Result<bool, ScimViolation> {
    Ok(match filter {
        Filter::And(a, b) => matches_value(def, a, item)? && matches_value(def, b, item)?,
        Filter::Or(a, b) => matches_value(def, a, item)? || matches_value(def, b, item)?,
        Filter::Not(inner) => !matches_value(def, inner, item)?,
        Filter::ValuePath(..) => {
            return Err(ScimViolation::new(
                ScimType::InvalidFilter,
                "value filters cannot be nested",
            ));
        }
        Filter::Present(path) => {
            let sub = value_filter_sub(def, path)?;
            item.get(sub.name).is_some_and(|v| !v.is_null() && v != "")
        }
        Filter::Compare(path, op, literal) => {
            let sub = value_filter_sub(def, path)?;
            let actual = item.get(sub.name);
            match (actual, literal) {
                (Some(Value::Bool(a)), Literal::Bool(b)) => match op {
                    CompareOp::Eq => a == b,
                    CompareOp::Ne => a != b,
                    _ => {
                        return Err(ScimViolation::new(
                            ScimType::InvalidFilter,
                            format!("\"{}\" is boolean: use eq or ne", sub.name),
                        ));
                    }
                },
                (None | Some(Value::Null), Literal::Bool(false)) if sub.ty == AttrType::Boolean => {
                    *op == CompareOp::Eq
                }
                (Some(Value::String(a)), Literal::String(b)) => {
                    let (a, b) = if sub.case_exact {
                        (a.clone(), b.clone())
                    } else {
                        (a.to_lowercase(), b.to_lowercase())
                    };
                    compare_strings(*op, &a, &b)
                }
                (None | Some(Value::Null), _) => *op == CompareOp::Ne,
                _ => {
                    return Err(ScimViolation::new(
                        ScimType::InvalidFilter,
                        format!(
                            "the value compared with \"{}\" has the wrong type",
                            sub.name
                        ),
                    ));
                }
            }
        }
    })
}

fn value_filter_sub<'a>(def: &'a AttrDef, path: &AttrPath) -> Result<&'a AttrDef, ScimViolation> {
    let name = path.sub_attr.as_deref().unwrap_or(&path.attr);
    schema::find(def.sub_attributes, name).ok_or_else(|| {
        ScimViolation::new(
            ScimType::InvalidFilter,
            format!("\"{}\" has no sub-attribute \"{name}\"", def.name),
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::apply_patch;
    use crate::domain::scim::user::fixtures::{sample_body, stored};
    use crate::domain::scim::user::{User, UserWrite, parse_user};
    use crate::domain::scim::{
        MFA_EXTENSION_SCHEMA, PATCH_OP_SCHEMA, ScimType, ScimViolation, USER_SCHEMA,
    };
    use crate::domain::totp::TotpStatus;

    fn patch(user: &User, ops: Value) -> Result<UserWrite, ScimViolation> {
        apply_patch(
            user,
            &json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops}),
        )
    }

    #[test]
    fn patch_replace_add_remove() {
        let user = stored(parse_user(&sample_body()).unwrap());
        let write = patch(
            &user,
            json!([
                {"op": "Replace", "path": "name.givenName", "value": "Babs"},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"},
                {"op": "add", "value": {"title": "Boss", "active": "False"}},
                {"op": "remove", "path": "emails[type eq \"home\"]"}
            ]),
        )
        .unwrap();
        let attrs = write.attributes;
        assert_eq!(attrs.name.given_name.as_deref(), Some("Babs"));
        assert_eq!(attrs.name.family_name.as_deref(), Some("Jensen"));
        assert_eq!(attrs.emails.len(), 1);
        assert_eq!(attrs.emails[0].value, "new@example.com");
        assert_eq!(attrs.title.as_deref(), Some("Boss"));
        assert_eq!(
            attrs.active,
            Some(false),
            "Entra's \"False\" string is taken as false"
        );
        assert!(write.password.is_none());
    }

    #[test]
    fn patch_remove_active_leaves_it_unassigned() {
        let user = stored(parse_user(&sample_body()).unwrap());
        let write = patch(&user, json!([{"op": "remove", "path": "active"}])).unwrap();
        assert_eq!(write.attributes.active, None);
    }

    #[test]
    fn the_mfa_extension_round_trips_and_its_status_is_read_only() {
        let mut body = sample_body();
        body[MFA_EXTENSION_SCHEMA] = json!({"mfaRequired": true, "totpStatus": "forged"});
        let user = stored(parse_user(&body).unwrap());
        assert_eq!(user.attributes.mfa_required, Some(true));
        let rendered = user.to_scim("loc");
        assert_eq!(
            rendered[MFA_EXTENSION_SCHEMA],
            json!({"mfaRequired": true, "totpStatus": "enrolled"})
        );
        assert!(
            rendered["schemas"]
                .as_array()
                .unwrap()
                .contains(&json!(MFA_EXTENSION_SCHEMA))
        );

        let path = format!("{MFA_EXTENSION_SCHEMA}:mfaRequired");
        let write = patch(
            &user,
            json!([{"op": "replace", "path": path, "value": false}]),
        )
        .unwrap();
        assert_eq!(write.attributes.mfa_required, Some(false));
        let write = patch(
            &user,
            json!([{"op": "remove", "path": MFA_EXTENSION_SCHEMA}]),
        )
        .unwrap();
        assert_eq!(write.attributes.mfa_required, None);
        let status = format!("{MFA_EXTENSION_SCHEMA}:totpStatus");
        let err = patch(
            &user,
            json!([{"op": "replace", "path": status, "value": "none"}]),
        )
        .unwrap_err();
        assert_eq!(err.scim_type, ScimType::Mutability);

        let plain = User {
            totp: TotpStatus::None,
            ..stored(parse_user(&sample_body()).unwrap())
        };
        let rendered = plain.to_scim("loc");
        assert!(
            rendered.get(MFA_EXTENSION_SCHEMA).is_none(),
            "unassigned extension is left out"
        );
        assert_eq!(rendered["schemas"], json!([USER_SCHEMA]));
    }

    #[test]
    fn patch_add_to_multi_valued_appends_and_new_primary_wins() {
        let user = stored(parse_user(&sample_body()).unwrap());
        let write = patch(
            &user,
            json!([{"op": "add", "path": "emails", "value": [{"value": "third@example.com", "primary": true}]}]),
        )
        .unwrap();
        let emails = write.attributes.emails;
        assert_eq!(emails.len(), 3);
        assert_eq!(emails.iter().filter(|e| e.primary).count(), 1);
        assert!(emails[2].primary);
    }

    #[test]
    fn patch_errors() {
        let user = stored(parse_user(&sample_body()).unwrap());
        let cases = [
            (json!([]), ScimType::InvalidValue),
            (
                json!([{"op": "move", "path": "title"}]),
                ScimType::InvalidValue,
            ),
            (json!([{"op": "remove"}]), ScimType::NoTarget),
            (
                json!([{"op": "replace", "path": "shoeSize", "value": 1}]),
                ScimType::InvalidPath,
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq \"fax\"].value", "value": "x@y"}]),
                ScimType::NoTarget,
            ),
            (
                json!([{"op": "remove", "path": "userName"}]),
                ScimType::InvalidValue,
            ),
            (
                json!([{"op": "replace", "path": "active", "value": 3}]),
                ScimType::InvalidSyntax,
            ),
            (
                json!([{"op": "remove", "path": "password"}]),
                ScimType::Mutability,
            ),
        ];
        for (ops, expected) in cases {
            let err = patch(&user, ops.clone()).unwrap_err();
            assert_eq!(err.scim_type, expected, "{ops}: {}", err.detail);
        }
    }
}
