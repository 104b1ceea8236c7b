//! The help-desk console and "My security" over HTTP, as a browser without JavaScript uses
//! them: sign-in through the service's own OIDC flow, find a user, generate a code with the
//! console's labels, email it, and the codes working (and running out) at a relying party.
//! (The same flows in a real browser are in `tests/browser`.)

mod common;

use common::rp::{
    Browser, PASSWORD, Page, console_sign_in, csrf, not_now, password_step, register, sign_in,
};
use common::{TestApp, enrolled_user, user_body};
use reqwest::Method;
use serde_json::json;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The text between two markers of a page, with the entities templates write in attributes
/// (`&#x2f;` for `/`) decoded as a browser would.
fn between(body: &str, before: &str, after: &str) -> String {
    let body = body.replace("&#x2f;", "/").replace("&amp;", "&");
    let start = body
        .find(before)
        .unwrap_or_else(|| panic!("no {before} in {body}"))
        + before.len();
    let end = body[start..].find(after).unwrap() + start;
    body[start..end].to_owned()
}

fn outbox(app: &TestApp) -> Vec<String> {
    let dir = app.data_dir.path().join("outbox");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

async fn helpdesk(app: &TestApp, admin: &str, name: &str) -> Vec<u8> {
    let (id, secret) = enrolled_user(app, admin, name).await;
    let (status, _, _) = app
        .scim(
            Method::POST,
            "/Groups",
            admin,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Help desk administrators", "members": [{"value": id}]
            })),
        )
        .await;
    assert_eq!(status, 201);
    secret
}

async fn generate(browser: &Browser, user_id: &str, page: &Page, fields: &[(&str, &str)]) -> Page {
    let mut form = vec![("csrf", csrf(page))];
    form.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser
        .post(&format!("/console/users/{user_id}/generate"), &form)
        .await
}

#[tokio::test]
async fn the_help_desk_generates_emails_and_the_code_works_twice_then_is_used_up() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let secret = helpdesk(&app, &admin, "desk.anna").await;
    let (caller, caller_secret) = enrolled_user(&app, &admin, "lost.phone").await;
    let _ = caller_secret;

    let (browser, users) = console_sign_in(&app, "desk.anna", &secret, "/console").await;
    assert_eq!(users.status, 200, "{}", users.body);
    assert!(users.body.contains("Find a user"), "{}", users.body);
    let found = browser.get("/console/users?q=lost").await;
    assert!(
        found.body.contains(&format!("/console/users/{caller}")),
        "{}",
        found.body
    );
    let page = browser.get(&format!("/console/users/{caller}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Enrolled (authenticator app)") && page.body.contains("More actions"),
        "{}",
        page.body
    );
    let form = browser
        .get(&format!("/console/users/{caller}/generate"))
        .await;
    assert!(
        form.body.contains("For <strong>lost.phone</strong>"),
        "the dialog names the user it is for: {}",
        form.body
    );
    for label in [
        "Bypass code expiration",
        "Bypass code use",
        "Never expires",
        "Once",
        "Number of times",
        "Unlimited",
        "Generate",
    ] {
        assert!(form.body.contains(label), "{label}: {}", form.body);
    }
    // Expires in 1 hour, usable 2 times.
    let code_page = generate(
        &browser,
        &caller,
        &form,
        &[
            ("expiry", "in"),
            ("days", "0"),
            ("hours", "1"),
            ("minutes", "0"),
            ("usage", "times"),
            ("times", "2"),
        ],
    )
    .await;
    assert_eq!(code_page.status, 200, "{}", code_page.body);
    assert!(
        code_page.body.contains("For <strong>lost.phone</strong>"),
        "{}",
        code_page.body
    );
    assert!(
        code_page.body.contains("usable 2 times"),
        "{}",
        code_page.body
    );
    let code = between(&code_page.body, "id=\"code\" class=\"code\" value=\"", "\"").to_owned();
    assert_eq!(code.len(), 14, "grouped: {code}");
    let email_action = format!(
        "/console/users/{}",
        between(
            &code_page.body,
            "<form method=\"post\" action=\"/console/users/",
            "\""
        )
    );
    // The Email button sends no code: the console holds the one it generated.
    let sent = browser
        .post(&email_action, &[("csrf", &csrf(&code_page))])
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(
        sent.body.contains("Emailed to lost.phone@example.com"),
        "{}",
        sent.body
    );
    assert!(
        !sent.body.contains(&code),
        "the plaintext is not shown again"
    );
    // Sent once, it is let go: a second Email (or a replayed form) sends nothing.
    let again = browser
        .post(&email_action, &[("csrf", &csrf(&code_page))])
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    let mail = common::decode_mail(&outbox(&app).pop().expect("a message"));
    assert!(mail.contains(&code), "the email carries the code");

    // The user signs in at a relying party with it: twice, then it is used up.
    let rp = register(&app, false, true).await;
    for _ in 0..2 {
        let tokens = sign_in(
            &app,
            &rp,
            "lost.phone",
            Some(("/oauth2/signin/bypass", &code)),
        )
        .await;
        assert!(tokens["id_token"].is_string());
    }
    let started = common::rp::start(&app, &rp).await;
    let user_browser = Browser::new(&app);
    password_step(&user_browser, &started.auth_url, "lost.phone", PASSWORD).await;
    let bypass = user_browser.get("/oauth2/signin?method=bypass").await;
    let third = user_browser
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&bypass)), ("code", &code)],
        )
        .await;
    assert!(third.body.contains("used up"), "{}", third.body);

    // The user page lists the code as exhausted; a forged form changes nothing.
    let page = browser.get(&format!("/console/users/{caller}")).await;
    assert!(page.body.contains("exhausted"), "{}", page.body);
    let forged = browser
        .post(
            &format!("/console/users/{caller}/generate"),
            &[
                ("csrf", "nope"),
                ("expiry", "never"),
                ("usage", "unlimited"),
            ],
        )
        .await;
    assert_eq!(forged.status, 400);
    app.stop().await;
}

