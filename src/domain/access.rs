//! Who may do what to whom: the one authorization decision for bypass codes, 2-step
//! verification, the policy and the audit trail, whatever the door (SCIM, `/Me`, the
//! console, the command line). Pure: the service gathers the actor's and the target's roles
//! and calls [`decide`]; handlers only word its refusals.
//!
//! The rules:
//! - The command line acts as `system` and may do everything (it is audited as such).
//! - A client acting for itself (`client_credentials`) may do what its scopes say.
//! - A person acting on themselves follows the self-service rules (scope
//!   `bypass_codes:self`; minting needs a sign-in with a factor confirmed before it began),
//!   whatever their roles: the help desk never serves itself.
//! - A person acting on someone else needs a role (help desk for codes, security
//!   administrator for 2-step resets, the policy and the audit log), a sign-in that carried
//!   that role's scope, and a factor confirmed before the sign-in began. A target holding
//!   any administrator role is served only by a security administrator.

use std::collections::BTreeSet;

use super::bypass::Origin;
use super::ids::UserId;
use super::methods::{AMR_BYPASS_CODE, AMR_MFA};
use super::roles::Role;
use super::scope::{
    AUDIT_READ, BYPASS_CODES_APPROVE, BYPASS_CODES_MANAGE, BYPASS_CODES_SELF,
    BYPASS_CODES_SETTINGS, MFA_MANAGE, MFA_READ, ScopeSet,
};

/// What is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Generate a bypass code for the target.
    Generate,
    /// Email one of the target's codes again.
    Email,
    Revoke,
    /// List or read the target's codes (never a plaintext).
    ReadCodes,
    /// The target's audit trail (their codes' events).
    ReadAudit,
    /// Reset, or enrol on the user's behalf, the target's 2-step verification.
    ManageAuthenticator,
    /// Read whether the target has 2-step verification (never its secret).
    ReadStatus,
    ReadPolicy,
    ChangePolicy,
    /// The audit log of every user (`/AuditEvents`).
    ReadAuditLog,
    /// End the target's sign-in sessions ("Sign out everywhere"). Anyone may end their own.
    EndSessions,
    /// See the target's sign-in sessions (when, from where, which applications). Anyone may
    /// see their own.
    ReadSessions,
    /// Approve or reject another person's request for a code for the target (the
    /// two-person rule: that the approver is not the requester is
    /// [`crate::domain::bypass::approval`]'s to say).
    Approve,
    /// See every open request (the approvals page).
    ReadRequests,
    /// Make a printable set of codes: only a person, only for themselves.
    GenerateSet,
}

impl Action {
    pub const ALL: [Self; 15] = [
        Self::Generate,
        Self::Email,
        Self::Revoke,
        Self::ReadCodes,
        Self::ReadAudit,
        Self::ManageAuthenticator,
        Self::ReadStatus,
        Self::ReadPolicy,
        Self::ChangePolicy,
        Self::ReadAuditLog,
        Self::EndSessions,
        Self::ReadSessions,
        Self::Approve,
        Self::ReadRequests,
        Self::GenerateSet,
    ];

    /// Whether doing it to an administrator takes a security administrator. Reading whether
    /// someone has 2-step verification changes nothing and tells no secret.
    fn guards_administrators(self) -> bool {
        self != Self::ReadStatus
    }

    /// Whether the action is about one user (the others are about the whole service).
    pub fn has_target(self) -> bool {
        !matches!(
            self,
            Self::ReadPolicy | Self::ChangePolicy | Self::ReadAuditLog | Self::ReadRequests
        )
    }

