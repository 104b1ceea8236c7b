//! Security alerts to a user by email: their authenticator was replaced, an administrator
//! reset their 2-step verification. An alert never blocks what it reports: a failed send is
//! audited (`alert_email_failed`) and logged, and the action stands.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::context::Context;
use super::{ServiceError, audit};
use crate::domain::audit::AuditEvent;
use crate::domain::bypass::email_recipient;
use crate::domain::ids::UserId;
use crate::domain::repo::UserRepo;
use crate::mail::{AlertMail, Mailer};
use crate::store::Store;

/// What an alert reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alert {
    AuthenticatorReplaced,
    MfaReset,
}

impl Alert {
    fn name(self) -> &'static str {
        match self {
            Self::AuthenticatorReplaced => "authenticator replaced",
            Self::MfaReset => "2-step verification reset",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Self::AuthenticatorReplaced => "Your authenticator app was replaced",
            Self::MfaReset => "Your 2-step verification was reset",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::AuthenticatorReplaced => {
                "A new authenticator app was set up for your account, and the one you had before no longer works. Every other sign-in of yours was ended."
            }
            Self::MfaReset => {
                "An administrator reset the 2-step verification of your account: your authenticator app and your bypass codes no longer work. To set up a new authenticator, sign in with a bypass code from your help desk."
            }
        }
    }

    fn if_not_you(self) -> &'static str {
        match self {
            Self::AuthenticatorReplaced => {
                "contact your help desk at once: someone may have your password and a bypass code. Ask them to reset your 2-step verification and change your password."
            }
            Self::MfaReset => "if you did not ask your help desk for this, contact them at once.",
        }
    }
}

#[derive(Clone)]
pub struct Alerts {
    store: Store,
    mailer: Arc<Mailer>,
    service_name: String,
}

impl Alerts {
    pub fn new(store: Store, mailer: Arc<Mailer>, service_name: String) -> Self {
        Self {
            store,
            mailer,
            service_name,
        }
    }

    /// Emails `alert` about something done at `at` by `ctx` to the user's primary (or only)
    /// address, and audits whether it went.
    pub async fn send(
        &self,
        user_id: &UserId,
        alert: Alert,
        at: DateTime<Utc>,
        ctx: &Context,
    ) -> Result<(), ServiceError> {
        let Some(user) = self.store.get_user(user_id).await? else {
            return Ok(());
        };
        let attributes = &user.attributes;
        let address = ctx.ip.map(|ip| ip.to_string());
        let result = match email_recipient(&attributes.emails) {
            Ok(None) => Err("the user has no email address".to_owned()),
            Err(why) => Err(why.to_owned()),
            Ok(Some(to)) => self
                .mailer
                .send_alert(&AlertMail {
                    to,
                    user_name: &attributes.user_name,
                    service: &self.service_name,
                    subject: alert.subject(),
                    what: alert.what(),
                    at,
                    from_address: address.as_deref(),
                    if_not_you: alert.if_not_you(),
                })
                .await
                .map(|()| to.to_owned())
                .map_err(|e| e.to_string()),
        };
        let (event, detail) = match result {
            Ok(to) => (
                AuditEvent::AlertEmailed,
                format!("{} alert to {to}", alert.name()),
            ),
            Err(why) => {
                tracing::warn!(user_id = %user_id.as_str(), alert = alert.name(), reason = %why, "alert email failed");
                (
                    AuditEvent::AlertEmailFailed,
                    format!("{} alert: {why}", alert.name()),
                )
            }
        };
        audit::record(
            &self.store,
            ctx,
            user_id,
            None,
            event,
            Some(detail),
            Utc::now(),
        )
        .await
    }
}
