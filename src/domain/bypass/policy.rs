//! The bypass-code policy and its API form. "No limit" is said explicitly
//! (`helpDeskMaxUsageUnlimited: true`, …), never by a `null` an SDK may send for "unset":
//! a `null` anywhere is refused, naming the member, and an absent member takes its default,
//! so a client built from an older document keeps working as members are added.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::approval::ApprovalRequired;
use super::{
    MAX_ACTIVE_LIMIT, MAX_CODE_LENGTH, MAX_EXPIRY_MINUTES, MAX_USAGE_LIMIT, MIN_CODE_LENGTH,
    Origin, boolean, integer, invalid,
};
use crate::domain::enrolment::Replacement;
use crate::domain::scim::{ScimType, ScimViolation};

/// The bypass-code policy (mirrors OCI `bypassCodeSettings`). `None` limits mean "no limit":
/// unlimited usage, or codes that never expire, are then allowed. Stored as serde writes it;
/// the API's form ([`Policy::from_json`], [`Policy::to_json`]) says "no limit" with a
/// boolean beside each limit, never with a `null`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Policy {
    pub code_length: u32,
    pub max_active: u32,
    pub help_desk_generation_enabled: bool,
    pub help_desk_max_usage: Option<i64>,
    pub help_desk_max_expiry_minutes: Option<i64>,
    pub self_service_generation_enabled: bool,
    pub self_service_max_usage: Option<i64>,
    pub self_service_max_expiry_minutes: Option<i64>,
    /// How long a sign-in session opened with a bypass code gives single sign-on (0: never).
    pub bypass_session_max_minutes: u32,
    /// After a bypass-code sign-in: offer (or require) setting up a new authenticator.
    pub authenticator_replacement: Replacement,
    /// After a reset, and for an administrator's first authenticator, setting one up takes a
    /// bypass code, not a password alone.
    pub reenrolment_requires_code: bool,
    /// Every code needs a `reason`.
    pub reason_required: bool,
    /// How far ahead `startsAt` may be, in days.
    pub max_start_delay_days: u32,
    /// Which help-desk codes wait for a second person's approval.
    pub approval_required: ApprovalRequired,
    /// Email the user when a code is generated for them (never the code itself).
    pub notify_user_on_issue: bool,
    /// Email the user each time a code is typed to sign them in.
    pub notify_user_on_use: bool,
    /// How many once-codes a printable self-service set has.
    pub self_service_set_size: u32,
}

/// The furthest `startsAt` any policy allows, in days.
pub const MAX_START_DELAY_DAYS: i64 = 365;
/// The largest printable set.
pub const MAX_SET_SIZE: i64 = 20;

/// The longest single sign-on a bypass-code session may be given: a day.
pub const MAX_BYPASS_SESSION_MINUTES: i64 = 24 * 60;

impl Default for Policy {
    fn default() -> Self {
        Self {
            code_length: 12,
            max_active: 5,
            help_desk_generation_enabled: true,
            help_desk_max_usage: None,
            help_desk_max_expiry_minutes: None,
            self_service_generation_enabled: true,
            self_service_max_usage: Some(1),
            self_service_max_expiry_minutes: None,
            bypass_session_max_minutes: 60,
            authenticator_replacement: Replacement::Offered,
            reenrolment_requires_code: true,
            reason_required: false,
            max_start_delay_days: 30,
            approval_required: ApprovalRequired::Unbounded,
            notify_user_on_issue: true,
            notify_user_on_use: true,
            self_service_set_size: 10,
        }
    }
}

/// The limits of the policy, each with the API's names for its number and its "no limit"
/// switch, its largest value and its unit.
const LIMITS: [(&str, i64, &str); 4] = [
    ("helpDeskMaxUsage", MAX_USAGE_LIMIT, ""),
    ("helpDeskMaxExpiryMinutes", MAX_EXPIRY_MINUTES, " minutes"),
    ("selfServiceMaxUsage", MAX_USAGE_LIMIT, ""),
    (
        "selfServiceMaxExpiryMinutes",
        MAX_EXPIRY_MINUTES,
        " minutes",
    ),
];

