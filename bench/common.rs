//! What the benchmarks share: a user enrolled in 2-step verification, with bypass codes.

use bypass_idp::domain::ids::UserId;
use bypass_idp::domain::scim::user::parse_user;
use bypass_idp::domain::totp;
use bypass_idp::service::context::Context;
use bypass_idp::state::AppState;
use serde_json::{Value, json};

/// The user `body` describes (SCIM), its authenticator confirmed, with `codes` unlimited
/// bypass codes; returns the user id and the first code.
pub async fn enrolled(state: &AppState, body: Value, codes: usize) -> (UserId, String) {
    let ctx = Context::system();
    let user = state
        .users
        .create(parse_user(&body).unwrap(), &ctx)
        .await
        .unwrap();
    let enrollment = state.mfa.start_enrollment(&user.id, &ctx).await.unwrap();
    let secret = totp::from_base32(enrollment.secret_base32.expose()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    state
        .mfa
        .confirm(&user.id, &totp::code_at(&secret, now).unwrap(), &ctx)
        .await
        .unwrap();
    // Unbounded codes straight away: no second person, no alert mails.
    let direct =
        json!({"approvalRequired": "never", "notifyUserOnIssue": false, "notifyUserOnUse": false});
    state.bypass.replace_policy(&direct, &ctx).await.unwrap();
    let mut first = None;
    for _ in 0..codes {
        let unlimited = json!({"neverExpires": true, "unlimitedUsage": true});
        let created = state
            .bypass
            .create(&user.id, &unlimited, &ctx)
            .await
            .unwrap();
        let bypass_idp::service::bypass::Issued::Code(created) = created else {
            panic!("the policy holds no code for approval");
        };
        first.get_or_insert(created.code.expose().to_owned());
    }
    (user.id, first.expect("at least one code"))
}
