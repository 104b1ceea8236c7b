//! Server-rendered sign-in pages (templates in `src/web/templates`): plain HTML forms that
//! work without JavaScript, and every word a person reads during a sign-in.

use minijinja::context;

use super::error::PageError;
use crate::domain::bypass::Rejection;
use crate::domain::enrolment::CodeGate;
use crate::domain::limits::Lock;
use crate::domain::roles::CONSOLE_CLIENT_ID;
use crate::domain::signin::{Flow, Step};
use crate::service::mfa::Enrollment;
use crate::service::signin::Denied;
use crate::web::{SERVICE_NAME, render};

/// The page for the flow's current step. `bypass`: show the bypass-code form instead of TOTP.
pub fn step_page(
    flow: &Flow,
    message: Option<&str>,
    bypass: bool,
    enrollment: Option<&Enrollment>,
) -> String {
    let (title, step) = match &flow.step {
        Step::Password => ("Sign in", "password"),
        Step::SignInAgain => ("Sign in again", "again"),
        Step::SecondFactor { .. } if bypass && !flow.request.refuses_bypass_codes => {
            ("2-Step Verification", "bypass")
        }
        Step::SecondFactor { .. } => ("2-Step Verification", "totp"),
        Step::EnrolCode { .. } => ("2-Step Verification", "enrol_code"),
        Step::Enroll { .. } => ("Set up 2-Step Verification", "enroll"),
        Step::Replace { .. } if enrollment.is_some() => {
            ("Set up a new authenticator app", "replace_setup")
        }
        Step::Replace { .. } => ("Set up a new authenticator app?", "replace_offer"),
        Step::SavedCodesLow { .. } => ("Your saved codes are running out", "saved_low"),
        Step::Authenticated { .. } => ("Signed in", "done"),
    };
    let gate = match &flow.step {
        Step::EnrolCode { gate, .. } => Some(match gate {
            CodeGate::AfterReset => "reset",
            CodeGate::Administrator => "administrator",
        }),
        _ => None,
    };
    let required = matches!(&flow.step, Step::Replace { required: true, .. });
    let otpauth = enrollment.map(|e| e.otpauth_uri.expose().to_owned());
    render(
        "signin.html",
        context! {
            title,
            service => SERVICE_NAME,
            message,
            step,
            csrf => flow.csrf,
            application => application_name(&flow.request.client_id),
            login_hint => flow.request.login_hint,
            step_up => flow.step_up,
            secret => enrollment.map(|e| e.secret_base32.expose().to_owned()),
            qr => otpauth.as_deref().and_then(crate::web::qr_code),
            otpauth_uri => otpauth,
            gate,
            required,
            codes_refused => flow.request.refuses_bypass_codes,
            saved_left => flow.saved_codes_left,
        },
    )
}

/// How the sign-in names the application the person is signing in to.
fn application_name(client_id: &str) -> String {
    if client_id == CONSOLE_CLIENT_ID {
        "the bypass-idp console".to_owned()
    } else {
        client_id.to_owned()
    }
}

/// An error the browser sees without being sent anywhere.
pub fn error_page(title: &str, detail: &str) -> String {
    render(
        "message.html",
        context! { title, service => SERVICE_NAME, detail },
    )
}

