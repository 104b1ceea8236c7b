//! Cost of verifying a bypass code, as ratios against a raw Argon2 computation measured in
//! the same run (DESIGN §7): `cargo bench --bench verify`.
//! Embedded backends (SQLite, in-process counters) unless DATABASE_URL / REDIS_URL are set.

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;

use bypass_idp::app;
use bypass_idp::config::Config;
use bypass_idp::domain::enrolment::CodeUse;
use bypass_idp::service::bypass::{Argon2Hasher, CodeHasher, VerifyOutcome};
use bypass_idp::service::context::Context;
use bypass_idp::state::AppState;
use serde_json::json;

const ROUNDS: usize = 200;
/// Parallel verifications of one user's codes at most: below the per-user attempt window
/// (`SECOND_FACTOR_PER_USER`, 5), which counts an attempt from before its Argon2 runs.
const PER_USER: usize = 4;

async fn state(dir: &std::path::Path) -> Arc<AppState> {
    let data = dir.display().to_string();
    let config = Config::from_sources(None, |name| match name {
        "BYPASS_IDP_DATA_DIR" => Some(data.clone()),
        "DATABASE_URL" | "REDIS_URL" => std::env::var(name).ok(),
        "BYPASS_IDP_REDIS_PREFIX" => Some(format!("bench-{}", std::process::id())),
        _ => None,
    })
    .expect("config");
    app::build_state(&config, "http://127.0.0.1:8080".into())
        .await
        .expect("state")
        .0
}

fn per_op(elapsed: Duration, ops: usize) -> f64 {
    elapsed.as_secs_f64() * 1000.0 / ops as f64
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let body = json!({"schemas": [bypass_idp::domain::scim::USER_SCHEMA], "userName": "bench"});
    let (user, code) = common::enrolled(&state, body, 5).await;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    // Baseline: raw Argon2id, one at a time, then one per core.
    let hasher = Arc::new(Argon2Hasher::new(None));
    let started = Instant::now();
    for _ in 0..ROUNDS {
        hasher.hash("123456789012", &[7; 16]).unwrap();
    }
    let argon_serial = started.elapsed();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..ROUNDS {
        let hasher = hasher.clone();
        tasks.spawn(bypass_idp::service::passwords::run_kdf(move || {
            hasher.hash("123456789012", &[7; 16])
        }));
    }
    while tasks.join_next().await.is_some() {}
    let argon_parallel = started.elapsed();

    // The service: a good code (unlimited, so every round uses it), serially and in parallel.
    let ctx = Context::system();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let outcome = state
            .bypass
            .verify_and_consume(&user, &code, CodeUse::SecondStep, &ctx)
            .await
            .unwrap();
        assert!(matches!(outcome, VerifyOutcome::Accepted { .. }));
    }
    let verify_serial = started.elapsed();
    // In parallel, as many users sign in at once: each user's code a few times at most, so
    // the per-user attempt window (a guard against guessing) is not what is measured.
    let mut users = vec![(user, code)];
    for n in 1..ROUNDS.div_ceil(PER_USER) {
        let body = json!({"schemas": [bypass_idp::domain::scim::USER_SCHEMA], "userName": format!("bench-{n}")});
        users.push(common::enrolled(&state, body, 1).await);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..ROUNDS {
        let (user, code) = users[round % users.len()].clone();
        let state = state.clone();
        tasks.spawn(async move {
            state
                .bypass
                .verify_and_consume(&user, &code, CodeUse::SecondStep, &Context::system())
                .await
                .unwrap()
        });
    }
    while let Some(done) = tasks.join_next().await {
        assert!(matches!(done.unwrap(), VerifyOutcome::Accepted { .. }));
    }
    let verify_parallel = started.elapsed();

    println!("rounds: {ROUNDS}, cores: {cores}");
    println!(
        "argon2 alone:        {:.2} ms/op serial, {:.2} ms/op with {cores} in parallel",
        per_op(argon_serial, ROUNDS),
        per_op(argon_parallel, ROUNDS)
    );
    println!(
        "verify-and-consume:  {:.2} ms/op serial, {:.2} ms/op with {cores} in parallel",
        per_op(verify_serial, ROUNDS),
        per_op(verify_parallel, ROUNDS)
    );
    println!(
        "argon2 share of one verify (serial): {:.0} %",
        100.0 * argon_serial.as_secs_f64() / verify_serial.as_secs_f64()
    );
    println!(
        "verify throughput / raw argon2 throughput (parallel): {:.2} (target >= 0.85)",
        argon_parallel.as_secs_f64() / verify_parallel.as_secs_f64()
    );
}
