//! Single sign-on sessions as rules: when a browser's session is alive, and what an
//! authorization request does with it (OpenID Connect Core §3.1.2.1: `prompt`, `max_age`,
//! `id_token_hint`, `login_hint`, `acr_values`). No I/O: the service gathers the facts.

use chrono::{DateTime, Duration, Utc};

use super::ids::UserId;
use super::methods::{AMR_BYPASS_CODE, AMR_MFA};
use super::signin::AuthRequest;

/// A sign-in session as the rest of the service sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInSession {
    /// Public: `sid` in ID tokens and logout tokens. Never the cookie.
    pub id: String,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub bypass_code_id: Option<String>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub single_sign_on_until: DateTime<Utc>,
    pub ip: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// How long sessions last, from the configuration and the bypass-code policy.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub idle: Duration,
    pub max: Duration,
    /// How long a session opened with a bypass code gives single sign-on.
    pub bypass_single_sign_on: Duration,
}

impl Lifetimes {
    /// The absolute end and the end of single sign-on of a session whose sign-in (`auth_time`)
    /// was `now`, with `amr`.
    pub fn ends(&self, now: DateTime<Utc>, amr: &[String]) -> (DateTime<Utc>, DateTime<Utc>) {
        let expires = now + self.max;
        let single_sign_on = if amr.iter().any(|m| m == AMR_BYPASS_CODE) {
            (now + self.bypass_single_sign_on).min(expires)
        } else {
            expires
        };
        (expires, single_sign_on)
    }
}

impl SignInSession {
    /// Not ended, within its absolute lifetime and used within the idle timeout.
    pub fn is_live(&self, now: DateTime<Utc>, idle: Duration) -> bool {
        self.ended_at.is_none() && now < self.expires_at && now < self.last_seen_at + idle
    }

    /// Whether it may still sign the user in to a client without a page.
    pub fn signs_in(&self, now: DateTime<Utc>, idle: Duration) -> bool {
        self.is_live(now, idle) && now < self.single_sign_on_until
    }

    pub fn has_second_factor(&self) -> bool {
        self.amr.iter().any(|m| m == AMR_MFA)
    }

    pub fn used_bypass_code(&self) -> bool {
        self.amr.iter().any(|m| m == AMR_BYPASS_CODE)
    }
}

/// Whether an authenticator counts as confirmed before the session's sign-in (`auth_time`,
/// the password check): one set up during or after that sign-in proves nothing about who
/// opened the session. `confirmed_at` is `None` for factors confirmed before it was kept,
/// which predate every session.
pub fn factor_predates(
    confirmed: bool,
    confirmed_at: Option<DateTime<Utc>>,
    auth_time: i64,
) -> bool {
    confirmed && confirmed_at.is_none_or(|t| t.timestamp() < auth_time)
}

/// What the service found out about the browser's session for one request.
#[derive(Clone, Debug)]
pub struct Standing<'a> {
    pub session: &'a SignInSession,
    /// The session user's `userName`, for `login_hint`.
    pub user_name: &'a str,
    /// The user has an authenticator confirmed before the session began: a password-only
    /// session may step up with it (a factor set up during or after the session proves
    /// nothing about who opened it).
    pub factor_before_session: bool,
}

/// What an authorization request does with the browser's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Sign the user in to the client with no page.
    Silent,
    /// Ask for the second step only, then continue with the session.
    SecondStep,
    /// A new sign-in, from the password.
    SignIn,
    /// `prompt=none` and the user would have to act: this OAuth error goes back to the client.
    Refuse(&'static str),
}

