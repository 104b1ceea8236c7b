//! The SCIM 2.0 API at `/scim/v2` (poem-openapi): discovery and Users.

pub mod auth;
pub mod bypass_codes;
pub mod discovery;
pub mod error;
pub mod mfa;
pub mod models;
pub mod payload;
mod users;

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::{ApiResponse, OpenApi, Tags};

use self::auth::ScimBearer;
use self::error::ScimError;
use self::models::DiscoveryDocument;
use self::payload::ScimJson;
use crate::domain::scim::{MFA_EXTENSION_SCHEMA, USER_SCHEMA};
use crate::state::AppState;

pub use bypass_codes::{BypassCodesApi, MeApi};
pub use mfa::MfaApi;
pub use users::UsersApi;

#[derive(Tags)]
pub enum ApiTags {
    /// What this SCIM server supports (RFC 7643 §5–§7).
    Discovery,
    /// User provisioning (RFC 7644).
    Users,
    /// Bypass codes and their policy.
    BypassCodes,
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
        Ok(DiscoveryResponse::Ok(ScimJson::new(discovery::list(vec![
            discovery::user_resource_type(&state.scim_base()),
        ]))))
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
        if id.0 != "User" {
            return Err(ScimError::not_found(&format!(
                "resource type \"{}\" not found",
                id.0
            )));
        }
        Ok(DiscoveryResponse::Ok(ScimJson::new(
            discovery::user_resource_type(&state.scim_base()),
        )))
    }

    /// The schemas this server serves.
    #[oai(path = "/Schemas", method = "get", operation_id = "listSchemas")]
    async fn schemas(
        &self,
        _auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
    ) -> Result<DiscoveryResponse, ScimError> {
        Ok(DiscoveryResponse::Ok(ScimJson::new(discovery::list(vec![
            discovery::user_schema(&state.scim_base()),
            discovery::mfa_extension_schema(&state.scim_base()),
        ]))))
    }

    /// One schema, by its URN.
    #[oai(path = "/Schemas/:id", method = "get", operation_id = "getSchema")]
    async fn schema(
        &self,
        _auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> Result<DiscoveryResponse, ScimError> {
        let schema = match id.0.as_str() {
            USER_SCHEMA => discovery::user_schema(&state.scim_base()),
            MFA_EXTENSION_SCHEMA => discovery::mfa_extension_schema(&state.scim_base()),
            other => {
                return Err(ScimError::not_found(&format!(
                    "schema \"{other}\" not found"
                )));
            }
        };
        Ok(DiscoveryResponse::Ok(ScimJson::new(schema)))
    }
}
