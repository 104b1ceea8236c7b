//! Generating, emailing and revoking a user's bypass codes: the help desk's pages, and the
//! form and code window that My security shares.
use super::*;
use crate::domain::bypass::{ApprovalRequired, Purpose};
use crate::domain::enrolment::CodeGate;
use crate::service::bypass::Issued;

/// The generate form's fields, as typed.
fn form_values(form: &HashMap<String, String>) -> Value {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    context! { expiry => get("expiry"), days => get("days"), hours => get("hours"), minutes => get("minutes"), usage => get("usage"), times => get("times"), purpose => get("purpose"), reason => get("reason"), starts => get("starts"), notify => get("notify") }
}

/// The create body the form asks for, or the field that is wrong.
fn create_body(
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, (&'static str, String)> {
    let number = |field: &'static str, key: &str| -> Result<i64, (&'static str, String)> {
        let text = form.get(key).map(|s| s.trim()).unwrap_or_default();
        if text.is_empty() {
            return Ok(0);
        }
        text.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or((field, format!("{key} must be a whole number")))
    };
    let mut body = json!({});
    if form.get("expiry").map(String::as_str) == Some("never") {
        body["neverExpires"] = json!(true);
    } else {
        let (d, h, m) = (
            number("expiry", "days")?,
            number("expiry", "hours")?,
            number("expiry", "minutes")?,
        );
        if d.saturating_add(h).saturating_add(m) == 0 {
            return Err((
                "expiry",
                "Say in how many days, hours or minutes the code expires, or choose Never expires."
                    .into(),
            ));
        }
        body["expiresIn"] = json!({"days": d, "hours": h, "minutes": m});
    }
    match form.get("usage").map(String::as_str) {
        Some("unlimited") => body["unlimitedUsage"] = json!(true),
        Some("times") => {
            let n = number("usage", "times")?;
            if n == 0 {
                return Err(("usage", "Say how many times the code may be used.".into()));
            }
            body["maxUsageCount"] = json!(n);
        }
        _ => body["maxUsageCount"] = json!(1),
    }
    // The code mail is then the user's only mail about it (no separate alert).
    if form.get("notify").map(String::as_str) == Some("email") {
        body["notify"] = json!(["email"]);
    }
    let reason = form.get("reason").map(|r| r.trim()).unwrap_or_default();
    if !reason.is_empty() {
        body["reason"] = json!(reason);
    }
    // A `datetime-local` field: a time in UTC, as the label says.
    let starts = form.get("starts").map(|r| r.trim()).unwrap_or_default();
    if !starts.is_empty() {
        let at = chrono::NaiveDateTime::parse_from_str(starts, "%Y-%m-%dT%H:%M")
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(starts, "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| {
                (
                    "starts",
                    "Valid from must be a date and time, e.g. 2026-12-24 09:00.".to_owned(),
                )
            })?;
        body["startsAt"] = json!(at.and_utc().to_rfc3339());
    }
    // Offered only for a user waiting to set up an authenticator; the service decides.
    if let Some(purpose) = form.get("purpose").filter(|p| !p.is_empty()) {
        body["purpose"] = json!(purpose);
    }
    Ok(body)
}

/// A refusal in the words of the form: the API's member names become the labels a person
/// sees.
fn in_form_words(detail: &str) -> String {
    [
        ("\"expiresIn\"", "Expires in"),
        ("\"neverExpires\"", "Never expires"),
        ("\"maxUsageCount\"", "Number of times"),
        ("\"unlimitedUsage\"", "Unlimited"),
        ("\"reason\"", "Reason or ticket"),
        ("\"startsAt\"", "Valid from"),
        ("helpDesk policy", "help-desk policy"),
        ("selfService policy", "self-service policy"),
    ]
    .iter()
    .fold(detail.to_owned(), |text, (api, label)| {
        text.replace(api, label)
    })
}

/// Which field a refusal of the service is about.
fn field_of(detail: &str) -> &'static str {
    if detail.contains("expiresIn") || detail.contains("neverExpires") {
        "expiry"
    } else if detail.contains("maxUsageCount") || detail.contains("unlimitedUsage") {
        "usage"
    } else if detail.contains("\"reason\"") {
        "reason"
    } else if detail.contains("startsAt") {
        "starts"
    } else {
        "general"
    }
}

