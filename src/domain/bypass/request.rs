//! What a create request may ask for under the policy: expiry, uses, purpose, a reason,
//! a start time, email.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::{EXPIRES_IN_PARTS, MAX_EXPIRY_MINUTES, MAX_USAGE_LIMIT, Origin, Policy, Purpose};
use super::{boolean, integer, invalid, member};
use crate::domain::scim::{ScimType, ScimViolation};

/// The longest `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// A `startsAt` this many seconds in the past still means "now" (clocks differ).
pub const START_SKEW_SECONDS: i64 = 60;

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
    /// Minutes from the start to the expiry; `None`: never expires.
    pub lifetime_minutes: Option<i64>,
    /// Why the code is given (a ticket, a sentence), trimmed.
    pub reason: Option<String>,
    /// When the code starts to work, if later than now.
    pub starts_at: Option<DateTime<Utc>>,
}

/// Why a code may not be generated for this origin at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GenerationRefused {
    Disabled(Origin),
}

/// The members a create body may have; any other is refused.
pub const CREATE_MEMBERS: [&str; 9] = [
    "schemas",
    "expiresIn",
    "neverExpires",
    "maxUsageCount",
    "unlimitedUsage",
    "notify",
    "purpose",
    "reason",
    "startsAt",
];

/// Parses a create body and checks it against the policy for `origin`.
/// `expiresIn {days, hours, minutes}` or `neverExpires: true` (one is required);
/// `maxUsageCount: N` or `unlimitedUsage: true` (neither: once); `notify: ["email"]`;
/// `reason` (required when the policy says so); `startsAt` (the expiry counts from it).
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
            "unknown member \"{unknown}\"; a bypass code takes expiresIn or neverExpires, maxUsageCount or unlimitedUsage, notify, purpose, reason and startsAt"
        )));
    }
    let (_, max_usage, max_expiry) = policy.limits(origin);
    let who = origin.as_str();
    let reason = parse_reason(object, policy)?;
    let starts_at = parse_starts_at(object, policy, now)?;

    let never = boolean(object, "neverExpires")?.unwrap_or(false);
    let expires_in = member(object, "expiresIn");
    let lifetime_minutes = match (expires_in, never) {
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
            Some(total)
        }
    };
    let expires_at = lifetime_minutes.map(|m| starts_at.unwrap_or(now) + Duration::minutes(m));

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
        lifetime_minutes,
        reason,
        starts_at,
    })
}

/// `reason`: 1 to [`MAX_REASON_CHARS`] characters of text, no control characters; required
/// when the policy says `reasonRequired`.
fn parse_reason(
    object: &serde_json::Map<String, Value>,
    policy: &Policy,
) -> Result<Option<String>, ScimViolation> {
    let reason = match member(object, "reason") {
        None => None,
        Some(value) => {
            let text = value
                .as_str()
                .ok_or_else(|| invalid("\"reason\" must be a string"))?
                .trim();
            let chars = text.chars().count();
            if !(1..=MAX_REASON_CHARS).contains(&chars) {
                return Err(invalid(format!(
                    "\"reason\" must be 1 to {MAX_REASON_CHARS} characters (it has {chars})"
                )));
            }
            if text
                .chars()
                .any(|c| c.is_control() || is_invisible_format(c))
            {
                return Err(invalid(
                    "\"reason\" must be one line of visible text, without control or formatting characters",
                ));
            }
            Some(text.to_owned())
        }
    };
    if reason.is_none() && policy.reason_required {
        return Err(invalid(
            "\"reason\" is required by the policy (reasonRequired): say why this code is given, e.g. the ticket number",
        ));
    }
    Ok(reason)
}

