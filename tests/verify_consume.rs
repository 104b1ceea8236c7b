//! Verify-and-consume, the check sign-in runs on a typed bypass code or TOTP code: every
//! rule, the lockout, and exact use counting under concurrency (across Redis flushes too).

mod common;

use std::sync::Arc;

use bypass_idp::domain::enrolment::CodeUse;
use bypass_idp::domain::ids::UserId;
use bypass_idp::service::bypass::{Rejection, VerifyOutcome};
use bypass_idp::service::context::Context;
use bypass_idp::service::mfa::{Lock, TotpOutcome};
use common::{TestApp, create_code, enrolled_user, flush_redis};
use sea_orm::ConnectionTrait;
use serde_json::json;

fn ctx() -> Context {
    Context::user(
        UserId::new("sign-in"),
        None,
        Some("127.0.0.1".parse().unwrap()),
    )
}

async fn verify(app: &TestApp, user_id: &str, code: &str) -> VerifyOutcome {
    app.state()
        .bypass
        .verify_and_consume(&UserId::new(user_id), code, CodeUse::SecondStep, &ctx())
        .await
        .expect("verify runs")
}

fn rejected(outcome: &VerifyOutcome) -> Option<Rejection> {
    match outcome {
        VerifyOutcome::Rejected(r) => Some(*r),
        VerifyOutcome::Accepted { .. } => None,
    }
}

async fn sql(app: &TestApp, statement: &str) {
    app.store()
        .db
        .execute_unprepared(statement)
        .await
        .expect("SQL");
}

#[tokio::test]
async fn codes_are_accepted_with_or_without_separators_and_used_up() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "verifier").await;
    let code = create_code(
        &app,
        &token,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 2}),
    )
    .await;
    let typed = code["code"].as_str().unwrap();
    let bare: String = typed.chars().filter(|c| *c != '-').collect();
    let spaced = format!(" {} ", typed.replace('-', " "));

    match verify(&app, &user_id, &bare).await {
        VerifyOutcome::Accepted {
            code_id, remaining, ..
        } => {
            assert_eq!(code_id, code["id"].as_str().unwrap());
            assert_eq!(remaining, Some(1));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        verify(&app, &user_id, &spaced).await,
        VerifyOutcome::Accepted {
            remaining: Some(0),
            ..
        }
    ));
    assert_eq!(
        rejected(&verify(&app, &user_id, typed).await),
        Some(Rejection::Exhausted)
    );

    let (_, used, _) = app
        .scim(
            reqwest::Method::GET,
            &format!(
                "/Users/{user_id}/bypassCodes/{}",
                code["id"].as_str().unwrap()
            ),
            &token,
            None,
        )
        .await;
    assert_eq!(used["status"], "exhausted");
    assert_eq!(used["actualUsageCount"], 2);
    assert!(used["lastUsedAt"].is_string());
    let (_, events, _) = app
        .scim(
            reqwest::Method::GET,
            &format!(
                "/Users/{user_id}/bypassCodes/{}/auditEvents",
                code["id"].as_str().unwrap()
            ),
            &token,
            None,
        )
        .await;
    let names: Vec<&str> = events["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["generated", "used", "used", "failed"]);
    app.stop().await;
}

#[tokio::test]
async fn wrong_expired_revoked_and_other_users_codes_are_refused() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "refused").await;
    let (other_id, _) = enrolled_user(&app, &token, "someone.else").await;
    let expiring = create_code(&app, &token, &user_id, json!({"expiresIn": {"minutes": 5}})).await;
    let revoked = create_code(&app, &token, &user_id, json!({"neverExpires": true})).await;
    let theirs = create_code(&app, &token, &other_id, json!({"neverExpires": true})).await;

    assert_eq!(
        rejected(&verify(&app, &user_id, "1111-2222-3333").await),
        Some(Rejection::Wrong)
    );
    assert_eq!(
        rejected(&verify(&app, &user_id, "not a code").await),
        Some(Rejection::Wrong)
    );
    assert_eq!(
        rejected(&verify(&app, &user_id, theirs["code"].as_str().unwrap()).await),
        Some(Rejection::Wrong)
    );

    sql(
        &app,
        &format!(
            "UPDATE bypass_codes SET expires_at = created_at WHERE id = '{}'",
            expiring["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(
        rejected(&verify(&app, &user_id, expiring["code"].as_str().unwrap()).await),
        Some(Rejection::Expired)
    );

    let path = format!(
        "/Users/{user_id}/bypassCodes/{}",
        revoked["id"].as_str().unwrap()
    );
    app.scim(reqwest::Method::DELETE, &path, &token, None).await;
    assert_eq!(
        rejected(&verify(&app, &user_id, revoked["code"].as_str().unwrap()).await),
        Some(Rejection::Revoked)
    );
    // Four failures so far; the other user's code still works for them.
    assert!(matches!(
        verify(&app, &other_id, theirs["code"].as_str().unwrap()).await,
        VerifyOutcome::Accepted { .. }
    ));
    app.stop().await;
}

#[tokio::test]
async fn five_failures_lock_the_factor_and_success_resets_the_count() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "locked.out").await;
    let good = create_code(
        &app,
        &token,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 5}),
    )
    .await;
    let good = good["code"].as_str().unwrap();

    for _ in 0..4 {
        assert_eq!(
            rejected(&verify(&app, &user_id, "9999-9999-9999").await),
            Some(Rejection::Wrong)
        );
    }
    assert!(
        matches!(
            verify(&app, &user_id, good).await,
            VerifyOutcome::Accepted { .. }
        ),
        "success resets"
    );
    for _ in 0..5 {
        assert_eq!(
            rejected(&verify(&app, &user_id, "9999-9999-9999").await),
            Some(Rejection::Wrong)
        );
    }
    match rejected(&verify(&app, &user_id, good).await) {
        Some(Rejection::Locked(Lock::Window(left))) => {
            assert!(
                left.as_secs() > 14 * 60 && left.as_secs() <= 15 * 60,
                "{left:?}"
            )
        }
        other => panic!("expected a 15-minute lock, got {other:?}"),
    }
    // TOTP shares the lock: it is the same second factor.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let state = app.state();
    let outcome = state
        .mfa
        .verify(&UserId::new(&user_id), "123456", &ctx())
        .await
        .unwrap();
    assert!(
        matches!(outcome, TotpOutcome::Locked(_)),
        "{outcome:?} at {now}"
    );

    // An administrator's reset clears the lock (and revokes the codes).
    let (status, _, _) = app
        .scim(
            reqwest::Method::DELETE,
            &format!("/Users/{user_id}/totp"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        rejected(&verify(&app, &user_id, good).await),
        Some(Rejection::Revoked)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_consecutive_failures_lock_until_reset() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "hundred").await;
    let good = create_code(&app, &token, &user_id, json!({"neverExpires": true})).await;
    // 99 failures spread over earlier windows: only the streak remains.
    sql(
        &app,
        &format!("UPDATE user_mfa SET consecutive_failures = 99 WHERE user_id = '{user_id}'"),
    )
    .await;
    assert_eq!(
        rejected(&verify(&app, &user_id, "1234-1234-1234").await),
        Some(Rejection::Wrong)
    );
    assert_eq!(
        rejected(&verify(&app, &user_id, good["code"].as_str().unwrap()).await),
        Some(Rejection::Locked(Lock::Permanent))
    );
    app.stop().await;
}

