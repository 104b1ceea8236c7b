//! One typed configuration, read from an optional TOML file and then the environment, with
//! embedded defaults. A bad value stops start-up with a message that names the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::counters::RedisMode;
use crate::domain::address::{ForwardedHeader, TrustedProxies};
use crate::domain::roles::RoleMap;
use crate::domain::secret::Secret;
use crate::service::oauth::keys::Alg;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
    #[error("cannot read config file {path}: {message}")]
    File { path: String, message: String },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// The settings a file may hold; every key is optional and the environment wins.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    issuer: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    redis_ca_file: Option<String>,
    redis_prefix: Option<String>,
    redis_mode: Option<String>,
    smtp_url: Option<String>,
    access_token_ttl_seconds: Option<u64>,
    access_token_alg: Option<String>,
    refresh_token_lifetime_seconds: Option<u64>,
    mail_from: Option<String>,
    /// A list of CIDRs, or one string of them separated by commas.
    trusted_proxies: Option<TrustedProxiesSetting>,
    forwarded_header: Option<String>,
    max_flows_per_address: Option<u64>,
    session_idle_seconds: Option<u64>,
    session_max_seconds: Option<u64>,
    signin_max_seconds: Option<u64>,
    kdf_queue_timeout_ms: Option<u64>,
    sessions_per_user: Option<u64>,
    role_groups: Option<String>,
    metrics_listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TrustedProxiesSetting {
    List(Vec<String>),
    Text(String),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// `None` means "derive from the address actually bound".
    pub issuer: Option<url::Url>,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub redis_url: Option<String>,
    /// PEM file of the certificate authorities a `rediss://` server is checked against;
    /// the system's roots when unset.
    pub redis_ca_file: Option<PathBuf>,
    /// Namespace of every Redis key, so that several deployments (or tests) share one Redis.
    pub redis_prefix: String,
    /// `single` (default) or `cluster` (`REDIS_URL` then lists the seed nodes, comma-separated).
    pub redis_mode: RedisMode,
    pub smtp_url: Option<String>,
    pub access_token_ttl_seconds: u64,
    /// How access tokens are signed: ES256 (default) or RS256. ID tokens are always RS256.
    pub access_token_alg: Alg,
    /// How long a sign-in's refresh tokens may be rotated, counted from the sign-in.
    pub refresh_token_lifetime_seconds: u64,
    /// Peers whose `Forwarded` / `X-Forwarded-For` headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// The one header those proxies write the client's address to.
    pub forwarded_header: ForwardedHeader,
    /// Where `/metrics` is served instead of the main address, if set.
    pub metrics_listen: Option<SocketAddr>,
    /// New sign-in flows one client address may open per 10 minutes.
    pub max_flows_per_address: u64,
    /// The longest one sign-in (password to the last step) may take, however busy.
    pub signin_max_seconds: u64,
    /// The longest a password or code check may wait for Argon2 before it is refused as
    /// busy (503, `Retry-After`) with its attempt given back.
    pub kdf_queue_timeout_ms: u64,
    /// Sign-in sessions: idle timeout, absolute lifetime, and how many one user may hold.
    pub session_idle_seconds: u64,
    pub session_max_seconds: u64,
    pub sessions_per_user: u64,
    /// Which groups grant administrator roles (`group=role;…`, by display name or id).
    pub role_groups: RoleMap,
    /// The From address of mail, e.g. `bypass-idp <no-reply@example.com>`.
    pub mail_from: String,
    /// 32-byte key that seals TOTP secrets at rest (ChaCha20-Poly1305); read from the
    /// environment only, never from the file.
    pub encryption_key: Option<Secret>,
    /// Server secret mixed into bypass-code hashes (Argon2 "secret" input); environment only.
    pub code_pepper: Option<Secret>,
}

