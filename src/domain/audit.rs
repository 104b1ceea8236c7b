//! The audit trail's vocabulary: every event has one stable name, stored and shown as is.

use chrono::{DateTime, Utc};

use super::ids::UserId;
use super::scim::filter::{CompareOp, Filter, Literal};
use super::scim::{ScimType, ScimViolation};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditEvent {
    /// A bypass code was generated.
    Generated,
    Emailed,
    EmailFailed,
    /// A code sent to be emailed did not match the code named (an attempt counted).
    EmailRefused,
    /// A bypass code was accepted at sign-in.
    Used,
    /// A bypass code attempt was refused.
    Failed,
    Revoked,
    TotpEnrollmentStarted,
    TotpEnrolled,
    TotpFailed,
    MfaReset,
    SignedIn,
    PolicyChanged,
    /// A password was set (at creation or later) by provisioning or the command line.
    PasswordSet,
    /// The account was deactivated (`active: false`).
    Deactivated,
    UserDeleted,
    /// A group that grants an administrator role was created, changed or deleted.
    RoleGroupChanged,
    /// A sign-in session ended by the user's choice (sign-out, RP-initiated logout).
    SignedOut,
    /// Every session of the user was ended ("Sign out everywhere").
    SessionsEnded,
    /// A new authenticator replaced the user's one (the code that allowed it, if any).
    AuthenticatorReplaced,
    /// A security alert was emailed to the user (what about, and to whom).
    AlertEmailed,
    /// A security alert could not be emailed (why); the action it reports stood.
    AlertEmailFailed,
    /// A bypass code was requested and waits for a second person (no code exists yet).
    ApprovalRequested,
    /// A second person approved a request: the code was made and emailed to the user.
    Approved,
    /// A second person rejected a request.
    Rejected,
    /// The requester withdrew their request.
    Withdrawn,
}

impl AuditEvent {
    pub const ALL: [Self; 26] = [
        Self::Generated,
        Self::Emailed,
        Self::EmailFailed,
        Self::EmailRefused,
        Self::Used,
        Self::Failed,
        Self::Revoked,
        Self::TotpEnrollmentStarted,
        Self::TotpEnrolled,
        Self::TotpFailed,
        Self::MfaReset,
        Self::SignedIn,
        Self::PolicyChanged,
        Self::PasswordSet,
        Self::Deactivated,
        Self::UserDeleted,
        Self::RoleGroupChanged,
        Self::SignedOut,
        Self::SessionsEnded,
        Self::AuthenticatorReplaced,
        Self::AlertEmailed,
        Self::AlertEmailFailed,
        Self::ApprovalRequested,
        Self::Approved,
        Self::Rejected,
        Self::Withdrawn,
    ];

    /// The stable name: stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generated => "generated",
            Self::Emailed => "emailed",
            Self::EmailFailed => "email_failed",
            Self::EmailRefused => "email_refused",
            Self::Used => "used",
            Self::Failed => "failed",
            Self::Revoked => "revoked",
            Self::TotpEnrollmentStarted => "totp_enrollment_started",
            Self::TotpEnrolled => "totp_enrolled",
            Self::TotpFailed => "totp_failed",
            Self::MfaReset => "mfa_reset",
            Self::SignedIn => "signed_in",
            Self::PolicyChanged => "policy_changed",
            Self::PasswordSet => "password_set",
            Self::Deactivated => "deactivated",
            Self::UserDeleted => "user_deleted",
            Self::RoleGroupChanged => "role_group_changed",
            Self::SignedOut => "signed_out",
            Self::SessionsEnded => "sessions_ended",
            Self::AuthenticatorReplaced => "authenticator_replaced",
            Self::AlertEmailed => "alert_emailed",
            Self::AlertEmailFailed => "alert_email_failed",
            Self::ApprovalRequested => "approval_requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// Whether the event reports an email of a code (sent or not).
    pub fn is_notification(self) -> bool {
        matches!(self, Self::Emailed | Self::EmailFailed)
    }
}

/// What the audit log is searched by (`/AuditEvents`): every given condition holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub event: Option<AuditEvent>,
    pub actor: Option<String>,
    pub user_id: Option<UserId>,
    /// Events at or after this time…
    pub since: Option<DateTime<Utc>>,
    /// …and before this one.
    pub until: Option<DateTime<Utc>>,
}

