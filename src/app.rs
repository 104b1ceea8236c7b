//! Builds the shared state and the route tree, and runs the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response, Route, get, handler, post};
use tokio::sync::watch;

use crate::config::{Config, issuer_string};
use crate::counters;
use crate::domain::address::{ForwardedHeader, TrustedProxies};
use crate::domain::clock::SystemClock;
use crate::domain::repo::ClientRepo;
use crate::domain::scope;
use crate::edge::{BodyLimit, ResolveClientAddr};
use crate::mail::Mailer;
use crate::ops::{HEALTHZ_PATH, METRICS_PATH, READYZ_PATH};
use crate::scim::error::to_scim_response;
use crate::scim::openapi_service;
use crate::service::access::Access;
use crate::service::alerts::Alerts;
use crate::service::audit::AuditLog;
use crate::service::bypass::{Argon2Hasher, BypassCodeService, BypassParts};
use crate::service::console::CALLBACK_PATH;
use crate::service::console::ConsoleService;
use crate::service::groups::GroupService;
use crate::service::health::Health;
use crate::service::logout::{HintVerifier, LogoutService};
use crate::service::mfa::{Guard, MfaService};
use crate::service::oauth::clients::{self, ClientSpec};
use crate::service::oauth::discovery::{
    AUTHORIZE_PATH, DISCOVERY_PATH, END_SESSION_PATH, JWKS_PATH, TOKEN_PATH, USERINFO_PATH,
};
use crate::service::oauth::keys::KeyRing;
use crate::service::oauth::tokens::AccessTokens;
use crate::service::oauth::{OAuthParts, OAuthService};
use crate::service::roles::Roles;
use crate::service::sealing::Sealer;
use crate::service::sessions::{SessionService, SessionSettings};
use crate::service::signin::{SignInParts, SignInService};
use crate::service::throttle::Throttle;
use crate::service::users::UserService;
use crate::state::AppState;
use crate::store::Store;
use crate::web::console;

pub const BOOTSTRAP_FILE: &str = "bootstrap-admin.json";
pub const BOOTSTRAP_CLIENT_ID: &str = "bootstrap-admin";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {message}")]
    DataDir { path: String, message: String },
    #[error("database: {0}")]
    Database(String),
    #[error("redis: {0}")]
    Redis(String),
    #[error("listen on {addr}: {message}")]
    Listen { addr: SocketAddr, message: String },
    #[error("{0}")]
    Other(String),
}

/// Opens the database (creating the data directory for SQLite) and applies migrations.
pub async fn open_store(config: &Config) -> Result<Store, StartError> {
    if config.is_sqlite() {
        let data_dir_error = |e: std::io::Error| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            message: e.to_string(),
        };
        if !config.data_dir.exists() {
            crate::mail::create_private_dir(&config.data_dir).map_err(data_dir_error)?;
        }
        // Created 0600 before SQLite opens it; its -wal and -shm files take the same mode.
        // A file left readable by an older version is narrowed too.
        if let Some(path) = config.sqlite_path() {
            if path.exists() {
                restrict_to_owner(&path).map_err(data_dir_error)?;
            } else {
                create_private_file(&path).map_err(data_dir_error)?;
            }
        }
    }
    let store = Store::connect(&config.database_url)
        .await
        .map_err(|e| StartError::Database(e.to_string()))?;
    store
        .migrate()
        .await
        .map_err(|e| StartError::Database(format!("migration failed: {e}")))?;
    Ok(store)
}

