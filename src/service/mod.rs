//! Services: the operations the HTTP handlers and the CLI call. They combine the pure domain
//! with the store and the counters, and return [`ServiceError`].

pub mod access;
pub mod alerts;
pub mod audit;
pub mod bypass;
pub mod console;
pub mod context;
pub mod events;
pub mod groups;
pub mod health;
pub mod logout;
pub mod mfa;
pub mod oauth;
pub mod passwords;
pub mod policy;
pub mod roles;
pub mod sealing;
pub mod sessions;
pub mod signin;
pub mod throttle;
pub mod users;

use crate::domain::scim::ScimViolation;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] ScimViolation),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the resource changed since the version the client named")]
    VersionMismatch,
    /// The request conflicts with the resource's state (e.g. enrolling twice).
    #[error("{0}")]
    Conflict(String),
    /// Policy forbids the operation for this caller.
    #[error("{0}")]
    Forbidden(String),
    /// Too many attempts: try again after this long (429).
    #[error("{0}")]
    TooMany(String, std::time::Duration),
    /// A dependency cannot take the request now (the in-process store is full): 503.
    #[error("{0}")]
    Unavailable(String),
    /// Too many password and code checks are queued: 503 with `Retry-After`; nothing of the
    /// request was done.
    #[error("the server is busy; try again in a moment")]
    Busy(std::time::Duration),
    /// A failure of ours (the database, a worker thread, corrupt stored data): logged with
    /// its cause, never shown.
    #[error(transparent)]
    Internal(#[from] Failure),
}

/// What failed, and the error that made it fail.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {cause}")]
pub struct Failure {
    pub what: &'static str,
    #[source]
    pub cause: Box<dyn std::error::Error + Send + Sync>,
}

/// A state the code should never reach.
#[derive(Debug, thiserror::Error)]
#[error("invariant broken")]
pub struct Bug;

/// A failure whose cause carries nothing more to say (e.g. ring's `Unspecified`).
#[derive(Debug, thiserror::Error)]
#[error("failed")]
pub struct Unspecified;

impl ServiceError {
    /// A failure of ours: `what` was being done when `cause` happened.
    pub fn internal(
        what: &'static str,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Internal(Failure {
            what,
            cause: cause.into(),
        })
    }

    /// `what` failed, and there is nothing more to say about why.
    pub fn failed(what: &'static str) -> Self {
        Self::internal(what, Unspecified)
    }

    /// A broken invariant (`what` says which).
    pub fn bug(what: &'static str) -> Self {
        Self::internal(what, Bug)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::Invalid(ScimViolation::new(
            crate::domain::scim::ScimType::InvalidValue,
            detail,
        ))
    }
}

impl From<crate::counters::CounterError> for ServiceError {
    fn from(err: crate::counters::CounterError) -> Self {
        match err {
            crate::counters::CounterError::Full => {
                Self::Unavailable("too many sign-ins are in progress; try again in a minute".into())
            }
            crate::counters::CounterError::Backend(reason) => {
                crate::service::events::dependency_error("redis");
                tracing::error!(error = %reason, "redis failed");
                Self::Unavailable("a backing service is unavailable; try again shortly".into())
            }
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound("resource"),
            StoreError::VersionMismatch => Self::VersionMismatch,
            other if other.is_unstorable_text() => {
                Self::invalid("text must not contain the NUL character (U+0000)")
            }
            other if other.is_unavailable() => {
                crate::service::events::dependency_error("database");
                tracing::error!(error = %other, "database unavailable");
                Self::Unavailable("the database is unavailable; try again shortly".into())
            }
            other => {
                crate::service::events::dependency_error("database");
                Self::internal("database", other)
            }
        }
    }
}