    /// The scopes any of which lets a client acting for itself do this.
    fn client_scopes(self) -> &'static [&'static str] {
        match self {
            Self::Generate | Self::Email | Self::Revoke | Self::ReadCodes | Self::ReadAudit => {
                &[BYPASS_CODES_MANAGE]
            }
            Self::ManageAuthenticator => &[MFA_MANAGE],
            Self::ReadStatus => &[MFA_READ, MFA_MANAGE],
            Self::ReadPolicy => &[BYPASS_CODES_MANAGE, BYPASS_CODES_SETTINGS],
            Self::ChangePolicy => &[BYPASS_CODES_SETTINGS],
            Self::ReadAuditLog => &[AUDIT_READ],
            Self::EndSessions => &[MFA_MANAGE, BYPASS_CODES_MANAGE],
            Self::ReadSessions => &[MFA_READ, MFA_MANAGE, BYPASS_CODES_MANAGE],
            Self::Approve | Self::ReadRequests => &[BYPASS_CODES_APPROVE],
            Self::GenerateSet => &[BYPASS_CODES_SELF],
        }
    }

    /// The roles any of which lets a person do this to someone else, with the scope that
    /// role brings to the sign-in.
    fn roles(self) -> &'static [(Role, &'static str)] {
        match self {
            Self::Generate | Self::Email | Self::Revoke | Self::ReadCodes | Self::ReadAudit => {
                &[(Role::Helpdesk, BYPASS_CODES_MANAGE)]
            }
            Self::ManageAuthenticator => &[(Role::SecurityAdmin, MFA_MANAGE)],
            Self::ReadStatus => &[(Role::Helpdesk, MFA_READ), (Role::SecurityAdmin, MFA_READ)],
            Self::ReadPolicy => &[
                (Role::Helpdesk, BYPASS_CODES_MANAGE),
                (Role::SecurityAdmin, BYPASS_CODES_SETTINGS),
            ],
            Self::ChangePolicy => &[(Role::SecurityAdmin, BYPASS_CODES_SETTINGS)],
            Self::ReadAuditLog => &[(Role::SecurityAdmin, AUDIT_READ)],
            Self::EndSessions => &[
                (Role::Helpdesk, BYPASS_CODES_MANAGE),
                (Role::SecurityAdmin, MFA_MANAGE),
            ],
            Self::ReadSessions => &[(Role::Helpdesk, MFA_READ), (Role::SecurityAdmin, MFA_READ)],
            Self::Approve | Self::ReadRequests => &[(Role::SecurityAdmin, BYPASS_CODES_APPROVE)],
            Self::GenerateSet => &[],
        }
    }
}

/// How a person's sign-in was made, as far as authority goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    /// A password alone, or an authenticator set up during that very sign-in.
    PasswordOnly,
    /// An authenticator confirmed before the sign-in began.
    Authenticator,
    /// A bypass code handed out by someone else: it opens the account, not its powers.
    BypassCode,
}

impl Factor {
    /// From a sign-in's RFC 8176 `amr`: `mfa` is claimed only for a factor confirmed before
    /// the sign-in began.
    pub fn of(amr: &[String]) -> Self {
        if amr.iter().any(|m| m == AMR_BYPASS_CODE) {
            Self::BypassCode
        } else if amr.iter().any(|m| m == AMR_MFA) {
            Self::Authenticator
        } else {
            Self::PasswordOnly
        }
    }
}

/// Who acts.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// The command line, run by an operator of the service.
    System,
    /// A browser on the sign-in pages, before anyone signed in.
    Anonymous,
    /// A client acting for itself, with its token's scopes.
    Client { scopes: &'a ScopeSet },
    /// A person: the roles their groups give now, the scopes of their sign-in, and how they
    /// signed in.
    Person {
        id: &'a UserId,
        roles: &'a BTreeSet<Role>,
        scopes: &'a ScopeSet,
        factor: Factor,
    },
}

/// Whom it is done to, and the roles they hold.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub id: &'a UserId,
    pub roles: &'a BTreeSet<Role>,
}

/// What an allowed action is, for what follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// On behalf of the service (help desk, client, command line): help-desk limits apply.
    Administration,
    /// A person for themselves: self-service limits apply.
    SelfService,
}

impl Permit {
    /// The origin a code minted under this permit has.
    pub fn origin(self) -> Origin {
        match self {
            Self::Administration => Origin::HelpDesk,
            Self::SelfService => Origin::SelfService,
        }
    }
}

/// Why an action is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The token or sign-in lacks a scope this needs (one of these).
    Scope(&'static [&'static str]),
    /// A person without the role this needs.
    Role(Role),
    /// The sign-in used a bypass code or a password alone; a factor confirmed before the
    /// sign-in is needed.
    NeedsAuthenticatorSignIn,
    /// The target holds an administrator role: only a security administrator acts on them.
    AdministratorTarget,
    /// Nobody resets their own 2-step verification: another security administrator does.
    OwnAuthenticator,
    /// Nobody approves a bypass code for their own account.
    OwnApproval,
    /// A printable set is made by a person for themselves, never for someone else.
    SetsAreOwn,
    /// The action needs a target user and none was named (a caller's bug).
    NoTarget,
}

