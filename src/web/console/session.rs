//! Signing in to the console and out of it.
use super::*;

#[derive(serde::Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[handler]
pub async fn home(Data(state): Data<&Arc<AppState>>, jar: &CookieJar) -> Response {
    match administrator(state, jar, "/console").await {
        Ok(_) => see_other("/console/users"),
        Err(response) => response,
    }
}

#[handler]
pub async fn callback(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<Callback>,
) -> Response {
    let Some(login) = query.state else {
        return message(
            StatusCode::BAD_REQUEST,
            "Sign-in not accepted",
            "The sign-in answer had no state. Go to /console and sign in again.",
        );
    };
    // Only the browser that started this sign-in holds its state and verifier (no login CSRF).
    let login_cookie = jar.get(LOGIN_COOKIE).map(|c| c.value_str().to_owned());
    jar.remove(LOGIN_COOKIE);
    match state
        .console
        .finish_login(
            query.code.as_deref(),
            &login,
            query.error.as_deref(),
            login_cookie.as_deref(),
        )
        .await
    {
        Ok((id, _session, return_to)) => {
            let mut cookie = Cookie::new_with_str(SESSION_COOKIE, id);
            cookie.set_http_only(true);
            cookie.set_same_site(SameSite::Lax);
            cookie.set_path("/");
            cookie.set_secure(state.issuer.starts_with("https://"));
            jar.add(cookie);
            see_other(&return_to)
        }
        Err(LoginRefused::UnknownState) => message(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was not started in this browser, took too long, or was already used. Go to /console and sign in again.",
        ),
        Err(LoginRefused::Denied(why)) => {
            tracing::info!(reason = %why, "console sign-in refused");
            message(
                StatusCode::FORBIDDEN,
                "Sign-in not completed",
                "The sign-in did not complete. Go to /console and sign in again.",
            )
        }
        Err(LoginRefused::Failed(e)) => failure(e),
    }
}

/// Signs out of the console and of this service: the browser's sign-in session ends too
/// (as RP-initiated logout would), so the next sign-in anywhere asks again.
#[handler]
pub async fn logout(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(id) = jar.get(SESSION_COOKIE).map(|c| c.value_str().to_owned()) else {
        return see_other("/console");
    };
    let session = match state.console.session(&id).await {
        Ok(Some(session)) if csrf_ok(&session, &form) => session,
        Ok(Some(_)) => return forged(),
        // The console session lapsed: the form proves nothing, so the sign-in session is
        // ended only on the end-session endpoint's own confirmation page.
        Ok(None) => {
            clear_console_cookie(state, jar);
            return see_other("/oauth2/logout");
        }
        Err(e) => return failure(e),
    };
    if let Err(e) = state.console.end(&id).await {
        return failure(e);
    }
    clear_console_cookie(state, jar);
    if let Some(token) = crate::oidc::signin::session_token(state, jar) {
        if let Err(e) = state.sessions.sign_out(&token, &ctx(&session, addr)).await {
            return failure(e);
        }
        crate::oidc::signin::clear_session_cookie(state, jar);
    }
    message(
        StatusCode::OK,
        "Signed out",
        "You are signed out of the console and of this sign-in service.",
    )
}
