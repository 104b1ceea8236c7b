//! Two-person approval: which codes the policy holds for a second person, and who may
//! decide a request. Who holds the power to approve at all (the scope
//! `bypass_codes:approve`, the security-administrator role) is [`crate::domain::access`]'s
//! decision; this is the part about the request itself.

use chrono::{DateTime, Duration, Utc};

use super::{CodeRequest, CodeStatus, Origin, Policy, StoredCode};

/// How long a request waits for a second person before it lapses (`expired`).
pub const APPROVAL_WINDOW_HOURS: i64 = 24;

pub fn approval_deadline(requested_at: DateTime<Utc>) -> DateTime<Utc> {
    requested_at + Duration::hours(APPROVAL_WINDOW_HOURS)
}

/// Which help-desk codes need a second person (policy `approvalRequired`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ApprovalRequired {
    Never,
    /// A code that never expires, has unlimited uses, or is for a holder of an
    /// administrator role: the codes that open an account for long, or open a powerful one.
    #[default]
    Unbounded,
    Always,
}

impl ApprovalRequired {
    pub const ALL: [Self; 3] = [Self::Never, Self::Unbounded, Self::Always];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Unbounded => "unbounded",
            Self::Always => "always",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// Where a request for approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    Pending,
    Approved,
    Rejected,
    Withdrawn,
}

impl Approval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Approved,
            Self::Rejected,
            Self::Withdrawn,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// Whether this request must wait for a second person. Only the help desk's codes do: a
/// self-service code is the user's own, made with their own authenticator.
pub fn needs_approval(
    policy: ApprovalRequired,
    origin: Origin,
    request: &CodeRequest,
    target_is_administrator: bool,
) -> bool {
    if origin != Origin::HelpDesk {
        return false;
    }
    match policy {
        ApprovalRequired::Never => false,
        ApprovalRequired::Always => true,
        ApprovalRequired::Unbounded => {
            request.lifetime_minutes.is_none()
                || request.max_uses.is_none()
                || target_is_administrator
        }
    }
}

/// Why a request cannot be decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionRefused {
    /// The requester approving their own request.
    OwnRequest,
    /// Not a request, or one already decided (its status now).
    NotPending(CodeStatus),
    /// The request was not approved within [`APPROVAL_WINDOW_HOURS`].
    Lapsed,
    /// The user's email address is not the one the request named: the code would go
    /// somewhere the requester may have chosen.
    AddressChanged,
    /// The policy no longer allows the code asked for (why).
    NoLongerAllowed(&'static str),
}

impl DecisionRefused {
    pub fn message(self) -> String {
        match self {
            Self::OwnRequest => "you requested this bypass code: another person with bypass_codes:approve must approve it (two-person rule)".into(),
            Self::NotPending(status) => format!(
                "this bypass code is not waiting for approval (it is {})",
                status.as_str()
            ),
            Self::Lapsed => format!(
                "the request was not approved within {APPROVAL_WINDOW_HOURS} hours and has expired; ask for a new code"
            ),
            Self::AddressChanged => "the user's email address changed since the code was requested; it is not sent to the new one: reject this request and ask for a new code".into(),
            Self::NoLongerAllowed(why) => format!(
                "the policy changed since the request: {why}; reject it and ask for a code the policy allows"
            ),
        }
    }
}

/// What a `DELETE …/approval` does: the requester withdraws, anyone else rejects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancel {
    Withdraw,
    Reject,
}

impl Cancel {
    pub fn approval(self) -> Approval {
        match self {
            Self::Withdraw => Approval::Withdrawn,
            Self::Reject => Approval::Rejected,
        }
    }
}

/// Whether the request is still open at `now`.
fn open(code: &StoredCode, now: DateTime<Utc>) -> Result<(), DecisionRefused> {
    match code.state().status(now) {
        CodeStatus::PendingApproval => Ok(()),
        CodeStatus::Expired if code.approval == Some(Approval::Pending) => {
            Err(DecisionRefused::Lapsed)
        }
        other => Err(DecisionRefused::NotPending(other)),
    }
}

/// May `actor` (an actor label: `client:<id>`, `user:<id>`) approve this request now?
pub fn check_approval(
    code: &StoredCode,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), DecisionRefused> {
    open(code, now)?;
    if code.created_by == actor {
        return Err(DecisionRefused::OwnRequest);
    }
    Ok(())
}

