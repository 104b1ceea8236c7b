//! sea-orm entities: one module per table.

pub mod audit_event;
pub mod bypass_code;
pub mod grant;
pub mod group_member;
pub mod oauth_client;
pub mod refresh_token;
pub mod scim_group;
pub mod setting;
pub mod sign_in_session;
pub mod signing_key;
pub mod user;
pub mod user_email;
pub mod user_mfa;
