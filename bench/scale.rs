//! SCIM at scale, against a running server: loads N users over SCIM (8 connections), then
//! runs each query of the issue-11 table (and the other indexed attributes) from 8 connections
//! and reports p50/p99. Every query's `totalResults` is checked against what the generator
//! made, so a fast wrong answer fails the run. `bench/run` starts the server and calls this;
//! by hand: `cargo bench --bench scale -- --url http://127.0.0.1:8080 --client-id … \
//! --client-secret … --users 100000 --out results.json`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const FAMILIES: [&str; 8] = [
    "Garcia", "Smith", "Nguyen", "Okafor", "Müller", "Kowalski", "Tanaka", "Silva",
];
const GIVENS: [&str; 13] = [
    "Alice", "Bob", "Chloé", "Dmitri", "Esther", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kofi",
    "Lena", "Mateo",
];
const CONNECTIONS: usize = 8;
/// Requests per query, spread over the connections, unless the time cap comes first.
const SAMPLES: usize = 400;
const TIME_CAP: Duration = Duration::from_secs(20);

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    client_id: String,
    #[arg(long)]
    client_secret: String,
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Where the JSON results go (one object per line).
    #[arg(long)]
    out: String,
    /// A label for the results (the backend).
    #[arg(long, default_value = "")]
    label: String,
    /// `cargo bench` passes this to every bench target.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The generated user number `i`, zero-padded so `userName sw "user0999"` matches 100 users
/// at 100,000 and at 1,000,000.
fn number(i: usize, users: usize) -> String {
    let width = (users.saturating_sub(1)).to_string().len().max(6);
    format!("{i:0width$}")
}

fn user(i: usize, users: usize) -> Value {
    let n = number(i, users);
    let family = FAMILIES[i % FAMILIES.len()];
    let given = GIVENS[i % GIVENS.len()];
    json!({
        "schemas": [USER_SCHEMA],
        "userName": format!("user{n}"),
        "externalId": format!("ext-{n}"),
        "name": {"familyName": family, "givenName": given},
        "displayName": format!("{given} {family} {n}"),
        "emails": [{"value": format!("user{n}@example.com"), "type": "work", "primary": true}],
    })
}

