//! The authorization-code flow with 2-step verification, driven by the `openidconnect` crate
//! as a real relying party and by a cookie-keeping HTTP client as the browser.

mod common;

use common::rp::*;
use common::{TestApp, create_code, enrolled_user, user_body};
use serde_json::json;

#[tokio::test]
async fn sign_in_with_totp_then_refresh_and_userinfo() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (_, secret) = enrolled_user(&app, &token, "totp.signin").await;
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    let page = password_step(&browser, &started.auth_url, "TOTP.SIGNIN", PASSWORD).await;
    assert!(page.body.contains("Use a bypass code"), "{}", page.body);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Enrolment used the current step, so the next one is fresh.
    let code = bypass_idp::domain::totp::code_at(&secret, now + 30).unwrap();
    let wrong = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", "000000")],
        )
        .await;
    assert!(wrong.body.contains("not right"), "{}", wrong.body);
    let done = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &code)],
        )
        .await;
    let auth_code = code_from(&done, &app, &rp, &started.state);
    exchange_and_check(started, auth_code, &["pwd", "mfa", "otp"]).await;

    // The same TOTP code cannot sign in again.
    let again = start(&app, &rp).await;
    let browser = Browser::new(&app);
    let page = password_step(&browser, &again.auth_url, "totp.signin", PASSWORD).await;
    let replay = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &code)],
        )
        .await;
    assert_eq!(replay.status, 200);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    app.stop().await;
}

#[tokio::test]
async fn sign_in_with_a_bypass_code_tells_the_relying_party() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "lost.phone").await;
    let bypass = create_code(&app, &token, &user_id, json!({"expiresIn": {"hours": 1}})).await;
    let typed = bypass["code"].as_str().unwrap().replace('-', " ");
    let rp = register(&app, true, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    password_step(&browser, &started.auth_url, "lost.phone", PASSWORD).await;
    let form = browser.get("/oauth2/signin?method=bypass").await;
    assert!(form.body.contains("Bypass code"), "{}", form.body);
    let done = browser
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&form)), ("code", &typed)],
        )
        .await;
    let done = not_now(&browser, done).await;
    let auth_code = code_from(&done, &app, &rp, &started.state);
    let (subject, _) = exchange_and_check(started, auth_code, &["pwd", "mfa", "bypass_code"]).await;
    assert_eq!(subject, user_id);

    // The once-code is used up now: a second sign-in is told so.
    let again = start(&app, &rp).await;
    let browser = Browser::new(&app);
    password_step(&browser, &again.auth_url, "lost.phone", PASSWORD).await;
    let form = browser.get("/oauth2/signin?method=bypass").await;
    let used = browser
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&form)), ("code", &typed)],
        )
        .await;
    assert!(used.body.contains("used up"), "{}", used.body);
    app.stop().await;
}

