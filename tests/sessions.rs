//! Single sign-on sessions and logout, as the OpenID Foundation's plans check them: the Basic
//! OP plan's session modules (oidcc-prompt-none-not-logged-in, oidcc-prompt-none-logged-in,
//! oidcc-max-age-1, oidcc-max-age-10000, oidcc-id-token-hint, oidcc-prompt-login), the
//! RP-Initiated Logout plan (oidcc-rp-initiated-logout, -bad-post-logout-redirect-uri,
//! -no-id-token-hint, -modified-id-token-hint, -no-post-logout-redirect-uri) and the
//! Back-Channel Logout plan (oidcc-backchannel-rp-initiated-logout), with the `openidconnect`
//! crate checking every ID token and a stub relying party receiving the logout tokens.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bypass_idp::service::oauth::clients::ClientSpec;
use common::rp::*;
use common::{PATCH_SCHEMA, TestApp, create_code, enrolled_user, user_body};
use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{AuthorizationCode, IssuerUrl, JsonWebKey, OAuth2TokenResponse, TokenResponse};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const SESSION_COOKIE: &str = "bidp_session";
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
const SCOPES: &str = "openid profile email offline_access";
/// How long a back-channel logout may take to arrive, retries included.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn unique_uri(what: &str) -> String {
    format!(
        "http://127.0.0.1:9/{what}/{}",
        uuid::Uuid::new_v4().simple()
    )
}

/// A confidential client with RP-Initiated and Back-Channel Logout addresses.
async fn register_logout(app: &TestApp, post_logout: &[&str], backchannel: Option<&str>) -> Rp {
    let spec = ClientSpec {
        scopes: SCOPES.into(),
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        post_logout_redirect_uris: post_logout.iter().map(|u| (*u).to_owned()).collect(),
        backchannel_logout_uri: backchannel.map(str::to_owned),
        ..Default::default()
    };
    register_spec(app, spec).await
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// What the relying party got for a code: the ID token, checked by `openidconnect`
/// (signature, iss, aud, exp, nonce), and its claims as JSON (the crate does not model `sid`).
struct Signed {
    id_token: String,
    claims: Value,
    refresh_token: Option<String>,
}

impl Signed {
    fn sub(&self) -> &str {
        self.claims["sub"].as_str().unwrap()
    }
    fn sid(&self) -> &str {
        self.claims["sid"].as_str().expect("sid, a string")
    }
    fn auth_time(&self) -> i64 {
        self.claims["auth_time"].as_i64().expect("auth_time")
    }
    fn amr(&self) -> Vec<&str> {
        let amr = self.claims["amr"].as_array().expect("amr");
        amr.iter().map(|m| m.as_str().unwrap()).collect()
    }
}

async fn redeem_checked(started: Started, code: String) -> Signed {
    let Started {
        client,
        nonce,
        verifier,
        ..
    } = started;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http())
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let checked = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("a valid ID token");
    assert!(checked.auth_time().is_some(), "auth_time always");
    let raw = id_token.to_string();
    let claims = jwt_part(&raw, 1);
    assert_eq!(claims["sub"], checked.subject().as_str());
    assert!(
        claims["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "{claims}"
    );
    Signed {
        id_token: raw,
        claims,
        refresh_token: tokens.refresh_token().map(|r| r.secret().clone()),
    }
}

#[derive(Clone, Copy)]
enum Second<'a> {
    Nothing,
    Totp(&'a [u8]),
    Bypass(&'a str),
}

/// A whole sign-in at `rp` whose request (with `extra` parameters) must show the password
/// page; the ID token it gives.
async fn sign_in_at(
    app: &TestApp,
    browser: &Browser,
    rp: &Rp,
    user: &str,
    second: Second<'_>,
    extra: &str,
) -> Signed {
    let started = start(app, rp).await;
    let url = format!("{}{extra}", started.auth_url);
    let mut page = password_step(browser, &url, user, PASSWORD).await;
    let (path, code) = match second {
        Second::Nothing => (None, String::new()),
        Second::Totp(secret) => {
            let code = bypass_idp::domain::totp::code_at(secret, now_secs() + 30).unwrap();
            (Some("/oauth2/signin/totp"), code)
        }
        Second::Bypass(code) => {
            page = browser.get("/oauth2/signin?method=bypass").await;
            (Some("/oauth2/signin/bypass"), code.to_owned())
        }
    };
    if let Some(path) = path {
        page = browser
            .post(path, &[("csrf", &csrf(&page)), ("code", &code)])
            .await;
        if matches!(second, Second::Bypass(_)) {
            page = not_now(browser, page).await;
        }
    }
    let code = code_from(&page, app, rp, &started.state);
    redeem_checked(started, code).await
}

/// A request answered from the session: straight back to the client, no page.
async fn silent(app: &TestApp, browser: &Browser, rp: &Rp, extra: &str) -> Signed {
    let started = start(app, rp).await;
    let page = browser.get(&format!("{}{extra}", started.auth_url)).await;
    let location = page.location.clone().unwrap_or_default();
    assert!(
        page.status == 303 && location.starts_with(&rp.redirect),
        "no page expected for {extra:?}: {} {location} {}",
        page.status,
        page.body
    );
    assert!(!query(&location).contains_key("error"), "{location}");
    let code = code_from(&page, app, rp, &started.state);
    redeem_checked(started, code).await
}

/// The OAuth error a `prompt=none` request (plus `extra`) gets back at the client.
async fn prompt_none_error(app: &TestApp, browser: &Browser, rp: &Rp, extra: &str) -> String {
    let started = start(app, rp).await;
    let url = format!("{}&prompt=none{extra}", started.auth_url);
    let page = browser.get(&url).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.unwrap();
    assert!(location.starts_with(&rp.redirect), "{location}");
    let params = query(&location);
    assert_eq!(params.get("state"), Some(started.state.secret()));
    assert_eq!(params.get("iss"), Some(&app.base), "RFC 9207 iss");
    assert!(!params.contains_key("code"), "{location}");
    params.get("error").cloned().unwrap_or_default()
}

/// A request that must show the sign-in page again; returns that page.
async fn asks_to_sign_in(browser: &Browser, url: &str) -> Page {
    let page = browser.get(url).await;
    let redirect = (page.status, page.location.as_deref());
    assert_eq!(redirect, (303, Some("/oauth2/signin")), "{}", page.body);
    browser.get("/oauth2/signin").await
}

fn logout_url(params: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/oauth2/logout?{query}")
}

/// Checks the redirect after logout: to `uri`, with `state` appended.
fn assert_logged_out_to(page: &Page, uri: &str, state: &str) {
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.clone().unwrap();
    assert!(location.starts_with(uri), "{location}");
    assert_eq!(
        query(&location).get("state").map(String::as_str),
        Some(state)
    );
}

async fn refresh_with(app: &TestApp, rp: &Rp, refresh_token: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    token_post(app, rp, &form).await
}

/// A browser whose cookie jar holds `bidp_session=value` before it does anything.
fn planted_browser(app: &TestApp, value: &str) -> (Browser, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let base = reqwest::Url::parse(&app.base).unwrap();
    jar.add_cookie_str(&format!("{SESSION_COOKIE}={value}; Path=/"), &base);
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = app.base.clone();
    (Browser { http, base }, jar)
}

fn jar_value(jar: &reqwest::cookie::Jar, app: &TestApp) -> Option<String> {
    use reqwest::cookie::CookieStore;
    let header = jar.cookies(&reqwest::Url::parse(&app.base).unwrap())?;
    let prefix = format!("{SESSION_COOKIE}=");
    let cookies = header.to_str().unwrap().to_owned();
    cookies
        .split("; ")
        .find_map(|c| c.strip_prefix(prefix.as_str()).map(str::to_owned))
}

/// A password-only sign-in whose last step is sent by hand to read its `Set-Cookie`: the ID
/// token and the session cookie's value (its attributes are checked here).
async fn sign_in_reading_cookie(
    app: &TestApp,
    browser: &Browser,
    rp: &Rp,
    user: &str,
    extra: &str,
) -> (Signed, String) {
    let started = start(app, rp).await;
    let form = asks_to_sign_in(browser, &format!("{}{extra}", started.auth_url)).await;
    let token = csrf(&form);
    let fields = [
        ("csrf", token.as_str()),
        ("username", user),
        ("password", PASSWORD),
    ];
    let url = app.url("/oauth2/signin/password");
    let response = browser.http.post(url).form(&fields).send().await.unwrap();
    let prefix = format!("{SESSION_COOKIE}=");
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&prefix))
        .expect("the sign-in sets the session cookie")
        .to_owned();
    let attributes = format!("{};", set_cookie.to_ascii_lowercase().replace("; ", ";"));
    for wanted in [";httponly;", ";samesite=lax;", ";path=/;"] {
        assert!(attributes.contains(wanted), "{wanted}: {set_cookie}");
    }
    let value = set_cookie.split(';').next().unwrap()[prefix.len()..].to_owned();
    assert!(value.len() >= 22, "an unguessable value: {set_cookie}");
    let done = Browser::page(response).await;
    let code = code_from(&done, app, rp, &started.state);
    (redeem_checked(started, code).await, value)
}

