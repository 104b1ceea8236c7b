//! The service side of [`crate::domain::access`]: gathers the roles the decision needs (the
//! acting person's and the target's, as their groups give them now) and turns a refusal into
//! [`ServiceError::Forbidden`]. Every service operation on codes, 2-step verification, the
//! policy and the audit log calls [`Access::check`] first, whatever door the request came by.

use std::collections::BTreeSet;

use super::ServiceError;
use super::context::{Actor, Context};
use super::roles::Roles;
use crate::domain::access::{self, Action, Factor, Permit, Target};
use crate::domain::ids::UserId;

#[derive(Clone)]
pub struct Access {
    roles: Roles,
}

impl Access {
    pub fn new(roles: Roles) -> Self {
        Self { roles }
    }

    /// The roles service the decisions read.
    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// May the request's actor do `action` to `target`? `Ok` says under which rules.
    pub async fn check(
        &self,
        ctx: &Context,
        action: Action,
        target: Option<&UserId>,
    ) -> Result<Permit, ServiceError> {
        // Roles matter only when a person acts: a client or the command line needs no
        // lookup of anyone's groups.
        let person = match &ctx.actor {
            Actor::User(id) => Some(id),
            _ => None,
        };
        let (actor_roles, target_roles) = match (person, target) {
            (Some(actor), Some(target)) => (
                self.roles.roles_of(actor).await?,
                self.roles.roles_of(target).await?,
            ),
            (Some(actor), None) => (self.roles.roles_of(actor).await?, BTreeSet::new()),
            (None, _) => (BTreeSet::new(), BTreeSet::new()),
        };
        let target = target.map(|id| Target {
            id,
            roles: &target_roles,
        });
        let actor = match &ctx.actor {
            Actor::System => access::Actor::System,
            Actor::Anonymous => access::Actor::Anonymous,
            Actor::Client(_) => access::Actor::Client {
                scopes: &ctx.scopes,
            },
            Actor::User(id) => access::Actor::Person {
                id,
                roles: &actor_roles,
                scopes: &ctx.scopes,
                factor: Factor::of(&ctx.amr),
            },
        };
        access::decide(actor, action, target).map_err(|refusal| {
            tracing::info!(actor = %ctx.actor_label(), action = ?action, refusal = ?refusal, "refused");
            ServiceError::Forbidden(refusal.message())
        })
    }
}
