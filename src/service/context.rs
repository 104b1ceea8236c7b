//! Who is acting, from where, and with what authority: recorded with every audit event and
//! handed to [`crate::domain::access::decide`] by the services.

use std::net::IpAddr;

use crate::domain::ids::{ClientId, UserId};
use crate::domain::scope::ScopeSet;

#[derive(Clone, Debug)]
pub enum Actor {
    Client(ClientId),
    User(UserId),
    /// The command line, run by an operator.
    System,
    /// A browser on the sign-in pages, before anyone is signed in: no authority at all.
    Anonymous,
}

#[derive(Clone, Debug)]
pub struct Context {
    pub actor: Actor,
    /// The OAuth client the request came through, if any.
    pub client_id: Option<ClientId>,
    pub ip: Option<IpAddr>,
    /// The scopes of the token or console sign-in the request came with (none for the
    /// command line and the sign-in pages).
    pub scopes: ScopeSet,
    /// How the acting person signed in (RFC 8176), for a person.
    pub amr: Vec<String>,
}

impl Context {
    pub fn client(client_id: ClientId, ip: Option<IpAddr>) -> Self {
        Self {
            actor: Actor::Client(client_id.clone()),
            client_id: Some(client_id),
            ip,
            scopes: ScopeSet::default(),
            amr: Vec::new(),
        }
    }

    pub fn user(user_id: UserId, client_id: Option<ClientId>, ip: Option<IpAddr>) -> Self {
        Self {
            actor: Actor::User(user_id),
            client_id,
            ip,
            scopes: ScopeSet::default(),
            amr: Vec::new(),
        }
    }

    /// The authority the request carries: its token's (or console session's) scopes and,
    /// for a person, how they signed in.
    pub fn with_authority(mut self, scopes: ScopeSet, amr: Vec<String>) -> Self {
        self.scopes = scopes;
        self.amr = amr;
        self
    }

    pub fn system() -> Self {
        Self {
            actor: Actor::System,
            client_id: None,
            ip: None,
            scopes: ScopeSet::default(),
            amr: Vec::new(),
        }
    }

    /// An unauthenticated request from a browser (the sign-in pages).
    pub fn anonymous_at(ip: Option<IpAddr>) -> Self {
        Self {
            actor: Actor::Anonymous,
            client_id: None,
            ip,
            scopes: ScopeSet::default(),
            amr: Vec::new(),
        }
    }

    /// `client:<id>`, `user:<id>`, `system` or `anonymous`.
    pub fn actor_label(&self) -> String {
        match &self.actor {
            Actor::Client(id) => format!("client:{id}"),
            Actor::User(id) => format!("user:{id}"),
            Actor::System => "system".to_owned(),
            Actor::Anonymous => "anonymous".to_owned(),
        }
    }
}
