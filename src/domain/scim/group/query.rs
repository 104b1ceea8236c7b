//! Group filters and sorts: the attributes they may name, resolved from a parsed filter.

use chrono::{DateTime, Utc};

use super::GROUP_SCHEMA;
use crate::domain::ids::UserId;
use crate::domain::scim::filter::{AttrPath, CompareOp, Filter, Literal};
use crate::domain::scim::{ScimType, ScimViolation};

/// A group attribute a filter can select on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupField {
    Id,
    DisplayName,
    ExternalId,
    Created,
    LastModified,
}

/// A filter resolved against the Group schema, for a store to translate.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupFilter {
    And(Box<GroupFilter>, Box<GroupFilter>),
    Or(Box<GroupFilter>, Box<GroupFilter>),
    Not(Box<GroupFilter>),
    Present(GroupField),
    /// Text fields compare as the schema says (displayName ignoring case); times as times.
    Text(GroupField, CompareOp, String),
    Time(GroupField, CompareOp, DateTime<Utc>),
    /// The group has this user as a member.
    HasMember(UserId),
}

/// The filterable attributes: (name, sub-attribute, field).
const FILTERABLE: &[(&str, Option<&str>, GroupField)] = &[
    ("id", None, GroupField::Id),
    ("displayName", None, GroupField::DisplayName),
    ("externalId", None, GroupField::ExternalId),
    ("meta", Some("created"), GroupField::Created),
    ("meta", Some("lastModified"), GroupField::LastModified),
];

fn invalid_filter(detail: impl Into<String>) -> ScimViolation {
    ScimViolation::new(ScimType::InvalidFilter, detail)
}

fn field(path: &AttrPath) -> Result<GroupField, ScimViolation> {
    if let Some(schema) = &path.schema
        && !schema.eq_ignore_ascii_case(GROUP_SCHEMA)
    {
        return Err(invalid_filter(format!(
            "unknown schema \"{schema}\" in filter"
        )));
    }
    FILTERABLE
        .iter()
        .find(|(attr, sub, _)| {
            attr.eq_ignore_ascii_case(&path.attr)
                && match (sub, &path.sub_attr) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => false,
                }
        })
        .map(|(_, _, field)| *field)
        .ok_or_else(|| {
            invalid_filter(format!(
                "cannot filter groups on \"{}\"; filterable: id, displayName, externalId, \
                 members.value (eq), meta.created, meta.lastModified",
                path.attr
            ))
        })
}

/// The field `sortBy` names: a filterable attribute (members is not one).
pub fn resolve_sort(path: &AttrPath) -> Result<GroupField, ScimViolation> {
    field(path).map_err(|_| {
        ScimViolation::new(
            ScimType::InvalidValue,
            "groups sort by id, displayName, externalId, meta.created or meta.lastModified",
        )
    })
}

fn is_members(path: &AttrPath) -> bool {
    path.attr.eq_ignore_ascii_case("members")
}

fn member_eq(op: CompareOp, literal: &Literal) -> Result<GroupFilter, ScimViolation> {
    match (op, literal) {
        (CompareOp::Eq, Literal::String(id)) => Ok(GroupFilter::HasMember(UserId::new(id.clone()))),
        _ => Err(invalid_filter(
            "members filter only as members[value eq \"user id\"]",
        )),
    }
}

pub fn resolve_filter(filter: &Filter) -> Result<GroupFilter, ScimViolation> {
    Ok(match filter {
        Filter::And(a, b) => {
            GroupFilter::And(Box::new(resolve_filter(a)?), Box::new(resolve_filter(b)?))
        }
        Filter::Or(a, b) => {
            GroupFilter::Or(Box::new(resolve_filter(a)?), Box::new(resolve_filter(b)?))
        }
        Filter::Not(inner) => GroupFilter::Not(Box::new(resolve_filter(inner)?)),
        // members[value eq "id"]
        Filter::ValuePath(path, inner) if is_members(path) && path.sub_attr.is_none() => {
            match inner.as_ref() {
                Filter::Compare(sub, op, literal)
                    if sub.attr.eq_ignore_ascii_case("value") && sub.sub_attr.is_none() =>
                {
                    member_eq(*op, literal)?
                }
                _ => {
                    return Err(invalid_filter(
                        "members filter only as members[value eq \"user id\"]",
                    ));
                }
            }
        }
        // members.value eq "id", and members eq "id" as shorthand
        Filter::Compare(path, op, literal)
            if is_members(path)
                && path
                    .sub_attr
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case("value")) =>
        {
            member_eq(*op, literal)?
        }
        Filter::ValuePath(path, _) => {
            return Err(invalid_filter(format!(
                "\"{}[...]\" is not a filter groups support",
                path.attr
            )));
        }
        Filter::Present(path) => GroupFilter::Present(field(path)?),
        Filter::Compare(path, op, literal) => {
            let field = field(path)?;
            match (field, literal) {
                (GroupField::Created | GroupField::LastModified, Literal::String(s))
                    if !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) =>
                {
                    let time = DateTime::parse_from_rfc3339(s).map_err(|_| {
                        invalid_filter(format!("\"{s}\" is not an RFC 3339 date-time"))
                    })?;
                    GroupFilter::Time(field, *op, time.with_timezone(&Utc))
                }
                (GroupField::Created | GroupField::LastModified, _) => {
                    return Err(invalid_filter(
                        "dates compare with eq, ne, gt, ge, lt or le",
                    ));
                }
                (_, Literal::String(s)) => GroupFilter::Text(field, *op, s.clone()),
                _ => {
                    return Err(invalid_filter(format!(
                        "the value compared with \"{}\" must be a string",
                        path.attr
                    )));
                }
            }
        }
    })
}