#[tokio::test]
async fn totp_codes_cannot_be_replayed() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (user_id, secret) = enrolled_user(&app, &token, "replayer").await;
    let state = app.state();
    let user = UserId::new(&user_id);
    // Enrolment used the current step; the next step's code is fresh.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let next = bypass_idp::domain::totp::code_at(&secret, now + 30).unwrap();
    assert_eq!(
        state.mfa.verify(&user, &next, &ctx()).await.unwrap(),
        TotpOutcome::Accepted
    );
    assert_eq!(
        state.mfa.verify(&user, &next, &ctx()).await.unwrap(),
        TotpOutcome::Replayed
    );
    let current = bypass_idp::domain::totp::code_at(&secret, now).unwrap();
    assert_ne!(
        state.mfa.verify(&user, &current, &ctx()).await.unwrap(),
        TotpOutcome::Accepted,
        "an earlier step is a replay too"
    );
    assert_eq!(
        state.mfa.verify(&user, "000000", &ctx()).await.unwrap(),
        TotpOutcome::Wrong
    );
    app.stop().await;
}

/// Runs `attempts` verifications of `code` at once and counts the successes.
async fn race(app: &TestApp, user_id: &str, code: &str, attempts: usize) -> usize {
    let state = Arc::clone(app.state());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..attempts {
        let state = Arc::clone(&state);
        let user = UserId::new(user_id);
        let code = code.to_owned();
        let ip = format!("127.0.{}.{}", i / 250, i % 250 + 1);
        tasks.spawn(async move {
            let ctx = Context::user(user.clone(), None, Some(ip.parse().unwrap()));
            state
                .bypass
                .verify_and_consume(&user, &code, CodeUse::SecondStep, &ctx)
                .await
                .expect("verify runs")
        });
    }
    let mut accepted = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while let Some(joined) = tokio::time::timeout_at(deadline, tasks.join_next())
        .await
        .expect("race finishes in time")
    {
        if matches!(joined.expect("task"), VerifyOutcome::Accepted { .. }) {
            accepted += 1;
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_attempts_use_a_code_exactly_as_often_as_allowed() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (once_user, _) = enrolled_user(&app, &token, "racer.once").await;
    let once = create_code(&app, &token, &once_user, json!({"neverExpires": true})).await;
    assert_eq!(
        race(&app, &once_user, once["code"].as_str().unwrap(), 200).await,
        1
    );

    let (five_user, _) = enrolled_user(&app, &token, "racer.five").await;
    let five = create_code(
        &app,
        &token,
        &five_user,
        json!({"neverExpires": true, "maxUsageCount": 5}),
    )
    .await;
    assert_eq!(
        race(&app, &five_user, five["code"].as_str().unwrap(), 200).await,
        5
    );
    let (_, stored, _) = app
        .scim(
            reqwest::Method::GET,
            &format!(
                "/Users/{five_user}/bypassCodes/{}",
                five["id"].as_str().unwrap()
            ),
            &token,
            None,
        )
        .await;
    assert_eq!(stored["actualUsageCount"], 5);
    assert_eq!(stored["status"], "exhausted");
    app.stop().await;
}

#[tokio::test]
async fn a_flushed_redis_never_gives_a_spent_use_back() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "flushed").await;
    let code = create_code(
        &app,
        &token,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 3}),
    )
    .await;
    let code = code["code"].as_str().unwrap();
    for use_number in 1..=3 {
        flush_redis(&app).await;
        assert!(
            matches!(
                verify(&app, &user_id, code).await,
                VerifyOutcome::Accepted { .. }
            ),
            "use {use_number}"
        );
    }
    for _ in 0..3 {
        flush_redis(&app).await;
        assert_eq!(
            rejected(&verify(&app, &user_id, code).await),
            Some(Rejection::Exhausted)
        );
    }
    app.stop().await;
}
