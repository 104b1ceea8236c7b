//! Administrator roles through group membership: a user's sign-in at the console carries the
//! scopes of their roles, only while they hold them, and only inside the console (its codes
//! are redeemed by the console's callback alone); at every other client it carries none.

mod common;

use bypass_idp::domain::ids::{ClientId, GroupId, UserId};
use bypass_idp::domain::repo::GrantRepo;
use bypass_idp::service::context::Context;
use common::rp::{Browser, console_sign_in, register, start_with};
use common::{PATCH_SCHEMA, TestApp, enrolled_user};
use reqwest::Method;
use serde_json::{Value, json};

const CONSOLE: &str = "bypass-idp-console";

/// The scopes of the user's live console sign-in, as the console's session holds them.
async fn console_scopes(app: &TestApp, user: &str) -> Vec<String> {
    let grants = app
        .store()
        .live_grants(&UserId::new(user), &ClientId::new(CONSOLE))
        .await
        .unwrap();
    let grant = grants.last().expect("a console sign-in");
    grant.scope.split(' ').map(str::to_owned).collect()
}

fn role_group(name: &str, members: &[&str]) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>(),
    })
}

/// Whether the browser's console session still opens `path` (200), rather than sending it
/// to sign in again (303) or refusing it (403).
async fn opens(browser: &Browser, path: &str) -> u16 {
    browser.get(path).await.status
}

#[tokio::test]
async fn the_help_desk_group_gives_console_scopes_only_while_it_lasts() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (helper, helper_secret) = enrolled_user(&app, &admin, "hd.helper").await;
    let (plain, plain_secret) = enrolled_user(&app, &admin, "hd.plain").await;
    let (caller, _) = enrolled_user(&app, &admin, "hd.caller").await;
    let (status, group, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &admin,
            Some(role_group("Help desk administrators", &[&helper])),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();

    // A help-desk member gets the help-desk scopes at the console, and not the policy scope.
    let (browser, landed) = console_sign_in(&app, "hd.helper", &helper_secret, "/console").await;
    assert_eq!(landed.status, 200, "{}", landed.body);
    let granted = console_scopes(&app, &helper).await;
    for scope in ["bypass_codes:manage", "users:read", "mfa:read", "openid"] {
        assert!(granted.iter().any(|s| s == scope), "{scope} in {granted:?}");
    }
    assert!(
        !granted.iter().any(|s| s == "bypass_codes:settings"),
        "{granted:?}"
    );
    let found = browser.get("/console/users?q=hd.caller").await;
    assert!(found.body.contains(&caller), "{}", found.body);
    assert_eq!(opens(&browser, "/console/policy").await, 403);

    // Someone without a role gets only the user scopes, and the console says no.
    let (plain_browser, refused) =
        console_sign_in(&app, "hd.plain", &plain_secret, "/console").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        !console_scopes(&app, &plain)
            .await
            .iter()
            .any(|s| s == "bypass_codes:manage" || s == "users:read")
    );

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

    // Leaving the group ends the console sign-in that carried the role at once.
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
    assert_eq!(
        opens(&browser, "/console/users").await,
        303,
        "the role's session is over: sign in again"
    );
    // The role-less console sign-in is untouched by someone else's change.
    assert_eq!(opens(&plain_browser, "/account").await, 200);
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
            Some(role_group("Security administrators", &[&first, &second])),
        )
        .await;
    let group_id = group["id"].as_str().unwrap().to_owned();
    let (first_browser, _) =
        console_sign_in(&app, "sec.first", &first_secret, "/console/policy").await;
    assert!(
        console_scopes(&app, &first)
            .await
            .iter()
            .any(|s| s == "bypass_codes:settings")
    );
    assert_eq!(opens(&first_browser, "/console/policy").await, 200);

    // Renamed away from the role's name: every member loses the role, not only removed ones.
    let (status, _, _) = app
        .scim(Method::PATCH, &format!("/Groups/{group_id}"), &admin, Some(json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Former security administrators"}]
        })))
        .await;
    assert_eq!(status, 204);
    assert_eq!(opens(&first_browser, "/console/policy").await, 303);

    // Renamed back, a new sign-in has the role again; deleting the group withdraws it.
    let (status, _, _) = app
        .scim(Method::PATCH, &format!("/Groups/{group_id}"), &admin, Some(json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"displayName": "Security administrators"}}]
        })))
        .await;
    assert_eq!(status, 204);
    let (second_browser, _) =
        console_sign_in(&app, "sec.second", &second_secret, "/console/policy").await;
    assert_eq!(opens(&second_browser, "/console/policy").await, 200);
    let (status, _, _) = app
        .scim(Method::DELETE, &format!("/Groups/{group_id}"), &admin, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(opens(&second_browser, "/console/policy").await, 303);
    // The users remain.
    let (status, _, _) = app
        .scim(Method::GET, &format!("/Users/{second}"), &admin, None)
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn role_groups_change_only_by_provisioning_clients_and_the_command_line() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (ua, _) = enrolled_user(&app, &admin, "ua.admin").await;
    let (status, _, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &admin,
            Some(role_group("User administrators", &[&ua])),
        )
        .await;
    assert_eq!(status, 201);
    let (_, security, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &admin,
            Some(role_group("Security administrators", &[])),
        )
        .await;
    let security = GroupId::new(security["id"].as_str().unwrap());
    // A person's session (whatever door brings it) never changes a role-granting group.
    let person = Context::user(UserId::new(&ua), Some(ClientId::new(CONSOLE)), None);
    let refused = app
        .state()
        .groups
        .delete(&security, None, &person)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, bypass_idp::service::ServiceError::Forbidden(_)),
        "{refused:?}"
    );
    // A provisioning client still can.
    let (status, _, _) = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{}", security.as_str()),
            &admin,
            Some(json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": "members", "value": [{"value": ua}]}]})),
        )
        .await;
    assert_eq!(status, 204);
    app.stop().await;
}
