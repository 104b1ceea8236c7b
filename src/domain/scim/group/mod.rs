//! The SCIM Group resource (RFC 7643 §4.2): its types, request bodies, PATCH in the shapes
//! real provisioning clients send (as a list of member changes, so a 10,000-member group is
//! patched without reading its members), and its JSON form; filters and sorts in `query`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::common::{check_schemas, etag_for_version, format_time, invalid_syntax, invalid_value};
use super::filter::{AttrPath, CompareOp, Filter, Literal, parse_patch_path};
use super::{MAX_PATCH_OPERATIONS, PATCH_OP_SCHEMA, ScimType, ScimViolation};
use crate::domain::ids::{GroupId, UserId};

mod query;
pub use query::{GroupField, GroupFilter, resolve_filter, resolve_sort};

pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;
pub const MAX_EXTERNAL_ID_CHARS: usize = 256;
/// Longest member value accepted: our user ids are UUIDs.
pub const MAX_MEMBER_VALUE_CHARS: usize = 64;
/// Member values one request may name (a full replacement of a large group comes in pages of
/// PATCH operations from real clients; the body limit applies as well).
pub const MAX_MEMBERS_PER_REQUEST: usize = 10_000;

/// One member: a user. Its name is not repeated here (RFC 7643 makes `display` optional), so
/// listing members is one index scan, with no join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub user_id: UserId,
}

/// A stored group. `members` is `None` when it was not read (not asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Option<Vec<Member>>,
    pub version: i64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}

/// What a POST or PUT asks to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupWrite {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<UserId>,
}

/// One change a PATCH makes, applied by the store without reading the member list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupChange {
    SetDisplayName(String),
    SetExternalId(Option<String>),
    /// Adding a member twice is not an error.
    AddMembers(Vec<UserId>),
    /// Removing an absent member is not an error.
    RemoveMembers(Vec<UserId>),
    RemoveAllMembers,
    ReplaceMembers(Vec<UserId>),
}

impl GroupChange {
    /// The user ids this change names, which must exist.
    pub fn named_users(&self) -> &[UserId] {
        match self {
            Self::AddMembers(ids) | Self::ReplaceMembers(ids) => ids,
            _ => &[],
        }
    }
}

impl Group {
    pub fn etag(&self) -> String {
        etag_for_version(self.version)
    }

    /// The resource; `base` is the SCIM base URL, for `$ref` and `location`.
    pub fn to_scim(&self, base: &str) -> Value {
        let mut body = Map::new();
        body.insert("schemas".into(), json!([GROUP_SCHEMA]));
        body.insert("id".into(), json!(self.id.as_str()));
        body.insert("displayName".into(), json!(self.display_name));
        if let Some(external_id) = &self.external_id {
            body.insert("externalId".into(), json!(external_id));
        }
        if let Some(members) = &self.members {
            let members: Vec<Value> = members
                .iter()
                .map(|m| {
                    json!({
                        "value": m.user_id.as_str(),
                        "$ref": format!("{base}/Users/{}", m.user_id),
                        "type": "User",
                    })
                })
                .collect();
            body.insert("members".into(), Value::Array(members));
        }
        body.insert(
            "meta".into(),
            json!({
                "resourceType": "Group",
                "created": format_time(self.created),
                "lastModified": format_time(self.last_modified),
                "location": format!("{base}/Groups/{}", self.id),
                "version": self.etag(),
            }),
        );
        Value::Object(body)
    }
}

fn member_values(value: &Value) -> Result<Vec<UserId>, ScimViolation> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        // Some clients send one member as an object instead of a one-element array.
        Value::Object(_) => vec![value],
        Value::Null => Vec::new(),
        _ => {
            return Err(invalid_syntax(
                "\"members\" must be an array of {\"value\": user id}",
            ));
        }
    };
    if items.len() > MAX_MEMBERS_PER_REQUEST {
        return Err(ScimViolation::new(
            ScimType::TooMany,
            format!("at most {MAX_MEMBERS_PER_REQUEST} members per request"),
        ));
    }
    let mut ids: Vec<UserId> = Vec::with_capacity(items.len());
    for item in items {
        let value = item
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("value")))
            .and_then(|(_, v)| v.as_str())
            .ok_or_else(|| invalid_value("each member needs \"value\": the id of a user"))?;
        if value.is_empty()
            || value.chars().count() > MAX_MEMBER_VALUE_CHARS
            || value.contains('\0')
        {
            return Err(invalid_value(format!(
                "a member value is a user id of 1 to {MAX_MEMBER_VALUE_CHARS} characters"
            )));
        }
        let id = UserId::new(value);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn text(value: &Value, name: &str, max: usize) -> Result<String, ScimViolation> {
    let text = value
        .as_str()
        .ok_or_else(|| invalid_value(format!("\"{name}\" must be a string")))?;
    if text.trim().is_empty() || text.chars().count() > max {
        return Err(invalid_value(format!(
            "\"{name}\" must be 1 to {max} characters"
        )));
    }
    if text.contains('\0') {
        return Err(invalid_value(format!(
            "\"{name}\" must not contain NUL characters"
        )));
    }
    Ok(text.to_owned())
}