/// Whether `name` is a member of the API form (ignoring case, as SCIM does).
fn is_member(name: &str) -> bool {
    const OTHERS: [&str; 14] = [
        "schemas",
        "codeLength",
        "maxActive",
        "bypassSessionMaxMinutes",
        "authenticatorReplacement",
        "reenrolmentRequiresCode",
        "helpDeskGenerationEnabled",
        "selfServiceGenerationEnabled",
        "reasonRequired",
        "maxStartDelayDays",
        "approvalRequired",
        "notifyUserOnIssue",
        "notifyUserOnUse",
        "selfServiceSetSize",
    ];
    let known = |n: &str| n.eq_ignore_ascii_case(name);
    OTHERS.iter().any(|n| known(n))
        || LIMITS
            .iter()
            .any(|(n, _, _)| known(n) || known(&unlimited_member(n)))
}

/// The name of the switch that lifts `limit`.
pub fn unlimited_member(limit: &str) -> String {
    format!("{limit}Unlimited")
}

impl Policy {
    /// Parses and validates a full policy (PUT replaces every field). Absent members take
    /// their defaults; `{limit}Unlimited: true` lifts a limit; a `null` is refused.
    pub fn from_json(body: &Value) -> Result<Self, ScimViolation> {
        let object = body.as_object().ok_or_else(|| {
            ScimViolation::new(
                ScimType::InvalidSyntax,
                "the request body must be a JSON object",
            )
        })?;
        if let Some(name) = object.keys().find(|k| !is_member(k)) {
            return Err(invalid(format!(
                "\"{name}\" is not a member of BypassCodeSettings (a misspelt limit would otherwise be left at its default)"
            )));
        }
        if let Some((name, _)) = object.iter().find(|(_, v)| v.is_null()) {
            return Err(invalid(format!(
                "\"{name}\" must not be null: leave a member out for its default, and say \"no limit\" with {{limit}}Unlimited: true"
            )));
        }
        // `schemas` says nothing a PUT needs, but must be what the document says it is.
        if let Some(schemas) = super::member(object, "schemas")
            && !schemas
                .as_array()
                .is_some_and(|list| list.iter().all(Value::is_string))
        {
            return Err(invalid("\"schemas\" must be an array of schema URNs"));
        }
        let defaults = Self::default();
        let code_length = integer(object, "codeLength")?.unwrap_or(defaults.code_length as i64);
        if !(MIN_CODE_LENGTH as i64..=MAX_CODE_LENGTH as i64).contains(&code_length) {
            return Err(invalid(format!(
                "\"codeLength\" must be between {MIN_CODE_LENGTH} and {MAX_CODE_LENGTH}"
            )));
        }
        let max_active = integer(object, "maxActive")?.unwrap_or(defaults.max_active as i64);
        if !(1..=MAX_ACTIVE_LIMIT as i64).contains(&max_active) {
            return Err(invalid(format!(
                "\"maxActive\" must be between 1 and {MAX_ACTIVE_LIMIT}"
            )));
        }
        let bypass_session = integer(object, "bypassSessionMaxMinutes")?
            .unwrap_or(defaults.bypass_session_max_minutes as i64);
        if !(0..=MAX_BYPASS_SESSION_MINUTES).contains(&bypass_session) {
            return Err(invalid(format!(
                "\"bypassSessionMaxMinutes\" must be between 0 (no single sign-on) and {MAX_BYPASS_SESSION_MINUTES}"
            )));
        }
        let authenticator_replacement = match super::member(object, "authenticatorReplacement") {
            None => defaults.authenticator_replacement,
            Some(value) => value.as_str().and_then(Replacement::parse).ok_or_else(|| {
                invalid("\"authenticatorReplacement\" must be \"off\", \"offered\" or \"required\"")
            })?,
        };
        let approval_required = match super::member(object, "approvalRequired") {
            None => defaults.approval_required,
            Some(value) => value
                .as_str()
                .and_then(ApprovalRequired::parse)
                .ok_or_else(|| {
                    invalid("\"approvalRequired\" must be \"never\", \"unbounded\" or \"always\"")
                })?,
        };
        let start_delay =
            integer(object, "maxStartDelayDays")?.unwrap_or(defaults.max_start_delay_days as i64);
        if !(0..=MAX_START_DELAY_DAYS).contains(&start_delay) {
            return Err(invalid(format!(
                "\"maxStartDelayDays\" must be between 0 (no scheduled codes) and {MAX_START_DELAY_DAYS}"
            )));
        }
        let set_size =
            integer(object, "selfServiceSetSize")?.unwrap_or(defaults.self_service_set_size as i64);
        if !(1..=MAX_SET_SIZE).contains(&set_size) {
            return Err(invalid(format!(
                "\"selfServiceSetSize\" must be between 1 and {MAX_SET_SIZE}"
            )));
        }
        let flag = |name: &str, default: bool| -> Result<bool, ScimViolation> {
            Ok(boolean(object, name)?.unwrap_or(default))
        };
        let [hd_usage, hd_expiry, ss_usage, ss_expiry] = LIMITS;
        Ok(Self {
            code_length: code_length as u32,
            max_active: max_active as u32,
            help_desk_generation_enabled: boolean(object, "helpDeskGenerationEnabled")?
                .unwrap_or(defaults.help_desk_generation_enabled),
            help_desk_max_usage: limit(object, hd_usage, defaults.help_desk_max_usage)?,
            help_desk_max_expiry_minutes: limit(
                object,
                hd_expiry,
                defaults.help_desk_max_expiry_minutes,
            )?,
            self_service_generation_enabled: boolean(object, "selfServiceGenerationEnabled")?
                .unwrap_or(defaults.self_service_generation_enabled),
            self_service_max_usage: limit(object, ss_usage, defaults.self_service_max_usage)?,
            self_service_max_expiry_minutes: limit(
                object,
                ss_expiry,
                defaults.self_service_max_expiry_minutes,
            )?,
            bypass_session_max_minutes: bypass_session as u32,
            authenticator_replacement,
            reenrolment_requires_code: boolean(object, "reenrolmentRequiresCode")?
                .unwrap_or(defaults.reenrolment_requires_code),
            reason_required: flag("reasonRequired", defaults.reason_required)?,
            max_start_delay_days: start_delay as u32,
            approval_required,
            notify_user_on_issue: flag("notifyUserOnIssue", defaults.notify_user_on_issue)?,
            notify_user_on_use: flag("notifyUserOnUse", defaults.notify_user_on_use)?,
            self_service_set_size: set_size as u32,
        })
    }

