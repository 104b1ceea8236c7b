//! Approvals: the requests for bypass codes that wait for a second person, with Approve and
//! Reject, for those who hold `bypass_codes:approve` (security administrators). Who may
//! decide what is the service's rule; this page only shows it and words its refusals.
use super::*;

#[handler]
pub async fn approvals(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let session =
        or_respond!(permitted(state, jar, "/console/approvals", Some(BYPASS_CODES_APPROVE)).await);
    let requests = match state.bypass.open_requests(&ctx(&session, addr)).await {
        Ok(requests) => requests,
        Err(e) => return failure(e),
    };
    let me = format!("user:{}", session.user_id.as_str());
    let rows: Vec<Value> = requests
        .iter()
        .map(|r| {
            let v = &r.view;
            context! {
                user_name => r.user_name, user_link => user_path(v.user_id.as_str()),
                action => format!("{}/codes/{}", approval_base(v.user_id.as_str()), v.id),
                requested_by => r.requested_by, own => v.created_by == me,
                for_me => v.user_id == session.user_id,
                requested => when(v.created_at),
                lapses => v.expires_at.map(when).unwrap_or_default(),
                reason => v.reason.clone().unwrap_or_default(),
                lifetime => v.lifetime_minutes.map_or("never expires".to_owned(), |m| format!("expires {} after approval", super::codes::human_minutes(m))),
                starts => v.starts_at.map(when),
                uses => v.max_uses.map_or("unlimited uses".to_owned(), |n| if n == 1 { "usable once".to_owned() } else { format!("usable {n} times") }),
                enrolment => v.purpose == crate::domain::bypass::Purpose::Enrolment,
                send_to => v.send_to.clone().unwrap_or_default(),
            }
        })
        .collect();
    let notice = match query.get("notice").map(String::as_str) {
        Some("approved") => {
            Some("Approved. The code was made and emailed to the user; nobody else sees it.")
        }
        Some("rejected") => Some("Rejected. No code was made."),
        _ => None,
    };
    let body = render(
        "approvals.html",
        merged(
            frame(&session, "Approvals"),
            context! { requests => rows, notice },
        ),
    );
    page(StatusCode::OK, body)
}

fn approval_base(user_id: &str) -> String {
    format!("/console/approvals/{}", path_part(user_id))
}

/// Approve or reject one request (`decision` is `approve` or `reject`).
#[handler]
pub async fn decide(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path((user_id, code_id, decision)): Path<(String, String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session =
        or_respond!(permitted(state, jar, "/console/approvals", Some(BYPASS_CODES_APPROVE)).await);
    if !csrf_ok(&session, &form) {
        return forged();
    }
    let user_id = UserId::new(user_id);
    let ctx = ctx(&session, addr);
    let (result, notice) = match decision.as_str() {
        "approve" => (
            state.bypass.approve(&user_id, &code_id, &ctx).await,
            "approved",
        ),
        "reject" => (
            state.bypass.cancel_request(&user_id, &code_id, &ctx).await,
            "rejected",
        ),
        _ => {
            return message(
                StatusCode::NOT_FOUND,
                "Not found",
                "No such decision: approve or reject.",
            );
        }
    };
    match result {
        Ok(view) if notice == "approved" && !view.notifications.last().is_some_and(|n| n.sent) => {
            let why = view
                .notifications
                .last()
                .and_then(|n| n.detail.clone())
                .unwrap_or_default();
            message(
                StatusCode::OK,
                "Approved, not sent",
                &format!(
                    "The code was made, but the email to the user could not be sent ({why}). Nobody holds the code: revoke it on the user's page and ask for a new one."
                ),
            )
        }
        Ok(_) => see_other(&format!("/console/approvals?notice={notice}")),
        Err(ServiceError::Forbidden(detail)) => {
            message(StatusCode::FORBIDDEN, "Not allowed", &detail)
        }
        Err(ServiceError::Conflict(detail)) => message(StatusCode::CONFLICT, "Not done", &detail),
        Err(ServiceError::Invalid(v)) => message(StatusCode::BAD_REQUEST, "Not done", &v.detail),
        Err(e) => failure(e),
    }
}
