//! The OIDC sign-in, as data and rules: validating an authorization request, and the state
//! machine a browser walks through (password, then a second factor or enrolment) before an
//! authorization code may be issued. Illegal transitions return errors instead of states.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::enrolment::{CodeGate, Replacement};
use super::ids::UserId;
use super::oauth::Client;
use super::roles::{CONSOLE_CLIENT_ID, is_role_scope};
use super::scope::ScopeSet;

/// RFC 8176 method references.
pub const AMR_PASSWORD: &str = "pwd";
pub const AMR_MFA: &str = "mfa";
pub const AMR_OTP: &str = "otp";
pub const AMR_BYPASS_CODE: &str = "bypass_code";
/// Authentication context classes this server asserts and accepts in `acr_values`.
pub const ACR_PASSWORD: &str = "urn:bypass-idp:acr:pwd";
pub const ACR_MFA: &str = "urn:bypass-idp:acr:mfa";
pub const ACR_VALUES: &[&str] = &[ACR_PASSWORD, ACR_MFA];
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
        .find(|s| !(super::scope::USER.contains(s) || (console && is_role_scope(s))))
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
    })
}

/// Where a sign-in stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Waiting for username and password.
    Password,
    /// Password verified; waiting for a TOTP or bypass code.
    SecondFactor { user_id: UserId, auth_time: i64 },
    /// Password verified, no authenticator, and setting one up takes a bypass code first
    /// (`domain::enrolment`): waiting for the code.
    EnrolCode {
        user_id: UserId,
        auth_time: i64,
        gate: CodeGate,
    },
    /// Password verified, no second factor, but one is required: waiting for TOTP enrolment.
    /// `bypass_code`: the code that opened the way to it (then the code is this sign-in's
    /// second factor).
    Enroll {
        user_id: UserId,
        auth_time: i64,
        #[serde(default)]
        bypass_code: Option<String>,
    },
    /// Signed in with the bypass code `bypass_code`: a new authenticator may (or, when
    /// `required`, must) replace the lost one before the sign-in goes on. `setup`: the new
    /// key this flow was shown (its set-up id, `MfaService::begin_replacement`); only that
    /// key is shown again or confirmed here.
    Replace {
        user_id: UserId,
        auth_time: i64,
        amr: Vec<String>,
        bypass_code: String,
        required: bool,
        #[serde(default)]
        setup: Option<String>,
    },
    /// An authenticator was just set up, but the client needs 2-step verification: a factor
    /// set up during a sign-in proves nothing about that sign-in, so the person signs in
    /// again (password, then the new factor). Waits for the password like [`Step::Password`].
    SignInAgain,
    /// Done: an authorization code may be issued.
    Authenticated {
        user_id: UserId,
        auth_time: i64,
        amr: Vec<String>,
        /// The bypass code the second step used: revoking it ends this sign-in's grant.
        #[serde(default)]
        bypass_code: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecondFactor {
    Totp,
    BypassCode { code_id: String },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("this step does not fit the sign-in's state")]
pub struct IllegalStep;

/// A sign-in in progress, kept server-side behind an opaque cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub request: AuthRequest,
    /// Echoed by every form; compared in constant time.
    pub csrf: String,
    pub step: Step,
    /// The sign-in session the browser had when the request came (its public id): a sign-in
    /// that ends replaces it.
    #[serde(default)]
    pub browser_session: Option<String>,
    /// The flow asks only for the second step of `browser_session`, a password-only session.
    #[serde(default)]
    pub step_up: bool,
    /// When the whole sign-in ends, used or not (Unix seconds; 0 in a flow saved before
    /// deadlines were kept). Saving a step does not move it.
    #[serde(default)]
    pub deadline: i64,
}

impl Flow {
    pub fn new(request: AuthRequest, csrf: String, browser_session: Option<String>) -> Self {
        Self {
            request,
            csrf,
            step: Step::Password,
            browser_session,
            step_up: false,
            deadline: 0,
        }
    }

    /// A flow that asks a password-only session (`session_id`, signed in at `auth_time`)
    /// for its second step.
    pub fn second_step(
        request: AuthRequest,
        csrf: String,
        session_id: String,
        user_id: UserId,
        auth_time: i64,
    ) -> Self {
        Self {
            request,
            csrf,
            step: Step::SecondFactor { user_id, auth_time },
            browser_session: Some(session_id),
            step_up: true,
            deadline: 0,
        }
    }