    /// The API's form: every member present, each limit as a number or lifted by its switch.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "codeLength": self.code_length,
            "maxActive": self.max_active,
            "helpDeskGenerationEnabled": self.help_desk_generation_enabled,
            "selfServiceGenerationEnabled": self.self_service_generation_enabled,
            "bypassSessionMaxMinutes": self.bypass_session_max_minutes,
            "authenticatorReplacement": self.authenticator_replacement.as_str(),
            "reenrolmentRequiresCode": self.reenrolment_requires_code,
            "reasonRequired": self.reason_required,
            "maxStartDelayDays": self.max_start_delay_days,
            "approvalRequired": self.approval_required.as_str(),
            "notifyUserOnIssue": self.notify_user_on_issue,
            "notifyUserOnUse": self.notify_user_on_use,
            "selfServiceSetSize": self.self_service_set_size,
        });
        let values = [
            self.help_desk_max_usage,
            self.help_desk_max_expiry_minutes,
            self.self_service_max_usage,
            self.self_service_max_expiry_minutes,
        ];
        for ((name, _, _), value) in LIMITS.iter().zip(values) {
            body[unlimited_member(name)] = json!(value.is_none());
            if let Some(value) = value {
                body[*name] = json!(value);
            }
        }
        body
    }

    pub(super) fn limits(&self, origin: Origin) -> (bool, Option<i64>, Option<i64>) {
        match origin {
            Origin::HelpDesk => (
                self.help_desk_generation_enabled,
                self.help_desk_max_usage,
                self.help_desk_max_expiry_minutes,
            ),
            Origin::SelfService | Origin::SavedSet => (
                self.self_service_generation_enabled,
                self.self_service_max_usage,
                self.self_service_max_expiry_minutes,
            ),
        }
    }
}

