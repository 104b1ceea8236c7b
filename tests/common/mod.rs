//! Starts the real server on 127.0.0.1:0 with a fresh database and talks HTTP to it.
//! Backends follow the environment: SQLite and in-process counters by default; PostgreSQL
//! when `DATABASE_URL` is a postgres URL (a fresh database per test) and Redis when
//! `REDIS_URL` is set (a fresh key prefix per test).

#![allow(dead_code)]

pub mod rp;
pub mod services;

use std::collections::HashMap;

use bypass_idp::app::{self, BOOTSTRAP_FILE, RunningServer};
use bypass_idp::config::Config;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub admin_id: String,
    pub admin_secret: String,
    pub data_dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
    server: Option<RunningServer>,
    postgres: Option<(String, String)>,
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Creates a fresh PostgreSQL database next to the one `DATABASE_URL` names.
async fn fresh_postgres(admin_url: &str) -> (String, String) {
    let name = unique("bypass_t");
    let admin = Database::connect(admin_url)
        .await
        .expect("connect to DATABASE_URL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    let mut url = url::Url::parse(admin_url).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    (url.to_string(), name)
}

pub fn backend_label() -> &'static str {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => "postgres",
        _ => "sqlite",
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts a server; `extra` settings override the test defaults. The bypass-code policy
    /// holds no code for approval and sends the user no alerts: the tests written before
    /// those controls generate codes that never expire and count the mails in the outbox.
    /// [`TestApp::spawn_with_defaults`] keeps the product's policy.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        let app = Self::spawn_with_defaults(extra).await;
        app.set_policy(json!({
            "approvalRequired": "never",
            "notifyUserOnIssue": false,
            "notifyUserOnUse": false,
        }))
        .await;
        app
    }

    /// Writes the bypass-code policy (members as in `PUT /BypassCodeSettings`) straight to
    /// the store, leaving no audit event.
    pub async fn set_policy(&self, members: Value) {
        use bypass_idp::domain::repo::SettingRepo;
        let policy = bypass_idp::domain::bypass::Policy::from_json(&members).expect("policy");
        self.store()
            .put_setting(
                "bypassCodePolicy",
                serde_json::to_string(&policy).expect("policy JSON"),
            )
            .await
            .expect("store the policy");
    }

    /// Starts a server with the product's default bypass-code policy.
    pub async fn spawn_with_defaults(extra: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("BYPASS_IDP_LISTEN".into(), "127.0.0.1:0".into());
        env.insert(
            "BYPASS_IDP_DATA_DIR".into(),
            data_dir.path().display().to_string(),
        );
        let mut postgres = None;
        if let Ok(url) = std::env::var("DATABASE_URL")
            && url.starts_with("postgres")
        {
            let (db_url, name) = fresh_postgres(&url).await;
            env.insert("DATABASE_URL".into(), db_url);
            postgres = Some((url, name));
        }
        if let Ok(url) = std::env::var("REDIS_URL") {
            env.insert("REDIS_URL".into(), url);
            // .ci/run runs the attack tests again on a Redis Cluster this way.
            if let Ok(mode) = std::env::var("BYPASS_IDP_REDIS_MODE") {
                env.insert("BYPASS_IDP_REDIS_MODE".into(), mode);
            }
            env.insert("BYPASS_IDP_REDIS_PREFIX".into(), unique("t"));
        }
        // A test binary runs many servers at once on two cores, all sharing the process's one
        // Argon2 queue: a generous deadline keeps functional tests from being refused as
        // busy. tests/overload.rs sets its own.
        env.insert("BYPASS_IDP_KDF_QUEUE_TIMEOUT_MS".into(), "10000".into());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let config =
            Config::from_sources(None, |name| env.get(name).cloned()).expect("test config");
        let server = app::start(config).await.expect("server starts");
        let base = server.issuer.clone();
        let bootstrap: Value = serde_json::from_str(
            &std::fs::read_to_string(data_dir.path().join(BOOTSTRAP_FILE)).expect("bootstrap file"),
        )
        .expect("bootstrap JSON");
        Self {
            base,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            admin_id: bootstrap["client_id"]
                .as_str()
                .expect("client_id")
                .to_owned(),
            admin_secret: bootstrap["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
            data_dir,
            env,
            server: Some(server),
            postgres,
        }
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        if let Some((admin_url, name)) = self.postgres.take()
            && let Ok(admin) = Database::connect(&admin_url).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }

    /// A second instance on the same database, Redis prefix and data folder.
    pub async fn start_sibling(&self) -> RunningServer {
        let mut env = self.env.clone();
        env.insert("BYPASS_IDP_LISTEN".into(), "127.0.0.1:0".into());
        env.insert("BYPASS_IDP_ISSUER".into(), self.base.clone());
        let config =
            Config::from_sources(None, |name| env.get(name).cloned()).expect("sibling config");
        app::start(config).await.expect("sibling starts")
    }

    /// The address the server listens on (the base URL may name a proxy in front of it).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().expect("running").local_addr
    }

    /// Where `/metrics` is served when it has its own address.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().expect("running").metrics_addr
    }

    pub fn state(&self) -> &std::sync::Arc<bypass_idp::state::AppState> {
        &self.server.as_ref().expect("running").state
    }

    /// The database under the running server, to look at what a test cannot see over HTTP.
    pub fn store(&self) -> &bypass_idp::store::Store {
        &self.server.as_ref().expect("running").store
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs the CLI against this server's configuration and returns (status, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        use std::io::Write;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bypass-idp"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BYPASS_IDP_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in &self.env {
            if k != "BYPASS_IDP_LISTEN" {
                command.env(k, v);
            }
        }
        let mut child = command.spawn().expect("run the CLI");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().expect("CLI output");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub async fn token_for(
        &self,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        self.http
            .post(self.url("/oauth2/token"))
            .basic_auth(client_id, Some(secret))
            .form(&form)
            .send()
            .await
            .expect("token request")
    }

    /// An access token of the bootstrap admin, optionally narrowed to `scope`.
    pub async fn admin_token(&self, scope: Option<&str>) -> String {
        let response = self
            .token_for(&self.admin_id, &self.admin_secret, scope)
            .await;
        assert_eq!(response.status(), 200, "admin token");
        let body: Value = response.json().await.expect("token JSON");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    pub async fn scim(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = self
            .http
            .request(method, self.url(&format!("/scim/v2{path}")))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("SCIM request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value, headers)
    }

    pub async fn create_user(&self, token: &str, body: Value) -> Value {
        let (status, created, _) = self
            .scim(reqwest::Method::POST, "/Users", token, Some(body))
            .await;
        assert_eq!(status, 201, "create user: {created}");
        created
    }
}

pub fn user_body(user_name: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": format!("{user_name}@example.com"), "type": "work", "primary": true}],
        "password": "correct horse battery staple",
    })
}

