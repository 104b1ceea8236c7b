//! sea-orm entities: one module per table.

pub mod oauth_client;
pub mod signing_key;
pub mod user;
pub mod user_email;