/// One request the stub relying party received, and what it answered.
struct Delivery {
    post: bool,
    content_type: String,
    body: String,
    answered: u16,
}

/// A relying party's back-channel logout endpoint on 127.0.0.1:0. It records every request
/// and answers 500 to the first `failures` of them (after `delay`), 200 to the rest.
struct StubRp {
    uri: String,
    received: mpsc::UnboundedReceiver<Delivery>,
    /// The `sid` of every logout token taken by `claims_for` so far.
    seen_sids: Vec<String>,
}

impl StubRp {
    fn start(failures: usize, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!(
            "http://{}/backchannel-logout",
            listener.local_addr().unwrap()
        );
        let (sender, received) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (sender, count) = (sender.clone(), count.clone());
                std::thread::spawn(move || answer(stream, failures, delay, &count, &sender));
            }
        });
        let seen_sids = Vec::new();
        Self {
            uri,
            received,
            seen_sids,
        }
    }

    async fn next(&mut self) -> Delivery {
        tokio::time::timeout(DELIVERY_WAIT, self.received.recv())
            .await
            .expect("a back-channel logout arrives in time")
            .expect("the stub runs")
    }

    /// The claims of the first logout token for session `sid` (others are checked, skipped).
    async fn claims_for(&mut self, app: &TestApp, client_id: &str, sid: &str) -> Value {
        let keys = published_keys(app).await;
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        loop {
            let delivery = tokio::time::timeout_at(deadline, self.received.recv())
                .await
                .unwrap_or_else(|_| panic!("a logout token for session {sid} in time"))
                .expect("the stub runs");
            let claims = check_logout_token(app, &keys, &logout_token_of(&delivery), client_id);
            self.seen_sids
                .push(claims["sid"].as_str().unwrap().to_owned());
            if claims["sid"] == sid {
                return claims;
            }
        }
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        (n.trim() == name).then(|| v.trim().to_owned())
    })
}

/// Serves one request (a Content-Length body) and closes the connection.
fn answer(
    mut stream: TcpStream,
    failures: usize,
    delay: Duration,
    count: &AtomicUsize,
    sender: &mpsc::UnboundedSender<Delivery>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let (mut data, mut buf) = (Vec::new(), [0u8; 8192]);
    let (head, body) = loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
        let length: usize = header(&head, "content-length").map_or(0, |v| v.parse().unwrap_or(0));
        if data.len() >= end + 4 + length {
            let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned();
            break (head, body);
        }
    };
    let fail = count.fetch_add(1, Ordering::SeqCst) < failures;
    let answered = if fail { 500 } else { 200 };
    let post = head.starts_with("post ");
    let content_type = header(&head, "content-type").unwrap_or_default();
    let _ = sender.send(Delivery {
        post,
        content_type,
        body,
        answered,
    });
    if fail {
        std::thread::sleep(delay);
    }
    let _ = write!(
        stream,
        "HTTP/1.1 {answered} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        if fail { "Internal Server Error" } else { "OK" }
    );
}