    /// The password was right. `has_totp`: the user has a confirmed factor;
    /// `user_requires_mfa`: the user's own `mfaRequired`; `gate`: setting up an authenticator
    /// takes a bypass code. After a reset every sign-in asks for it, as it asked for the
    /// authenticator before; an administrator's first authenticator, when one is set up.
    pub fn password_verified(
        self,
        user_id: UserId,
        auth_time: i64,
        has_totp: bool,
        user_requires_mfa: bool,
        gate: Option<CodeGate>,
    ) -> Result<Self, IllegalStep> {
        if !self.wants_password() {
            return Err(IllegalStep);
        }
        let enrols = self.request.mfa_requested || user_requires_mfa;
        let step = if has_totp {
            Step::SecondFactor { user_id, auth_time }
        } else if let Some(gate) = gate.filter(|g| *g == CodeGate::AfterReset || enrols) {
            Step::EnrolCode {
                user_id,
                auth_time,
                gate,
            }
        } else if enrols {
            Step::Enroll {
                user_id,
                auth_time,
                bypass_code: None,
            }
        } else {
            Step::Authenticated {
                user_id,
                auth_time,
                amr: vec![AMR_PASSWORD.to_owned()],
                bypass_code: None,
            }
        };
        Ok(Self { step, ..self })
    }

    /// The second factor was right. After a bypass code, `replacement` (the policy) says
    /// whether setting up a new authenticator is offered or required first.
    pub fn second_factor_verified(
        self,
        factor: SecondFactor,
        replacement: Replacement,
    ) -> Result<Self, IllegalStep> {
        let Step::SecondFactor { user_id, auth_time } = self.step else {
            return Err(IllegalStep);
        };
        let (method, bypass_code) = match factor {
            SecondFactor::Totp => (AMR_OTP, None),
            SecondFactor::BypassCode { code_id } => (AMR_BYPASS_CODE, Some(code_id)),
        };
        let amr = code_amr(method);
        let step = match bypass_code {
            Some(code) if replacement != Replacement::Off => Step::Replace {
                user_id,
                auth_time,
                amr,
                bypass_code: code,
                required: replacement == Replacement::Required,
                setup: None,
            },
            bypass_code => Step::Authenticated {
                user_id,
                auth_time,
                amr,
                bypass_code,
            },
        };
        Ok(Self { step, ..self })
    }

    /// The bypass code in front of setting up an authenticator was right: the set-up follows,
    /// and the code is this sign-in's second factor.
    pub fn enrolment_code_verified(self, code_id: String) -> Result<Self, IllegalStep> {
        let Step::EnrolCode {
            user_id, auth_time, ..
        } = self.step
        else {
            return Err(IllegalStep);
        };
        Ok(Self {
            step: Step::Enroll {
                user_id,
                auth_time,
                bypass_code: Some(code_id),
            },
            ..self
        })
    }

    /// A new key for the replacing authenticator was shown (`setup` names it), or, with
    /// `None`, the one shown is no longer being set up.
    pub fn replacement_started(mut self, setup: Option<String>) -> Result<Self, IllegalStep> {
        let Step::Replace { setup: shown, .. } = &mut self.step else {
            return Err(IllegalStep);
        };
        *shown = setup;
        Ok(self)
    }

    /// "Not now": the sign-in goes on with the old authenticator, unless the policy
    /// requires replacing it.
    pub fn replacement_skipped(self) -> Result<Self, IllegalStep> {
        match self.step {
            Step::Replace { required: true, .. } => Err(IllegalStep),
            Step::Replace { .. } => self.replace_done(),
            _ => Err(IllegalStep),
        }
    }

    /// The new authenticator replaced the old one, and the user's other sessions ended:
    /// the sign-in goes on, and opens a session of its own.
    pub fn replaced(self) -> Result<Self, IllegalStep> {
        let mut done = self.replace_done()?;
        done.browser_session = None;
        done.step_up = false;
        Ok(done)
    }

    /// Setting up a new authenticator is no longer possible (the policy turned it off, the
    /// authenticator was reset, the bypass code was revoked): the sign-in goes on as it
    /// stands, even where it was required; whether it may still finish is `finish`'s to say.
    pub fn replacement_withdrawn(self) -> Result<Self, IllegalStep> {
        self.replace_done()
    }

    fn replace_done(self) -> Result<Self, IllegalStep> {
        let Step::Replace {
            user_id,
            auth_time,
            amr,
            bypass_code,
            ..
        } = self.step
        else {
            return Err(IllegalStep);
        };
        Ok(Self {
            step: Step::Authenticated {
                user_id,
                auth_time,
                amr,
                bypass_code: Some(bypass_code),
            },
            ..self
        })
    }

