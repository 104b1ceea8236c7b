//! The lost-phone journey over HTTP, without JavaScript: a bypass code re-registers the
//! user's authenticator (at sign-in, and from My security), and after an administrator's
//! reset a password alone no longer sets one up. With the attacker's checks: the set-up is
//! reachable only after a bypass code in the same browser, two windows with two keys leave
//! exactly one authenticator, and the replacement's code check reserves attempts.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use bypass_idp::domain::repo::MfaRepo;
use bypass_idp::domain::totp;
use common::rp::*;
use common::{TestApp, audit_of, create_code, enrolled_user, outbox, user_body};
use reqwest::Method;
use serde_json::{Value, json};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a page that shows a key to set up contains.
const KEY_SHOWN: &str = "id=\"secret\"";

/// The code an authenticator with `secret` shows now. A factor confirmed with it, or a sign-in
/// made with it, has used this time step: the next use of the same secret takes
/// [`next_code`], as a person waits for the app's next code.
fn totp_code(secret: &[u8]) -> String {
    totp::code_at(secret, now()).unwrap()
}

/// The code of the next time step (accepted one step ahead, for clock drift).
fn next_code(secret: &[u8]) -> String {
    totp::code_at(secret, now() + 30).unwrap()
}

/// What most of these tests start from: a server, a provisioning token, a relying party that
/// asks for no 2-step verification itself, and a user `name` with an authenticator (its id
/// and secret).
async fn server_with_user(name: &str) -> (TestApp, String, Rp, String, Vec<u8>) {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let (user_id, secret) = enrolled_user(&app, &admin, name).await;
    (app, admin, rp, user_id, secret)
}

/// The key a set-up page shows, as the app would read it.
fn key_on(page: &Page) -> Vec<u8> {
    let marker = "id=\"secret\">";
    let start = page
        .body
        .find(marker)
        .unwrap_or_else(|| panic!("no key on the page: {}", page.body))
        + marker.len();
    let end = page.body[start..].find('<').unwrap() + start;
    totp::from_base32(&page.body[start..end]).expect("a base32 key")
}

/// The value of a hidden form field.
fn hidden(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} on the page: {}", page.body))
        + marker.len();
    let end = page.body[start..].find('"').unwrap() + start;
    page.body[start..end].to_owned()
}

/// "Set up a new authenticator app" on the offer page: the page with the new key.
async fn set_up(browser: &Browser, offer: &Page) -> Page {
    browser
        .post(
            "/oauth2/signin/replace",
            &[("csrf", &csrf(offer)), ("choice", "setup")],
        )
        .await
}

fn is_offer(page: &Page) -> bool {
    page.status == 200
        && page.body.contains("action=\"/oauth2/signin/replace\"")
        && page.body.contains("value=\"setup\"")
}

async fn totp_status(app: &TestApp, token: &str, user_id: &str) -> String {
    let path = format!("/Users/{user_id}/totp");
    let (status, body, _) = app.scim(Method::GET, &path, token, None).await;
    assert_eq!(status, 200, "{body}");
    body["status"].as_str().unwrap().to_owned()
}

/// `PUT /BypassCodeSettings` with `members`, other members at their defaults except the
/// issuance controls these tests do not exercise (approval and user alerts stay off).
async fn set_policy(app: &TestApp, token: &str, mut members: Value) {
    for (name, value) in [
        ("approvalRequired", json!("never")),
        ("notifyUserOnIssue", json!(false)),
        ("notifyUserOnUse", json!(false)),
    ] {
        if members.get(name).is_none() {
            members[name] = value;
        }
    }
    let (status, body, _) = app
        .scim(Method::PUT, "/BypassCodeSettings", token, Some(members))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The amr of the ID token a finished sign-in's code gives.
async fn amr_of(app: &TestApp, rp: &Rp, started: &Started, page: &Page) -> Vec<String> {
    let code = code_from(page, app, rp, &started.state);
    let (status, tokens) = redeem(app, rp, &code, started.verifier.secret()).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    let payload = id_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

/// Whether the next code from `secret` passes the second step of a new sign-in; a refusal
/// must be for a wrong code (not a replayed one, which would prove nothing).
async fn totp_signs_in(app: &TestApp, rp: &Rp, user: &str, secret: &[u8]) -> bool {
    let browser = Browser::new(app);
    let started = start(app, rp).await;
    let page = password_step(&browser, &started.auth_url, user, PASSWORD).await;
    let done = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &next_code(secret))],
        )
        .await;
    let signed_in = done.status == 303
        && done
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with(&rp.redirect));
    if !signed_in {
        assert!(
            done.body.contains("That code is not right"),
            "{}",
            done.body
        );
    }
    signed_in
}