/// One limit from its number and its switch: the number, `None` when lifted, or the default.
fn limit(
    object: &Map<String, Value>,
    (name, max, unit): (&str, i64, &str),
    default: Option<i64>,
) -> Result<Option<i64>, ScimViolation> {
    let switch = unlimited_member(name);
    let value = integer(object, name)?;
    match (boolean(object, &switch)?, value) {
        (Some(true), Some(_)) => Err(invalid(format!(
            "give either \"{name}\" or \"{switch}\": true, not both"
        ))),
        (Some(true), None) => Ok(None),
        (_, Some(v)) if !(1..=max).contains(&v) => Err(invalid(format!(
            "\"{name}\" must be between 1 and {max}{unit} (for no limit, send \"{switch}\": true)"
        ))),
        (_, Some(v)) => Ok(Some(v)),
        (None, None) => Ok(default),
        (Some(false), None) => default.map(Some).ok_or_else(|| {
            invalid(format!(
                "\"{switch}\" is false: give \"{name}\", the limit to apply"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_members_take_defaults_and_null_is_refused_by_name() {
        assert_eq!(Policy::from_json(&json!({})).unwrap(), Policy::default());
        for (body, named) in [
            (json!({"helpDeskMaxUsage": null}), "helpDeskMaxUsage"),
            (
                json!({"selfServiceMaxExpiryMinutes": null}),
                "selfServiceMaxExpiryMinutes",
            ),
            (json!({"codeLength": null}), "codeLength"),
            (
                json!({"helpDeskMaxUsageUnlimited": null}),
                "helpDeskMaxUsageUnlimited",
            ),
        ] {
            let err = Policy::from_json(&body).unwrap_err();
            assert!(err.detail.contains(named), "{body}: {}", err.detail);
        }
    }

    #[test]
    fn no_limit_is_said_with_its_switch() {
        let p = Policy::from_json(&json!({
            "codeLength": 16, "helpDeskMaxUsage": 10, "selfServiceMaxUsageUnlimited": true,
            "helpDeskMaxExpiryMinutesUnlimited": false, "helpDeskMaxExpiryMinutes": 60,
        }))
        .unwrap();
        assert_eq!(
            (
                p.code_length,
                p.help_desk_max_usage,
                p.self_service_max_usage,
                p.help_desk_max_expiry_minutes
            ),
            (16, Some(10), None, Some(60))
        );
        // The API form reads back as the same policy.
        assert_eq!(Policy::from_json(&p.to_json()).unwrap(), p);
        assert_eq!(p.to_json()["selfServiceMaxUsageUnlimited"], true);
        assert!(p.to_json().get("selfServiceMaxUsage").is_none());
        for bad in [
            json!({"codeLength": 7}),
            json!({"codeLength": 21}),
            json!({"maxActive": 0}),
            json!({"helpDeskMaxUsage": 0}),
            json!({"selfServiceMaxExpiryMinutes": -5}),
            json!({"helpDeskGenerationEnabled": "yes"}),
            json!({"helpDeskMaxUsage": 3, "helpDeskMaxUsageUnlimited": true}),
            json!({"helpDeskMaxUsageUnlimited": false}),
            json!({"helpDeskMaxUsageUnlimited": "yes"}),
            json!({"helpDeskMaxUses": 3}),
            json!({"schemas": [null]}),
            json!({"schemas": "urn:x"}),
            json!({"bypassSessionMaxMinutes": -1}),
            json!({"bypassSessionMaxMinutes": 1441}),
            json!({"authenticatorReplacement": "sometimes"}),
            json!({"authenticatorReplacement": true}),
            json!({"reenrolmentRequiresCode": "no"}),
            json!({"approvalRequired": "sometimes"}),
            json!({"approvalRequired": 1}),
            json!({"maxStartDelayDays": -1}),
            json!({"maxStartDelayDays": 366}),
            json!({"selfServiceSetSize": 0}),
            json!({"selfServiceSetSize": 21}),
            json!({"notifyUserOnUse": "yes"}),
            json!({"reasonRequired": 1}),
            json!([]),
        ] {
            assert!(Policy::from_json(&bad).is_err(), "{bad}");
        }
        let p = Policy::from_json(&json!({
            "authenticatorReplacement": "required", "reenrolmentRequiresCode": false,
        }))
        .unwrap();
        assert_eq!(p.authenticator_replacement, Replacement::Required);
        assert!(!p.reenrolment_requires_code);
        let p = Policy::from_json(&json!({
            "approvalRequired": "always", "reasonRequired": true, "maxStartDelayDays": 0,
            "notifyUserOnIssue": false, "notifyUserOnUse": false, "selfServiceSetSize": 20,
        }))
        .unwrap();
        assert_eq!(p.approval_required, ApprovalRequired::Always);
        assert_eq!(Policy::from_json(&p.to_json()).unwrap(), p);
        assert_eq!(Policy::from_json(&p.to_json()).unwrap(), p);
        // Unlimited false with a finite default keeps the default.
        let p = Policy::from_json(&json!({"selfServiceMaxUsageUnlimited": false})).unwrap();
        assert_eq!(p.self_service_max_usage, Some(1));
    }
}
