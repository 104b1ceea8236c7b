//! Bypass-code rules: the policy, what a create request may ask for under it, generating,
//! showing and normalising codes, and a code's status at a given time. Pure: the clock and
//! the random source are passed in.

use chrono::{DateTime, Duration, Utc};
use rand::RngExt;
use serde_json::Value;

pub mod policy;

pub use policy::Policy;

use super::ids::UserId;
use super::limits::Lock;
use super::scim::user::Email;
use super::scim::{ScimType, ScimViolation};

pub const MIN_CODE_LENGTH: u32 = 8;
pub const MAX_CODE_LENGTH: u32 = 20;
/// Upper bound of any finite usage count, whatever the policy says.
pub const MAX_USAGE_LIMIT: i64 = 1_000;
/// Upper bound of any finite expiry: ten years, in minutes.
pub const MAX_EXPIRY_MINUTES: i64 = 10 * 365 * 24 * 60;
pub const MAX_ACTIVE_LIMIT: u32 = 50;
/// The parts of `expiresIn`: name, minutes per unit, largest value.
pub const EXPIRES_IN_PARTS: [(&str, i64, i64); 3] = [
    ("days", 24 * 60, 3650),
    ("hours", 60, 87_600),
    ("minutes", 1, MAX_EXPIRY_MINUTES),
];

/// Who generates a code; each has its own switch and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    HelpDesk,
    SelfService,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HelpDesk => "helpDesk",
            Self::SelfService => "selfService",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "helpDesk" => Some(Self::HelpDesk),
            "selfService" => Some(Self::SelfService),
            _ => None,
        }
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

/// What a validated create request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRequest {
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// `None`: unlimited.
    pub max_uses: Option<i64>,
    pub notify_email: bool,
    /// `signIn` unless the body says `enrolment`.
    pub purpose: Purpose,
}

/// Why a code may not be generated for this origin at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GenerationRefused {
    Disabled(Origin),
}

/// The members a create body may have; any other is refused.
pub const CREATE_MEMBERS: [&str; 7] = [
    "schemas",
    "expiresIn",
    "neverExpires",
    "maxUsageCount",
    "unlimitedUsage",
    "notify",
    "purpose",
];

/// Parses a create body and checks it against the policy for `origin`.
/// `expiresIn {days, hours, minutes}` or `neverExpires: true` (one is required);
/// `maxUsageCount: N` or `unlimitedUsage: true` (neither: once); `notify: ["email"]`.
pub fn parse_create(
    body: &Value,
    policy: &Policy,
    origin: Origin,
    now: DateTime<Utc>,
) -> Result<CodeRequest, ScimViolation> {
    let object = body.as_object().ok_or_else(|| {
        ScimViolation::new(
            ScimType::InvalidSyntax,
            "the request body must be a JSON object",
        )
    })?;
    if let Some(unknown) = object
        .keys()
        .find(|k| !CREATE_MEMBERS.iter().any(|n| n.eq_ignore_ascii_case(k)))
    {
        return Err(invalid(format!(
            "unknown member \"{unknown}\"; a bypass code takes expiresIn or neverExpires, maxUsageCount or unlimitedUsage, notify and purpose"
        )));
    }
    let (_, max_usage, max_expiry) = policy.limits(origin);
    let who = origin.as_str();

    let never = boolean(object, "neverExpires")?.unwrap_or(false);
    let expires_in = member(object, "expiresIn");
    let expires_at = match (expires_in, never) {
        (Some(_), true) => {
            return Err(invalid(
                "give either \"expiresIn\" or \"neverExpires\": true, not both",
            ));
        }
        (None, false) => {
            return Err(invalid(
                "say when the code expires: \"expiresIn\": {\"days\", \"hours\", \"minutes\"}, or \"neverExpires\": true",
            ));
        }
        (None, true) => {
            if let Some(max) = max_expiry {
                return Err(invalid(format!(
                    "\"neverExpires\" is not allowed: the {who} policy caps expiry at {max} minutes"
                )));
            }
            None
        }
        (Some(value), false) => {
            let parts = value
                .as_object()
                .ok_or_else(|| invalid("\"expiresIn\" must be an object like {\"days\": 1, \"hours\": 2, \"minutes\": 30}"))?;
            if let Some(unknown) = parts.keys().find(|k| {
                !EXPIRES_IN_PARTS
                    .iter()
                    .any(|(n, _, _)| n.eq_ignore_ascii_case(k))
            }) {
                return Err(invalid(format!(
                    "\"expiresIn.{unknown}\" is unknown; use days, hours and minutes"
                )));
            }
            let mut total: i64 = 0;
            for (name, factor, limit) in EXPIRES_IN_PARTS {
                let value = integer(parts, name)?.unwrap_or(0);
                if !(0..=limit).contains(&value) {
                    return Err(invalid(format!(
                        "\"expiresIn.{name}\" must be between 0 and {limit}"
                    )));
                }
                total += value * factor;
            }
            let cap = max_expiry.unwrap_or(MAX_EXPIRY_MINUTES);
            if !(1..=cap).contains(&total) {
                return Err(invalid(format!(
                    "\"expiresIn\" adds up to {total} minutes; it must be between 1 and {cap} minutes ({who} policy)"
                )));
            }
            Some(now + Duration::minutes(total))
        }
    };

    let unlimited = boolean(object, "unlimitedUsage")?.unwrap_or(false);
    let count = integer(object, "maxUsageCount")?;
    let max_uses = match (count, unlimited) {
        (Some(_), true) => {
            return Err(invalid(
                "give either \"maxUsageCount\" or \"unlimitedUsage\": true, not both",
            ));
        }
        (None, true) => {
            if let Some(max) = max_usage {
                return Err(invalid(format!(
                    "\"unlimitedUsage\" is not allowed: the {who} policy allows at most {max} uses"
                )));
            }
            None
        }
        (count, false) => {
            let count = count.unwrap_or(1);
            let cap = max_usage.unwrap_or(MAX_USAGE_LIMIT);
            if !(1..=cap).contains(&count) {
                return Err(invalid(format!(
                    "\"maxUsageCount\" must be between 1 and {cap} ({who} policy)"
                )));
            }
            Some(count)
        }
    };

    let notify_email = match member(object, "notify") {
        None => false,
        Some(Value::Array(channels)) => {
            let mut email = false;
            for channel in channels {
                match channel.as_str() {
                    Some("email") => email = true,
                    _ => {
                        return Err(invalid(format!(
                            "\"notify\" accepts only \"email\", not {channel}"
                        )));
                    }
                }
            }
            email
        }
        Some(_) => return Err(invalid("\"notify\" must be an array, e.g. [\"email\"]")),
    };
    let purpose = match member(object, "purpose") {
        None => Purpose::SignIn,
        Some(value) => value.as_str().and_then(Purpose::parse).ok_or_else(|| {
            invalid("\"purpose\" must be \"signIn\" (the default) or \"enrolment\"")
        })?,
    };
    Ok(CodeRequest {
        expires_at,
        max_uses,
        notify_email,
        purpose,
    })
}

