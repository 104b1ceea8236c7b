//! Finding users, and one user's page: their 2-step status and codes.
use super::*;

#[derive(serde::Deserialize)]
pub struct Search {
    q: Option<String>,
    page: Option<u64>,
}

/// `userName`, name or email containing the words typed.
fn search_filter(q: &str) -> Option<String> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let literal = serde_json::Value::from(q).to_string();
    Some(format!(
        "userName co {literal} or name.givenName co {literal} or name.familyName co {literal} or displayName co {literal} or emails.value co {literal}"
    ))
}

#[handler]
pub async fn users_page(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(search): Query<Search>,
) -> Response {
    let session = or_respond!(permitted(state, jar, "/console/users", Some(USERS_READ)).await);
    let q: String = search.q.unwrap_or_default().chars().take(128).collect();
    let page_no = search.page.unwrap_or(1).clamp(1, 10_000);
    let params = SearchParams {
        filter: search_filter(&q),
        start_index: (page_no - 1) * PAGE_SIZE + 1,
        count: PAGE_SIZE,
        ..Default::default()
    };
    let found = match state.users.list(&params).await {
        Ok(found) => found,
        Err(e) => return failure(e),
    };
    let users: Vec<Value> = found.users.iter().map(person).collect();
    let next = (page_no * PAGE_SIZE < found.total).then_some(page_no + 1);
    let prev = (page_no > 1).then_some(page_no - 1);
    let body = render(
        "users.html",
        merged(
            frame(&session, "Users"),
            context! { q, users, total => found.total, next, prev },
        ),
    );
    page(StatusCode::OK, body)
}

#[handler]
pub async fn user_page(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = user_path(&id);
    let session = or_respond!(permitted(state, jar, &path, Some(USERS_READ)).await);
    let user_id = UserId::new(id);
    let found = match state.users.get(&user_id).await {
        Ok(u) => u,
        Err(e) => return failure(e),
    };
    let status = if session.may(MFA_READ) {
        state.mfa.status_for(&user_id, &ctx(&session, addr)).await
    } else {
        Ok(TotpStatus::None)
    };
    // Whether this person may act on this user's codes is the service's decision; a refusal
    // (an administrator's page seen by the help desk) leaves the codes out and says why.
    let (views, codes_refused) = if session.may(BYPASS_CODES_MANAGE) {
        match state
            .bypass
            .list(&user_id, None, &ctx(&session, addr))
            .await
        {
            Ok(views) => (Ok(views), None),
            Err(ServiceError::Forbidden(why)) => (Ok(Vec::new()), Some(why)),
            Err(e) => (Err(e), None),
        }
    } else {
        (Ok(Vec::new()), None)
    };
    let (status, views) = match (status, views) {
        (Ok(s), Ok(v)) => (s, v),
        (Err(e), _) | (_, Err(e)) => return failure(e),
    };
    // Waiting to set up an authenticator with a code (after a reset): said beside the status.
    let awaiting_code = if session.may(MFA_READ) && status != TotpStatus::Enrolled {
        match state.mfa.enrolment_gate(&user_id).await {
            Ok(gate) => gate.is_some(),
            Err(e) => return failure(e),
        }
    } else {
        false
    };
    // Sessions, for those who may see them (the decision is the service's).
    let sessions = state.sessions.list(&ctx(&session, addr), &user_id).await;
    let (sessions, sessions_shown) = match sessions {
        Ok(views) => (super::sessions::session_rows(&views, None), true),
        Err(ServiceError::Forbidden(_)) => (Vec::new(), false),
        Err(e) => return failure(e),
    };
    let may_end_sessions = match state.sessions.may_end(&ctx(&session, addr), &user_id).await {
        Ok(may) => may,
        Err(e) => return failure(e),
    };
    let notice = query.get("notice").and_then(|n| match n.as_str() {
        "signed-out" => Some("Every sign-in session of this user ended."),
        "revoked" => Some("The bypass code is revoked."),
        "reset" => Some("2-step verification is reset: the authenticator, every bypass code and every sign-in of this user are gone. They need a bypass code to set up a new authenticator app."),
        _ => None,
    });
    let body = render(
        "user.html",
        merged(
            frame(&session, &found.attributes.user_name),
            context! {
                user => person(&found), two_step => two_step(status), codes => codes(&views), awaiting_code,
                may_manage => session.may(BYPASS_CODES_MANAGE) && codes_refused.is_none(),
                may_reset => session.may(MFA_MANAGE), codes_refused,
                revoke_base => format!("{path}/codes"), notice,
                sessions, sessions_shown, sessions_end => format!("{path}/sessions/end"),
                may_end_sessions,
            },
        ),
    );
    page(StatusCode::OK, body)
}
