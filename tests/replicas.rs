//! Two instances behind a real reverse proxy (HAProxy, from Debian's packages) sharing the
//! database and Redis: sign-ins spread over both, one instance is killed with SIGKILL in the
//! middle and started again. No limited code is used more often than it allows, nothing
//! answers 500, and limits count the client's address that the proxy passes on.

mod common;

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::rp::*;
use common::services::{
    KillOnDrop, OwnRedis, ServerProcess, free_port, wait_answering, wait_listening,
};
use common::{TestApp, create_code, enrolled_user, user_body};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::json;

/// The address HAProxy connects to the instances from: the only trusted proxy.
const PROXY_SOURCE: &str = "127.0.0.2";

fn haproxy(dir: &std::path::Path, port: u16, backends: &[u16]) -> KillOnDrop {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server s{i} 127.0.0.1:{p} check\n"))
        .collect();
    let config = format!(
        "global\n  maxconn 512\n  log stderr format raw local0\n\
         defaults\n  mode http\n  log global\n  option httplog\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  timeout check 5s\n  option forwardfor\n  retries 2\n  option redispatch 1\n\
         frontend idp\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
         backend replicas\n  balance roundrobin\n  source {PROXY_SOURCE}\n  option httpchk GET /readyz\n  default-server inter 500ms fall 2 rise 1\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
        .spawn()
        .expect("haproxy is installed");
    let haproxy = KillOnDrop(Some(child));
    assert!(wait_listening(port), "haproxy did not start");
    haproxy
}

/// A browser on its own client address (127.0.0.x), talking to the proxy.
fn browser_at(base: &str, client: IpAddr) -> Browser {
    Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .local_address(client)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        base: base.to_owned(),
    }
}

/// A page, or status 0 when the connection was lost (the instance holding it was killed).
async fn fetch(request: reqwest::RequestBuilder) -> Page {
    match request.send().await {
        Ok(response) => Browser::page(response).await,
        Err(_) => Page {
            status: 0,
            location: None,
            body: String::new(),
        },
    }
}