#[tokio::test]
async fn a_bypass_code_sign_in_replaces_the_authenticator_and_ends_the_other_sessions() {
    let (app, admin, rp, user_id, old_secret) = server_with_user("lost").await;

    let issued = create_code(
        &app,
        &admin,
        &user_id,
        json!({"expiresIn": {"hours": 1}, "maxUsageCount": 2}),
    )
    .await;
    let code = issued["code"].as_str().unwrap();
    // Someone is signed in elsewhere, with a session and a refresh token (with the same
    // code: the authenticator's next code is kept for the check below).
    let elsewhere = Browser::new(&app);
    let (started, offer) = code_sign_in(&app, &elsewhere, &rp, "lost", code).await;
    let done = not_now(&elsewhere, offer).await;
    let code_elsewhere = code_from(&done, &app, &rp, &started.state);
    let (status, old_tokens) = redeem(&app, &rp, &code_elsewhere, started.verifier.secret()).await;
    assert_eq!(status, 200, "{old_tokens}");

    assert_eq!(issued["purpose"], "signIn", "the default purpose");
    let browser = Browser::new(&app);
    let (started, offer) = code_sign_in(&app, &browser, &rp, "lost", code).await;
    assert!(is_offer(&offer), "{}", offer.body);
    assert!(offer.body.contains("value=\"later\""), "offered: Not now");
    assert!(
        !offer.body.contains(KEY_SHOWN),
        "no key before the person asks"
    );
    // A reload shows the same offer.
    assert!(is_offer(&browser.get("/oauth2/signin").await));

    let setup = set_up(&browser, &offer).await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    assert!(
        setup.body.contains("otpauth:&#x2f;&#x2f;totp&#x2f;"),
        "{}",
        setup.body
    );
    assert!(
        setup.body.contains("src=\"data:image&#x2f;svg+xml;base64,")
            || setup.body.contains("src=\"data:image/svg+xml;base64,"),
        "a QR code within the page: {}",
        setup.body
    );
    let new_secret = key_on(&setup);
    assert_ne!(new_secret, old_secret);
    // Until it is confirmed, the old authenticator still works and the new one does not.
    assert!(totp_signs_in(&app, &rp, "lost", &old_secret).await);

    // A mistyped code: the same key is shown again.
    let wrong = browser
        .post(
            "/oauth2/signin/replace/confirm",
            &[("csrf", &csrf(&setup)), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, 200);
    assert!(wrong.body.contains("not right"), "{}", wrong.body);
    assert_eq!(key_on(&wrong), new_secret);
    // A reload during the set-up shows the key being set up.
    assert_eq!(key_on(&browser.get("/oauth2/signin").await), new_secret);

    let replaced = browser
        .post(
            "/oauth2/signin/replace/confirm",
            &[("csrf", &csrf(&setup)), ("code", &totp_code(&new_secret))],
        )
        .await;
    // On to the relying party, signed in with the code.
    assert_eq!(
        amr_of(&app, &rp, &started, &replaced).await,
        ["pwd", "mfa", "bypass_code"]
    );

    // The old secret stops working at once; the new one works.
    assert!(!totp_signs_in(&app, &rp, "lost", &old_secret).await);
    assert!(totp_signs_in(&app, &rp, "lost", &new_secret).await);
    // The old phone's sign-ins ended: its refresh token is refused, and its browser is
    // asked to sign in again.
    let (status, refused) = refresh(&app, &rp, &old_tokens).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"], "invalid_grant");
    let again = start(&app, &rp).await;
    let page = elsewhere
        .get(&format!("{}&prompt=none", again.auth_url))
        .await;
    assert!(
        page.location
            .as_deref()
            .is_some_and(|l| l.contains("error=login_required")),
        "{:?}",
        page.location
    );

    // The audit trail says who, from where, and which code allowed it; the user is told.
    let events = audit_of(&app, &admin, &user_id).await;
    let replaced = events
        .iter()
        .find(|e| e["event"] == "authenticator_replaced")
        .expect("authenticator_replaced audited");
    assert_eq!(replaced["codeId"], issued["id"], "{replaced}");
    assert_eq!(replaced["actor"], format!("user:{user_id}"));
    assert_eq!(replaced["ip"], "127.0.0.1");
    assert!(
        events.iter().any(|e| e["event"] == "alert_emailed"),
        "{events:?}"
    );
    let mails = outbox(&app);
    let alert = mails
        .iter()
        .find(|m| m.contains("authenticator app was replaced"))
        .expect("the replacement mail");
    assert!(alert.contains("lost@example.com") && alert.contains("127.0.0.1"));
    assert!(
        !alert.contains(&totp::base32(&new_secret).expose().to_owned()),
        "never the key"
    );
    app.stop().await;
}

#[tokio::test]
async fn after_a_reset_a_password_alone_cannot_enrol_but_a_help_desk_code_does() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    // Neither the client nor the user asks for 2-step verification: the account had it.
    let rp = register(&app, false, false).await;
    let (user_id, old_secret) = enrolled_user(&app, &admin, "reset").await;
    let path = format!("/Users/{user_id}/totp");
    let (status, body, _) = app.scim(Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, 204, "{body}");
    let mfa = app
        .store()
        .get_mfa(&bypass_idp::domain::ids::UserId::new(&user_id))
        .await
        .unwrap()
        .unwrap();
    assert!(mfa.mfa_reset_at.is_some(), "the reset is remembered");
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("2-step verification was reset")),
        "the user is told of the reset"
    );

    // A password alone: the sign-in says what happened and asks for a code, shows no key.
    let browser = Browser::new(&app);
    let started = start(&app, &rp).await;
    let gate = password_step(&browser, &started.auth_url, "reset", PASSWORD).await;
    assert_eq!(gate.status, 200, "{}", gate.body);
    assert!(gate.body.contains("was reset"), "{}", gate.body);
    assert!(gate.body.contains("/oauth2/signin/enrol-code"));
    assert!(!gate.body.contains(KEY_SHOWN), "{}", gate.body);
    // Forms of other steps get nowhere: no key, no enrolment, no sign-in.
    for (path, fields) in [
        ("/oauth2/signin/enroll", vec![("code", "123456")]),
        ("/oauth2/signin/totp", vec![("code", "123456")]),
        ("/oauth2/signin/replace", vec![("choice", "setup")]),
        ("/oauth2/signin/replace/confirm", vec![("code", "123456")]),
    ] {
        let csrf = csrf(&gate);
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let page = browser.post(path, &form).await;
        assert!(page.status != 303, "{path}: {:?}", page.location);
        assert!(!page.body.contains(KEY_SHOWN), "{path}: {}", page.body);
    }
    assert_eq!(totp_status(&app, &admin, &user_id).await, "none");
    // The old authenticator is gone too.
    let page = browser
        .post(
            "/oauth2/signin/enrol-code",
            &[("csrf", &csrf(&gate)), ("code", &totp_code(&old_secret))],
        )
        .await;
    assert!(page.body.contains("not right"), "{}", page.body);

    // The help desk's code, for enrolment only (twice usable, to try it where it may not).
    let enrolment = create_code(
        &app,
        &admin,
        &user_id,
        json!({"expiresIn": {"hours": 4}, "maxUsageCount": 2, "purpose": "enrolment"}),
    )
    .await;
    assert_eq!(enrolment["purpose"], "enrolment");
    let setup = browser
        .post(
            "/oauth2/signin/enrol-code",
            &[
                ("csrf", &csrf(&gate)),
                ("code", enrolment["code"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    assert!(
        setup.body.contains("data:image"),
        "a QR code: {}",
        setup.body
    );
    let secret = key_on(&setup);
    let done = browser
        .post(
            "/oauth2/signin/enroll",
            &[("csrf", &csrf(&setup)), ("code", &totp_code(&secret))],
        )
        .await;
    assert_eq!(
        amr_of(&app, &rp, &started, &done).await,
        ["pwd", "mfa", "bypass_code"]
    );
    assert_eq!(totp_status(&app, &admin, &user_id).await, "enrolled");
    assert!(totp_signs_in(&app, &rp, "reset", &secret).await);

    // Its one use left cannot sign in: it was only for the set-up.
    let browser = Browser::new(&app);
    let (_, refused) = code_sign_in(
        &app,
        &browser,
        &rp,
        "reset",
        enrolment["code"].as_str().unwrap(),
    )
    .await;
    assert_eq!(refused.status, 200);
    assert!(
        refused.body.contains("only for setting up"),
        "{}",
        refused.body
    );
    app.stop().await;
}

#[tokio::test]
async fn enrolment_codes_are_for_users_waiting_to_enrol_and_from_the_help_desk() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (enrolled, _) = enrolled_user(&app, &admin, "has-app").await;
    let never = app.create_user(&admin, user_body("never")).await;
    let never = never["id"].as_str().unwrap();
    let create = |user: String, body: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            app.scim(
                Method::POST,
                &format!("/Users/{user}/bypassCodes"),
                admin,
                Some(body),
            )
            .await
        }
    };
    let once = |purpose: &str| json!({"neverExpires": true, "purpose": purpose});
    for (user, body, why) in [
        (enrolled.clone(), once("enrolment"), "has an authenticator"),
        (never.to_owned(), once("enrolment"), "without a code"),
        (never.to_owned(), once("signIn"), "not enrolled"),
        (enrolled.clone(), once("recovery"), "\"purpose\""),
        (
            enrolled.clone(),
            json!({"neverExpires": true, "purpose": 7}),
            "\"purpose\"",
        ),
        (
            enrolled.clone(),
            json!({"neverExpires": true, "purpose": ""}),
            "\"purpose\"",
        ),
    ] {
        let (status, body, _) = create(user, body.clone()).await;
        common::assert_scim_error(status, &body, 400, Some("invalidValue"));
        assert!(
            body["detail"].as_str().unwrap().contains(why),
            "{why}: {body}"
        );
    }
    // A sign-in code for the enrolled user is as before.
    let (status, body, _) = create(enrolled.clone(), once("signIn")).await;
    assert_eq!(status, 201, "{body}");
    // Once the user is waiting behind the gate, both purposes may be given.
    let (status, _, _) = app
        .scim(
            Method::DELETE,
            &format!("/Users/{enrolled}/totp"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    for purpose in ["enrolment", "signIn"] {
        let (status, body, _) = create(enrolled.clone(), once(purpose)).await;
        assert_eq!(status, 201, "{purpose}: {body}");
        assert_eq!(body["purpose"], purpose);
        // Listed with its purpose.
        let path = format!(
            "/Users/{enrolled}/bypassCodes/{}",
            body["id"].as_str().unwrap()
        );
        let (_, read, _) = app.scim(Method::GET, &path, &admin, None).await;
        assert_eq!(read["purpose"], purpose);
        assert!(read.get("code").is_none());
    }
    app.stop().await;
}

#[tokio::test]
async fn an_administrator_sets_up_a_first_authenticator_only_with_a_code() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let user = app.create_user(&admin, user_body("newdesk")).await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let (status, group, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &admin,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Help desk administrators",
                "members": [{"value": user_id}],
            })),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    // At a client that asks for 2-step verification, the first authenticator needs a code.
    let rp = register(&app, false, true).await;
    let browser = Browser::new(&app);
    let started = start(&app, &rp).await;
    let gate = password_step(&browser, &started.auth_url, "newdesk", PASSWORD).await;
    assert!(gate.body.contains("administrator role"), "{}", gate.body);
    assert!(!gate.body.contains(KEY_SHOWN));
    let code = create_code(
        &app,
        &admin,
        &user_id,
        json!({"expiresIn": {"minutes": 30}, "purpose": "enrolment"}),
    )
    .await;
    let setup = browser
        .post(
            "/oauth2/signin/enrol-code",
            &[
                ("csrf", &csrf(&gate)),
                ("code", code["code"].as_str().unwrap()),
            ],
        )
        .await;
    let secret = key_on(&setup);
    let done = browser
        .post(
            "/oauth2/signin/enroll",
            &[("csrf", &csrf(&setup)), ("code", &totp_code(&secret))],
        )
        .await;
    assert_eq!(
        amr_of(&app, &rp, &started, &done).await,
        ["pwd", "mfa", "bypass_code"]
    );
    // A user with no role and no authenticator enrols with the password, as before.
    app.create_user(&admin, user_body("plain")).await;
    let browser = Browser::new(&app);
    let started = start(&app, &rp).await;
    let page = password_step(&browser, &started.auth_url, "plain", PASSWORD).await;
    assert!(page.body.contains(KEY_SHOWN), "{}", page.body);
    app.stop().await;
}

