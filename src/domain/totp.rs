//! TOTP (RFC 6238) for 2-step verification: SHA-1, 6 digits, 30-second steps, one step of
//! clock skew either way. Replay protection is the caller's: [`check`] returns the matched
//! step so that a step, once accepted, is never accepted again.

use totp_rs::{Builder, Totp};

use super::secret::Secret;

pub const DIGITS: u8 = 6;
pub const STEP_SECONDS: u64 = 30;
pub const SECRET_BYTES: usize = 20;

/// Whether a user has a TOTP factor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TotpStatus {
    #[default]
    None,
    Pending,
    Enrolled,
}

impl TotpStatus {
    pub fn of(has_secret: bool, confirmed: bool) -> Self {
        match (has_secret, confirmed) {
            (_, true) => Self::Enrolled,
            (true, false) => Self::Pending,
            (false, false) => Self::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Enrolled => "enrolled",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("TOTP: {0}")]
pub struct TotpError(String);

fn build(secret: &[u8], issuer: &str, account: &str) -> Result<Totp, TotpError> {
    // Colons split issuer from account in otpauth labels, so they cannot appear in either.
    Builder::new()
        .with_secret(secret.to_vec())
        .with_digits(DIGITS)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_issuer(Some(issuer.replace(':', "-")))
        .with_account_name(account.replace(':', "-"))
        .build()
        .map_err(|e| TotpError(e.to_string()))
}

/// A new random secret.
pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut secret);
    secret
}

pub fn base32(secret: &[u8]) -> Secret {
    Secret::new(totp_rs::Secret::from(secret.to_vec()).to_base32())
}

pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    totp_rs::Secret::try_from_base32(text)
        .ok()
        .map(|s| s.as_bytes().to_vec())
}

/// The `otpauth://` URI an authenticator app scans. It contains the secret.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Result<Secret, TotpError> {
    let totp = build(secret, issuer, account)?;
    totp.to_url()
        .map(Secret::new)
        .map_err(|e| TotpError(e.to_string()))
}

/// The step the code is valid for at `unix_time`, if any.
pub fn check(secret: &[u8], code: &str, unix_time: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    build(secret, "x", "x").ok()?.check(&code, unix_time)
}

/// The code for `unix_time` (for tests and tooling).
pub fn code_at(secret: &[u8], unix_time: u64) -> Option<String> {
    Some(
        build(secret, "x", "x")
            .ok()?
            .generate(unix_time)
            .to_string(),
    )
}

/// A user's stored 2-step verification state.
#[derive(Clone, Debug)]
pub struct MfaRecord {
    /// The TOTP secret, sealed; `None` when there is no factor.
    pub totp_secret: Option<String>,
    pub totp_confirmed: bool,
    /// The salt every one of the user's bypass codes is hashed with.
    pub bypass_salt: Vec<u8>,
    /// Failed second-factor attempts in a row (NIST SP 800-63B's cap).
    pub consecutive_failures: i32,
    /// When the factor was confirmed; `None` for factors confirmed before this was kept.
    pub totp_confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When an administrator last reset 2-step verification.
    pub mfa_reset_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A new authenticator being set up beside the confirmed one (sealed), and since when.
    pub replacement_secret: Option<String>,
    pub replacement_started_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_check_within_one_step_of_skew() {
        let secret = generate_secret();
        let t = 1_800_000_000;
        let code = code_at(&secret, t).unwrap();
        assert_eq!(code.len(), 6);
        assert_eq!(check(&secret, &code, t), Some(t / STEP_SECONDS));
        assert_eq!(
            check(&secret, &code, t + STEP_SECONDS),
            Some(t / STEP_SECONDS)
        );
        assert_eq!(check(&secret, &code, t + 3 * STEP_SECONDS), None);
        assert_eq!(check(&secret, "12345", t), None);
        assert_eq!(check(&secret, "abcdef", t), None);
    }

    #[test]
    fn base32_round_trip_and_uri() {
        let secret = generate_secret();
        let encoded = base32(&secret);
        assert_eq!(from_base32(encoded.expose()).unwrap(), secret);
        let uri = otpauth_uri(&secret, "bypass-idp", "bjensen:x").unwrap();
        assert!(uri.expose().starts_with("otpauth://totp/"));
        assert!(uri.expose().contains(encoded.expose()));
    }
}
