//! What an operator relies on: health and readiness, metrics, 503 (never 500) while a
//! dependency is down with recovery after it, and a graceful stop on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::rp::*;
use common::services::{OwnRedis, ServerProcess, free_port};
use common::{TestApp, create_code, enrolled_user};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(app: &TestApp, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.unwrap(), headers)
}

/// The value of the first sample of `name` whose labels contain every one of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn health_readiness_and_metrics_that_move() {
    let app = TestApp::spawn().await;
    let (status, body, _) = get(&app, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body, _) = get(&app, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"]["database"], "ok");
    if app.env.contains_key("REDIS_URL") {
        assert_eq!(ready["checks"]["redis"], "ok");
    }

    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &admin, "metered.user").await;
    let code = create_code(
        &app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 2}),
    )
    .await;
    let (_, before, _) = get(&app, "/metrics").await;
    let rp = register(&app, false, false).await;
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    password_step(&browser, &started.auth_url, "metered.user", PASSWORD).await;
    let page = browser.get("/oauth2/signin?method=bypass").await;
    let wrong = browser
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&page)), ("code", "1234-5678-9012")],
        )
        .await;
    let done = browser
        .post(
            "/oauth2/signin/bypass",
            &[
                ("csrf", &csrf(&wrong)),
                ("code", code["code"].as_str().unwrap()),
            ],
        )
        .await;
    // Accepted: the offer to set up a new authenticator app; "Not now" goes on to the client.
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("action=\"/oauth2/signin/replace\""),
        "{}",
        done.body
    );
    let done = not_now(&browser, done).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let (status, after, headers) = get(&app, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let moved =
        |name: &str, labels: &[&str]| sample(&after, name, labels) - sample(&before, name, labels);
    // Other tests in this process may sign in too: the counters moved at least this much.
    assert!(
        moved("signins_total", &["method=\"bypass_code\""]) >= 1.0,
        "{after}"
    );
    assert!(moved("bypass_codes_used_total", &[]) >= 1.0);
    assert!(moved("bypass_codes_failed_total", &["reason=\"wrong\""]) >= 1.0);
    assert!(
        moved(
            "signin_steps_total",
            &["factor=\"password\"", "outcome=\"success\""]
        ) >= 1.0
    );
    assert!(
        moved(
            "signin_steps_total",
            &["factor=\"replacement\"", "outcome=\"skipped\""]
        ) >= 1.0
    );
    // The wrong code and the accepted one both answer with a page; "Not now" redirects.
    assert!(
        moved(
            "http_requests_total",
            &["route=\"/oauth2/signin/bypass\"", "status=\"200\""]
        ) >= 2.0
    );
    assert!(
        moved(
            "http_requests_total",
            &["route=\"/oauth2/signin/replace\"", "status=\"303\""]
        ) >= 1.0
    );
    assert!(
        sample(
            &after,
            "http_request_duration_seconds_count",
            &["route=\"/scim/v2/Users/{id}/bypassCodes\""]
        ) >= 1.0
    );
    assert!(after.contains("argon2_wait_seconds"));
    // No user name, user id or code in any label.
    assert!(!after.contains("metered.user"));
    assert!(!after.contains(&user_id));
    assert!(!after.contains(code["code"].as_str().unwrap()));
    app.stop().await;
}

#[tokio::test]
async fn metrics_can_have_their_own_address() {
    let app = TestApp::spawn_with(&[("BYPASS_IDP_METRICS_LISTEN", "127.0.0.1:0")]).await;
    let (status, _, _) = get(&app, "/metrics").await;
    assert_eq!(status, 404, "not on the public address");
    let addr = app.metrics_addr().expect("a metrics address");
    let response = app
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );
    app.stop().await;
}

/// An enrolled user with a 3-use bypass code, already used once, and a relying party.
struct Fixture {
    admin: String,
    user_id: String,
    code: Value,
    code_text: String,
    rp: Rp,
}

async fn fixture(app: &TestApp, user: &str) -> Fixture {
    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(app, &admin, user).await;
    let code = create_code(
        app,
        &admin,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 3}),
    )
    .await;
    let code_text = code["code"].as_str().unwrap().to_owned();
    let rp = register(app, false, false).await;
    assert_eq!(use_code(app, &rp, user, &code_text).await.status, 303);
    Fixture {
        admin,
        user_id,
        code,
        code_text,
        rp,
    }
}

