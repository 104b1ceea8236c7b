//! Types that document SCIM bodies in the OpenAPI document. Requests are validated by the
//! domain model, so these only describe the shape; they are never deserialised.

use poem_openapi::Object;
use serde_json::Value;

/// An RFC 7644 §3.12 error.
#[derive(Object)]
#[oai(rename = "ScimError")]
pub struct ScimErrorBody {
    /// Always `["urn:ietf:params:scim:api:messages:2.0:Error"]`.
    pub schemas: Vec<String>,
    /// The HTTP status code, as a string.
    pub status: String,
    /// The SCIM error type, e.g. `invalidFilter`, `uniqueness`, `invalidValue`.
    #[oai(rename = "scimType")]
    pub scim_type: Option<String>,
    /// What went wrong, for a person to act on.
    pub detail: String,
}

/// Components of a user's name.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct UserName {
    #[oai(validator(max_length = 256))]
    pub formatted: Option<String>,
    #[oai(validator(max_length = 256))]
    pub family_name: Option<String>,
    #[oai(validator(max_length = 256))]
    pub given_name: Option<String>,
    #[oai(validator(max_length = 256))]
    pub middle_name: Option<String>,
    #[oai(validator(max_length = 256))]
    pub honorific_prefix: Option<String>,
    #[oai(validator(max_length = 256))]
    pub honorific_suffix: Option<String>,
}

/// An email address of a user.
#[derive(Object)]
pub struct UserEmail {
    #[oai(validator(max_length = 320))]
    pub value: String,
    /// `work`, `home` or `other`.
    #[oai(rename = "type", validator(max_length = 256))]
    pub kind: Option<String>,
    /// At most one address is primary.
    pub primary: Option<bool>,
    #[oai(validator(max_length = 256))]
    pub display: Option<String>,
}

/// Resource metadata (RFC 7643 §3.1).
#[derive(Object, Default)]
#[oai(rename_all = "camelCase")]
pub struct Meta {
    pub resource_type: String,
    pub created: String,
    pub last_modified: String,
    pub location: String,
    /// The ETag, e.g. `W/"3"`.
    pub version: String,
}

/// A SCIM User (RFC 7643 §4.1). Attribute names are matched case-insensitively.
#[derive(Object)]
#[oai(rename = "User", rename_all = "camelCase")]
pub struct UserResource {
    /// Must contain `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub schemas: Vec<String>,
    #[oai(read_only)]
    pub id: String,
    #[oai(validator(max_length = 256))]
    pub external_id: Option<String>,
    /// Unique case-insensitively.
    #[oai(validator(max_length = 256))]
    pub user_name: String,
    pub name: Option<UserName>,
    #[oai(validator(max_length = 256))]
    pub display_name: Option<String>,
    #[oai(validator(max_length = 256))]
    pub nick_name: Option<String>,
    #[oai(validator(max_length = 2048))]
    pub profile_url: Option<String>,
    #[oai(validator(max_length = 256))]
    pub title: Option<String>,
    #[oai(validator(max_length = 256))]
    pub user_type: Option<String>,
    #[oai(validator(max_length = 256))]
    pub preferred_language: Option<String>,
    #[oai(validator(max_length = 256))]
    pub locale: Option<String>,
    #[oai(validator(max_length = 256))]
    pub timezone: Option<String>,
    /// Defaults to true.
    pub active: Option<bool>,
    /// Write-only; at least 8 characters; stored as an Argon2id hash.
    #[oai(write_only, validator(min_length = 8, max_length = 256))]
    pub password: Option<String>,
    pub emails: Option<Vec<UserEmail>>,
    #[oai(read_only)]
    pub meta: Meta,
}

/// A page of users (RFC 7644 §3.4.2).
#[derive(Object)]
#[oai(rename = "UserListResponse")]
pub struct UserListResponse {
    pub schemas: Vec<String>,
    #[oai(rename = "totalResults")]
    pub total_results: u64,
    #[oai(rename = "startIndex")]
    pub start_index: u64,
    #[oai(rename = "itemsPerPage")]
    pub items_per_page: u64,
    #[oai(rename = "Resources")]
    pub resources: Vec<UserResource>,
}

/// One PATCH operation (RFC 7644 §3.5.2).
#[derive(Object)]
pub struct PatchOperation {
    /// `add`, `replace` or `remove` (any case).
    pub op: String,
    /// e.g. `name.givenName`, `emails[type eq "work"].value`; required for `remove`.
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// A PATCH request.
#[derive(Object)]
pub struct PatchRequest {
    /// Must be `["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`.
    pub schemas: Vec<String>,
    #[oai(rename = "Operations")]
    pub operations: Vec<PatchOperation>,
}

/// A query sent in a body (RFC 7644 §3.4.3).
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SearchRequest {
    /// Must be `["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]`.
    pub schemas: Vec<String>,
    pub filter: Option<String>,
    pub attributes: Option<Vec<String>>,
    pub excluded_attributes: Option<Vec<String>>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
}

/// A discovery document (`ServiceProviderConfig`, a list of `ResourceType`s or `Schema`s),
/// as RFC 7643 §5–§7 define them.
#[derive(Object)]
pub struct DiscoveryDocument {
    pub schemas: Vec<String>,
}
