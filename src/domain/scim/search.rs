//! List and search parameters, from query strings (GET) or a SearchRequest body (POST .search).

use serde_json::Value;

use super::common::check_schemas;
use super::filter::AttrPath;
use super::user::{is_attribute_path, parse_attribute_list};
use super::{ScimType, ScimViolation};

pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const DEFAULT_PAGE_SIZE: u64 = 100;

/// The direction of `sortBy` (RFC 7644 §3.4.2.3). Resources without a value for the sort
/// attribute come last ascending and first descending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortOrder {
    #[default]
    Ascending,
    Descending,
}

impl SortOrder {
    fn parse(text: &str) -> Result<Self, ScimViolation> {
        if text.eq_ignore_ascii_case("ascending") {
            Ok(Self::Ascending)
        } else if text.eq_ignore_ascii_case("descending") {
            Ok(Self::Descending)
        } else {
            Err(ScimViolation::new(
                ScimType::InvalidValue,
                format!("sortOrder must be \"ascending\" or \"descending\", not \"{text}\""),
            ))
        }
    }
}

/// A resolved sort: the attribute a resource type sorts by (its own field type) and the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort<F> {
    pub field: F,
    pub order: SortOrder,
}

/// The query-string form of a list request, as an endpoint receives it.
#[derive(Clone, Debug, Default)]
pub struct ListQuery<'a> {
    pub filter: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    pub attributes: Option<&'a str>,
    pub excluded_attributes: Option<&'a str>,
    pub sort_by: Option<&'a str>,
    pub sort_order: Option<&'a str>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchParams {
    pub filter: Option<String>,
    /// 1-based; values below 1 mean 1 (RFC 7644 §3.4.2.4).
    pub start_index: u64,
    /// Negative values mean 0.
    pub count: u64,
    pub attributes: Vec<AttrPath>,
    pub excluded_attributes: Vec<AttrPath>,
    /// `sortBy`, not yet resolved against a resource type.
    pub sort_by: Option<AttrPath>,
    pub sort_order: SortOrder,
}

