//! Validating an authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1,
//! RFC 7636): the client and redirect URI first (failures never redirect), then the rest.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::methods::ACR_MFA;
use crate::domain::oauth::Client;
use crate::domain::roles::{CONSOLE_CLIENT_ID, is_role_scope};
use crate::domain::scope::{self, ScopeSet};

/// Every authorization parameter is capped before it reaches a flow, a redirect or a log
/// line: those echoed into tokens tighter, an `id_token_hint` (a whole ID token) looser.
pub const MAX_PARAM_LEN: usize = 2048;
const PARAM_CAPS: &[(&str, usize)] = &[
    ("nonce", 512),
    ("login_hint", 256),
    ("scope", 512),
    // An ID token of ours comes back whole: claims, a nonce and an RS256 signature.
    ("id_token_hint", 8192),
];

/// A validated authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1, RFC 7636).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The client, `acr_values` or nothing asks for 2-step verification.
    pub mfa_requested: bool,
    /// `prompt=none`: no page may be shown; an error goes back to the client instead.
    #[serde(default)]
    pub prompt_none: bool,
    /// `prompt=login`: a new sign-in, whatever session the browser has.
    #[serde(default)]
    pub prompt_login: bool,
    /// The client neither offers nor accepts bypass codes, and a session opened with one
    /// does not satisfy it.
    #[serde(default)]
    pub refuses_bypass_codes: bool,
}

/// An error to send back to the client's redirect URI (RFC 6749 §4.1.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectError {
    pub error: &'static str,
    pub description: String,
}

fn redirect_error(error: &'static str, description: impl Into<String>) -> RedirectError {
    RedirectError {
        error,
        description: description.into(),
    }
}

/// Checks the client and redirect URI only: failures here must never redirect.
pub fn check_client_redirect<'a>(
    params: &'a HashMap<String, String>,
    client: Option<&Client>,
) -> Result<&'a str, String> {
    let client = client.ok_or_else(|| "unknown client_id".to_owned())?;
    let redirect = params
        .get("redirect_uri")
        .ok_or_else(|| "redirect_uri is required".to_owned())?;
    if !client.redirect_uris.iter().any(|r| r == redirect) {
        return Err(
            "redirect_uri is not registered for this client (it must match exactly)".to_owned(),
        );
    }
    Ok(redirect)
}