impl Config {
    /// Reads the file named by `BYPASS_IDP_CONFIG` (if any), then the environment.
    pub fn load() -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::from_sources(env("BYPASS_IDP_CONFIG").as_deref(), env)
    }

    pub fn from_sources(
        file: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::File {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let pick = |var: &str, from_file: Option<String>| env(var).or(from_file);

        let listen_text =
            pick("BYPASS_IDP_LISTEN", file.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|e| {
            invalid(
                "BYPASS_IDP_LISTEN",
                format!("\"{listen_text}\" is not a socket address like 127.0.0.1:8080 ({e})"),
            )
        })?;

        let metrics_listen = match pick("BYPASS_IDP_METRICS_LISTEN", file.metrics_listen) {
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|e| {
                invalid(
                    "BYPASS_IDP_METRICS_LISTEN",
                    format!("\"{text}\" is not a socket address like 127.0.0.1:9090 ({e})"),
                )
            })?),
            None => None,
        };

        let issuer = pick("BYPASS_IDP_ISSUER", file.issuer)
            .map(|text| parse_issuer(&text))
            .transpose()?;

        let data_dir = PathBuf::from(
            pick("BYPASS_IDP_DATA_DIR", file.data_dir).unwrap_or_else(|| "./data".to_owned()),
        );

        let database_url = match pick("DATABASE_URL", file.database_url) {
            Some(url) => {
                let scheme = url.split(':').next().unwrap_or_default();
                if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
                    return Err(invalid(
                        "DATABASE_URL",
                        "must start with sqlite: or postgres:// (other databases are not supported)",
                    ));
                }
                url
            }
            None => default_sqlite_url(&data_dir),
        };

        let mode = pick("BYPASS_IDP_REDIS_MODE", file.redis_mode).map(|m| m.to_ascii_lowercase());
        let redis_mode = match mode.as_deref() {
            None | Some("single") => RedisMode::Single,
            Some("cluster") => RedisMode::Cluster,
            Some(_) => {
                return Err(invalid(
                    "BYPASS_IDP_REDIS_MODE",
                    "must be single or cluster",
                ));
            }
        };
        let redis_url = pick("REDIS_URL", file.redis_url);
        if redis_mode == RedisMode::Cluster && redis_url.is_none() {
            return Err(invalid(
                "BYPASS_IDP_REDIS_MODE",
                "cluster needs REDIS_URL to list the cluster's nodes",
            ));
        }
        if let Some(url) = &redis_url {
            let nodes = crate::counters::nodes(url);
            if nodes.len() != 1 && redis_mode == RedisMode::Single {
                return Err(invalid(
                    "REDIS_URL",
                    "one address, or a comma-separated list of cluster nodes with \
                     BYPASS_IDP_REDIS_MODE=cluster",
                ));
            }
            if nodes.is_empty() {
                return Err(invalid("REDIS_URL", "names no node"));
            }
            for node in &nodes {
                let tcp = node.starts_with("redis://") || node.starts_with("rediss://");
                let unix = node.starts_with("redis+unix://") || node.starts_with("unix://");
                if !(tcp || unix && redis_mode == RedisMode::Single) {
                    return Err(invalid(
                        "REDIS_URL",
                        match redis_mode {
                            RedisMode::Single => {
                                "must start with redis://, rediss:// (TLS) or unix://"
                            }
                            RedisMode::Cluster => {
                                "every cluster node must start with redis:// or rediss:// (TLS)"
                            }
                        },
                    ));
                }
                redis::Client::open(*node).map_err(|e| invalid("REDIS_URL", e.to_string()))?;
            }
            if nodes.iter().any(|n| n.starts_with("rediss://"))
                && !nodes.iter().all(|n| n.starts_with("rediss://"))
            {
                return Err(invalid("REDIS_URL", "mixes TLS and plain nodes"));
            }
        }

        let redis_ca_file = pick("BYPASS_IDP_REDIS_CA_FILE", file.redis_ca_file).map(PathBuf::from);
        if let Some(path) = &redis_ca_file {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "BYPASS_IDP_REDIS_CA_FILE",
                    format!("{}: {e}", path.display()),
                )
            })?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(invalid(
                    "BYPASS_IDP_REDIS_CA_FILE",
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
        }

        let redis_prefix = pick("BYPASS_IDP_REDIS_PREFIX", file.redis_prefix)
            .unwrap_or_else(|| "bypass-idp".to_owned());
        if redis_prefix.is_empty() || redis_prefix.contains(['{', '}', ' ']) {
            return Err(invalid(
                "BYPASS_IDP_REDIS_PREFIX",
                "must be non-empty without braces or spaces",
            ));
        }

        let smtp_url = pick("SMTP_URL", file.smtp_url);
        if let Some(url) = &smtp_url {
            let parsed = url::Url::parse(url).map_err(|e| invalid("SMTP_URL", e.to_string()))?;
            if !matches!(parsed.scheme(), "smtp" | "smtps") {
                return Err(invalid("SMTP_URL", "must start with smtp:// or smtps://"));
            }
        }

        let ttl_text = env("BYPASS_IDP_ACCESS_TOKEN_TTL_SECONDS");
        let access_token_ttl_seconds = match ttl_text {
            Some(text) => text.parse().map_err(|_| {
                invalid(
                    "BYPASS_IDP_ACCESS_TOKEN_TTL_SECONDS",
                    format!("\"{text}\" is not a whole number of seconds"),
                )
            })?,
            None => file.access_token_ttl_seconds.unwrap_or(3600),
        };
        if !(60..=86_400).contains(&access_token_ttl_seconds) {
            return Err(invalid(
                "BYPASS_IDP_ACCESS_TOKEN_TTL_SECONDS",
                "must be between 60 and 86400",
            ));
        }

        let access_token_alg = match pick("BYPASS_IDP_ACCESS_TOKEN_ALG", file.access_token_alg) {
            Some(text) => Alg::parse(&text).ok_or_else(|| {
                invalid(
                    "BYPASS_IDP_ACCESS_TOKEN_ALG",
                    format!("\"{text}\" is not ES256 or RS256"),
                )
            })?,
            None => Alg::Es256,
        };
        let refresh_token_lifetime_seconds = number(
            "BYPASS_IDP_REFRESH_TOKEN_LIFETIME_SECONDS",
            env("BYPASS_IDP_REFRESH_TOKEN_LIFETIME_SECONDS"),
            file.refresh_token_lifetime_seconds,
            30 * 24 * 60 * 60,
            1..=366 * 24 * 60 * 60,
        )?;
        let max_flows_per_address = number(
            "BYPASS_IDP_MAX_FLOWS_PER_ADDRESS",
            env("BYPASS_IDP_MAX_FLOWS_PER_ADDRESS"),
            file.max_flows_per_address,
            1000,
            1..=1_000_000,
        )?;
        let session_max_seconds = number(
            "BYPASS_IDP_SESSION_MAX_SECONDS",
            env("BYPASS_IDP_SESSION_MAX_SECONDS"),
            file.session_max_seconds,
            12 * 60 * 60,
            60..=30 * 24 * 60 * 60,
        )?;
        let session_idle_seconds = number(
            "BYPASS_IDP_SESSION_IDLE_SECONDS",
            env("BYPASS_IDP_SESSION_IDLE_SECONDS"),
            file.session_idle_seconds,
            2 * 60 * 60,
            1..=session_max_seconds,
        )?;
        let signin_max_seconds = number(
            "BYPASS_IDP_SIGNIN_MAX_SECONDS",
            env("BYPASS_IDP_SIGNIN_MAX_SECONDS"),
            file.signin_max_seconds,
            30 * 60,
            1..=24 * 60 * 60,
        )?;
        let kdf_queue_timeout_ms = number(
            "BYPASS_IDP_KDF_QUEUE_TIMEOUT_MS",
            env("BYPASS_IDP_KDF_QUEUE_TIMEOUT_MS"),
            file.kdf_queue_timeout_ms,
            1000,
            1..=60_000,
        )?;
        let sessions_per_user = number(
            "BYPASS_IDP_SESSIONS_PER_USER",
            env("BYPASS_IDP_SESSIONS_PER_USER"),
            file.sessions_per_user,
            10,
            1..=1000,
        )?;
        let proxies_text = env("BYPASS_IDP_TRUSTED_PROXIES").or(match file.trusted_proxies {
            Some(TrustedProxiesSetting::List(list)) => Some(list.join(",")),
            Some(TrustedProxiesSetting::Text(text)) => Some(text),
            None => None,
        });
        let trusted_proxies = TrustedProxies::parse(proxies_text.as_deref().unwrap_or_default())
            .map_err(|e| invalid("BYPASS_IDP_TRUSTED_PROXIES", e))?;
        let forwarded_header = match pick("BYPASS_IDP_FORWARDED_HEADER", file.forwarded_header) {
            Some(text) => ForwardedHeader::parse(&text)
                .map_err(|e| invalid("BYPASS_IDP_FORWARDED_HEADER", e))?,
            None => ForwardedHeader::default(),
        };

        let role_groups = match pick("BYPASS_IDP_ROLE_GROUPS", file.role_groups) {
            Some(text) => {
                RoleMap::parse(&text).map_err(|e| invalid("BYPASS_IDP_ROLE_GROUPS", e))?
            }
            None => RoleMap::default(),
        };

        let mail_from = pick("BYPASS_IDP_MAIL_FROM", file.mail_from)
            .unwrap_or_else(|| "bypass-idp <no-reply@localhost>".to_owned());
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "BYPASS_IDP_MAIL_FROM",
                format!("\"{mail_from}\" is not a mailbox like Name <a@b.example>"),
            ));
        }

        let encryption_key = env("BYPASS_IDP_ENCRYPTION_KEY").map(Secret::new);
        if let Some(key) = &encryption_key {
            let decoded = base64::engine::general_purpose::STANDARD.decode(key.expose());
            if decoded.map(|k| k.len()) != Ok(32) {
                return Err(invalid(
                    "BYPASS_IDP_ENCRYPTION_KEY",
                    "must be 32 bytes in standard base64 (e.g. `openssl rand -base64 32`)",
                ));
            }
        }
        let code_pepper = env("BYPASS_IDP_CODE_PEPPER").map(Secret::new);
        if code_pepper.as_ref().is_some_and(|p| p.expose().len() < 16) {
            return Err(invalid(
                "BYPASS_IDP_CODE_PEPPER",
                "must be at least 16 characters",
            ));
        }

        Ok(Self {
            listen,
            issuer,
            data_dir,
            database_url,
            redis_url,
            redis_ca_file,
            redis_prefix,
            redis_mode,
            smtp_url,
            access_token_ttl_seconds,
            access_token_alg,
            refresh_token_lifetime_seconds,
            trusted_proxies,
            forwarded_header,
            metrics_listen,
            max_flows_per_address,
            session_idle_seconds,
            session_max_seconds,
            signin_max_seconds,
            kdf_queue_timeout_ms,
            sessions_per_user,
            role_groups,
            mail_from,
            encryption_key,
            code_pepper,
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// The SQLite database file, when the database is a file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
    }
}

