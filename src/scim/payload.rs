//! `application/scim+json` bodies. Requests are parsed to a JSON value and validated by the
//! domain (SCIM attribute names are case-insensitive, which typed deserialisation cannot do);
//! the type parameter only documents the schema in the OpenAPI document.

use std::marker::PhantomData;

use poem::{IntoResponse, Request, RequestBody, Response};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{
    MetaMediaType, MetaRequest, MetaResponse, MetaResponses, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions};
use serde_json::Value;

use super::error::ScimError;
use crate::domain::scim::{LIST_RESPONSE_SCHEMA, ScimType, ScimViolation};

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// An RFC 7644 §3.4.2 ListResponse: one page of `total` results, from `start_index` (1-based).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<R> {
    schemas: [&'static str; 1],
    total_results: u64,
    start_index: u64,
    items_per_page: usize,
    #[serde(rename = "Resources")]
    resources: Vec<R>,
}

/// A page of `resources` (JSON trees, or resources that write themselves), written into the
/// response with [`ScimJson::written`].
pub fn list_response<R: serde::Serialize>(
    resources: Vec<R>,
    total: u64,
    start_index: u64,
) -> ListResponse<R> {
    ListResponse {
        schemas: [LIST_RESPONSE_SCHEMA],
        total_results: total,
        start_index,
        items_per_page: resources.len(),
        resources,
    }
}

const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct ScimJson<T> {
    pub value: Value,
    /// A response body already written as JSON ([`Self::written`]; `None` inside if writing
    /// it failed); `value` is then null.
    written: Option<Option<Vec<u8>>>,
    documented: PhantomData<fn() -> T>,
}

impl<T> ScimJson<T> {
    pub fn new(value: Value) -> Self {
        Self {
            value,
            written: None,
            documented: PhantomData,
        }
    }

    /// A response body written straight from `body`, without a JSON tree in between (a page
    /// of resources that write themselves).
    pub fn written(body: &impl serde::Serialize) -> Self {
        // Room for a page of a few users up front, not grown from 128 bytes copy by copy.
        let mut bytes = Vec::with_capacity(16 * 1024);
        // Our bodies have string keys only, so this does not fail; if it ever did, the
        // answer is a 500 (below), not a 200 with half a body.
        let written = match serde_json::to_writer(&mut bytes, body) {
            Ok(()) => Some(bytes),
            Err(e) => {
                tracing::error!(error = %e, "writing a SCIM response body failed");
                None
            }
        };
        Self {
            value: Value::Null,
            written: Some(written),
            documented: PhantomData,
        }
    }
}

impl<T: Type> Payload for ScimJson<T> {
    const CONTENT_TYPE: &'static str = SCIM_CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        match content_type.parse::<mime::Mime>() {
            Ok(mime) => {
                mime.type_() == "application"
                    && (mime.subtype() == "json"
                        || (mime.subtype() == "scim" && mime.suffix().is_some_and(|s| s == "json")))
            }
            Err(_) => false,
        }
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type> ParsePayload for ScimJson<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let _ = request;
        let bytes = body
            .take()?
            .into_bytes_limit(MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                ScimError::PayloadTooLarge(super::error::error_body(
                    413,
                    None,
                    &format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
                ))
            })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ScimError::from(ScimViolation::new(
                ScimType::InvalidSyntax,
                format!("the request body is not valid JSON: {e}"),
            ))
        })?;
        Ok(Self::new(value))
    }
}

impl<'a, T: Type> ApiExtractor<'a> for ScimJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        // One media type: `application/json` is accepted too, but a body listed under two
        // types makes openapi-python-client 0.29 generate code that does not import.
        Some(MetaRequest {
            description: Some("`application/scim+json`; `application/json` is accepted too."),
            content: vec![MetaMediaType {
                content_type: SCIM_CONTENT_TYPE,
                schema: T::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(content_type) if <Self as Payload>::check_content_type(content_type) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            other => Err(ScimError::UnsupportedMediaType(super::error::error_body(
                415,
                None,
                &format!(
                    "send the body as application/scim+json or application/json (got {})",
                    other.unwrap_or("no Content-Type")
                ),
            ))
            .into()),
        }
    }
}

impl<T: Send> IntoResponse for ScimJson<T> {
    fn into_response(self) -> Response {
        // Written straight into bytes: `to_string` goes through `fmt::Display`, a formatter
        // call per token.
        let bytes = match self.written {
            Some(written) => written,
            None => serde_json::to_vec(&self.value).ok(),
        };
        match bytes {
            Some(bytes) => Response::builder()
                .content_type(SCIM_CONTENT_TYPE)
                .body(bytes),
            None => super::error::error_body(500, None, "the response could not be written")
                .with_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
        }
    }
}

impl<T: Type + Send> ApiResponse for ScimJson<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: SCIM_CONTENT_TYPE,
                    schema: T::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}
