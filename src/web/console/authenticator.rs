//! "Replace authenticator app" on My security: the set-up of a new authenticator for a person
//! whose sign-in is recent and used the authenticator or a bypass code (the service decides,
//! `MfaService::replacement_refused`); otherwise a new sign-in first.
use super::*;
use crate::domain::enrolment::REPLACE_WITHIN_SECONDS;
use crate::service::mfa::{Enrollment, ReplaceEvidence, ReplaceOutcome};

const PATH: &str = "/account/authenticator";

/// The sign-in session of this browser, which stays signed in when the others end.
async fn browser_session(state: &AppState, jar: &CookieJar) -> Option<String> {
    let token = crate::oidc::signin::session_token(state, jar)?;
    state
        .sessions
        .find(&token)
        .await
        .ok()
        .flatten()
        .map(|s| s.id)
}

fn evidence<'a>(session: &'a ConsoleSession, browser: Option<&'a str>) -> ReplaceEvidence<'a> {
    ReplaceEvidence::Session {
        amr: &session.amr,
        auth_time: session.started,
        session_id: browser,
    }
}

/// The set-up being shown: its key, and the id the form sends back to confirm that key.
struct Shown<'a> {
    enrollment: &'a Enrollment,
    setup: &'a str,
}

fn replace_page(
    session: &ConsoleSession,
    refused: Option<String>,
    shown: Option<Shown<'_>>,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let enrollment = shown.as_ref().map(|s| s.enrollment);
    // A refusal for an old or weak sign-in is mended by signing in again; no authenticator
    // to replace is not.
    let may_sign_in_again = refused
        .as_deref()
        .is_some_and(|why| why.contains("Sign in again"));
    let otpauth = enrollment.map(|e| e.otpauth_uri.expose().to_owned());
    let body = render(
        "replace.html",
        merged(
            frame(session, "Replace authenticator app"),
            context! {
                refused, may_sign_in_again, message,
                secret => enrollment.map(|e| e.secret_base32.expose().to_owned()),
                qr => otpauth.as_deref().and_then(crate::web::qr_code),
                otpauth_uri => otpauth,
                within_minutes => REPLACE_WITHIN_SECONDS / 60,
                setup => shown.as_ref().map(|s| s.setup.to_owned()),
            },
        ),
    );
    page(status, body)
}

#[handler]
pub async fn replace_form(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
) -> Response {
    let session = or_respond!(signed_in(state, jar, PATH).await);
    let browser = browser_session(state, jar).await;
    let refused = state
        .mfa
        .replacement_refused(
            &session.user_id,
            evidence(&session, browser.as_deref()),
            &ctx(&session, addr),
        )
        .await;
    match refused {
        Ok(refused) => replace_page(&session, refused, None, None, StatusCode::OK),
        Err(e) => failure(e),
    }
}

#[handler]
pub async fn replace_post(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, PATH).await);
    if !csrf_ok(&session, &form) {
        return forged();
    }
    let browser = browser_session(state, jar).await;
    let evidence = evidence(&session, browser.as_deref());
    let ctx = ctx(&session, addr);
    let refusal = |e: ServiceError| match e {
        ServiceError::Forbidden(why) | ServiceError::Conflict(why) => {
            replace_page(&session, Some(why), None, None, StatusCode::FORBIDDEN)
        }
        other => failure(other),
    };
    match form.get("step").map(String::as_str) {
        Some("start") => match state
            .mfa
            .begin_replacement(&session.user_id, evidence, &ctx)
            .await
        {
            Ok(started) => {
                let shown = Shown {
                    enrollment: &started.enrollment,
                    setup: &started.setup,
                };
                replace_page(&session, None, Some(shown), None, StatusCode::OK)
            }
            Err(e) => refusal(e),
        },
        Some("confirm") => {
            let code = form.get("code").map(String::as_str).unwrap_or_default();
            let setup = form.get("setup").map(String::as_str).unwrap_or_default();
            if code.len() > 64 || setup.len() > 128 {
                return message(
                    StatusCode::BAD_REQUEST,
                    "Not accepted",
                    "The form is too long.",
                );
            }
            let outcome = match state
                .mfa
                .confirm_replacement(&session.user_id, code, setup, evidence, &ctx)
                .await
            {
                Ok(outcome) => outcome,
                Err(e) => return refusal(e),
            };
            let why = match outcome {
                ReplaceOutcome::Replaced => return see_other("/account?notice=replaced"),
                ReplaceOutcome::Wrong => "That code is not right. Enter the 6-digit code the new app shows now for this key (check the phone's clock).".to_owned(),
                ReplaceOutcome::Locked(_) => "Too many wrong codes. Wait a few minutes and try again.".to_owned(),
                ReplaceOutcome::Superseded => "This set-up was finished, or started again, in another window, or it waited too long. Start again.".to_owned(),
            };
            let pending = match state.mfa.pending_replacement(&session.user_id, setup).await {
                Ok(pending) => pending,
                Err(e) => return failure(e),
            };
            let shown = pending
                .as_ref()
                .map(|enrollment| Shown { enrollment, setup });
            replace_page(&session, None, shown, Some(why), StatusCode::BAD_REQUEST)
        }
        _ => message(
            StatusCode::BAD_REQUEST,
            "Not accepted",
            "The form must say which step it is.",
        ),
    }
}

/// "Sign in again": a new sign-in (password and second step), back to the set-up.
#[handler]
pub async fn replace_sign_in(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, PATH).await);
    if !csrf_ok(&session, &form) {
        return forged();
    }
    start_login(state, jar, PATH, true)
}