/// The title and explanation of each sign-in error page.
pub fn error_text(error: &PageError) -> (&'static str, String) {
    const START_AGAIN: &str = "Go back to the application and start again.";
    match error {
        PageError::Rejected(detail) => ("Sign-in request rejected", detail.clone()),
        PageError::FieldTooLong { name, cap } => (
            "Sign-in request rejected",
            format!("The {name} field is longer than {cap} characters."),
        ),
        PageError::Expired => (
            "Sign-in expired",
            format!("This sign-in took too long or was already finished. {START_AGAIN}"),
        ),
        PageError::Forged => (
            "Form not accepted",
            format!("The form did not come from this sign-in. {START_AGAIN}"),
        ),
        PageError::FormTooLarge => (
            "Form not accepted",
            format!("The form was larger than a sign-in form can be. {START_AGAIN}"),
        ),
        PageError::TooManySignIns(_) => (
            "Too many sign-ins",
            "Too many sign-ins were started from your network. Wait a few minutes and try again."
                .into(),
        ),
        PageError::Unavailable => (
            "Temporarily unavailable",
            "This service cannot sign you in right now. Wait a minute and reload this page: your sign-in is kept if it can be.".into(),
        ),
        PageError::Busy(wait) => (
            "Busy",
            format!(
                "Many people are signing in right now, so what you typed was not checked \
                 and does not count as a try. Go back and send it again in {} second{}.",
                wait.as_secs().max(1),
                if wait.as_secs() > 1 { "s" } else { "" }
            ),
        ),
        PageError::Internal => ("Something went wrong", "Please try again later.".into()),
    }
}

pub fn signed_out_page() -> String {
    error_page(
        "Signed out",
        "You are signed out of this identity provider.",
    )
}

/// What a person reads when a step's credential was refused.
pub fn denied_text(denied: Denied) -> String {
    const NEW_KEY: &str = "A new key is shown below: add it to your app again.";
    const ASK_HELP_DESK: &str = "Ask your help desk for a new one.";
    match denied {
        Denied::WrongPassword => "Wrong username or password.".into(),
        Denied::Locked(lock) => lock_text(lock),
        Denied::WrongTotp => {
            "That code is not right. Enter the 6-digit code your authenticator app shows now."
                .into()
        }
        Denied::ReplayedTotp => {
            "That code was already used. Wait for the next code and enter it.".into()
        }
        Denied::BypassCode(Rejection::Wrong) => {
            "That bypass code is not right. Check it and try again; dashes and spaces do not matter.".into()
        }
        Denied::BypassCode(Rejection::Expired) => {
            format!("That bypass code has expired. {ASK_HELP_DESK}")
        }
        Denied::BypassCode(Rejection::Revoked) => {
            format!("That bypass code was revoked. {ASK_HELP_DESK}")
        }
        Denied::BypassCode(Rejection::Exhausted) => {
            format!("That bypass code has been used up. {ASK_HELP_DESK}")
        }
        Denied::BypassCode(Rejection::Locked(lock)) => lock_text(lock),
        Denied::BypassCode(Rejection::NotYet(at)) => format!(
            "That bypass code works from {} UTC, not yet. Use it then, or ask your help desk.",
            at.format("%Y-%m-%d %H:%M")
        ),
        Denied::BypassCode(Rejection::RefusedHere) => {
            "This application does not accept bypass codes. Use your authenticator app.".into()
        }
        Denied::BypassCode(Rejection::EnrolmentOnly) => {
            "That code is only for setting up a new authenticator app after your 2-step verification was reset. Use your authenticator app, or ask your help desk for a sign-in code.".into()
        }
        Denied::WrongReplacementCode => {
            "That code is not right. Enter the 6-digit code the new app shows now for this key (check the phone's clock); the key below is the same.".into()
        }
        Denied::ReplacementSuperseded => {
            "This set-up was finished, or started again, in another window, or it waited too long. Start it again, or continue.".into()
        }
        Denied::ReplacementRequired => {
            "Your organisation requires a new authenticator app after a sign-in with a bypass code. Set it up to continue.".into()
        }
        Denied::WrongEnrollmentCode => format!(
            "The code does not match; enter the current code from the authenticator app (check its clock). {NEW_KEY}"
        ),
        Denied::EnrollmentLocked(lock) => format!("{} {NEW_KEY}", lock_text(lock)),
    }
}

fn lock_text(lock: Lock) -> String {
    match lock {
        Lock::Window(left) => {
            let minutes = left.as_secs().div_ceil(60).max(1);
            format!(
                "Too many attempts. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )
        }
        Lock::Permanent => {
            "Too many failed attempts. Ask your help desk to reset your 2-step verification."
                .to_owned()
        }
    }
}
