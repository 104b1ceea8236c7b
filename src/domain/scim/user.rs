//! The SCIM User resource: validating writes, rendering reads, projecting attributes and
//! applying PATCH operations. Everything works on the canonical JSON form that
//! [`normalize`] produces, so attribute names are matched case-insensitively in one place.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::filter::{AttrPath, CompareOp, Filter, Literal, PatchPath, parse_patch_path};
use super::schema::{self, AttrDef, AttrType, Mutability};
use super::{MFA_EXTENSION_SCHEMA, PATCH_OP_SCHEMA, ScimType, ScimViolation, USER_SCHEMA};
use crate::domain::ids::UserId;
use crate::domain::secret::Secret;
use crate::domain::totp::TotpStatus;

const MAX_EMAILS: usize = 32;
const MAX_PATCH_OPERATIONS: usize = 100;
const MIN_PASSWORD_CHARS: usize = 8;

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
    pub fn etag(&self) -> String {
        etag_for_version(self.version)
    }

    /// The full resource in SCIM JSON; `location` is the absolute URL of this user.
    pub fn to_scim(&self, location: &str) -> Value {
        let mut object = attributes_to_json(&self.attributes);
        object.insert("id".into(), json!(self.id.as_str()));
        // The extension appears when it has a value: a TOTP factor or a stored mfaRequired.
        if self.totp != TotpStatus::None {
            let ext = object
                .entry(MFA_EXTENSION_SCHEMA)
                .or_insert_with(|| json!({}));
            ext["totpStatus"] = json!(self.totp.as_str());
        }
        if object.contains_key(MFA_EXTENSION_SCHEMA) {
            object.insert("schemas".into(), json!([USER_SCHEMA, MFA_EXTENSION_SCHEMA]));
        } else {
            object.insert("schemas".into(), json!([USER_SCHEMA]));
        }
        object.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "created": format_time(self.created),
                "lastModified": format_time(self.last_modified),
                "location": location,
                "version": self.etag(),
            }),
        );
        Value::Object(object)
    }
}

pub fn etag_for_version(version: i64) -> String {
    format!("W/\"{version}\"")
}

pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn attributes_to_json(attrs: &UserAttributes) -> Map<String, Value> {
    let mut object = Map::new();
    let put = |object: &mut Map<String, Value>, key: &str, value: &Option<String>| {
        if let Some(value) = value {
            object.insert(key.to_owned(), json!(value));
        }
    };
    object.insert("userName".into(), json!(attrs.user_name));
    put(&mut object, "externalId", &attrs.external_id);
    let mut name = Map::new();
    put(&mut name, "formatted", &attrs.name.formatted);
    put(&mut name, "familyName", &attrs.name.family_name);
    put(&mut name, "givenName", &attrs.name.given_name);
    put(&mut name, "middleName", &attrs.name.middle_name);
    put(&mut name, "honorificPrefix", &attrs.name.honorific_prefix);
    put(&mut name, "honorificSuffix", &attrs.name.honorific_suffix);
    if !name.is_empty() {
        object.insert("name".into(), Value::Object(name));
    }
    put(&mut object, "displayName", &attrs.display_name);
    put(&mut object, "nickName", &attrs.nick_name);
    put(&mut object, "profileUrl", &attrs.profile_url);
    put(&mut object, "title", &attrs.title);
    put(&mut object, "userType", &attrs.user_type);
    put(&mut object, "preferredLanguage", &attrs.preferred_language);
    put(&mut object, "locale", &attrs.locale);
    put(&mut object, "timezone", &attrs.timezone);
    if let Some(active) = attrs.active {
        object.insert("active".into(), json!(active));
    }
    if let Some(required) = attrs.mfa_required {
        object.insert(
            MFA_EXTENSION_SCHEMA.into(),
            json!({"mfaRequired": required}),
        );
    }
    if !attrs.emails.is_empty() {
        let emails = attrs
            .emails
            .iter()
            .map(|email| {
                let mut entry = Map::new();
                entry.insert("value".into(), json!(email.value));
                put(&mut entry, "type", &email.kind);
                put(&mut entry, "display", &email.display);
                entry.insert("primary".into(), json!(email.primary));
                Value::Object(entry)
            })
            .collect();
        object.insert("emails".into(), Value::Array(emails));
    }
    object
}