impl AuditQuery {
    /// The query an `/AuditEvents` filter states: comparisons joined by `and`, on `event`,
    /// `actor` and `userId` (`eq`) and `at` (`gt`, `ge`, `lt`, `le`, RFC 3339).
    pub fn from_filter(filter: &Filter) -> Result<Self, ScimViolation> {
        let mut query = Self::default();
        query.add(filter)?;
        Ok(query)
    }

    fn add(&mut self, filter: &Filter) -> Result<(), ScimViolation> {
        let unsupported = || {
            ScimViolation::new(
                ScimType::InvalidFilter,
                "audit events filter as event, actor or userId eq \"…\", and at gt/ge/lt/le \"<RFC 3339 time>\", joined by and",
            )
        };
        let (path, op, value) = match filter {
            Filter::And(left, right) => {
                self.add(left)?;
                return self.add(right);
            }
            Filter::Compare(path, op, Literal::String(value)) if path.sub_attr.is_none() => {
                (path.attr.to_ascii_lowercase(), *op, value)
            }
            _ => return Err(unsupported()),
        };
        let tick = chrono::Duration::microseconds(1);
        match (path.as_str(), op) {
            ("event", CompareOp::Eq) => {
                self.event = Some(AuditEvent::parse(value).ok_or_else(|| {
                    ScimViolation::new(
                        ScimType::InvalidValue,
                        format!("no audit event is named \"{value}\""),
                    )
                })?);
            }
            ("actor", CompareOp::Eq) => self.actor = Some(value.clone()),
            // Events about no user are stored without one: no user id selects them.
            ("userid", CompareOp::Eq) if !value.is_empty() => {
                self.user_id = Some(UserId::new(value.clone()))
            }
            ("at", CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le) => {
                let time = DateTime::parse_from_rfc3339(value)
                    .map_err(|_| {
                        ScimViolation::new(
                            ScimType::InvalidValue,
                            format!("\"{value}\" is not an RFC 3339 time"),
                        )
                    })?
                    .with_timezone(&Utc);
                match op {
                    CompareOp::Ge => self.since = Some(time),
                    CompareOp::Gt => self.since = Some(time + tick),
                    CompareOp::Lt => self.until = Some(time),
                    _ => self.until = Some(time + tick),
                }
            }
            _ => return Err(unsupported()),
        }
        Ok(())
    }
}

/// One event of the trail, as written and as read back.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// The user the event is about; `None` for events about no user (a policy change, a
    /// role group's change).
    pub user_id: Option<UserId>,
    pub code_id: Option<String>,
    pub event: AuditEvent,
    /// `client:<id>`, `user:<id>` or `system`.
    pub actor: String,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_filters_become_queries() {
        use crate::domain::scim::filter::parse_filter;
        let filter = parse_filter(
            "event eq \"policy_changed\" and actor eq \"user:u1\" and at ge \"2026-12-01T00:00:00Z\" and at lt \"2026-12-02T00:00:00Z\" and userId eq \"u2\"",
        )
        .unwrap();
        let query = AuditQuery::from_filter(&filter).unwrap();
        assert_eq!(query.event, Some(AuditEvent::PolicyChanged));
        assert_eq!(query.actor.as_deref(), Some("user:u1"));
        assert_eq!(query.user_id, Some(UserId::new("u2")));
        assert!(query.since.unwrap() < query.until.unwrap());
        for bad in [
            "event eq \"nope\"",
            "event co \"pol\"",
            "actor eq \"a\" or actor eq \"b\"",
            "at gt \"yesterday\"",
            "detail eq \"x\"",
            "userId eq \"\"",
        ] {
            assert!(
                AuditQuery::from_filter(&parse_filter(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_are_distinct_and_round_trip() {
        let mut names: Vec<_> = AuditEvent::ALL.iter().map(|e| e.as_str()).collect();
        for event in AuditEvent::ALL {
            assert_eq!(AuditEvent::parse(event.as_str()), Some(event));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuditEvent::ALL.len());
        assert_eq!(AuditEvent::parse("Generated"), None, "names are exact");
    }
}
