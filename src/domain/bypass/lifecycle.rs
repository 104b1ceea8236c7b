//! A code's life: what is stored, and its status at a given time (scheduled, waiting for
//! approval, active, used up, expired, revoked), and why a typed code is refused.

use chrono::{DateTime, Utc};

use super::approval::Approval;
use super::{Origin, Purpose};
use crate::domain::ids::UserId;
use crate::domain::limits::Lock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeStatus {
    /// Approved (or needing no approval) but not yet valid: `startsAt` is still ahead.
    Scheduled,
    /// Requested, waiting for a second person: no code exists yet.
    PendingApproval,
    Active,
    Expired,
    Exhausted,
    Revoked,
}

impl CodeStatus {
    pub const ALL: [Self; 6] = [
        Self::Scheduled,
        Self::PendingApproval,
        Self::Active,
        Self::Expired,
        Self::Exhausted,
        Self::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::PendingApproval => "pendingApproval",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Exhausted => "exhausted",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }

    /// Whether the code still counts toward `maxActive`: it works now or will (scheduled,
    /// or waiting for approval).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Active | Self::Scheduled | Self::PendingApproval)
    }
}

/// The facts about a stored code that decide its status.
#[derive(Clone, Copy, Debug)]
pub struct CodeState {
    /// For a request waiting for approval: when the request lapses.
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub use_count: i64,
    pub revoked: bool,
    pub starts_at: Option<DateTime<Utc>>,
    /// Waiting for a second person's approval.
    pub pending: bool,
}

impl CodeState {
    /// Revoked wins over exhausted, which wins over expired; a live code is waiting for
    /// approval, scheduled, or active.
    pub fn status(&self, now: DateTime<Utc>) -> CodeStatus {
        if self.revoked {
            CodeStatus::Revoked
        } else if self.max_uses.is_some_and(|max| self.use_count >= max) {
            CodeStatus::Exhausted
        } else if self.expires_at.is_some_and(|at| at <= now) {
            CodeStatus::Expired
        } else if self.pending {
            CodeStatus::PendingApproval
        } else if self.starts_at.is_some_and(|at| at > now) {
            CodeStatus::Scheduled
        } else {
            CodeStatus::Active
        }
    }

    pub fn remaining(&self) -> Option<i64> {
        self.max_uses.map(|max| (max - self.use_count).max(0))
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
    /// A scheduled code typed before it starts to work (no use counted).
    NotYet(DateTime<Utc>),
    /// This application does not take bypass codes (`client add --no-bypass-codes`).
    RefusedHere,
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
            Self::NotYet(_) => "scheduled",
            Self::RefusedHere => "refused_by_application",
        }
    }

    /// Whether the typed code was the user's own live code, refused only for when or where it
    /// was typed (not a failed guess).
    pub fn is_right_code(self) -> bool {
        matches!(self, Self::NotYet(_) | Self::EnrolmentOnly)
    }

    /// The refusal for a code found in `status` (which is not active): a code that is still
    /// active when its use could not be recorded was used up by a concurrent attempt. A
    /// request waiting for approval has no code, so nothing typed can be it.
    pub fn for_status(status: CodeStatus, starts_at: Option<DateTime<Utc>>) -> Self {
        match status {
            CodeStatus::Expired => Self::Expired,
            CodeStatus::Revoked => Self::Revoked,
            CodeStatus::PendingApproval => Self::Wrong,
            CodeStatus::Scheduled => starts_at.map_or(Self::Wrong, Self::NotYet),
            CodeStatus::Exhausted | CodeStatus::Active => Self::Exhausted,
        }
    }
}

/// A code to store: only its hash, never the plaintext. A request waiting for approval is
/// stored with a random placeholder hash (no code exists yet, and no typed code can match
/// it) and `expires_at` at the end of its approval window.
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
    pub reason: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    /// `Some(Pending)` for a request waiting for approval.
    pub approval: Option<Approval>,
    /// The lifetime asked for (minutes from the start), kept so an approval counts it from
    /// when the code is made; `None`: never expires.
    pub lifetime_minutes: Option<i64>,
    /// For a request: where the approved code will be emailed, fixed at the request.
    pub send_to: Option<String>,
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
    pub reason: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub approval: Option<Approval>,
    /// Who approved, rejected or withdrew the request, and when.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub lifetime_minutes: Option<i64>,
    pub send_to: Option<String>,
}

impl StoredCode {
    pub fn state(&self) -> CodeState {
        CodeState {
            expires_at: self.expires_at,
            max_uses: self.max_uses,
            use_count: self.use_count,
            revoked: self.revoked_at.is_some(),
            starts_at: self.starts_at,
            pending: self.approval == Some(Approval::Pending),
        }
    }

    /// One of a printable self-service set.
    pub fn is_saved(&self) -> bool {
        self.origin == Origin::SavedSet.as_str()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    use crate::domain::bypass::test_now as now;

    fn state() -> CodeState {
        CodeState {
            expires_at: Some(now()),
            max_uses: Some(1),
            use_count: 0,
            revoked: false,
            starts_at: None,
            pending: false,
        }
    }

    #[test]
    fn status_precedence() {
        let state = state();
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
            ..state
        };
        assert_eq!(unlimited.status(now()), CodeStatus::Active);
        assert_eq!(unlimited.remaining(), None);
    }

    #[test]
    fn scheduled_and_pending_codes_are_live_until_they_lapse() {
        let early = now() - Duration::hours(2);
        let scheduled = CodeState {
            starts_at: Some(now() - Duration::hours(1)),
            ..state()
        };
        assert_eq!(scheduled.status(early), CodeStatus::Scheduled);
        assert_eq!(
            scheduled.status(now() - Duration::minutes(1)),
            CodeStatus::Active
        );
        assert_eq!(scheduled.status(now()), CodeStatus::Expired);
        let pending = CodeState {
            pending: true,
            ..scheduled
        };
        assert_eq!(pending.status(early), CodeStatus::PendingApproval);
        assert_eq!(pending.status(now()), CodeStatus::Expired, "lapsed");
        assert_eq!(
            CodeState {
                revoked: true,
                ..pending
            }
            .status(early),
            CodeStatus::Revoked
        );
        for status in CodeStatus::ALL {
            assert_eq!(CodeStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                status.is_live(),
                !matches!(
                    status,
                    CodeStatus::Expired | CodeStatus::Exhausted | CodeStatus::Revoked
                )
            );
        }
        assert_eq!(
            Rejection::for_status(CodeStatus::Scheduled, Some(now())),
            Rejection::NotYet(now())
        );
        assert_eq!(
            Rejection::for_status(CodeStatus::PendingApproval, None),
            Rejection::Wrong
        );
    }
}