fn invalid_value(detail: impl Into<String>) -> ScimViolation {
    ScimViolation::new(ScimType::InvalidValue, detail)
}

fn invalid_syntax(detail: impl Into<String>) -> ScimViolation {
    ScimViolation::new(ScimType::InvalidSyntax, detail)
}

/// Checks a request body's `schemas` member: present, and naming only schemas we serve.
fn check_schemas(body: &Map<String, Value>, expected: &str) -> Result<(), ScimViolation> {
    check_schemas_with(body, expected, &[])
}

/// Like [`check_schemas`], also allowing the read-only extensions in `optional`.
fn check_schemas_with(
    body: &Map<String, Value>,
    expected: &str,
    optional: &[&str],
) -> Result<(), ScimViolation> {
    let schemas = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v)
        .ok_or_else(|| {
            invalid_value(format!(
                "\"schemas\" is required and must contain \"{expected}\""
            ))
        })?;
    let list = schemas
        .as_array()
        .ok_or_else(|| invalid_syntax("\"schemas\" must be an array of schema URNs"))?;
    let mut found = false;
    for urn in list {
        let urn = urn
            .as_str()
            .ok_or_else(|| invalid_syntax("\"schemas\" must be an array of schema URNs"))?;
        if urn.eq_ignore_ascii_case(expected) {
            found = true;
        } else if optional.iter().any(|o| o.eq_ignore_ascii_case(urn)) {
            continue;
        } else {
            return Err(invalid_value(format!(
                "unknown schema URN \"{urn}\"; this endpoint accepts only \"{expected}\""
            )));
        }
    }
    if !found {
        return Err(invalid_value(format!(
            "\"schemas\" must contain \"{expected}\""
        )));
    }
    Ok(())
}

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
fn from_normalized(mut object: Map<String, Value>) -> Result<UserWrite, ScimViolation> {
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

pub fn compare_strings(op: CompareOp, actual: &str, expected: &str) -> bool {
    match op {
        CompareOp::Eq => actual == expected,
        CompareOp::Ne => actual != expected,
        CompareOp::Co => actual.contains(expected),
        CompareOp::Sw => actual.starts_with(expected),
        CompareOp::Ew => actual.ends_with(expected),
        CompareOp::Gt => actual > expected,
        CompareOp::Ge => actual >= expected,
        CompareOp::Lt => actual < expected,
        CompareOp::Le => actual <= expected,
    }
}

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

/// Parses a comma-separated `attributes` or `excludedAttributes` parameter.
pub fn parse_attribute_list(text: &str) -> Result<Vec<AttrPath>, ScimViolation> {
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

/// A user attribute that a filter can select on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserField {
    Id,
    UserName,
    ExternalId,
    DisplayName,
    NickName,
    ProfileUrl,
    Title,
    UserType,
    PreferredLanguage,
    Locale,
    Timezone,
    NameFormatted,
    NameFamily,
    NameGiven,
    NameMiddle,
    NamePrefix,
    NameSuffix,
    Active,
    Created,
    LastModified,
    EmailValue,
    EmailType,
    EmailDisplay,
    EmailPrimary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Compared ignoring case.
    Text,
    /// Compared exactly.
    ExactText,
    Boolean,
    Time,
}

impl UserField {
    pub fn kind(self) -> FieldKind {
        match self {
            Self::Id | Self::ExternalId => FieldKind::ExactText,
            Self::Active | Self::EmailPrimary => FieldKind::Boolean,
            Self::Created | Self::LastModified => FieldKind::Time,
            _ => FieldKind::Text,
        }
    }

    pub fn is_email(self) -> bool {
        matches!(
            self,
            Self::EmailValue | Self::EmailType | Self::EmailDisplay | Self::EmailPrimary
        )
    }

    fn resolve(path: &AttrPath, within_emails: bool) -> Result<Self, ScimViolation> {
        if let Some(schema) = &path.schema
            && !schema.eq_ignore_ascii_case(USER_SCHEMA)
        {
            return Err(ScimViolation::new(
                ScimType::InvalidFilter,
                format!("unknown schema \"{schema}\" in filter"),
            ));
        }
        let attr = path.attr.to_ascii_lowercase();
        let sub = path.sub_attr.as_deref().map(str::to_ascii_lowercase);
        let field = if within_emails {
            match (attr.as_str(), sub.as_deref()) {
                ("value", None) => Some(Self::EmailValue),
                ("type", None) => Some(Self::EmailType),
                ("display", None) => Some(Self::EmailDisplay),
                ("primary", None) => Some(Self::EmailPrimary),
                _ => None,
            }
        } else {
            match (attr.as_str(), sub.as_deref()) {
                ("id", None) => Some(Self::Id),
                ("username", None) => Some(Self::UserName),
                ("externalid", None) => Some(Self::ExternalId),
                ("displayname", None) => Some(Self::DisplayName),
                ("nickname", None) => Some(Self::NickName),
                ("profileurl", None) => Some(Self::ProfileUrl),
                ("title", None) => Some(Self::Title),
                ("usertype", None) => Some(Self::UserType),
                ("preferredlanguage", None) => Some(Self::PreferredLanguage),
                ("locale", None) => Some(Self::Locale),
                ("timezone", None) => Some(Self::Timezone),
                ("name", Some("formatted")) => Some(Self::NameFormatted),
                ("name", Some("familyname")) => Some(Self::NameFamily),
                ("name", Some("givenname")) => Some(Self::NameGiven),
                ("name", Some("middlename")) => Some(Self::NameMiddle),
                ("name", Some("honorificprefix")) => Some(Self::NamePrefix),
                ("name", Some("honorificsuffix")) => Some(Self::NameSuffix),
                ("active", None) => Some(Self::Active),
                ("meta", Some("created")) => Some(Self::Created),
                ("meta", Some("lastmodified")) => Some(Self::LastModified),
                ("emails", None | Some("value")) => Some(Self::EmailValue),
                ("emails", Some("type")) => Some(Self::EmailType),
                ("emails", Some("display")) => Some(Self::EmailDisplay),
                ("emails", Some("primary")) => Some(Self::EmailPrimary),
                _ => None,
            }
        };
        field.ok_or_else(|| {
            let shown = match &path.sub_attr {
                Some(sub) => format!("{}.{sub}", path.attr),
                None => path.attr.clone(),
            };
            ScimViolation::new(
                ScimType::InvalidFilter,
                format!(
                    "cannot filter on \"{shown}\"; filterable: id, userName, externalId, displayName, nickName, \
                     profileUrl, title, userType, preferredLanguage, locale, timezone, name.*, active, \
                     emails.value, emails.type, emails.display, emails.primary, meta.created, meta.lastModified"
                ),
            )
        })
    }
}

/// A comparison value, already checked against the field's type.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterValue {
    Text(String),
    Boolean(bool),
    Time(DateTime<Utc>),
}

