//! Bearer-token authentication for the SCIM API.

use std::sync::Arc;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::error::ScimError;
use crate::app::AppState;
use crate::oidc::tokens::{Principal, TokenError};

/// An access token from this server's token endpoint (`client_credentials` or a user's token).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct ScimBearer(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = req
        .data::<Arc<AppState>>()
        .ok_or_else(|| poem::Error::from(ScimError::internal()))?;
    let principal = match state.tokens.verify(&bearer.token).await {
        Ok(principal) => principal,
        Err(TokenError::Service(err)) => return Err(ScimError::from(err).into()),
        Err(refused) => return Err(ScimError::unauthorized(&refused.to_string(), true).into()),
    };
    match crate::oidc::grants::grant_is_live(state, &principal).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(
                ScimError::unauthorized("the sign-in behind this token was revoked", true).into(),
            );
        }
        Err(err) => return Err(ScimError::from(err).into()),
    }
    // Removing a client revokes its tokens at once.
    match state.store.find_client(&principal.client_id).await {
        Ok(Some(_)) => Ok(principal),
        Ok(None) => {
            Err(ScimError::unauthorized("the client of this token no longer exists", true).into())
        }
        Err(err) => Err(ScimError::from(crate::service::ServiceError::from(err)).into()),
    }
}

impl ScimBearer {
    pub fn require(&self, scope: &str) -> Result<&Principal, ScimError> {
        if self.0.scopes.contains(scope) {
            Ok(&self.0)
        } else {
            Err(ScimError::forbidden(scope))
        }
    }

    /// Requires one of `scopes`.
    pub fn require_any(&self, scopes: &[&str]) -> Result<&Principal, ScimError> {
        if scopes.iter().any(|s| self.0.scopes.contains(s)) {
            Ok(&self.0)
        } else {
            Err(ScimError::forbidden(&scopes.join("\" or \"")))
        }
    }
}