async fn use_code(app: &TestApp, rp: &Rp, user: &str, code: &str) -> Page {
    let started = start(app, rp).await;
    let browser = Browser::new(app);
    let page = password_step(&browser, &started.auth_url, user, PASSWORD).await;
    if page.status != 200 {
        return page;
    }
    let page = browser.get("/oauth2/signin?method=bypass").await;
    let done = browser
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&page)), ("code", code)],
        )
        .await;
    not_now(&browser, done).await
}

#[tokio::test]
async fn redis_down_means_503_never_500_and_recovery_after() {
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let app =
        TestApp::spawn_with(&[("REDIS_URL", &url), ("BYPASS_IDP_REDIS_PREFIX", "outage")]).await;
    let Fixture {
        admin,
        user_id,
        code,
        code_text,
        rp,
    } = fixture(&app, "outage.user").await;

    redis.stop();
    let (status, body, headers) = get(&app, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            ready["checks"]["database"].as_str(),
            ready["checks"]["redis"].as_str()
        ),
        (Some("ok"), Some("unavailable"))
    );
    // The token endpoint: temporarily_unavailable, with Retry-After.
    let response = app.token_for(&app.admin_id, &app.admin_secret, None).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // The sign-in: a friendly page, not "Something went wrong".
    let started = start(&app, &rp).await;
    let page = Browser::new(&app).get(&started.auth_url).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("Temporarily unavailable"));
    // SCIM that needs Redis (the attempt limit of a TOTP confirmation) answers 503 with a
    // SCIM body; SCIM that does not, works.
    let pending = app
        .create_user(&admin, common::user_body("pending.user"))
        .await;
    let pending_id = pending["id"].as_str().unwrap();
    let (status, _, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{pending_id}/totp"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 201);
    let (status, body, headers) = app
        .scim(
            Method::POST,
            &format!("/Users/{pending_id}/totp/confirmation"),
            &admin,
            Some(json!({"code": "000000"})),
        )
        .await;
    common::assert_scim_error(status, &body, 503, None);
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = app.scim(Method::GET, "/Users", &admin, None).await;
    assert_eq!(status, 200);

    // Back up (empty, as after a restart without persistence): everything recovers, and
    // the code's uses are exactly those accepted.
    let _redis = OwnRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, _) = get(&app, "/readyz").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "ready again within 15 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.token_for(&app.admin_id, &app.admin_secret, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        use_code(&app, &rp, "outage.user", &code_text).await.status,
        303
    );
    let (_, listed, _) = app
        .scim(
            Method::GET,
            &format!(
                "/Users/{user_id}/bypassCodes/{}",
                code["id"].as_str().unwrap()
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(listed["actualUsageCount"], 2, "{listed}");
    app.stop().await;
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_then_exits() {
    let mut server = ServerProcess::spawn(&[]);
    let addr = format!("127.0.0.1:{}", server.port);
    // A token request whose body is still arriving when SIGTERM comes.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = "grant_type=client_credentials&client_id=nobody&client_secret=wrong";
    let (first, rest) = body.split_at(20);
    stream
        .write_all(
            format!(
                "POST /oauth2/token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Draining: still serving, but no longer ready, so a balancer moves traffic away...
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("draining"));
    tokio::time::sleep(bypass_idp::app::DRAIN_DELAY).await;
    // ...then no new connections are taken...
    let refused = tokio::time::timeout(Duration::from_secs(2), async {
        match tokio::net::TcpStream::connect(&addr).await {
            Err(_) => true,
            Ok(mut s) => {
                let _ = s
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await;
                let mut buf = [0u8; 64];
                matches!(s.read(&mut buf).await, Ok(0) | Err(_))
            }
        }
    })
    .await
    .unwrap_or(true);
    assert!(refused, "a new connection was served after SIGTERM");
    // ...but the one in flight is answered.
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("answered within the grace period")
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("invalid_client"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the process exits after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_probe_command_reports_readiness_for_container_health_checks() {
    let app = TestApp::spawn().await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let run = |listen: String| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bypass-idp"));
        command
            .args(["probe", "/readyz"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BYPASS_IDP_LISTEN", listen)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command.status().unwrap()
    };
    let ok = tokio::task::spawn_blocking(move || run(format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    assert!(ok.success());
    let closed = free_port();
    let down = tokio::task::spawn_blocking(move || run(format!("127.0.0.1:{closed}")))
        .await
        .unwrap();
    assert!(!down.success());
    app.stop().await;
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, made with the openssl
/// command: (CA certificate, server certificate, server key).
fn test_certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the openssl command is installed");
        assert!(status.success(), "openssl {args:?}");
    };
    std::fs::write(
        path("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    (path("ca.crt"), path("server.crt"), path("server.key"))
}

#[tokio::test]
async fn redis_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(dir.path());
    let port = free_port();
    let _redis = OwnRedis::start_with(
        port,
        &[
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string().into(),
            "--tls-auth-clients".into(),
            "no".into(),
            "--tls-cert-file".into(),
            cert.into(),
            "--tls-key-file".into(),
            key.into(),
        ],
    );
    let url = format!("rediss://127.0.0.1:{port}");
    let ca = ca.display().to_string();
    let app = TestApp::spawn_with(&[
        ("REDIS_URL", &url),
        ("BYPASS_IDP_REDIS_CA_FILE", &ca),
        ("BYPASS_IDP_REDIS_PREFIX", "tls"),
    ])
    .await;
    let (status, body, _) = get(&app, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""redis":"ok""#));
    // Limits and sign-in flows go through it.
    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &admin, "tls.user").await;
    let code = create_code(&app, &admin, &user_id, json!({"neverExpires": true})).await;
    let rp = register(&app, false, false).await;
    let done = use_code(&app, &rp, "tls.user", code["code"].as_str().unwrap()).await;
    assert_eq!(done.status, 303, "{}", done.body);
    app.stop().await;
    // A server whose certificate is not trusted is refused at start.
    let mut env = app_env_without_ca(&url);
    env.push((
        "BYPASS_IDP_DATA_DIR".into(),
        dir.path().display().to_string(),
    ));
    let config = bypass_idp::config::Config::from_sources(None, |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    assert!(bypass_idp::app::start(config).await.is_err());
}

fn app_env_without_ca(url: &str) -> Vec<(String, String)> {
    vec![
        ("BYPASS_IDP_LISTEN".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), "sqlite::memory:".into()),
        ("REDIS_URL".into(), url.into()),
    ]
}

/// A throwaway PostgreSQL cluster of the test's own (initdb + pg_ctl, as the postgres
/// user), on a free port of 127.0.0.1.
struct OwnPostgres {
    bin: std::path::PathBuf,
    data: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    fn run(&self, tool: &str, args: &[&str]) {
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("runuser and the PostgreSQL server binaries are installed");
        assert!(status.success(), "{tool} {args:?}");
    }

    fn create() -> Self {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .max()
            .expect("a PostgreSQL version");
        let data = tempfile::tempdir().unwrap();
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(data.path())
            .status()
            .unwrap();
        assert!(status.success());
        let cluster = Self {
            bin: version.join("bin"),
            data,
            port: free_port(),
        };
        let dir = cluster.dir();
        cluster.run(
            "initdb",
            &["-D", &dir, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        );
        cluster
    }

    /// A new cluster, started (off the async workers: initdb takes seconds).
    async fn started() -> Self {
        tokio::task::spawn_blocking(|| {
            let cluster = Self::create();
            cluster.start();
            cluster
        })
        .await
        .unwrap()
    }

    fn dir(&self) -> String {
        self.data.path().join("pg").display().to_string()
    }

    fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
            self.port
        );
        let log = format!("{}/log", self.dir());
        self.run(
            "pg_ctl",
            &["-D", &self.dir(), "-o", &options, "-l", &log, "-w", "start"],
        );
    }

    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.dir(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.dir(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A database restart (or failover) cuts every pooled connection. Once it is back, the
/// requests after it run on fresh connections: none answers 503 for a connection the restart
/// cut (each pooled connection is checked before use; without the check, each cut
/// connection failed one request).
#[tokio::test]
async fn after_a_postgres_restart_no_request_fails_on_a_cut_connection() {
    let postgres = OwnPostgres::started().await;
    let app = TestApp::spawn_with(&[("DATABASE_URL", &postgres.url())]).await;
    let admin = app.admin_token(None).await;
    // Many connections in the pool: requests at once each take one.
    let warm = futures_util::future::join_all(
        (0..24).map(|_| app.scim(Method::GET, "/Users?count=1", &admin, None)),
    )
    .await;
    assert!(warm.iter().all(|(status, _, _)| *status == 200));
    let postgres = tokio::task::spawn_blocking(move || {
        postgres.stop();
        postgres.start();
        postgres
    })
    .await
    .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let batch = futures_util::future::join_all(
            (0..4).map(|_| app.scim(Method::GET, "/Users?count=1", &admin, None)),
        )
        .await;
        statuses.extend(batch.into_iter().map(|(status, _, _)| status));
    }
    assert!(
        statuses.iter().all(|status| *status == 200),
        "after the restart: {statuses:?}"
    );
    drop(postgres);
    app.stop().await;
}

#[tokio::test]
async fn postgres_down_means_503_never_500_and_recovery_after() {
    let postgres = OwnPostgres::started().await;
    let url = postgres.url();
    let app = TestApp::spawn_with(&[("DATABASE_URL", &url)]).await;
    let Fixture {
        admin,
        user_id,
        code,
        code_text,
        rp,
    } = fixture(&app, "pg.outage").await;
    // A relying party holding tokens from a sign-in before the outage.
    let tokens = sign_in(
        &app,
        &rp,
        "pg.outage",
        Some(("/oauth2/signin/bypass", code_text.as_str())),
    )
    .await;
    // A sign-in that got past its password before the outage.
    let started = start(&app, &rp).await;
    let browser = Browser::new(&app);
    password_step(&browser, &started.auth_url, "pg.outage", PASSWORD).await;
    let bypass_page = browser.get("/oauth2/signin?method=bypass").await;

    let postgres = tokio::task::spawn_blocking(move || {
        postgres.stop();
        postgres
    })
    .await
    .unwrap();
    let csrf_token = csrf(&bypass_page);
    let fields = [("csrf", csrf_token.as_str()), ("code", code_text.as_str())];
    let (ready, users, token, signin) = tokio::join!(
        get(&app, "/readyz"),
        app.scim(Method::GET, "/Users", &admin, None),
        app.token_for(&app.admin_id, &app.admin_secret, None),
        browser.post("/oauth2/signin/bypass", &fields),
    );
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert!(ready.1.contains(r#""database":"unavailable""#));
    common::assert_scim_error(users.0, &users.1, 503, None);
    assert!(users.2.contains_key("retry-after"));
    // The admin client was looked up seconds ago, so client_credentials answers from the
    // client cache; the token is for APIs that need the database and answer 503 with it.
    assert_eq!(token.status(), 200);
    let body: Value = token.json().await.unwrap();
    let during = body["access_token"].as_str().unwrap();
    let (status, _, _) = app.scim(Method::GET, "/Users", during, None).await;
    assert_eq!(status, 503);
    // Every other grant reads the client from the database.
    let code_grant = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&app.admin_id, Some(&app.admin_secret))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(code_grant.status(), 503);
    let body: Value = code_grant.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(signin.status, 503, "{}", signin.body);
    let userinfo = app
        .http
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 503, "the session is not declared dead");
    assert!(userinfo.headers().contains_key("retry-after"));
    assert!(signin.body.contains("Temporarily unavailable"));

    let _postgres = tokio::task::spawn_blocking(move || {
        postgres.start();
        postgres
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if get(&app, "/readyz").await.0 == 200 && get(&app, "/healthz").await.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "ready again within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, _) = app.scim(Method::GET, "/Users", &admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        use_code(&app, &rp, "pg.outage", &code_text).await.status,
        303
    );
    let path = format!(
        "/Users/{user_id}/bypassCodes/{}",
        code["id"].as_str().unwrap()
    );
    let (_, stored, _) = app.scim(Method::GET, &path, &admin, None).await;
    // Two uses before, none while down (the attempt in flight got a 503), one after.
    assert_eq!(stored["actualUsageCount"], 3, "{stored}");
    app.stop().await;
}