fn logout_token_of(delivery: &Delivery) -> String {
    assert!(delivery.post, "logout tokens are POSTed");
    let form = delivery
        .content_type
        .starts_with("application/x-www-form-urlencoded");
    assert!(form, "{}", delivery.content_type);
    url::form_urlencoded::parse(delivery.body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("a logout_token field: {}", delivery.body))
}

async fn published_keys(app: &TestApp) -> Vec<CoreJsonWebKey> {
    let issuer = IssuerUrl::new(app.base.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &rp_http())
        .await
        .expect("discovery");
    metadata.jwks().keys().clone()
}

/// Validates a logout token as Back-Channel Logout 1.0 §2.6 tells a relying party to, with the
/// key the JWKS publishes; returns its claims.
fn check_logout_token(app: &TestApp, keys: &[CoreJsonWebKey], token: &str, aud: &str) -> Value {
    let header = jwt_part(token, 0);
    assert_eq!(
        (header["typ"].as_str(), header["alg"].as_str()),
        (Some("logout+jwt"), Some("RS256"))
    );
    let key = keys
        .iter()
        .find(|k| k.key_id().map(|id| id.as_str()) == header["kid"].as_str())
        .expect("the token's kid is published");
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let alg = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
    key.verify_signature(&alg, input.as_bytes(), &signature)
        .expect("the logout token verifies with the published key");
    let claims = jwt_part(token, 1);
    assert_eq!(claims["iss"], app.base.as_str(), "{claims}");
    assert_eq!(
        claims["aud"].as_str(),
        Some(aud),
        "aud: the client, a string"
    );
    let now = now_secs() as i64;
    let [iat, exp] = ["iat", "exp"].map(|c| claims[c].as_i64().expect("iat and exp"));
    assert!(iat <= now + 5 && exp > iat && exp > now - 5, "{claims}");
    let strings = ["jti", "sub", "sid"].map(|c| claims[c].as_str().is_some_and(|v| !v.is_empty()));
    assert_eq!(strings, [true; 3], "{claims}");
    let events = claims["events"].as_object().expect("events");
    assert_eq!(events.len(), 1, "{claims}");
    assert_eq!(events[LOGOUT_EVENT], json!({}), "{claims}");
    assert!(claims.get("nonce").is_none(), "never a nonce: {claims}");
    claims
}

#[tokio::test]
async fn basic_op_session_sequence_in_one_browser() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (user_id, secret) = enrolled_user(&app, &admin, "sso.user").await;
    let body = json!({"neverExpires": true, "unlimitedUsage": true});
    let bypass = create_code(&app, &admin, &user_id, body).await;
    let bypass = Second::Bypass(bypass["code"].as_str().unwrap());
    app.create_user(&admin, user_body("sso.other")).await;
    let signed_out = unique_uri("signed-out");
    let rp = register_logout(&app, &[&signed_out], None).await;
    let other = register(&app, false, false).await;
    let browser = Browser::new(&app);

    // oidcc-prompt-none-not-logged-in
    let error = prompt_none_error(&app, &browser, &rp, "").await;
    assert_eq!(error, "login_required");

    // Sign in with password and TOTP.
    let first = sign_in_at(&app, &browser, &rp, "sso.user", Second::Totp(&secret), "").await;
    assert_eq!(first.sub(), user_id);
    assert_eq!(first.amr(), ["pwd", "mfa", "otp"]);

    // oidcc-prompt-none-logged-in: same user, same sign-in, no page.
    let again = silent(&app, &browser, &rp, "&prompt=none").await;
    let same = |s: &Signed| (s.sub().to_owned(), s.auth_time(), s.sid().to_owned());
    assert_eq!(same(&again), same(&first));
    assert_eq!(again.amr(), first.amr(), "the session's own amr");
    // A second client in the same browser: no page, the same session.
    let second = silent(&app, &browser, &other, "").await;
    assert_eq!(same(&second), same(&first));
    assert_eq!(second.amr(), ["pwd", "mfa", "otp"]);

    // oidcc-max-age-10000 and oidcc-id-token-hint.
    let young = silent(&app, &browser, &rp, "&max_age=10000").await;
    assert_eq!(young.auth_time(), first.auth_time());
    let hinted = format!("&prompt=none&id_token_hint={}", first.id_token);
    assert_eq!(
        silent(&app, &browser, &rp, &hinted).await.sid(),
        first.sid()
    );
    // Someone else's ID token as the hint: not this session's user.
    let elsewhere = Browser::new(&app);
    let stranger = sign_in_at(&app, &elsewhere, &rp, "sso.other", Second::Nothing, "").await;
    let hint = format!("&id_token_hint={}", stranger.id_token);
    let error = prompt_none_error(&app, &browser, &rp, &hint).await;
    assert_eq!(error, "login_required");
    let started = start(&app, &rp).await;
    asks_to_sign_in(&browser, &format!("{}{hint}", started.auth_url)).await;
    // login_hint fills in the username.
    let started = start(&app, &rp).await;
    let url = format!("{}&prompt=login&login_hint=sso.user", started.auth_url);
    let form = asks_to_sign_in(&browser, &url).await;
    assert!(form.body.contains("value=\"sso.user\""), "{}", form.body);

    // oidcc-max-age-1: the session is too old; without a page that is login_required.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let error = prompt_none_error(&app, &browser, &rp, "&max_age=1").await;
    assert_eq!(error, "login_required");
    let renewed = sign_in_at(&app, &browser, &rp, "sso.user", bypass, "&max_age=1").await;
    assert_eq!(renewed.sub(), user_id);
    assert!(renewed.auth_time() > first.auth_time(), "auth_time moved");
    assert_eq!(renewed.amr(), ["pwd", "mfa", "bypass_code"]);

    // oidcc-prompt-login: asks again, whatever the session.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let relogged = sign_in_at(&app, &browser, &rp, "sso.user", bypass, "&prompt=login").await;
    assert!(
        relogged.auth_time() > renewed.auth_time(),
        "auth_time moved"
    );
    let after = silent(&app, &browser, &other, "&prompt=none").await;
    assert_eq!(same(&after), same(&relogged));

    // oidcc-rp-initiated-logout: back to the client with its state; the session is over.
    let out = browser
        .get(&logout_url(&[
            ("id_token_hint", &relogged.id_token),
            ("post_logout_redirect_uri", &signed_out),
            ("state", "bye-1"),
        ]))
        .await;
    assert_logged_out_to(&out, &signed_out, "bye-1");
    for client in [&rp, &other] {
        let error = prompt_none_error(&app, &browser, client, "").await;
        assert_eq!(error, "login_required");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_sign_in_sets_a_new_session_cookie() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("fixated")).await;
    let rp = register(&app, false, false).await;

    // An attacker plants a session cookie in the victim's browser before the sign-in.
    let (victim, jar) = planted_browser(&app, "attacker");
    let (signed, value) = sign_in_reading_cookie(&app, &victim, &rp, "fixated", "").await;
    assert_ne!(value, "attacker");
    assert_eq!(jar_value(&jar, &app).as_deref(), Some(value.as_str()));
    let (attacker, _) = planted_browser(&app, "attacker");
    let error = prompt_none_error(&app, &attacker, &rp, "").await;
    assert_eq!(error, "login_required", "the planted value is no session");

    // The value set is the session: whoever holds it is signed in, as the user.
    let (holder, _) = planted_browser(&app, &value);
    let held = silent(&app, &holder, &rp, "&prompt=none").await;
    assert_eq!((held.sub(), held.sid()), (signed.sub(), signed.sid()));
    // A password-only session asked for 2-step verification: never without a page.
    let acr = "&acr_values=urn:bypass-idp:acr:mfa";
    let error = prompt_none_error(&app, &holder, &rp, acr).await;
    assert_eq!(error, "interaction_required");

    // Signing in again in the same browser gives yet another value.
    let (_, renewed) = sign_in_reading_cookie(&app, &victim, &rp, "fixated", "&prompt=login").await;
    assert_ne!(renewed, value);
    assert_eq!(jar_value(&jar, &app).as_deref(), Some(renewed.as_str()));
    app.stop().await;
}

