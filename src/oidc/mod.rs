//! OpenID Connect and OAuth 2.0: signing keys, access tokens, client authentication,
//! discovery and the token endpoint.

pub mod clients;
pub mod grants;
pub mod http;
pub mod keys;
pub mod pages;
pub mod signin;
pub mod tokens;
