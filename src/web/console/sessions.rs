//! Sign-in sessions on the user page and My security: the list, and Sign out everywhere.
//! Who may see or end whose sessions is the session service's decision.
use super::*;
use crate::service::sessions::SessionView;

/// How a session's sign-in was made, in words.
fn how(amr: &[String]) -> &'static str {
    let has = |m: &str| amr.iter().any(|a| a == m);
    if has("bypass_code") {
        "password and bypass code"
    } else if has("otp") && has("mfa") {
        "password and authenticator app"
    } else {
        "password"
    }
}

/// The sessions as the table shows them; `current` marks this browser's.
pub(super) fn session_rows(views: &[SessionView], current: Option<&str>) -> Vec<Value> {
    views
        .iter()
        .map(|v| {
            let s = &v.session;
            let applications: Vec<&str> = v
                .clients
                .iter()
                .map(|c| {
                    if c == CONSOLE_CLIENT_ID {
                        "bypass-idp console"
                    } else {
                        c.as_str()
                    }
                })
                .collect();
            context! {
                started => when(s.created_at), last_active => when(s.last_seen_at),
                how => how(&s.amr), ip => s.ip.clone().unwrap_or_default(),
                applications => if applications.is_empty() { "—".to_owned() } else { applications.join(", ") },
                current => current == Some(s.id.as_str()),
            }
        })
        .collect()
}

/// My security → Sign out everywhere: every session of the signed-in person ends, this one
/// too, so the answer is a page that needs no session.
#[handler]
pub async fn account_end_sessions(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account").await);
    if !csrf_ok(&session, &form) {
        return forged();
    }
    let ended = match state
        .sessions
        .end_everywhere(&ctx(&session, addr), &session.user_id)
        .await
    {
        Ok(n) => n,
        Err(e) => return failure(e),
    };
    if let Err(e) = state.console.end(&session.cookie).await {
        return failure(e);
    }
    clear_console_cookie(state, jar);
    crate::oidc::signin::clear_session_cookie(state, jar);
    message(
        StatusCode::OK,
        "Signed out everywhere",
        &format!(
            "{ended} sign-in session(s) ended, with the applications signed in through them. Sign in again to continue."
        ),
    )
}

/// The user page → Sign out everywhere, for someone else's sessions.
#[handler]
pub async fn user_end_sessions(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let path = user_path(&id);
    let session = or_respond!(administrator(state, jar, &path).await);
    if !csrf_ok(&session, &form) {
        return forged();
    }
    match state
        .sessions
        .end_everywhere(&ctx(&session, addr), &UserId::new(id))
        .await
    {
        Ok(_) => see_other(&format!("{path}?notice=signed-out")),
        Err(e) => failure(e),
    }
}