/// Asserts an RFC 7644 §3.12 error body with the given status and, if given, scimType.
pub fn assert_scim_error(status: u16, body: &Value, expected_status: u16, scim_type: Option<&str>) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    assert_eq!(body["status"], expected_status.to_string(), "{body}");
    if let Some(t) = scim_type {
        assert_eq!(body["scimType"], t, "{body}");
    }
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

/// Creates a user and enrolls a confirmed TOTP factor over the API; returns (user id, secret).
pub async fn enrolled_user(app: &TestApp, token: &str, user_name: &str) -> (String, Vec<u8>) {
    let user = app.create_user(token, user_body(user_name)).await;
    let id = user["id"].as_str().expect("id").to_owned();
    let secret = enroll_totp(app, token, &id).await;
    (id, secret)
}

/// Starts and confirms TOTP enrolment over the API; returns the secret.
pub async fn enroll_totp(app: &TestApp, token: &str, user_id: &str) -> Vec<u8> {
    let (status, started, headers) = app
        .scim(
            reqwest::Method::POST,
            &format!("/Users/{user_id}/totp"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(headers["cache-control"], "no-store");
    let secret = bypass_idp::domain::totp::from_base32(started["secret"].as_str().expect("secret"))
        .expect("base32");
    assert!(
        started["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = bypass_idp::domain::totp::code_at(&secret, now).expect("code");
    let (status, confirmed, _) = app
        .scim(
            reqwest::Method::POST,
            &format!("/Users/{user_id}/totp/confirmation"),
            token,
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "enrolled");
    secret
}

/// Generates a bypass code over the API and returns the resource (with its `code`).
pub async fn create_code(app: &TestApp, token: &str, user_id: &str, body: Value) -> Value {
    let (status, created, _) = app
        .scim(
            reqwest::Method::POST,
            &format!("/Users/{user_id}/bypassCodes"),
            token,
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

/// Deletes this test's Redis keys, as a Redis flush or restart would (no-op without Redis).
pub async fn flush_redis(app: &TestApp) {
    let (Some(url), Some(prefix)) = (
        app.env.get("REDIS_URL"),
        app.env.get("BYPASS_IDP_REDIS_PREFIX"),
    ) else {
        return;
    };
    // Every node of a cluster (REDIS_URL lists them), each deleting the keys it holds one at
    // a time (they live in different slots).
    for node in url.split(',') {
        let client = redis::Client::open(node.trim()).expect("redis url");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut connection)
            .await
            .expect("KEYS");
        for key in keys {
            let _: () = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut connection)
                .await
                .expect("DEL");
        }
    }
}

/// The searchable text of a MIME message: quoted-printable unfolded, base64 lines decoded.
pub fn decode_mail(message: &str) -> String {
    let mut text = message
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    for line in message.lines() {
        let decoded =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, line.trim());
        if let Ok(bytes) = decoded {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

/// The outbox's mails, decoded (see [`decode_mail`]), in no particular order.
pub fn outbox(app: &TestApp) -> Vec<String> {
    let dir = app.data_dir.path().join("outbox");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| decode_mail(&std::fs::read_to_string(e.unwrap().path()).unwrap()))
        .collect()
}

/// A user's events from the audit log (`/AuditEvents`, newest first); `token` needs
/// `audit:read`.
pub async fn audit_of(app: &TestApp, token: &str, user_id: &str) -> Vec<Value> {
    let filter = format!("userId eq \"{user_id}\"");
    let path = format!(
        "/AuditEvents?count=200&filter={}",
        url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    );
    let (status, body, _) = app.scim(reqwest::Method::GET, &path, token, None).await;
    assert_eq!(status, 200, "{body}");
    body["Resources"].as_array().expect("Resources").clone()
}

/// Every Argon2 slot of this process (one per core) held for `hold` by a job that only
/// waits; returns once they are taken, so checks started now queue behind them.
pub async fn hold_argon2_slots(hold: std::time::Duration) -> Vec<tokio::task::JoinHandle<()>> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let blockers = (0..cores)
        .map(|_| {
            tokio::spawn(async move {
                bypass_idp::service::passwords::run_kdf(move || {
                    std::thread::sleep(hold);
                    Ok(())
                })
                .await
                .expect("a blocker gets a slot");
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    blockers
}