/// Whether `origin` may generate codes under this policy.
pub fn check_generation_allowed(policy: &Policy, origin: Origin) -> Result<(), GenerationRefused> {
    if policy.limits(origin).0 {
        Ok(())
    } else {
        Err(GenerationRefused::Disabled(origin))
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeStatus {
    Active,
    Expired,
    Exhausted,
    Revoked,
}

impl CodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Exhausted => "exhausted",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Expired, Self::Exhausted, Self::Revoked]
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

/// The facts about a stored code that decide its status.
#[derive(Clone, Copy, Debug)]
pub struct CodeState {
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub use_count: i64,
    pub revoked: bool,
}

impl CodeState {
    /// Revoked wins over exhausted, which wins over expired.
    pub fn status(&self, now: DateTime<Utc>) -> CodeStatus {
        if self.revoked {
            CodeStatus::Revoked
        } else if self.max_uses.is_some_and(|max| self.use_count >= max) {
            CodeStatus::Exhausted
        } else if self.expires_at.is_some_and(|at| at <= now) {
            CodeStatus::Expired
        } else {
            CodeStatus::Active
        }
    }

    pub fn remaining(&self) -> Option<i64> {
        self.max_uses.map(|max| (max - self.use_count).max(0))
    }
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

/// Why a typed code was refused at sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    Wrong,
    Expired,
    Revoked,
    Exhausted,
    Locked(Lock),
    /// An `enrolment` code typed where only a sign-in code does (no use counted).
    EnrolmentOnly,
}

impl Rejection {
    /// A stable name, for metrics and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wrong => "wrong",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Exhausted => "exhausted",
            Self::Locked(_) => "locked",
            Self::EnrolmentOnly => "enrolment_only",
        }
    }

    /// The refusal for a code found in `status` (which is not active): a code that is still
    /// active when its use could not be recorded was used up by a concurrent attempt.
    pub fn for_status(status: CodeStatus) -> Self {
        match status {
            CodeStatus::Expired => Self::Expired,
            CodeStatus::Revoked => Self::Revoked,
            CodeStatus::Exhausted | CodeStatus::Active => Self::Exhausted,
        }
    }
}

/// A code to store: only its hash, never the plaintext.
#[derive(Clone, Debug)]
pub struct NewCode {
    pub id: String,
    pub user_id: UserId,
    pub code_hash: Vec<u8>,
    pub origin: Origin,
    /// `client:<id>`, `user:<id>` or `system`.
    pub created_by: String,
    pub client_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub purpose: Purpose,
}

/// A stored code, as the store hands it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCode {
    pub id: String,
    pub user_id: UserId,
    pub code_hash: Vec<u8>,
    pub origin: String,
    pub created_by: String,
    pub client_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub use_count: i64,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub purpose: Purpose,
}

