//! Who is acting, from where: recorded with every audit event.

use std::net::IpAddr;

use crate::domain::ids::{ClientId, UserId};

#[derive(Clone, Debug)]
pub enum Actor {
    Client(ClientId),
    User(UserId),
    System,
}

#[derive(Clone, Debug)]
pub struct Context {
    pub actor: Actor,
    /// The OAuth client the request came through, if any.
    pub client_id: Option<ClientId>,
    pub ip: Option<IpAddr>,
}

impl Context {
    pub fn client(client_id: ClientId, ip: Option<IpAddr>) -> Self {
        Self {
            actor: Actor::Client(client_id.clone()),
            client_id: Some(client_id),
            ip,
        }
    }

    pub fn user(user_id: UserId, client_id: Option<ClientId>, ip: Option<IpAddr>) -> Self {
        Self {
            actor: Actor::User(user_id),
            client_id,
            ip,
        }
    }

    pub fn system() -> Self {
        Self {
            actor: Actor::System,
            client_id: None,
            ip: None,
        }
    }

    /// An unauthenticated request from a browser (the sign-in pages).
    pub fn system_at(ip: Option<IpAddr>) -> Self {
        Self {
            actor: Actor::System,
            client_id: None,
            ip,
        }
    }

    /// `client:<id>`, `user:<id>` or `system`.
    pub fn actor_label(&self) -> String {
        match &self.actor {
            Actor::Client(id) => format!("client:{id}"),
            Actor::User(id) => format!("user:{id}"),
            Actor::System => "system".to_owned(),
        }
    }
}
