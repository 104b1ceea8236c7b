//! OpenID Connect and OAuth 2.0 over HTTP: discovery, JWKS, the token endpoint, userinfo,
//! `/oauth2/authorize`, the sign-in pages and the end-session endpoint. Handlers parse, call
//! [`crate::service::oauth`] and [`crate::service::signin`], and render; errors are made in
//! [`error`] only.

pub mod error;
pub mod http;
pub mod logout;
pub mod pages;
pub mod signin;
