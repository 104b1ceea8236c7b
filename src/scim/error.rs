//! The one place where failures become RFC 7644 §3.12 error bodies.

use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use serde_json::json;

use super::models::ScimErrorBody;
use super::payload::ScimJson;
use crate::domain::scim::{ERROR_SCHEMA, ScimType, ScimViolation};
use crate::service::ServiceError;
use crate::service::oauth::BearerRefusal;

pub type ErrorPayload = ScimJson<ScimErrorBody>;

pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"bypass-idp\"";

#[derive(ApiResponse, Debug)]
pub enum ScimError {
    /// The request is malformed or breaks the schema; `scimType` says how.
    #[oai(status = 400)]
    BadRequest(ErrorPayload),
    /// No bearer token, or one that is expired, forged or revoked.
    #[oai(status = 401)]
    Unauthorized(ErrorPayload, #[oai(header = "WWW-Authenticate")] String),
    /// The token lacks the scope this operation needs, or policy forbids the operation.
    #[oai(status = 403)]
    Forbidden(ErrorPayload),
    /// No such resource.
    #[oai(status = 404)]
    NotFound(ErrorPayload),
    /// A unique attribute (userName) is taken (`scimType` is `uniqueness`), or the request
    /// conflicts with the resource's state (already enrolled, too many active codes).
    #[oai(status = 409)]
    Conflict(ErrorPayload),
    /// `If-Match` does not name the current version.
    #[oai(status = 412)]
    PreconditionFailed(ErrorPayload),
    /// The body is larger than the server accepts.
    #[oai(status = 413)]
    PayloadTooLarge(ErrorPayload),
    /// The body is not `application/scim+json` or `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(ErrorPayload),
    /// Too many attempts (a code sent to be emailed that did not match); retry after the
    /// given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(ErrorPayload, #[oai(header = "Retry-After")] u64),
    /// The server failed; the detail carries no internals.
    #[oai(status = 500)]
    Internal(ErrorPayload),
    /// A dependency (database, Redis) cannot take the request now; retry after the given
    /// number of seconds.
    #[oai(status = 503)]
    Unavailable(ErrorPayload, #[oai(header = "Retry-After")] u64),
}

impl std::fmt::Debug for ScimJson<ScimErrorBody> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.value)
    }
}

pub fn error_body(status: u16, scim_type: Option<ScimType>, detail: &str) -> ErrorPayload {
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.to_string(),
        "detail": detail,
    });
    if let Some(scim_type) = scim_type {
        body["scimType"] = json!(scim_type.as_str());
    }
    ScimJson::new(body)
}

impl ScimError {
    pub fn unauthorized(detail: &str, token_error: bool) -> Self {
        let challenge = if token_error {
            format!("{WWW_AUTHENTICATE}, error=\"invalid_token\", error_description=\"{detail}\"")
        } else {
            WWW_AUTHENTICATE.to_owned()
        };
        Self::Unauthorized(error_body(401, None, detail), challenge)
    }

    pub fn forbidden(scope: &str) -> Self {
        Self::Forbidden(error_body(
            403,
            None,
            &format!("this operation needs the scope \"{scope}\""),
        ))
    }

    pub fn forbidden_detail(detail: &str) -> Self {
        Self::Forbidden(error_body(403, None, detail))
    }

    pub fn not_found(detail: &str) -> Self {
        Self::NotFound(error_body(404, None, detail))
    }

    pub fn precondition_failed() -> Self {
        Self::PreconditionFailed(error_body(
            412,
            None,
            "the resource changed: If-Match does not name its current version; GET it again",
        ))
    }

    pub fn internal() -> Self {
        Self::Internal(error_body(
            500,
            None,
            "internal error; the server log has the details",
        ))
    }
}

impl From<ScimViolation> for ScimError {
    fn from(v: ScimViolation) -> Self {
        match v.scim_type {
            ScimType::Uniqueness => Self::Conflict(error_body(409, Some(v.scim_type), &v.detail)),
            _ => Self::BadRequest(error_body(400, Some(v.scim_type), &v.detail)),
        }
    }
}

impl From<ServiceError> for ScimError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Invalid(v) => v.into(),
            ServiceError::NotFound(what) => Self::not_found(&format!("{what} not found")),
            ServiceError::VersionMismatch => Self::precondition_failed(),
            ServiceError::Conflict(detail) => Self::Conflict(error_body(409, None, &detail)),
            ServiceError::Forbidden(detail) => Self::Forbidden(error_body(403, None, &detail)),
            ServiceError::TooMany(detail, retry_after) => {
                Self::TooManyRequests(error_body(429, None, &detail), retry_after.as_secs().max(1))
            }
            ServiceError::Unavailable(detail) => {
                Self::Unavailable(error_body(503, None, &detail), 5)
            }
            ServiceError::Busy(retry_after) => Self::Unavailable(
                error_body(
                    503,
                    None,
                    "too many password and code checks are queued; nothing was changed, \
                     try again in a moment",
                ),
                retry_after.as_secs().max(1),
            ),
            ServiceError::Internal(failure) => {
                tracing::error!(error = %failure, "request failed");
                Self::internal()
            }
        }
    }
}

impl From<BearerRefusal> for ScimError {
    fn from(refusal: BearerRefusal) -> Self {
        match refusal {
            BearerRefusal::InvalidToken(detail) => Self::unauthorized(&detail, true),
            BearerRefusal::InsufficientScope(scope) => Self::forbidden(scope),
            BearerRefusal::Failed(err) => err.into(),
        }
    }
}

/// Turns any error that reached the SCIM routes without a SCIM body (unknown path, wrong
/// method, a parameter poem-openapi could not parse) into one.
pub async fn to_scim_response(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let detail = match status.as_u16() {
        401 => "a bearer token is required: Authorization: Bearer <access token>".to_owned(),
        404 => "no such endpoint; the SCIM base is /scim/v2".to_owned(),
        405 => "this method is not allowed on this endpoint".to_owned(),
        500..=599 => {
            tracing::error!(error = %err, "unhandled error");
            "internal error; the server log has the details".to_owned()
        }
        _ => err.to_string(),
    };
    let scim_type = (status.as_u16() == 400).then_some(ScimType::InvalidValue);
    let mut response = error_body(status.as_u16(), scim_type, &detail).into_response();
    response.set_status(status);
    if status.as_u16() == 401 {
        response.headers_mut().insert(
            "WWW-Authenticate",
            poem::http::HeaderValue::from_static(WWW_AUTHENTICATE),
        );
    }
    response
}
