//! Pure domain logic: identifiers, secrets, scopes and the SCIM user model. No I/O here.

pub mod access;
pub mod address;
pub mod audit;
pub mod bypass;
pub mod clock;
pub mod enrolment;
pub mod ids;
pub mod limits;
pub mod methods;
pub mod oauth;
pub mod repo;
pub mod roles;
pub mod scim;
pub mod scope;
pub mod secret;
pub mod session;
pub mod signin;
pub mod totp;
