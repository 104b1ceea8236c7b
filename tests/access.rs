//! Who may do what to whom, through every door: the console (a person with roles), SCIM with
//! a person's token from a relying party, `/Me`, and SCIM with a client's own token. One
//! decision (`domain::access`) answers them all; these tests hold each door to it, and replay
//! the attack that found the rules living in the console alone.

mod common;

use common::rp::{
    Browser, PASSWORD, Rp, code_from, console_sign_in, csrf, password_step, redeem, register,
    register_with, sign_in, start_with, token_post,
};
use common::{TestApp, create_code, enrolled_user};
use reqwest::Method;
use serde_json::json;

const CONSOLE: &str = "bypass-idp-console";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Person {
    id: String,
    name: &'static str,
    secret: Vec<u8>,
}

/// The cast: a help-desk member, a security administrator (also in the help desk), someone
/// without a role, a plain user and a user administrator to act on.
struct World {
    app: TestApp,
    admin: String,
    helpdesk: Person,
    security: Person,
    nobody: Person,
    plain: String,
    user_admin: String,
}

async fn person(app: &TestApp, admin: &str, name: &'static str) -> Person {
    let (id, secret) = enrolled_user(app, admin, name).await;
    Person { id, name, secret }
}

async fn group(app: &TestApp, admin: &str, name: &str, members: &[&str]) {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>(),
    });
    let (status, created, _) = app.scim(Method::POST, "/Groups", admin, Some(body)).await;
    assert_eq!(status, 201, "{created}");
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let helpdesk = person(&app, &admin, "acc.helpdesk").await;
    let security = person(&app, &admin, "acc.security").await;
    let nobody = person(&app, &admin, "acc.nobody").await;
    let (plain, _) = enrolled_user(&app, &admin, "acc.plain").await;
    let (user_admin, _) = enrolled_user(&app, &admin, "acc.useradmin").await;
    group(
        &app,
        &admin,
        "Help desk administrators",
        &[&helpdesk.id, &security.id],
    )
    .await;
    group(&app, &admin, "Security administrators", &[&security.id]).await;
    group(&app, &admin, "User administrators", &[&user_admin]).await;
    World {
        app,
        admin,
        helpdesk,
        security,
        nobody,
        plain,
        user_admin,
    }
}

/// A code for `user` from the bootstrap client, for the revoke and audit cases.
async fn code_of(w: &World, user: &str) -> String {
    create_code(&w.app, &w.admin, user, json!({"expiresIn": {"hours": 1}})).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The person's next authenticator code: the current one was spent confirming enrolment.
fn next_totp(person: &Person) -> String {
    bypass_idp::domain::totp::code_at(&person.secret, now() + 30).unwrap()
}

/// The person signs in at `rp` (password, then the authenticator), and the token response.
async fn totp_tokens(w: &World, rp: &Rp, person: &Person) -> serde_json::Value {
    let totp = next_totp(person);
    sign_in(
        &w.app,
        rp,
        person.name,
        Some(("/oauth2/signin/totp", &totp)),
    )
    .await
}

/// The person signs in at `rp` asking for `scopes`, by hand as a browser would: the flow
/// started and the authorization code it ended with, not yet redeemed.
async fn code_by_hand(
    w: &World,
    rp: &Rp,
    person: &Person,
    scopes: &[&str],
) -> (common::rp::Started, String) {
    let started = start_with(&w.app, rp, scopes).await;
    let browser = Browser::new(&w.app);
    let page = password_step(&browser, &started.auth_url, person.name, PASSWORD).await;
    let done = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &next_totp(person))],
        )
        .await;
    let code = code_from(&done, &w.app, rp, &started.state);
    (started, code)
}

/// What a person's console session gets for each action on `target`: the status of
/// generate, revoke, the audit page and reset, and whether the user page lists the codes.
async fn console_answers(w: &World, browser: &Browser, target: &str) -> Vec<(&'static str, u16)> {
    let code = code_of(w, target).await;
    let page = browser.get(&format!("/console/users/{target}")).await;
    let listed = if page.status != 200 {
        page.status
    } else if page.body.contains("only a security administrator") {
        403
    } else {
        200
    };
    let form = browser.get("/account").await;
    let token = csrf(&form);
    let generate = browser
        .post(
            &format!("/console/users/{target}/generate"),
            &[
                ("csrf", &token),
                ("expiry", "in"),
                ("days", "1"),
                ("usage", "once"),
            ],
        )
        .await;
    let audit = browser.get(&format!("/console/users/{target}/audit")).await;
    let revoke = browser
        .post(
            &format!("/console/users/{target}/codes/{code}/revoke"),
            &[("csrf", &token)],
        )
        .await;
    vec![
        ("list", listed),
        ("generate", generate.status),
        ("audit", audit.status),
        (
            "revoke",
            if revoke.status == 303 {
                200
            } else {
                revoke.status
            },
        ),
    ]
}

