//! Sign-ins beyond capacity, against a running server pinned to one core (`bench/run` starts
//! it): how many password steps are answered with their real outcome (goodput) and how
//! long they take, at 1×, 2× and 6× the Argon2 bound.
//!
//! The bound is measured in the same run: one Argon2 computation with the server's
//! parameters, timed here on the other core, is what one core can check per second. Each
//! level sends password steps open-loop at k × bound per second for a fixed time, on flows
//! prepared beforehand (so only the step itself is timed). A step is answered (the next
//! page or the redirect to the client) or refused as busy (503 with `Retry-After`); the
//! report gives goodput / bound and the p99 of the answered steps.
//!
//! By hand: `cargo bench --bench overload -- --url … --client-id … --admin-id … --admin-secret …`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bypass_idp::service::passwords::with_memory;
use clap::Parser;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const USERS: usize = 64;
const LEVELS: [f64; 3] = [1.0, 2.0, 6.0];

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    /// A client registered with the redirect URI http://127.0.0.1:9/callback.
    #[arg(long)]
    client_id: String,
    #[arg(long)]
    admin_id: String,
    #[arg(long)]
    admin_secret: String,
    /// Seconds each level sends for.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    #[arg(long, default_value = "")]
    label: String,
    /// Where the JSON results go (one object per level).
    #[arg(long)]
    out: Option<String>,
    #[arg(long, hide = true)]
    bench: bool,
}

/// A sign-in waiting at its password step: its cookie and form token, and the client
/// address it comes from (`X-Forwarded-For`, believed from 127.0.0.1), so the per-address
/// limits are not what is measured.
struct Flow {
    cookie: String,
    csrf: String,
    user: String,
    address: String,
}

fn csrf(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = body.find(marker).expect("a form") + marker.len();
    body[start..start + body[start..].find('"').unwrap()].to_owned()
}

async fn flow(http: &reqwest::Client, args: &Args, user: String, address: String) -> Flow {
    let authorize = format!(
        "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={REDIRECT}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        args.url, args.client_id
    );
    let started = http
        .get(authorize)
        .header("x-forwarded-for", &address)
        .send()
        .await
        .expect("authorize");
    assert_eq!(started.status(), 303, "authorize");
    let cookie = started
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find(|c| c.starts_with("bidp_flow="))
        .and_then(|c| c.split(';').next())
        .expect("the flow cookie")
        .to_owned();
    let page = http
        .get(format!("{}/oauth2/signin", args.url))
        .header("cookie", &cookie)
        .header("x-forwarded-for", &address)
        .send()
        .await
        .expect("sign-in page");
    let body = page.text().await.unwrap();
    Flow {
        cookie,
        csrf: csrf(&body),
        user,
        address,
    }
}

/// One password check's Argon2 computation as the server runs it: its parameters, in the
/// server's kept working memory (`passwords::with_memory`), so the bound is what one core can
/// check (Argon2id, 19 MiB, t=2, p=1), not that plus mapping 19 MiB afresh each time.
fn argon2_seconds() -> f64 {
    let rounds = 20;
    let argon = argon2::Argon2::default();
    let check = |password: &[u8]| {
        let mut out = [0u8; 32];
        with_memory(argon.params().block_count(), |memory| {
            argon.hash_password_into_with_memory(password, b"bench salt 16 by", &mut out, memory)
        })
        .unwrap();
    };
    check(b"warm");
    let started = Instant::now();
    for i in 0..rounds {
        check(format!("bench {i}").as_bytes());
    }
    started.elapsed().as_secs_f64() / rounds as f64
}

struct Level {
    factor: f64,
    offered: f64,
    answered: usize,
    refused: usize,
    other: usize,
    seconds: f64,
    p50: f64,
    p99: f64,
}

