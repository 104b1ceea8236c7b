//! PATCHing a 10,000-member group one member at a time, over HTTP, as Entra ID does: the
//! latency at 10,000 members as a ratio of the latency at 100 members and of a trivial GET
//! measured in the same run. `cargo bench --bench groups` (embedded backends unless
//! DATABASE_URL / REDIS_URL are set; MEMBERS=… changes the group size).

use std::time::{Duration, Instant};

use bypass_idp::app;
use bypass_idp::config::Config;
use bypass_idp::domain::scim::user::parse_user;
use serde_json::{Value, json};

const SAMPLES: usize = 200;
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Duration) {
        let mut request = self
            .http
            .request(method, format!("{}/scim/v2{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/scim+json")
                .body(body.to_string());
        }
        let started = Instant::now();
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let _ = response.bytes().await;
        (status, started.elapsed())
    }

    async fn add(&self, group: &str, user: &str) -> Duration {
        let body = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "Add", "path": "members", "value": [{"value": user}]}
        ]});
        let (status, took) = self
            .send(
                reqwest::Method::PATCH,
                &format!("/Groups/{group}"),
                Some(body),
            )
            .await;
        assert_eq!(status, 204);
        took
    }

    async fn remove(&self, group: &str, user: &str) -> Duration {
        let body = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "Remove", "path": format!("members[value eq \"{user}\"]")}
        ]});
        let (status, took) = self
            .send(
                reqwest::Method::PATCH,
                &format!("/Groups/{group}"),
                Some(body),
            )
            .await;
        assert_eq!(status, 204);
        took
    }
}

#[tokio::main]
async fn main() {
    let members: usize = std::env::var("MEMBERS")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().display().to_string();
    let config = Config::from_sources(None, |name| match name {
        "BYPASS_IDP_DATA_DIR" => Some(data.clone()),
        "BYPASS_IDP_LISTEN" => Some("127.0.0.1:0".into()),
        "BYPASS_IDP_LOG" => Some("warn".into()),
        "DATABASE_URL" | "REDIS_URL" => std::env::var(name).ok(),
        "BYPASS_IDP_REDIS_PREFIX" => Some(format!("bench-{}", std::process::id())),
        _ => None,
    })
    .expect("config");
    let server = app::start(config).await.expect("server");
    let bootstrap: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(app::BOOTSTRAP_FILE)).expect("bootstrap file"),
    )
    .expect("bootstrap JSON");
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.local_addr);
    let token: Value = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(
            bootstrap["client_id"].as_str().unwrap(),
            bootstrap["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "scim:users scim:groups"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = Client {
        http,
        base,
        token: token["access_token"].as_str().unwrap().to_owned(),
    };

    // Users, created in-process (no password, so no Argon2): what is measured is the PATCH.
    let load = Instant::now();
    let mut users = Vec::with_capacity(members);
    let run = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..members {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("m{i}-{run}")});
        let write = parse_user(&body).unwrap();
        users.push(
            server
                .state
                .users
                .create(write, &bypass_idp::service::context::Context::system())
                .await
                .unwrap()
                .id
                .into_string(),
        );
    }
    eprintln!("{members} users in {:.1} s", load.elapsed().as_secs_f64());
    let (status, _) = client
        .send(reqwest::Method::POST, "/Groups", Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("Bench {run}")})))
        .await;
    assert_eq!(status, 201);
    let (_, group) = {
        let response = client
            .http
            .get(format!("{}/scim/v2/Groups?filter=displayName%20eq%20%22Bench%20{run}%22&excludedAttributes=members", client.base))
            .bearer_auth(&client.token)
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };
    let group = group["Resources"][0]["id"].as_str().unwrap().to_owned();

    // Baseline: a trivial authenticated GET.
    let mut baseline: Vec<Duration> = Vec::new();
    for _ in 0..SAMPLES {
        let (status, took) = client
            .send(reqwest::Method::GET, "/ServiceProviderConfig", None)
            .await;
        assert_eq!(status, 200);
        baseline.push(took);
    }
    // One member at a time: the first SAMPLES adds (group of 0..SAMPLES members)…
    let small = SAMPLES.min(members / 2);
    let mut early = Vec::new();
    for user in &users[..small] {
        early.push(client.add(&group, user).await);
    }
    // …the bulk, also one member per PATCH…
    let fill = Instant::now();
    for user in &users[small..members - small] {
        client.add(&group, user).await;
    }
    let fill_time = fill.elapsed();
    // …and the last ones, into a group of about `members`.
    let mut late = Vec::new();
    for user in &users[members - small..] {
        late.push(client.add(&group, user).await);
    }
    // Entra's remove-by-filter and re-add at full size.
    let mut removes = Vec::new();
    for user in &users[..small] {
        removes.push(client.remove(&group, user).await);
        client.add(&group, user).await;
    }
    let mut full_get = Vec::new();
    for _ in 0..5 {
        let (status, took) = client
            .send(reqwest::Method::GET, &format!("/Groups/{group}"), None)
            .await;
        assert_eq!(status, 200);
        full_get.push(took);
    }

    let (b50, b99) = (
        percentile(&mut baseline, 0.5),
        percentile(&mut baseline, 0.99),
    );
    let (e50, e99) = (percentile(&mut early, 0.5), percentile(&mut early, 0.99));
    let (l50, l99) = (percentile(&mut late, 0.5), percentile(&mut late, 0.99));
    let (r50, r99) = (
        percentile(&mut removes, 0.5),
        percentile(&mut removes, 0.99),
    );
    let backend = if std::env::var("DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("backend: {backend}, members: {members}, samples: {small} per phase");
    println!("baseline GET /ServiceProviderConfig:   p50 {b50:.2} ms  p99 {b99:.2} ms");
    println!("PATCH add one member, group < {small}:   p50 {e50:.2} ms  p99 {e99:.2} ms");
    println!("PATCH add one member, group ~{members}: p50 {l50:.2} ms  p99 {l99:.2} ms");
    println!("PATCH remove one (filter), ~{members}:  p50 {r50:.2} ms  p99 {r99:.2} ms");
    println!(
        "bulk: {} adds, one member per PATCH, in {:.1} s ({:.0} PATCH/s)",
        members - 2 * small,
        fill_time.as_secs_f64(),
        (members - 2 * small) as f64 / fill_time.as_secs_f64()
    );
    println!(
        "GET of the whole {members}-member group:  p50 {:.1} ms",
        percentile(&mut full_get, 0.5)
    );
    println!(
        "ratio p50 add at ~{members} / add at < {small}: {:.2} (flat is 1.0)",
        l50 / e50
    );
    println!(
        "ratio p50 add at ~{members} / baseline GET: {:.2}",
        l50 / b50
    );
    server.stop().await;
}
