//! Redis Cluster (`BYPASS_IDP_REDIS_MODE=cluster`): each test starts a three-node cluster on
//! 127.0.0.1 and two instances on it, then checks what must hold across instances: a sign-in
//! started on one and finished on the other, single sign-on, exactly-once use of a code,
//! the attempt limits under parallel guessing, and keys spread over the nodes by entity.

mod common;

use common::rp::*;
use common::services::OwnCluster;
use common::{TestApp, create_code, enrolled_user};
use futures_util::future::join_all;
use serde_json::json;

async fn on_cluster(cluster: &OwnCluster) -> TestApp {
    let (url, prefix) = (cluster.url(), common::unique("cl"));
    TestApp::spawn_with(&[
        ("REDIS_URL", &url),
        ("BYPASS_IDP_REDIS_MODE", "cluster"),
        ("BYPASS_IDP_REDIS_PREFIX", &prefix),
    ])
    .await
}

/// A browser whose requests go to `base` (cookies are per host, so two instances on
/// 127.0.0.1 share them).
fn browser_at(browser: &Browser, base: &str) -> Browser {
    Browser {
        http: browser.http.clone(),
        base: base.to_owned(),
    }
}

fn count(pages: &[Page], text: &str) -> usize {
    pages.iter().filter(|p| p.body.contains(text)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_in_crosses_instances_and_keys_spread_over_the_nodes_by_entity() {
    let mut cluster = OwnCluster::start();
    let app = on_cluster(&cluster).await;
    let sibling = app.start_sibling().await;
    let other = format!("http://{}", sibling.local_addr);
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let (user_id, _) = enrolled_user(&app, &admin, "cluster.user").await;
    let code = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();

    // The password on the first instance, the code on the second: the flow lives in the
    // cluster.
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    password_step(&browser, &started.auth_url, "cluster.user", PASSWORD).await;
    let there = browser_at(&browser, &other);
    let form = there.get("/oauth2/signin?method=bypass").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let page = there
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&form)), ("code", &code)],
        )
        .await;
    let page = not_now(&there, page).await;
    let grant = code_from(&page, &app, &rp, &started.state);
    // The authorization code, stored by the second instance, is redeemed at the first,
    // exactly once.
    let (status, tokens) = redeem(&app, &rp, &grant, started.verifier.secret()).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, _) = redeem(&app, &rp, &grant, started.verifier.secret()).await;
    assert_eq!(status, 400);

    // Single sign-on at the second instance with the session the first one started.
    let again = start(&app, &rp).await;
    let silent = there
        .get(&format!(
            "{}&prompt=none",
            again.auth_url.replace(&app.base, &other)
        ))
        .await;
    assert_eq!(silent.status, 303, "{}", silent.body);
    assert!(
        silent
            .location
            .as_deref()
            .unwrap_or_default()
            .contains("code="),
        "{:?}",
        silent.location
    );

    // Wrong passwords from here count for the user, the address and the pair.
    let started = start(&app, &rp).await;
    password_step(
        &Browser::new(&app),
        &started.auth_url,
        "cluster.user",
        "wrong",
    )
    .await;

    // The keys are spread over more than one node, and an entity's keys share a slot.
    let keys = cluster.keys_per_node();
    let prefix = app.env["BYPASS_IDP_REDIS_PREFIX"].clone();
    let ours: Vec<Vec<&String>> = keys
        .iter()
        .map(|node| node.iter().filter(|k| k.starts_with(&prefix)).collect())
        .collect();
    assert!(
        ours.iter().filter(|node| !node.is_empty()).count() >= 2,
        "all keys on one node: {ours:?}"
    );
    let slot = |key: &str| cluster.cli(cluster.ports[0], &["cluster", "keyslot", key]);
    let address_keys: Vec<&&String> = ours
        .iter()
        .flatten()
        .filter(|k| k.contains("{ip:"))
        .collect();
    assert!(address_keys.len() >= 2, "{ours:?}");
    let first = slot(address_keys[0]);
    assert!(
        address_keys.iter().all(|k| slot(k) == first),
        "{address_keys:?}"
    );
    sibling.stop().await;
    app.stop().await;
    cluster.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_over_two_instances_hold_the_limits_on_a_cluster() {
    let mut cluster = OwnCluster::start();
    let app = on_cluster(&cluster).await;
    let sibling = app.start_sibling().await;
    let other = format!("http://{}", sibling.local_addr);
    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &admin, "guessed.user").await;
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    let page = password_step(&browser, &started.auth_url, "guessed.user", PASSWORD).await;
    let there = browser_at(&browser, &other);
    let token = csrf(&page);
    // 40 wrong codes at once, half to each instance: five are checked, the rest locked.
    let posts = (0..40).map(|i| {
        let (browser, token) = (if i % 2 == 0 { &browser } else { &there }, token.clone());
        async move {
            browser
                .post(
                    "/oauth2/signin/bypass",
                    &[("csrf", &token), ("code", "1111-2222-3333")],
                )
                .await
        }
    });
    let pages = join_all(posts).await;
    assert_eq!(count(&pages, "That bypass code is not right"), 5);
    assert_eq!(count(&pages, "Try again in 15 minutes"), 35);
    use bypass_idp::domain::repo::MfaRepo;
    let mfa = app
        .store()
        .get_mfa(&bypass_idp::domain::ids::UserId::new(&user_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mfa.consecutive_failures, 5);

    // 40 wrong passwords at once for another user, over both instances: at most the
    // per-user window (10) is checked.
    let (_, _) = enrolled_user(&app, &admin, "pw.target").await;
    let posts = (0..40).map(|i| {
        let rp = &rp;
        let app = &app;
        let base = if i % 2 == 0 {
            app.base.clone()
        } else {
            other.clone()
        };
        async move {
            let started = start(app, rp).await;
            let browser = Browser::new(app);
            let auth_url = started.auth_url.replace(&app.base, &base);
            let browser = browser_at(&browser, &base);
            password_step(&browser, &auth_url, "pw.target", "not the password").await
        }
    });
    let pages = join_all(posts).await;
    let checked = count(&pages, "Wrong username or password");
    assert!(checked <= 10, "{checked} wrong passwords checked");
    assert!(checked >= 5, "{checked}");
    sibling.stop().await;
    app.stop().await;
    cluster.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_once_code_signs_in_exactly_once_over_two_instances_on_a_cluster() {
    let mut cluster = OwnCluster::start();
    let app = on_cluster(&cluster).await;
    let sibling = app.start_sibling().await;
    let token = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let (user_id, _) = enrolled_user(&app, &token, "race.cluster").await;
    let code = create_code(
        &app,
        &token,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 1}),
    )
    .await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let base = if i % 2 == 0 {
            app.base.clone()
        } else {
            format!("http://{}", sibling.local_addr)
        };
        let started = start(&app, &rp).await;
        let auth_url = started.auth_url.replace(&app.base, &base);
        let code = code.clone();
        tasks.spawn(async move {
            let browser = Browser::at(&base);
            let page = password_step(&browser, &auth_url, "race.cluster", PASSWORD).await;
            let done = browser
                .post(
                    "/oauth2/signin/bypass",
                    &[("csrf", &csrf(&page)), ("code", &code)],
                )
                .await;
            not_now(&browser, done).await.status == 303
        });
    }
    let mut signed_in = 0;
    while let Some(done) = tasks.join_next().await {
        signed_in += usize::from(done.unwrap());
    }
    assert_eq!(signed_in, 1);
    sibling.stop().await;
    app.stop().await;
    cluster.stop();
}