/// A filter resolved against the User schema, ready for a store to translate.
#[derive(Clone, Debug, PartialEq)]
pub enum UserFilter {
    And(Box<UserFilter>, Box<UserFilter>),
    Or(Box<UserFilter>, Box<UserFilter>),
    Not(Box<UserFilter>),
    Present(UserField),
    Compare(UserField, CompareOp, FilterValue),
    /// Some email matches every condition inside, on the same email.
    AnyEmail(Box<UserFilter>),
}

pub fn resolve_filter(filter: &Filter) -> Result<UserFilter, ScimViolation> {
    resolve(filter, false)
}

fn resolve(filter: &Filter, within_emails: bool) -> Result<UserFilter, ScimViolation> {
    let invalid = |detail: String| ScimViolation::new(ScimType::InvalidFilter, detail);
    Ok(match filter {
        Filter::And(a, b) => UserFilter::And(
            Box::new(resolve(a, within_emails)?),
            Box::new(resolve(b, within_emails)?),
        ),
        Filter::Or(a, b) => UserFilter::Or(
            Box::new(resolve(a, within_emails)?),
            Box::new(resolve(b, within_emails)?),
        ),
        Filter::Not(inner) => UserFilter::Not(Box::new(resolve(inner, within_emails)?)),
        Filter::ValuePath(path, inner) => {
            if within_emails || !path.attr.eq_ignore_ascii_case("emails") || path.sub_attr.is_some()
            {
                return Err(invalid(format!(
                    "\"{}[...]\" is not a multi-valued attribute filter this server supports",
                    path.attr
                )));
            }
            UserFilter::AnyEmail(Box::new(resolve(inner, true)?))
        }
        Filter::Present(path) => {
            let field = UserField::resolve(path, within_emails)?;
            wrap_email(field, within_emails, UserFilter::Present(field))
        }
        Filter::Compare(path, op, literal) => {
            let field = UserField::resolve(path, within_emails)?;
            let value = match (field.kind(), literal) {
                (FieldKind::Text | FieldKind::ExactText, Literal::String(s)) => {
                    FilterValue::Text(s.clone())
                }
                (FieldKind::Boolean, Literal::Bool(b))
                    if matches!(op, CompareOp::Eq | CompareOp::Ne) =>
                {
                    FilterValue::Boolean(*b)
                }
                (FieldKind::Boolean, Literal::Bool(_)) => {
                    return Err(invalid(format!(
                        "{} is boolean: only eq and ne apply",
                        path.attr
                    )));
                }
                (FieldKind::Time, Literal::String(s))
                    if !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) =>
                {
                    let time = DateTime::parse_from_rfc3339(s).map_err(|_| {
                        invalid(format!(
                            "\"{s}\" is not an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z"
                        ))
                    })?;
                    FilterValue::Time(time.with_timezone(&Utc))
                }
                (FieldKind::Time, Literal::String(_)) => {
                    return Err(invalid(
                        "dates compare with eq, ne, gt, ge, lt or le".to_owned(),
                    ));
                }
                (_, Literal::Null) => {
                    return Err(invalid(
                        "compare with null is not supported; use \"not (attr pr)\"".to_owned(),
                    ));
                }
                _ => {
                    return Err(invalid(format!(
                        "the value compared with \"{}\" has the wrong type",
                        path.attr
                    )));
                }
            };
            wrap_email(field, within_emails, UserFilter::Compare(field, *op, value))
        }
    })
}