/// What cancelling the request by `actor` is, if it is still open.
pub fn cancellation(
    code: &StoredCode,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Cancel, DecisionRefused> {
    open(code, now)?;
    Ok(if code.created_by == actor {
        Cancel::Withdraw
    } else {
        Cancel::Reject
    })
}

/// Whether the code may still be made and sent: the address the request named is still the
/// user's, and the policy in force still allows what it asks for.
pub fn check_still_valid(
    code: &StoredCode,
    recipient: Option<&str>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<(), DecisionRefused> {
    let same = match (code.send_to.as_deref(), recipient) {
        (Some(named), Some(current)) => named.eq_ignore_ascii_case(current),
        _ => false,
    };
    if !same {
        return Err(DecisionRefused::AddressChanged);
    }
    if policy.reason_required && code.reason.is_none() {
        return Err(DecisionRefused::NoLongerAllowed("a reason is now required"));
    }
    let latest = now + Duration::days(policy.max_start_delay_days as i64);
    if code.starts_at.is_some_and(|at| at > latest) {
        return Err(DecisionRefused::NoLongerAllowed(
            "the start is further ahead than it allows",
        ));
    }
    let origin = Origin::parse(&code.origin).unwrap_or(Origin::HelpDesk);
    let (enabled, max_uses, max_minutes) = policy.limits(origin);
    if !enabled {
        return Err(DecisionRefused::NoLongerAllowed(
            "generation of these codes is disabled",
        ));
    }
    let too_long = match (code.lifetime_minutes, max_minutes) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(asked), Some(max)) => asked > max,
    };
    if too_long {
        return Err(DecisionRefused::NoLongerAllowed(
            "the code would live longer than it allows",
        ));
    }
    let too_many = match (code.max_uses, max_uses) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(asked), Some(max)) => asked > max,
    };
    if too_many {
        return Err(DecisionRefused::NoLongerAllowed(
            "the code would have more uses than it allows",
        ));
    }
    Ok(())
}