#[tokio::test]
async fn back_channel_logout_tells_each_client_of_the_session() {
    let app = TestApp::spawn().await;
    let discovery: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["end_session_endpoint"], app.url("/oauth2/logout"));
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);

    let admin = app.admin_token(None).await;
    let user = app.create_user(&admin, user_body("bc.user")).await;
    let user_id = user["id"].as_str().unwrap();
    let mut prompt_rp = StubRp::start(0, Duration::ZERO);
    // Answers 500, slowly, the first time: the logout page must not wait, and it is retried.
    let mut flaky_rp = StubRp::start(1, Duration::from_secs(4));
    let mut bystander = StubRp::start(0, Duration::ZERO);
    // Client A is registered at the command line, with two post-logout URIs.
    let (redirect, first_uri, signed_out) = (
        unique_uri("callback"),
        unique_uri("signed-out"),
        unique_uri("signed-out"),
    );
    let (status, out, err) = app.cli(
        &[
            "client",
            "add",
            "--redirect-uri",
            redirect.as_str(),
            "--scope",
            SCOPES,
            "--post-logout-redirect-uri",
            first_uri.as_str(),
            "--post-logout-redirect-uri",
            signed_out.as_str(),
            "--backchannel-logout-uri",
            prompt_rp.uri.as_str(),
        ],
        None,
    );
    assert_eq!(status, 0, "{err}");
    let created: Value = serde_json::from_str(out.trim()).expect("JSON on stdout");
    let a = Rp {
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().map(str::to_owned),
        redirect,
    };
    let b = register_logout(&app, &[], Some(flaky_rp.uri.as_str())).await;
    let c = register_logout(&app, &[], Some(bystander.uri.as_str())).await;
    let browser = Browser::new(&app);
    let at_a = sign_in_at(&app, &browser, &a, "bc.user", Second::Nothing, "").await;
    let at_b = silent(&app, &browser, &b, "").await;
    assert_eq!(at_b.sid(), at_a.sid());
    // The same user at client C in another browser: another session, which stays.
    let elsewhere = Browser::new(&app);
    sign_in_at(&app, &elsewhere, &c, "bc.user", Second::Nothing, "").await;

    let began = Instant::now();
    let out = browser
        .get(&logout_url(&[
            ("id_token_hint", &at_a.id_token),
            ("post_logout_redirect_uri", &signed_out),
            ("state", "bc"),
        ]))
        .await;
    let took = began.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the page does not wait for clients: {took:?}"
    );
    assert_logged_out_to(&out, &signed_out, "bc");

    let claims = prompt_rp.claims_for(&app, &a.client_id, at_a.sid()).await;
    assert_eq!(claims["sub"], user_id);
    let first = flaky_rp.next().await;
    assert_eq!(first.answered, 500);
    let retried = flaky_rp.next().await;
    assert_eq!(retried.answered, 200, "retried after a 500");
    let keys = published_keys(&app).await;
    let claims = check_logout_token(&app, &keys, &logout_token_of(&retried), &b.client_id);
    assert_eq!(claims["sid"], at_b.sid());
    assert_eq!(claims["sub"], user_id);

    // Client C had nothing from this session: it is told nothing, and its session goes on.
    assert!(bystander.received.try_recv().is_err(), "C was not told");
    silent(&app, &elsewhere, &c, "&prompt=none").await;
    let error = prompt_none_error(&app, &browser, &a, "").await;
    assert_eq!(error, "login_required");
    app.stop().await;
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Change {
    LoseRole,
    Rename,
    RevokeCode,
    ResetTotp,
    PatchPassword,
    PutPassword,
    Deactivate,
    Delete,
}

