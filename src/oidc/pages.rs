//! Server-rendered sign-in pages: plain HTML forms that work without JavaScript.

use super::error::PageError;
use crate::domain::bypass::Rejection;
use crate::domain::limits::Lock;
use crate::domain::signin::{Flow, Step};
use crate::service::mfa::Enrollment;
use crate::service::signin::Denied;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f}}\
         label{{display:block;margin:.8rem 0 .2rem}}input[type=text],input[type=password]{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}\
         button{{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}}.message{{background:#fdecea;padding:.6rem;border-radius:4px}}\
         code{{word-break:break-all}}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    )
}

fn message_html(message: Option<&str>) -> String {
    message.map_or(String::new(), |m| {
        format!("<p class=\"message\" role=\"alert\">{}</p>", escape(m))
    })
}

/// The page for the flow's current step. `bypass`: show the bypass-code form instead of TOTP.
pub fn step_page(
    flow: &Flow,
    message: Option<&str>,
    bypass: bool,
    enrollment: Option<&Enrollment>,
) -> String {
    let csrf = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(&flow.csrf)
    );
    let message = message_html(message);
    match &flow.step {
        Step::Password => {
            let hint = flow
                .request
                .login_hint
                .as_deref()
                .map(escape)
                .unwrap_or_default();
            layout(
                "Sign in",
                &format!(
                    "{message}<form method=\"post\" action=\"/oauth2/signin/password\">{csrf}\
                     <label for=\"username\">Username</label>\
                     <input type=\"text\" id=\"username\" name=\"username\" value=\"{hint}\" autocomplete=\"username\" required autofocus>\
                     <label for=\"password\">Password</label>\
                     <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
                     <button type=\"submit\">Next</button></form>"
                ),
            )
        }
        Step::SecondFactor { .. } if bypass => layout(
            "2-Step Verification",
            &format!(
                "{message}<p>Enter a bypass code from your help desk or one you saved. \
                 Dashes and spaces are optional.</p>\
                 <form method=\"post\" action=\"/oauth2/signin/bypass\">{csrf}\
                 <label for=\"code\">Bypass code</label>\
                 <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required autofocus>\
                 <button type=\"submit\">Verify</button></form>\
                 <p><a href=\"/oauth2/signin\">Use your authenticator app instead</a></p>"
            ),
        ),
        Step::SecondFactor { .. } => layout(
            "2-Step Verification",
            &format!(
                "{message}<p>Enter the 6-digit code from your authenticator app.</p>\
                 <form method=\"post\" action=\"/oauth2/signin/totp\">{csrf}\
                 <label for=\"code\">Code</label>\
                 <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"8\" required autofocus>\
                 <button type=\"submit\">Verify</button></form>\
                 <p><a href=\"/oauth2/signin?method=bypass\">Use a bypass code</a> if you do not have your phone.</p>"
            ),
        ),
        Step::Enroll { .. } => {
            let key = enrollment.map_or(String::new(), |e| {
                format!(
                    "<p>Add this key to your authenticator app (or open the link on your phone):</p>\
                     <p><code>{}</code></p><p><a href=\"{uri}\">{uri}</a></p>",
                    escape(e.secret_base32.expose()),
                    uri = escape(e.otpauth_uri.expose()),
                )
            });
            layout(
                "Set up 2-Step Verification",
                &format!(
                    "{message}<p>This sign-in needs a second step.</p>{key}\
                     <form method=\"post\" action=\"/oauth2/signin/enroll\">{csrf}\
                     <label for=\"code\">Code from the app</label>\
                     <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required autofocus>\
                     <button type=\"submit\">Confirm</button></form>"
                ),
            )
        }
        Step::Authenticated { .. } => layout(
            "Signed in",
            "<p>You are signed in. You can close this page.</p>",
        ),
    }
}

/// An error the browser sees without being sent anywhere.
pub fn error_page(title: &str, detail: &str) -> String {
    layout(title, &format!("<p>{}</p>", escape(detail)))
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
