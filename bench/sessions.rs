//! Single sign-on against a full sign-in (DESIGN §7: "a sign-in through an existing session ≥
//! 20× a full sign-in"): `cargo bench --bench sessions`. The server runs in this process on
//! 127.0.0.1 with one worker thread (and one thread for Argon2); the browser is a plain HTTP
//! client sending one request at a time, so one core serves at any moment. Both rates come
//! from the same run and the result is their ratio.
//!
//! - full: a new browser each time, authorize → password → bypass code → "Not now" (to the
//!   offer of a new authenticator app) → authorization code → token (two Argon2
//!   computations: the password and the code);
//! - session: one signed-in browser, authorize (prompt=none, no page) → authorization
//!   code → token.
//!
//! Embedded backends (SQLite, in-process counters) unless DATABASE_URL / REDIS_URL are set.

#[path = "common.rs"]
mod common;

use std::cell::Cell;
use std::time::{Duration, Instant};

use bypass_idp::app;
use bypass_idp::config::Config;
use bypass_idp::service::oauth::clients::{self, ClientSpec};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// Each measurement runs at least this long and at least this many times.
const MIN_TIME: Duration = Duration::from_secs(5);
const MIN_ROUNDS: usize = 20;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn csrf(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = body.find(marker).expect("a form") + marker.len();
    body[start..start + body[start..].find('"').unwrap()].to_owned()
}

struct Bench {
    base: String,
    client_id: String,
    secret: String,
    code: String,
    /// Time spent in single sign-on's two requests, to say where it goes.
    authorizing: Cell<Duration>,
    redeeming: Cell<Duration>,
}

impl Bench {
    fn authorize_url(&self, extra: &str) -> String {
        format!(
            "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={REDIRECT}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
            self.base, self.client_id
        )
    }

    /// The authorization code in a redirect back to the client.
    fn code_in(&self, location: &str) -> String {
        let url = url::Url::parse(location).expect("a redirect to the client");
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {location}"))
    }

    async fn token(&self, http: &reqwest::Client, code: &str) {
        let response = http
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "token endpoint");
    }

    /// A whole sign-in in a new browser; returns that browser, signed in.
    async fn full_sign_in(&self) -> reqwest::Client {
        let http = browser();
        let url = |path: &str| format!("{}{path}", self.base);
        let started = http.get(self.authorize_url("")).send().await.unwrap();
        assert_eq!(location(&started), "/oauth2/signin");
        let page = http.get(url("/oauth2/signin")).send().await.unwrap();
        let form = csrf(&page.text().await.unwrap());
        let fields = [
            ("csrf", form.as_str()),
            ("username", "bench.sso"),
            ("password", PASSWORD),
        ];
        let sent = http.post(url("/oauth2/signin/password")).form(&fields);
        let page = sent.send().await.unwrap().text().await.unwrap();
        let fields = [("csrf", csrf(&page)), ("code", self.code.clone())];
        let mut done = http
            .post(url("/oauth2/signin/bypass"))
            .form(&fields)
            .send()
            .await
            .unwrap();
        if done.status() == 200 {
            // Accepted: the offer to set up a new authenticator app; "Not now" goes on.
            let page = done.text().await.unwrap();
            assert!(
                page.contains("action=\"/oauth2/signin/replace\""),
                "the offer page: {page}"
            );
            let fields = [("csrf", csrf(&page)), ("choice", "later".to_owned())];
            done = http
                .post(url("/oauth2/signin/replace"))
                .form(&fields)
                .send()
                .await
                .unwrap();
        }
        let code = self.code_in(&location(&done));
        self.token(&http, &code).await;
        http
    }

    /// One authorization through the browser's session: no page, a code, a token.
    async fn single_sign_on(&self, http: &reqwest::Client) {
        let started = Instant::now();
        let answer = http
            .get(self.authorize_url("&prompt=none"))
            .send()
            .await
            .unwrap();
        let code = self.code_in(&location(&answer));
        let authorized = Instant::now();
        self.token(http, &code).await;
        self.authorizing
            .set(self.authorizing.get() + (authorized - started));
        self.redeeming
            .set(self.redeeming.get() + authorized.elapsed());
    }
}

/// Rounds per second of `round`, run for at least [`MIN_TIME`] and [`MIN_ROUNDS`].
async fn rate<F, Fut>(mut round: F) -> (f64, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < MIN_ROUNDS || started.elapsed() < MIN_TIME {
        round().await;
        rounds += 1;
    }
    (rounds as f64 / started.elapsed().as_secs_f64(), rounds)
}

fn main() {
    // The server's runtime: one worker thread, so it is served by one core at a time.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let config = Config::from_sources(None, |name| match name {
        "BYPASS_IDP_DATA_DIR" => Some(data.clone()),
        "BYPASS_IDP_LISTEN" => Some("127.0.0.1:0".into()),
        // One address sends every request here; the per-address limit is not what is measured.
        "BYPASS_IDP_MAX_FLOWS_PER_ADDRESS" => Some("1000000".into()),
        "DATABASE_URL" | "REDIS_URL" => std::env::var(name).ok(),
        "BYPASS_IDP_REDIS_PREFIX" => Some(format!("bench-sso-{}", std::process::id())),
        _ => None,
    })
    .expect("config");
    let server = server_runtime.block_on(app::start(config)).expect("server");
    let state = server.state.clone();
    let store = server.store.clone();
    let base = server.issuer.clone();

    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let setup = async {
        let body = json!({
            "schemas": [bypass_idp::domain::scim::USER_SCHEMA],
            "userName": "bench.sso", "password": PASSWORD,
        });
        let (_, code) = common::enrolled(&state, body, 1).await;
        let registered = clients::register(
            &store,
            ClientSpec {
                redirect_uris: vec![REDIRECT.into()],
                scopes: "openid profile email".into(),
                grant_types: vec!["authorization_code".into()],
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())
        .unwrap();
        Bench {
            base: base.clone(),
            client_id: registered.client_id.as_str().to_owned(),
            secret: registered.secret.unwrap().expose().to_owned(),
            code,
            authorizing: Cell::default(),
            redeeming: Cell::default(),
        }
    };
    // Setup and load run on the client's runtime; the server answers on its own.
    let bench = client_runtime.block_on(setup);
    let (full, full_rounds) = client_runtime.block_on(rate(|| async {
        bench.full_sign_in().await;
    }));
    let signed_in = client_runtime.block_on(bench.full_sign_in());
    let (sso, sso_rounds) = client_runtime.block_on(rate(|| bench.single_sign_on(&signed_in)));
    println!("| sign-in | per second | rounds |");
    println!("|---|---:|---:|");
    println!(
        "| full, with a bypass code (password + code, two Argon2) | {full:.1} | {full_rounds} |"
    );
    println!(
        "| through the session (authorize → code → token, no page) | {sso:.1} | {sso_rounds} |"
    );
    let per_round = |total: Duration| total.as_secs_f64() * 1000.0 / sso_rounds as f64;
    println!(
        "\nsingle sign-on / full sign-in: {:.1}× (target ≥ 20×); a single sign-on spends {:.2} ms authorizing and {:.2} ms at the token endpoint",
        sso / full,
        per_round(bench.authorizing.get()),
        per_round(bench.redeeming.get()),
    );
    server_runtime.block_on(server.stop());
}
