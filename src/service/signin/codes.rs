//! Authorization codes: issued when a sign-in ends (or single sign-on answers), peeked at
//! and redeemed once by the token endpoint, remembered after use to catch a replay.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{SignInService, digest_hex, random_token};
use crate::domain::audit::AuditEvent;
use crate::domain::ids::UserId;
use crate::domain::methods::{AMR_BYPASS_CODE, AMR_OTP};
use crate::domain::repo::GrantRepo;
use crate::domain::scope::ScopeSet;
use crate::domain::signin::AuthRequest;
use crate::service::context::Context;
use crate::service::{ServiceError, audit, events};

pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a used authorization code is remembered, to catch its replay.
const USED_CODE_TTL: Duration = Duration::from_secs(10 * 60);

/// What an issued authorization code stands for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    pub user_id: UserId,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub grant_id: String,
    /// The bypass code the sign-in used, if it used one.
    #[serde(default)]
    pub bypass_code: Option<String>,
    /// The sign-in session it came from (`sid`).
    #[serde(default)]
    pub session_id: Option<String>,
}

/// What an authorization code stands for, read without using it.
pub enum Peeked {
    /// Not redeemed yet.
    Live(Box<CodeGrant>),
    /// Redeemed before (remembered for 10 minutes): the grant it gave, when known.
    Used {
        grant_id: String,
        grant: Option<Box<CodeGrant>>,
    },
}

/// What redeeming an authorization code found.
pub enum Redeemed {
    Grant(Box<CodeGrant>),
    /// The code was redeemed before: the grant issued from it is now revoked.
    Replayed,
    /// No such code, or it expired.
    Invalid,
}

pub fn code_key(code: &str) -> String {
    format!("authcode:{}", digest_hex(code))
}

pub fn used_code_key(code: &str) -> String {
    format!("authcode-used:{}", digest_hex(code))
}

/// `redirect_uri` with `params` appended to its query (RFC 6749 §4.1.2), plus `iss` (RFC 9207).
pub fn redirect_url(redirect_uri: &str, params: &[(&str, &str)], issuer: &str) -> String {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return redirect_uri.to_owned(),
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        query.append_pair("iss", issuer);
    }
    url.to_string()
}

impl SignInService {
    /// The authorization code for a signed-in user, and the URL that takes it to the client.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn issue_code(
        &self,
        request: AuthRequest,
        user_id: &UserId,
        auth_time: i64,
        amr: Vec<String>,
        bypass_code: Option<String>,
        session_id: Option<String>,
        ctx: &Context,
    ) -> Result<String, ServiceError> {
        events::signed_in(if amr.iter().any(|m| m == AMR_BYPASS_CODE) {
            "bypass_code"
        } else if amr.iter().any(|m| m == AMR_OTP) {
            "otp"
        } else {
            "password"
        });
        // At the console, the scopes of the user's roles as they stand now; elsewhere as asked.
        let scope = self
            .roles
            .allowed_scope(
                user_id,
                &request.client_id,
                &ScopeSet::parse(&request.scope),
                &amr,
            )
            .await?;
        let code = random_token();
        let grant = CodeGrant {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            scope: scope.to_string(),
            user_id: user_id.clone(),
            auth_time,
            amr: amr.clone(),
            grant_id: uuid::Uuid::new_v4().to_string(),
            bypass_code,
            session_id,
        };
        let text = serde_json::to_string(&grant)
            .map_err(|e| ServiceError::internal("authorization code", e))?;
        self.kv.put(&code_key(&code), &text, CODE_TTL).await?;
        audit::record(
            &self.store,
            ctx,
            user_id,
            None,
            AuditEvent::SignedIn,
            Some(format!(
                "client {} amr {}",
                request.client_id,
                amr.join(" ")
            )),
            self.clock.now(),
        )
        .await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        Ok(redirect_url(&request.redirect_uri, &params, &self.issuer))
    }

    /// What an authorization code stands for, without using it up: the token endpoint checks
    /// the client, redirect URI and PKCE first, so whoever holds a leaked code but not the
    /// verifier can neither burn it nor, once it was used, revoke the sign-in it gave.
    pub async fn peek(&self, code: &str) -> Result<Option<Peeked>, ServiceError> {
        let parse = |text: &str| {
            serde_json::from_str::<CodeGrant>(text)
                .map_err(|e| ServiceError::internal("stored authorization code", e))
        };
        if let Some(text) = self.kv.get(&code_key(code)).await? {
            return Ok(Some(Peeked::Live(Box::new(parse(&text)?))));
        }
        Ok(self
            .kv
            .get(&used_code_key(code))
            .await?
            // A marker is the used code's grant; markers written before it was kept held
            // only the grant id.
            .map(|text| match serde_json::from_str::<CodeGrant>(&text) {
                Ok(grant) => Peeked::Used {
                    grant_id: grant.grant_id.clone(),
                    grant: Some(Box::new(grant)),
                },
                Err(_) => Peeked::Used {
                    grant_id: text,
                    grant: None,
                },
            }))
    }

    /// A used code came back from the client it was issued to: someone holds a copy, so the
    /// sign-in it gave ends (RFC 6749 §4.1.2).
    pub async fn revoke_replayed(&self, grant_id: &str) -> Result<(), ServiceError> {
        self.store.revoke_grant(grant_id, self.clock.now()).await?;
        tracing::warn!(grant_id = %grant_id, "authorization code replayed; grant revoked");
        Ok(())
    }

    /// Redeems an authorization code exactly once. A second redemption revokes the grant.
    pub async fn redeem(&self, code: &str) -> Result<Redeemed, ServiceError> {
        if let Some(text) = self.kv.take(&code_key(code)).await? {
            let grant: CodeGrant = serde_json::from_str(&text)
                .map_err(|e| ServiceError::internal("stored authorization code", e))?;
            self.kv
                .put(&used_code_key(code), &text, USED_CODE_TTL)
                .await?;
            return Ok(Redeemed::Grant(Box::new(grant)));
        }
        // Taken by a concurrent redemption that passed the same checks: both cannot win.
        match self.peek(code).await? {
            Some(Peeked::Used { grant_id, .. }) => {
                self.revoke_replayed(&grant_id).await?;
                Ok(Redeemed::Replayed)
            }
            _ => Ok(Redeemed::Invalid),
        }
    }
}