#[tokio::test]
async fn bypass_code_failures_say_why_and_lock_after_five() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "unlucky").await;
    let revoked = create_code(&app, &token, &user_id, json!({"neverExpires": true})).await;
    app.scim(
        reqwest::Method::DELETE,
        &format!(
            "/Users/{user_id}/bypassCodes/{}",
            revoked["id"].as_str().unwrap()
        ),
        &token,
        None,
    )
    .await;
    let expired = create_code(&app, &token, &user_id, json!({"expiresIn": {"minutes": 5}})).await;
    use sea_orm::ConnectionTrait;
    app.store()
        .db
        .execute_unprepared(&format!(
            "UPDATE bypass_codes SET expires_at = created_at WHERE id = '{}'",
            expired["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    let good = create_code(&app, &token, &user_id, json!({"neverExpires": true})).await;
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    password_step(&browser, &started.auth_url, "unlucky", PASSWORD).await;
    let form = browser.get("/oauth2/signin?method=bypass").await;
    let token_field = csrf(&form);
    for (code, says) in [
        ("1111-2222-3333", "not right"),
        (revoked["code"].as_str().unwrap(), "revoked"),
        (expired["code"].as_str().unwrap(), "expired"),
        ("1111-2222-3334", "not right"),
        ("1111-2222-3335", "not right"),
        (good["code"].as_str().unwrap(), "Try again in 15 minutes"),
    ] {
        let page = browser
            .post(
                "/oauth2/signin/bypass",
                &[("csrf", &token_field), ("code", code)],
            )
            .await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains(says), "{code}: {}", page.body);
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_passwords_do_not_tell_which_usernames_exist() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    app.create_user(&token, user_body("exists")).await;
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    let wrong = password_step(&browser, &started.auth_url, "exists", "not the password").await;
    let browser = Browser::new(&app);
    let unknown = password_step(
        &browser,
        &started.auth_url,
        "nobody.here",
        "not the password",
    )
    .await;
    assert!(wrong.body.contains("Wrong username or password"));
    let strip = |body: &str| body.replace(&csrf_of(body), "");
    assert_eq!(
        strip(&wrong.body),
        strip(&unknown.body).replace("nobody.here", "exists")
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_factor_the_password_is_enough_unless_mfa_is_required() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    app.create_user(&token, user_body("plain.user")).await;
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    let done = password_step(&browser, &started.auth_url, "plain.user", PASSWORD).await;
    let code = code_from(&done, &app, &rp, &started.state);
    exchange_and_check(started, code, &["pwd"]).await;

    // A client that requires MFA makes the user enrol first.
    let strict = register(&app, false, true).await;
    let started = start(&app, &strict).await;
    let browser = Browser::new(&app);
    let enroll = password_step(&browser, &started.auth_url, "plain.user", PASSWORD).await;
    assert!(
        enroll.body.contains("Set up 2-Step Verification"),
        "{}",
        enroll.body
    );
    let (secret, now, done) = enrol(&browser, &enroll).await;
    // Set up during this sign-in, the app proves nothing about it: no code for a client that
    // requires 2-step verification, but a page that asks to sign in again.
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Sign in again"), "{}", done.body);
    assert!(done.location.is_none());
    let again = browser
        .post(
            "/oauth2/signin/password",
            &[
                ("csrf", &csrf(&done)),
                ("username", "plain.user"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(again.body.contains("authenticator app"), "{}", again.body);
    let next = bypass_idp::domain::totp::code_at(&secret, now + 30).unwrap();
    let done = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&again)), ("code", &next)],
        )
        .await;
    let auth_code = code_from(&done, &app, &strict, &started.state);
    exchange_and_check(started, auth_code, &["pwd", "mfa", "otp"]).await;
    app.stop().await;
}

/// Sets up an authenticator on the enrolment page shown: its secret, the time its code was
/// made for, and the page that follows.
async fn enrol(browser: &Browser, enroll: &Page) -> (Vec<u8>, u64, Page) {
    let marker = "id=\"secret\">";
    let start_key = enroll.body.find(marker).unwrap() + marker.len();
    let key = &enroll.body[start_key..start_key + enroll.body[start_key..].find('<').unwrap()];
    let secret = bypass_idp::domain::totp::from_base32(key).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = bypass_idp::domain::totp::code_at(&secret, now).unwrap();
    let done = browser
        .post(
            "/oauth2/signin/enroll",
            &[("csrf", &csrf(enroll)), ("code", &code)],
        )
        .await;
    (secret, now, done)
}

#[tokio::test]
async fn enrolling_during_a_sign_in_claims_only_the_password() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let mut body = user_body("must.enrol");
    body["schemas"].as_array_mut().unwrap().push(json!(
        "urn:bypass-idp:params:scim:schemas:extension:mfa:2.0:User"
    ));
    body["urn:bypass-idp:params:scim:schemas:extension:mfa:2.0:User"] =
        json!({"mfaRequired": true});
    let (status, created, _) = app
        .scim(reqwest::Method::POST, "/Users", &token, Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    // The user must enrol, at a client that does not itself require 2-step verification.
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    let enroll = password_step(&browser, &started.auth_url, "must.enrol", PASSWORD).await;
    assert!(
        enroll.body.contains("Set up 2-Step Verification"),
        "{}",
        enroll.body
    );
    let (_, _, done) = enrol(&browser, &enroll).await;
    let auth_code = code_from(&done, &app, &rp, &started.state);
    // amr ["pwd"] and the password acr: a password alone must not pass acr_values=…:mfa.
    exchange_and_check(started, auth_code, &["pwd"]).await;
    app.stop().await;
}

#[tokio::test]
async fn codes_are_single_use_bound_to_pkce_and_replay_revokes() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    app.create_user(&token, user_body("replayer")).await;
    let rp = register(&app, false, false).await;

    let (started, code) = code_for_plain_user(&app, &rp, "replayer").await;
    let (status, body) = token_post(
        &app,
        &rp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &rp.redirect),
            (
                "code_verifier",
                "wrong-verifier-wrong-verifier-wrong-verifier-x",
            ),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    // Another client holding the leaked code cannot burn it either.
    let other = register(&app, false, false).await;
    let (status, body) = token_post(
        &app,
        &other,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &rp.redirect),
            ("code_verifier", started.verifier.secret()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (status, body) = token_post(
        &app,
        &rp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &rp.redirect),
            ("code_verifier", started.verifier.secret()),
        ],
    )
    .await;
    assert_eq!(
        status, 200,
        "a redemption refused for its client or verifier leaves the code to its client: {body}"
    );

    let (started, code) = code_for_plain_user(&app, &rp, "replayer").await;
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", rp.redirect.as_str()),
        ("code_verifier", started.verifier.secret().as_str()),
    ];
    let (status, first) = token_post(&app, &rp, &redeem).await;
    assert_eq!(status, 200, "{first}");
    let userinfo = |token: String| {
        let request = app.http.get(app.url("/oauth2/userinfo")).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let access = first["access_token"].as_str().unwrap().to_owned();
    // A stranger replaying the used code (another client, or no verifier) is refused and
    // ends nothing: only the client it was issued to can have it revoked.
    let stranger = register(&app, false, false).await;
    let (status, body) = token_post(&app, &stranger, &redeem).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let without_verifier = &redeem[..3];
    let (status, _) = token_post(&app, &rp, without_verifier).await;
    assert_eq!(status, 400);
    assert_eq!(userinfo(access.clone()).await, 200, "the sign-in stands");
    let (status, replay) = token_post(&app, &rp, &redeem).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        replay["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    // Tokens from the replayed code are dead.
    let (status, body) = token_post(
        &app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let info = app
        .http
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(first["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401);

    // A refresh asking for a wider scope is refused, and the refresh token still works.
    let (started, code) = code_for_plain_user(&app, &rp, "replayer").await;
    let (_, tokens) = token_post(
        &app,
        &rp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &rp.redirect),
            ("code_verifier", started.verifier.secret()),
        ],
    )
    .await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = token_post(
        &app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("scope", "openid scim:users"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, body) = token_post(
        &app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await;
    assert_eq!(status, 200, "a refused refresh spends nothing: {body}");

    // A refresh token used twice revokes the sign-in.
    let (started, code) = code_for_plain_user(&app, &rp, "replayer").await;
    let (_, tokens) = token_post(
        &app,
        &rp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &rp.redirect),
            ("code_verifier", started.verifier.secret()),
        ],
    )
    .await;
    let old = tokens["refresh_token"].as_str().unwrap();
    let (status, rotated) = token_post(
        &app,
        &rp,
        &[("grant_type", "refresh_token"), ("refresh_token", old)],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = token_post(
        &app,
        &rp,
        &[("grant_type", "refresh_token"), ("refresh_token", old)],
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = token_post(
        &app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rotated["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 400, "reuse detection revoked the whole family");
    app.stop().await;
}

#[tokio::test]
async fn bad_authorization_requests() {
    let app = TestApp::spawn().await;
    let public = register(&app, true, false).await;
    let browser = Browser::new(&app);
    let base = format!(
        "{}/oauth2/authorize?response_type=code&client_id={}&scope=openid&state=xyz",
        app.base, public.client_id
    );
    // A redirect URI that is not registered exactly: an error page, never a redirect.
    let page = browser
        .get(&format!("{base}&redirect_uri={}/", public.redirect))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none());
    assert!(page.body.contains("redirect_uri"));
    let page = browser
        .get(&format!("{base}&redirect_uri=https://evil.example/cb"))
        .await;
    assert_eq!(page.status, 400);
    let page = browser
        .get(&format!(
            "{base}&client_id=nobody&redirect_uri={}",
            public.redirect
        ))
        .await;
    assert_eq!(page.status, 400);
    // Public client without PKCE: redirected back with the error, state and iss.
    let page = browser
        .get(&format!("{base}&redirect_uri={}", public.redirect))
        .await;
    assert_eq!(page.status, 303);
    let params = query(&page.location.unwrap());
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], "xyz");
    assert_eq!(params["iss"], app.base);
    // No flow cookie, or a forged form: refused with a page.
    let fresh = Browser::new(&app);
    let page = fresh
        .post(
            "/oauth2/signin/password",
            &[("csrf", "x"), ("username", "a"), ("password", "b")],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("expired"));
    let started = start(&app, &public).await;
    let browser = Browser::new(&app);
    browser.get(&started.auth_url).await;
    let page = browser
        .post(
            "/oauth2/signin/password",
            &[("username", "a"), ("password", "b")],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("did not come from this sign-in"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_issue_exactly_as_many_codes_as_a_bypass_code_allows() {
    let app = TestApp::spawn().await;
    let sibling = app.start_sibling().await;
    let token = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    for (user, uses, attempts) in [("race.once", 1, 200usize), ("race.three", 3, 200)] {
        let (user_id, _) = enrolled_user(&app, &token, user).await;
        let body = json!({"neverExpires": true, "maxUsageCount": uses});
        let code = create_code(&app, &token, &user_id, body).await["code"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..attempts {
            let base = if i % 2 == 0 {
                app.base.clone()
            } else {
                format!("http://{}", sibling.local_addr)
            };
            let started = start(&app, &rp).await;
            let auth_url = started.auth_url.replace(&app.base, &base);
            let code = code.clone();
            let user = user.to_owned();
            tasks.spawn(async move {
                let browser = Browser::at(&base);
                let page = password_step(&browser, &auth_url, &user, PASSWORD).await;
                let done = browser
                    .post(
                        "/oauth2/signin/bypass",
                        &[("csrf", &csrf(&page)), ("code", &code)],
                    )
                    .await;
                let done = not_now(&browser, done).await;
                done.status == 303
            });
        }
        let mut issued = 0;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(240);
        while let Some(done) = tokio::time::timeout_at(deadline, tasks.join_next())
            .await
            .expect("in time")
        {
            if done.unwrap() {
                issued += 1;
            }
        }
        assert_eq!(issued, uses as usize, "{user}");
    }
    sibling.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn users_generate_their_own_codes_after_a_totp_sign_in_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (user_id, secret) = enrolled_user(&app, &admin, "self.service").await;
    let rp = register(&app, false, false).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let totp = bypass_idp::domain::totp::code_at(&secret, now + 30).unwrap();
    let token = self_service_token(&app, &rp, "self.service", ("/oauth2/signin/totp", &totp)).await;

    let (status, mine, _) = app
        .scim(
            reqwest::Method::POST,
            "/Me/bypassCodes",
            &token,
            Some(json!({"neverExpires": true})),
        )
        .await;
    assert_eq!(status, 201, "{mine}");
    assert_eq!(mine["origin"], "selfService");
    assert_eq!(mine["createdBy"], format!("user:{user_id}"));
    assert!(mine["code"].is_string());
    let (status, body, _) = app
        .scim(
            reqwest::Method::POST,
            "/Me/bypassCodes",
            &token,
            Some(json!({"neverExpires": true, "maxUsageCount": 2})),
        )
        .await;
    common::assert_scim_error(status, &body, 400, Some("invalidValue"));
    assert!(
        body["detail"].as_str().unwrap().contains("selfService"),
        "{body}"
    );
    let (_, list, _) = app
        .scim(reqwest::Method::GET, "/Me/bypassCodes", &token, None)
        .await;
    assert_eq!(list["totalResults"], 1);
    assert!(list["Resources"][0].get("code").is_none());

    // A sign-in with a bypass code cannot mint more codes.
    let bypass_token = self_service_token(
        &app,
        &rp,
        "self.service",
        ("/oauth2/signin/bypass", mine["code"].as_str().unwrap()),
    )
    .await;
    let (status, body, _) = app
        .scim(
            reqwest::Method::POST,
            "/Me/bypassCodes",
            &bypass_token,
            Some(json!({"neverExpires": true})),
        )
        .await;
    common::assert_scim_error(status, &body, 403, None);
    // ...but may still see and revoke them.
    let path = format!("/Me/bypassCodes/{}", mine["id"].as_str().unwrap());
    let (status, _, _) = app
        .scim(reqwest::Method::DELETE, &path, &bypass_token, None)
        .await;
    assert_eq!(status, 204);
    let (_, revoked, _) = app.scim(reqwest::Method::GET, &path, &token, None).await;
    assert_eq!(revoked["status"], "revoked");

    // Client tokens have no "me"; a disabled self-service policy refuses.
    let (status, _, _) = app
        .scim(reqwest::Method::GET, "/Me/bypassCodes", &admin, None)
        .await;
    assert_eq!(status, 403);
    app.scim(
        reqwest::Method::PUT,
        "/BypassCodeSettings",
        &admin,
        Some(json!({"selfServiceGenerationEnabled": false})),
    )
    .await;
    let (status, body, _) = app
        .scim(
            reqwest::Method::POST,
            "/Me/bypassCodes",
            &token,
            Some(json!({"neverExpires": true})),
        )
        .await;
    common::assert_scim_error(status, &body, 403, None);
    app.stop().await;
}

#[tokio::test]
async fn ten_wrong_passwords_lock_a_username_whether_or_not_it_exists() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    app.create_user(&token, user_body("target")).await;
    let rp = register(&app, false, false).await;
    for user in ["target", "ghost"] {
        let started = start(&app, &rp).await;
        let browser = Browser::new(&app);
        let mut page = password_step(&browser, &started.auth_url, user, "guess 0").await;
        for attempt in 1..10 {
            assert!(
                page.body.contains("Wrong username or password"),
                "{user} {attempt}"
            );
            let guess = format!("guess {attempt}");
            page = browser
                .post(
                    "/oauth2/signin/password",
                    &[
                        ("csrf", &csrf(&page)),
                        ("username", user),
                        ("password", &guess),
                    ],
                )
                .await;
        }
        let locked = browser
            .post(
                "/oauth2/signin/password",
                &[
                    ("csrf", &csrf(&page)),
                    ("username", user),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert!(
            locked.body.contains("Try again in 15 minutes"),
            "{user}: {}",
            locked.body
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_deactivated_user_loses_self_service_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (user_id, secret) = enrolled_user(&app, &admin, "leaving.soon").await;
    let rp = register(&app, false, false).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let totp = bypass_idp::domain::totp::code_at(&secret, now + 30).unwrap();
    let token = self_service_token(&app, &rp, "leaving.soon", ("/oauth2/signin/totp", &totp)).await;
    let (status, _, _) = app
        .scim(reqwest::Method::GET, "/Me/bypassCodes", &token, None)
        .await;
    assert_eq!(status, 200);
    let patch = json!({"schemas": [common::PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    app.scim(
        reqwest::Method::PATCH,
        &format!("/Users/{user_id}"),
        &admin,
        Some(patch),
    )
    .await;
    let (status, body, _) = app
        .scim(reqwest::Method::GET, "/Me/bypassCodes", &token, None)
        .await;
    common::assert_scim_error(status, &body, 401, None);
    app.stop().await;
}

#[tokio::test]
async fn the_username_field_is_empty_without_a_login_hint_and_prefilled_with_one() {
    let app = TestApp::spawn().await;
    let rp = register(&app, false, false).await;
    for (hint, value) in [(None, ""), (Some("ada.lovelace"), "ada.lovelace")] {
        let browser = Browser::new(&app);
        let started = start(&app, &rp).await;
        let url = match hint {
            Some(hint) => format!("{}&login_hint={hint}", started.auth_url),
            None => started.auth_url.clone(),
        };
        assert_eq!(browser.get(&url).await.status, 303);
        let form = browser.get("/oauth2/signin").await;
        let field = format!("name=\"username\" value=\"{value}\"");
        assert!(form.body.contains(&field), "{hint:?}: {}", form.body);
    }
    app.stop().await;
}