fn limits(policy: &Policy, origin: Origin) -> Value {
    let (expiry, usage) = match origin {
        Origin::HelpDesk => (
            policy.help_desk_max_expiry_minutes,
            policy.help_desk_max_usage,
        ),
        Origin::SelfService | Origin::SavedSet => (
            policy.self_service_max_expiry_minutes,
            policy.self_service_max_usage,
        ),
    };
    let approval = match (origin, policy.approval_required) {
        (Origin::HelpDesk, ApprovalRequired::Unbounded) => Some(
            "A code that never expires or has unlimited uses, and any code for an administrator, waits for a second person's approval; it is then emailed to the user.",
        ),
        (Origin::HelpDesk, ApprovalRequired::Always) => {
            Some("Every code waits for a second person's approval; it is then emailed to the user.")
        }
        _ => None,
    };
    context! {
        approval,
        expiry => expiry.map_or("Policy: any expiry, or never.".to_owned(), |m| format!("Policy: at most {m} minutes ({}); never is not allowed.", human_minutes(m))),
        usage => usage.map_or("Policy: any number of uses, or unlimited.".to_owned(), |n| format!("Policy: at most {n} use{}; unlimited is not allowed.", if n == 1 { "" } else { "s" })),
    }
}

pub(super) fn human_minutes(minutes: i64) -> String {
    let (d, h, m) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    [(d, "day"), (h, "hour"), (m, "minute")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whom a generate page is for, and where its form and links go.
pub(super) struct Target {
    user_id: UserId,
    origin: Origin,
    action: String,
    back: String,
    email_action_base: String,
}

pub(super) fn target_for(session: &ConsoleSession, id: Option<String>) -> Target {
    // One's own codes are always under the self-service rules (the service decides so too):
    // the page shows their limits and sends its forms to My security.
    match id.filter(|id| id != session.user_id.as_str()) {
        Some(id) => {
            let base = user_path(&id);
            Target {
                user_id: UserId::new(id),
                origin: Origin::HelpDesk,
                action: format!("{base}/generate"),
                back: base.clone(),
                email_action_base: format!("{base}/codes"),
            }
        }
        None => Target {
            user_id: session.user_id.clone(),
            origin: Origin::SelfService,
            action: "/account/generate".into(),
            back: "/account".into(),
            email_action_base: "/account/codes".into(),
        },
    }
}

pub(super) async fn generate_page(
    state: &AppState,
    session: &ConsoleSession,
    target: &Target,
    form: &HashMap<String, String>,
    errors: Value,
    status: StatusCode,
) -> Response {
    let user = match state.users.get(&target.user_id).await {
        Ok(u) => u,
        Err(e) => return failure(e),
    };
    let (enrolled, policy, gate) = match (
        state.mfa.status(&target.user_id).await,
        state.bypass.policy().await,
        state.mfa.enrolment_gate(&target.user_id).await,
    ) {
        (Ok(s), Ok(p), Ok(g)) => (s == TotpStatus::Enrolled, p, g),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return failure(e),
    };
    // A user waiting behind the enrolment gate may be given a code (enrolment only, or
    // sign-in): the help desk's choice.
    let gate = (target.origin == Origin::HelpDesk)
        .then_some(gate)
        .flatten()
        .map(|g| match g {
            CodeGate::AfterReset => "reset",
            CodeGate::Administrator => "administrator",
        });
    let body = render(
        "generate.html",
        merged(
            frame(session, "Generate bypass code"),
            context! {
                enrolled, gate, user_name => user.attributes.user_name, action => target.action, back => target.back,
                form => form_values(form), errors, limits => limits(&policy, target.origin),
                reason_required => policy.reason_required, max_start_days => policy.max_start_delay_days,
                help_desk => target.origin == Origin::HelpDesk,
            },
        ),
    );
    page(status, body)
}

/// How the last email of a code went, in words: (sent, failed).
fn mail_outcome(view: &CodeView) -> (Option<String>, Option<String>) {
    match view.notifications.last() {
        Some(n) if n.sent => (
            Some(format!("Emailed {}.", n.detail.clone().unwrap_or_default())),
            None,
        ),
        Some(n) => (
            None,
            Some(format!(
                "The email could not be sent: {}",
                n.detail.clone().unwrap_or_default()
            )),
        ),
        None => (None, None),
    }
}

/// The code window: the plaintext, shown once here, and the Email button while the console
/// holds the code sealed in this session.
struct CodeWindow<'a> {
    user_name: &'a str,
    /// Shown once, right after generation; not again after emailing.
    code: Option<&'a Secret>,
    view: &'a CodeView,
    sent: Option<String>,
    failed: Option<String>,
    may_email: bool,
}

fn code_page(session: &ConsoleSession, target: &Target, window: CodeWindow<'_>) -> Response {
    let CodeWindow {
        user_name,
        code,
        view,
        sent,
        failed,
        may_email,
    } = window;
    let summary = format!(
        "{}{}, {}",
        if view.purpose == Purpose::Enrolment {
            "for setting up an authenticator app only, "
        } else {
            ""
        },
        view.expires_at
            .map_or("never expires".to_owned(), |t| format!(
                "expires {}",
                when(t)
            )),
        view.max_uses
            .map_or("unlimited uses".to_owned(), |n| if n == 1 {
                "usable once".to_owned()
            } else {
                format!("usable {n} times")
            }),
    );
    let body = render(
        "code.html",
        merged(
            frame(session, "Bypass code"),
            context! {
                user_name, summary, code => code.map(Secret::expose), sent, failed, may_email,
                reason => view.reason, starts => view.starts_at.filter(|_| view.status == crate::domain::bypass::CodeStatus::Scheduled).map(when),
                email_action => format!("{}/{}/email", target.email_action_base, view.id), back => target.back,
            },
        ),
    );
    page(StatusCode::OK, body)
}

pub(super) async fn generate(
    state: &AppState,
    session: &ConsoleSession,
    target: Target,
    addr: &ClientAddr,
    form: HashMap<String, String>,
) -> Response {
    if !csrf_ok(session, &form) {
        return forged();
    }
    let body = match create_body(&form) {
        Ok(body) => body,
        Err((field, text)) => {
            return generate_page(
                state,
                session,
                &target,
                &form,
                Value::from_serialize(HashMap::from([(field, text)])),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    match state
        .bypass
        .create(&target.user_id, &body, &ctx(session, addr))
        .await
    {
        Ok(Issued::Pending(view)) => {
            let user_name = match state.users.get(&target.user_id).await {
                Ok(u) => u.attributes.user_name,
                Err(e) => return failure(e),
            };
            let summary = format!(
                "{}, {}",
                view.max_uses
                    .map_or("unlimited uses".to_owned(), |n| if n == 1 {
                        "usable once".to_owned()
                    } else {
                        format!("usable {n} times")
                    }),
                view.lifetime_minutes
                    .map_or("never expires".to_owned(), |m| format!(
                        "expires {} after approval",
                        human_minutes(m)
                    )),
            );
            let body = render(
                "pending.html",
                merged(
                    frame(session, "Sent for approval"),
                    context! {
                        user_name, summary, reason => view.reason, send_to => view.send_to,
                        lapses => view.expires_at.map(when), back => target.back,
                    },
                ),
            );
            page(StatusCode::ACCEPTED, body)
        }
        Ok(Issued::Code(created)) => {
            let user_name = match state.users.get(&target.user_id).await {
                Ok(u) => u.attributes.user_name,
                Err(e) => return failure(e),
            };
            // Emailed with the generation ("Email it to the user"), or kept sealed for the
            // Email button, so nobody types the code back in.
            let (sent, failed) = mail_outcome(&created.view);
            let may_email = sent.is_none()
                && match state
                    .console
                    .hold(session, &created.view.id, &created.code)
                    .await
                {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not hold a generated code for emailing");
                        false
                    }
                };
            let window = CodeWindow {
                user_name: &user_name,
                code: Some(&created.code),
                view: &created.view,
                sent,
                failed,
                may_email,
            };
            code_page(session, &target, window)
        }
        Err(ServiceError::Invalid(v)) => {
            let errors = HashMap::from([(field_of(&v.detail), in_form_words(&v.detail))]);
            generate_page(
                state,
                session,
                &target,
                &form,
                Value::from_serialize(errors),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(ServiceError::Forbidden(detail)) => {
            message(StatusCode::FORBIDDEN, "Not allowed", &detail)
        }
        Err(ServiceError::Conflict(detail)) => {
            generate_page(
                state,
                session,
                &target,
                &form,
                Value::from_serialize(HashMap::from([("general", detail)])),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => failure(e),
    }
}

#[handler]
pub async fn generate_form(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(
        permitted(
            state,
            jar,
            &format!("/console/users/{id}/generate"),
            Some(BYPASS_CODES_MANAGE)
        )
        .await
    );
    let target = target_for(&session, Some(id));
    let purpose = match query.get("purpose").map(String::as_str) {
        Some("signIn") => "signIn",
        _ => "enrolment",
    };
    let defaults = HashMap::from([
        ("expiry".to_owned(), "in".to_owned()),
        ("days".to_owned(), "1".to_owned()),
        ("usage".to_owned(), "once".to_owned()),
        ("purpose".to_owned(), purpose.to_owned()),
    ]);
    generate_page(
        state,
        &session,
        &target,
        &defaults,
        Value::from(()),
        StatusCode::OK,
    )
    .await
}

#[handler]
pub async fn generate_post(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(
        permitted(
            state,
            jar,
            &format!("/console/users/{id}"),
            Some(BYPASS_CODES_MANAGE)
        )
        .await
    );
    let target = target_for(&session, Some(id));
    generate(state, &session, target, addr, form).await
}

pub(super) async fn email(
    state: &AppState,
    session: &ConsoleSession,
    target: Target,
    code_id: &str,
    addr: &ClientAddr,
    form: HashMap<String, String>,
) -> Response {
    if !csrf_ok(session, &form) {
        return forged();
    }
    let held = match state.console.held(session, code_id).await {
        Ok(Some(held)) => held,
        Ok(None) => {
            return message(
                StatusCode::CONFLICT,
                "Not sent",
                "The console no longer holds this code: it keeps a code for emailing only for a few minutes after it is generated, in the session that generated it. Revoke the code and generate a new one with Email.",
            );
        }
        Err(e) => return failure(e),
    };
    let view = match state
        .bypass
        .notify_held(&target.user_id, code_id, &held, &ctx(session, addr))
        .await
    {
        Ok(view) => view,
        Err(ServiceError::Invalid(v)) => {
            return message(StatusCode::BAD_REQUEST, "Not sent", &v.detail);
        }
        Err(e) => return failure(e),
    };
    let user_name = match state.users.get(&target.user_id).await {
        Ok(u) => u.attributes.user_name,
        Err(e) => return failure(e),
    };
    let (sent, failed) = mail_outcome(&view);
    // Sent: the console lets go of the plaintext. Not sent: it keeps it for another try.
    let retry = failed.is_some();
    if !retry && let Err(e) = state.console.release(session, code_id).await {
        tracing::warn!(error = %e, "could not release a held code; it expires on its own");
    }
    let window = CodeWindow {
        user_name: &user_name,
        code: None,
        view: &view,
        sent,
        failed,
        may_email: retry,
    };
    code_page(session, &target, window)
}

#[handler]
pub async fn email_code(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path((id, code_id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(
        permitted(
            state,
            jar,
            &format!("/console/users/{id}"),
            Some(BYPASS_CODES_MANAGE)
        )
        .await
    );
    email(
        state,
        &session,
        target_for(&session, Some(id)),
        &code_id,
        addr,
        form,
    )
    .await
}

#[handler]
pub async fn revoke_code(
    Data(state): Data<&Arc<AppState>>,
    Data(addr): Data<&ClientAddr>,
    jar: &CookieJar,
    Path((id, code_id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = or_respond!(
        permitted(
            state,
            jar,
            &format!("/console/users/{id}"),
            Some(BYPASS_CODES_MANAGE)
        )
        .await
    );
    if !csrf_ok(&session, &form) {
        return forged();
    }
    let target = target_for(&session, Some(id));
    match state
        .bypass
        .revoke(&target.user_id, &code_id, &ctx(&session, addr))
        .await
    {
        Ok(()) => see_other(&format!("{}?notice=revoked", target.back)),
        Err(e) => failure(e),
    }
}
