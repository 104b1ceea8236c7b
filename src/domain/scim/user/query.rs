//! User filters (RFC 7644 §3.4.2.2) resolved against the User schema into a [`UserFilter`]
//! that a store translates to a query. [`FILTERABLE`] is the one list of the names a filter
//! may use.

use chrono::{DateTime, Utc};

use crate::domain::scim::filter::{AttrPath, CompareOp, Filter, Literal};
use crate::domain::scim::{ScimType, ScimViolation, USER_SCHEMA};

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
        // Inside `emails[...]` a bare name is a sub-attribute of emails.
        let (attr, sub_attr) = match (within_emails, &path.sub_attr) {
            (false, sub_attr) => (path.attr.as_str(), sub_attr.as_deref()),
            (true, None) => (EMAILS, Some(path.attr.as_str())),
            (true, Some(_)) => return Err(cannot_filter_on(path)),
        };
        FILTERABLE
            .iter()
            .find(|row| row.names(attr, sub_attr))
            .map(|row| row.field)
            .ok_or_else(|| cannot_filter_on(path))
    }
}

/// The multi-valued attribute a filter can look into with `emails[...]`.
const EMAILS: &str = "emails";

/// One name a filter may use, and the field it selects.
struct Filterable {
    attr: &'static str,
    /// Named `attr.subAttr`, or bare inside `attr[...]`.
    sub_attr: Option<&'static str>,
    field: UserField,
    listed: Listed,
}

/// How a [`Filterable`] shows in the list an error offers when a filter names something else.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listed {
    /// By its name: `userName`, `emails.type`.
    AsName,
    /// As `attr.*`, once for every sub-attribute of `attr`.
    UnderWildcard,
    /// Not at all: a shorthand for a name that is listed.
    No,
}

impl Filterable {
    /// Whether a filter naming `attr` (and `sub_attr`) means this one, ignoring case.
    fn names(&self, attr: &str, sub_attr: Option<&str>) -> bool {
        self.attr.eq_ignore_ascii_case(attr)
            && match (self.sub_attr, sub_attr) {
                (None, None) => true,
                (Some(ours), Some(theirs)) => ours.eq_ignore_ascii_case(theirs),
                _ => false,
            }
    }
}

const fn top(attr: &'static str, field: UserField) -> Filterable {
    Filterable {
        attr,
        sub_attr: None,
        field,
        listed: Listed::AsName,
    }
}

const fn sub(attr: &'static str, sub_attr: &'static str, field: UserField) -> Filterable {
    Filterable {
        attr,
        sub_attr: Some(sub_attr),
        field,
        listed: Listed::AsName,
    }
}

/// A sub-attribute listed with its siblings as `attr.*`.
const fn any_sub(attr: &'static str, sub_attr: &'static str, field: UserField) -> Filterable {
    Filterable {
        listed: Listed::UnderWildcard,
        ..sub(attr, sub_attr, field)
    }
}

/// A bare multi-valued attribute, taken to mean its `value`.
const fn shorthand(attr: &'static str, field: UserField) -> Filterable {
    Filterable {
        listed: Listed::No,
        ..top(attr, field)
    }
}

/// Every name a filter may use, in the order an error lists them. The names are the User
/// schema's ([`crate::domain::scim::schema`]) and the common `id` and `meta`; the tests check
/// the table against the schema.
const FILTERABLE: &[Filterable] = &[
    top("id", UserField::Id),
    top("userName", UserField::UserName),
    top("externalId", UserField::ExternalId),
    top("displayName", UserField::DisplayName),
    top("nickName", UserField::NickName),
    top("profileUrl", UserField::ProfileUrl),
    top("title", UserField::Title),
    top("userType", UserField::UserType),
    top("preferredLanguage", UserField::PreferredLanguage),
    top("locale", UserField::Locale),
    top("timezone", UserField::Timezone),
    any_sub("name", "formatted", UserField::NameFormatted),
    any_sub("name", "familyName", UserField::NameFamily),
    any_sub("name", "givenName", UserField::NameGiven),
    any_sub("name", "middleName", UserField::NameMiddle),
    any_sub("name", "honorificPrefix", UserField::NamePrefix),
    any_sub("name", "honorificSuffix", UserField::NameSuffix),
    top("active", UserField::Active),
    shorthand(EMAILS, UserField::EmailValue),
    sub(EMAILS, "value", UserField::EmailValue),
    sub(EMAILS, "type", UserField::EmailType),
    sub(EMAILS, "display", UserField::EmailDisplay),
    sub(EMAILS, "primary", UserField::EmailPrimary),
    sub("meta", "created", UserField::Created),
    sub("meta", "lastModified", UserField::LastModified),
];