#[tokio::test]
async fn the_policy_turns_the_offer_off_or_makes_it_required_and_the_gate_off() {
    let (app, admin, rp, user_id, _) = server_with_user("pol").await;

    set_policy(&app, &admin, json!({"authenticatorReplacement": "off"})).await;
    let issued = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 5}),
    )
    .await;
    let plain = issued["code"].as_str().unwrap();
    let (started, page) = code_sign_in(&app, &Browser::new(&app), &rp, "pol", plain).await;
    assert_eq!(
        amr_of(&app, &rp, &started, &page).await,
        ["pwd", "mfa", "bypass_code"],
        "off: straight on to the client"
    );

    set_policy(
        &app,
        &admin,
        json!({"authenticatorReplacement": "required"}),
    )
    .await;
    let browser = Browser::new(&app);
    let (_, offer) = code_sign_in(&app, &browser, &rp, "pol", plain).await;
    assert!(is_offer(&offer), "{}", offer.body);
    assert!(!offer.body.contains("value=\"later\""), "no Not now");
    // Sending "later" anyway does not go on.
    let refused = browser
        .post(
            "/oauth2/signin/replace",
            &[("csrf", &csrf(&offer)), ("choice", "later")],
        )
        .await;
    assert_eq!(refused.status, 200, "{:?}", refused.location);
    assert!(refused.body.contains("requires"), "{}", refused.body);
    for bad in ["", "sideways", &"x".repeat(40)] {
        let page = browser
            .post(
                "/oauth2/signin/replace",
                &[("csrf", &csrf(&offer)), ("choice", bad)],
            )
            .await;
        assert_eq!(page.status, 400, "{bad:?}");
    }

    // The gate switched off: after a reset the password sets up a new authenticator again.
    set_policy(
        &app,
        &admin,
        json!({"reenrolmentRequiresCode": false, "authenticatorReplacement": "offered"}),
    )
    .await;
    let (status, _, _) = app
        .scim(
            Method::DELETE,
            &format!("/Users/{user_id}/totp"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, policy, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &admin, None)
        .await;
    assert_eq!(policy["reenrolmentRequiresCode"], false);
    assert_eq!(policy["authenticatorReplacement"], "offered");
    let mfa_rp = register(&app, false, true).await;
    let browser = Browser::new(&app);
    let started = start(&app, &mfa_rp).await;
    let page = password_step(&browser, &started.auth_url, "pol", PASSWORD).await;
    assert!(page.body.contains(KEY_SHOWN), "{}", page.body);
    for bad in [
        json!({"authenticatorReplacement": "sometimes"}),
        json!({"authenticatorReplacement": null}),
        json!({"reenrolmentRequiresCode": "yes"}),
    ] {
        let (status, body, _) = app
            .scim(
                Method::PUT,
                "/BypassCodeSettings",
                &admin,
                Some(bad.clone()),
            )
            .await;
        common::assert_scim_error(status, &body, 400, None);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_set_up_is_reached_only_after_a_bypass_code_in_the_same_browser() {
    let (app, admin, rp, user_id, secret) = server_with_user("victim").await;
    let issued = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await;

    // A browser that knows the password but not the code, at the second step.
    let attacker = Browser::new(&app);
    let started = start(&app, &rp).await;
    let second = password_step(&attacker, &started.auth_url, "victim", PASSWORD).await;
    for (path, fields) in [
        ("/oauth2/signin/replace", vec![("choice", "setup")]),
        ("/oauth2/signin/replace/confirm", vec![("code", "123456")]),
    ] {
        let csrf = csrf(&second);
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let page = attacker.post(path, &form).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains(KEY_SHOWN), "{path}: {}", page.body);
        assert!(
            page.body.contains("/oauth2/signin/totp"),
            "still at the second step"
        );
    }
    // A browser with no sign-in at all.
    let stranger = Browser::new(&app);
    for path in ["/oauth2/signin/replace", "/oauth2/signin/replace/confirm"] {
        let page = stranger
            .post(path, &[("csrf", "x"), ("choice", "setup"), ("code", "1")])
            .await;
        assert!(page.status >= 400, "{path}: {}", page.status);
        assert!(!page.body.contains(KEY_SHOWN));
    }
    // The owner signs in with the code; the attacker's browser, with its own flow, still
    // cannot reach the set-up, and a forged form in the owner's browser is refused.
    let owner = Browser::new(&app);
    let (_, offer) = code_sign_in(
        &app,
        &owner,
        &rp,
        "victim",
        issued["code"].as_str().unwrap(),
    )
    .await;
    assert!(is_offer(&offer));
    let page = set_up(&attacker, &offer).await;
    assert!(!page.body.contains(KEY_SHOWN), "{}", page.body);
    let forged = owner
        .post(
            "/oauth2/signin/replace",
            &[("csrf", "forged"), ("choice", "setup")],
        )
        .await;
    assert_eq!(forged.status, 400);
    assert!(!forged.body.contains(KEY_SHOWN));
    // Nothing was replaced: the old authenticator works.
    assert!(totp_signs_in(&app, &rp, "victim", &secret).await);
    app.stop().await;
}

#[tokio::test]
async fn two_windows_with_two_keys_leave_exactly_one_authenticator() {
    let (app, admin, rp, user_id, old) = server_with_user("tabs").await;
    let issued = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 2}),
    )
    .await;
    let plain = issued["code"].as_str().unwrap();
    // Two windows (two browsers, two flows), each at its own set-up with its own key.
    let mut windows = Vec::new();
    for _ in 0..2 {
        let browser = Browser::new(&app);
        let (_, offer) = code_sign_in(&app, &browser, &rp, "tabs", plain).await;
        let setup = set_up(&browser, &offer).await;
        let key = key_on(&setup);
        windows.push((browser, csrf(&setup), key));
    }
    assert_ne!(windows[0].2, windows[1].2);
    // Both confirm at once, each with a right code of its own key.
    let codes: Vec<String> = windows.iter().map(|(_, _, key)| totp_code(key)).collect();
    let confirm = |i: usize| {
        let (browser, csrf, _) = &windows[i];
        let fields = [("csrf", csrf.as_str()), ("code", codes[i].as_str())];
        async move {
            browser
                .post("/oauth2/signin/replace/confirm", &fields)
                .await
        }
    };
    let (a, b) = tokio::join!(confirm(0), confirm(1));
    let outcomes = [a.status == 303, b.status == 303];
    assert_eq!(
        outcomes.iter().filter(|o| **o).count(),
        1,
        "exactly one replaces: {} / {}",
        a.body,
        b.body
    );
    let winner = if outcomes[0] { 0 } else { 1 };
    let loser = 1 - winner;
    // The one authenticator is the winner's key; the loser's and the old one are refused.
    assert!(totp_signs_in(&app, &rp, "tabs", &windows[winner].2).await);
    assert!(!totp_signs_in(&app, &rp, "tabs", &windows[loser].2).await);
    assert!(!totp_signs_in(&app, &rp, "tabs", &old).await);
    let replaced = audit_of(&app, &admin, &user_id)
        .await
        .iter()
        .filter(|e| e["event"] == "authenticator_replaced")
        .count();
    assert_eq!(replaced, 1);

    // The same key confirmed twice at once, in one browser: one replacement.
    let browser = Browser::new(&app);
    let second = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await;
    let (_, offer) = code_sign_in(
        &app,
        &browser,
        &rp,
        "tabs",
        second["code"].as_str().unwrap(),
    )
    .await;
    let setup = set_up(&browser, &offer).await;
    let key = key_on(&setup);
    let code = totp_code(&key);
    let fields = [("csrf", csrf(&setup)), ("code", code)];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = tokio::join!(
        browser.post("/oauth2/signin/replace/confirm", &fields),
        browser.post("/oauth2/signin/replace/confirm", &fields),
    );
    assert_eq!(
        [a.status, b.status].iter().filter(|s| **s == 303).count(),
        1,
        "one sign-in, one authorization code: {} {} / {} {}",
        a.status,
        a.body,
        b.status,
        b.body
    );
    let replaced = audit_of(&app, &admin, &user_id)
        .await
        .iter()
        .filter(|e| e["event"] == "authenticator_replaced")
        .count();
    assert_eq!(replaced, 2);
    app.stop().await;
}

