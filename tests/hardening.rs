//! Attacks on the limits, the input bounds, the client address and revocation: each test
//! here failed on the code before the hardening it covers.

mod common;

use bypass_idp::domain::repo::{ClientRepo, KeyRepo, MfaRepo};
use std::time::Duration;

use common::rp::*;
use common::{TestApp, create_code, enrolled_user, user_body};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `n` copies of a form posted at once from one browser (one flow, one CSRF token).
async fn burst(
    browser: &Browser,
    path: &str,
    fields: Vec<(String, String)>,
    n: usize,
) -> Vec<Page> {
    let posts = (0..n).map(|_| {
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        async move { browser.post(path, &fields).await }
    });
    join_all(posts).await
}

/// The token endpoint refused a grant (RFC 6749 §5.2 `invalid_grant`).
#[track_caller]
fn assert_invalid_grant(status: u16, body: &Value, context: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{context}: {body}"
    );
}

fn count(pages: &[Page], text: &str) -> usize {
    pages.iter().filter(|p| p.body.contains(text)).count()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A user with TOTP and a password, signed in up to the second-factor page.
async fn at_second_factor(app: &TestApp, user: &str) -> (Browser, Page, String, Vec<u8>) {
    let admin = app.admin_token(None).await;
    let (user_id, secret) = enrolled_user(app, &admin, user).await;
    let rp = register(app, false, false).await;
    let started = start(app, &rp).await;
    let browser = Browser::new(app);
    let page = password_step(&browser, &started.auth_url, user, PASSWORD).await;
    assert!(page.body.contains("Use a bypass code"), "{}", page.body);
    (browser, page, user_id, secret)
}

async fn streak(app: &TestApp, user_id: &str) -> i32 {
    app.store()
        .get_mfa(&bypass_idp::domain::ids::UserId::new(user_id))
        .await
        .unwrap()
        .unwrap()
        .consecutive_failures
}

#[tokio::test]
async fn forty_parallel_wrong_bypass_codes_are_evaluated_at_most_five_times() {
    let app = TestApp::spawn().await;
    let (browser, page, user_id, _) = at_second_factor(&app, "burst.bypass").await;
    let admin = app.admin_token(None).await;
    let right = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let fields = vec![
        ("csrf".to_owned(), csrf(&page)),
        ("code".to_owned(), "1111-2222-3333".to_owned()),
    ];
    let pages = burst(&browser, "/oauth2/signin/bypass", fields, 40).await;
    assert_eq!(count(&pages, "That bypass code is not right"), 5);
    assert_eq!(count(&pages, "Try again in 15 minutes"), 35);
    assert_eq!(
        streak(&app, &user_id).await,
        5,
        "five failures in the streak"
    );
    // The right code right after them is refused within the window.
    let fields = vec![("csrf".to_owned(), csrf(&page)), ("code".to_owned(), right)];
    let after = burst(&browser, "/oauth2/signin/bypass", fields, 1).await;
    assert_eq!(count(&after, "Try again in 15 minutes"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_burst_cannot_run_the_failure_streak_past_its_cap() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = TestApp::spawn().await;
    let (browser, page, user_id, _) = at_second_factor(&app, "burst.streak").await;
    let db = &app.store().db;
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE user_mfa SET consecutive_failures = 98 WHERE user_id = $1",
        [user_id.clone().into()],
    ))
    .await
    .unwrap();
    let fields = vec![
        ("csrf".to_owned(), csrf(&page)),
        ("code".to_owned(), "1111-2222-3333".to_owned()),
    ];
    let pages = burst(&browser, "/oauth2/signin/bypass", fields, 5).await;
    assert_eq!(count(&pages, "That bypass code is not right"), 2);
    assert_eq!(count(&pages, "Ask your help desk to reset"), 3);
    assert_eq!(streak(&app, &user_id).await, 100, "never past the cap");
    app.stop().await;
}

#[tokio::test]
async fn forty_parallel_wrong_totp_codes_are_evaluated_at_most_five_times() {
    let app = TestApp::spawn().await;
    let (browser, page, user_id, secret) = at_second_factor(&app, "burst.totp").await;
    let now = now_secs();
    let current: Vec<String> = (0..3)
        .map(|i| bypass_idp::domain::totp::code_at(&secret, now - 30 + i * 30).unwrap())
        .collect();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !current.contains(c))
        .unwrap();
    let fields = vec![("csrf".to_owned(), csrf(&page)), ("code".to_owned(), wrong)];
    let pages = burst(&browser, "/oauth2/signin/totp", fields, 40).await;
    assert_eq!(count(&pages, "That code is not right"), 5);
    assert_eq!(count(&pages, "Try again in 15 minutes"), 35);
    assert_eq!(streak(&app, &user_id).await, 5);
    app.stop().await;
}