fn cannot_filter_on(path: &AttrPath) -> ScimViolation {
    ScimViolation::new(
        ScimType::InvalidFilter,
        format!(
            "cannot filter on \"{}\"; filterable: {}",
            path_name(path),
            filterable_names()
        ),
    )
}

/// The names of [`FILTERABLE`] as an error lists them: `id, userName, …, name.*, …`.
fn filterable_names() -> String {
    let mut names: Vec<String> = Vec::new();
    for row in FILTERABLE {
        let name = match (row.listed, row.sub_attr) {
            (Listed::No, _) => continue,
            (Listed::UnderWildcard, _) => format!("{}.*", row.attr),
            (Listed::AsName, Some(sub)) => format!("{}.{sub}", row.attr),
            (Listed::AsName, None) => row.attr.to_owned(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
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

/// The field `sortBy` names (RFC 7644 §3.4.2.3): any attribute a filter may name, where
/// `emails` (or `emails.value`) sorts by the primary address, or else the first. The other
/// sub-attributes of emails say nothing about a user as a whole, so they are refused.
pub fn resolve_sort(path: &AttrPath) -> Result<UserField, ScimViolation> {
    let refused = || {
        ScimViolation::new(
            ScimType::InvalidValue,
            format!(
                "cannot sort by \"{}\"; sortBy takes an attribute a filter may name, \
                 other than emails.type, emails.display and emails.primary",
                path_name(path)
            ),
        )
    };
    match UserField::resolve(path, false) {
        Ok(UserField::EmailType | UserField::EmailDisplay | UserField::EmailPrimary) | Err(_) => {
            Err(refused())
        }
        Ok(field) => Ok(field),
    }
}

/// `attr` or `attr.subAttr`, as an error names a path.
fn path_name(path: &AttrPath) -> String {
    match &path.sub_attr {
        Some(sub) => format!("{}.{sub}", path.attr),
        None => path.attr.clone(),
    }
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
            if within_emails || !path.attr.eq_ignore_ascii_case(EMAILS) || path.sub_attr.is_some() {
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
    use crate::domain::scim::MFA_EXTENSION_SCHEMA;
    use crate::domain::scim::filter::parse_filter;
    use crate::domain::scim::schema::{self, AttrType};

    /// Attributes of the schema that a filter cannot name, and why.
    const NOT_FILTERABLE: &[(&str, Option<&str>)] = &[
        // Stored only as an Argon2id hash.
        ("password", None),
        // Filters name core User attributes only; the extension is read per user.
        (MFA_EXTENSION_SCHEMA, Some("mfaRequired")),
        (MFA_EXTENSION_SCHEMA, Some("totpStatus")),
    ];

    fn resolve_text(text: &str) -> Result<UserFilter, ScimViolation> {
        resolve_filter(&parse_filter(text).unwrap())
    }

    /// An attribute as a filter writes it: `attr`, `attr.sub`, or `urn:…:sub` for an extension.
    fn written(attr: &str, sub_attr: Option<&str>) -> String {
        match sub_attr {
            None => attr.to_owned(),
            Some(sub) if attr.starts_with("urn:") => format!("{attr}:{sub}"),
            Some(sub) => format!("{attr}.{sub}"),
        }
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

    #[test]
    fn every_filterable_name_resolves_to_its_field_in_any_case() {
        for row in FILTERABLE {
            let name = written(row.attr, row.sub_attr);
            let present = UserFilter::Present(row.field);
            let expected = if row.field.is_email() {
                UserFilter::AnyEmail(Box::new(present.clone()))
            } else {
                present.clone()
            };
            for text in [
                name.clone(),
                name.to_uppercase(),
                format!("{USER_SCHEMA}:{name}"),
            ] {
                assert_eq!(resolve_text(&format!("{text} pr")), Ok(expected.clone()));
            }
            if let (EMAILS, Some(sub)) = (row.attr, row.sub_attr) {
                let within = resolve_text(&format!("emails[{sub} pr]"));
                assert_eq!(within, Ok(UserFilter::AnyEmail(Box::new(present))));
            }
        }
    }

    #[test]
    fn every_filterable_name_is_in_the_schema_with_its_type() {
        for row in FILTERABLE {
            let name = written(row.attr, row.sub_attr);
            // Common to every resource (RFC 7643 §3.1) rather than defined by the User schema.
            if schema::READ_ONLY_COMMON.contains(&row.attr) {
                continue;
            }
            let top = schema::find_user_attr(row.attr);
            let def = match (top, row.sub_attr) {
                (Some(top), Some(sub)) => schema::find(top.sub_attributes, sub),
                (Some(top), None) if top.ty == AttrType::Complex => {
                    schema::find(top.sub_attributes, "value")
                }
                (top, None) => top,
                (None, Some(_)) => None,
            };
            let def = def.unwrap_or_else(|| panic!("{name} is not in the schema"));
            let kind = match (def.ty, def.case_exact) {
                (AttrType::Boolean, _) => FieldKind::Boolean,
                (AttrType::DateTime, _) => FieldKind::Time,
                (_, true) => FieldKind::ExactText,
                (_, false) => FieldKind::Text,
            };
            assert_eq!(row.field.kind(), kind, "{name}");
        }
    }

    #[test]
    fn every_schema_attribute_is_filterable_or_refused_on_purpose() {
        let tops = schema::USER_ATTRIBUTES
            .iter()
            .chain([&schema::EXTERNAL_ID, &schema::MFA_EXTENSION]);
        for top in tops {
            let leaves: Vec<Option<&str>> = match top.ty {
                AttrType::Complex => top.sub_attributes.iter().map(|s| Some(s.name)).collect(),
                _ => vec![None],
            };
            for sub_attr in leaves {
                let name = written(top.name, sub_attr);
                let filterable = FILTERABLE.iter().any(|row| row.names(top.name, sub_attr));
                let refused = NOT_FILTERABLE.contains(&(top.name, sub_attr));
                assert!(
                    filterable != refused,
                    "{name}: filterable {filterable}, listed as not filterable {refused}"
                );
                if refused {
                    let err = resolve_text(&format!("{name} pr")).unwrap_err();
                    assert_eq!(err.scim_type, ScimType::InvalidFilter, "{name}");
                }
            }
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_filterable_ones() {
        let listed = "filterable: id, userName, externalId, displayName, nickName, profileUrl, \
                      title, userType, preferredLanguage, locale, timezone, name.*, active, \
                      emails.value, emails.type, emails.display, emails.primary, meta.created, \
                      meta.lastModified";
        for (filter, shown) in [
            (r#"shoeSize eq "9""#, "shoeSize"),
            (r#"name.nickName pr"#, "name.nickName"),
            (r#"name pr"#, "name"),
            (r#"emails[value.x pr]"#, "value.x"),
            (r#"emails[emails pr]"#, "emails"),
        ] {
            let err = resolve_text(filter).unwrap_err();
            assert_eq!(err.scim_type, ScimType::InvalidFilter, "{filter}");
            assert_eq!(
                err.detail,
                format!("cannot filter on \"{shown}\"; {listed}"),
                "{filter}"
            );
        }
    }
}