#[tokio::test]
async fn the_replacement_code_check_reserves_attempts_like_every_other() {
    let (app, admin, rp, user_id, old) = server_with_user("guess").await;
    let before = app
        .store()
        .get_mfa(&bypass_idp::domain::ids::UserId::new(&user_id))
        .await
        .unwrap()
        .unwrap();
    let issued = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await;
    let browser = Browser::new(&app);
    let (_, offer) = code_sign_in(
        &app,
        &browser,
        &rp,
        "guess",
        issued["code"].as_str().unwrap(),
    )
    .await;
    let setup = set_up(&browser, &offer).await;
    let key = key_on(&setup);
    let csrf = csrf(&setup);
    // Twenty wrong guesses at once: the per-user window (5 per 15 minutes) lets only a few
    // be checked; the rest are told to wait.
    let guesses: Vec<String> = (0..20).map(|i| format!("{:06}", 100_000 + i)).collect();
    let pages = futures_util::future::join_all(guesses.iter().map(|g| {
        let fields = [("csrf", csrf.as_str()), ("code", g.as_str())];
        let browser = &browser;
        async move {
            browser
                .post("/oauth2/signin/replace/confirm", &fields)
                .await
        }
    }))
    .await;
    let checked = pages
        .iter()
        .filter(|p| p.body.contains("not right"))
        .count();
    let locked = pages
        .iter()
        .filter(|p| p.body.contains("Too many attempts"))
        .count();
    // The bypass code's own success cleared the window; at most five guesses are checked.
    assert!(checked <= 5, "{checked} guesses checked");
    assert_eq!(checked + locked, 20);
    // Now even the right code waits: nothing is replaced.
    let right = browser
        .post(
            "/oauth2/signin/replace/confirm",
            &[("csrf", csrf.as_str()), ("code", &totp_code(&key))],
        )
        .await;
    assert_eq!(right.status, 200);
    assert!(right.body.contains("Too many attempts"), "{}", right.body);
    let mfa = app
        .store()
        .get_mfa(&bypass_idp::domain::ids::UserId::new(&user_id))
        .await
        .unwrap()
        .unwrap();
    assert!(mfa.replacement_secret.is_some() && mfa.totp_confirmed);
    assert_eq!(
        mfa.totp_secret, before.totp_secret,
        "the old authenticator stands"
    );
    // The failed guesses are in the audit trail.
    let failed = audit_of(&app, &admin, &user_id)
        .await
        .iter()
        .filter(|e| e["event"] == "totp_failed")
        .count();
    assert_eq!(failed, checked);
    let _ = old;
    app.stop().await;
}