impl SearchParams {
    pub fn from_query(query: ListQuery<'_>) -> Result<Self, ScimViolation> {
        let sort_by = match query.sort_by.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => {
                let mut paths = parse_attribute_list(text)?;
                if paths.len() != 1 {
                    return Err(ScimViolation::new(
                        ScimType::InvalidValue,
                        "sortBy names one attribute, such as \"name.familyName\"",
                    ));
                }
                paths.pop()
            }
        };
        Ok(Self {
            filter: query.filter,
            start_index: query.start_index.unwrap_or(1).max(1) as u64,
            count: query.count.map_or(DEFAULT_PAGE_SIZE, |c| c.max(0) as u64),
            attributes: query
                .attributes
                .map(parse_attribute_list)
                .transpose()?
                .unwrap_or_default(),
            excluded_attributes: query
                .excluded_attributes
                .map(parse_attribute_list)
                .transpose()?
                .unwrap_or_default(),
            sort_by,
            sort_order: query
                .sort_order
                .map(SortOrder::parse)
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// `sortBy` resolved by a resource type's `resolve` (which names what it can sort by).
    pub fn sort<F>(
        &self,
        resolve: impl Fn(&AttrPath) -> Result<F, ScimViolation>,
    ) -> Result<Option<Sort<F>>, ScimViolation> {
        self.sort_by
            .as_ref()
            .map(|path| {
                Ok(Sort {
                    field: resolve(path)?,
                    order: self.sort_order,
                })
            })
            .transpose()
    }

    /// Parses a SearchRequest body (RFC 7644 §3.4.3).
    pub fn from_body(body: &Value) -> Result<Self, ScimViolation> {
        let invalid = |detail: String| ScimViolation::new(ScimType::InvalidValue, detail);
        let object = body.as_object().ok_or_else(|| {
            ScimViolation::new(
                ScimType::InvalidSyntax,
                "the request body must be a JSON object",
            )
        })?;
        let get = |name: &str| {
            object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        check_schemas(object, SEARCH_REQUEST_SCHEMA)?;
        let string = |name: &str| -> Result<Option<String>, ScimViolation> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(format!("\"{name}\" must be a string"))),
            }
        };
        let integer = |name: &str| -> Result<Option<i64>, ScimViolation> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| invalid(format!("\"{name}\" must be an integer"))),
            }
        };
        let list = |name: &str| -> Result<Option<String>, ScimViolation> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().filter(|s| is_attribute_path(s)).ok_or_else(|| {
                            invalid(format!(
                                "\"{name}\" must be an array of attribute paths such as \"name.givenName\""
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|names| Some(names.join(","))),
                Some(_) => Err(invalid(format!("\"{name}\" must be an array of strings"))),
            }
        };
        let (sort_by, sort_order) = (string("sortBy")?, string("sortOrder")?);
        Self::from_query(ListQuery {
            filter: string("filter")?,
            start_index: integer("startIndex")?,
            count: integer("count")?,
            attributes: list("attributes")?.as_deref(),
            excluded_attributes: list("excludedAttributes")?.as_deref(),
            sort_by: sort_by.as_deref(),
            sort_order: sort_order.as_deref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_defaults_and_bounds() {
        let p = SearchParams::from_query(ListQuery {
            start_index: Some(-4),
            count: Some(-1),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((p.start_index, p.count), (1, 0));
        let p = SearchParams::from_query(ListQuery {
            attributes: Some("userName, name.givenName"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.count, DEFAULT_PAGE_SIZE);
        assert_eq!(p.attributes.len(), 2);
        assert_eq!(
            (p.sort_by.as_ref(), p.sort_order),
            (None, SortOrder::Ascending)
        );
    }

    #[test]
    fn sort_parameters() {
        let p = SearchParams::from_query(ListQuery {
            sort_by: Some("name.familyName"),
            sort_order: Some("DESCENDING"),
            ..Default::default()
        })
        .unwrap();
        let path = p.sort_by.clone().unwrap();
        assert_eq!(
            (path.attr.as_str(), path.sub_attr.as_deref()),
            ("name", Some("familyName"))
        );
        assert_eq!(p.sort_order, SortOrder::Descending);
        // An empty sortBy is no sort; sortOrder alone changes nothing.
        let p = SearchParams::from_query(ListQuery {
            sort_by: Some(" "),
            sort_order: Some("ascending"),
            ..Default::default()
        })
        .unwrap();
        assert!(p.sort_by.is_none());
        for (by, order) in [
            (Some("userName,displayName"), None),
            (Some("user name"), None),
            (Some("userName"), Some("up")),
            (Some("userName"), Some("")),
        ] {
            let bad = SearchParams::from_query(ListQuery {
                sort_by: by,
                sort_order: order,
                ..Default::default()
            });
            assert!(bad.is_err(), "{by:?} {order:?}");
        }
    }

    #[test]
    fn search_request_bodies() {
        let p = SearchParams::from_body(&json!({
            "schemas": [SEARCH_REQUEST_SCHEMA],
            "filter": "userName sw \"b\"",
            "attributes": ["userName"],
            "startIndex": 2,
            "count": 10
        }))
        .unwrap();
        assert_eq!(p.filter.as_deref(), Some("userName sw \"b\""));
        assert_eq!((p.start_index, p.count, p.attributes.len()), (2, 10, 1));
        let p = SearchParams::from_body(&json!({
            "schemas": [SEARCH_REQUEST_SCHEMA],
            "sortBy": "meta.lastModified",
            "sortOrder": "descending"
        }))
        .unwrap();
        assert_eq!(p.sort_by.unwrap().sub_attr.as_deref(), Some("lastModified"));
        assert_eq!(p.sort_order, SortOrder::Descending);
        for bad in [
            json!({"filter": "x pr"}),
            json!({"schemas": [SEARCH_REQUEST_SCHEMA], "count": "ten"}),
            json!({"schemas": [SEARCH_REQUEST_SCHEMA], "attributes": "userName"}),
            json!({"schemas": [SEARCH_REQUEST_SCHEMA], "sortBy": ["userName"]}),
            json!({"schemas": [SEARCH_REQUEST_SCHEMA], "sortBy": "userName", "sortOrder": "down"}),
        ] {
            assert!(SearchParams::from_body(&bad).is_err(), "{bad}");
        }
    }
}