/// A whole number from the environment (text) or the file, within `range`.
fn number(
    setting: &'static str,
    from_env: Option<String>,
    from_file: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let value = match from_env {
        Some(text) => text
            .parse()
            .map_err(|_| invalid(setting, format!("\"{text}\" is not a whole number")))?,
        None => from_file.unwrap_or(default),
    };
    if !range.contains(&value) {
        return Err(invalid(
            setting,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

fn default_sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("bypass-idp.sqlite").display()
    )
}

fn parse_issuer(text: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(text)
        .map_err(|e| invalid("BYPASS_IDP_ISSUER", format!("\"{text}\": {e}")))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(
            "BYPASS_IDP_ISSUER",
            "must be an http(s) URL without query or fragment (OpenID Connect Discovery §3)",
        ));
    }
    Ok(url)
}

/// The issuer as a string without a trailing slash, so paths can be appended.
pub fn issuer_string(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_sources(None, |name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_embedded() {
        let config = with(&[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(config.is_sqlite());
        assert!(config.database_url.contains("data/bypass-idp.sqlite"));
        assert!(config.redis_url.is_none() && config.smtp_url.is_none() && config.issuer.is_none());
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(
            config.sqlite_path(),
            Some(PathBuf::from("./data/bypass-idp.sqlite"))
        );
        let memory = with(&[("DATABASE_URL", "sqlite::memory:")]).unwrap();
        assert_eq!(memory.sqlite_path(), None);
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (var, value) in [
            ("BYPASS_IDP_LISTEN", "localhost"),
            ("BYPASS_IDP_ISSUER", "ftp://x"),
            ("BYPASS_IDP_ISSUER", "https://x/?a=b"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("BYPASS_IDP_REDIS_CA_FILE", "/nonexistent/ca.pem"),
            ("SMTP_URL", "mail.example.com"),
            ("BYPASS_IDP_ACCESS_TOKEN_TTL_SECONDS", "soon"),
            ("BYPASS_IDP_MAIL_FROM", "not a mailbox"),
            ("BYPASS_IDP_ENCRYPTION_KEY", "c2hvcnQ="),
            ("BYPASS_IDP_CODE_PEPPER", "short"),
            ("BYPASS_IDP_TRUSTED_PROXIES", "10.0.0.0/8, proxy"),
            ("BYPASS_IDP_REFRESH_TOKEN_LIFETIME_SECONDS", "0"),
            ("BYPASS_IDP_MAX_FLOWS_PER_ADDRESS", "many"),
            ("BYPASS_IDP_FORWARDED_HEADER", "x-real-ip"),
            ("BYPASS_IDP_METRICS_LISTEN", "9090"),
            ("BYPASS_IDP_ACCESS_TOKEN_ALG", "HS256"),
            ("BYPASS_IDP_REDIS_MODE", "sentinel"),
            ("BYPASS_IDP_KDF_QUEUE_TIMEOUT_MS", "0"),
            ("BYPASS_IDP_KDF_QUEUE_TIMEOUT_MS", "soon"),
        ] {
            let err = with(&[(var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(var), "{err}");
        }
    }

    #[test]
    fn redis_cluster_nodes_and_their_checks() {
        let nodes = "redis://127.0.0.1:7001, redis://127.0.0.1:7002,redis://127.0.0.1:7003";
        let config = with(&[("REDIS_URL", nodes), ("BYPASS_IDP_REDIS_MODE", "cluster")]).unwrap();
        assert_eq!(config.redis_mode, RedisMode::Cluster);
        assert_eq!(
            crate::counters::nodes(config.redis_url.as_deref().unwrap()).len(),
            3
        );
        assert_eq!(with(&[]).unwrap().redis_mode, RedisMode::Single);
        assert_eq!(with(&[]).unwrap().kdf_queue_timeout_ms, 1000);
        let upper = with(&[("REDIS_URL", nodes), ("BYPASS_IDP_REDIS_MODE", "Cluster")]).unwrap();
        assert_eq!(upper.redis_mode, RedisMode::Cluster);
        let err = with(&[("BYPASS_IDP_REDIS_MODE", "cluster")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("BYPASS_IDP_REDIS_MODE"), "{err}");
        for (url, mode) in [
            // A list without cluster mode, TLS mixed with plain, a socket, an empty list.
            (nodes, "single"),
            ("redis://a:1,rediss://b:2", "cluster"),
            ("unix:///tmp/redis.sock", "cluster"),
            (" , ", "cluster"),
            ("redis://a:1,http://b:2", "cluster"),
        ] {
            let err = with(&[("REDIS_URL", url), ("BYPASS_IDP_REDIS_MODE", mode)])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("REDIS_URL"), "{url} {mode}: {err}");
        }
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nissuer = \"https://idp.example\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        let config = Config::from_sources(path.to_str(), |name| {
            (name == "BYPASS_IDP_LISTEN").then(|| "127.0.0.1:9100".to_owned())
        })
        .unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.issuer.unwrap().as_str(), "https://idp.example/");
        assert!(config.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(config.trusted_proxies.contains("::1".parse().unwrap()));
        assert!(
            !config
                .trusted_proxies
                .contains("192.0.2.1".parse().unwrap())
        );
        std::fs::write(&path, "lisen = 1\n").unwrap();
        assert!(Config::from_sources(path.to_str(), |_| None).is_err());
    }
}