#[tokio::test]
async fn the_console_door_follows_the_decision() {
    let w = world().await;
    let (helpdesk, landed) =
        console_sign_in(&w.app, w.helpdesk.name, &w.helpdesk.secret, "/console").await;
    assert_eq!(landed.status, 200, "{}", landed.body);
    let all = |status| {
        ["list", "generate", "audit", "revoke"]
            .into_iter()
            .map(|a| (a, status))
            .collect::<Vec<_>>()
    };
    // The help desk serves plain users, and no administrator.
    assert_eq!(console_answers(&w, &helpdesk, &w.plain).await, all(200));
    assert_eq!(
        console_answers(&w, &helpdesk, &w.user_admin).await,
        all(403)
    );
    assert_eq!(
        console_answers(&w, &helpdesk, &w.security.id).await,
        all(403)
    );
    // Reset is the security administrator's.
    let form = helpdesk.get("/account").await;
    let reset = helpdesk
        .post(
            &format!("/console/users/{}/reset", w.plain),
            &[("csrf", &csrf(&form))],
        )
        .await;
    assert_eq!(reset.status, 403, "{}", reset.body);

    // A security administrator (in the help desk too) serves administrators as well.
    let (security, _) =
        console_sign_in(&w.app, w.security.name, &w.security.secret, "/console").await;
    assert_eq!(
        console_answers(&w, &security, &w.user_admin).await,
        all(200)
    );
    assert_eq!(
        console_answers(&w, &security, &w.helpdesk.id).await,
        all(200)
    );
    // …but never resets their own 2-step verification.
    let form = security.get("/account").await;
    let own = security
        .post(
            &format!("/console/users/{}/reset", w.security.id),
            &[("csrf", &csrf(&form))],
        )
        .await;
    assert_eq!(own.status, 403, "{}", own.body);
    let reset = security
        .post(
            &format!("/console/users/{}/reset", w.plain),
            &[("csrf", &csrf(&form))],
        )
        .await;
    assert_eq!(reset.status, 303, "{}", reset.body);

    // Without a role, the console is closed and its forms refuse.
    let (nobody, closed) =
        console_sign_in(&w.app, w.nobody.name, &w.nobody.secret, "/console").await;
    assert_eq!(closed.status, 403);
    let form = nobody.get("/account").await;
    let refused = nobody
        .post(
            &format!("/console/users/{}/generate", w.user_admin),
            &[
                ("csrf", &csrf(&form)),
                ("expiry", "never"),
                ("usage", "unlimited"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    // Nothing was minted for the administrators by anyone but the bootstrap client and the
    // security administrator.
    for (target, by_security) in [(&w.user_admin, 1), (&w.security.id, 0)] {
        let (_, codes, _) = w
            .app
            .scim(
                Method::GET,
                &format!("/Users/{target}/bypassCodes"),
                &w.admin,
                None,
            )
            .await;
        let minted_by_people = codes["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["createdBy"].as_str().unwrap().starts_with("user:"))
            .count();
        assert_eq!(minted_by_people, by_security, "{codes}");
    }
    w.app.stop().await;
}

/// The SCIM door with a person's token from a relying party: user scopes only, so nothing
/// but their own codes, under the self-service rules, whatever their roles.
#[tokio::test]
async fn the_scim_and_me_doors_follow_the_decision() {
    let w = world().await;
    let rp = register(&w.app, false, false).await;
    let tokens = totp_tokens(&w, &rp, &w.security).await;
    let token = tokens["access_token"].as_str().unwrap();
    let plain_code = code_of(&w, &w.plain).await;
    for (target, code) in [
        (w.plain.clone(), plain_code.clone()),
        (w.user_admin.clone(), code_of(&w, &w.user_admin).await),
    ] {
        let codes = format!("/Users/{target}/bypassCodes");
        let one = format!("{codes}/{code}");
        for (method, path, body) in [
            (
                Method::POST,
                codes.clone(),
                Some(json!({"expiresIn": {"hours": 1}})),
            ),
            (Method::GET, codes.clone(), None),
            (Method::GET, one.clone(), None),
            (Method::GET, format!("{one}/auditEvents"), None),
            (
                Method::POST,
                format!("{one}/notifications"),
                Some(json!({"code": "0000-0000-0000"})),
            ),
            (Method::DELETE, one.clone(), None),
            (Method::GET, format!("/Users/{target}/totp"), None),
            (Method::DELETE, format!("/Users/{target}/totp"), None),
            (Method::POST, format!("/Users/{target}/totp"), None),
        ] {
            let (status, body, _) = w.app.scim(method.clone(), &path, token, body).await;
            assert_eq!(status, 403, "{method} {path}: {body}");
        }
    }
    let (status, _, _) = w
        .app
        .scim(Method::PUT, "/BypassCodeSettings", token, Some(json!({})))
        .await;
    assert_eq!(status, 403);
    // On their own id, through /Users or /Me alike: the self-service rules (once, by default).
    let own = format!("/Users/{}/bypassCodes", w.security.id);
    for path in [own.as_str(), "/Me/bypassCodes"] {
        let (status, body, _) = w
            .app
            .scim(
                Method::POST,
                path,
                token,
                Some(json!({"neverExpires": true, "unlimitedUsage": true})),
            )
            .await;
        assert_eq!(status, 400, "{path}: past the self-service limits: {body}");
        let (status, body, _) = w
            .app
            .scim(
                Method::POST,
                path,
                token,
                Some(json!({"expiresIn": {"days": 1}})),
            )
            .await;
        assert_eq!(status, 201, "{path}: {body}");
        assert_eq!(body["origin"], "selfService");
    }
    // A client acting for itself: by its scopes, administrators included.
    for target in [&w.plain, &w.user_admin, &w.security.id] {
        let (status, body, _) = w
            .app
            .scim(
                Method::POST,
                &format!("/Users/{target}/bypassCodes"),
                &w.admin,
                Some(json!({"expiresIn": {"hours": 1}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["origin"], "helpDesk");
    }
    let reader = w.app.admin_token(Some("scim:users")).await;
    let (status, _, _) = w
        .app
        .scim(
            Method::GET,
            &format!("/Users/{}/bypassCodes", w.plain),
            &reader,
            None,
        )
        .await;
    assert_eq!(status, 403, "a client without bypass_codes:manage");
    w.app.stop().await;
}

/// Finding 1 step by step: a help-desk member signs in at the console client by hand (PKCE),
/// takes the authorization code to the token endpoint and would mint for a security
/// administrator and for themselves. Every step now gets nothing.
#[tokio::test]
async fn the_help_desk_attack_over_scim_gets_nothing() {
    let w = world().await;
    let console = Rp {
        client_id: CONSOLE.into(),
        secret: None,
        redirect: format!("{}/console/callback", w.app.base),
    };
    let (started, code) = code_by_hand(
        &w,
        &console,
        &w.helpdesk,
        &["bypass_codes:manage", "users:read"],
    )
    .await;
    let (status, body) = token_post(
        &w.app,
        &console,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &console.redirect),
            ("code_verifier", started.verifier.secret()),
            ("client_id", CONSOLE),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("console")
    );
    // Even a refresh token of the console client from before this fix would be refused.
    let (status, body) = token_post(
        &w.app,
        &console,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "an-old-console-refresh-token"),
            ("client_id", CONSOLE),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    // With any token they can get elsewhere, minting for the security administrator or past
    // their own limits is refused.
    // (The authenticator's next code was spent above: this sign-in uses a bypass code; the
    // self-service limits on one's own id after an authenticator sign-in are tested above.)
    let rp = register(&w.app, false, false).await;
    let bypass = create_code(
        &w.app,
        &w.admin,
        &w.helpdesk.id,
        json!({"expiresIn": {"hours": 1}}),
    )
    .await;
    let tokens = sign_in(
        &w.app,
        &rp,
        w.helpdesk.name,
        Some(("/oauth2/signin/bypass", bypass["code"].as_str().unwrap())),
    )
    .await;
    let token = tokens["access_token"].as_str().unwrap();
    let unbounded = json!({"neverExpires": true, "unlimitedUsage": true});
    let (status, _, _) = w
        .app
        .scim(
            Method::POST,
            &format!("/Users/{}/bypassCodes", w.security.id),
            token,
            Some(unbounded.clone()),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = w
        .app
        .scim(
            Method::POST,
            &format!("/Users/{}/bypassCodes", w.helpdesk.id),
            token,
            Some(unbounded),
        )
        .await;
    assert_eq!(
        status, 403,
        "their own id: a bypass-code sign-in mints nothing"
    );
    let (_, codes, _) = w
        .app
        .scim(
            Method::GET,
            &format!("/Users/{}/bypassCodes", w.security.id),
            &w.admin,
            None,
        )
        .await;
    assert_eq!(codes["totalResults"], 0);
    w.app.stop().await;
}

/// A relying party is granted `bypass_codes:self` only if registered to be trusted with it.
#[tokio::test]
async fn only_a_client_allowed_self_service_codes_can_mint() {
    let w = world().await;
    let other = register_with(&w.app, false, false, false).await;
    let started = start_with(&w.app, &other, &["bypass_codes:self"]).await;
    let page = Browser::new(&w.app).get(&started.auth_url).await;
    let location = page.location.expect("back to the client");
    assert!(
        location.starts_with(&other.redirect) && location.contains("error=invalid_scope"),
        "{location}"
    );
    // Its users' tokens (without the scope) cannot mint.
    let (started, code) = code_by_hand(&w, &other, &w.nobody, &[]).await;
    let (status, tokens) = redeem(&w.app, &other, &code, started.verifier.secret()).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, body, _) = w
        .app
        .scim(
            Method::POST,
            "/Me/bypassCodes",
            tokens["access_token"].as_str().unwrap(),
            Some(json!({"expiresIn": {"days": 1}})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // Registering such a client needs the explicit switch.
    let (code, _, err) = w.app.cli(
        &[
            "client",
            "add",
            "--redirect-uri",
            "https://rp.example/cb",
            "--scope",
            "openid bypass_codes:self",
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("--allow-self-service-codes"), "{err}");
    let (code, out, err) = w.app.cli(
        &[
            "client",
            "add",
            "--redirect-uri",
            "https://rp.example/cb",
            "--scope",
            "openid bypass_codes:self",
            "--allow-self-service-codes",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    w.app.stop().await;
}

/// A refresh may ask for less than the sign-in granted: the new access token carries less.
#[tokio::test]
async fn a_refresh_narrows_the_scope_when_asked() {
    let w = world().await;
    let rp = register(&w.app, false, false).await;
    let tokens = totp_tokens(&w, &rp, &w.nobody).await;
    assert!(
        tokens["scope"]
            .as_str()
            .unwrap()
            .contains("bypass_codes:self")
    );
    let (status, narrow) = token_post(
        &w.app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("scope", "openid profile"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{narrow}");
    assert_eq!(narrow["scope"], "openid profile");
    let (status, _, _) = w
        .app
        .scim(
            Method::GET,
            "/Me/bypassCodes",
            narrow["access_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(status, 403, "the narrowed token lacks bypass_codes:self");
    // The sign-in keeps its scope: a later refresh without `scope` gets all of it back.
    let (status, full) = token_post(
        &w.app,
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", narrow["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{full}");
    assert!(
        full["scope"]
            .as_str()
            .unwrap()
            .contains("bypass_codes:self")
    );
    w.app.stop().await;
}

/// "Email this code" is no guessing oracle: 40 wrong codes at once compare at most the limit
/// (5 per actor and per code), each mismatch is audited, and the right code right after them
/// is refused within the window.
#[tokio::test]
async fn forty_parallel_wrong_codes_at_the_email_endpoint_compare_at_most_the_limit() {
    let w = world().await;
    let created = create_code(
        &w.app,
        &w.admin,
        &w.plain,
        json!({"expiresIn": {"hours": 1}}),
    )
    .await;
    let path = format!(
        "/Users/{}/bypassCodes/{}/notifications",
        w.plain,
        created["id"].as_str().unwrap()
    );
    let guesses = (0..40).map(|i| {
        let app = &w.app;
        let path = path.clone();
        let token = w.admin.clone();
        async move {
            let (status, _, _) = app
                .scim(
                    Method::POST,
                    &path,
                    &token,
                    Some(json!({"code": format!("0000-0000-{i:04}")})),
                )
                .await;
            status
        }
    });
    let statuses: Vec<u16> = futures_util::future::join_all(guesses).await;
    let compared = statuses.iter().filter(|s| **s == 400).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(compared + refused, 40, "{statuses:?}");
    assert!(compared <= 5, "{compared} compared: {statuses:?}");
    let (status, body, headers) = w
        .app
        .scim(
            Method::POST,
            &path,
            &w.admin,
            Some(json!({"code": created["code"]})),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    let (_, events, _) = w
        .app
        .scim(
            Method::GET,
            &format!(
                "/Users/{}/bypassCodes/{}/auditEvents",
                w.plain,
                created["id"].as_str().unwrap()
            ),
            &w.admin,
            None,
        )
        .await;
    let audited = events["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "email_refused")
        .count();
    assert_eq!(audited, compared, "{events}");
    w.app.stop().await;
}

/// Policy changes, passwords, deactivation, deletion, 2-step resets and role groups are
/// stored events, read at `/AuditEvents` (scope `audit:read`) and on the console's audit log
/// by security administrators only.
#[tokio::test]
async fn the_audit_log_is_stored_and_read_by_security_administrators() {
    let w = world().await;
    let app = &w.app;
    let (status, _, _) = app
        .scim(
            Method::PUT,
            "/BypassCodeSettings",
            &w.admin,
            Some(json!({"helpDeskMaxUsage": 3})),
        )
        .await;
    assert_eq!(status, 200);
    let mut body = common::user_body("acc.audited");
    body["password"] = json!("correct horse battery staple");
    let audited = app.create_user(&w.admin, body).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deactivate = json!({"schemas": [common::PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let (status, _, _) = app
        .scim(
            Method::PATCH,
            &format!("/Users/{audited}"),
            &w.admin,
            Some(deactivate),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .scim(
            Method::DELETE,
            &format!("/Users/{}/totp", w.plain),
            &w.admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .scim(Method::DELETE, &format!("/Users/{audited}"), &w.admin, None)
        .await;
    assert_eq!(status, 204);

    let admin = w.admin.as_str();
    let search = |filter: String| async move {
        let path = format!(
            "/AuditEvents?filter={}",
            url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
        );
        let (status, body, _) = app.scim(Method::GET, &path, admin, None).await;
        assert_eq!(status, 200, "{filter}: {body}");
        body
    };
    let actor = format!("client:{}", app.admin_id);
    for (event, user) in [
        ("policy_changed", None),
        ("role_group_changed", None),
        ("password_set", Some(audited.as_str())),
        ("deactivated", Some(audited.as_str())),
        ("user_deleted", Some(audited.as_str())),
        ("mfa_reset", Some(w.plain.as_str())),
    ] {
        let found = search(format!("event eq \"{event}\" and actor eq \"{actor}\"")).await;
        let first = &found["Resources"][0];
        assert_eq!(first["event"], event, "{found}");
        assert_eq!(first["userId"].as_str(), user, "{found}");
        assert_eq!(first["ip"], "127.0.0.1");
    }
    // A role group's event says who gained the role.
    let groups = search("event eq \"role_group_changed\"".into()).await;
    assert!(
        groups["Resources"][0]["detail"]
            .as_str()
            .unwrap()
            .contains(&w.user_admin),
        "{groups}"
    );
    let mine = search(format!("userId eq \"{audited}\"")).await;
    assert_eq!(mine["totalResults"], 3, "{mine}");
    let later = search("at gt \"2999-01-01T00:00:00Z\"".into()).await;
    assert_eq!(later["totalResults"], 0);
    let (status, page, _) = app
        .scim(
            Method::GET,
            "/AuditEvents?startIndex=2&count=2",
            &w.admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["startIndex"], 2);
    let (status, body, _) = app
        .scim(
            Method::GET,
            "/AuditEvents?filter=detail%20eq%20%22x%22",
            &w.admin,
            None,
        )
        .await;
    common::assert_scim_error(status, &body, 400, Some("invalidFilter"));
    // Without audit:read, no.
    let provisioning = app
        .admin_token(Some("scim:users bypass_codes:manage"))
        .await;
    for path in ["/AuditEvents", "/AuditEvents?filter=detail%20eq%20%22x%22"] {
        let (status, _, _) = app.scim(Method::GET, path, &provisioning, None).await;
        assert_eq!(status, 403, "{path}: refused before the filter is read");
    }

    // The console: the security administrator's log; the help desk has none.
    let (security, _) =
        console_sign_in(app, w.security.name, &w.security.secret, "/console/audit").await;
    let log = security.get("/console/audit?event=policy_changed").await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert!(log.body.contains("policy changed"), "{}", log.body);
    let (helpdesk, _) = console_sign_in(app, w.helpdesk.name, &w.helpdesk.secret, "/console").await;
    assert_eq!(helpdesk.get("/console/audit").await.status, 403);
    w.app.stop().await;
}