#[tokio::test]
async fn my_security_replaces_the_authenticator_after_a_recent_strong_sign_in() {
    let (app, admin, rp, user_id, old) = server_with_user("acct").await;
    // Signed in elsewhere too (with a bypass code: the console's sign-in below takes the
    // authenticator's next code).
    let issued = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await;
    let code = issued["code"].as_str().unwrap();
    let other = sign_in(&app, &rp, "acct", Some(("/oauth2/signin/bypass", code))).await;

    let (browser, _) = console_sign_in(&app, "acct", &old, "/account").await;
    let intro = browser.get("/account/authenticator").await;
    assert_eq!(intro.status, 200, "{}", intro.body);
    assert!(intro.body.contains("value=\"start\""), "{}", intro.body);
    let forged = browser
        .post(
            "/account/authenticator",
            &[("csrf", "x"), ("step", "start")],
        )
        .await;
    assert_eq!(forged.status, 400);
    let setup = browser
        .post(
            "/account/authenticator",
            &[("csrf", &csrf(&intro)), ("step", "start")],
        )
        .await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    let key = key_on(&setup);
    let id = hidden(&setup, "setup");
    let wrong = browser
        .post(
            "/account/authenticator",
            &[
                ("csrf", &csrf(&intro)),
                ("step", "confirm"),
                ("setup", &id),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(key_on(&wrong), key, "the same key again");
    let done = browser
        .post(
            "/account/authenticator",
            &[
                ("csrf", &csrf(&intro)),
                ("step", "confirm"),
                ("setup", &id),
                ("code", &totp_code(&key)),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/account?notice=replaced"));
    // This browser stays signed in; the other sign-in ended; the old app stopped working.
    let account = browser.get("/account?notice=replaced").await;
    assert_eq!(account.status, 200, "{}", account.body);
    assert!(account.body.contains("new authenticator app is set up"));
    let (status, _) = refresh(&app, &rp, &other).await;
    assert_eq!(status, 400);
    assert!(!totp_signs_in(&app, &rp, "acct", &old).await);
    assert!(totp_signs_in(&app, &rp, "acct", &key).await);
    let events = audit_of(&app, &admin, &user_id).await;
    let replaced = events
        .iter()
        .find(|e| e["event"] == "authenticator_replaced")
        .unwrap();
    assert!(replaced["detail"].as_str().unwrap().contains("My security"));
    app.stop().await;
}

#[tokio::test]
async fn a_code_revoked_during_the_set_up_replaces_nothing_and_a_withdrawn_offer_moves_on() {
    let (app, admin, rp, user_id, old) = server_with_user("stolen").await;
    let issued = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await;
    // Someone with the password and a stolen code reaches the set-up…
    let thief = Browser::new(&app);
    let (_, offer) = code_sign_in(
        &app,
        &thief,
        &rp,
        "stolen",
        issued["code"].as_str().unwrap(),
    )
    .await;
    let setup = set_up(&thief, &offer).await;
    let key = key_on(&setup);
    // …and the help desk revokes the code before the new key is confirmed.
    let path = format!(
        "/Users/{user_id}/bypassCodes/{}",
        issued["id"].as_str().unwrap()
    );
    let (status, _, _) = app.scim(Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, 204);
    let page = thief
        .post(
            "/oauth2/signin/replace/confirm",
            &[("csrf", &csrf(&setup)), ("code", &totp_code(&key))],
        )
        .await;
    assert_ne!(page.status, 303, "no way back to the client");
    assert!(page.status < 500, "{}", page.body);
    assert!(page.body.contains("Sign-in expired"), "{}", page.body);
    // The owner's authenticator stands; the thief's key does not sign in.
    assert!(totp_signs_in(&app, &rp, "stolen", &old).await);
    let none = audit_of(&app, &admin, &user_id)
        .await
        .iter()
        .all(|e| e["event"] != "authenticator_replaced");
    assert!(none);

    // The policy turned off between the offer and the click: the sign-in goes on.
    let second = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await;
    let browser = Browser::new(&app);
    let (started, offer) = code_sign_in(
        &app,
        &browser,
        &rp,
        "stolen",
        second["code"].as_str().unwrap(),
    )
    .await;
    assert!(is_offer(&offer));
    set_policy(&app, &admin, json!({"authenticatorReplacement": "off"})).await;
    let moved_on = set_up(&browser, &offer).await;
    assert_eq!(
        amr_of(&app, &rp, &started, &moved_on).await,
        ["pwd", "mfa", "bypass_code"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_set_up_shows_and_confirms_only_its_own_key() {
    let (app, admin, rp, user_id, _) = server_with_user("two.keys").await;
    let issued = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 2}),
    )
    .await;
    let plain = issued["code"].as_str().unwrap();
    // An attacker's window starts a set-up; then the owner's window starts another.
    let attacker = Browser::new(&app);
    let (_, offer) = code_sign_in(&app, &attacker, &rp, "two.keys", plain).await;
    let theirs = set_up(&attacker, &offer).await;
    let attacker_key = key_on(&theirs);
    let owner = Browser::new(&app);
    let (_, offer) = code_sign_in(&app, &owner, &rp, "two.keys", plain).await;
    let mine = set_up(&owner, &offer).await;
    let owner_key = key_on(&mine);
    // The attacker's window never shows the owner's key, on a reload or after a failure…
    let reload = attacker.get("/oauth2/signin").await;
    assert!(!reload.body.contains(KEY_SHOWN), "{}", reload.body);
    let failed = attacker
        .post(
            "/oauth2/signin/replace/confirm",
            &[
                ("csrf", &csrf(&theirs)),
                ("code", &totp_code(&attacker_key)),
            ],
        )
        .await;
    assert!(failed.body.contains("another window"), "{}", failed.body);
    assert!(!failed.body.contains(KEY_SHOWN), "{}", failed.body);
    // …nor confirms it (a code of the owner's key through the attacker's window).
    let crossed = attacker
        .post(
            "/oauth2/signin/replace/confirm",
            &[("csrf", &csrf(&theirs)), ("code", &totp_code(&owner_key))],
        )
        .await;
    assert_ne!(crossed.status, 303);
    assert!(!crossed.body.contains(KEY_SHOWN));
    // No attempt was spent on set-ups that were not theirs; the owner confirms.
    let events = audit_of(&app, &admin, &user_id).await;
    assert!(
        events.iter().all(|e| e["event"] != "totp_failed"),
        "{events:?}"
    );
    let done = owner
        .post(
            "/oauth2/signin/replace/confirm",
            &[("csrf", &csrf(&mine)), ("code", &totp_code(&owner_key))],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(totp_signs_in(&app, &rp, "two.keys", &owner_key).await);
    app.stop().await;
}

#[tokio::test]
async fn a_finished_sign_in_stays_finished_whatever_is_sent_at_once() {
    let (app, admin, rp, user_id, _) = server_with_user("racer").await;
    let issued = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "unlimitedUsage": true}),
    )
    .await;
    // "Set up" reads the flow, "Not now" finishes it, then "Set up" saves its step: the
    // finished flow must not come back (a second code from one bypass-code use).
    for round in 0..12u64 {
        let browser = Browser::new(&app);
        let (_, offer) = code_sign_in(
            &app,
            &browser,
            &rp,
            "racer",
            issued["code"].as_str().unwrap(),
        )
        .await;
        let token = csrf(&offer);
        let later = [("csrf", token.as_str()), ("choice", "later")];
        let setup = [("csrf", token.as_str()), ("choice", "setup")];
        let pause = std::time::Duration::from_millis(round % 6);
        let (b, a) = tokio::join!(browser.post("/oauth2/signin/replace", &setup), async {
            tokio::time::sleep(pause).await;
            browser.post("/oauth2/signin/replace", &later).await
        });
        let again = browser.post("/oauth2/signin/replace", &later).await;
        let codes = [&a, &b, &again].iter().filter(|p| p.status == 303).count();
        assert_eq!(
            codes, 1,
            "round {round}: one sign-in, one authorization code: {} {:?} / {} {:?} / {} {:?}",
            a.status, a.location, b.status, b.location, again.status, again.location
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_reset_or_a_password_change_during_a_set_up_sets_nothing() {
    let (app, admin, rp, user_id, old) = server_with_user("midway").await;
    let totp_path = format!("/Users/{user_id}/totp");
    let (status, _, _) = app.scim(Method::DELETE, &totp_path, &admin, None).await;
    assert_eq!(status, 204);
    // Through the gate with an enrolment code, at the set-up…
    let code = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "purpose": "enrolment"}),
    )
    .await;
    let browser = Browser::new(&app);
    let started = start(&app, &rp).await;
    let gate = password_step(&browser, &started.auth_url, "midway", PASSWORD).await;
    let setup = browser
        .post(
            "/oauth2/signin/enrol-code",
            &[
                ("csrf", &csrf(&gate)),
                ("code", code["code"].as_str().unwrap()),
            ],
        )
        .await;
    let key = key_on(&setup);
    // …when the help desk resets again (the code may have leaked): the set-up sets nothing.
    let (status, _, _) = app.scim(Method::DELETE, &totp_path, &admin, None).await;
    assert_eq!(status, 204);
    let page = browser
        .post(
            "/oauth2/signin/enroll",
            &[("csrf", &csrf(&setup)), ("code", &totp_code(&key))],
        )
        .await;
    assert!(page.body.contains("Sign-in expired"), "{}", page.body);
    assert_eq!(totp_status(&app, &admin, &user_id).await, "none");
    let _ = old;

    // A replacement in progress when the password changes: nothing is replaced.
    let (other_id, other_old) = enrolled_user(&app, &admin, "midway2").await;
    let issued = create_code(&app, &admin, &other_id, json!({"neverExpires": true})).await;
    let browser = Browser::new(&app);
    let (started, offer) = code_sign_in(
        &app,
        &browser,
        &rp,
        "midway2",
        issued["code"].as_str().unwrap(),
    )
    .await;
    let setup = set_up(&browser, &offer).await;
    let key = key_on(&setup);
    // (a second later: sign-ins are voided by the second, as `auth_time` counts them)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body, _) = app
        .scim(
            Method::PATCH,
            &format!("/Users/{other_id}"),
            &admin,
            Some(json!({
                "schemas": [common::PATCH_SCHEMA],
                "Operations": [{"op": "replace", "path": "password", "value": "a brand new passphrase"}],
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page = browser
        .post(
            "/oauth2/signin/replace/confirm",
            &[("csrf", &csrf(&setup)), ("code", &totp_code(&key))],
        )
        .await;
    // No replacement; whatever the browser is sent back with is refused at the token endpoint.
    if page.status == 303 {
        let code = code_from(&page, &app, &rp, &started.state);
        let (status, _) = redeem(&app, &rp, &code, started.verifier.secret()).await;
        assert_eq!(status, 400);
    }
    let replaced = audit_of(&app, &admin, &other_id)
        .await
        .iter()
        .any(|e| e["event"] == "authenticator_replaced");
    assert!(!replaced);
    // The old authenticator stands (the new password is needed to check it).
    let browser = Browser::new(&app);
    let started = start(&app, &rp).await;
    let page = password_step(
        &browser,
        &started.auth_url,
        "midway2",
        "a brand new passphrase",
    )
    .await;
    let done = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &next_code(&other_old))],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    app.stop().await;
}

#[tokio::test]
async fn my_security_after_a_bypass_code_sign_in_follows_the_policy() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &admin, "coded").await;
    let issued = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 2}),
    )
    .await;
    // My security, signed in with a bypass code (password, code, "Not now").
    let browser = Browser::new(&app);
    let first = browser.get("/account").await;
    let authorize = first.location.expect("to the sign-in");
    password_step(&browser, &authorize, "coded", PASSWORD).await;
    let form = browser.get("/oauth2/signin?method=bypass").await;
    let offer = browser
        .post(
            "/oauth2/signin/bypass",
            &[
                ("csrf", &csrf(&form)),
                ("code", issued["code"].as_str().unwrap()),
            ],
        )
        .await;
    let back = not_now(&browser, offer).await;
    let callback = back.location.expect("back to the console");
    let landed = browser.get(&callback).await;
    assert_eq!(
        landed.location.as_deref(),
        Some("/account"),
        "{}",
        landed.body
    );
    // Offered by the policy: the set-up is open to this sign-in.
    let intro = browser.get("/account/authenticator").await;
    assert!(intro.body.contains("value=\"start\""), "{}", intro.body);
    // With the policy off, a code opens no replacement here either.
    set_policy(&app, &admin, json!({"authenticatorReplacement": "off"})).await;
    let refused = browser.get("/account/authenticator").await;
    assert!(refused.body.contains("Sign in again"), "{}", refused.body);
    let start = browser
        .post(
            "/account/authenticator",
            &[("csrf", &csrf(&intro)), ("step", "start")],
        )
        .await;
    assert_eq!(start.status, 403, "{}", start.body);
    assert!(!start.body.contains(KEY_SHOWN));
    app.stop().await;
}