/// Characters that change how text reads without being seen: zero-width ones, direction
/// overrides and isolates, the byte-order mark, the soft hyphen (Unicode format characters).
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// `startsAt`: an RFC 3339 time from now to the policy's `maxStartDelayDays` ahead. A time
/// within the last [`START_SKEW_SECONDS`] (clocks differ) means now.
fn parse_starts_at(
    object: &serde_json::Map<String, Value>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ScimViolation> {
    let Some(value) = member(object, "startsAt") else {
        return Ok(None);
    };
    let at = value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| {
            invalid("\"startsAt\" must be an RFC 3339 time with its offset, e.g. \"2026-12-24T09:00:00Z\"")
        })?;
    if at < now - Duration::seconds(START_SKEW_SECONDS) {
        return Err(invalid(format!(
            "\"startsAt\" ({}) is in the past; leave it out for a code that works now",
            at.to_rfc3339()
        )));
    }
    let days = policy.max_start_delay_days;
    if at > now + Duration::days(days as i64) {
        return Err(invalid(format!(
            "\"startsAt\" is more than {days} days ahead (maxStartDelayDays)"
        )));
    }
    Ok((at > now).then_some(at))
}

/// Whether `origin` may generate codes under this policy.
pub fn check_generation_allowed(policy: &Policy, origin: Origin) -> Result<(), GenerationRefused> {
    if policy.limits(origin).0 {
        Ok(())
    } else {
        Err(GenerationRefused::Disabled(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::domain::bypass::test_now as now;

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
    fn reasons_and_start_times() {
        let r = create(json!({"expiresIn": {"hours": 2}, "reason": "  INC-42 lost phone ", "startsAt": "2026-11-28T12:00:00Z"})).unwrap();
        assert_eq!(r.reason.as_deref(), Some("INC-42 lost phone"));
        let start = now() + Duration::days(1);
        assert_eq!(r.starts_at, Some(start));
        assert_eq!(
            r.expires_at,
            Some(start + Duration::hours(2)),
            "expiry counts from the start"
        );
        assert_eq!(r.lifetime_minutes, Some(120));
        // A start a few seconds ago (clock skew) is now.
        let r = create(json!({"neverExpires": true, "startsAt": "2026-11-27T11:59:30Z"})).unwrap();
        assert_eq!((r.starts_at, r.expires_at), (None, None));
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        for (body, named) in [
            (json!({"neverExpires": true, "reason": ""}), "reason"),
            (json!({"neverExpires": true, "reason": "   "}), "reason"),
            (json!({"neverExpires": true, "reason": long}), "reason"),
            (json!({"neverExpires": true, "reason": "a\nb"}), "reason"),
            (
                json!({"neverExpires": true, "reason": "\u{200B}"}),
                "reason",
            ),
            (
                json!({"neverExpires": true, "reason": "INC-1 \u{202E}gnp.exe"}),
                "reason",
            ),
            (json!({"neverExpires": true, "reason": 5}), "reason"),
            (
                json!({"neverExpires": true, "reason": "a\u{2028}b"}),
                "reason",
            ),
            (
                json!({"neverExpires": true, "reason": "\u{3164}"}),
                "reason",
            ),
            (
                json!({"neverExpires": true, "reason": "INC\u{E0041}"}),
                "reason",
            ),
            (
                json!({"neverExpires": true, "startsAt": "2026-11-27T11:00:00Z"}),
                "past",
            ),
            (
                json!({"neverExpires": true, "startsAt": "2026-12-28T12:00:01Z"}),
                "30 days",
            ),
            (
                json!({"neverExpires": true, "startsAt": "tomorrow"}),
                "startsAt",
            ),
            (
                json!({"neverExpires": true, "startsAt": "2026-11-28T12:00:00"}),
                "startsAt",
            ),
        ] {
            let err = create(body.clone()).unwrap_err();
            assert!(err.detail.contains(named), "{body}: {}", err.detail);
        }
        let strict = Policy {
            reason_required: true,
            max_start_delay_days: 0,
            ..Policy::default()
        };
        let err = parse_create(
            &json!({"neverExpires": true}),
            &strict,
            Origin::HelpDesk,
            now(),
        )
        .unwrap_err();
        assert!(err.detail.contains("reasonRequired"), "{}", err.detail);
        let err = parse_create(
            &json!({"neverExpires": true, "reason": "r", "startsAt": "2026-11-27T12:01:00Z"}),
            &strict,
            Origin::HelpDesk,
            now(),
        )
        .unwrap_err();
        assert!(err.detail.contains("0 days"), "{}", err.detail);
    }
}