struct Query {
    name: String,
    params: Vec<(&'static str, String)>,
    /// The totalResults the generated data must give; `None` where it depends on timing.
    expected: Option<usize>,
}

fn queries(users: usize, recent: &str) -> Vec<Query> {
    let count = |pred: &dyn Fn(usize) -> bool| (0..users).filter(|&i| pred(i)).count();
    let probe = number(54_321 % users, users);
    let filter = |f: String| vec![("filter", f)];
    let mut out = vec![
        Query {
            name: format!("userName eq \"user{probe}\""),
            params: filter(format!("userName eq \"user{probe}\"")),
            expected: Some(1),
        },
        Query {
            name: "name.familyName eq \"Garcia\", count=10".into(),
            params: vec![
                ("filter", "name.familyName eq \"Garcia\"".into()),
                ("count", "10".into()),
            ],
            expected: Some(count(&|i| i % FAMILIES.len() == 0)),
        },
        Query {
            name: "emails.value co \"54321\"".into(),
            params: filter("emails.value co \"54321\"".into()),
            expected: Some(count(&|i| number(i, users).contains("54321"))),
        },
        Query {
            name: "userName sw \"user0999\"".into(),
            params: filter("userName sw \"user0999\"".into()),
            expected: Some(count(&|i| number(i, users).starts_with("0999"))),
        },
    ];
    let start = users * 9 / 10;
    out.push(Query {
        name: format!("no filter, startIndex={start}&count=100"),
        params: vec![("startIndex", start.to_string()), ("count", "100".into())],
        expected: Some(users),
    });
    out.extend([
        Query {
            name: format!("externalId eq \"ext-{probe}\""),
            params: filter(format!("externalId eq \"ext-{probe}\"")),
            expected: Some(1),
        },
        Query {
            name: "name.givenName eq \"Chloé\", count=10".into(),
            params: vec![
                ("filter", "name.givenName eq \"chloé\"".into()),
                ("count", "10".into()),
            ],
            expected: Some(count(&|i| i % GIVENS.len() == 2)),
        },
        Query {
            name: "displayName sw \"Hiro Tanaka\", count=10".into(),
            params: vec![
                ("filter", "displayName sw \"hiro tanaka\"".into()),
                ("count", "10".into()),
            ],
            expected: Some(count(&|i| {
                GIVENS[i % GIVENS.len()] == "Hiro" && FAMILIES[i % FAMILIES.len()] == "Tanaka"
            })),
        },
        Query {
            name: "displayName ew \"54321\"".into(),
            params: filter("displayName ew \"54321\"".into()),
            expected: Some(count(&|i| number(i, users).ends_with("54321"))),
        },
        Query {
            name: "emails.value ew \"54321@example.com\"".into(),
            params: filter("emails.value ew \"54321@example.com\"".into()),
            expected: Some(count(&|i| number(i, users).ends_with("54321"))),
        },
        Query {
            name: "meta.lastModified gt (the last ~1%)".into(),
            params: filter(format!("meta.lastModified gt \"{recent}\"")),
            expected: None,
        },
    ]);
    out
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

async fn token(http: &reqwest::Client, args: &Args) -> String {
    let response = http
        .post(format!("{}/oauth2/token", args.url))
        .basic_auth(&args.client_id, Some(&args.client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "scim:users"),
        ])
        .send()
        .await
        .expect("token request");
    assert!(
        response.status().is_success(),
        "token: {}",
        response.status()
    );
    let body: Value = response.json().await.expect("token body");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Creates users `0..users` over 8 connections; returns the elapsed time and the time at
/// which 99% were loaded.
async fn load(client: Arc<Client>, users: usize) -> (Duration, String) {
    let next = Arc::new(AtomicUsize::new(0));
    let recent = Arc::new(std::sync::Mutex::new(String::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, next, recent) = (client.clone(), next.clone(), recent.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= users {
                    break;
                }
                if i == users * 99 / 100 {
                    *recent.lock().unwrap() =
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                }
                let response = client
                    .http
                    .post(format!("{}/scim/v2/Users", client.url))
                    .bearer_auth(&client.token)
                    .header("Content-Type", "application/scim+json")
                    .body(user(i, users).to_string())
                    .send()
                    .await
                    .expect("create user");
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                assert_eq!(status.as_u16(), 201, "creating user {i}: {body}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("loader");
    }
    let recent = recent.lock().unwrap().clone();
    (started.elapsed(), recent)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// Runs one query until SAMPLES answers (or the time cap); returns sorted latencies and the
/// totalResults seen.
async fn measure(client: Arc<Client>, query: &Query) -> (Vec<Duration>, usize) {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/scim/v2/Users", client.url),
        query.params.iter().map(|(k, v)| (*k, v.as_str())),
    )
    .expect("url");
    let send = |client: Arc<Client>, url: reqwest::Url| async move {
        let started = Instant::now();
        let response = client
            .http
            .get(url)
            .bearer_auth(&client.token)
            .send()
            .await
            .expect("query");
        let status = response.status();
        let body: Value = response.json().await.expect("query body");
        let took = started.elapsed();
        assert_eq!(status.as_u16(), 200, "{body}");
        (took, body["totalResults"].as_u64().unwrap_or(0) as usize)
    };
    // Warm-up: one request per connection.
    let (_, total) = send(client.clone(), url.clone()).await;
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, url, done) = (client.clone(), url.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while done.fetch_add(1, Ordering::Relaxed) < SAMPLES && started.elapsed() < TIME_CAP {
                samples.push(send(client.clone(), url.clone()).await.0);
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("query task"));
    }
    samples.sort();
    (samples, total)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS * 2)
        .build()
        .expect("client");
    let client = Arc::new(Client {
        token: token(&http, &args).await,
        http,
        url: args.url.clone(),
    });
    let mut out = String::new();
    let label = &args.label;

    let (took, recent) = load(client.clone(), args.users).await;
    let rate = args.users as f64 / took.as_secs_f64();
    println!(
        "[{label}] loaded {} users over SCIM in {:.1} s: {rate:.0} users/s",
        args.users,
        took.as_secs_f64()
    );
    out.push_str(
        &json!({"label": label, "kind": "load", "users": args.users, "rate": rate}).to_string(),
    );
    out.push('\n');
    // What the database's own maintenance would do after a bulk load (bench/run passes
    // PostgreSQL's VACUUM ANALYZE, which autovacuum runs within minutes).
    if let Ok(command) = std::env::var("BENCH_AFTER_LOAD")
        && !command.is_empty()
    {
        println!("[{label}] after the load: {command}");
        let status = std::process::Command::new("sh")
            .args(["-c", &command])
            .status()
            .expect("after-load command");
        assert!(status.success(), "{command}: {status}");
    }

    let mut failures = Vec::new();
    for query in queries(args.users, &recent) {
        let (samples, total) = measure(client.clone(), &query).await;
        let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
        println!(
            "[{label}] {:<48} total {total:>7}  n {:>4}  p50 {p50:>7.2} ms  p99 {p99:>7.2} ms",
            query.name,
            samples.len()
        );
        if let Some(expected) = query.expected
            && expected != total
        {
            failures.push(format!(
                "{}: totalResults {total}, expected {expected}",
                query.name
            ));
        }
        out.push_str(
            &json!({"label": label, "kind": "query", "query": query.name, "total": total,
                    "samples": samples.len(), "p50": p50, "p99": p99})
            .to_string(),
        );
        out.push('\n');
    }
    std::fs::write(&args.out, out).expect("write results");
    assert!(failures.is_empty(), "wrong answers: {failures:#?}");
}