impl Refusal {
    /// What the caller is told.
    pub fn message(self) -> String {
        match self {
            Self::Scope(scopes) => format!(
                "this needs the scope \"{}\"",
                scopes.join("\" or \"")
            ),
            Self::Role(role) => format!("this needs the {} role", role.as_str()),
            Self::NeedsAuthenticatorSignIn => "sign in with your authenticator app (set up before this sign-in, not a bypass code) to do this".into(),
            Self::AdministratorTarget => "this user holds an administrator role: only a security administrator may act on their bypass codes or 2-step verification".into(),
            Self::OwnAuthenticator => "you cannot do this to your own account here: your own codes are managed under the self-service rules (My security, /Me), and your 2-step verification is reset by another security administrator".into(),
            Self::OwnApproval => "you cannot approve or reject a bypass code for your own account: another security administrator does".into(),
            Self::SetsAreOwn => "a set of saved codes is made by the user for themselves (My security, /Me), never for someone else".into(),
            Self::NoTarget => "no user was named".into(),
        }
    }
}

/// The decision: may `actor` do `action` to `target` (none for service-wide actions)?
pub fn decide(
    actor: Actor<'_>,
    action: Action,
    target: Option<Target<'_>>,
) -> Result<Permit, Refusal> {
    if action.has_target() && target.is_none() {
        return Err(Refusal::NoTarget);
    }
    if action == Action::GenerateSet {
        let own = matches!(actor, Actor::Person { id, .. } if target.is_some_and(|t| t.id == id));
        if !own {
            return Err(Refusal::SetsAreOwn);
        }
    }
    match actor {
        Actor::System => Ok(Permit::Administration),
        Actor::Anonymous => Err(Refusal::Scope(action.client_scopes())),
        Actor::Client { scopes } => {
            let needed = action.client_scopes();
            if needed.iter().any(|s| scopes.contains(s)) {
                Ok(Permit::Administration)
            } else {
                Err(Refusal::Scope(needed))
            }
        }
        Actor::Person {
            id,
            roles,
            scopes,
            factor,
        } => {
            let on_self = action.has_target() && target.is_some_and(|t| t.id == id);
            if on_self {
                self_service(action, scopes, factor)
            } else {
                administration(action, roles, scopes, factor, target)
            }
        }
    }
}

/// A person acting on their own account.
fn self_service(action: Action, scopes: &ScopeSet, factor: Factor) -> Result<Permit, Refusal> {
    match action {
        Action::ManageAuthenticator => Err(Refusal::OwnAuthenticator),
        Action::Approve => Err(Refusal::OwnApproval),
        // Seeing or ending your own sessions needs nothing: it only takes power away.
        Action::EndSessions | Action::ReadSessions => Ok(Permit::SelfService),
        _ if !scopes.contains(BYPASS_CODES_SELF) => Err(Refusal::Scope(&[BYPASS_CODES_SELF])),
        // A code cannot mint more codes, and a password alone cannot mint any.
        Action::Generate | Action::GenerateSet if factor != Factor::Authenticator => {
            Err(Refusal::NeedsAuthenticatorSignIn)
        }
        _ => Ok(Permit::SelfService),
    }
}