/// One whole sign-in with a bypass code; returns the status of each step, and a final 1
/// if it got an authorization code.
async fn attempt(base: &str, client: IpAddr, auth_url: &str, user: &str, code: &str) -> Vec<u16> {
    let browser = browser_at(base, client);
    let http = &browser.http;
    let url = |path: &str| format!("{base}{path}");
    let mut statuses = Vec::new();
    let mut ok = |page: &Page| {
        statuses.push(page.status);
        (200..500).contains(&page.status) && page.status != 0
    };
    let started = fetch(http.get(auth_url)).await;
    if !ok(&started) {
        return statuses;
    }
    let form = fetch(http.get(url("/oauth2/signin"))).await;
    if !ok(&form) || !form.body.contains("csrf") {
        return statuses;
    }
    let fields = [
        ("csrf", csrf(&form)),
        ("username", user.to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let page = fetch(http.post(url("/oauth2/signin/password")).form(&fields)).await;
    if !ok(&page) {
        return statuses;
    }
    let page = fetch(http.get(url("/oauth2/signin?method=bypass"))).await;
    if !ok(&page) || !page.body.contains("csrf") {
        return statuses;
    }
    let fields = [("csrf", csrf(&page)), ("code", code.to_owned())];
    let mut done = fetch(http.post(url("/oauth2/signin/bypass")).form(&fields)).await;
    // Accepted: the offer to set up a new authenticator app; "Not now" goes on to the client.
    if ok(&done) && done.body.contains("action=\"/oauth2/signin/replace\"") {
        let fields = [("csrf", csrf(&done)), ("choice", "later".to_owned())];
        done = fetch(http.post(url("/oauth2/signin/replace")).form(&fields)).await;
        ok(&done);
    }
    if done.status == 303
        && done
            .location
            .as_deref()
            .is_some_and(|l| l.contains("code="))
    {
        statuses.push(1);
    }
    statuses
}

/// Two instances behind HAProxy: the in-process one and a process of its own, sharing the
/// database, Redis, data folder and issuer (the proxy's address).
struct Replicas {
    app: TestApp,
    process: ServerProcess,
    /// The settings the process was started with, to start it again.
    shared: Vec<(String, String)>,
    proxy_base: String,
    _proxy: KillOnDrop,
    _dir: tempfile::TempDir,
    own_redis: Option<OwnRedis>,
}

async fn replicas() -> Replicas {
    let proxy_port = free_port();
    let proxy_base = format!("http://127.0.0.1:{proxy_port}");
    // Both instances share Redis: the CI's, or one of the test's own.
    let own_redis;
    let mut extra: Vec<(String, String)> = vec![
        ("BYPASS_IDP_ISSUER".into(), proxy_base.clone()),
        ("BYPASS_IDP_TRUSTED_PROXIES".into(), PROXY_SOURCE.into()),
    ];
    if std::env::var("REDIS_URL").is_err() {
        let port = free_port();
        own_redis = Some(OwnRedis::start(port));
        extra.push(("REDIS_URL".into(), format!("redis://127.0.0.1:{port}")));
        extra.push(("BYPASS_IDP_REDIS_PREFIX".into(), "replicas".into()));
    } else {
        own_redis = None;
    }
    let extra_refs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = TestApp::spawn_with(&extra_refs).await;
    let shared: Vec<(String, String)> = app
        .env
        .iter()
        .filter(|(k, _)| k.as_str() != "BYPASS_IDP_LISTEN")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let process = tokio::task::spawn_blocking({
        let env: Vec<(String, String)> = shared.clone();
        move || {
            let refs: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ServerProcess::spawn(&refs)
        }
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxy = haproxy(
        dir.path(),
        proxy_port,
        &[app.local_addr().port(), process.port],
    );
    Replicas {
        app,
        process,
        shared,
        proxy_base,
        _proxy: proxy,
        _dir: dir,
        own_redis,
    }
}

#[tokio::test]
async fn two_replicas_behind_haproxy_survive_a_sigkill_without_over_use() {
    let Replicas {
        app,
        process: mut killable,
        shared,
        proxy_base,
        _proxy,
        _dir,
        own_redis,
    } = replicas().await;
    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &admin, "replicated").await;
    let code = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 10}),
    )
    .await;
    let code_text = code["code"].as_str().unwrap().to_owned();
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    // The issuer is the proxy, so the relying party sends browsers there.
    let auth_url = started.auth_url.clone();
    assert!(auth_url.starts_with(&proxy_base));

    // Load in three waves of eight, each browser on its own client address; the killable
    // instance dies during the second wave and comes back before the third.
    let mut all: Vec<Vec<u16>> = Vec::new();
    for wave in 0..3u8 {
        let attempts = (0..8u8).map(|i| {
            let client: IpAddr = format!("127.0.{}.{}", 10 + wave, 10 + i).parse().unwrap();
            let (base, auth_url, code_text) =
                (proxy_base.clone(), auth_url.clone(), code_text.clone());
            tokio::spawn(async move {
                attempt(&base, client, &auth_url, "replicated", &code_text).await
            })
        });
        let attempts: Vec<_> = attempts.collect();
        if wave == 1 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = killable.child.kill(); // SIGKILL
            let _ = killable.child.wait();
        }
        for result in join_all(attempts).await {
            all.push(result.unwrap());
        }
        if wave == 1 {
            killable = tokio::task::spawn_blocking({
                let env = shared.clone();
                let mut process = killable;
                move || {
                    let refs: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    process.restart(&refs);
                    process
                }
            })
            .await
            .unwrap();
            wait_answering(killable.port);
            // Let HAProxy see it healthy again.
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
    }
    let statuses: Vec<u16> = all.iter().flatten().copied().collect();
    let signed_in = all.iter().filter(|s| s.last() == Some(&1)).count();
    // Only the requests the killed instance held may fail (a dropped connection, or HAProxy's
    // 502 for a request the instance had taken); everything else was served, never a 500.
    let lost = statuses.iter().filter(|s| **s == 0 || **s == 502).count();
    assert!(
        statuses.iter().all(|s| *s < 500 || *s == 502 || *s == 0),
        "{all:?}"
    );
    assert!(lost <= 8, "only wave two's requests could be held: {all:?}");
    let path = format!(
        "/Users/{user_id}/bypassCodes/{}",
        code["id"].as_str().unwrap()
    );
    let (_, stored, _) = app.scim(Method::GET, &path, &admin, None).await;
    let used = stored["actualUsageCount"].as_u64().unwrap() as usize;
    assert!(used <= 10, "a 10-use code was used {used} times");
    assert!(
        signed_in <= used,
        "{signed_in} sign-ins, {used} uses recorded"
    );
    eprintln!(
        "steps per browser: {all:?}; {signed_in} sign-ins got a code; the database counts {used} uses of 10"
    );
    assert!(signed_in >= 1, "sign-ins went through the proxy: {all:?}");
    // The third wave, after the restart, ran without proxy errors, and the restarted
    // instance took part of it (its own metrics count the sign-in pages it served).
    let last_wave: Vec<u16> = all[16..].iter().flatten().copied().collect();
    assert!(last_wave.iter().all(|s| *s < 500), "{last_wave:?}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", killable.port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_requests_total") && l.contains("route=\"/oauth2/signin\"")),
        "the restarted instance served sign-ins"
    );

    // Limits count the client address HAProxy passes on, not HAProxy's.
    app.create_user(&admin, user_body("proxied.victim")).await;
    let guess = |client: &'static str, password: &'static str| {
        let (base, auth_url) = (proxy_base.clone(), auth_url.clone());
        async move {
            let browser = browser_at(&base, client.parse().unwrap());
            password_step(&browser, &auth_url, "proxied.victim", password).await
        }
    };
    for _ in 0..10 {
        let page = guess("127.0.1.50", "wrong").await;
        assert!(
            page.body.contains("Wrong username or password"),
            "{}",
            page.body
        );
    }
    assert!(
        guess("127.0.1.50", "wrong")
            .await
            .body
            .contains("Try again in")
    );
    let elsewhere = guess("127.0.1.51", PASSWORD).await;
    assert_eq!(
        elsewhere.status, 303,
        "another address still signs in: {}",
        elsewhere.body
    );

    drop(killable);
    app.stop().await;
    drop(own_redis);
}