/// On first start, creates the administrator client and writes its credentials to a file
/// only the owner can read. The log names the file, never the secret.
async fn bootstrap_admin(store: &Store, data_dir: &Path) -> Result<(), StartError> {
    let count = store
        .count_clients()
        .await
        .map_err(|e| StartError::Database(e.to_string()))?;
    if count > 0 {
        return Ok(());
    }
    let spec = ClientSpec {
        client_id: Some(BOOTSTRAP_CLIENT_ID.to_owned()),
        redirect_uris: Vec::new(),
        scopes: scope::ADMIN.join(" "),
        grant_types: vec!["client_credentials".to_owned()],
        public: false,
        require_mfa: false,
        allow_self_service_codes: false,
        refuses_bypass_codes: false,
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
    };
    let registered = match clients::register(store, spec).await {
        Ok(registered) => registered,
        // Another instance won the race and wrote its own file.
        Err(clients::ClientError::Exists(_)) => return Ok(()),
        Err(e) => return Err(StartError::Other(format!("bootstrap client: {e}"))),
    };
    let secret = registered
        .secret
        .ok_or_else(|| StartError::Other("bootstrap client has no secret".into()))?;
    std::fs::create_dir_all(data_dir).map_err(|e| StartError::DataDir {
        path: data_dir.display().to_string(),
        message: e.to_string(),
    })?;
    let path = data_dir.join(BOOTSTRAP_FILE);
    let body = serde_json::json!({"client_id": registered.client_id.as_str(), "client_secret": secret.expose()});
    write_private_file(&path, &format!("{body}\n")).map_err(|e| StartError::DataDir {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    tracing::info!(path = %path.display(), "created the bootstrap admin client; its credentials are in this file");
    Ok(())
}

fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = PathBuf::from(name);
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(|_| ())
}

fn write_private_file(path: &PathBuf, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents.as_bytes())
}

