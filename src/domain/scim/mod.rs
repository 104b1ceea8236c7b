//! The SCIM 2.0 model (RFC 7643/7644): error kinds, filter and path grammar, the User resource.

pub mod common;
pub mod filter;
pub mod group;
pub mod schema;
pub mod search;
pub mod user;

use std::fmt;

/// The `scimType` of an RFC 7644 §3.12 error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFilter => "invalidFilter",
            Self::TooMany => "tooMany",
            Self::Uniqueness => "uniqueness",
            Self::Mutability => "mutability",
            Self::InvalidSyntax => "invalidSyntax",
            Self::InvalidPath => "invalidPath",
            Self::NoTarget => "noTarget",
            Self::InvalidValue => "invalidValue",
            Self::InvalidVers => "invalidVers",
        }
    }
}

/// A request that breaks the SCIM model: always a 400 with a `scimType`, except `uniqueness` (409).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimViolation {
    pub scim_type: ScimType,
    pub detail: String,
}

impl ScimViolation {
    pub fn new(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self {
            scim_type,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ScimViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.scim_type.as_str(), self.detail)
    }
}

impl std::error::Error for ScimViolation {}

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Most operations in one PATCH request, to Users and Groups alike.
pub const MAX_PATCH_OPERATIONS: usize = 100;
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Read-only extension of the User resource: the state of 2-step verification.
pub const MFA_EXTENSION_SCHEMA: &str = "urn:bypass-idp:params:scim:schemas:extension:mfa:2.0:User";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
