//! Administrator roles through group membership: a user's sign-in at the console carries the
//! scopes of their roles, only while they hold them; at every other client it carries none.

mod common;

use common::rp::{Browser, PASSWORD, Rp, code_from, csrf, password_step, register, start_with};
use common::{PATCH_SCHEMA, TestApp, enrolled_user};
use reqwest::Method;
use serde_json::{Value, json};

const CONSOLE: &str = "bypass-idp-console";

fn console(app: &TestApp) -> Rp {
    Rp {
        client_id: CONSOLE.into(),
        secret: None,
        redirect: format!("{}/console/callback", app.base),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs `user` in at `rp` with password and TOTP asking for `scopes`; the token response.
async fn sign_in_with(app: &TestApp, rp: &Rp, user: &str, secret: &[u8], scopes: &[&str]) -> Value {
    let started = start_with(app, rp, scopes).await;
    let browser = Browser::new(app);
    let page = password_step(&browser, &started.auth_url, user, PASSWORD).await;
    assert!(page.body.contains("authenticator app"), "{}", page.body);
    let totp = bypass_idp::domain::totp::code_at(secret, now() + 30).unwrap();
    let page = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &totp)],
        )
        .await;
    let code = code_from(&page, app, rp, &started.state);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", rp.redirect.as_str()),
        ("code_verifier", started.verifier.secret().as_str()),
        ("client_id", rp.client_id.as_str()),
    ];
    if rp.secret.is_some() {
        form.pop();
    }
    let mut request = app.http.post(app.url("/oauth2/token")).form(&form);
    if let Some(secret) = &rp.secret {
        request = request.basic_auth(&rp.client_id, Some(secret));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn scopes(tokens: &Value) -> Vec<String> {
    tokens["scope"]
        .as_str()
        .unwrap()
        .split(' ')
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_help_desk_group_gives_console_scopes_only_while_it_lasts() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (helper, helper_secret) = enrolled_user(&app, &admin, "hd.helper").await;
    let (_, plain_secret) = enrolled_user(&app, &admin, "hd.plain").await;
    let (caller, _) = enrolled_user(&app, &admin, "hd.caller").await;
    let (status, group, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &admin,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Help desk administrators",
                "members": [{"value": helper}]
            })),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let asked = [
        "bypass_codes:manage",
        "users:read",
        "mfa:read",
        "bypass_codes:settings",
    ];

    // A help-desk member gets the help-desk scopes at the console, and not the policy scope.
    let tokens = sign_in_with(&app, &console(&app), "hd.helper", &helper_secret, &asked).await;
    let granted = scopes(&tokens);
    for scope in ["bypass_codes:manage", "users:read", "mfa:read", "openid"] {
        assert!(granted.iter().any(|s| s == scope), "{scope} in {granted:?}");
    }
    assert!(
        !granted.iter().any(|s| s == "bypass_codes:settings"),
        "{granted:?}"
    );
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, found, _) = app
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22hd.caller%22",
            &access,
            None,
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["Resources"][0]["id"], caller.as_str());
    let (status, code, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{caller}/bypassCodes"),
            &access,
            Some(json!({"expiresIn": {"hours": 1}, "maxUsageCount": 2})),
        )
        .await;
    assert_eq!(status, 201, "{code}");
    assert_eq!(code["createdBy"], format!("user:{helper}"));
    let (status, _, _) = app
        .scim(Method::PUT, "/BypassCodeSettings", &access, Some(json!({})))
        .await;
    assert_eq!(status, 403, "the help desk cannot lift its own limits");
    let (status, _, _) = app
        .scim(
            Method::POST,
            "/Users",
            &access,
            Some(common::user_body("nope")),
        )
        .await;
    assert_eq!(status, 403, "the help desk does not provision users");

    // Someone without a role gets only the user scopes at the console.
    let plain = sign_in_with(&app, &console(&app), "hd.plain", &plain_secret, &asked).await;
    assert!(
        !scopes(&plain)
            .iter()
            .any(|s| s == "bypass_codes:manage" || s == "users:read"),
        "{plain}"
    );
    let (status, _, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{caller}/bypassCodes"),
            plain["access_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(status, 403);

    // Any other client: administrative scopes are refused outright, role or not.
    let rp = register(&app, false, true).await;
    let started = start_with(&app, &rp, &["bypass_codes:manage"]).await;
    let page = Browser::new(&app).get(&started.auth_url).await;
    assert_eq!(page.status, 303);
    let location = page.location.unwrap();
    assert!(
        location.starts_with(&rp.redirect) && location.contains("error=invalid_scope"),
        "{location}"
    );

    // Leaving the group ends the console sign-in that carried the role: its access token and
    // its refresh token stop working at once.
    let (status, _, _) = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{group_id}"),
            &admin,
            Some(json!({
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "remove", "path": format!("members[value eq \"{helper}\"]")}]
            })),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{caller}/bypassCodes"),
            &access,
            None,
        )
        .await;
    assert_eq!(status, 401, "the role's token is dead");
    let refreshed = app
        .http
        .post(app.url("/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", CONSOLE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 400);
    let body: Value = refreshed.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // The role-less console sign-in is untouched by someone else's change.
    let (status, _, _) = app
        .scim(
            Method::GET,
            "/Me/bypassCodes",
            plain["access_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_ne!(status, 401);
    app.stop().await;
}

#[tokio::test]
async fn renaming_or_deleting_a_role_group_withdraws_the_role() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (first, first_secret) = enrolled_user(&app, &admin, "sec.first").await;
    let (second, second_secret) = enrolled_user(&app, &admin, "sec.second").await;
    let (_, group, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &admin,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Security administrators",
                "members": [{"value": first}, {"value": second}]
            })),
        )
        .await;
    let group_id = group["id"].as_str().unwrap().to_owned();
    let first_tokens = sign_in_with(
        &app,
        &console(&app),
        "sec.first",
        &first_secret,
        &["bypass_codes:settings"],
    )
    .await;
    assert!(
        scopes(&first_tokens)
            .iter()
            .any(|s| s == "bypass_codes:settings")
    );
    let first_access = first_tokens["access_token"].as_str().unwrap().to_owned();
    let (status, _, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &first_access, None)
        .await;
    assert_eq!(status, 200);

    // Renamed away from the role's name: every member loses the role, not only removed ones.
    let (status, _, _) = app
        .scim(Method::PATCH, &format!("/Groups/{group_id}"), &admin, Some(json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Former security administrators"}]
        })))
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &first_access, None)
        .await;
    assert_eq!(status, 401);

    // Renamed back, a new sign-in has the role again; deleting the group withdraws it.
    let (status, _, _) = app
        .scim(Method::PATCH, &format!("/Groups/{group_id}"), &admin, Some(json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"displayName": "Security administrators"}}]
        })))
        .await;
    assert_eq!(status, 204);
    let second_tokens = sign_in_with(
        &app,
        &console(&app),
        "sec.second",
        &second_secret,
        &["bypass_codes:settings"],
    )
    .await;
    let second_access = second_tokens["access_token"].as_str().unwrap().to_owned();
    let (status, _, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &second_access, None)
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .scim(Method::DELETE, &format!("/Groups/{group_id}"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &second_access, None)
        .await;
    assert_eq!(status, 401);
    // The users remain.
    let (status, _, _) = app
        .scim(Method::GET, &format!("/Users/{second}"), &admin, None)
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_user_administrator_cannot_hand_out_roles_from_the_console() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (ua, ua_secret) = enrolled_user(&app, &admin, "ua.admin").await;
    let group = |name: &str, members: Vec<Value>| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members});
    let (status, _, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &admin,
            Some(group("User administrators", vec![json!({"value": ua})])),
        )
        .await;
    assert_eq!(status, 201);
    let (_, security, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &admin,
            Some(group("Security administrators", vec![])),
        )
        .await;
    let security = security["id"].as_str().unwrap().to_owned();
    let tokens = sign_in_with(
        &app,
        &console(&app),
        "ua.admin",
        &ua_secret,
        &["scim:users", "scim:groups"],
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    // Ordinary groups: yes.
    let (status, ordinary, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &access,
            Some(group("Cyclists", vec![json!({"value": ua})])),
        )
        .await;
    assert_eq!(status, 201, "{ordinary}");
    let ordinary = ordinary["id"].as_str().unwrap().to_owned();
    // A role group, or a group renamed into one, or a new one named like one: no.
    let add_self = json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": "members", "value": [{"value": ua}]}]});
    let (status, body, _) = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{security}"),
            &access,
            Some(add_self),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let rename = json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "displayName", "value": "security ADMINISTRATORS 2"}]});
    let (status, _, _) = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{ordinary}"),
            &access,
            Some(rename),
        )
        .await;
    assert_eq!(status, 204, "a name that grants nothing is fine");
    let (status, _, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &access,
            Some(group(
                "Help desk administrators",
                vec![json!({"value": ua})],
            )),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = app
        .scim(
            Method::DELETE,
            &format!("/Groups/{security}"),
            &access,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (_, members, _) = app
        .scim(Method::GET, &format!("/Groups/{security}"), &admin, None)
        .await;
    assert!(
        members
            .get("members")
            .is_none_or(|m| m.as_array().unwrap().is_empty()),
        "{members}"
    );
    // A provisioning client still can.
    let add = json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": "members", "value": [{"value": ua}]}]});
    let (status, _, _) = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{security}"),
            &admin,
            Some(add),
        )
        .await;
    assert_eq!(status, 204);
    app.stop().await;
}