#[tokio::test]
async fn revocations_end_sessions_and_tell_the_clients() {
    use Change::*;
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let mut stub = StubRp::start(0, Duration::ZERO);
    let rp = register_logout(&app, &[], Some(stub.uri.as_str())).await;
    let patch = |ops: Value| Some(json!({"schemas": [PATCH_SCHEMA], "Operations": ops}));
    let replace =
        |path: &str, value: Value| patch(json!([{"op": "replace", "path": path, "value": value}]));
    let mut kept = Vec::new();
    // Changes that end nothing come first, so a logout token sent for them would be seen.
    let changes = [
        LoseRole,
        Rename,
        RevokeCode,
        ResetTotp,
        PatchPassword,
        PutPassword,
        Deactivate,
        Delete,
    ];
    for (i, change) in changes.into_iter().enumerate() {
        let name = format!("revoked.{i}");
        let (id, secret) = if matches!(change, RevokeCode | ResetTotp) {
            enrolled_user(&app, &admin, &name).await
        } else {
            let created = app.create_user(&admin, user_body(&name)).await;
            (created["id"].as_str().unwrap().to_owned(), Vec::new())
        };
        // What the change is applied to, and the bypass code the sign-in uses.
        let (mut target, mut typed) = (format!("/Users/{id}"), String::new());
        if change == RevokeCode {
            let code = create_code(&app, &admin, &id, json!({"neverExpires": true})).await;
            target = format!("{target}/bypassCodes/{}", code["id"].as_str().unwrap());
            typed = code["code"].as_str().unwrap().to_owned();
        } else if change == ResetTotp {
            target = format!("{target}/totp");
        } else if change == LoseRole {
            let group = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Help desk administrators",
                "members": [{"value": id}],
            });
            let (status, group, _) = app.scim(Method::POST, "/Groups", &admin, Some(group)).await;
            assert_eq!(status, 201, "{group}");
            target = format!("/Groups/{}", group["id"].as_str().unwrap());
        }
        let second = match change {
            RevokeCode => Second::Bypass(&typed),
            ResetTotp => Second::Totp(&secret),
            _ => Second::Nothing,
        };
        let browser = Browser::new(&app);
        let signed = sign_in_at(&app, &browser, &rp, &name, second, "").await;
        let before = silent(&app, &browser, &rp, "&prompt=none").await;
        assert_eq!(before.sid(), signed.sid(), "{change:?}");

        let mut replaced = user_body(&name);
        replaced["password"] = json!("another long password");
        let member = format!("members[value eq \"{id}\"]");
        let (method, body) = match change {
            LoseRole => (
                Method::PATCH,
                patch(json!([{"op": "remove", "path": member}])),
            ),
            Rename => (Method::PATCH, replace("displayName", json!("Still Here"))),
            RevokeCode | ResetTotp | Delete => (Method::DELETE, None),
            PatchPassword => (
                Method::PATCH,
                replace("password", json!("a new long password")),
            ),
            PutPassword => (Method::PUT, Some(replaced)),
            Deactivate => (Method::PATCH, replace("active", json!(false))),
        };
        if matches!(change, PatchPassword | PutPassword) {
            // As in hardening.rs: the change lands in a later second than the sign-in.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let (status, body, _) = app.scim(method, &target, &admin, body).await;
        assert!(matches!(status, 200 | 204), "{change:?}: {status} {body}");

        if matches!(change, LoseRole | Rename) {
            let after = silent(&app, &browser, &rp, "&prompt=none").await;
            assert_eq!(after.sid(), signed.sid(), "{change:?} ends nothing");
            kept.push(signed.sid().to_owned());
        } else {
            let error = prompt_none_error(&app, &browser, &rp, "").await;
            assert_eq!(error, "login_required", "{change:?}");
            let claims = stub.claims_for(&app, &rp.client_id, signed.sid()).await;
            assert_eq!(claims["sub"], id.as_str(), "{change:?}");
        }
    }
    for sid in &kept {
        assert!(
            !stub.seen_sids.contains(sid),
            "a session that goes on was logged out"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn logout_checks_its_parameters_and_offline_grants_outlive_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("lo.user")).await;
    let signed_out = unique_uri("signed-out");
    let rp = register_logout(&app, &[&signed_out], None).await;
    let browser = Browser::new(&app);
    // One grant with offline_access (`start` asks for it), one without, in one session.
    let offline = sign_in_at(&app, &browser, &rp, "lo.user", Second::Nothing, "").await;
    let mut started = start(&app, &rp).await;
    let without = started.auth_url.replace("+offline_access", "");
    assert_ne!(without, started.auth_url, "start asks for offline_access");
    started.auth_url = without;
    let page = browser
        .get(&format!("{}&prompt=none", started.auth_url))
        .await;
    let code = code_from(&page, &app, &rp, &started.state);
    let online = redeem_checked(started, code).await;
    assert_eq!(online.sid(), offline.sid());
    let (status, rotated) = refresh_with(&app, &rp, online.refresh_token.as_deref().unwrap()).await;
    assert_eq!(status, 200, "{rotated}");
    assert!(
        !rotated["scope"]
            .as_str()
            .unwrap()
            .contains("offline_access")
    );
    let online_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();

    // A post_logout_redirect_uri not registered exactly: an error page, never a redirect.
    for wrong in [
        "https://evil.example/signed-out".to_owned(),
        format!("{signed_out}/x"),
    ] {
        let page = browser
            .get(&logout_url(&[
                ("id_token_hint", &offline.id_token),
                ("post_logout_redirect_uri", &wrong),
                ("state", "s"),
            ]))
            .await;
        assert_eq!(page.status, 400, "{wrong}: {}", page.body);
        assert!(page.location.is_none());
    }
    silent(&app, &browser, &rp, "&prompt=none").await;

    // No hint, a modified one or garbage: a page asks first, and ends nothing yet.
    let (input, signature) = offline.id_token.rsplit_once('.').unwrap();
    let mut flipped: Vec<char> = signature.chars().collect();
    flipped[10] = if flipped[10] == 'A' { 'B' } else { 'A' };
    let modified = format!("{input}.{}", flipped.into_iter().collect::<String>());
    let asked = [
        ("client_id", rp.client_id.as_str()),
        ("post_logout_redirect_uri", signed_out.as_str()),
        ("state", "confirm-me"),
    ];
    let mut confirmation = None;
    for hint in [None, Some(modified.as_str()), Some("not-a-token")] {
        let mut params = asked.to_vec();
        params.extend(hint.map(|h| ("id_token_hint", h)));
        let page = browser.get(&logout_url(&params)).await;
        assert_eq!(page.status, 200, "{hint:?}: {}", page.body);
        assert!(page.location.is_none());
        let form = [
            "action=\"/oauth2/logout\"",
            "name=\"csrf\"",
            "value=\"confirm-me\"",
            "Sign out",
        ];
        for part in form {
            assert!(page.body.contains(part), "{part}: {}", page.body);
        }
        confirmation = Some(page);
    }
    silent(&app, &browser, &rp, "&prompt=none").await;
    let mut forged = asked.to_vec();
    forged.push(("csrf", "forged"));
    let refused = browser.post("/oauth2/logout", &forged).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.location.is_none());
    silent(&app, &browser, &rp, "&prompt=none").await;
    let token = csrf(&confirmation.unwrap());
    let mut confirmed = asked.to_vec();
    confirmed.push(("csrf", token.as_str()));
    let out = browser.post("/oauth2/logout", &confirmed).await;
    assert_logged_out_to(&out, &signed_out, "confirm-me");
    let error = prompt_none_error(&app, &browser, &rp, "").await;
    assert_eq!(error, "login_required");

    // The grant without offline_access ended with the session; the other did not.
    let (status, body) = refresh_with(&app, &rp, &online_refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (status, body) = refresh_with(&app, &rp, offline.refresh_token.as_deref().unwrap()).await;
    assert_eq!(status, 200, "offline_access outlives the logout: {body}");

    // oidcc-rp-initiated-logout-no-post-logout-redirect-uri: a page says so.
    let signed = sign_in_at(&app, &browser, &rp, "lo.user", Second::Nothing, "").await;
    let page = browser
        .get(&logout_url(&[("id_token_hint", &signed.id_token)]))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.location.is_none() && page.body.contains("Signed out"),
        "{}",
        page.body
    );
    let error = prompt_none_error(&app, &browser, &rp, "").await;
    assert_eq!(error, "login_required");
    app.stop().await;
}