#[tokio::test]
async fn never_expires_unlimited_revoke_policy_field_errors_and_the_unenrolled() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let secret = helpdesk(&app, &admin, "desk.ben").await;
    let (caller, _) = enrolled_user(&app, &admin, "caller.two").await;
    let fresh = app.create_user(&admin, user_body("not.enrolled")).await;
    let (browser, _) = console_sign_in(&app, "desk.ben", &secret, "/console").await;
    let form = browser
        .get(&format!("/console/users/{caller}/generate"))
        .await;
    let code_page = generate(
        &browser,
        &caller,
        &form,
        &[("expiry", "never"), ("usage", "unlimited")],
    )
    .await;
    assert_eq!(code_page.status, 200, "{}", code_page.body);
    assert!(
        code_page.body.contains("never expires, unlimited uses"),
        "{}",
        code_page.body
    );

    // Revoke from the user page.
    let page = browser.get(&format!("/console/users/{caller}")).await;
    let action = format!(
        "/console/users/{}",
        between(
            &page.body,
            "<form method=\"post\" action=\"/console/users/",
            "\""
        )
    );
    assert!(action.ends_with("/revoke"), "{action}");
    let revoked = browser.post(&action, &[("csrf", &csrf(&page))]).await;
    assert_eq!(revoked.status, 303);
    let page = browser.get(revoked.location.as_deref().unwrap()).await;
    assert!(
        page.body.contains("The bypass code is revoked.") && page.body.contains(">revoked<"),
        "{}",
        page.body
    );

    // A policy limit shows next to the field that broke it.
    let (status, _, _) = app
        .scim(
            Method::PUT,
            "/BypassCodeSettings",
            &admin,
            Some(json!({"helpDeskMaxUsage": 3, "helpDeskMaxExpiryMinutes": 120})),
        )
        .await;
    assert_eq!(status, 200);
    let form = browser
        .get(&format!("/console/users/{caller}/generate"))
        .await;
    assert!(
        form.body.contains("at most 3 uses") && form.body.contains("at most 120 minutes (2 hours)"),
        "{}",
        form.body
    );
    let refused = generate(
        &browser,
        &caller,
        &form,
        &[("expiry", "in"), ("hours", "1"), ("usage", "unlimited")],
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(
        between(&refused.body, "id=\"usage-error\" role=\"alert\">", "<")
            .contains("Unlimited is not allowed: the help-desk policy allows at most 3 uses"),
        "{}",
        refused.body
    );
    assert!(
        !refused.body.contains("id=\"expiry-error\""),
        "only the usage field is wrong"
    );
    let refused = generate(
        &browser,
        &caller,
        &form,
        &[("expiry", "in"), ("days", "1"), ("usage", "once")],
    )
    .await;
    assert!(
        between(&refused.body, "id=\"expiry-error\" role=\"alert\">", "<").contains("120"),
        "{}",
        refused.body
    );
    let refused = generate(
        &browser,
        &caller,
        &form,
        &[("expiry", "in"), ("hours", "x"), ("usage", "once")],
    )
    .await;
    assert!(
        refused.body.contains("id=\"expiry-error\""),
        "{}",
        refused.body
    );

    // A user without 2-step verification gets an explanation, not the dialog.
    let id = fresh["id"].as_str().unwrap();
    let explained = browser.get(&format!("/console/users/{id}/generate")).await;
    assert!(
        explained
            .body
            .contains("is not enrolled in 2-step verification")
            && !explained.body.contains("Bypass code expiration"),
        "{}",
        explained.body
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_role_the_console_says_no_and_my_security_serves_yourself() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (_, secret) = enrolled_user(&app, &admin, "just.me").await;
    let (browser, page) = console_sign_in(&app, "just.me", &secret, "/console").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("No access"), "{}", page.body);
    let users = browser.get("/console/users").await;
    assert_eq!(users.status, 403);

    let account = browser.get("/account").await;
    assert_eq!(account.status, 200, "{}", account.body);
    assert!(
        account.body.contains("Enrolled (authenticator app)")
            && account.body.contains("Generate bypass code"),
        "{}",
        account.body
    );
    let form = browser.get("/account/generate").await;
    assert!(
        form.body.contains("at most 1 use"),
        "self-service limits: {}",
        form.body
    );
    let mut fields = vec![("csrf", csrf(&form))];
    fields.extend([("expiry", "never"), ("usage", "once")].map(|(k, v)| (k, v.to_owned())));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let code_page = browser.post("/account/generate", &fields).await;
    assert_eq!(code_page.status, 200, "{}", code_page.body);
    assert!(code_page.body.contains("usable once"), "{}", code_page.body);
    let account = browser.get("/account").await;
    assert!(account.body.contains(">active<"), "{}", account.body);
    let action = between(
        &account.body,
        "<form method=\"post\" action=\"/account/codes/",
        "\"",
    )
    .to_owned();
    let revoked = browser
        .post(
            &format!("/account/codes/{action}"),
            &[("csrf", &csrf(&account))],
        )
        .await;
    assert_eq!(revoked.status, 303);

    // Signing out ends the session.
    let account = browser.get("/account").await;
    let out = browser
        .post("/console/logout", &[("csrf", &csrf(&account))])
        .await;
    assert_eq!(out.status, 200);
    let again = browser.get("/account").await;
    assert_eq!(again.status, 303, "back to sign-in");
    app.stop().await;
}