/// Validates the rest of the request, once client and redirect URI are known to be good.
pub fn parse_auth_request(
    params: &HashMap<String, String>,
    client: &Client,
) -> Result<AuthRequest, RedirectError> {
    let cap = |name: &str| {
        PARAM_CAPS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(MAX_PARAM_LEN, |(_, cap)| *cap)
    };
    if let Some((name, _)) = params.iter().find(|(k, v)| v.len() > cap(k)) {
        // The name is one the client sent: say which, but never echo a long one.
        let name: String = name.chars().take(64).collect();
        return Err(redirect_error(
            "invalid_request",
            format!("{name} is too long"),
        ));
    }
    if params.contains_key("request") || params.contains_key("request_uri") {
        return Err(redirect_error(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    match params.get("response_type").map(String::as_str) {
        Some("code") => {}
        None => {
            return Err(redirect_error(
                "invalid_request",
                "response_type is required",
            ));
        }
        Some(_) => {
            return Err(redirect_error(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err(redirect_error(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    if !client.grant_types.iter().any(|g| g == "authorization_code") {
        return Err(redirect_error(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }
    let scope = ScopeSet::parse(params.get("scope").map(String::as_str).unwrap_or_default());
    if !scope.contains("openid") {
        return Err(redirect_error("invalid_scope", "scope must include openid"));
    }
    // Administrative scopes: for clients acting for themselves, and at the console for the
    // roles a user holds (checked when the sign-in ends).
    let console = client.client_id.as_str() == CONSOLE_CLIENT_ID;
    if let Some(admin) = scope
        .iter()
        .find(|s| !(scope::USER.contains(s) || (console && is_role_scope(s))))
    {
        return Err(redirect_error(
            "invalid_scope",
            format!("{admin} is for clients acting for themselves, not for a user's sign-in"),
        ));
    }
    if let Some(refused) = scope.iter().find(|s| !client.may_grant_user_scope(s)) {
        return Err(redirect_error(
            "invalid_scope",
            format!(
                "this client is not allowed {refused} (it was not registered with --allow-self-service-codes)"
            ),
        ));
    }
    if !scope.is_subset(&client.scopes) {
        return Err(redirect_error(
            "invalid_scope",
            format!("this client may request only: {}", client.scopes),
        ));
    }
    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method").map(String::as_str),
    ) {
        (None, None) if client.public => {
            return Err(redirect_error(
                "invalid_request",
                "public clients must use PKCE (code_challenge with S256)",
            ));
        }
        (None, None) => None,
        (None, Some(_)) => {
            return Err(redirect_error(
                "invalid_request",
                "code_challenge_method without code_challenge",
            ));
        }
        (Some(_), None | Some("plain")) => {
            return Err(redirect_error(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        (Some(challenge), Some("S256")) => {
            // 43 characters of base64url: the SHA-256 of a verifier.
            let valid = challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(redirect_error(
                    "invalid_request",
                    "code_challenge must be a base64url SHA-256 (43 characters)",
                ));
            }
            Some(challenge.clone())
        }
        (Some(_), Some(other)) => {
            return Err(redirect_error(
                "invalid_request",
                format!("code_challenge_method {other} is not supported; use S256"),
            ));
        }
    };
    let max_age = match params.get("max_age") {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| {
                    redirect_error(
                        "invalid_request",
                        "max_age must be a whole number of seconds",
                    )
                })?,
        ),
    };
    let (mut prompt_none, mut prompt_login) = (false, false);
    if let Some(prompt) = params.get("prompt") {
        for value in prompt.split_whitespace() {
            match value {
                "login" => prompt_login = true,
                "none" => prompt_none = true,
                "consent" | "select_account" => {}
                other => {
                    return Err(redirect_error(
                        "invalid_request",
                        format!("unknown prompt value {other}"),
                    ));
                }
            }
        }
        // OpenID Connect Core §3.1.2.1: none with any other value is an error.
        if prompt_none && prompt.split_whitespace().count() > 1 {
            return Err(redirect_error(
                "invalid_request",
                "prompt=none cannot be combined with other values",
            ));
        }
    }
    let acr_mfa = params
        .get("acr_values")
        .is_some_and(|values| values.split_whitespace().any(|v| v == ACR_MFA));
    Ok(AuthRequest {
        client_id: client.client_id.as_str().to_owned(),
        redirect_uri: params.get("redirect_uri").cloned().unwrap_or_default(),
        scope: scope.to_string(),
        state: params.get("state").cloned(),
        nonce: params.get("nonce").cloned(),
        code_challenge,
        max_age,
        login_hint: params.get("login_hint").cloned(),
        mfa_requested: client.require_mfa || acr_mfa,
        prompt_none,
        prompt_login,
        refuses_bypass_codes: client.refuses_bypass_codes,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::domain::signin) fn client(public: bool) -> Client {
        Client {
            client_id: crate::domain::ids::ClientId::new("rp"),
            secret_digest: None,
            redirect_uris: vec!["https://rp.example/cb".into()],
            scopes: ScopeSet::parse("openid profile email"),
            grant_types: vec!["authorization_code".into()],
            public,
            require_mfa: false,
            allow_self_service_codes: false,
            refuses_bypass_codes: false,
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
        }
    }

    pub(in crate::domain::signin) fn params(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut p: HashMap<String, String> = [
            ("client_id", "rp"),
            ("redirect_uri", "https://rp.example/cb"),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("state", "s"),
            ("nonce", "n"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            if v.is_empty() {
                p.remove(*k);
            } else {
                p.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        p
    }

    #[test]
    fn redirect_uri_must_match_exactly_before_anything_redirects() {
        let c = client(false);
        assert!(check_client_redirect(&params(&[]), Some(&c)).is_ok());
        assert!(
            check_client_redirect(
                &params(&[("redirect_uri", "https://rp.example/cb/")]),
                Some(&c)
            )
            .is_err()
        );
        assert!(
            check_client_redirect(
                &params(&[("redirect_uri", "https://rp.example/cb?x=1")]),
                Some(&c)
            )
            .is_err()
        );
        assert!(check_client_redirect(&params(&[]), None).is_err());
    }

    #[test]
    fn requests_are_validated() {
        let c = client(true);
        let ok = parse_auth_request(&params(&[("acr_values", ACR_MFA)]), &c).unwrap();
        assert!(ok.mfa_requested && ok.code_challenge.is_some());
        for (extra, error) in [
            (
                vec![("response_type", "token")],
                "unsupported_response_type",
            ),
            (vec![("scope", "email")], "invalid_scope"),
            (vec![("scope", "openid scim:users")], "invalid_scope"),
            (
                vec![("scope", "openid bypass_codes:manage")],
                "invalid_scope",
            ),
            (
                vec![("code_challenge", ""), ("code_challenge_method", "")],
                "invalid_request",
            ),
            (vec![("code_challenge_method", "plain")], "invalid_request"),
            (vec![("code_challenge", "short")], "invalid_request"),
            (vec![("max_age", "-1")], "invalid_request"),
            (vec![("prompt", "none login")], "invalid_request"),
            (vec![("prompt", "sideways")], "invalid_request"),
            (vec![("request", "x")], "request_not_supported"),
        ] {
            assert_eq!(
                parse_auth_request(&params(&extra), &c).unwrap_err().error,
                error,
                "{extra:?}"
            );
        }
        let confidential = parse_auth_request(
            &params(&[("code_challenge", ""), ("code_challenge_method", "")]),
            &client(false),
        );
        assert!(
            confidential.unwrap().code_challenge.is_none(),
            "PKCE is optional for confidential clients"
        );
    }
}
