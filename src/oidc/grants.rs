//! The user grants of the token endpoint: authorization_code (single use, PKCE, replay
//! revokes) and refresh_token (rotated, reuse revokes), with the ID tokens they carry.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use entity::grant;
use openidconnect::core::CoreIdTokenClaims;
use openidconnect::{
    Audience, AuthenticationContextClass, AuthenticationMethodReference, EmptyAdditionalClaims,
    EndUserEmail, EndUserFamilyName, EndUserGivenName, EndUserName, EndUserUsername, IssuerUrl,
    LocalizedClaim, Nonce, StandardClaims, SubjectIdentifier,
};
use poem::http::StatusCode;
use rand::RngExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::clients::AuthenticatedClient;
use super::http::{OAuthError, oauth_error, server_error, service_failure};
use super::tokens::Principal;
use crate::app::AppState;
use crate::domain::ids::UserId;
use crate::domain::scim::user::User;
use crate::domain::scope::ScopeSet;
use crate::domain::signin::acr_for;
use crate::service::ServiceError;

const ID_TOKEN_MINUTES: i64 = 10;

fn invalid_grant(description: &str) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn required<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    form.get(name).map(String::as_str).ok_or_else(|| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("{name} is required"),
        )
    })
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

fn refresh_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub(crate) async fn authorization_code(
    state: &AppState,
    client: &AuthenticatedClient,
    form: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let code = required(form, "code")?;
    let redirect_uri = required(form, "redirect_uri")?;
    let redeemed = state.signin.redeem(code).await.map_err(service_failure)?;
    let code_grant = redeemed.map_err(invalid_grant)?;
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
        (Some(challenge), Some(verifier)) if pkce_matches(verifier, challenge) => {}
        (Some(_), Some(_)) => {
            return Err(invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        (Some(_), None) => return Err(invalid_grant("code_verifier is required (PKCE)")),
        (None, Some(_)) => {
            return Err(invalid_grant(
                "code_verifier given but no code_challenge was sent",
            ));
        }
        (None, None) if client.public => return Err(invalid_grant("public clients must use PKCE")),
        (None, None) => {}
    }
    let now = Utc::now();
    let row = grant::Model {
        id: code_grant.grant_id.clone(),
        user_id: code_grant.user_id.clone(),
        client_id: code_grant.client_id.clone(),
        scope: code_grant.scope.clone(),
        auth_time: code_grant.auth_time,
        amr: code_grant.amr.join(" "),
        acr: acr_for(&code_grant.amr).to_owned(),
        created_at: now,
        bypass_code_id: code_grant.bypass_code.clone(),
        revoked_at: None,
    };
    state
        .store
        .insert_grant(row.clone())
        .await
        .map_err(service_failure)?;
    // Checked after the grant exists: a revocation that commits before this read is seen
    // here, and one that commits after it finds the grant and revokes it.
    if let Some(code_id) = &code_grant.bypass_code {
        let code = state
            .store
            .find_code(&UserId::new(code_grant.user_id.clone()), code_id)
            .await
            .map_err(service_failure)?;
        if code.is_none_or(|c| c.revoked_at.is_some()) {
            state
                .store
                .revoke_grant(&row.id, now)
                .await
                .map_err(service_failure)?;
            return Err(invalid_grant(
                "the bypass code this sign-in used was revoked",
            ));
        }
    }
    issue(state, client, &row, code_grant.nonce.as_deref()).await
}

pub(crate) async fn refresh_token(
    state: &AppState,
    client: &AuthenticatedClient,
    form: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let token = required(form, "refresh_token")?;
    let hash = refresh_digest(token);
    let stored = state
        .store
        .find_refresh_token(&hash)
        .await
        .map_err(service_failure)?;
    let stored = stored.ok_or_else(|| invalid_grant("the refresh token is invalid"))?;
    let grant = state
        .store
        .find_grant(&stored.grant_id)
        .await
        .map_err(service_failure)?
        .ok_or_else(|| invalid_grant("the refresh token is invalid"))?;
    if grant.client_id != client.client_id.as_str() {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if grant.revoked_at.is_some() {
        return Err(invalid_grant(
            "the sign-in behind this refresh token was revoked",
        ));
    }
    let now = Utc::now();
    if stored.expires_at <= now || session_end(state, &grant) <= now {
        return Err(invalid_grant(
            "the refresh token has expired; sign in again",
        ));
    }
    if !state
        .store
        .use_refresh_token(&hash, now)
        .await
        .map_err(service_failure)?
    {
        // A rotated token came back: someone holds a copy. Everything from this sign-in dies.
        state
            .store
            .revoke_grant(&grant.id, now)
            .await
            .map_err(service_failure)?;
        tracing::warn!(grant_id = %grant.id, "refresh token reused; grant revoked");
        return Err(invalid_grant(
            "the refresh token was already used; the sign-in is revoked",
        ));
    }
    if let Some(requested) = form.get("scope")
        && !ScopeSet::parse(requested).is_subset(&ScopeSet::parse(&grant.scope))
    {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "a refresh cannot widen the scope",
        ));
    }
    issue(state, client, &grant, None).await
}

