//! The SCIM 2.0 API at `/scim/v2` (poem-openapi): discovery, Users, Groups, 2-step
//! verification and bypass codes.

pub mod audit;
pub mod auth;
pub mod bypass_codes;
pub mod discovery;
pub mod error;
mod groups;
pub mod mfa;
pub mod models;
pub mod payload;
mod search;
mod users;

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::{ApiResponse, OpenApi, OpenApiService, Tags};

use self::auth::ScimBearer;
use self::error::ScimError;
use self::models::DiscoveryDocument;
use self::payload::ScimJson;
use crate::state::AppState;

pub use audit::AuditApi;
pub use bypass_codes::{BypassCodesApi, MeApi};
pub use groups::GroupsApi;
pub use mfa::MfaApi;
pub use search::SearchAllApi;
pub use users::{IF_MATCH_PATTERN, UsersApi, refuse_malformed_if_match};

/// Every operation of the API, as poem-openapi serves them.
pub type Apis = (
    DiscoveryApi,
    UsersApi,
    GroupsApi,
    SearchAllApi,
    MfaApi,
    BypassCodesApi,
    MeApi,
    AuditApi,
);

/// The OpenAPI service; its document does not depend on the configuration.
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            DiscoveryApi,
            UsersApi,
            GroupsApi,
            SearchAllApi,
            MfaApi,
            BypassCodesApi,
            MeApi,
            AuditApi,
        ),
        "bypass-idp",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "OpenID Connect identity provider with SCIM 2.0 provisioning and MFA bypass codes. \
             Get a bearer token from the token endpoint (client_credentials) advertised at \
             /.well-known/openid-configuration.",
    )
}

#[derive(Tags)]
pub enum ApiTags {
    /// What this SCIM server supports (RFC 7643 §5–§7).
    Discovery,
    /// User provisioning (RFC 7644).
    Users,
    /// Group provisioning (RFC 7643 §4.2); some groups grant administrator roles.
    Groups,
    /// Bypass codes and their policy.
    BypassCodes,
    /// The stored audit log (security administrators).
    Audit,
    /// TOTP enrolment and reset.
    TwoStepVerification,
}

#[derive(ApiResponse)]
pub enum DiscoveryResponse {
    /// The document.
    #[oai(status = 200)]
    Ok(ScimJson<DiscoveryDocument>),
}

pub struct DiscoveryApi;

#[OpenApi(prefix_path = "/scim/v2", tag = "ApiTags::Discovery")]
impl DiscoveryApi {
    /// The features this server supports.
    #[oai(
        path = "/ServiceProviderConfig",
        method = "get",
        operation_id = "getServiceProviderConfig"
    )]
    async fn service_provider_config(
        &self,
        _auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
    ) -> Result<DiscoveryResponse, ScimError> {
        Ok(DiscoveryResponse::Ok(ScimJson::new(
            discovery::service_provider_config(&state.scim_base()),
        )))
    }

    /// The resource types this server serves.
    #[oai(
        path = "/ResourceTypes",
        method = "get",
        operation_id = "listResourceTypes"
    )]
    async fn resource_types(
        &self,
        _auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
    ) -> Result<DiscoveryResponse, ScimError> {
        Ok(DiscoveryResponse::Ok(ScimJson::new(
            discovery::resource_types(&state.scim_base()),
        )))
    }

    /// One resource type.
    #[oai(
        path = "/ResourceTypes/:id",
        method = "get",
        operation_id = "getResourceType"
    )]
    async fn resource_type(
        &self,
        _auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> Result<DiscoveryResponse, ScimError> {
        let found = discovery::resource_type(&state.scim_base(), &id.0).ok_or_else(|| {
            ScimError::not_found(&format!("resource type \"{}\" not found", id.0))
        })?;
        Ok(DiscoveryResponse::Ok(ScimJson::new(found)))
    }

    /// The schemas this server serves.
    #[oai(path = "/Schemas", method = "get", operation_id = "listSchemas")]
    async fn schemas(
        &self,
        _auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
    ) -> Result<DiscoveryResponse, ScimError> {
        Ok(DiscoveryResponse::Ok(ScimJson::new(discovery::schemas(
            &state.scim_base(),
        ))))
    }

    /// One schema, by its URN.
    #[oai(path = "/Schemas/:id", method = "get", operation_id = "getSchema")]
    async fn schema(
        &self,
        _auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> Result<DiscoveryResponse, ScimError> {
        let schema = discovery::schema(&state.scim_base(), &id.0)
            .ok_or_else(|| ScimError::not_found(&format!("schema \"{}\" not found", id.0)))?;
        Ok(DiscoveryResponse::Ok(ScimJson::new(schema)))
    }
}