#[tokio::test]
async fn a_sign_in_kept_busy_still_ends_at_its_deadline() {
    let app = TestApp::spawn_with(&[("BYPASS_IDP_SIGNIN_MAX_SECONDS", "3")]).await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let (user_id, old) = enrolled_user(&app, &admin, "parked").await;
    let issued = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await;
    let began = std::time::Instant::now();
    let browser = Browser::new(&app);
    let (_, offer) = code_sign_in(
        &app,
        &browser,
        &rp,
        "parked",
        issued["code"].as_str().unwrap(),
    )
    .await;
    // Parked at the set-up, and kept busy: every step saves the flow again.
    let mut setup = set_up(&browser, &offer).await;
    while began.elapsed() < std::time::Duration::from_millis(3500) {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let page = browser.get("/oauth2/signin").await;
        if page.status == 200 && page.body.contains(KEY_SHOWN) {
            setup = page;
        }
    }
    let key = key_on(&setup);
    let late = browser
        .post(
            "/oauth2/signin/replace/confirm",
            &[("csrf", &csrf(&setup)), ("code", &totp_code(&key))],
        )
        .await;
    assert!(late.body.contains("Sign-in expired"), "{}", late.body);
    assert!(totp_signs_in(&app, &rp, "parked", &old).await);
    app.stop().await;
}