/// When an approved code expires: its lifetime counted from when it starts to work (the
/// approval, or `startsAt` if that is later).
pub fn approved_expiry(code: &StoredCode, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let start = code.starts_at.filter(|s| *s > now).unwrap_or(now);
    code.lifetime_minutes.map(|m| start + Duration::minutes(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::bypass::Purpose;
    use crate::domain::ids::UserId;

    use crate::domain::bypass::test_now as now;

    fn request(lifetime: Option<i64>, uses: Option<i64>) -> CodeRequest {
        CodeRequest {
            expires_at: lifetime.map(|m| now() + Duration::minutes(m)),
            lifetime_minutes: lifetime,
            max_uses: uses,
            notify_email: false,
            purpose: Purpose::SignIn,
            reason: None,
            starts_at: None,
        }
    }

    fn pending(by: &str) -> StoredCode {
        StoredCode {
            id: "c".into(),
            user_id: UserId::new("u"),
            code_hash: vec![0; 32],
            origin: "helpDesk".into(),
            created_by: by.into(),
            client_id: None,
            expires_at: Some(approval_deadline(now())),
            max_uses: Some(1),
            use_count: 0,
            last_used_at: None,
            revoked_at: None,
            revoked_by: None,
            created_at: now(),
            purpose: Purpose::SignIn,
            reason: Some("ticket 1".into()),
            starts_at: None,
            approval: Some(Approval::Pending),
            decided_by: None,
            decided_at: None,
            lifetime_minutes: Some(60),
            send_to: Some("u@example.com".into()),
        }
    }

    #[test]
    fn the_policy_says_which_help_desk_codes_wait() {
        use ApprovalRequired::*;
        let bounded = request(Some(60), Some(1));
        let forever = request(None, Some(1));
        let unlimited = request(Some(60), None);
        let help = Origin::HelpDesk;
        assert!(!needs_approval(Unbounded, help, &bounded, false));
        assert!(needs_approval(Unbounded, help, &forever, false));
        assert!(needs_approval(Unbounded, help, &unlimited, false));
        assert!(needs_approval(Unbounded, help, &bounded, true), "admin");
        assert!(needs_approval(Always, help, &bounded, false));
        assert!(!needs_approval(Never, help, &forever, true));
        assert!(!needs_approval(
            Always,
            Origin::SelfService,
            &forever,
            false
        ));
        for a in ApprovalRequired::ALL {
            assert_eq!(ApprovalRequired::parse(a.as_str()), Some(a));
        }
    }

    #[test]
    fn only_someone_else_approves_and_only_while_the_request_is_open() {
        let code = pending("client:desk");
        assert_eq!(
            check_approval(&code, "client:desk", now()),
            Err(DecisionRefused::OwnRequest)
        );
        assert_eq!(check_approval(&code, "user:sec", now()), Ok(()));
        let lapsed = now() + Duration::hours(APPROVAL_WINDOW_HOURS);
        assert_eq!(
            check_approval(&code, "user:sec", lapsed),
            Err(DecisionRefused::Lapsed)
        );
        let approved = StoredCode {
            approval: Some(Approval::Approved),
            expires_at: None,
            ..code.clone()
        };
        assert_eq!(
            check_approval(&approved, "user:sec", now()),
            Err(DecisionRefused::NotPending(CodeStatus::Active))
        );
        assert_eq!(
            cancellation(&code, "client:desk", now()),
            Ok(Cancel::Withdraw)
        );
        assert_eq!(cancellation(&code, "user:sec", now()), Ok(Cancel::Reject));
        let rejected = StoredCode {
            revoked_at: Some(now()),
            approval: Some(Approval::Rejected),
            ..code
        };
        assert_eq!(
            cancellation(&rejected, "user:sec", now()),
            Err(DecisionRefused::NotPending(CodeStatus::Revoked))
        );
    }

    #[test]
    fn an_approval_sends_only_to_the_address_named_and_only_what_the_policy_allows_now() {
        let code = pending("client:desk");
        let policy = Policy::default();
        let check_still_valid = |code: &StoredCode, to: Option<&str>, policy: &Policy| {
            super::check_still_valid(code, to, policy, now())
        };
        let unnamed = StoredCode {
            send_to: None,
            ..code.clone()
        };
        assert_eq!(
            check_still_valid(&unnamed, Some("u@example.com"), &policy),
            Err(DecisionRefused::AddressChanged)
        );
        let strict = Policy {
            reason_required: true,
            ..Policy::default()
        };
        let no_reason = StoredCode {
            reason: None,
            ..code.clone()
        };
        assert!(check_still_valid(&no_reason, Some("u@example.com"), &strict).is_err());
        assert_eq!(
            check_still_valid(&code, Some("u@example.com"), &strict),
            Ok(())
        );
        let later = StoredCode {
            starts_at: Some(now() + Duration::days(10)),
            ..code.clone()
        };
        let soon_only = Policy {
            max_start_delay_days: 7,
            ..Policy::default()
        };
        assert!(check_still_valid(&later, Some("u@example.com"), &soon_only).is_err());
        assert_eq!(
            check_still_valid(&later, Some("u@example.com"), &policy),
            Ok(())
        );
        assert_eq!(
            check_still_valid(&code, Some("U@example.com"), &policy),
            Ok(())
        );
        assert_eq!(
            check_still_valid(&code, Some("attacker@example.net"), &policy),
            Err(DecisionRefused::AddressChanged)
        );
        assert_eq!(
            check_still_valid(&code, None, &policy),
            Err(DecisionRefused::AddressChanged)
        );
        let off = Policy {
            help_desk_generation_enabled: false,
            ..Policy::default()
        };
        assert!(matches!(
            check_still_valid(&code, Some("u@example.com"), &off),
            Err(DecisionRefused::NoLongerAllowed(_))
        ));
        let capped = Policy {
            help_desk_max_expiry_minutes: Some(30),
            ..Policy::default()
        };
        assert!(check_still_valid(&code, Some("u@example.com"), &capped).is_err());
        let forever = StoredCode {
            lifetime_minutes: None,
            ..code.clone()
        };
        let capped = Policy {
            help_desk_max_expiry_minutes: Some(600),
            ..Policy::default()
        };
        assert!(check_still_valid(&forever, Some("u@example.com"), &capped).is_err());
        let once = Policy {
            help_desk_max_usage: Some(1),
            ..Policy::default()
        };
        assert_eq!(
            check_still_valid(&code, Some("u@example.com"), &once),
            Ok(())
        );
        let unlimited = StoredCode {
            max_uses: None,
            ..code
        };
        assert!(check_still_valid(&unlimited, Some("u@example.com"), &once).is_err());
    }

    #[test]
    fn an_approved_code_lives_its_lifetime_from_when_it_starts() {
        let code = pending("client:desk");
        let later = now() + Duration::hours(5);
        assert_eq!(
            approved_expiry(&code, later),
            Some(later + Duration::minutes(60))
        );
        let start = now() + Duration::days(2);
        let scheduled = StoredCode {
            starts_at: Some(start),
            ..code.clone()
        };
        assert_eq!(
            approved_expiry(&scheduled, later),
            Some(start + Duration::minutes(60))
        );
        let forever = StoredCode {
            lifetime_minutes: None,
            ..code
        };
        assert_eq!(approved_expiry(&forever, later), None);
    }
}
