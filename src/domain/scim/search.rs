//! List and search parameters, from query strings (GET) or a SearchRequest body (POST .search).

use serde_json::Value;

use super::common::check_schemas;
use super::filter::AttrPath;
use super::user::{is_attribute_path, parse_attribute_list};
use super::{ScimType, ScimViolation};

pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const DEFAULT_PAGE_SIZE: u64 = 100;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchParams {
    pub filter: Option<String>,
    /// 1-based; values below 1 mean 1 (RFC 7644 §3.4.2.4).
    pub start_index: u64,
    /// Negative values mean 0.
    pub count: u64,
    pub attributes: Vec<AttrPath>,
    pub excluded_attributes: Vec<AttrPath>,
}

impl SearchParams {
    pub fn from_query(
        filter: Option<String>,
        start_index: Option<i64>,
        count: Option<i64>,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Self, ScimViolation> {
        Ok(Self {
            filter,
            start_index: start_index.unwrap_or(1).max(1) as u64,
            count: count.map_or(DEFAULT_PAGE_SIZE, |c| c.max(0) as u64),
            attributes: attributes
                .map(parse_attribute_list)
                .transpose()?
                .unwrap_or_default(),
            excluded_attributes: excluded
                .map(parse_attribute_list)
                .transpose()?
                .unwrap_or_default(),
        })
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
        if get("sortBy").is_some_and(|v| !v.is_null()) {
            return Err(invalid(
                "sorting is not supported (see /ServiceProviderConfig)".to_owned(),
            ));
        }
        Self::from_query(
            string("filter")?,
            integer("startIndex")?,
            integer("count")?,
            list("attributes")?.as_deref(),
            list("excludedAttributes")?.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_defaults_and_bounds() {
        let p = SearchParams::from_query(None, Some(-4), Some(-1), None, None).unwrap();
        assert_eq!((p.start_index, p.count), (1, 0));
        let p = SearchParams::from_query(None, None, None, Some("userName, name.givenName"), None)
            .unwrap();
        assert_eq!(p.count, DEFAULT_PAGE_SIZE);
        assert_eq!(p.attributes.len(), 2);
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
        for bad in [
            json!({"filter": "x pr"}),
            json!({"schemas": [SEARCH_REQUEST_SCHEMA], "count": "ten"}),
            json!({"schemas": [SEARCH_REQUEST_SCHEMA], "attributes": "userName"}),
            json!({"schemas": [SEARCH_REQUEST_SCHEMA], "sortBy": "userName"}),
        ] {
            assert!(SearchParams::from_body(&bad).is_err(), "{bad}");
        }
    }
}