fn display_name(value: &Value) -> Result<String, ScimViolation> {
    text(value, "displayName", MAX_DISPLAY_NAME_CHARS)
}

fn external_id(value: &Value) -> Result<Option<String>, ScimViolation> {
    match value {
        Value::Null => Ok(None),
        other => text(other, "externalId", MAX_EXTERNAL_ID_CHARS).map(Some),
    }
}

/// Parses the body of a POST or PUT. Read-only attributes (`id`, `meta`) are ignored; an
/// unknown attribute is refused, so a client learns that data would be lost.
pub fn parse_group(body: &Value) -> Result<GroupWrite, ScimViolation> {
    let object = body
        .as_object()
        .ok_or_else(|| invalid_syntax("the body must be a JSON object"))?;
    check_schemas(object, GROUP_SCHEMA)?;
    let mut write = GroupWrite {
        display_name: String::new(),
        external_id: None,
        members: Vec::new(),
    };
    let mut named = false;
    for (key, value) in object {
        match key.to_ascii_lowercase().as_str() {
            "schemas" | "id" | "meta" => {}
            "displayname" => {
                write.display_name = display_name(value)?;
                named = true;
            }
            "externalid" => write.external_id = external_id(value)?,
            "members" => write.members = member_values(value)?,
            _ => {
                return Err(invalid_value(format!(
                    "unknown attribute \"{key}\"; a Group has displayName, externalId and members"
                )));
            }
        }
    }
    if !named {
        return Err(invalid_value("\"displayName\" is required"));
    }
    Ok(write)
}

/// The attribute a PATCH path or value key names.
enum Target {
    DisplayName,
    ExternalId,
    Members,
}