#[tokio::test]
async fn a_bypass_code_session_says_so_and_the_policy_bounds_its_single_sign_on() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (user_id, secret) = enrolled_user(&app, &admin, "bypass.sso").await;
    let body = json!({"neverExpires": true, "unlimitedUsage": true});
    let code = create_code(&app, &admin, &user_id, body).await;
    let bypass = Second::Bypass(code["code"].as_str().unwrap());
    let (a, b) = (
        register(&app, false, false).await,
        register(&app, false, false).await,
    );

    let browser = Browser::new(&app);
    let first = sign_in_at(&app, &browser, &a, "bypass.sso", bypass, "").await;
    assert_eq!(first.amr(), ["pwd", "mfa", "bypass_code"]);
    let second = silent(&app, &browser, &b, "&prompt=none").await;
    assert_eq!(
        second.amr(),
        ["pwd", "mfa", "bypass_code"],
        "the session's own amr"
    );
    assert_eq!(second.sid(), first.sid());

    let settings = "/BypassCodeSettings";
    let (_, read, _) = app.scim(Method::GET, settings, &admin, None).await;
    assert_eq!(read["bypassSessionMaxMinutes"], 60, "{read}");
    for bad in [json!(1441), json!(-1), json!("an hour")] {
        let body = Some(json!({"bypassSessionMaxMinutes": bad}));
        let (status, body, _) = app.scim(Method::PUT, settings, &admin, body).await;
        common::assert_scim_error(status, &body, 400, Some("invalidValue"));
    }
    let never = Some(json!({"bypassSessionMaxMinutes": 0}));
    let (status, saved, _) = app.scim(Method::PUT, settings, &admin, never).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["bypassSessionMaxMinutes"], 0);

    // Now a bypass-code sign-in gets its own client in, and nothing more.
    let browser = Browser::new(&app);
    sign_in_at(&app, &browser, &a, "bypass.sso", bypass, "").await;
    let error = prompt_none_error(&app, &browser, &b, "").await;
    assert_eq!(error, "login_required");
    // A session opened with the authenticator app is not bound by the bypass policy.
    let browser = Browser::new(&app);
    sign_in_at(&app, &browser, &a, "bypass.sso", Second::Totp(&secret), "").await;
    let other = silent(&app, &browser, &b, "&prompt=none").await;
    assert_eq!(other.amr(), ["pwd", "mfa", "otp"]);
    app.stop().await;
}

