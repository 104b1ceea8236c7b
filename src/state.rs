//! What every request handler may use: the services, and nothing below them (no store, no
//! counters). Built by `app::build_state`; imports no handler.

use std::sync::atomic::AtomicBool;

use crate::service::audit::AuditLog;
use crate::service::bypass::BypassCodeService;
use crate::service::console::ConsoleService;
use crate::service::groups::GroupService;
use crate::service::health::Health;
use crate::service::logout::LogoutService;
use crate::service::mfa::MfaService;
use crate::service::oauth::OAuthService;
use crate::service::sessions::SessionService;
use crate::service::signin::SignInService;
use crate::service::users::UserService;

pub struct AppState {
    pub issuer: String,
    pub oauth: OAuthService,
    pub users: UserService,
    pub groups: GroupService,
    pub mfa: MfaService,
    pub bypass: BypassCodeService,
    pub signin: SignInService,
    pub console: ConsoleService,
    pub sessions: SessionService,
    pub logout: LogoutService,
    pub audit: AuditLog,
    pub health: Health,
    /// Set when a shutdown begins: `/readyz` answers 503 so balancers move traffic away.
    pub draining: AtomicBool,
}

impl AppState {
    /// The base URL of the SCIM API.
    pub fn scim_base(&self) -> String {
        format!("{}/scim/v2", self.issuer)
    }
}