/// A person acting for the service: a role, its scope in the sign-in, an honest factor, and
/// a security administrator for administrators.
fn administration(
    action: Action,
    roles: &BTreeSet<Role>,
    scopes: &ScopeSet,
    factor: Factor,
    target: Option<Target<'_>>,
) -> Result<Permit, Refusal> {
    let needed = action.roles();
    let held = needed
        .iter()
        .any(|(role, scope)| roles.contains(role) && scopes.contains(scope));
    if !held {
        return Err(match needed.iter().find(|(role, _)| roles.contains(role)) {
            // The role is there but this sign-in did not carry it (another client).
            Some(_) => Refusal::Scope(action.client_scopes()),
            None => Refusal::Role(needed[0].0),
        });
    }
    if factor != Factor::Authenticator {
        return Err(Refusal::NeedsAuthenticatorSignIn);
    }
    if let Some(target) = target
        && action.guards_administrators()
        && !target.roles.is_empty()
        && !roles.contains(&Role::SecurityAdmin)
    {
        return Err(Refusal::AdministratorTarget);
    }
    Ok(Permit::Administration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::roles::console_scopes;

    fn amr(methods: &[&str]) -> Vec<String> {
        methods.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn factors_come_from_the_amr() {
        assert_eq!(
            Factor::of(&amr(&["pwd", "mfa", "otp"])),
            Factor::Authenticator
        );
        assert_eq!(
            Factor::of(&amr(&["pwd", "mfa", "bypass_code"])),
            Factor::BypassCode
        );
        assert_eq!(Factor::of(&amr(&["pwd"])), Factor::PasswordOnly);
        // Enrolled during the sign-in: no mfa claimed, so no authority.
        assert_eq!(Factor::of(&amr(&["pwd", "otp"])), Factor::PasswordOnly);
    }

    /// The expected answer for a person with `roles` (signed in at the console with the
    /// authenticator) acting on someone holding `target_roles`.
    fn expected(action: Action, roles: &BTreeSet<Role>, target_roles: &BTreeSet<Role>) -> bool {
        let security = roles.contains(&Role::SecurityAdmin);
        let helpdesk = roles.contains(&Role::Helpdesk);
        let target_plain = target_roles.is_empty();
        match action {
            Action::Generate
            | Action::Email
            | Action::Revoke
            | Action::ReadCodes
            | Action::ReadAudit => helpdesk && (target_plain || security),
            Action::ManageAuthenticator => security,
            Action::ReadStatus | Action::ReadPolicy => helpdesk || security,
            Action::ChangePolicy | Action::ReadAuditLog => security,
            Action::Approve | Action::ReadRequests => security,
            Action::GenerateSet => false,
            Action::EndSessions | Action::ReadSessions => (helpdesk && target_plain) || security,
        }
    }

    fn role_sets() -> Vec<BTreeSet<Role>> {
        let mut sets = vec![BTreeSet::new()];
        for role in Role::ALL {
            sets.push(BTreeSet::from([role]));
        }
        sets.push(BTreeSet::from([Role::Helpdesk, Role::SecurityAdmin]));
        sets.push(Role::ALL.into_iter().collect());
        sets
    }

    #[test]
    fn matrix_of_people_acting_on_others() {
        let me = UserId::new("me");
        let other = UserId::new("other");
        let otp = Factor::of(&amr(&["pwd", "mfa", "otp"]));
        for roles in role_sets() {
            let scopes = console_scopes(&roles);
            for target_roles in role_sets() {
                for action in Action::ALL {
                    let target = Target {
                        id: &other,
                        roles: &target_roles,
                    };
                    let actor = Actor::Person {
                        id: &me,
                        roles: &roles,
                        scopes: &scopes,
                        factor: otp,
                    };
                    let got = decide(actor, action, action.has_target().then_some(target));
                    assert_eq!(
                        got.is_ok(),
                        expected(action, &roles, &target_roles),
                        "{roles:?} {action:?} on {target_roles:?}: {got:?}"
                    );
                    if got.is_ok() {
                        assert_eq!(got, Ok(Permit::Administration));
                    }
                    // The same person signed in with a bypass code or a password alone has
                    // no power over anyone else.
                    for factor in [Factor::BypassCode, Factor::PasswordOnly] {
                        let weak = Actor::Person {
                            id: &me,
                            roles: &roles,
                            scopes: &scopes,
                            factor,
                        };
                        assert!(
                            decide(weak, action, action.has_target().then_some(target)).is_err(),
                            "{roles:?} {action:?} with {factor:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn roles_count_only_with_their_scope_in_the_sign_in() {
        // A help-desk member signed in at an ordinary relying party: user scopes only.
        let me = UserId::new("me");
        let other = UserId::new("other");
        let roles = BTreeSet::from([Role::Helpdesk, Role::SecurityAdmin]);
        let scopes = ScopeSet::parse("openid profile bypass_codes:self");
        let none = BTreeSet::new();
        let actor = Actor::Person {
            id: &me,
            roles: &roles,
            scopes: &scopes,
            factor: Factor::Authenticator,
        };
        let target = Target {
            id: &other,
            roles: &none,
        };
        for action in Action::ALL {
            assert!(
                decide(actor, action, action.has_target().then_some(target)).is_err(),
                "{action:?}"
            );
        }
        // A role withdrawn since the sign-in: the scope alone is not enough.
        let helpdesk_scopes = console_scopes(&BTreeSet::from([Role::Helpdesk]));
        let withdrawn = Actor::Person {
            id: &me,
            roles: &none,
            scopes: &helpdesk_scopes,
            factor: Factor::Authenticator,
        };
        assert_eq!(
            decide(withdrawn, Action::Generate, Some(target)),
            Err(Refusal::Role(Role::Helpdesk))
        );
    }

    #[test]
    fn on_themselves_people_follow_the_self_service_rules_whatever_their_roles() {
        let me = UserId::new("me");
        for roles in role_sets() {
            let scopes = console_scopes(&roles);
            let target = Target {
                id: &me,
                roles: &roles,
            };
            for factor in [
                Factor::Authenticator,
                Factor::BypassCode,
                Factor::PasswordOnly,
            ] {
                let actor = Actor::Person {
                    id: &me,
                    roles: &roles,
                    scopes: &scopes,
                    factor,
                };
                for action in [
                    Action::Generate,
                    Action::GenerateSet,
                    Action::Email,
                    Action::Revoke,
                    Action::ReadCodes,
                    Action::ReadAudit,
                ] {
                    let got = decide(actor, action, Some(target));
                    let minting = matches!(action, Action::Generate | Action::GenerateSet);
                    let allowed = !minting || factor == Factor::Authenticator;
                    assert_eq!(
                        got,
                        if allowed {
                            Ok(Permit::SelfService)
                        } else {
                            Err(Refusal::NeedsAuthenticatorSignIn)
                        },
                        "{roles:?} {factor:?} {action:?}"
                    );
                }
                assert_eq!(
                    decide(actor, Action::ManageAuthenticator, Some(target)),
                    Err(Refusal::OwnAuthenticator)
                );
                assert_eq!(
                    decide(actor, Action::Approve, Some(target)),
                    Err(Refusal::OwnApproval),
                    "a security administrator approves nothing for themselves"
                );
            }
        }
        // Without bypass_codes:self (a relying party not allowed self-service codes).
        let none = BTreeSet::new();
        let scopes = ScopeSet::parse("openid profile");
        let actor = Actor::Person {
            id: &me,
            roles: &none,
            scopes: &scopes,
            factor: Factor::Authenticator,
        };
        let target = Target {
            id: &me,
            roles: &none,
        };
        assert_eq!(
            decide(actor, Action::Generate, Some(target)),
            Err(Refusal::Scope(&[BYPASS_CODES_SELF]))
        );
    }

    #[test]
    fn clients_act_by_their_scopes_and_the_command_line_by_its_operator() {
        let user = UserId::new("u");
        let admins = Role::ALL.into_iter().collect();
        let target = Target {
            id: &user,
            roles: &admins,
        };
        for action in Action::ALL {
            let t = action.has_target().then_some(target);
            if action == Action::GenerateSet {
                // Nobody but the person themselves: not the command line, not a client.
                let scopes = ScopeSet::parse(BYPASS_CODES_SELF);
                for actor in [Actor::System, Actor::Client { scopes: &scopes }] {
                    assert_eq!(decide(actor, action, t), Err(Refusal::SetsAreOwn));
                }
                continue;
            }
            assert_eq!(decide(Actor::System, action, t), Ok(Permit::Administration));
            assert!(decide(Actor::Anonymous, action, t).is_err());
            let nothing = ScopeSet::parse("openid");
            assert!(decide(Actor::Client { scopes: &nothing }, action, t).is_err());
            let scopes = ScopeSet::from_names(action.client_scopes().iter().copied());
            assert_eq!(
                decide(Actor::Client { scopes: &scopes }, action, t),
                Ok(Permit::Administration),
                "{action:?}"
            );
        }
        let manage = ScopeSet::parse(BYPASS_CODES_MANAGE);
        assert!(
            decide(
                Actor::Client { scopes: &manage },
                Action::Approve,
                Some(target)
            )
            .is_err(),
            "generating codes is not approving them"
        );
        assert!(
            decide(
                Actor::Client { scopes: &manage },
                Action::ChangePolicy,
                None
            )
            .is_err()
        );
        assert_eq!(
            decide(Actor::Client { scopes: &manage }, Action::Generate, None),
            Err(Refusal::NoTarget)
        );
    }
}