impl StoredCode {
    pub fn state(&self) -> CodeState {
        CodeState {
            expires_at: self.expires_at,
            max_uses: self.max_uses,
            use_count: self.use_count,
            revoked: self.revoked_at.is_some(),
        }
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
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn create(body: Value) -> Result<CodeRequest, ScimViolation> {
        parse_create(&body, &Policy::default(), Origin::HelpDesk, now())
    }

    #[test]
    fn expiry_and_usage_options() {
        let r = create(json!({"expiresIn": {"days": 1, "hours": 2, "minutes": 3}})).unwrap();
        assert_eq!(r.expires_at, Some(now() + Duration::minutes(24 * 60 + 123)));
        assert_eq!(r.max_uses, Some(1), "absent usage means once");
        assert!(!r.notify_email);
        let r = create(json!({"neverExpires": true, "unlimitedUsage": true, "notify": ["email"]}))
            .unwrap();
        assert_eq!(
            (r.expires_at, r.max_uses, r.notify_email),
            (None, None, true)
        );
        let r = create(json!({"expiresIn": {"minutes": 30}, "maxUsageCount": 5})).unwrap();
        assert_eq!(r.max_uses, Some(5));
    }

    #[test]
    fn conflicting_and_out_of_range_requests_name_the_field() {
        for (body, field) in [
            (json!({}), "expiresIn"),
            (
                json!({"expiresIn": {"days": 1}, "neverExpires": true}),
                "neverExpires",
            ),
            (json!({"expiresIn": {"minutes": 0}}), "expiresIn"),
            (json!({"expiresIn": {"days": -1}}), "expiresIn.days"),
            (json!({"expiresIn": {"weeks": 1}}), "expiresIn.weeks"),
            (json!({"expiresIn": 5}), "expiresIn"),
            (
                json!({"neverExpires": true, "maxUsageCount": 0}),
                "maxUsageCount",
            ),
            (
                json!({"neverExpires": true, "maxUsageCount": 2, "unlimitedUsage": true}),
                "unlimitedUsage",
            ),
            (
                json!({"neverExpires": true, "maxUsageCount": "3"}),
                "maxUsageCount",
            ),
            (json!({"neverExpires": true, "notify": ["sms"]}), "notify"),
            (json!({"neverExpires": true, "color": "red"}), "color"),
        ] {
            let err = create(body.clone()).unwrap_err();
            assert_eq!(err.scim_type, ScimType::InvalidValue, "{body}");
            assert!(err.detail.contains(field), "{body}: {}", err.detail);
        }
    }

    #[test]
    fn policy_limits_apply_per_origin() {
        let policy = Policy {
            help_desk_max_usage: Some(3),
            help_desk_max_expiry_minutes: Some(60),
            ..Policy::default()
        };
        let help = |body: Value| parse_create(&body, &policy, Origin::HelpDesk, now());
        assert!(help(json!({"expiresIn": {"minutes": 60}, "maxUsageCount": 3})).is_ok());
        let err = help(json!({"expiresIn": {"minutes": 61}})).unwrap_err();
        assert!(err.detail.contains("between 1 and 60"), "{}", err.detail);
        assert!(
            help(json!({"neverExpires": true}))
                .unwrap_err()
                .detail
                .contains("caps expiry at 60")
        );
        assert!(
            help(json!({"expiresIn": {"minutes": 5}, "maxUsageCount": 4}))
                .unwrap_err()
                .detail
                .contains("between 1 and 3")
        );
        assert!(help(json!({"expiresIn": {"minutes": 5}, "unlimitedUsage": true})).is_err());
        let selfish = |body: Value| parse_create(&body, &policy, Origin::SelfService, now());
        assert!(
            selfish(json!({"neverExpires": true, "maxUsageCount": 2})).is_err(),
            "self-service default is once"
        );
        let disabled = Policy {
            self_service_generation_enabled: false,
            ..Policy::default()
        };
        assert_eq!(
            check_generation_allowed(&disabled, Origin::SelfService),
            Err(GenerationRefused::Disabled(Origin::SelfService))
        );
        assert!(check_generation_allowed(&disabled, Origin::HelpDesk).is_ok());
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

    #[test]
    fn status_precedence() {
        let state = CodeState {
            expires_at: Some(now()),
            max_uses: Some(1),
            use_count: 0,
            revoked: false,
        };
        assert_eq!(
            state.status(now() - Duration::seconds(1)),
            CodeStatus::Active
        );
        assert_eq!(state.status(now()), CodeStatus::Expired);
        let used = CodeState {
            use_count: 1,
            ..state
        };
        assert_eq!(used.status(now()), CodeStatus::Exhausted);
        assert_eq!(used.remaining(), Some(0));
        let revoked = CodeState {
            revoked: true,
            ..used
        };
        assert_eq!(revoked.status(now()), CodeStatus::Revoked);
        let unlimited = CodeState {
            expires_at: None,
            max_uses: None,
            use_count: 99,
            revoked: false,
        };
        assert_eq!(unlimited.status(now()), CodeStatus::Active);
        assert_eq!(unlimited.remaining(), None);
    }
}
