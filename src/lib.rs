//! bypass-idp: an OpenID Connect identity provider with SCIM 2.0 provisioning and MFA bypass codes.

pub mod app;
pub mod config;
pub mod counters;
pub mod domain;
pub mod edge;
pub mod mail;
pub mod oidc;
pub mod openapi;
pub mod ops;
pub mod scim;
pub mod service;
pub mod state;
pub mod store;
pub mod web;
