//! The Argon2 admission queue: a check that would wait past `kdf_queue_timeout_ms` is
//! refused at once as busy (503, `Retry-After`), on every door that hashes, and gives back
//! the attempt it reserved, so a refusal never locks anyone out. One test, because the
//! process has one Argon2 queue and this test fills it and changes its deadline.

mod common;

use std::time::Duration;

use bypass_idp::domain::repo::MfaRepo;
use bypass_idp::service::passwords::set_queue_timeout;
use common::rp::*;
use common::{TestApp, create_code, enrolled_user, hold_argon2_slots};
use reqwest::Method;
use serde_json::json;

/// Busy: every Argon2 slot held by a job that only waits, and a deadline no computation
/// fits in, so every check is refused at once. The blockers hold their slots for `hold`.
async fn make_busy(hold: Duration) -> Vec<tokio::task::JoinHandle<()>> {
    let blockers = hold_argon2_slots(hold).await;
    set_queue_timeout(Duration::from_millis(5));
    blockers
}

/// The slots free again, and a generous deadline.
async fn accept_again(blockers: Vec<tokio::task::JoinHandle<()>>) {
    for blocker in blockers {
        blocker.await.unwrap();
    }
    set_queue_timeout(Duration::from_secs(10));
}

fn assert_busy_page(page: &Page) {
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("Busy"), "{}", page.body);
    assert!(
        page.body.contains("does not count as a try"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn busy_checks_are_refused_at_once_and_given_back_on_every_door() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let (user_id, _) = enrolled_user(&app, &admin, "busy.user").await;
    let code = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 1}),
    )
    .await["code"]
        .as_str()
        .unwrap()
        .to_owned();

    // Password step: more refusals than the password window of one user at one address
    // allows (10), each a busy page with Retry-After, none counted.
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    assert_eq!(browser.get(&started.auth_url).await.status, 303);
    let form = browser.get("/oauth2/signin").await;
    let fields = |password: &'static str| {
        [
            ("csrf", csrf(&form)),
            ("username", "busy.user".to_owned()),
            ("password", password.to_owned()),
        ]
    };
    let blockers = make_busy(Duration::from_secs(3)).await;
    for _ in 0..12 {
        let response = browser
            .http
            .post(format!("{}/oauth2/signin/password", app.base))
            .form(&fields("wrong password"))
            .send()
            .await
            .unwrap();
        assert!(
            response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 1
        );
        assert_busy_page(&Browser::page(response).await);
    }
    // Many at once: each is refused as busy, or, while the window is full of reservations
    // in flight, as locked; none is checked as a wrong password.
    let burst = (0..32).map(|_| {
        browser
            .http
            .post(format!("{}/oauth2/signin/password", app.base))
            .form(&fields("wrong password"))
            .send()
    });
    for response in futures_util::future::join_all(burst).await {
        let page = Browser::page(response.unwrap()).await;
        assert!(page.status == 503 || page.status == 200, "{}", page.status);
        assert!(
            !page.body.contains("Wrong username or password"),
            "{}",
            page.body
        );
    }
    accept_again(blockers).await;
    // The same form goes on: nothing was counted, so the right password is not locked.
    let mut fields = fields(PASSWORD);
    fields[2].1 = PASSWORD.to_owned();
    let form_fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let second = browser.post("/oauth2/signin/password", &form_fields).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(second.body.contains("name=\"code\""), "{}", second.body);

    // Bypass code at the second step: refused as busy more often than the second-factor
    // window (5) and the failure streak allow, then the code still works once.
    let bypass = browser.get("/oauth2/signin?method=bypass").await;
    let blockers = make_busy(Duration::from_secs(2)).await;
    for _ in 0..8 {
        let page = browser
            .post(
                "/oauth2/signin/bypass",
                &[("csrf", &csrf(&bypass)), ("code", "0000-0000-0000")],
            )
            .await;
        assert_busy_page(&page);
    }
    let mfa = app
        .store()
        .get_mfa(&bypass_idp::domain::ids::UserId::new(&user_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mfa.consecutive_failures, 0, "busy refusals are no failures");
    let page = browser
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&bypass)), ("code", &code)],
        )
        .await;
    assert_busy_page(&page);
    accept_again(blockers).await;
    let page = browser
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&bypass)), ("code", &code)],
        )
        .await;
    let page = not_now(&browser, page).await;
    let code_grant = code_from(&page, &app, &rp, &started.state);
    let (status, tokens) = redeem(&app, &rp, &code_grant, started.verifier.secret()).await;
    assert_eq!(status, 200, "{tokens}");

    // SCIM: setting a password while busy is a SCIM 503 and changes nothing; so is
    // creating a code (its hash is Argon2 too), which leaves no code behind.
    let (_, before, _) = app
        .scim(Method::GET, &format!("/Users/{user_id}"), &admin, None)
        .await;
    let blockers = make_busy(Duration::from_secs(2)).await;
    let (status, body, headers) = app
        .scim(
            Method::PATCH,
            &format!("/Users/{user_id}"),
            &admin,
            Some(json!({"schemas": [common::PATCH_SCHEMA],
                        "Operations": [{"op": "replace", "path": "password",
                                        "value": "a brand new password 1"}]})),
        )
        .await;
    common::assert_scim_error(status, &body, 503, None);
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    let (status, body, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{user_id}/bypassCodes"),
            &admin,
            Some(json!({"neverExpires": true})),
        )
        .await;
    common::assert_scim_error(status, &body, 503, None);
    accept_again(blockers).await;
    let (_, user, _) = app
        .scim(Method::GET, &format!("/Users/{user_id}"), &admin, None)
        .await;
    assert_eq!(user, before);
    let (_, codes, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        codes["totalResults"], 1,
        "only the code used above: {codes}"
    );
    // The old password still signs in.
    let started = start(&app, &rp).await;
    let page = password_step(
        &Browser::new(&app),
        &started.auth_url,
        "busy.user",
        PASSWORD,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);

    // The refusals are counted for operators.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("argon2_refused_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(refused >= 12.0 + 9.0 + 2.0, "{refused}\n{metrics}");
    assert!(metrics.contains("argon2_wait_seconds"), "{metrics}");
}
