//! "My security" at `/account`: a person's own 2-step status and codes.
use super::codes::{email, generate, generate_page, target_for};
use super::*;

/// "My security": any signed-in user, with or without a role.
#[handler]
pub async fn account(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account").await);
    let ctx = ctx(&session, addr);
    let (status, views, why_not) = match (
        state.mfa.status(&session.user_id).await,
        state.bypass.list(&session.user_id, None, &ctx).await,
        state
            .bypass
            .generation_refused(&session.user_id, &ctx)
            .await,
    ) {
        (Ok(s), Ok(v), Ok(w)) => (s, v, w),
        // A sign-in that may not see its own codes (no bypass_codes:self) sees none.
        (Ok(s), Err(ServiceError::Forbidden(_)), Ok(w)) => (s, Vec::new(), w),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return failure(e),
    };
    let notice = match query.get("notice").map(String::as_str) {
        Some("revoked") => Some("The bypass code is revoked."),
        Some("replaced") => Some(
            "Your new authenticator app is set up. The old one no longer works, and you are signed out everywhere else.",
        ),
        _ => None,
    };
    let sessions = match state.sessions.list(&ctx, &session.user_id).await {
        Ok(views) => views,
        Err(e) => return failure(e),
    };
    let browser = crate::oidc::signin::session_token(state, jar);
    let current = match browser {
        Some(token) => state
            .sessions
            .find(&token)
            .await
            .ok()
            .flatten()
            .map(|s| s.id),
        None => None,
    };
    let sessions = super::sessions::session_rows(&sessions, current.as_deref());
    let may_end_sessions = match state.sessions.may_end(&ctx, &session.user_id).await {
        Ok(may) => may,
        Err(e) => return failure(e),
    };
    let body = render(
        "account.html",
        merged(
            frame(&session, "My security"),
            context! { two_step => two_step(status), may_replace => status == TotpStatus::Enrolled, codes => codes(&views), revoke_base => "/account/codes", may_generate => why_not.is_none(), why_not, notice,
            sessions, may_end_sessions, sessions_end => "/account/sessions/end" },
        ),
    );
    page(StatusCode::OK, body)
}

#[handler]
pub async fn account_generate_form(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account/generate").await);
    match state
        .bypass
        .generation_refused(&session.user_id, &ctx(&session, addr))
        .await
    {
        Ok(None) => {}
        Ok(Some(why)) => return message(StatusCode::FORBIDDEN, "Not allowed", &why),
        Err(e) => return failure(e),
    }
    let defaults = HashMap::from([
        ("expiry".to_owned(), "never".to_owned()),
        ("usage".to_owned(), "once".to_owned()),
    ]);
    generate_page(
        state,
        &session,
        &target_for(&session, None),
        &defaults,
        Value::from(()),
        StatusCode::OK,
    )
    .await
}

#[handler]
pub async fn account_generate(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account").await);
    generate(state, &session, target_for(&session, None), addr, form).await
}

#[handler]
pub async fn account_email(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path(code_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account").await);
    email(
        state,
        &session,
        target_for(&session, None),
        &code_id,
        addr,
        form,
    )
    .await
}

#[handler]
pub async fn account_revoke(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path(code_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account").await);
    if !csrf_ok(&session, &form) {
        return forged();
    }
    match state
        .bypass
        .revoke(&session.user_id, &code_id, &ctx(&session, addr))
        .await
    {
        Ok(()) => see_other("/account?notice=revoked"),
        Err(e) => failure(e),
    }
}