#[tokio::test]
async fn a_replacement_ends_the_sign_ins_still_in_progress() {
    let (app, admin, rp, user_id, _) = server_with_user("pocket").await;
    // The same code in two hands (it was emailed; someone read the mail).
    let issued = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 2}),
    )
    .await;
    let plain = issued["code"].as_str().unwrap();
    let thief = Browser::new(&app);
    let (_, parked) = code_sign_in(&app, &thief, &rp, "pocket", plain).await;
    assert!(is_offer(&parked));
    // A second later the owner signs in with it and replaces the authenticator.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let owner = Browser::new(&app);
    let (_, offer) = code_sign_in(&app, &owner, &rp, "pocket", plain).await;
    let setup = set_up(&owner, &offer).await;
    let key = key_on(&setup);
    let done = owner
        .post(
            "/oauth2/signin/replace/confirm",
            &[("csrf", &csrf(&setup)), ("code", &totp_code(&key))],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    // The parked sign-in neither finishes nor sets a key of its own.
    let setup = set_up(&thief, &parked).await;
    assert!(!setup.body.contains(KEY_SHOWN), "{}", setup.body);
    assert_ne!(setup.status, 303);
    let later = thief
        .post(
            "/oauth2/signin/replace",
            &[("csrf", &csrf(&parked)), ("choice", "later")],
        )
        .await;
    assert_ne!(later.status, 303, "{:?}", later.location);
    assert!(totp_signs_in(&app, &rp, "pocket", &key).await);
    app.stop().await;
}