/// A bare `emails.type eq "work"` is shorthand for `emails[type eq "work"]`.
fn wrap_email(field: UserField, within_emails: bool, filter: UserFilter) -> UserFilter {
    if field.is_email() && !within_emails {
        UserFilter::AnyEmail(Box::new(filter))
    } else {
        filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scim::filter::parse_filter;

    fn sample_body() -> Value {
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

    fn stored(write: UserWrite) -> User {
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
    fn filters_resolve_against_the_schema() {
        let resolved = resolve_filter(&parse_filter(r#"emails.type eq "work""#).unwrap()).unwrap();
        assert!(matches!(resolved, UserFilter::AnyEmail(_)));
        let resolved =
            resolve_filter(&parse_filter(r#"meta.created gt "2026-01-01T00:00:00Z""#).unwrap())
                .unwrap();
        assert!(matches!(
            resolved,
            UserFilter::Compare(UserField::Created, CompareOp::Gt, FilterValue::Time(_))
        ));
        for bad in [
            r#"shoeSize eq "9""#,
            r#"active eq "yes""#,
            r#"active gt true"#,
            r#"meta.created gt "yesterday""#,
            r#"userName eq null"#,
            r#"name[givenName eq "x"]"#,
            r#"urn:example:Other:userName eq "x""#,
        ] {
            let err = resolve_filter(&parse_filter(bad).unwrap()).unwrap_err();
            assert_eq!(err.scim_type, ScimType::InvalidFilter, "{bad}");
        }
    }
}