/// When a sign-in's refresh tokens stop working, however often they were rotated.
fn session_end(state: &AppState, grant: &grant::Model) -> chrono::DateTime<Utc> {
    let signed_in =
        chrono::DateTime::from_timestamp(grant.auth_time, 0).unwrap_or(grant.created_at);
    signed_in + state.refresh_token_lifetime
}

/// The grant's user, if still active and if the sign-in was not voided by a credential
/// change or a 2-step verification reset since (also for codes redeemed after it).
async fn live_user(state: &AppState, grant: &grant::Model) -> Result<User, OAuthError> {
    let user_id = UserId::new(grant.user_id.clone());
    let user = state
        .store
        .get_user(&user_id)
        .await
        .map_err(service_failure)?;
    let user = user
        .filter(|u| u.attributes.active != Some(false))
        .ok_or_else(|| invalid_grant("the user no longer exists or is inactive"))?;
    let not_before = state
        .store
        .sessions_not_before(&user_id)
        .await
        .map_err(service_failure)?;
    if not_before.is_some_and(|t| grant.auth_time < t.timestamp()) {
        return Err(invalid_grant(
            "the user's credentials changed after this sign-in; sign in again",
        ));
    }
    Ok(user)
}

/// Access token, ID token and (when the client may refresh) a new refresh token.
async fn issue(
    state: &AppState,
    client: &AuthenticatedClient,
    grant: &grant::Model,
    nonce: Option<&str>,
) -> Result<Value, OAuthError> {
    let user = live_user(state, grant).await?;
    let scopes = ScopeSet::parse(&grant.scope);
    let access_token = state
        .tokens
        .issue(&grant.user_id, &client.client_id, &scopes, Some(&grant.id))
        .await
        .map_err(service_failure)?;
    let claims = id_token_claims(state, client, grant, &user, &scopes, nonce)
        .map_err(|e| server_error(&e))?;
    let id_token = state
        .keys
        .sign_id_token(claims, &access_token)
        .await
        .map_err(service_failure)?;
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.tokens.ttl_seconds(),
        "scope": grant.scope,
        "id_token": id_token,
    });
    if client.may_use("refresh_token") {
        let mut bytes = [0u8; 32];
        rand::rng().fill(&mut bytes);
        let refresh = URL_SAFE_NO_PAD.encode(bytes);
        // Rotation never extends a sign-in past its absolute lifetime.
        let expires = session_end(state, grant);
        state
            .store
            .insert_refresh_token(refresh_digest(&refresh), &grant.id, expires)
            .await
            .map_err(service_failure)?;
        body["refresh_token"] = json!(refresh);
    }
    tracing::info!(client_id = %client.client_id, user_id = %grant.user_id, amr = %grant.amr, "tokens issued");
    Ok(body)
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
    state: &AppState,
    client: &AuthenticatedClient,
    grant: &grant::Model,
    user: &User,
    scopes: &ScopeSet,
    nonce: Option<&str>,
) -> Result<CoreIdTokenClaims, String> {
    let now = Utc::now();
    let auth_time =
        chrono::DateTime::from_timestamp(grant.auth_time, 0).ok_or("auth_time out of range")?;
    let amr: Vec<AuthenticationMethodReference> = grant
        .amr
        .split_whitespace()
        .map(|m| AuthenticationMethodReference::new(m.to_owned()))
        .collect();
    Ok(CoreIdTokenClaims::new(
        IssuerUrl::new(state.issuer.clone()).map_err(|e| e.to_string())?,
        vec![Audience::new(client.client_id.as_str().to_owned())],
        now + Duration::minutes(ID_TOKEN_MINUTES),
        now,
        standard_claims(user, scopes),
        EmptyAdditionalClaims {},
    )
    .set_nonce(nonce.map(|n| Nonce::new(n.to_owned())))
    .set_auth_time(Some(auth_time))
    .set_auth_context_ref(Some(AuthenticationContextClass::new(grant.acr.clone())))
    .set_auth_method_refs(Some(amr))
    .set_authorized_party(Some(openidconnect::ClientId::new(
        client.client_id.as_str().to_owned(),
    ))))
}

/// The claims the token's scopes allow, or `None` if its sign-in was revoked or the user is
/// gone. Only user tokens (with a grant) have a user.
pub async fn user_claims_for(
    state: &AppState,
    principal: &Principal,
) -> Result<Option<Value>, ServiceError> {
    let Some(grant_id) = &principal.grant else {
        return Ok(None);
    };
    let grant = state.store.find_grant(grant_id).await?;
    let Some(grant) = grant.filter(|g| g.revoked_at.is_none()) else {
        return Ok(None);
    };
    let user = state
        .store
        .get_user(&UserId::new(grant.user_id.clone()))
        .await?;
    let Some(user) = user.filter(|u| u.attributes.active != Some(false)) else {
        return Ok(None);
    };
    let claims = standard_claims(&user, &principal.scopes);
    serde_json::to_value(&claims)
        .map(Some)
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

/// Whether a user token's sign-in still stands (client tokens have no grant and always do).
pub async fn grant_is_live(state: &AppState, principal: &Principal) -> Result<bool, ServiceError> {
    match &principal.grant {
        None => Ok(true),
        Some(id) => Ok(state
            .store
            .find_grant(id)
            .await?
            .is_some_and(|g| g.revoked_at.is_none())),
    }
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