#[tokio::test]
async fn audit_policy_and_reset_follow_the_roles() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let desk_secret = helpdesk(&app, &admin, "desk.cat").await;
    let (sec, sec_secret) = enrolled_user(&app, &admin, "sec.dan").await;
    let (status, _, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &admin,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Security administrators", "members": [{"value": sec}]
            })),
        )
        .await;
    assert_eq!(status, 201);
    let (target, _) = enrolled_user(&app, &admin, "target.eve").await;

    // The help desk: a code, then the user's audit trail shows it; no policy, no reset.
    let (desk, _) = console_sign_in(&app, "desk.cat", &desk_secret, "/console").await;
    let form = desk.get(&format!("/console/users/{target}/generate")).await;
    let made = generate(
        &desk,
        &target,
        &form,
        &[("expiry", "never"), ("usage", "once")],
    )
    .await;
    assert_eq!(made.status, 200);
    let trail = desk.get(&format!("/console/users/{target}/audit")).await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    assert!(
        trail.body.contains("generated") && trail.body.contains("user:"),
        "{}",
        trail.body
    );
    assert_eq!(desk.get("/console/policy").await.status, 403);
    assert_eq!(
        desk.get(&format!("/console/users/{target}/reset"))
            .await
            .status,
        403
    );
    let user_page = desk.get(&format!("/console/users/{target}")).await;
    assert!(
        !user_page.body.contains("Reset 2-step verification"),
        "no reset for the help desk"
    );

    // The security administrator: the policy page saves; reset asks, then resets.
    let (security, policy_page) =
        console_sign_in(&app, "sec.dan", &sec_secret, "/console/policy").await;
    assert_eq!(policy_page.status, 200, "{}", policy_page.body);
    assert!(
        policy_page.body.contains("Digits per code"),
        "{}",
        policy_page.body
    );
    assert!(
        policy_page
            .body
            .contains("id=\"codeLength\" name=\"codeLength\" min=\"8\" max=\"20\" value=\"12\"")
            && policy_page
                .body
                .contains("name=\"selfServiceGenerationEnabled\" value=\"true\" checked"),
        "the form shows the policy in force: {}",
        policy_page.body
    );
    let saved = security
        .post(
            "/console/policy",
            &[
                ("csrf", &csrf(&policy_page)),
                ("codeLength", "10"),
                ("maxActive", "4"),
                ("helpDeskGenerationEnabled", "true"),
                ("helpDeskMaxUsage", "5"),
                ("helpDeskMaxExpiryMinutes", ""),
                ("selfServiceGenerationEnabled", "true"),
                ("selfServiceMaxUsage", "1"),
                ("selfServiceMaxExpiryMinutes", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(
        saved.body.contains("The policy is saved."),
        "{}",
        saved.body
    );
    let (_, policy, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &admin, None)
        .await;
    assert_eq!(policy["codeLength"], 10);
    assert_eq!(policy["helpDeskMaxUsage"], 5);
    let refused = security
        .post(
            "/console/policy",
            &[
                ("csrf", &csrf(&policy_page)),
                ("codeLength", "3"),
                ("maxActive", "4"),
            ],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let confirm = security
        .get(&format!("/console/users/{target}/reset"))
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm
            .body
            .contains("every bypass code of theirs is revoked"),
        "{}",
        confirm.body
    );
    let done = security
        .post(
            &format!("/console/users/{target}/reset"),
            &[("csrf", &csrf(&confirm))],
        )
        .await;
    assert_eq!(done.status, 303);
    let (_, state, _) = app
        .scim(Method::GET, &format!("/Users/{target}/totp"), &admin, None)
        .await;
    assert_eq!(state["status"], "none", "{state}");
    let (_, codes, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{target}/bypassCodes?filter=status%20eq%20%22active%22"),
            &admin,
            None,
        )
        .await;
    assert_eq!(codes["totalResults"], 0, "{codes}");
    app.stop().await;
}

#[tokio::test]
async fn a_sign_in_finishes_only_in_the_browser_that_started_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let secret = helpdesk(&app, &admin, "desk.fay").await;
    // The attacker signs in as themselves in their own browser, but stops at the callback…
    let attacker = Browser::new(&app);
    let first = attacker.get("/console").await;
    let page = password_step(
        &attacker,
        first.location.as_deref().unwrap(),
        "desk.fay",
        PASSWORD,
    )
    .await;
    let totp = bypass_idp::domain::totp::code_at(&secret, now() + 30).unwrap();
    let done = attacker
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &totp)],
        )
        .await;
    let callback = done.location.unwrap();
    // …and plants it in a victim's browser, which must not end up signed in as the attacker.
    let victim = Browser::new(&app);
    let planted = victim.get(&callback).await;
    assert_eq!(planted.status, 400, "{}", planted.body);
    assert!(
        planted.body.contains("not started in this browser"),
        "{}",
        planted.body
    );
    let after = victim.get("/console/users").await;
    assert_eq!(after.status, 303, "the victim has no session");
    // The browser that started it still can finish.
    let finished = attacker.get(&callback).await;
    assert_eq!(finished.status, 303, "{}", finished.body);
    assert_eq!(finished.location.as_deref(), Some("/console"));
    app.stop().await;
}

