//! The audit trail's vocabulary: every event has one stable name, stored and shown as is.

use chrono::{DateTime, Utc};

use super::ids::UserId;

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
}

impl AuditEvent {
    pub const ALL: [Self; 13] = [
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

/// One event of the trail, as written and as read back.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub user_id: UserId,
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
