//! The OIDC sign-in, as data and rules: validating an authorization request (`request`),
//! and the state machine a browser walks through before an authorization code may be issued
//! (`flow`).

mod flow;
mod request;

pub use flow::{Flow, IllegalStep, SecondFactor, Step};
pub use request::{
    AuthRequest, MAX_PARAM_LEN, RedirectError, check_client_redirect, parse_auth_request,
};