#[tokio::test]
async fn sign_out_everywhere_from_my_security() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (user_id, secret) = enrolled_user(&app, &admin, "everywhere").await;
    let body = json!({"neverExpires": true, "maxUsageCount": 2});
    let code = create_code(&app, &admin, &user_id, body).await;
    let rp = register(&app, false, false).await;
    let elsewhere = Browser::new(&app);
    let bypass = Second::Bypass(code["code"].as_str().unwrap());
    let offline = sign_in_at(&app, &elsewhere, &rp, "everywhere", bypass, "").await;
    silent(&app, &elsewhere, &rp, "&prompt=none").await;

    // A sign-in in progress elsewhere: past its password, not yet finished.
    let pending = Browser::new(&app);
    let pending_start = start(&app, &rp).await;
    password_step(&pending, &pending_start.auth_url, "everywhere", PASSWORD).await;
    let pending_form = pending.get("/oauth2/signin?method=bypass").await;
    // Revocation times are kept to the second: the password check is in an earlier one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (browser, _) = console_sign_in(&app, "everywhere", &secret, "/console").await;
    let account = browser.get("/account").await;
    assert_eq!(account.status, 200, "{}", account.body);
    // minijinja escapes `/` in attributes; a browser reads `&#x2f;` back as `/`.
    let action = "action=\"&#x2f;account&#x2f;sessions&#x2f;end\"";
    assert!(account.body.contains(action), "{}", account.body);
    assert!(account.body.contains("Sign out everywhere"));
    let forged = browser
        .post("/account/sessions/end", &[("csrf", "forged")])
        .await;
    assert!(forged.status >= 400, "{}", forged.body);
    silent(&app, &elsewhere, &rp, "&prompt=none").await;
    let ended = browser
        .post("/account/sessions/end", &[("csrf", &csrf(&account))])
        .await;
    assert!(matches!(ended.status, 200 | 303), "{}", ended.body);
    let error = prompt_none_error(&app, &elsewhere, &rp, "").await;
    assert_eq!(error, "login_required");
    // The sign-in that was in progress finishes, but what it gives is void.
    let finished = pending
        .post(
            "/oauth2/signin/bypass",
            &[
                ("csrf", &csrf(&pending_form)),
                ("code", code["code"].as_str().unwrap()),
            ],
        )
        .await;
    let finished = not_now(&pending, finished).await;
    let late = code_from(&finished, &app, &rp, &pending_start.state);
    let (status, body) = redeem(&app, &rp, &late, pending_start.verifier.secret()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let error = prompt_none_error(&app, &pending, &rp, "").await;
    assert_eq!(error, "login_required", "its session does not sign in");
    // Sign out everywhere ends offline_access grants too, unlike a plain logout.
    let refresh = offline
        .refresh_token
        .expect("an offline_access refresh token");
    let (status, body) = refresh_with(&app, &rp, &refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    app.stop().await;
}

/// `BYPASS_IDP_SESSIONS_PER_USER`: a user who opens one session more than allowed loses the
/// oldest, not the newest.
#[tokio::test]
async fn a_user_over_the_session_limit_loses_the_oldest() {
    let app = TestApp::spawn_with(&[("BYPASS_IDP_SESSIONS_PER_USER", "2")]).await;
    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &admin, "many.browsers").await;
    let body = json!({"neverExpires": true, "maxUsageCount": 3});
    let code = create_code(&app, &admin, &user_id, body).await;
    let code = code["code"].as_str().unwrap();
    let rp = register(&app, false, false).await;
    let browsers = [Browser::new(&app), Browser::new(&app), Browser::new(&app)];
    for browser in &browsers {
        sign_in_at(
            &app,
            browser,
            &rp,
            "many.browsers",
            Second::Bypass(code),
            "",
        )
        .await;
        // Sessions are ordered by when they began.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = prompt_none_error(&app, &browsers[0], &rp, "").await;
    assert_eq!(error, "login_required", "the oldest session ended");
    for browser in &browsers[1..] {
        silent(&app, browser, &rp, "&prompt=none").await;
    }
    app.stop().await;
}

/// One browser, one session: the same user signing in again keeps the `sid` the clients hold
/// (a new cookie, a later `auth_time`), and another user signing in ends the first user's
/// session and tells its clients.
#[tokio::test]
async fn a_browser_session_is_renewed_for_its_user_and_replaced_for_another() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("first.person")).await;
    app.create_user(&admin, user_body("second.person")).await;
    let mut stub = StubRp::start(0, Duration::ZERO);
    let rp = register_logout(&app, &[], Some(&stub.uri)).await;
    let (browser, jar) = planted_browser(&app, "nothing-yet");
    let first = sign_in_at(&app, &browser, &rp, "first.person", Second::Nothing, "").await;
    let old_cookie = jar_value(&jar, &app).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = sign_in_at(
        &app,
        &browser,
        &rp,
        "first.person",
        Second::Nothing,
        "&prompt=login",
    )
    .await;
    assert_eq!(again.sid(), first.sid(), "the clients' sid stays true");
    assert!(again.auth_time() > first.auth_time());
    assert_ne!(jar_value(&jar, &app).unwrap(), old_cookie, "a new cookie");
    let (stale, _) = planted_browser(&app, &old_cookie);
    let error = prompt_none_error(&app, &stale, &rp, "").await;
    assert_eq!(error, "login_required", "the old cookie opens nothing");

    let other = sign_in_at(
        &app,
        &browser,
        &rp,
        "second.person",
        Second::Nothing,
        "&prompt=login",
    )
    .await;
    assert_ne!(other.sid(), first.sid());
    let claims = stub.claims_for(&app, &rp.client_id, first.sid()).await;
    assert_eq!(claims["sub"], first.sub());
    assert_eq!(
        silent(&app, &browser, &rp, "&prompt=none").await.sub(),
        other.sub()
    );
    app.stop().await;
}

/// A session cookie an attacker plants in a victim's browser (their own, real session) is
/// replaced when the victim signs in, and the attacker's session ends with it.
#[tokio::test]
async fn a_planted_real_session_ends_when_the_victim_signs_in() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("the.attacker")).await;
    app.create_user(&admin, user_body("the.victim")).await;
    let rp = register(&app, false, false).await;
    let (attacker, attacker_jar) = planted_browser(&app, "nothing-yet");
    sign_in_at(&app, &attacker, &rp, "the.attacker", Second::Nothing, "").await;
    let planted = jar_value(&attacker_jar, &app).unwrap();
    let (victim, victim_jar) = planted_browser(&app, &planted);
    let signed = sign_in_at(
        &app,
        &victim,
        &rp,
        "the.victim",
        Second::Nothing,
        "&prompt=login",
    )
    .await;
    assert_ne!(jar_value(&victim_jar, &app).unwrap(), planted);
    assert_eq!(
        silent(&app, &victim, &rp, "&prompt=none").await.sub(),
        signed.sub()
    );
    let error = prompt_none_error(&app, &attacker, &rp, "").await;
    assert_eq!(error, "login_required", "the planted session ended");
    app.stop().await;
}

