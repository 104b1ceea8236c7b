//! SCIM helpers that belong to no one resource: the time and version formats, string
//! comparison as filters define it, the `schemas` check of request bodies, and the error
//! constructors these share.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::filter::CompareOp;
use super::{ScimType, ScimViolation};

/// The weak ETag of a resource version (RFC 7644 §3.14).
pub fn etag_for_version(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// A `meta` time: RFC 3339 in UTC, to the millisecond.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A filter comparison (RFC 7644 §3.4.2.2) of strings already folded to the attribute's case rule.
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

pub(super) fn invalid_value(detail: impl Into<String>) -> ScimViolation {
    ScimViolation::new(ScimType::InvalidValue, detail)
}

pub(super) fn invalid_syntax(detail: impl Into<String>) -> ScimViolation {
    ScimViolation::new(ScimType::InvalidSyntax, detail)
}

/// Checks a request body's `schemas` member: present, and naming only schemas we serve.
pub(super) fn check_schemas(
    body: &Map<String, Value>,
    expected: &str,
) -> Result<(), ScimViolation> {
    check_schemas_with(body, expected, &[])
}

/// Like [`check_schemas`], also allowing the read-only extensions in `optional`.
pub(super) fn check_schemas_with(
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