/// The Basic OP session checks across instances: a session opened through the proxy is
/// honoured by each instance asked directly (the cookie is the browser's, the session is in
/// the shared database), and a logout at one instance ends it at the other.
#[tokio::test]
async fn a_session_made_on_one_instance_signs_in_on_the_other() {
    let Replicas {
        app,
        process,
        proxy_base,
        _proxy,
        _dir,
        own_redis,
        ..
    } = replicas().await;
    let admin = app.admin_token(None).await;
    let (_, secret) = enrolled_user(&app, &admin, "roaming").await;
    let rp = register(&app, false, false).await;
    let browser = browser_at(&proxy_base, "127.0.3.1".parse().unwrap());

    let started = start(&app, &rp).await;
    let page = password_step(&browser, &started.auth_url, "roaming", PASSWORD).await;
    let totp = bypass_idp::domain::totp::code_at(&secret, now() + 30).unwrap();
    let page = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &totp)],
        )
        .await;
    let code = code_from(&page, &app, &rp, &started.state);
    let (sub, _) = exchange_and_check(started, code, &["pwd", "mfa", "otp"]).await;

    // Each instance, asked directly, answers prompt=none from the session without a page.
    let instances = [app.local_addr().port(), process.port];
    for port in instances {
        let started = start(&app, &rp).await;
        let direct = started
            .auth_url
            .replace(&proxy_base, &format!("http://127.0.0.1:{port}"));
        let page = browser.get(&format!("{direct}&prompt=none")).await;
        let code = code_from(&page, &app, &rp, &started.state);
        let (again, _) = exchange_and_check(started, code, &["pwd", "mfa", "otp"]).await;
        assert_eq!(again, sub, "instance on port {port}");
    }

    // Signed out at the second instance: the first one knows at once.
    let logout = format!("http://127.0.0.1:{}/oauth2/logout", process.port);
    let page = browser.get(&logout).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let fields = [("csrf", csrf(&page))];
    let out = Browser::page(
        browser
            .http
            .post(&logout)
            .form(&fields)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(out.body.contains("signed out"), "{}", out.body);
    let started = start(&app, &rp).await;
    let direct = started.auth_url.replace(
        &proxy_base,
        &format!("http://127.0.0.1:{}", app.local_addr().port()),
    );
    let page = browser.get(&format!("{direct}&prompt=none")).await;
    let location = page.location.unwrap_or_default();
    assert_eq!(
        query(&location).get("error").map(String::as_str),
        Some("login_required"),
        "{location}"
    );

    drop(process);
    app.stop().await;
    drop(own_redis);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
