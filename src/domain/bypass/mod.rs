//! Bypass-code rules, by concern: the policy ([`policy`]), what a create request may ask
//! for under it ([`request`]), a code's life and status ([`lifecycle`]), two-person approval
//! ([`approval`]); here, generating, showing and normalising codes, who may have them, and
//! where they are emailed. Pure: the clock and the random source are passed in.

use rand::RngExt;
use serde_json::Value;

pub mod approval;
pub mod lifecycle;
pub mod policy;
pub mod request;

pub use approval::{Approval, ApprovalRequired};
pub use lifecycle::{CodeState, CodeStatus, NewCode, Rejection, StoredCode};
pub use policy::Policy;
pub use request::{
    CREATE_MEMBERS, CodeRequest, GenerationRefused, check_generation_allowed, parse_create,
};

use super::scim::user::Email;
use super::scim::{ScimType, ScimViolation};

pub const MIN_CODE_LENGTH: u32 = 8;
pub const MAX_CODE_LENGTH: u32 = 20;
/// Upper bound of any finite usage count, whatever the policy says.
pub const MAX_USAGE_LIMIT: i64 = 1_000;
/// Upper bound of any finite expiry: ten years, in minutes.
pub const MAX_EXPIRY_MINUTES: i64 = 10 * 365 * 24 * 60;
pub const MAX_ACTIVE_LIMIT: u32 = 50;
/// The sign-in says how many codes of a printable set are left when this few or fewer are.
pub const SAVED_CODES_WARNING: u64 = 2;
/// The parts of `expiresIn`: name, minutes per unit, largest value.
pub const EXPIRES_IN_PARTS: [(&str, i64, i64); 3] = [
    ("days", 24 * 60, 3650),
    ("hours", 60, 87_600),
    ("minutes", 1, MAX_EXPIRY_MINUTES),
];

/// Who generates a code; each has its own switch and limits. A printable self-service set
/// (`savedSet`) follows the self-service rules but does not count toward `maxActive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    HelpDesk,
    SelfService,
    SavedSet,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HelpDesk => "helpDesk",
            Self::SelfService => "selfService",
            Self::SavedSet => "savedSet",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::HelpDesk, Self::SelfService, Self::SavedSet]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// What a bypass code is for: the second step of a sign-in (which may also replace the
/// authenticator), or only setting up an authenticator after a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Purpose {
    #[default]
    SignIn,
    Enrolment,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "signIn",
            Self::Enrolment => "enrolment",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "signIn" => Some(Self::SignIn),
            "enrolment" => Some(Self::Enrolment),
            _ => None,
        }
    }
}

pub(super) fn invalid(detail: impl Into<String>) -> ScimViolation {
    ScimViolation::new(ScimType::InvalidValue, detail)
}

/// Reads a member by name, ignoring case as SCIM does.
pub(super) fn member<'a>(
    object: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

pub(super) fn integer(
    object: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<i64>, ScimViolation> {
    match member(object, name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(format!("\"{name}\" must be a whole number"))),
    }
}

pub(super) fn boolean(
    object: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<bool>, ScimViolation> {
    match member(object, name) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| invalid(format!("\"{name}\" must be true or false"))),
    }
}

/// `length` uniformly random decimal digits.
pub fn generate_code(rng: &mut impl RngExt, length: u32) -> String {
    (0..length)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Groups digits by four for people: `1234-5678-9012`.
pub fn display_code(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The digits of a typed code, without separators and spaces; `None` if anything else is
/// in it or the length cannot be a code.
pub fn normalize_code(typed: &str) -> Option<String> {
    let digits: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t' | '\u{a0}'))
        .collect();
    let plausible = (MIN_CODE_LENGTH as usize..=MAX_CODE_LENGTH as usize).contains(&digits.len());
    (plausible && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Why a user cannot have bypass codes (DESIGN §5.1): one rule, one message each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ineligible {
    Inactive,
    NotEnrolled,
}

impl Ineligible {
    pub fn message(self, user_name: &str) -> String {
        match self {
            Self::Inactive => format!(
                "user \"{user_name}\" is inactive; activate the user first (no bypass code or 2-step verification change was made)"
            ),
            Self::NotEnrolled => format!(
                "user \"{user_name}\" is not enrolled in 2-step verification; enroll a TOTP factor first"
            ),
        }
    }
}

/// Bypass codes are for active users enrolled in 2-step verification; enrolling needs an
/// active user. `need_enrolled` says which of the two is asked.
pub fn check_eligible(active: bool, enrolled: bool, need_enrolled: bool) -> Result<(), Ineligible> {
    if !active {
        Err(Ineligible::Inactive)
    } else if need_enrolled && !enrolled {
        Err(Ineligible::NotEnrolled)
    } else {
        Ok(())
    }
}

/// Where a code is emailed: the primary address, or the only one. Several addresses with
/// none primary is a question only an administrator can answer, so it is an error;
/// `Ok(None)` when the user has no address.
pub fn email_recipient(emails: &[Email]) -> Result<Option<&str>, &'static str> {
    if let Some(primary) = emails.iter().find(|e| e.primary) {
        return Ok(Some(&primary.value));
    }
    match emails {
        [] => Ok(None),
        [only] => Ok(Some(&only.value)),
        _ => Err(
            "the user has several email addresses and none is primary; mark one \"primary\": true",
        ),
    }
}

/// The fixed time the rules' unit tests run at.
#[cfg(test)]
pub(crate) fn test_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(value: &str, primary: bool) -> Email {
        Email {
            value: value.into(),
            kind: None,
            primary,
            display: None,
        }
    }

    #[test]
    fn codes_go_to_the_primary_or_the_only_address() {
        assert_eq!(email_recipient(&[]), Ok(None));
        assert_eq!(email_recipient(&[email("a@x", false)]), Ok(Some("a@x")));
        assert_eq!(
            email_recipient(&[email("a@x", false), email("b@x", true)]),
            Ok(Some("b@x"))
        );
        assert!(email_recipient(&[email("a@x", false), email("b@x", false)]).is_err());
    }
    #[test]
    fn codes_are_digits_shown_grouped_and_typed_loosely() {
        let mut rng = rand::rng();
        let code = generate_code(&mut rng, 12);
        assert_eq!(code.len(), 12);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(display_code("123456789012"), "1234-5678-9012");
        assert_eq!(display_code("1234567890"), "1234-5678-90");
        assert_eq!(
            normalize_code(" 1234-5678 9012 ").as_deref(),
            Some("123456789012")
        );
        assert_eq!(normalize_code("1234-5678-901x"), None);
        assert_eq!(normalize_code("1234"), None);
    }

    #[test]
    fn digits_are_uniform() {
        let mut rng = rand::rng();
        let mut counts = [0u32; 10];
        for _ in 0..2_000 {
            for b in generate_code(&mut rng, 10).bytes() {
                counts[(b - b'0') as usize] += 1;
            }
        }
        // 20 000 digits: each count is 2 000 ± ~60 (1σ); 300 is five sigma.
        for (digit, count) in counts.iter().enumerate() {
            assert!((1_700..=2_300).contains(count), "digit {digit}: {count}");
        }
    }
}