/// The services, and the store they share (for tools and tests in the same process).
pub async fn build_state(
    config: &Config,
    issuer: String,
) -> Result<(Arc<AppState>, Store), StartError> {
    let store = open_store(config).await?;
    let sealer = Sealer::new(config.encryption_key.as_ref())
        .map_err(|e| StartError::Other(e.to_string()))?;
    let keys = KeyRing::open(store.clone(), sealer.clone(), config.access_token_alg)
        .await
        .map_err(|e| StartError::Other(format!("signing keys: {e}")))?;
    bootstrap_admin(&store, &config.data_dir).await?;
    let ca_pem = match &config.redis_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| StartError::Redis(format!("CA file {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let counters = counters::open(
        config.redis_url.as_deref(),
        config.redis_mode,
        ca_pem,
        &config.redis_prefix,
    )
    .await
    .map_err(|e| StartError::Redis(e.to_string()))?;
    let tokens = AccessTokens::new(
        keys.clone(),
        issuer.clone(),
        config.access_token_ttl_seconds,
    );
    let mailer = Mailer::new(
        config.smtp_url.as_deref(),
        config.data_dir.join("outbox"),
        &config.mail_from,
    )
    .map_err(|e| StartError::Other(e.to_string()))?;
    let throttle = Throttle::new(counters.clone());
    let guard = Guard::new(store.clone(), throttle.clone());
    let service_name = url::Url::parse(&issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "bypass-idp".to_owned());
    let roles = Roles::new(store.clone(), config.role_groups.clone());
    let access = Access::new(roles.clone());
    let audit = AuditLog::new(store.clone(), access.clone());
    let mailer = Arc::new(mailer);
    let alerts = Alerts::new(store.clone(), mailer.clone(), service_name.clone());
    let mfa = MfaService::new(
        store.clone(),
        sealer,
        guard.clone(),
        access.clone(),
        alerts.clone(),
        service_name.clone(),
    );
    let bypass = BypassCodeService::new(BypassParts {
        store: store.clone(),
        counters: counters.clone(),
        guard,
        access: access.clone(),
        hasher: Arc::new(Argon2Hasher::new(config.code_pepper.as_ref())),
        mailer,
        alerts,
        service_name,
    });
    clients::ensure_console(&store, &issuer)
        .await
        .map_err(|e| StartError::Other(format!("console client: {e}")))?;
    let clock: Arc<dyn crate::domain::clock::Clock> = Arc::new(SystemClock);
    let sessions = SessionService::new(
        store.clone(),
        clock.clone(),
        bypass.clone(),
        access.clone(),
        SessionSettings {
            idle: chrono::Duration::seconds(config.session_idle_seconds as i64),
            max: chrono::Duration::seconds(config.session_max_seconds as i64),
            per_user: config.sessions_per_user as usize,
        },
        &issuer,
    );
    let hints = HintVerifier::new(keys.clone(), issuer.clone());
    let logout = LogoutService::new(
        store.clone(),
        sessions.clone(),
        hints.clone(),
        keys.clone(),
        issuer.clone(),
        clock,
    )
    .map_err(|e| StartError::Other(format!("logout: {e}")))?;
    crate::service::passwords::set_queue_timeout(std::time::Duration::from_millis(
        config.kdf_queue_timeout_ms,
    ));
    let signin = SignInService::new(SignInParts {
        store: store.clone(),
        kv: counters.clone(),
        throttle: throttle.clone(),
        clock: Arc::new(SystemClock),
        mfa: mfa.clone(),
        bypass: bypass.clone(),
        issuer: issuer.clone(),
        flows_per_address: config.max_flows_per_address,
        flow_max_age: std::time::Duration::from_secs(config.signin_max_seconds),
        roles: roles.clone(),
        sessions: sessions.clone(),
        hints,
    });
    let oauth = OAuthService::new(OAuthParts {
        store: store.clone(),
        keys,
        tokens,
        throttle,
        signin: signin.clone(),
        issuer: issuer.clone(),
        refresh_token_lifetime: chrono::Duration::seconds(
            config.refresh_token_lifetime_seconds as i64,
        ),
    })
    .map_err(|e| StartError::Other(format!("OAuth: {e}")))?;
    let console = ConsoleService::new(
        counters.clone(),
        oauth.clone(),
        Arc::new(SystemClock),
        issuer.clone(),
    );
    let state = AppState {
        console,
        sessions,
        logout,
        audit,
        signin,
        issuer,
        oauth,
        users: UserService::new(store.clone()),
        groups: GroupService::new(store.clone(), roles),
        mfa,
        bypass,
        health: Health::new(store.clone(), counters),
        draining: std::sync::atomic::AtomicBool::new(false),
    };
    Ok((Arc::new(state), store))
}

/// Bodies of the sign-in forms: a username, a password or a code, and a CSRF token.
const SIGNIN_FORM_BYTES: usize = 8 * 1024;
const TOKEN_FORM_BYTES: usize = 64 * 1024;

/// The OpenAPI document of the SCIM API ([`crate::openapi`]).
#[handler]
fn openapi_document() -> Response {
    Response::builder()
        .content_type("application/json")
        .body(crate::openapi::text())
}

/// The Swagger UI, built on its first request and then served from memory: the page
/// carries the UI's script and the document (about 3 MiB), which a server whose docs nobody
/// reads need not hold, nor copy per request.
#[handler]
fn docs_page() -> Html<&'static str> {
    static PAGE: LazyLock<String> = LazyLock::new(|| {
        let api = openapi_service();
        // The Swagger UI shows the document we serve, not the bare derived one.
        api.swagger_ui_html()
            .replace(&api.spec(), crate::openapi::text())
    });
    Html(PAGE.as_str())
}

/// The body cap of the sign-in and console forms.
fn form_limit() -> BodyLimit {
    BodyLimit {
        max: SIGNIN_FORM_BYTES,
        too_large: crate::oidc::error::form_too_large,
    }
}

/// A form endpoint, its body capped.
fn form<E: Endpoint>(endpoint: E) -> impl Endpoint {
    endpoint.with(form_limit())
}

/// How the routes are served: which proxies to believe, and whether `/metrics` is here.
pub struct Edge {
    pub trusted_proxies: TrustedProxies,
    pub forwarded_header: ForwardedHeader,
    pub metrics_here: bool,
}

