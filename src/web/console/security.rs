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
    let set_size = match state.bypass.policy().await {
        Ok(policy) => policy.self_service_set_size,
        Err(e) => return failure(e),
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
            sessions, may_end_sessions, sessions_end => "/account/sessions/end", set_size },
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

/// "Generate a set of codes to print": a new printable set, shown once by this answer, as a
/// print-friendly page or (`format=text`) a text download. Nothing shows the codes again.
#[handler]
pub async fn account_code_set(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(signed_in(state, jar, "/account").await);
    if !csrf_ok(&session, &form) {
        return forged();
    }
    let set = match state
        .bypass
        .create_set(&session.user_id, None, &ctx(&session, addr))
        .await
    {
        Ok(set) => set,
        Err(ServiceError::Forbidden(detail)) => {
            return message(StatusCode::FORBIDDEN, "Not allowed", &detail);
        }
        Err(ServiceError::Invalid(v)) => {
            return message(StatusCode::BAD_REQUEST, "Not made", &v.detail);
        }
        Err(e) => return failure(e),
    };
    let made = set
        .views
        .first()
        .map(|v| when(v.created_at))
        .unwrap_or_default();
    let expires = set
        .views
        .first()
        .and_then(|v| v.expires_at)
        .map_or("They do not expire.".to_owned(), |t| {
            format!("They expire {}.", when(t))
        });
    let codes: Vec<&str> = set.codes.iter().map(|c| c.expose()).collect();
    if form.get("format").map(String::as_str) == Some("text") {
        let mut text = format!(
            "{SERVICE_NAME}: saved bypass codes for {}\nMade {made}. Each code works once. {expires}\nA new set replaces this one.\n\n",
            set.user_name
        );
        for (n, code) in codes.iter().enumerate() {
            text.push_str(&format!("{:>2}. {code}\n", n + 1));
        }
        return Response::builder()
            .status(StatusCode::OK)
            .content_type("text/plain; charset=utf-8")
            .header(
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"bypass-codes.txt\"",
            )
            .header(header::CACHE_CONTROL, "no-store")
            .header("X-Content-Type-Options", "nosniff")
            .body(text);
    }
    let body = render(
        "saved_set.html",
        merged(
            frame(&session, "Saved bypass codes"),
            context! { codes, made, expires, user_name => set.user_name },
        ),
    );
    page(StatusCode::OK, body)
}