async fn run_level(http: &reqwest::Client, args: &Arc<Args>, bound: f64, factor: f64) -> Level {
    let rate = bound * factor;
    let total = (rate * args.seconds as f64).round() as usize;
    // The flows first, eight at a time, so the timed phase is password steps only.
    let mut flows = Vec::with_capacity(total);
    for chunk in (0..total).collect::<Vec<_>>().chunks(8) {
        let made = chunk.iter().map(|i| {
            let user = format!("load.user{}", i % USERS);
            let address = format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255);
            flow(http, args, user, address)
        });
        flows.extend(futures_util::future::join_all(made).await);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, flow) in flows.into_iter().enumerate() {
        let at = started + Duration::from_secs_f64(i as f64 / rate);
        let (http, url) = (http.clone(), args.url.clone());
        tasks.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let sent = Instant::now();
            let response = http
                .post(format!("{url}/oauth2/signin/password"))
                .header("cookie", &flow.cookie)
                .header("x-forwarded-for", &flow.address)
                .form(&[
                    ("csrf", flow.csrf.as_str()),
                    ("username", flow.user.as_str()),
                    ("password", PASSWORD),
                ])
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            let status = match response {
                // Past the password: the next step's page (no password field any more).
                Ok(r) if r.status() == 200 => {
                    let body = r.text().await.unwrap_or_default();
                    if body.contains("name=\"password\"") {
                        0
                    } else {
                        200
                    }
                }
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            (status, sent.elapsed())
        });
    }
    let mut answered = Vec::new();
    let (mut refused, mut other) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        match done.expect("step") {
            // The next step's page, or the redirect back to the client: the real outcome
            // (every password sent is right).
            (200 | 303, took) => answered.push(took),
            (503, _) => refused += 1,
            _ => other += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    answered.sort();
    let at = |p: f64| {
        answered
            .get(((answered.len().max(1) - 1) as f64 * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Level {
        factor,
        offered: rate,
        answered: answered.len(),
        refused,
        other,
        seconds,
        p50: at(0.5),
        p99: at(0.99),
    }
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let token: Value = http
        .post(format!("{}/oauth2/token", args.url))
        .basic_auth(&args.admin_id, Some(&args.admin_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "scim:users"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().expect("token").to_owned();
    for i in 0..USERS {
        // Users of a 2-step product: after the password comes the second step (here the
        // authenticator set-up), so a password step ends at that page.
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:bypass-idp:params:scim:schemas:extension:mfa:2.0:User"],
            "userName": format!("load.user{i}"),
            "password": PASSWORD,
            "urn:bypass-idp:params:scim:schemas:extension:mfa:2.0:User": {"mfaRequired": true},
        });
        let response = http
            .post(format!("{}/scim/v2/Users", args.url))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(user.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    let hash = argon2_seconds();
    let bound = 1.0 / hash;
    let label = &args.label;
    println!(
        "[{label}] Argon2 bound: {bound:.1} checks/s on one core ({:.1} ms each)",
        hash * 1000.0
    );
    println!(
        "| load | offered/s | answered/s | goodput / bound | refused (503) | other | p50 answered | p99 answered |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut out = String::new();
    for factor in LEVELS {
        let level = run_level(&http, &args, bound, factor).await;
        let goodput = level.answered as f64 / level.seconds;
        println!(
            "| {:.0}× | {:.0} | {:.1} | {:.2} | {} | {} | {:.0} ms | {:.0} ms |",
            level.factor,
            level.offered,
            goodput,
            goodput / bound,
            level.refused,
            level.other,
            level.p50,
            level.p99
        );
        out.push_str(
            &json!({"label": label, "kind": "overload", "factor": level.factor,
                    "offered": level.offered, "goodput": goodput, "bound": bound,
                    "ratio": goodput / bound, "refused": level.refused, "other": level.other,
                    "p50": level.p50, "p99": level.p99})
            .to_string(),
        );
        out.push('\n');
        // Let the queue drain before the next level.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if let Some(path) = &args.out {
        std::fs::write(path, out).expect("write results");
    }
}