/// OpenID Connect Core §3.1.2.1 over a session. `hint_subject` is the `sub` of a verified
/// `id_token_hint`; `now` is Unix seconds.
pub fn reuse(
    request: &AuthRequest,
    standing: Option<&Standing<'_>>,
    hint_subject: Option<&str>,
    now: i64,
) -> Reuse {
    let ask = |error: &'static str, instead: Reuse| {
        if request.prompt_none {
            Reuse::Refuse(error)
        } else {
            instead
        }
    };
    if request.prompt_login {
        return Reuse::SignIn;
    }
    let Some(standing) = standing else {
        return ask("login_required", Reuse::SignIn);
    };
    let session = standing.session;
    if hint_subject.is_some_and(|sub| sub != session.user_id.as_str()) {
        return ask("login_required", Reuse::SignIn);
    }
    if let Some(hint) = &request.login_hint
        && !hint.trim().eq_ignore_ascii_case(standing.user_name)
    {
        return ask("login_required", Reuse::SignIn);
    }
    if request
        .max_age
        .is_some_and(|max| now - session.auth_time > max)
    {
        return ask("login_required", Reuse::SignIn);
    }
    // A session opened with a bypass code does not satisfy a client that refuses codes:
    // the second step again, with the authenticator.
    let refused = request.refuses_bypass_codes && session.used_bypass_code();
    if refused || request.mfa_requested && !session.has_second_factor() {
        let instead = if standing.factor_before_session {
            Reuse::SecondStep
        } else {
            Reuse::SignIn
        };
        return ask("interaction_required", instead);
    }
    Reuse::Silent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::methods::AMR_PASSWORD;

    fn session(amr: &[&str], auth_time: i64) -> SignInSession {
        let t = DateTime::from_timestamp(auth_time, 0).unwrap();
        SignInSession {
            id: "sid".into(),
            user_id: UserId::new("u1"),
            created_at: t,
            auth_time,
            amr: amr.iter().map(|m| (*m).to_owned()).collect(),
            acr: String::new(),
            bypass_code_id: None,
            last_seen_at: t,
            expires_at: t + Duration::hours(8),
            single_sign_on_until: t + Duration::hours(8),
            ip: None,
            ended_at: None,
        }
    }

    fn request() -> AuthRequest {
        AuthRequest {
            client_id: "rp".into(),
            redirect_uri: "https://rp.example/cb".into(),
            scope: "openid".into(),
            state: None,
            nonce: None,
            code_challenge: None,
            max_age: None,
            login_hint: None,
            mfa_requested: false,
            prompt_none: false,
            prompt_login: false,
            refuses_bypass_codes: false,
        }
    }

    #[test]
    fn a_code_session_does_not_satisfy_a_client_that_refuses_codes() {
        let s = session(&["pwd", "mfa", AMR_BYPASS_CODE], 1000);
        let standing = Standing {
            session: &s,
            user_name: "ada",
            factor_before_session: true,
        };
        let refusing = AuthRequest {
            refuses_bypass_codes: true,
            ..request()
        };
        assert_eq!(
            reuse(&request(), Some(&standing), None, 1100),
            Reuse::Silent
        );
        assert_eq!(
            reuse(&refusing, Some(&standing), None, 1100),
            Reuse::SecondStep
        );
        let none = AuthRequest {
            prompt_none: true,
            ..refusing.clone()
        };
        assert_eq!(
            reuse(&none, Some(&standing), None, 1100),
            Reuse::Refuse("interaction_required")
        );
        let fresh_factor = Standing {
            factor_before_session: false,
            ..standing.clone()
        };
        assert_eq!(
            reuse(&refusing, Some(&fresh_factor), None, 1100),
            Reuse::SignIn
        );
        let otp = session(&["pwd", "mfa", "otp"], 1000);
        let standing = Standing {
            session: &otp,
            ..standing
        };
        assert_eq!(reuse(&refusing, Some(&standing), None, 1100), Reuse::Silent);
    }

    #[test]
    fn the_session_is_reused_unless_the_request_says_otherwise() {
        let s = session(&[AMR_PASSWORD], 1000);
        let standing = Standing {
            session: &s,
            user_name: "ada",
            factor_before_session: true,
        };
        let at =
            |r: &AuthRequest, hint: Option<&str>, now: i64| reuse(r, Some(&standing), hint, now);
        assert_eq!(at(&request(), None, 1100), Reuse::Silent);
        let none = AuthRequest {
            prompt_none: true,
            ..request()
        };
        assert_eq!(at(&none, None, 1100), Reuse::Silent);
        assert_eq!(
            reuse(&none, None, None, 1100),
            Reuse::Refuse("login_required")
        );
        assert_eq!(reuse(&request(), None, None, 1100), Reuse::SignIn);
        let login = AuthRequest {
            prompt_login: true,
            ..request()
        };
        assert_eq!(at(&login, None, 1100), Reuse::SignIn);
        // max_age: the session's sign-in is 100 s old.
        let young = AuthRequest {
            max_age: Some(10_000),
            prompt_none: true,
            ..request()
        };
        assert_eq!(at(&young, None, 1100), Reuse::Silent);
        let old = AuthRequest {
            max_age: Some(1),
            ..request()
        };
        assert_eq!(at(&old, None, 1100), Reuse::SignIn);
        let old_none = AuthRequest {
            max_age: Some(1),
            prompt_none: true,
            ..request()
        };
        assert_eq!(at(&old_none, None, 1100), Reuse::Refuse("login_required"));
        // id_token_hint and login_hint name the session's user, or another.
        assert_eq!(at(&none, Some("u1"), 1100), Reuse::Silent);
        assert_eq!(at(&none, Some("u2"), 1100), Reuse::Refuse("login_required"));
        assert_eq!(at(&request(), Some("u2"), 1100), Reuse::SignIn);
        let ada = AuthRequest {
            login_hint: Some("ADA".into()),
            prompt_none: true,
            ..request()
        };
        assert_eq!(at(&ada, None, 1100), Reuse::Silent);
        let bob = AuthRequest {
            login_hint: Some("bob".into()),
            ..request()
        };
        assert_eq!(at(&bob, None, 1100), Reuse::SignIn);
    }

    #[test]
    fn a_password_session_steps_up_only_with_a_factor_older_than_itself() {
        let s = session(&[AMR_PASSWORD], 1000);
        let mfa = AuthRequest {
            mfa_requested: true,
            ..request()
        };
        let with = Standing {
            session: &s,
            user_name: "ada",
            factor_before_session: true,
        };
        let without = Standing {
            factor_before_session: false,
            ..with.clone()
        };
        assert_eq!(reuse(&mfa, Some(&with), None, 1001), Reuse::SecondStep);
        assert_eq!(reuse(&mfa, Some(&without), None, 1001), Reuse::SignIn);
        let none = AuthRequest {
            prompt_none: true,
            ..mfa.clone()
        };
        assert_eq!(
            reuse(&none, Some(&with), None, 1001),
            Reuse::Refuse("interaction_required")
        );
        let strong = session(&[AMR_PASSWORD, AMR_MFA, AMR_BYPASS_CODE], 1000);
        let standing = Standing {
            session: &strong,
            user_name: "ada",
            factor_before_session: true,
        };
        assert_eq!(reuse(&none, Some(&standing), None, 1001), Reuse::Silent);
    }

    #[test]
    fn only_a_factor_confirmed_before_the_password_check_counts() {
        let at = |s: i64| DateTime::from_timestamp(s, 0);
        assert!(factor_predates(true, at(99), 100));
        assert!(
            !factor_predates(true, at(100), 100),
            "the same second is not before"
        );
        assert!(
            !factor_predates(true, at(150), 100),
            "set up during the sign-in"
        );
        assert!(
            factor_predates(true, None, 100),
            "confirmed before times were kept"
        );
        assert!(!factor_predates(false, None, 100));
    }

    #[test]
    fn bypass_sessions_give_single_sign_on_for_less_time() {
        let lifetimes = Lifetimes {
            idle: Duration::minutes(30),
            max: Duration::hours(8),
            bypass_single_sign_on: Duration::minutes(60),
        };
        let now = DateTime::from_timestamp(0, 0).unwrap();
        let (expires, sso) = lifetimes.ends(now, &["pwd".into(), "mfa".into(), "otp".into()]);
        assert_eq!(
            (expires, sso),
            (now + Duration::hours(8), now + Duration::hours(8))
        );
        let (_, sso) = lifetimes.ends(now, &["pwd".into(), "mfa".into(), "bypass_code".into()]);
        assert_eq!(sso, now + Duration::minutes(60));
        let mut s = session(&["pwd"], 0);
        s.single_sign_on_until = sso;
        assert!(s.signs_in(now + Duration::minutes(20), lifetimes.idle));
        assert!(
            !s.signs_in(now + Duration::minutes(31), lifetimes.idle),
            "idle"
        );
        s.last_seen_at = now + Duration::minutes(59);
        assert!(
            !s.signs_in(now + Duration::minutes(61), lifetimes.idle),
            "bypass window"
        );
        assert!(s.is_live(now + Duration::minutes(61), lifetimes.idle));
        s.ended_at = Some(now);
        assert!(!s.is_live(now + Duration::minutes(1), lifetimes.idle));
    }
}
