//! SCIM at scale, against a running server: loads N users over SCIM (8 connections), every
//! attribute filled, then runs the covering set of `scale_set.rs` (at most 300 queries) from
//! 8 connections and reports p50/p99, the slowest twenty first. Every query's `totalResults`
//! is checked against what the generator made, so a fast wrong answer fails the run. `bench/run` starts the server and calls this;
//! by hand: `cargo bench --bench scale -- --url http://127.0.0.1:8080 --client-id … \
//! --client-secret … --users 100000 --out results.json`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

#[path = "scale_set.rs"]
mod scale_set;

use scale_set::{Data, Query, covering_set, user};

const CONNECTIONS: usize = 8;
/// Requests per query, spread over the connections, unless the time cap comes first.
const SAMPLES: usize = 200;
const TIME_CAP: Duration = Duration::from_secs(10);
/// The p99 the issue asks of every query, in milliseconds.
const TARGET_P99_MS: f64 = 20.0;

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
    /// Keeps what the load made (each user's id and creation time) in this file, and when it
    /// exists already, queries the users loaded then instead of loading again.
    #[arg(long)]
    data: Option<String>,
    /// Runs only the queries whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// `cargo bench` passes this to every bench target.
    #[arg(long, hide = true)]
    bench: bool,
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

/// Creates users `0..users` over 8 connections; returns the elapsed time and what the
/// server answered: each user's id and creation time.
async fn load(client: Arc<Client>, users: usize) -> (Duration, Data) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= users {
                    break;
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
                let body: Value = response.json().await.unwrap_or_default();
                assert_eq!(status.as_u16(), 201, "creating user {i}: {body}");
                let created = body["meta"]["created"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .expect("meta.created")
                    .with_timezone(&chrono::Utc);
                made.push((i, body["id"].as_str().expect("id").to_owned(), created));
            }
            made
        }));
    }
    let mut ids = vec![String::new(); users];
    let mut created = vec![chrono::DateTime::<chrono::Utc>::MIN_UTC; users];
    for task in tasks {
        for (i, id, at) in task.await.expect("loader") {
            ids[i] = id;
            created[i] = at;
        }
    }
    (
        started.elapsed(),
        Data {
            users,
            ids,
            created,
        },
    )
}

/// Loads the users and reports the rate; runs `BENCH_AFTER_LOAD` after.
async fn load_and_report(client: &Arc<Client>, args: &Args, out: &mut String) -> Data {
    let label = &args.label;
    let (took, data) = load(client.clone(), args.users).await;
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

    data
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

    let kept = args.data.as_deref().and_then(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        let (ids, created): (Vec<String>, Vec<chrono::DateTime<chrono::Utc>>) =
            serde_json::from_str(&text).expect("kept data");
        assert_eq!(
            ids.len(),
            args.users,
            "{path} holds another number of users"
        );
        println!(
            "[{label}] querying the {} users loaded before ({path})",
            ids.len()
        );
        Some(Data {
            users: ids.len(),
            ids,
            created,
        })
    });
    let data = match kept {
        Some(data) => data,
        None => {
            let data = load_and_report(&client, &args, &mut out).await;
            if let Some(path) = &args.data {
                let kept = serde_json::to_string(&(&data.ids, &data.created)).expect("json");
                std::fs::write(path, kept).expect("write kept data");
            }
            data
        }
    };
    let rss = || server_rss_mib(&args.url);
    let mut set = covering_set(&data);
    if let Some(only) = &args.only {
        set.retain(|q| q.name.contains(only.as_str()));
        assert!(!set.is_empty(), "no query's name contains {only:?}");
    }
    println!(
        "[{label}] the covering set: {} queries; server RSS before {:.1} MiB",
        set.len(),
        rss()
    );
    let mut failures = Vec::new();
    let mut results: Vec<(String, usize, f64, f64)> = Vec::new();
    for (i, query) in set.iter().enumerate() {
        let (samples, total) = measure(client.clone(), query).await;
        let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
        // Progress on stderr, so that a long run (a million users) shows where it is.
        eprintln!(
            "[{label}] {}/{}  p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  total {total:>8}  {}",
            i + 1,
            set.len(),
            query.name
        );
        if query.expected != total {
            failures.push(format!(
                "{}: totalResults {total}, expected {}",
                query.name, query.expected
            ));
        }
        out.push_str(
            &json!({"label": label, "kind": "query", "query": query.name, "total": total,
                    "samples": samples.len(), "p50": p50, "p99": p99})
            .to_string(),
        );
        out.push('\n');
        results.push((query.name.clone(), total, p50, p99));
    }
    results.sort_by(|a, b| b.3.total_cmp(&a.3));
    println!("[{label}] the slowest twenty (p99):");
    for (name, total, p50, p99) in results.iter().take(20) {
        println!("[{label}]   p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  total {total:>8}  {name}");
    }
    let over = results.iter().filter(|r| r.3 >= TARGET_P99_MS).count();
    let mut p99s: Vec<f64> = results.iter().map(|r| r.3).collect();
    p99s.sort_by(f64::total_cmp);
    println!(
        "[{label}] {} queries: {over} with p99 at or over {TARGET_P99_MS} ms; median p99 {:.2} ms, \
         worst {:.2} ms; server RSS after {:.1} MiB",
        results.len(),
        p99s[p99s.len() / 2],
        p99s[p99s.len() - 1],
        rss()
    );
    out.push_str(
        &json!({"label": label, "kind": "summary", "users": args.users, "queries": results.len(),
                "over": over, "worst": p99s[p99s.len() - 1], "median": p99s[p99s.len() / 2]})
        .to_string(),
    );
    out.push('\n');
    std::fs::write(&args.out, out).expect("write results");
    assert!(failures.is_empty(), "wrong answers: {failures:#?}");
}

/// The server's resident memory, read from /proc through the PID bench/run passes
/// (`BENCH_SERVER_PID`); 0 when unknown.
fn server_rss_mib(_url: &str) -> f64 {
    std::env::var("BENCH_SERVER_PID")
        .ok()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
