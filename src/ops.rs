//! What an operator's tooling talks to: `/healthz` (the process answers), `/readyz` (the
//! database and Redis answer), and Prometheus `/metrics`. Metric names and labels are
//! defined here; no label ever holds a secret, a user name or a raw path.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::{Response, handler};
use serde_json::json;

use crate::state::AppState;

/// How long `/readyz` waits for each dependency.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub const HEALTHZ_PATH: &str = "/healthz";
pub const READYZ_PATH: &str = "/readyz";
pub const METRICS_PATH: &str = "/metrics";

/// The process-wide Prometheus recorder, installed on first use (tests start many servers
/// in one process; they share it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then this one stays idle.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            // Histogram samples pile up in the recorder until something drains them; with
            // no scrape they grew by ~18 bytes per request without end (seen at 70,000
            // req/s in bench/run). A thread of its own, so it outlives any one runtime.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(METRICS_UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(%err, "could not start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets: each second, so the
/// samples waiting stay small (at 16,000 req/s, five seconds of them held 1.6 MiB).
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body.to_string())
}

#[handler]
pub fn healthz() -> Response {
    json(StatusCode::OK, json!({"status": "ok"}))
}

/// 200 when every dependency answers within [`READY_TIMEOUT`]; else 503 naming the ones
/// that did not, with `Retry-After`.
#[handler]
pub async fn readyz(Data(state): Data<&Arc<AppState>>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        let mut response = json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "draining"}),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(5));
        return response;
    }
    let readiness = state.health.check(READY_TIMEOUT).await;
    let verdict = |ok: bool| if ok { "ok" } else { "unavailable" };
    let mut checks = json!({"database": verdict(readiness.database)});
    if let Some(redis) = readiness.redis {
        checks["redis"] = json!(verdict(redis));
    }
    if readiness.ready() {
        return json(StatusCode::OK, json!({"status": "ready", "checks": checks}));
    }
    let mut response = json(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "unavailable", "checks": checks}),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(5));
    response
}

#[handler]
pub fn metrics_endpoint() -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .header(header::CACHE_CONTROL, "no-store")
        .body(metrics_handle().render())
}

/// A bounded route label: ids become `{id}`, and anything this server does not serve is
/// `other`, so neither a user's id nor a scanner's path becomes a time series.
pub fn route_label(path: &str, status: StatusCode) -> String {
    if matches!(
        status,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) {
        return "other".to_owned();
    }
    const FIXED: &[&str] = &[
        "/.well-known/openid-configuration",
        "/oauth2/jwks",
        "/oauth2/token",
        "/oauth2/authorize",
        "/oauth2/signin",
        "/oauth2/signin/password",
        "/oauth2/signin/totp",
        "/oauth2/signin/bypass",
        "/oauth2/signin/enroll",
        "/oauth2/signin/enrol-code",
        "/oauth2/signin/replace",
        "/oauth2/signin/replace/confirm",
        "/oauth2/userinfo",
        "/oauth2/logout",
        "/openapi.json",
        HEALTHZ_PATH,
        READYZ_PATH,
        METRICS_PATH,
    ];
    if FIXED.contains(&path) {
        return path.to_owned();
    }
    if path.starts_with("/docs") {
        return "/docs".to_owned();
    }
    let Some(rest) = path.strip_prefix("/scim/v2/") else {
        return "other".to_owned();
    };
    // SCIM: resource names are kept, whatever follows a resource name is an id.
    const NAMES: &[&str] = &[
        "Users",
        "Groups",
        "Me",
        "bypassCodes",
        "auditEvents",
        "notifications",
        "totp",
        "confirmation",
        "BypassCodeSettings",
        "ServiceProviderConfig",
        "ResourceTypes",
        "Schemas",
        ".search",
    ];
    let mut label = String::from("/scim/v2");
    for segment in rest.split('/').take(6) {
        label.push('/');
        label.push_str(if NAMES.contains(&segment) {
            segment
        } else {
            "{id}"
        });
    }
    label
}

/// A bounded method label: any method a client makes up is `OTHER`.
fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

/// Records one answered request.
pub fn record_request(method: &str, path: &str, status: StatusCode, started: Instant) {
    let route = route_label(path, status);
    let labels = [
        ("method", method_label(method).to_owned()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_bounded() {
        let ok = StatusCode::OK;
        assert_eq!(
            route_label("/scim/v2/Users/3f0c/bypassCodes/9a1b/notifications", ok),
            "/scim/v2/Users/{id}/bypassCodes/{id}/notifications"
        );
        assert_eq!(route_label("/scim/v2/Users", ok), "/scim/v2/Users");
        assert_eq!(route_label("/oauth2/token", ok), "/oauth2/token");
        assert_eq!(
            route_label("/wp-admin/x.php", StatusCode::NOT_FOUND),
            "other"
        );
        assert_eq!(route_label("/anything", ok), "other");
        assert_eq!(
            route_label("/scim/v2/a/b/c/d/e/f/g/h/i", StatusCode::NOT_FOUND),
            "other"
        );
        assert_eq!(
            route_label("/scim/v2/Users", StatusCode::METHOD_NOT_ALLOWED),
            "other"
        );
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("FOO1"), "OTHER");
    }
}