#[tokio::test]
async fn a_first_authenticator_is_confirmed_only_as_the_key_that_was_checked() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let user = app.create_user(&admin, user_body("first.key")).await;
    let id = bypass_idp::domain::ids::UserId::new(user["id"].as_str().unwrap());
    let store = app.store();
    store.ensure_mfa(&id, vec![1; 16]).await.unwrap();
    assert!(
        store
            .set_pending_totp(&id, "plain:AAAAAAAA".into(), vec![1; 16])
            .await
            .unwrap()
    );
    // Another window set up another key between the check and the confirmation.
    assert!(
        store
            .set_pending_totp(&id, "plain:BBBBBBBB".into(), vec![1; 16])
            .await
            .unwrap()
    );
    assert!(
        !store
            .accept_totp_step(&id, "plain:AAAAAAAA", 10, true)
            .await
            .unwrap(),
        "a code checked against the first key does not confirm the second"
    );
    assert!(!store.get_mfa(&id).await.unwrap().unwrap().totp_confirmed);
    assert!(
        store
            .accept_totp_step(&id, "plain:BBBBBBBB", 10, true)
            .await
            .unwrap()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_sign_in_that_sets_the_factor_itself_finishes_however_long_it_took() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    // A client that does not ask for 2-step verification, and a user who must enrol.
    let rp = register(&app, false, false).await;
    let mut body = user_body("slow.enrol");
    body["schemas"].as_array_mut().unwrap().push(json!(
        "urn:bypass-idp:params:scim:schemas:extension:mfa:2.0:User"
    ));
    body["urn:bypass-idp:params:scim:schemas:extension:mfa:2.0:User"] =
        json!({"mfaRequired": true});
    app.create_user(&admin, body).await;
    let browser = Browser::new(&app);
    let started = start(&app, &rp).await;
    let setup = password_step(&browser, &started.auth_url, "slow.enrol", PASSWORD).await;
    let key = key_on(&setup);
    // The factor is set in a later second than the password check (a person is slower).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let done = browser
        .post(
            "/oauth2/signin/enroll",
            &[("csrf", &csrf(&setup)), ("code", &totp_code(&key))],
        )
        .await;
    assert_eq!(amr_of(&app, &rp, &started, &done).await, ["pwd"]);
    app.stop().await;
}
