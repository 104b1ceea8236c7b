//! Bypass-code and sign-in events, counted for dashboards and alerts (served by
//! `ops::metrics_endpoint`).

pub fn bypass_code_generated(origin: &'static str) {
    metrics::counter!("bypass_codes_generated_total", "origin" => origin).increment(1);
}

pub fn bypass_code_emailed(sent: bool) {
    let outcome = if sent { "sent" } else { "failed" };
    metrics::counter!("bypass_codes_emailed_total", "outcome" => outcome).increment(1);
}

pub fn bypass_code_used() {
    metrics::counter!("bypass_codes_used_total").increment(1);
}

/// `reason`: wrong, expired, revoked, exhausted, locked.
pub fn bypass_code_failed(reason: &'static str) {
    metrics::counter!("bypass_codes_failed_total", "reason" => reason).increment(1);
}

/// A second factor refused because it is locked (window or permanent).
pub fn second_factor_locked(permanent: bool) {
    let kind = if permanent { "permanent" } else { "window" };
    metrics::counter!("second_factor_locked_total", "kind" => kind).increment(1);
}

/// `factor`: password, totp, bypass_code, enrolment; `outcome`: success, failure, locked.
pub fn sign_in_step(factor: &'static str, outcome: &'static str) {
    metrics::counter!("signin_steps_total", "factor" => factor, "outcome" => outcome).increment(1);
}

/// An authorization code issued: a finished sign-in, by its strongest factor.
pub fn signed_in(method: &'static str) {
    metrics::counter!("signins_total", "method" => method).increment(1);
}

/// `outcome`: delivered, refused (the client answered 4xx), failed (after the retries).
pub fn backchannel_logout(outcome: &'static str) {
    metrics::counter!("backchannel_logouts_total", "outcome" => outcome).increment(1);
}

/// `dependency`: database, redis.
pub fn dependency_error(dependency: &'static str) {
    metrics::counter!("dependency_errors_total", "dependency" => dependency).increment(1);
}

/// Counts one computation waiting for a slot until it is dropped (also when the wait
/// is cancelled), so the gauge cannot drift.
pub struct Argon2Waiting(());

impl Argon2Waiting {
    pub fn start() -> Self {
        metrics::gauge!("argon2_queue_depth").increment(1.0);
        Self(())
    }
}

impl Drop for Argon2Waiting {
    fn drop(&mut self) {
        metrics::gauge!("argon2_queue_depth").decrement(1.0);
    }
}

pub fn argon2_waited(seconds: f64) {
    metrics::histogram!("argon2_wait_seconds").record(seconds);
}

/// A password or code check refused as busy: `queue_full` (the queue ahead would take longer
/// than the deadline) or `deadline` (it waited that long).
pub fn argon2_refused(reason: &'static str) {
    metrics::counter!("argon2_refused_total", "reason" => reason).increment(1);
}