pub fn routes(state: Arc<AppState>, edge: Edge) -> impl Endpoint {
    let api = openapi_service();
    crate::ops::metrics_handle();
    let route = Route::new()
        .at(DISCOVERY_PATH, get(crate::oidc::http::discovery))
        .at(JWKS_PATH, get(crate::oidc::http::jwks))
        .at(
            TOKEN_PATH,
            post(crate::oidc::http::token).with(BodyLimit {
                max: TOKEN_FORM_BYTES,
                too_large: crate::oidc::error::token_form_too_large,
            }),
        )
        .at(AUTHORIZE_PATH, get(crate::oidc::signin::authorize))
        .at("/oauth2/signin", get(crate::oidc::signin::signin_page))
        .at(
            "/oauth2/signin/password",
            form(post(crate::oidc::signin::password)),
        )
        .at("/oauth2/signin/totp", form(post(crate::oidc::signin::totp)))
        .at(
            "/oauth2/signin/bypass",
            form(post(crate::oidc::signin::bypass)),
        )
        .at(
            "/oauth2/signin/enroll",
            form(post(crate::oidc::signin::enroll)),
        )
        .at(
            "/oauth2/signin/enrol-code",
            form(post(crate::oidc::signin::enrol_code)),
        )
        .at(
            "/oauth2/signin/replace",
            form(post(crate::oidc::signin::replace)),
        )
        .at(
            "/oauth2/signin/continue",
            form(post(crate::oidc::signin::notice_read)),
        )
        .at(
            "/oauth2/signin/replace/confirm",
            form(post(crate::oidc::signin::replace_confirm)),
        )
        .at(
            USERINFO_PATH,
            get(crate::oidc::http::userinfo).post(crate::oidc::http::userinfo),
        )
        .at(
            END_SESSION_PATH,
            get(crate::oidc::logout::end_session).post(crate::oidc::logout::end_session),
        )
        .at(crate::web::STYLESHEET_PATH, get(crate::web::stylesheet))
        .at(crate::web::SCRIPT_PATH, get(crate::web::script))
        .at("/console", get(console::home))
        .at(CALLBACK_PATH, get(console::callback))
        .at("/console/logout", form(post(console::logout)))
        .at("/console/users", get(console::users_page))
        .at("/console/users/:id", get(console::user_page))
        .at(
            "/console/users/:id/generate",
            get(console::generate_form)
                .post(console::generate_post)
                .with(form_limit()),
        )
        .at(
            "/console/users/:id/codes/:code/email",
            form(post(console::email_code)),
        )
        .at(
            "/console/users/:id/codes/:code/revoke",
            form(post(console::revoke_code)),
        )
        .at("/console/users/:id/audit", get(console::audit))
        .at(
            "/console/users/:id/sessions/end",
            form(post(console::user_end_sessions)),
        )
        .at("/console/audit", get(console::audit_log))
        .at("/console/approvals", get(console::approvals))
        .at(
            "/console/approvals/:id/codes/:code/:decision",
            form(post(console::decide)),
        )
        .at(
            "/console/users/:id/reset",
            get(console::reset_form)
                .post(console::reset)
                .with(form_limit()),
        )
        .at(
            "/console/policy",
            get(console::policy_form)
                .post(console::policy_save)
                .with(form_limit()),
        )
        .at("/account", get(console::account))
        .at(
            "/account/authenticator",
            get(console::replace_form)
                .post(console::replace_post)
                .with(form_limit()),
        )
        .at(
            "/account/authenticator/signin",
            form(post(console::replace_sign_in)),
        )
        .at(
            "/account/sessions/end",
            form(post(console::account_end_sessions)),
        )
        .at(
            "/account/generate",
            get(console::account_generate_form)
                .post(console::account_generate)
                .with(form_limit()),
        )
        .at("/account/code-sets", form(post(console::account_code_set)))
        .at(
            "/account/codes/:code/email",
            form(post(console::account_email)),
        )
        .at(
            "/account/codes/:code/revoke",
            form(post(console::account_revoke)),
        )
        .at(HEALTHZ_PATH, get(crate::ops::healthz))
        .at(READYZ_PATH, get(crate::ops::readyz))
        .at("/openapi.json", get(openapi_document))
        .at("/docs", get(docs_page))
        .nest(
            "/",
            api.into_endpoint()
                .catch_all_error(to_scim_response)
                .around(crate::scim::refuse_malformed_if_match)
                .around(crate::openapi::allow_on_405),
        );
    let route = if edge.metrics_here {
        route.at(METRICS_PATH, get(crate::ops::metrics_endpoint))
    } else {
        route
    };
    route
        .data(state)
        .with(poem::middleware::CookieJarManager::new())
        .with(ResolveClientAddr {
            trusted: Arc::new(edge.trusted_proxies),
            header: edge.forwarded_header,
        })
        .around(|endpoint, request| async move {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let started = Instant::now();
            let response = endpoint.get_response(request).await;
            crate::ops::record_request(method.as_str(), &path, response.status(), started);
            tracing::info!(
                %method, %path, status = response.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64, "request"
            );
            Ok(response)
        })
}