#[tokio::test]
async fn forty_parallel_wrong_passwords_are_evaluated_at_most_ten_times() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("burst.password")).await;
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    browser.get(&started.auth_url).await;
    let form = browser.get("/oauth2/signin").await;
    let fields = vec![
        ("csrf".to_owned(), csrf(&form)),
        ("username".to_owned(), "burst.password".to_owned()),
        ("password".to_owned(), "wrong guess".to_owned()),
    ];
    let pages = burst(&browser, "/oauth2/signin/password", fields, 40).await;
    assert_eq!(count(&pages, "Wrong username or password"), 10);
    assert_eq!(count(&pages, "Try again in 15 minutes"), 30);
    app.stop().await;
}

async fn token_with_secret(app: &TestApp, client: &str, secret: &str, xff: Option<&str>) -> u16 {
    let mut request = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    if let Some(xff) = xff {
        request = request.header("X-Forwarded-For", xff);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn client_secrets_limit_parallel_guesses_per_address_and_ignore_secretless_requests() {
    let app = TestApp::spawn_with(&[("BYPASS_IDP_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let admin_id = app.admin_id.clone();
    // Requests that present no secret cannot guess one, so they never lock the client out.
    for _ in 0..20 {
        let response = app
            .http
            .post(app.url("/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &admin_id),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    // A busy client asking for thirty tokens at once is not mistaken for a guesser.
    let busy = (0..30).map(|_| token_with_secret(&app, &admin_id, &app.admin_secret, None));
    let statuses = join_all(busy).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Thirty wrong secrets at once from one address: ten are checked, twenty refused.
    let guesses = (0..30).map(|i| {
        let app = &app;
        let admin_id = &admin_id;
        async move {
            token_with_secret(app, admin_id, &format!("guess-{i}"), Some("198.51.100.1")).await
        }
    });
    let statuses = join_all(guesses).await;
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 20);
    // That address is locked out even with the right secret; the client's real address is not.
    assert_eq!(
        token_with_secret(&app, &admin_id, &app.admin_secret, Some("198.51.100.1")).await,
        429
    );
    assert_eq!(
        token_with_secret(&app, &admin_id, &app.admin_secret, Some("198.51.100.2")).await,
        200
    );
    app.stop().await;
}

/// Sends a chunked body of up to `total` bytes to `path` over a raw socket and returns the
/// status line and how many bytes were written before the server answered.
async fn stream_body(
    app: &TestApp,
    path: &str,
    content_type: &str,
    bearer: &str,
    total: usize,
) -> (String, usize) {
    let addr = app.base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Authorization: Bearer {bearer}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let writer_task = tokio::spawn(async move {
        let chunk = vec![b'a'; 64 * 1024];
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk,
            b"\r\n".to_vec(),
        ]
        .concat();
        let mut written = 0usize;
        while written < total {
            match tokio::time::timeout(Duration::from_secs(5), writer.write_all(&framed)).await {
                Ok(Ok(())) => written += framed.len(),
                // The server stopped reading (and answered, or closed the connection).
                _ => break,
            }
        }
        written
    });
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    if response.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server answered within a minute");
    drop(reader);
    let written = writer_task.await.unwrap();
    let text = String::from_utf8_lossy(&response);
    (text.lines().next().unwrap_or_default().to_owned(), written)
}

#[tokio::test]
async fn a_256_mib_body_is_refused_while_it_streams() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    const TOTAL: usize = 256 * 1024 * 1024;
    for (path, content_type) in [
        (
            "/oauth2/signin/password",
            "application/x-www-form-urlencoded",
        ),
        ("/oauth2/token", "application/x-www-form-urlencoded"),
        ("/scim/v2/Users", "application/scim+json"),
    ] {
        let (status, written) = stream_body(&app, path, content_type, &admin, TOTAL).await;
        assert!(status.contains(" 413 "), "{path}: {status}");
        // What was written before the answer is the limit plus socket buffers, nowhere
        // near the 256 MiB on offer.
        assert!(written < 32 * 1024 * 1024, "{path}: {written} bytes read");
    }
    // A declared length over the limit is refused before anything is read.
    let response = app
        .http
        .post(app.url("/oauth2/signin/password"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("a".repeat(9 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // Fields are capped before they reach a counter, a flow or a log line.
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    browser.get(&started.auth_url).await;
    let form = browser.get("/oauth2/signin").await;
    let long_name = "u".repeat(300);
    let page = browser
        .post(
            "/oauth2/signin/password",
            &[
                ("csrf", &csrf(&form)),
                ("username", &long_name),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("longer than 256"), "{}", page.body);
    app.stop().await;
}

#[tokio::test]
async fn authorization_requests_cannot_fill_memory() {
    let app = TestApp::spawn_with(&[("BYPASS_IDP_MAX_FLOWS_PER_ADDRESS", "5")]).await;
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    for _ in 0..5 {
        let page = Browser::new(&app).get(&started.auth_url).await;
        assert_eq!(page.status, 303);
        assert_eq!(page.location.as_deref(), Some("/oauth2/signin"));
    }
    let response = app.http.get(&started.auth_url).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    // A query over 16 KiB is refused outright (an id_token_hint may take 8 KiB of it); a
    // parameter over its cap is an error sent back to the client without echoing the
    // oversized value.
    let huge = format!("{}&x={}", started.auth_url, "a".repeat(17_000));
    assert_eq!(app.http.get(&huge).send().await.unwrap().status(), 400);
    let app2 = TestApp::spawn().await;
    let rp2 = register(&app2, false, false).await;
    let started2 = start(&app2, &rp2).await;
    let long_nonce = started2
        .auth_url
        .replace("nonce=", &format!("nonce={}", "n".repeat(600)));
    let page = Browser::new(&app2).get(&long_nonce).await;
    assert_eq!(page.status, 303);
    let location = page.location.unwrap();
    let params = query(&location);
    assert_eq!(params["error"], "invalid_request");
    assert!(params["error_description"].contains("nonce"));
    app.stop().await;
    app2.stop().await;
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    for (trusted, expected_ip) in [(None, "127.0.0.1"), (Some("127.0.0.1/32"), "203.0.113.9")] {
        let extra: Vec<(&str, &str)> = trusted
            .map(|t| vec![("BYPASS_IDP_TRUSTED_PROXIES", t)])
            .unwrap_or_default();
        let app = TestApp::spawn_with(&extra).await;
        let admin = app.admin_token(None).await;
        let (user_id, _) = enrolled_user(&app, &admin, "forwarded").await;
        let response = app
            .http
            .post(app.url(&format!("/scim/v2/Users/{user_id}/bypassCodes")))
            .bearer_auth(&admin)
            .header("Content-Type", "application/scim+json")
            .header("X-Forwarded-For", "198.51.100.77, 203.0.113.9")
            // The proxies write X-Forwarded-For; a client's own Forwarded is never read.
            .header("Forwarded", "for=192.0.2.200")
            .body(json!({"neverExpires": true}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.unwrap();
        let (_, events, _) = app
            .scim(
                Method::GET,
                &format!(
                    "/Users/{user_id}/bypassCodes/{}/auditEvents",
                    created["id"].as_str().unwrap()
                ),
                &admin,
                None,
            )
            .await;
        let generated = events["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "generated")
            .unwrap()
            .clone();
        assert_eq!(
            generated["ip"], expected_ip,
            "trusted {trusted:?}: {generated}"
        );
        app.stop().await;
    }
}

async fn password_page(app: &TestApp, rp: &Rp, user: &str, password: &str, xff: &str) -> Page {
    let started = start(app, rp).await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(
            [(
                reqwest::header::HeaderName::from_static("x-forwarded-for"),
                reqwest::header::HeaderValue::from_str(xff).unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let browser = Browser {
        http,
        base: app.base.clone(),
    };
    password_step(&browser, &started.auth_url, user, password).await
}

#[tokio::test]
async fn wrong_passwords_from_one_address_do_not_lock_the_user_out_elsewhere() {
    let app = TestApp::spawn_with(&[("BYPASS_IDP_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("victim")).await;
    let rp = register(&app, false, false).await;
    for i in 0..10 {
        let page = password_page(&app, &rp, "victim", &format!("guess {i}"), "198.51.100.66").await;
        assert!(page.body.contains("Wrong username or password"), "{i}");
    }
    let locked = password_page(&app, &rp, "victim", PASSWORD, "198.51.100.66").await;
    assert!(locked.body.contains("Try again in"), "{}", locked.body);
    // The user, elsewhere, is still checked and signs in.
    let wrong = password_page(&app, &rp, "victim", "typo", "192.0.2.10").await;
    assert!(wrong.body.contains("Wrong username or password"));
    let right = password_page(&app, &rp, "victim", PASSWORD, "192.0.2.10").await;
    assert_eq!(right.status, 303, "{}", right.body);
    assert!(right.location.unwrap().starts_with(&rp.redirect));
    app.stop().await;
}

#[tokio::test]
async fn revoking_a_leaked_code_and_resetting_mfa_end_the_sessions_they_opened() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (user_id, secret) = enrolled_user(&app, &admin, "leaked").await;
    let rp = register(&app, false, false).await;
    let leaked = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "unlimitedUsage": true}),
    )
    .await;
    let other = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await;
    let attacker = sign_in(
        &app,
        &rp,
        "leaked",
        Some(("/oauth2/signin/bypass", leaked["code"].as_str().unwrap())),
    )
    .await;
    let by_other = sign_in(
        &app,
        &rp,
        "leaked",
        Some(("/oauth2/signin/bypass", other["code"].as_str().unwrap())),
    )
    .await;
    let totp = bypass_idp::domain::totp::code_at(&secret, now_secs() + 30).unwrap();
    let owner = sign_in(&app, &rp, "leaked", Some(("/oauth2/signin/totp", &totp))).await;
    let attacker_token = attacker["access_token"].as_str().unwrap();
    let (status, _, _) = app
        .scim(Method::GET, "/Me/bypassCodes", attacker_token, None)
        .await;
    assert_eq!(status, 200);

    // The help desk revokes the leaked code: the attacker's session ends, no other does.
    let (status, _, _) = app
        .scim(
            Method::DELETE,
            &format!(
                "/Users/{user_id}/bypassCodes/{}",
                leaked["id"].as_str().unwrap()
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = refresh(&app, &rp, &attacker).await;
    assert_invalid_grant(status, &body, "refused");
    let (status, _, _) = app
        .scim(Method::GET, "/Me/bypassCodes", attacker_token, None)
        .await;
    assert_eq!(status, 401);
    let userinfo = app
        .http
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(attacker_token)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 401);
    let (status, by_other) = refresh(&app, &rp, &by_other).await;
    assert_eq!(status, 200, "another code's session survives: {by_other}");
    let (status, owner) = refresh(&app, &rp, &owner).await;
    assert_eq!(status, 200, "the TOTP session survives: {owner}");

    // Resetting 2-step verification ends every session of the user.
    let (status, _, _) = app
        .scim(
            Method::DELETE,
            &format!("/Users/{user_id}/totp"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    for tokens in [&by_other, &owner] {
        let (status, body) = refresh(&app, &rp, tokens).await;
        assert_invalid_grant(status, &body, "refused");
        let (status, _, _) = app
            .scim(
                Method::GET,
                "/Me/bypassCodes",
                tokens["access_token"].as_str().unwrap(),
                None,
            )
            .await;
        assert_eq!(status, 401);
    }
    app.stop().await;
}

#[tokio::test]
async fn password_changes_deactivation_and_deletion_end_every_session() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let patch = |ops: Value| json!({"schemas": [common::PATCH_SCHEMA], "Operations": ops});
    let changes: Vec<(&str, Option<Value>)> = vec![
        (
            "new.password",
            Some(patch(
                json!([{"op": "replace", "path": "password", "value": "a new long password"}]),
            )),
        ),
        (
            "deactivated",
            Some(patch(
                json!([{"op": "replace", "path": "active", "value": false}]),
            )),
        ),
        ("deleted", None),
        (
            "renamed",
            Some(patch(
                json!([{"op": "replace", "path": "displayName", "value": "Still Here"}]),
            )),
        ),
    ];
    for (user, change) in changes {
        let created = app.create_user(&admin, user_body(user)).await;
        let id = created["id"].as_str().unwrap();
        let tokens = sign_in(&app, &rp, user, None).await;
        let (status, _, _) = match &change {
            Some(body) => {
                app.scim(
                    Method::PATCH,
                    &format!("/Users/{id}"),
                    &admin,
                    Some(body.clone()),
                )
                .await
            }
            None => {
                app.scim(Method::DELETE, &format!("/Users/{id}"), &admin, None)
                    .await
            }
        };
        assert!(status == 200 || status == 204, "{user}: {status}");
        let (status, body) = refresh(&app, &rp, &tokens).await;
        if user == "renamed" {
            assert_eq!(status, 200, "an unrelated change ends nothing: {body}");
        } else {
            assert_invalid_grant(status, &body, user);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn refresh_tokens_stop_at_the_absolute_lifetime_however_often_rotated() {
    let app = TestApp::spawn_with(&[("BYPASS_IDP_REFRESH_TOKEN_LIFETIME_SECONDS", "4")]).await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("short.lived")).await;
    let rp = register(&app, false, false).await;
    let tokens = sign_in(&app, &rp, "short.lived", None).await;
    let (status, rotated) = refresh(&app, &rp, &tokens).await;
    assert_eq!(status, 200, "{rotated}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, body) = refresh(&app, &rp, &rotated).await;
    assert_invalid_grant(status, &body, "refused");
    app.stop().await;
}

#[tokio::test]
async fn the_policy_needs_its_own_scope() {
    let app = TestApp::spawn().await;
    let help_desk = app.admin_token(Some("bypass_codes:manage")).await;
    let security = app.admin_token(Some("bypass_codes:settings")).await;
    let (status, policy, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &help_desk, None)
        .await;
    assert_eq!(status, 200, "the help desk reads its limits");
    let mut lifted = policy.clone();
    lifted.as_object_mut().unwrap().remove("helpDeskMaxUsage");
    lifted["helpDeskMaxUsageUnlimited"] = json!(true);
    let (status, body, _) = app
        .scim(
            Method::PUT,
            "/BypassCodeSettings",
            &help_desk,
            Some(lifted.clone()),
        )
        .await;
    common::assert_scim_error(status, &body, 403, None);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("bypass_codes:settings")
    );
    let (status, body, _) = app
        .scim(Method::PUT, "/BypassCodeSettings", &security, Some(lifted))
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_form_sent_twice_at_once_yields_one_authorization_code() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &admin, "double.submit").await;
    let code = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "unlimitedUsage": true}),
    )
    .await;
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    password_step(&browser, &started.auth_url, "double.submit", PASSWORD).await;
    let page = browser.get("/oauth2/signin?method=bypass").await;
    let fields = vec![
        ("csrf".to_owned(), csrf(&page)),
        ("code".to_owned(), code["code"].as_str().unwrap().to_owned()),
    ];
    // Four: under the limit of five attempts in flight, so every one is checked and passes,
    // and each shows the offer to set up a new authenticator app: none ends the flow.
    let pages = burst(&browser, "/oauth2/signin/bypass", fields, 4).await;
    let offer = "action=\"/oauth2/signin/replace\"";
    let offers = pages
        .iter()
        .filter(|p| p.status == 200 && p.body.contains(offer))
        .count();
    assert_eq!(offers, 4, "every one is accepted");
    // "Not now", sent four times at once, goes on to the client once.
    let fields = vec![
        ("csrf".to_owned(), csrf(&pages[0])),
        ("choice".to_owned(), "later".to_owned()),
    ];
    let pages = burst(&browser, "/oauth2/signin/replace", fields, 4).await;
    let redirects: Vec<&Page> = pages.iter().filter(|p| p.status == 303).collect();
    assert_eq!(redirects.len(), 1, "exactly one code");
    assert!(
        redirects[0]
            .location
            .as_ref()
            .unwrap()
            .starts_with(&rp.redirect)
    );
    assert_eq!(count(&pages, "Sign-in expired"), 3);
    app.stop().await;
}

fn flow_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("bidp_flow="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .filter(|v| !v.is_empty())
}

#[tokio::test]
async fn the_flow_gets_a_new_id_after_the_password() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    enrolled_user(&app, &admin, "fixated").await;
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let started_response = app.http.get(&started.auth_url).send().await.unwrap();
    let planted = flow_cookie(&started_response).expect("a flow cookie");
    let form = app
        .http
        .get(app.url("/oauth2/signin"))
        .header("Cookie", format!("bidp_flow={planted}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let response = app
        .http
        .post(app.url("/oauth2/signin/password"))
        .header("Cookie", format!("bidp_flow={planted}"))
        .form(&[
            ("csrf", csrf_of(&form).as_str()),
            ("username", "fixated"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let rotated = flow_cookie(&response).expect("a new flow cookie");
    assert_ne!(rotated, planted);
    assert!(response.text().await.unwrap().contains("Use a bypass code"));
    // Whoever planted the first id has nothing now.
    let old = app
        .http
        .get(app.url("/oauth2/signin"))
        .header("Cookie", format!("bidp_flow={planted}"))
        .send()
        .await
        .unwrap();
    assert!(old.text().await.unwrap().contains("Sign-in expired"));
    let new = app
        .http
        .get(app.url("/oauth2/signin"))
        .header("Cookie", format!("bidp_flow={rotated}"))
        .send()
        .await
        .unwrap();
    assert!(new.text().await.unwrap().contains("Use a bypass code"));
    app.stop().await;
}

#[tokio::test]
async fn codes_are_emailed_to_the_primary_or_only_address() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let mut body = user_body("two.addresses");
    body["emails"] = json!([
        {"value": "a@example.com", "type": "work"},
        {"value": "b@example.com", "type": "home"}
    ]);
    let created = app.create_user(&admin, body).await;
    let id = created["id"].as_str().unwrap();
    common::enroll_totp(&app, &admin, id).await;
    let (status, body, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{id}/bypassCodes"),
            &admin,
            Some(json!({"neverExpires": true, "notify": ["email"]})),
        )
        .await;
    common::assert_scim_error(status, &body, 400, None);
    assert!(body["detail"].as_str().unwrap().contains("none is primary"));
    let (_, list, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{id}/bypassCodes"),
            &admin,
            None,
        )
        .await;
    assert_eq!(list["totalResults"], 0, "no code was made");

    let mut body = user_body("one.address");
    body["emails"] = json!([{"value": "only@example.com", "type": "work"}]);
    let created = app.create_user(&admin, body).await;
    let id = created["id"].as_str().unwrap();
    common::enroll_totp(&app, &admin, id).await;
    let code = create_code(
        &app,
        &admin,
        id,
        json!({"neverExpires": true, "notify": ["email"]}),
    )
    .await;
    assert_eq!(code["notifications"][0]["status"], "sent", "{code}");
    let outbox = app.data_dir.path().join("outbox");
    let mail = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        std::fs::read_to_string(&mail)
            .unwrap()
            .contains("only@example.com")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&mail), 0o600, "outbox files hold codes");
        assert_eq!(mode(&outbox), 0o700);
        if common::backend_label() == "sqlite" {
            let db = app.data_dir.path().join("bypass-idp.sqlite");
            assert_eq!(mode(&db), 0o600);
            let wal = app.data_dir.path().join("bypass-idp.sqlite-wal");
            if wal.exists() {
                assert_eq!(mode(&wal), 0o600);
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_signing_key_is_sealed_when_an_encryption_key_is_set() {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let app = TestApp::spawn_with(&[("BYPASS_IDP_ENCRYPTION_KEY", &key)]).await;
    let rows = app.store().signing_keys().await.unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert!(row.private_pem.starts_with("v1:"), "sealed");
        assert!(!row.private_pem.contains("PRIVATE KEY"));
    }
    // It still signs: a token is issued and accepted.
    let token = app.admin_token(None).await;
    let (status, _, _) = app.scim(Method::GET, "/Users", &token, None).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn sign_ins_in_progress_do_not_survive_revocation() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;

    // An authorization code issued before a password change is refused after it.
    let created = app.create_user(&admin, user_body("in.progress")).await;
    let id = created["id"].as_str().unwrap();
    let (started, code) = code_for_plain_user(&app, &rp, "in.progress").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let change = json!({"schemas": [common::PATCH_SCHEMA], "Operations": [
        {"op": "replace", "path": "password", "value": "another long password"}]});
    let (status, _, _) = app
        .scim(Method::PATCH, &format!("/Users/{id}"), &admin, Some(change))
        .await;
    assert_eq!(status, 200);
    let (status, body) = redeem(&app, &rp, &code, started.verifier.secret()).await;
    assert_invalid_grant(status, &body, "refused");

    // So is one whose bypass code was revoked before it was redeemed.
    let (user_id, _) = enrolled_user(&app, &admin, "revoked.midway").await;
    let bypass = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    password_step(&browser, &started.auth_url, "revoked.midway", PASSWORD).await;
    let page = browser.get("/oauth2/signin?method=bypass").await;
    let done = browser
        .post(
            "/oauth2/signin/bypass",
            &[
                ("csrf", &csrf(&page)),
                ("code", bypass["code"].as_str().unwrap()),
            ],
        )
        .await;
    let done = not_now(&browser, done).await;
    let code = code_from(&done, &app, &rp, &started.state);
    let path = format!(
        "/Users/{user_id}/bypassCodes/{}",
        bypass["id"].as_str().unwrap()
    );
    let (status, _, _) = app.scim(Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, 204);
    let (status, body) = redeem(&app, &rp, &code, started.verifier.secret()).await;
    assert_invalid_grant(status, &body, "refused");
    app.stop().await;
}

#[tokio::test]
async fn one_address_cannot_mint_counters_for_endless_client_ids() {
    let app = TestApp::spawn_with(&[("BYPASS_IDP_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut statuses = Vec::new();
    for i in 0..110 {
        statuses.push(
            token_with_secret(
                &app,
                &format!("made-up-{i}"),
                "secret",
                Some("198.51.100.3"),
            )
            .await,
        );
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 100);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 10);
    // Another address is unaffected.
    assert_eq!(
        token_with_secret(&app, &app.admin_id, &app.admin_secret, Some("198.51.100.4")).await,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn an_untrusted_peer_cannot_dodge_a_limit_by_writing_forwarding_headers() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("spoofer.target")).await;
    let rp = register(&app, false, false).await;
    for i in 0..10 {
        let page = password_page(
            &app,
            &rp,
            "spoofer.target",
            "guess",
            &format!("198.51.100.{i}"),
        )
        .await;
        assert!(page.body.contains("Wrong username or password"), "{i}");
    }
    let page = password_page(&app, &rp, "spoofer.target", "guess", "192.0.2.99").await;
    assert!(
        page.body.contains("Try again in"),
        "a new X-Forwarded-For is not a new address"
    );
    app.stop().await;
}

#[tokio::test]
async fn removing_a_client_ends_its_user_tokens_at_userinfo_too() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (_, secret) = enrolled_user(&app, &admin, "removed.rp").await;
    let rp = register(&app, false, true).await;
    let totp = bypass_idp::domain::totp::code_at(&secret, now_secs() + 30).unwrap();
    let tokens = sign_in(
        &app,
        &rp,
        "removed.rp",
        Some(("/oauth2/signin/totp", &totp)),
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let userinfo = || {
        app.http
            .get(app.url("/oauth2/userinfo"))
            .bearer_auth(access)
            .send()
    };
    assert_eq!(userinfo().await.unwrap().status(), 200);
    assert!(
        app.store()
            .remove_client(&bypass_idp::domain::ids::ClientId::new(&rp.client_id))
            .await
            .unwrap()
    );
    let response = userinfo().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    // Registering the id again does not bring the client's sign-ins back.
    bypass_idp::service::oauth::clients::register(
        app.store(),
        bypass_idp::service::oauth::clients::ClientSpec {
            client_id: Some(rp.client_id.clone()),
            redirect_uris: vec![rp.redirect.clone()],
            scopes: "openid profile email offline_access".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            public: false,
            require_mfa: true,
            allow_self_service_codes: false,
            refuses_bypass_codes: false,
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
        },
    )
    .await
    .map_err(|e| e.to_string())
    .unwrap();
    assert_eq!(userinfo().await.unwrap().status(), 401);
    app.stop().await;
}

/// Client_credentials lookups are remembered for a few seconds (the token endpoint's speed);
/// a client removed and registered again under the same id with a new secret (how a secret
/// is replaced) must still not honour the old secret inside that window.
#[tokio::test]
async fn a_client_registered_again_does_not_honour_its_old_secret() {
    use bypass_idp::service::oauth::clients::{self, ClientSpec};
    let server = TestApp::spawn().await;
    let app = &server;
    let spec = ClientSpec {
        client_id: Some("rotated".into()),
        redirect_uris: vec![],
        scopes: "scim:users".into(),
        grant_types: vec!["client_credentials".into()],
        public: false,
        require_mfa: false,
        allow_self_service_codes: false,
        refuses_bypass_codes: false,
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
    };
    let register = || async {
        clients::register(app.store(), spec.clone())
            .await
            .map_err(|e| e.to_string())
            .unwrap()
            .secret
            .unwrap()
            .expose()
            .to_owned()
    };
    let token = async |secret: String| {
        let response = app
            .http
            .post(app.url("/oauth2/token"))
            .basic_auth("rotated", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (
            status,
            body["access_token"].as_str().unwrap_or("").to_owned(),
        )
    };
    let users = async |token: String| {
        app.scim(Method::GET, "/Users?count=1", &token, None)
            .await
            .0
    };
    let old_secret = register().await;
    let (status, old_token) = token(old_secret.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(users(old_token.clone()).await, 200);
    let id = bypass_idp::domain::ids::ClientId::new("rotated");
    assert!(app.store().remove_client(&id).await.unwrap());
    let new_secret = register().await;
    // The token minted before is refused at once; so is anything the old secret still gets.
    assert_eq!(users(old_token).await, 401);
    let (status, late_token) = token(old_secret).await;
    if status == 200 {
        assert_eq!(users(late_token).await, 401);
    } else {
        assert_eq!(status, 401);
    }
    let (status, new_token) = token(new_secret).await;
    assert_eq!(status, 200);
    assert_eq!(users(new_token).await, 200);
    server.stop().await;
}

/// A NUL character, which PostgreSQL cannot store, in every kind of input: refused with
/// 400 (or not found), never a 500. Found by schemathesis on PostgreSQL.
#[tokio::test]
async fn nul_characters_are_refused_not_failed_on() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let group = |extra: Value| {
        let mut body =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for body in [
        group(json!({"displayName": "a\u{0}b"})),
        group(json!({"externalId": "x\u{0}"})),
        group(json!({"members": [{"value": "u\u{0}"}]})),
    ] {
        let (status, answer, _) = app.scim(Method::POST, "/Groups", &token, Some(body)).await;
        common::assert_scim_error(status, &answer, 400, Some("invalidValue"));
    }
    for path in [
        "/Users/a%00b",
        "/Groups/a%00b",
        "/Users/a%00/totp",
        "/Users/a%00/bypassCodes/c%00",
    ] {
        let (status, answer, _) = app.scim(Method::GET, path, &token, None).await;
        assert!(status == 400 || status == 404, "{path}: {status} {answer}");
    }
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "a\u{0}"),
        ("client_secret", "b"),
    ];
    let answer = app
        .http
        .post(app.url("/oauth2/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    assert!(status == 400 || status == 401, "token: {status}");
    let answer = app
        .http
        .get(app.url("/oauth2/authorize?client_id=a%00&response_type=code&redirect_uri=http://x"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400, "authorize");
    app.stop().await;
}