    /// The first authenticator was confirmed during this sign-in. It was not confirmed before
    /// the sign-in began, so it is no second factor of it: the sign-in stands on the password
    /// (`amr ["pwd"]`) where that is enough, and elsewhere starts again. A bypass code that
    /// opened the way to the set-up is the second factor (`amr ["pwd","mfa","bypass_code"]`).
    pub fn enrolled(self) -> Result<Self, IllegalStep> {
        let Step::Enroll {
            user_id,
            auth_time,
            bypass_code,
        } = self.step
        else {
            return Err(IllegalStep);
        };
        let step = if let Some(code) = bypass_code {
            Step::Authenticated {
                user_id,
                auth_time,
                amr: code_amr(AMR_BYPASS_CODE),
                bypass_code: Some(code),
            }
        } else if self.request.mfa_requested {
            Step::SignInAgain
        } else {
            Step::Authenticated {
                user_id,
                auth_time,
                amr: vec![AMR_PASSWORD.to_owned()],
                bypass_code: None,
            }
        };
        Ok(Self { step, ..self })
    }

    /// Whether the flow waits for a username and password.
    pub fn wants_password(&self) -> bool {
        matches!(self.step, Step::Password | Step::SignInAgain)
    }

    /// The user whose password was verified, once it was.
    pub fn user_id(&self) -> Option<&UserId> {
        match &self.step {
            Step::Password | Step::SignInAgain => None,
            Step::SecondFactor { user_id, .. }
            | Step::EnrolCode { user_id, .. }
            | Step::Enroll { user_id, .. }
            | Step::Replace { user_id, .. }
            | Step::Authenticated { user_id, .. } => Some(user_id),
        }
    }
}

/// The methods of a sign-in whose second step was `method`.
fn code_amr(method: &str) -> Vec<String> {
    vec![
        AMR_PASSWORD.to_owned(),
        AMR_MFA.to_owned(),
        method.to_owned(),
    ]
}

