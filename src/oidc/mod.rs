//! OpenID Connect and OAuth 2.0 over HTTP: discovery, JWKS, the token endpoint, userinfo,
//! `/oauth2/authorize` and the sign-in pages. Handlers parse, call
//! [`crate::service::oauth`] and [`crate::service::signin`], and render; errors are made in
//! [`error`] only.

pub mod error;
pub mod http;
pub mod pages;
pub mod signin;