/// A server running in the background; dropping it does not stop it, [`RunningServer::stop`] does.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    /// Where `/metrics` is served when it has its own address.
    pub metrics_addr: Option<SocketAddr>,
    pub issuer: String,
    /// The services the server runs on, for tools and tests in the same process.
    pub state: Arc<AppState>,
    /// The database below them, for the same tools and tests.
    pub store: Store,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Tells relying parties of ended sessions (Back-Channel Logout); stopped with the server.
    announcer: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Starts a shutdown: readiness fails from now on, while requests are still served.
    pub fn drain(&self) {
        self.state
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops accepting, lets in-flight requests finish (within [`SHUTDOWN_GRACE`]), returns.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.announcer.abort();
    }

    /// Waits until the server stops by itself (Ctrl-C in `serve`).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Binds the configured address, prepares the state and serves in a background task.
/// How long `/readyz` fails before the listener closes, so a balancer that checks it stops
/// sending new requests first.
pub const DRAIN_DELAY: std::time::Duration = std::time::Duration::from_secs(2);
/// How long in-flight requests may take to finish after a shutdown is asked for.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn bind(addr: SocketAddr) -> Result<(impl Acceptor + 'static, SocketAddr), StartError> {
    let acceptor =
        TcpListener::bind(addr)
            .into_acceptor()
            .await
            .map_err(|e| StartError::Listen {
                addr,
                message: e.to_string(),
            })?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(addr);
    Ok((acceptor, local))
}

/// Serves `app` until `stop` turns true, then stops accepting and lets in-flight requests
/// finish within [`SHUTDOWN_GRACE`].
fn serve(
    acceptor: impl Acceptor + 'static,
    app: impl Endpoint + 'static,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                },
                Some(SHUTDOWN_GRACE),
            )
            .await
    })
}

pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let (acceptor, local_addr) = bind(config.listen).await?;
    let metrics = match config.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let issuer = match &config.issuer {
        Some(url) => issuer_string(url),
        None => format!("http://{local_addr}"),
    };
    let (state, store) = build_state(&config, issuer.clone()).await?;
    let app = routes(
        state.clone(),
        Edge {
            trusted_proxies: config.trusted_proxies.clone(),
            forwarded_header: config.forwarded_header,
            metrics_here: config.metrics_listen.is_none(),
        },
    );
    let (tx, rx) = watch::channel(false);
    let metrics_addr = metrics.map(|(acceptor, addr)| {
        let endpoint = Route::new().at(METRICS_PATH, get(crate::ops::metrics_endpoint));
        serve(acceptor, endpoint, rx.clone());
        tracing::info!(%addr, "metrics listening");
        addr
    });
    let task = serve(acceptor, app, rx);
    let announcer = state.logout.clone().spawn_announcer();
    tracing::info!(%local_addr, %issuer, "listening");
    Ok(RunningServer {
        local_addr,
        metrics_addr,
        issuer,
        state,
        store,
        shutdown: tx,
        task,
        announcer,
    })
}