fn target(attr: &AttrPath) -> Result<Target, ScimViolation> {
    if let Some(schema) = &attr.schema
        && !schema.eq_ignore_ascii_case(GROUP_SCHEMA)
    {
        return Err(ScimViolation::new(
            ScimType::InvalidPath,
            format!("unknown schema \"{schema}\" in path"),
        ));
    }
    if attr.sub_attr.is_some() {
        return Err(ScimViolation::new(
            ScimType::InvalidPath,
            format!(
                "\"{}\" has no sub-attributes this server patches",
                attr.attr
            ),
        ));
    }
    match attr.attr.to_ascii_lowercase().as_str() {
        "displayname" => Ok(Target::DisplayName),
        "externalid" => Ok(Target::ExternalId),
        "members" => Ok(Target::Members),
        "id" | "meta" | "schemas" => Err(ScimViolation::new(
            ScimType::Mutability,
            format!("\"{}\" is read-only", attr.attr),
        )),
        other => Err(ScimViolation::new(
            ScimType::InvalidPath,
            format!(
                "unknown attribute \"{other}\"; a Group has displayName, externalId and members"
            ),
        )),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
}

/// The user id in `members[value eq "id"]`, the filter Entra sends to remove one member.
fn member_filter_value(filter: &Filter) -> Result<UserId, ScimViolation> {
    match filter {
        Filter::Compare(path, CompareOp::Eq, Literal::String(value))
            if path.attr.eq_ignore_ascii_case("value") && path.sub_attr.is_none() =>
        {
            Ok(UserId::new(value.clone()))
        }
        _ => Err(ScimViolation::new(
            ScimType::InvalidFilter,
            "members are selected only as members[value eq \"user id\"]",
        )),
    }
}

fn change(op: Op, target: Target, value: Option<&Value>) -> Result<GroupChange, ScimViolation> {
    let need_value = || invalid_value("this operation needs a \"value\"");
    Ok(match (op, target) {
        (Op::Add | Op::Replace, Target::DisplayName) => {
            GroupChange::SetDisplayName(display_name(value.ok_or_else(need_value)?)?)
        }
        (Op::Remove, Target::DisplayName) => {
            return Err(ScimViolation::new(
                ScimType::Mutability,
                "displayName is required and cannot be removed",
            ));
        }
        (Op::Add | Op::Replace, Target::ExternalId) => {
            GroupChange::SetExternalId(external_id(value.ok_or_else(need_value)?)?)
        }
        (Op::Remove, Target::ExternalId) => GroupChange::SetExternalId(None),
        (Op::Add, Target::Members) => {
            GroupChange::AddMembers(member_values(value.ok_or_else(need_value)?)?)
        }
        (Op::Replace, Target::Members) => {
            GroupChange::ReplaceMembers(member_values(value.unwrap_or(&Value::Null))?)
        }
        // Entra removes with a value list; without one, every member goes (RFC 7644 §3.5.2.2).
        (Op::Remove, Target::Members) => match value {
            None | Some(Value::Null) => GroupChange::RemoveAllMembers,
            Some(value) => GroupChange::RemoveMembers(member_values(value)?),
        },
    })
}

/// Turns a PatchOp body into the changes it makes, in order.
pub fn parse_patch(body: &Value) -> Result<Vec<GroupChange>, ScimViolation> {
    let object = body
        .as_object()
        .ok_or_else(|| invalid_syntax("the body must be a JSON object"))?;
    check_schemas(object, PATCH_OP_SCHEMA)?;
    let operations = object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(|| invalid_value("\"Operations\" must be an array"))?;
    if operations.is_empty() || operations.len() > MAX_PATCH_OPERATIONS {
        return Err(invalid_value(format!(
            "a PATCH has 1 to {MAX_PATCH_OPERATIONS} operations"
        )));
    }
    let mut changes = Vec::new();
    for operation in operations {
        let operation = operation
            .as_object()
            .ok_or_else(|| invalid_syntax("each operation must be an object"))?;
        let field = |name: &str| {
            operation
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let op = match field("op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
        {
            Some(op) if op == "add" => Op::Add,
            Some(op) if op == "remove" => Op::Remove,
            Some(op) if op == "replace" => Op::Replace,
            _ => return Err(invalid_value("\"op\" must be add, remove or replace")),
        };
        let value = field("value");
        match field("path") {
            Some(Value::String(path)) => {
                let path = parse_patch_path(path)?;
                let target = target(&path.attr)?;
                match (&path.value_filter, path.sub_attr.as_deref()) {
                    (None, None) => changes.push(change(op, target, value)?),
                    (Some(filter), None)
                        if op == Op::Remove && matches!(target, Target::Members) =>
                    {
                        changes.push(GroupChange::RemoveMembers(vec![member_filter_value(
                            filter,
                        )?]));
                    }
                    _ => {
                        return Err(ScimViolation::new(
                            ScimType::InvalidPath,
                            "a member filter is supported only to remove: members[value eq \"id\"]",
                        ));
                    }
                }
            }
            Some(_) => return Err(invalid_syntax("\"path\" must be a string")),
            None if op == Op::Remove => {
                return Err(ScimViolation::new(
                    ScimType::NoTarget,
                    "remove needs a \"path\"",
                ));
            }
            None => {
                // Okta: {"op":"replace","value":{"id":…,"displayName":…}}.
                let object = value
                    .and_then(Value::as_object)
                    .ok_or_else(|| invalid_value("without a path, \"value\" must be an object"))?;
                for (key, value) in object {
                    if ["id", "schemas", "meta"]
                        .iter()
                        .any(|k| key.eq_ignore_ascii_case(k))
                    {
                        continue;
                    }
                    let attr = AttrPath {
                        schema: None,
                        attr: key.clone(),
                        sub_attr: None,
                    };
                    changes.push(change(op, target(&attr)?, Some(value))?);
                }
            }
        }
    }
    let named: usize = changes.iter().map(|c| c.named_users().len()).sum();
    if named > MAX_MEMBERS_PER_REQUEST {
        return Err(ScimViolation::new(
            ScimType::TooMany,
            format!("at most {MAX_MEMBERS_PER_REQUEST} members per request"),
        ));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scim::filter::parse_filter;

    fn patch(operations: Value) -> Result<Vec<GroupChange>, ScimViolation> {
        parse_patch(&json!({"schemas": [PATCH_OP_SCHEMA], "Operations": operations}))
    }

    fn ids(list: &[&str]) -> Vec<UserId> {
        list.iter().map(|s| UserId::new(*s)).collect()
    }

    #[test]
    fn entra_adds_and_removes_members() {
        assert_eq!(
            patch(json!([{"op": "Add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}])).unwrap(),
            vec![GroupChange::AddMembers(ids(&["u1", "u2"]))]
        );
        assert_eq!(
            patch(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}]))
                .unwrap(),
            vec![GroupChange::RemoveMembers(ids(&["u1"]))]
        );
        assert_eq!(
            patch(json!([{"op": "remove", "path": "members[value eq \"u2\"]"}])).unwrap(),
            vec![GroupChange::RemoveMembers(ids(&["u2"]))]
        );
        assert_eq!(
            patch(json!([{"op": "Replace", "path": "displayName", "value": "Renamed"}])).unwrap(),
            vec![GroupChange::SetDisplayName("Renamed".into())]
        );
    }

    #[test]
    fn okta_replaces_the_member_list_and_the_name() {
        assert_eq!(
            patch(json!([{"op": "replace", "path": "members", "value": [{"value": "u3", "display": "x"}]}])).unwrap(),
            vec![GroupChange::ReplaceMembers(ids(&["u3"]))]
        );
        assert_eq!(
            patch(json!([{"op": "replace", "value": {"id": "g1", "displayName": "Okta name"}}]))
                .unwrap(),
            vec![GroupChange::SetDisplayName("Okta name".into())]
        );
        assert_eq!(
            patch(json!([{"op": "remove", "path": "members"}])).unwrap(),
            vec![GroupChange::RemoveAllMembers]
        );
    }

    #[test]
    fn bad_patches_are_refused_with_the_right_scim_type() {
        let kind = |ops: Value| patch(ops).unwrap_err().scim_type;
        assert_eq!(
            kind(json!([{"op": "remove", "path": "displayName"}])),
            ScimType::Mutability
        );
        assert_eq!(
            kind(json!([{"op": "add", "path": "owner", "value": "x"}])),
            ScimType::InvalidPath
        );
        assert_eq!(kind(json!([{"op": "remove"}])), ScimType::NoTarget);
        assert_eq!(
            kind(json!([{"op": "add", "path": "members[value eq \"u\"]", "value": "x"}])),
            ScimType::InvalidPath
        );
        assert_eq!(
            kind(json!([{"op": "remove", "path": "members[display eq \"u\"]"}])),
            ScimType::InvalidFilter
        );
        assert_eq!(
            kind(json!([{"op": "add", "path": "members", "value": [{"display": "no id"}]}])),
            ScimType::InvalidValue
        );
        assert_eq!(
            kind(json!([{"op": "move", "path": "members"}])),
            ScimType::InvalidValue
        );
        assert_eq!(kind(json!([])), ScimType::InvalidValue);
        let many: Vec<Value> = (0..=MAX_MEMBERS_PER_REQUEST)
            .map(|i| json!({"value": format!("u{i}")}))
            .collect();
        assert_eq!(
            kind(json!([{"op": "add", "path": "members", "value": many}])),
            ScimType::TooMany
        );
    }

    #[test]
    fn post_bodies_need_a_name_and_refuse_unknown_attributes() {
        let ok = parse_group(&json!({"schemas": [GROUP_SCHEMA], "displayName": "Ops", "members": [{"value": "u1"}, {"value": "u1"}], "meta": {}})).unwrap();
        assert_eq!(
            ok.members,
            ids(&["u1"]),
            "a member named twice is one member"
        );
        for bad in [
            json!({"schemas": [GROUP_SCHEMA]}),
            json!({"schemas": [GROUP_SCHEMA], "displayName": ""}),
            json!({"schemas": [GROUP_SCHEMA], "displayName": "x".repeat(MAX_DISPLAY_NAME_CHARS + 1)}),
            json!({"schemas": [GROUP_SCHEMA], "displayName": "Ops", "owner": "me"}),
            json!({"displayName": "Ops"}),
            json!({"schemas": [GROUP_SCHEMA], "displayName": 7}),
        ] {
            assert!(parse_group(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_resolve_the_shapes_clients_send() {
        let resolve = |text: &str| resolve_filter(&parse_filter(text).unwrap());
        assert_eq!(
            resolve("displayName eq \"Ops\"").unwrap(),
            GroupFilter::Text(GroupField::DisplayName, CompareOp::Eq, "Ops".into())
        );
        assert_eq!(
            resolve("members[value eq \"u1\"]").unwrap(),
            GroupFilter::HasMember(UserId::new("u1"))
        );
        assert_eq!(
            resolve("members.value eq \"u1\"").unwrap(),
            GroupFilter::HasMember(UserId::new("u1"))
        );
        assert!(matches!(
            resolve("externalId eq \"e\" and displayName sw \"O\"").unwrap(),
            GroupFilter::And(..)
        ));
        for bad in [
            "members[value co \"u\"]",
            "owner eq \"x\"",
            "meta.created co \"2026\"",
            "displayName eq true",
        ] {
            assert_eq!(
                resolve(bad).unwrap_err().scim_type,
                ScimType::InvalidFilter,
                "{bad}"
            );
        }
    }
}
