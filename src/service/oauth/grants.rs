//! The user grants of the token endpoint: authorization_code (single use, PKCE, replay
//! revokes) and refresh_token (rotated, reuse revokes), with the ID tokens they carry.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use openidconnect::{
    Audience, AuthenticationContextClass, AuthenticationMethodReference, EndUserEmail,
    EndUserFamilyName, EndUserGivenName, EndUserName, EndUserUsername, IssuerUrl, LocalizedClaim,
    Nonce, StandardClaims, SubjectIdentifier,
};
use rand::RngExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::keys::{IdClaims, SessionClaims};
use super::tokens::Principal;
use super::{OAuthService, TokenRefusal, required};
use crate::domain::methods::acr_for;
use crate::domain::oauth::{Client, Grant};
use crate::domain::repo::{BypassCodeRepo, GrantRepo, UserRepo};
use crate::domain::scim::user::User;
use crate::domain::scope::ScopeSet;
use crate::service::ServiceError;
use crate::service::signin::{CodeGrant, Peeked, Redeemed};

const ID_TOKEN_MINUTES: i64 = 10;

fn invalid_grant(description: &'static str) -> TokenRefusal {
    TokenRefusal::InvalidGrant(description)
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge, compared in constant time.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// The code was issued to this client, for this redirect URI, and the PKCE verifier matches.
fn check_redemption(
    client: &Client,
    code_grant: &CodeGrant,
    redirect_uri: &str,
    form: &HashMap<String, String>,
) -> Result<(), TokenRefusal> {
    if code_grant.client_id != client.client_id.as_str() {
        return Err(invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if code_grant.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    match (&code_grant.code_challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if pkce_matches(verifier, challenge) => Ok(()),
        (Some(_), Some(_)) => Err(invalid_grant(
            "code_verifier does not match the code_challenge",
        )),
        (Some(_), None) => Err(invalid_grant("code_verifier is required (PKCE)")),
        (None, Some(_)) => Err(invalid_grant(
            "code_verifier given but no code_challenge was sent",
        )),
        (None, None) if client.public => Err(invalid_grant("public clients must use PKCE")),
        (None, None) => Ok(()),
    }
}

fn refresh_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl OAuthService {
    pub(super) async fn authorization_code(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
    ) -> Result<Value, TokenRefusal> {
        let (grant, nonce) = self.redeem_code(client, form).await?;
        self.issue(client, &grant, nonce.as_deref()).await
    }

    /// Redeems an authorization code for `client`: single use, same redirect URI, PKCE; the
    /// grant it stands for is stored and returned with the request's nonce.
    pub(super) async fn redeem_code(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
    ) -> Result<(Grant, Option<String>), TokenRefusal> {
        let code = required(form, "code")?;
        let redirect_uri = required(form, "redirect_uri")?;
        // Checked before the code is used up: a request that fails here leaves it for its
        // rightful client. A used code is checked the same way before its replay revokes
        // the sign-in, so a stranger holding a copy cannot end someone else's sign-in.
        match self.signin.peek(code).await? {
            Some(Peeked::Live(peeked)) => check_redemption(client, &peeked, redirect_uri, form)?,
            Some(Peeked::Used { grant_id, grant }) => {
                if let Some(grant) = &grant {
                    check_redemption(client, grant, redirect_uri, form)?;
                }
                self.signin.revoke_replayed(&grant_id).await?;
                return Err(invalid_grant(
                    "the authorization code was already used; the tokens issued from it are revoked",
                ));
            }
            None => {
                return Err(invalid_grant(
                    "the authorization code is invalid or expired",
                ));
            }
        }
        let code_grant = match self.signin.redeem(code).await? {
            Redeemed::Grant(grant) => grant,
            Redeemed::Replayed => {
                return Err(invalid_grant(
                    "the authorization code was already used; the tokens issued from it are revoked",
                ));
            }
            Redeemed::Invalid => {
                return Err(invalid_grant(
                    "the authorization code is invalid or expired",
                ));
            }
        };
        // The same code, as taken: checked again in case it was only now stored.
        check_redemption(client, &code_grant, redirect_uri, form)?;
        let now = Utc::now();
        let grant = Grant {
            id: code_grant.grant_id.clone(),
            user_id: code_grant.user_id.clone(),
            client_id: client.client_id.clone(),
            scope: code_grant.scope.clone(),
            auth_time: code_grant.auth_time,
            acr: acr_for(&code_grant.amr).to_owned(),
            amr: code_grant.amr.clone(),
            created_at: now,
            bypass_code_id: code_grant.bypass_code.clone(),
            revoked_at: None,
            session_id: code_grant.session_id.clone(),
        };
        self.store.insert_grant(&grant).await?;
        // Checked after the grant exists: a revocation that commits before this read is seen
        // here, and one that commits after it finds the grant and revokes it.
        if let Some(code_id) = &grant.bypass_code_id {
            let code = self.store.find_code(&grant.user_id, code_id).await?;
            if code.is_none_or(|c| c.revoked_at.is_some()) {
                self.store.revoke_grant(&grant.id, now).await?;
                return Err(invalid_grant(
                    "the bypass code this sign-in used was revoked",
                ));
            }
        }
        // The same for the session: one that ended before this grant existed left it behind.
        if let Some(session_id) = &grant.session_id {
            let session = self.store.session(session_id).await?;
            if session.is_none_or(|s| s.ended_at.is_some()) {
                self.store.revoke_grant(&grant.id, now).await?;
                return Err(invalid_grant("the sign-in session has ended"));
            }
        }
        Ok((grant, code_grant.nonce.clone()))
    }

    pub(super) async fn refresh_token(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
    ) -> Result<Value, TokenRefusal> {
        let token = required(form, "refresh_token")?;
        let hash = refresh_digest(token);
        let stored = self
            .store
            .find_refresh_token(&hash)
            .await?
            .ok_or_else(|| invalid_grant("the refresh token is invalid"))?;
        let grant = self
            .store
            .find_grant(&stored.grant_id)
            .await?
            .ok_or_else(|| invalid_grant("the refresh token is invalid"))?;
        if grant.client_id != client.client_id {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if !grant.is_live() {
            return Err(invalid_grant(
                "the sign-in behind this refresh token was revoked",
            ));
        }
        let now = Utc::now();
        if stored.expires_at <= now || grant.session_end(self.refresh_token_lifetime) <= now {
            return Err(invalid_grant(
                "the refresh token has expired; sign in again",
            ));
        }
        // RFC 6749 §6: a refresh may ask for less than the sign-in granted, never more; the
        // new access token carries what was asked, the grant keeps the rest. Checked before
        // the token is used up, so a refused request leaves it to be used again.
        let granted = ScopeSet::parse(&grant.scope);
        let scopes = match form.get("scope") {
            Some(requested) => {
                let requested = ScopeSet::parse(requested);
                if !requested.is_subset(&granted) {
                    return Err(TokenRefusal::InvalidScope(
                        "a refresh cannot widen the scope".into(),
                    ));
                }
                requested
            }
            None => granted,
        };
        if !self.store.use_refresh_token(&hash, now).await? {
            // A rotated token came back: someone holds a copy. Everything from this sign-in dies.
            self.store.revoke_grant(&grant.id, now).await?;
            tracing::warn!(grant_id = %grant.id, "refresh token reused; grant revoked");
            return Err(invalid_grant(
                "the refresh token was already used; the sign-in is revoked",
            ));
        }
        self.issue_scoped(client, &grant, None, &scopes).await
    }

    /// The grant's user, if still active and if the sign-in was not voided by a credential
    /// change or a 2-step verification reset since (also for codes redeemed after it).
    pub(super) async fn live_user(&self, grant: &Grant) -> Result<User, TokenRefusal> {
        let user = self
            .store
            .get_user(&grant.user_id)
            .await?
            .filter(User::is_active)
            .ok_or_else(|| invalid_grant("the user no longer exists or is inactive"))?;
        let not_before = self.store.sessions_not_before(&grant.user_id).await?;
        if not_before.is_some_and(|t| grant.auth_time < t.timestamp()) {
            return Err(invalid_grant(
                "the user's credentials changed after this sign-in; sign in again",
            ));
        }
        Ok(user)
    }

    /// Access token, ID token and (when the client may refresh) a new refresh token, for the
    /// whole scope of the sign-in.
    async fn issue(
        &self,
        client: &Client,
        grant: &Grant,
        nonce: Option<&str>,
    ) -> Result<Value, TokenRefusal> {
        self.issue_scoped(client, grant, nonce, &ScopeSet::parse(&grant.scope))
            .await
    }

    /// [`Self::issue`] for `scopes`, a part of the sign-in's scope.
    async fn issue_scoped(
        &self,
        client: &Client,
        grant: &Grant,
        nonce: Option<&str>,
        scopes: &ScopeSet,
    ) -> Result<Value, TokenRefusal> {
        let user = self.live_user(grant).await?;
        // A scope the client may no longer grant (its registration changed since the
        // sign-in) is left out of new tokens.
        let scopes = ScopeSet::from_names(scopes.iter().filter(|s| client.may_grant_user_scope(s)));
        let access_token = self
            .tokens
            .issue(
                grant.user_id.as_str(),
                &client.client_id,
                &scopes,
                Some(&grant.id),
                None,
            )
            .await?;
        let claims = id_token_claims(&self.issuer, client, grant, &user, &scopes, nonce)?;
        let id_token = self.keys.sign_id_token(claims, &access_token).await?;
        let mut body = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.tokens.ttl_seconds(),
            "scope": scopes.to_string(),
            "id_token": id_token,
        });
        if client.may_use("refresh_token") {
            let mut bytes = [0u8; 32];
            rand::rng().fill(&mut bytes);
            let refresh = URL_SAFE_NO_PAD.encode(bytes);
            // Rotation never extends a sign-in past its absolute lifetime.
            let expires = grant.session_end(self.refresh_token_lifetime);
            self.store
                .insert_refresh_token(refresh_digest(&refresh), &grant.id, expires)
                .await?;
            body["refresh_token"] = json!(refresh);
        }
        tracing::info!(client_id = %client.client_id, user_id = %grant.user_id, amr = %grant.amr.join(" "), "tokens issued");
        Ok(body)
    }

    /// The claims the token's scopes allow, or `None` if its sign-in was revoked or the user
    /// is gone. Only user tokens (with a grant) have a user.
    pub(super) async fn user_claims_for(
        &self,
        principal: &Principal,
    ) -> Result<Option<Value>, ServiceError> {
        let Some(grant_id) = &principal.grant else {
            return Ok(None);
        };
        let grant = self.store.find_grant(grant_id).await?;
        let Some(grant) = grant.filter(Grant::is_live) else {
            return Ok(None);
        };
        let user = self.store.get_user(&grant.user_id).await?;
        let Some(user) = user.filter(User::is_active) else {
            return Ok(None);
        };
        let claims = standard_claims(&user, &principal.scopes);
        serde_json::to_value(&claims)
            .map(Some)
            .map_err(|e| ServiceError::internal("userinfo claims", e))
    }
}

fn standard_claims(
    user: &User,
    scopes: &ScopeSet,
) -> StandardClaims<openidconnect::core::CoreGenderClaim> {
    let attrs = &user.attributes;
    let mut claims = StandardClaims::new(SubjectIdentifier::new(user.id.as_str().to_owned()));
    if scopes.contains("profile") {
        let localized = |value: &Option<String>| {
            value.clone().map(|v| {
                let mut claim = LocalizedClaim::new();
                claim.insert(None, v);
                claim
            })
        };
        let name = attrs
            .name
            .formatted
            .clone()
            .or_else(|| attrs.display_name.clone());
        claims = claims
            .set_preferred_username(Some(EndUserUsername::new(attrs.user_name.clone())))
            .set_name(localized(&name).map(|c| {
                c.into_iter()
                    .map(|(l, v)| (l, EndUserName::new(v)))
                    .collect()
            }))
            .set_given_name(localized(&attrs.name.given_name).map(|c| {
                c.into_iter()
                    .map(|(l, v)| (l, EndUserGivenName::new(v)))
                    .collect()
            }))
            .set_family_name(localized(&attrs.name.family_name).map(|c| {
                c.into_iter()
                    .map(|(l, v)| (l, EndUserFamilyName::new(v)))
                    .collect()
            }));
    }
    if scopes.contains("email") {
        let email = attrs
            .emails
            .iter()
            .find(|e| e.primary)
            .or(attrs.emails.first());
        if let Some(email) = email {
            // Addresses come from provisioning and are not verified by this server.
            claims = claims
                .set_email(Some(EndUserEmail::new(email.value.clone())))
                .set_email_verified(Some(false));
        }
    }
    claims
}

fn id_token_claims(
    issuer: &str,
    client: &Client,
    grant: &Grant,
    user: &User,
    scopes: &ScopeSet,
    nonce: Option<&str>,
) -> Result<IdClaims, ServiceError> {
    let now = Utc::now();
    let auth_time = chrono::DateTime::from_timestamp(grant.auth_time, 0)
        .ok_or_else(|| ServiceError::bug("grant auth_time out of range"))?;
    let amr: Vec<AuthenticationMethodReference> = grant
        .amr
        .iter()
        .map(|m| AuthenticationMethodReference::new(m.clone()))
        .collect();
    Ok(IdClaims::new(
        IssuerUrl::new(issuer.to_owned()).map_err(|e| ServiceError::internal("issuer URL", e))?,
        vec![Audience::new(client.client_id.as_str().to_owned())],
        now + Duration::minutes(ID_TOKEN_MINUTES),
        now,
        standard_claims(user, scopes),
        SessionClaims {
            sid: grant.session_id.clone(),
        },
    )
    .set_nonce(nonce.map(|n| Nonce::new(n.to_owned())))
    .set_auth_time(Some(auth_time))
    .set_auth_context_ref(Some(AuthenticationContextClass::new(grant.acr.clone())))
    .set_auth_method_refs(Some(amr))
    .set_authorized_party(Some(openidconnect::ClientId::new(
        client.client_id.as_str().to_owned(),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_matches(
            "short",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
}