#[tokio::test]
async fn the_help_desk_cannot_mint_for_itself_or_administrators_and_pages_through_users() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let secret = helpdesk(&app, &admin, "desk.gus").await;
    let (sec, _) = enrolled_user(&app, &admin, "sec.hal").await;
    let (status, _, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &admin,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Security administrators", "members": [{"value": sec}]
            })),
        )
        .await;
    assert_eq!(status, 201);
    for i in 0..26 {
        app.create_user(&admin, user_body(&format!("page.user{i:02}")))
            .await;
    }
    let (browser, users) = console_sign_in(&app, "desk.gus", &secret, "/console").await;
    // More than a page: the next page link works (it is URL-encoded by the template).
    let page_one = browser.get("/console/users?q=page.user").await;
    assert_eq!(page_one.status, 200, "{}", page_one.body);
    assert!(page_one.body.contains("Next page"), "{}", page_one.body);
    let page_two = browser.get("/console/users?q=page.user&page=2").await;
    assert!(
        page_two.body.contains("page.user25") && page_two.body.contains("Previous page"),
        "{}",
        page_two.body
    );

    // For yourself only under the self-service rules (no unlimited, never-expiring code), and
    // never for an administrator.
    assert_eq!(users.status, 200);
    let (_, found, _) = app
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22desk.gus%22",
            &admin,
            None,
        )
        .await;
    let own = found["Resources"][0]["id"].as_str().unwrap().to_owned();
    for (target, status) in [(own.as_str(), 400), (sec.as_str(), 403)] {
        let form = browser
            .get(&format!("/console/users/{target}/generate"))
            .await;
        let refused = generate(
            &browser,
            target,
            &form,
            &[("expiry", "never"), ("usage", "unlimited")],
        )
        .await;
        assert_eq!(refused.status, status, "{}", refused.body);
    }
    let (_, mine, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{own}/bypassCodes"),
            &admin,
            None,
        )
        .await;
    assert_eq!(mine["totalResults"], 0);
    let (_, codes, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{sec}/bypassCodes"),
            &admin,
            None,
        )
        .await;
    assert_eq!(codes["totalResults"], 0);

    // A console sign-in with a bypass code carries no role.
    let (_, desk_user, _) = app
        .scim(Method::GET, &format!("/Users/{own}"), &admin, None)
        .await;
    let code = common::create_code(
        &app,
        &admin,
        desk_user["id"].as_str().unwrap(),
        json!({"neverExpires": true}),
    )
    .await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = Browser::new(&app);
    let first = other.get("/console").await;
    password_step(
        &other,
        first.location.as_deref().unwrap(),
        "desk.gus",
        PASSWORD,
    )
    .await;
    let bypass = other.get("/oauth2/signin?method=bypass").await;
    let done = other
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&bypass)), ("code", &code)],
        )
        .await;
    let done = not_now(&other, done).await;
    let callback = done.location.expect("back to the console");
    let landed = other.get(&callback).await;
    let page = other.get(landed.location.as_deref().unwrap()).await;
    assert_eq!(
        page.status, 403,
        "a bypass-code sign-in opens no administrator powers: {}",
        page.body
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reset_offers_the_code_the_user_will_need_and_the_dialog_makes_it_for_enrolment() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    // A security administrator who is also on the help desk: may reset and generate.
    let (both, secret) = enrolled_user(&app, &admin, "sec.desk").await;
    for group in ["Security administrators", "Help desk administrators"] {
        let (status, _, _) = app
            .scim(
                Method::POST,
                "/Groups",
                &admin,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": group, "members": [{"value": both}]
                })),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (target, _) = enrolled_user(&app, &admin, "phone.gone").await;
    let (console, _) = console_sign_in(&app, "sec.desk", &secret, "/console").await;
    // Before a reset the dialog offers no purpose: an enrolled user gets sign-in codes.
    let form = console
        .get(&format!("/console/users/{target}/generate"))
        .await;
    assert!(!form.body.contains("name=\"purpose\""), "{}", form.body);
    let confirm = console.get(&format!("/console/users/{target}/reset")).await;
    assert_eq!(confirm.status, 200);
    assert!(
        confirm.body.contains("will need a bypass code"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("Reset and generate a bypass code"));
    let reset = console
        .post(
            &format!("/console/users/{target}/reset"),
            &[("csrf", &csrf(&confirm)), ("then", "generate")],
        )
        .await;
    assert_eq!(reset.status, 303);
    let dialog_path = format!("/console/users/{target}/generate?purpose=enrolment");
    assert_eq!(reset.location.as_deref(), Some(dialog_path.as_str()));
    let dialog = console.get(&dialog_path).await;
    assert_eq!(dialog.status, 200, "{}", dialog.body);
    assert!(dialog.body.contains("was reset"), "{}", dialog.body);
    assert!(
        dialog
            .body
            .contains("name=\"purpose\" value=\"enrolment\" checked"),
        "{}",
        dialog.body
    );
    let made = generate(
        &console,
        &target,
        &dialog,
        &[
            ("expiry", "in"),
            ("hours", "4"),
            ("usage", "once"),
            ("purpose", "enrolment"),
        ],
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(
        made.body
            .contains("for setting up an authenticator app only"),
        "{}",
        made.body
    );
    // The user page says what the user waits for, and lists the code as set-up only.
    let user_page = console.get(&format!("/console/users/{target}")).await;
    assert!(
        user_page
            .body
            .contains("sets up an authenticator app only with a bypass code"),
        "{}",
        user_page.body
    );
    assert!(
        user_page.body.contains("(set-up only)"),
        "{}",
        user_page.body
    );
    // An unknown purpose from a forged form is the service's 400, said on the form.
    let forged = generate(
        &console,
        &target,
        &dialog,
        &[
            ("expiry", "never"),
            ("usage", "once"),
            ("purpose", "forever"),
        ],
    )
    .await;
    assert_eq!(forged.status, 400, "{}", forged.body);
    app.stop().await;
}