/// The acr a set of methods earns.
pub fn acr_for(amr: &[String]) -> &'static str {
    if amr.iter().any(|m| m == AMR_MFA) {
        ACR_MFA
    } else {
        ACR_PASSWORD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(public: bool) -> Client {
        Client {
            client_id: crate::domain::ids::ClientId::new("rp"),
            secret_digest: None,
            redirect_uris: vec!["https://rp.example/cb".into()],
            scopes: ScopeSet::parse("openid profile email"),
            grant_types: vec!["authorization_code".into()],
            public,
            require_mfa: false,
            allow_self_service_codes: false,
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
        }
    }

    fn params(extra: &[(&str, &str)]) -> HashMap<String, String> {
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

    fn flow(mfa_requested: bool) -> Flow {
        let mut request = parse_auth_request(&params(&[]), &client(false)).unwrap();
        request.mfa_requested = mfa_requested;
        Flow::new(request, "csrf".into(), None)
    }

    #[test]
    fn password_then_second_factor() {
        let f = flow(false)
            .password_verified(UserId::new("u"), 10, true, false, None)
            .unwrap();
        assert_eq!(f.user_id(), Some(&UserId::new("u")));
        let done = f
            .clone()
            .second_factor_verified(
                SecondFactor::BypassCode {
                    code_id: "c1".into(),
                },
                Replacement::Off,
            )
            .unwrap();
        assert_eq!(
            done.step,
            Step::Authenticated {
                user_id: UserId::new("u"),
                auth_time: 10,
                amr: vec!["pwd".into(), "mfa".into(), "bypass_code".into()],
                bypass_code: Some("c1".into()),
            }
        );
        let totp = f
            .second_factor_verified(SecondFactor::Totp, Replacement::Offered)
            .unwrap();
        let Step::Authenticated { amr, .. } = &totp.step else {
            panic!()
        };
        assert_eq!(acr_for(amr), ACR_MFA);
    }

    #[test]
    fn no_factor_means_password_only_unless_mfa_is_required() {
        let f = flow(false)
            .password_verified(UserId::new("u"), 1, false, false, None)
            .unwrap();
        let Step::Authenticated { amr, .. } = &f.step else {
            panic!("{f:?}")
        };
        assert_eq!(amr, &["pwd".to_owned()]);
        assert_eq!(acr_for(amr), ACR_PASSWORD);
        assert!(matches!(
            flow(true)
                .password_verified(UserId::new("u"), 1, false, false, None)
                .unwrap()
                .step,
            Step::Enroll { .. }
        ));
        assert!(matches!(
            flow(false)
                .password_verified(UserId::new("u"), 1, false, true, None)
                .unwrap()
                .step,
            Step::Enroll { .. }
        ));
        // A factor set up during the sign-in is no second factor of it.
        let enrolled = flow(false)
            .password_verified(UserId::new("u"), 1, false, true, None)
            .unwrap()
            .enrolled()
            .unwrap();
        let Step::Authenticated { amr, .. } = &enrolled.step else {
            panic!("{enrolled:?}")
        };
        assert_eq!(amr, &["pwd".to_owned()]);
        assert_eq!(acr_for(amr), ACR_PASSWORD);
        // Where 2-step verification is required, the person signs in again, and then the
        // new factor is the second step.
        let again = flow(true)
            .password_verified(UserId::new("u"), 1, false, false, None)
            .unwrap()
            .enrolled()
            .unwrap();
        assert_eq!(again.step, Step::SignInAgain);
        assert_eq!(again.user_id(), None);
        let second = again
            .password_verified(UserId::new("u"), 2, true, false, None)
            .unwrap()
            .second_factor_verified(SecondFactor::Totp, Replacement::Offered)
            .unwrap();
        let Step::Authenticated { amr, .. } = &second.step else {
            panic!("{second:?}")
        };
        assert_eq!(acr_for(amr), ACR_MFA);
    }

    #[test]
    fn after_a_reset_every_sign_in_asks_for_a_code_then_sets_up_an_authenticator() {
        let u = || UserId::new("u");
        // Even a client that asks for no 2-step verification: the account had it.
        let gated = flow(false)
            .password_verified(u(), 5, false, false, Some(CodeGate::AfterReset))
            .unwrap();
        assert!(matches!(gated.step, Step::EnrolCode { .. }), "{gated:?}");
        assert_eq!(gated.clone().enrolled(), Err(IllegalStep));
        let done = gated
            .enrolment_code_verified("c9".into())
            .unwrap()
            .enrolled()
            .unwrap();
        assert_eq!(
            done.step,
            Step::Authenticated {
                user_id: u(),
                auth_time: 5,
                amr: vec!["pwd".into(), "mfa".into(), "bypass_code".into()],
                bypass_code: Some("c9".into()),
            }
        );
        // An administrator's first authenticator: gated where one is set up, and a
        // password-only sign-in elsewhere is unchanged.
        let admin = Some(CodeGate::Administrator);
        assert!(matches!(
            flow(true)
                .password_verified(u(), 1, false, false, admin)
                .unwrap()
                .step,
            Step::EnrolCode { .. }
        ));
        assert!(matches!(
            flow(false)
                .password_verified(u(), 1, false, false, admin)
                .unwrap()
                .step,
            Step::Authenticated { .. }
        ));
        // A user with an authenticator is asked for it, gate or not.
        assert!(matches!(
            flow(false)
                .password_verified(u(), 1, true, false, admin)
                .unwrap()
                .step,
            Step::SecondFactor { .. }
        ));
    }

    #[test]
    fn a_bypass_code_sign_in_offers_or_requires_a_new_authenticator() {
        let code = || SecondFactor::BypassCode {
            code_id: "c1".into(),
        };
        let second = || {
            let mut f = flow(false)
                .password_verified(UserId::new("u"), 1, true, false, None)
                .unwrap();
            f.browser_session = Some("old".into());
            f.step_up = true;
            f
        };
        let offered = second()
            .second_factor_verified(code(), Replacement::Offered)
            .unwrap();
        assert!(matches!(
            offered.step,
            Step::Replace {
                required: false,
                ..
            }
        ));
        let skipped = offered.clone().replacement_skipped().unwrap();
        assert!(matches!(skipped.step, Step::Authenticated { .. }));
        assert!(
            skipped.step_up,
            "Not now keeps the session being stepped up"
        );
        let replaced = offered
            .replacement_started(Some("s1".into()))
            .unwrap()
            .replaced()
            .unwrap();
        let Step::Authenticated {
            amr, bypass_code, ..
        } = &replaced.step
        else {
            panic!("{replaced:?}")
        };
        assert_eq!(amr, &["pwd", "mfa", "bypass_code"]);
        assert_eq!(bypass_code.as_deref(), Some("c1"));
        // The replacement ended the user's sessions: this sign-in opens its own.
        assert_eq!((replaced.browser_session, replaced.step_up), (None, false));
        let required = second()
            .second_factor_verified(code(), Replacement::Required)
            .unwrap();
        assert_eq!(required.replacement_skipped(), Err(IllegalStep));
        let off = second()
            .second_factor_verified(code(), Replacement::Off)
            .unwrap();
        assert!(matches!(off.step, Step::Authenticated { .. }));
        // The authenticator itself is no reason to replace it.
        let totp = second()
            .second_factor_verified(SecondFactor::Totp, Replacement::Required)
            .unwrap();
        assert!(matches!(totp.step, Step::Authenticated { .. }));
    }

    #[test]
    fn illegal_transitions_are_refused() {
        assert_eq!(
            flow(false).second_factor_verified(SecondFactor::Totp, Replacement::Offered),
            Err(IllegalStep)
        );
        assert_eq!(flow(false).enrolled(), Err(IllegalStep));
        let second = flow(false)
            .password_verified(UserId::new("u"), 1, true, false, None)
            .unwrap();
        assert_eq!(
            second
                .clone()
                .password_verified(UserId::new("v"), 1, true, false, None),
            Err(IllegalStep)
        );
        assert_eq!(second.enrolled(), Err(IllegalStep));
    }
}
