//! A password step reads what it stands on after its check: the check may wait in the Argon2
//! queue (up to `kdf_queue_timeout_ms`), and a deactivation, a reset of 2-step verification or
//! a new password that lands meanwhile counts. One test, because the process has one Argon2
//! queue and this test holds it.

mod common;

use std::time::Duration;

use bypass_idp::domain::ids::UserId;
use bypass_idp::domain::repo::{PasswordChange, UserRepo};
use bypass_idp::domain::scim::MFA_EXTENSION_SCHEMA;
use bypass_idp::domain::secret::Secret;
use bypass_idp::service::passwords;
use common::rp::*;
use common::{PATCH_SCHEMA, TestApp, enrolled_user, hold_argon2_slots, user_body};
use reqwest::Method;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

/// The password step of `user`, sent while the queue is held; `meanwhile` runs while the
/// step waits for its check, and the step's page is returned.
async fn step_while_waiting(
    app: &TestApp,
    rp: &Rp,
    user: &str,
    meanwhile: impl std::future::Future<Output = ()>,
) -> Page {
    let started = start(app, rp).await;
    let browser = Browser::new(app);
    let blockers = hold_argon2_slots(Duration::from_millis(800)).await;
    let step = password_step(&browser, &started.auth_url, user, PASSWORD);
    let (page, ()) = tokio::join!(step, async {
        // The step has read the user's id and hash and waits for a slot.
        tokio::time::sleep(Duration::from_millis(250)).await;
        meanwhile.await;
    });
    for blocker in blockers {
        blocker.await.unwrap();
    }
    page
}

fn is_set_up(page: &Page) -> bool {
    page.body.contains("action=\"/oauth2/signin/enroll\"")
}

fn is_wrong_password(page: &Page) -> bool {
    page.body.contains("name=\"password\"") && !is_set_up(page)
}

#[tokio::test]
async fn what_changes_while_a_password_check_waits_counts() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, true, false).await;
    let needs_mfa = |name: &str| {
        let mut body = user_body(name);
        body["schemas"]
            .as_array_mut()
            .unwrap()
            .push(json!(MFA_EXTENSION_SCHEMA));
        body[MFA_EXTENSION_SCHEMA] = json!({"mfaRequired": true});
        body
    };

    // Unchanged: a user who must set up an authenticator is shown the set-up.
    app.create_user(&admin, needs_mfa("wait.plain")).await;
    let page = step_while_waiting(&app, &rp, "wait.plain", async {}).await;
    assert!(is_set_up(&page), "{}", page.body);

    // Deactivated meanwhile: the step fails as a wrong password does, no set-up.
    let user = app.create_user(&admin, needs_mfa("wait.deactivated")).await;
    let path = format!("/Users/{}", user["id"].as_str().unwrap());
    let patch = json!({"schemas": [PATCH_SCHEMA],
                       "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let page = step_while_waiting(&app, &rp, "wait.deactivated", async {
        let (status, body, _) = app.scim(Method::PATCH, &path, &admin, Some(patch)).await;
        assert_eq!(status, 200, "{body}");
    })
    .await;
    assert!(is_wrong_password(&page), "{}", page.body);

    // A new password meanwhile: the one checked is no longer the user's. Written as a SCIM
    // password change writes it, straight to the store: over SCIM its hashing would queue
    // behind the step's check.
    let user = app
        .create_user(&admin, needs_mfa("wait.repassworded"))
        .await;
    let id = UserId::new(user["id"].as_str().unwrap());
    let new_hash = passwords::hash(Secret::new("another horse battery staple"))
        .await
        .unwrap();
    let page = step_while_waiting(&app, &rp, "wait.repassworded", async {
        let store = app.store();
        let user = store.get_user(&id).await.unwrap().unwrap();
        store
            .replace_user(
                &id,
                &user.attributes,
                PasswordChange::Set(new_hash),
                None,
                true,
            )
            .await
            .unwrap();
    })
    .await;
    assert!(is_wrong_password(&page), "{}", page.body);

    // 2-step verification reset meanwhile: not the authenticator's prompt of a factor that is
    // gone, but the bypass code a set-up after a reset takes.
    let (id, _) = enrolled_user(&app, &admin, "wait.reset").await;
    let totp = format!("/Users/{id}/totp");
    let page = step_while_waiting(&app, &rp, "wait.reset", async {
        let (status, body, _) = app.scim(Method::DELETE, &totp, &admin, None).await;
        assert!(status == 204 || status == 200, "{status} {body}");
    })
    .await;
    assert!(
        page.body.contains("action=\"/oauth2/signin/enrol-code\""),
        "{}",
        page.body
    );
    app.stop().await;
}
