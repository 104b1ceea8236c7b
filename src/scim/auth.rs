//! Bearer-token authentication for the SCIM API, and who the request acts for.

use std::sync::Arc;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::error::ScimError;
use crate::domain::ids::UserId;
use crate::edge::ClientAddr;
use crate::service::context::Context;
use crate::service::oauth::tokens::Principal;
use crate::state::AppState;

/// An access token from this server's token endpoint (`client_credentials` or a user's token).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct ScimBearer(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = req
        .data::<Arc<AppState>>()
        .ok_or_else(|| poem::Error::from(ScimError::internal()))?;
    state
        .oauth
        .authenticate_bearer(&bearer.token)
        .await
        .map_err(|refusal| ScimError::from(refusal).into())
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

    /// The request's actor, client, address and authority (the token's scopes and, for a
    /// user's token, how the user signed in), for the access decision and the audit trail.
    pub async fn acting(
        &self,
        state: &AppState,
        remote: &ClientAddr,
    ) -> Result<Context, ScimError> {
        let amr = match state.oauth.session(&self.0).await? {
            Some(session) => session.amr,
            None => Vec::new(),
        };
        Ok(self
            .context(remote)
            .with_authority(self.0.scopes.clone(), amr))
    }

    /// The request's actor, client and address, for the audit trail.
    pub fn context(&self, remote: &ClientAddr) -> Context {
        let ip = remote.0;
        let principal = &self.0;
        if principal.subject == principal.client_id.as_str() {
            Context::client(principal.client_id.clone(), ip)
        } else {
            Context::user(
                UserId::new(principal.subject.clone()),
                Some(principal.client_id.clone()),
                ip,
            )
        }
    }
}