/// An old ID token of the same user, from another session, does not sign this browser out
/// without asking; the logout clears the cookie as it was set.
#[tokio::test]
async fn a_hint_from_another_session_asks_and_logout_clears_the_cookie() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("two.browsers")).await;
    let rp = register_logout(&app, &[], None).await;
    let (one, _) = planted_browser(&app, "nothing-yet");
    let (two, _) = planted_browser(&app, "nothing-yet");
    let elsewhere = sign_in_at(&app, &one, &rp, "two.browsers", Second::Nothing, "").await;
    let here = sign_in_at(&app, &two, &rp, "two.browsers", Second::Nothing, "").await;
    assert_ne!(elsewhere.sid(), here.sid());
    let asked = two
        .get(&logout_url(&[("id_token_hint", &elsewhere.id_token)]))
        .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("name=\"csrf\""), "a confirmation page");
    silent(&app, &two, &rp, "&prompt=none").await;

    let url = app.url(&logout_url(&[("id_token_hint", &here.id_token)]));
    let response = two.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cleared = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")))
        .expect("the logout clears the session cookie")
        .to_ascii_lowercase();
    for wanted in ["max-age=0", "path=/", "httponly"] {
        assert!(cleared.contains(wanted), "{wanted}: {cleared}");
    }
    let error = prompt_none_error(&app, &two, &rp, "").await;
    assert_eq!(error, "login_required");
    silent(&app, &one, &rp, "&prompt=none").await;
    app.stop().await;
}

/// The console keeps its own limits on top of single sign-on: it asks for a sign-in at most
/// 8 hours old, and after its own session lapses it asks for a new one (`prompt=login`),
/// not a silent renewal from the browser's session.
#[tokio::test]
async fn the_console_signs_in_again_after_its_session_lapses() {
    use reqwest::cookie::CookieStore;
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let (_, secret) = enrolled_user(&app, &admin, "console.lapse").await;
    let (browser, jar) = planted_browser(&app, "nothing-yet");
    let first = browser.get("/account").await;
    let authorize = first.location.clone().unwrap();
    assert!(authorize.contains("max_age=28800"), "{authorize}");
    assert!(!authorize.contains("prompt=login"), "{authorize}");
    let page = password_step(&browser, &authorize, "console.lapse", PASSWORD).await;
    let totp = bypass_idp::domain::totp::code_at(&secret, now_secs() + 30).unwrap();
    let done = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &totp)],
        )
        .await;
    let callback = browser.get(&done.location.unwrap()).await;
    assert_eq!(callback.status, 303, "{}", callback.body);
    assert_eq!(browser.get("/account").await.status, 200);

    // The console session lapses (as its idle timeout would end it).
    let cookies = jar
        .cookies(&reqwest::Url::parse(&app.base).unwrap())
        .unwrap();
    let console_cookie = cookies
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| c.strip_prefix("bidp_console="))
        .unwrap()
        .to_owned();
    app.state().console.end(&console_cookie).await.unwrap();
    for attempt in ["first", "reload"] {
        // Every attempt until a new console sign-in asks again, not only the first.
        let again = browser.get("/account").await;
        let authorize = again.location.unwrap();
        assert!(authorize.contains("prompt=login"), "{attempt}: {authorize}");
        let asked = browser.get(&authorize).await;
        assert_eq!(
            asked.location.as_deref(),
            Some("/oauth2/signin"),
            "{attempt}"
        );
    }
    app.stop().await;
}

/// An idle session no longer signs in (`BYPASS_IDP_SESSION_IDLE_SECONDS`), but a logout still
/// ends it: its grants end and its clients are told.
#[tokio::test]
async fn an_idle_session_stops_signing_in_and_logout_still_ends_it() {
    let app = TestApp::spawn_with(&[("BYPASS_IDP_SESSION_IDLE_SECONDS", "2")]).await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("idle.person")).await;
    let mut stub = StubRp::start(0, Duration::ZERO);
    let rp = register_logout(&app, &[], Some(&stub.uri)).await;
    let browser = Browser::new(&app);
    let signed = sign_in_at(&app, &browser, &rp, "idle.person", Second::Nothing, "").await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let error = prompt_none_error(&app, &browser, &rp, "").await;
    assert_eq!(error, "login_required", "idle");
    let page = browser
        .get(&logout_url(&[("id_token_hint", &signed.id_token)]))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("signed out"), "{}", page.body);
    let claims = stub.claims_for(&app, &rp.client_id, signed.sid()).await;
    assert_eq!(claims["sub"], signed.sub());
    app.stop().await;
}

/// Single sign-on answers count against the sign-ins one address may start
/// (`BYPASS_IDP_MAX_FLOWS_PER_ADDRESS`), as flows do: each leaves an authorization code and an
/// audit row behind.
#[tokio::test]
async fn single_sign_on_counts_against_the_per_address_limit() {
    let app = TestApp::spawn_with(&[("BYPASS_IDP_MAX_FLOWS_PER_ADDRESS", "3")]).await;
    let admin = app.admin_token(None).await;
    app.create_user(&admin, user_body("busy.person")).await;
    let rp = register(&app, false, false).await;
    let browser = Browser::new(&app);
    sign_in_at(&app, &browser, &rp, "busy.person", Second::Nothing, "").await;
    for _ in 0..2 {
        silent(&app, &browser, &rp, "&prompt=none").await;
    }
    let started = start(&app, &rp).await;
    let page = browser
        .get(&format!("{}&prompt=none", started.auth_url))
        .await;
    assert_eq!(page.status, 429, "{}", page.body);
    // A refusal sent back to the client stores nothing and is not counted.
    let (stranger, _) = planted_browser(&app, "nothing-yet");
    let started = start(&app, &rp).await;
    let refused = stranger
        .get(&format!("{}&prompt=none", started.auth_url))
        .await;
    assert_eq!(refused.status, 303, "{}", refused.body);
    app.stop().await;
}
