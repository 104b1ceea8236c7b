//! Attempt limits: which keys a guessable secret is throttled by, how many attempts each
//! allows per window, and the decision to take from a count and the clock.
//!
//! An attempt is *reserved* before the expensive check runs (Argon2, a TOTP window, a
//! client secret), so requests that arrive together cannot all be evaluated: the counter
//! stores ([`crate::counters`]) apply [`Window::reserve`] atomically, in one in-process
//! critical section or one Redis script with the same rules. After the check, a success
//! either clears the key ([`OnSuccess::Clear`]: the failure streak of that subject ends) or
//! gives the reserved attempt back ([`OnSuccess::GiveBack`]: one person's success must not
//! wipe an attacker's record on a shared key). A failure keeps its reservation.

use std::net::IpAddr;
use std::time::Duration;

use super::address::LimitAddress;
use super::ids::{ClientId, UserId};

/// Why a second factor is locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// Try again after this long.
    Window(std::time::Duration),
    /// Too many consecutive failures: an administrator must reset 2-step verification.
    Permanent,
}

/// At most `max` attempts per `window`; the window starts at the first attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub max: u64,
    pub window: Duration,
}

const FIFTEEN_MINUTES: Duration = Duration::from_secs(15 * 60);

/// Second factor (TOTP, bypass code, enrolment code) per user.
pub const SECOND_FACTOR_PER_USER: Limit = Limit {
    max: 5,
    window: FIFTEEN_MINUTES,
};
/// Second factor per client address: higher, so one office behind NAT still works.
pub const SECOND_FACTOR_PER_ADDRESS: Limit = Limit {
    max: 50,
    window: FIFTEEN_MINUTES,
};
/// Passwords per (username, address): what one guesser gets against one account.
pub const PASSWORD_PER_USER_ADDRESS: Limit = Limit {
    max: 10,
    window: FIFTEEN_MINUTES,
};
/// Passwords per username across all addresses: a ceiling for distributed guessing that a
/// single stranger cannot reach alone, so locking someone out takes many addresses.
pub const PASSWORD_PER_USER: Limit = Limit {
    max: 100,
    window: FIFTEEN_MINUTES,
};
/// Passwords per address across usernames, against sweeping many accounts.
pub const PASSWORD_PER_ADDRESS: Limit = Limit {
    max: 100,
    window: FIFTEEN_MINUTES,
};
/// Failed client authentications (a secret was presented) per client and address.
pub const CLIENT_AUTH_PER_CLIENT_ADDRESS: Limit = Limit {
    max: 10,
    window: FIFTEEN_MINUTES,
};
/// Failed client authentications per address across clients: caps how many per-client
/// counters one address can create (and so how far it can fill a counter store).
pub const CLIENT_AUTH_PER_ADDRESS: Limit = Limit {
    max: 100,
    window: FIFTEEN_MINUTES,
};
/// Printable sets one user may make: five an hour (a set is shown once; more is a mistake
/// or someone holding the hashing slots).
pub const SAVED_SETS_PER_USER: Limit = Limit {
    max: 5,
    window: Duration::from_secs(60 * 60),
};
/// Codes sent to be emailed (`…/notifications`) per actor, and per code: whoever holds a
/// code types it right the first time, so a few tries are plenty.
pub const CODE_HOLDER: Limit = Limit {
    max: 5,
    window: FIFTEEN_MINUTES,
};
/// Consecutive second-factor failures after which only an administrator's reset helps
/// (NIST SP 800-63B §5.2.2). Reserved in the database before each check, like the others.
pub const MAX_CONSECUTIVE_FAILURES: i32 = 100;

/// What a successful check does to a key's count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnSuccess {
    Clear,
    GiveBack,
}

/// A throttled subject: its counter key, its limit and what success does to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitKey {
    SecondFactorUser(UserId),
    SecondFactorAddress(LimitAddress),
    PasswordUserAddress(String, LimitAddress),
    PasswordUser(String),
    PasswordAddress(LimitAddress),
    ClientAuth(ClientId, LimitAddress),
    ClientAuthAddress(LimitAddress),
    /// Codes sent to be emailed, per actor (`client:…`, `user:…`) and per code.
    CodeHolderActor(String),
    CodeHolderCode(String),
    /// New sign-in flows per address; `max` comes from the configuration.
    FlowsPerAddress(LimitAddress, Limit),
    /// Printable sets a user makes (each costs one Argon2 computation per code).
    SavedSets(UserId),
}

impl LimitKey {
    /// The client-authentication keys of `client` presenting a secret from `ip`: the
    /// address first, so one address cannot mint counters for endless made-up client ids.
    pub fn client_auth(client: &ClientId, ip: Option<IpAddr>) -> Vec<LimitKey> {
        let address = ip.map(LimitAddress::of).unwrap_or_default();
        vec![
            LimitKey::ClientAuthAddress(address.clone()),
            LimitKey::ClientAuth(client.clone(), address),
        ]
    }

    /// The second-factor keys of a user signing in from `ip`.
    pub fn second_factor(user: &UserId, ip: Option<IpAddr>) -> Vec<LimitKey> {
        let mut keys = vec![LimitKey::SecondFactorUser(user.clone())];
        keys.extend(ip.map(|ip| LimitKey::SecondFactorAddress(LimitAddress::of(ip))));
        keys
    }

    /// The keys of `actor` sending a typed code to prove it holds code `code_id`.
    pub fn code_holder(actor: &str, code_id: &str) -> Vec<LimitKey> {
        vec![
            LimitKey::CodeHolderActor(actor.to_owned()),
            LimitKey::CodeHolderCode(code_id.to_owned()),
        ]
    }

    /// The password keys of `user_name` typed from `ip`. The name is folded as sign-in
    /// matches it, so `Alice` and `alice ` share a counter.
    pub fn password(user_name: &str, ip: Option<IpAddr>) -> Vec<LimitKey> {
        let name = user_name.trim().to_lowercase();
        let address = ip.map(LimitAddress::of).unwrap_or_default();
        let mut keys = vec![
            LimitKey::PasswordUserAddress(name.clone(), address.clone()),
            LimitKey::PasswordUser(name),
        ];
        if ip.is_some() {
            keys.push(LimitKey::PasswordAddress(address));
        }
        keys
    }

    pub fn limit(&self) -> Limit {
        match self {
            Self::SecondFactorUser(_) => SECOND_FACTOR_PER_USER,
            Self::SecondFactorAddress(_) => SECOND_FACTOR_PER_ADDRESS,
            Self::PasswordUserAddress(..) => PASSWORD_PER_USER_ADDRESS,
            Self::PasswordUser(_) => PASSWORD_PER_USER,
            Self::PasswordAddress(_) => PASSWORD_PER_ADDRESS,
            Self::ClientAuth(..) => CLIENT_AUTH_PER_CLIENT_ADDRESS,
            Self::ClientAuthAddress(_) => CLIENT_AUTH_PER_ADDRESS,
            Self::CodeHolderActor(_) | Self::CodeHolderCode(_) => CODE_HOLDER,
            Self::FlowsPerAddress(_, limit) => *limit,
            Self::SavedSets(_) => SAVED_SETS_PER_USER,
        }
    }

    pub fn on_success(&self) -> OnSuccess {
        match self {
            Self::SecondFactorUser(_) | Self::PasswordUserAddress(..) | Self::ClientAuth(..) => {
                OnSuccess::Clear
            }
            // A caller's key spans every code: one code it holds must not wipe its failures
            // on the others; and another caller's success must not wipe a guesser's record
            // on the code.
            Self::CodeHolderActor(_) | Self::CodeHolderCode(_) => OnSuccess::GiveBack,
            Self::SecondFactorAddress(_)
            | Self::PasswordUser(_)
            | Self::PasswordAddress(_)
            | Self::ClientAuthAddress(_)
            | Self::FlowsPerAddress(..) => OnSuccess::GiveBack,
            // The service never settles it: every set made counts for the hour.
            Self::SavedSets(_) => OnSuccess::GiveBack,
        }
    }

    /// The counter key: `kind:entity`, where the entity is what the key counts for
    /// (`user:<id>`, `ip:<address>`, a pair), so a Redis Cluster keeps an entity's keys in
    /// one slot. User-chosen text in it (usernames, client ids) is length-capped at the edge
    /// before it gets here.
    pub fn key(&self) -> String {
        match self {
            Self::SecondFactorUser(user) => format!("mfa-fail:user:{user}"),
            Self::SecondFactorAddress(addr) => format!("mfa-fail:ip:{addr}"),
            Self::PasswordUserAddress(name, addr) => format!("pwd-fail:{addr}:{name}"),
            Self::PasswordUser(name) => format!("pwd-fail:user:{name}"),
            Self::PasswordAddress(addr) => format!("pwd-fail:ip:{addr}"),
            Self::ClientAuth(client, addr) => format!("client-auth:{addr}:{client}"),
            Self::ClientAuthAddress(addr) => format!("client-auth:ip:{addr}"),
            Self::CodeHolderActor(actor) => format!("code-holder:actor:{actor}"),
            Self::CodeHolderCode(code) => format!("code-holder:code:{code}"),
            Self::FlowsPerAddress(addr, _) => format!("flows:ip:{addr}"),
            Self::SavedSets(user) => format!("saved-sets:user:{user}"),
        }
    }
}

/// A key's state: attempts counted in a window that ends at `ends` (time since any fixed
/// origin; the caller's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub count: u64,
    pub ends: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The attempt is reserved; it is number `count` in the window.
    Reserved { count: u64 },
    /// The limit is reached; try again after this long.
    Denied { retry_after: Duration },
}

impl Window {
    /// Reserves one attempt under `limit` at `now`: the new state to store and the decision.
    /// An expired window (or none) starts afresh; a denied attempt changes nothing.
    pub fn reserve(current: Option<Window>, limit: Limit, now: Duration) -> (Window, Decision) {
        let live = current.filter(|w| w.ends > now);
        match live {
            Some(w) if w.count >= limit.max => (
                w,
                Decision::Denied {
                    retry_after: w.ends - now,
                },
            ),
            Some(w) => {
                let next = Window {
                    count: w.count + 1,
                    ends: w.ends,
                };
                (next, Decision::Reserved { count: next.count })
            }
            None => (
                Window {
                    count: 1,
                    ends: now + limit.window,
                },
                Decision::Reserved { count: 1 },
            ),
        }
    }

    /// Gives one reserved attempt back; `None` when nothing is left to keep.
    pub fn give_back(current: Option<Window>, now: Duration) -> Option<Window> {
        current
            .filter(|w| w.ends > now && w.count > 1)
            .map(|w| Window {
                count: w.count - 1,
                ends: w.ends,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        max: 3,
        window: Duration::from_secs(60),
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn reserves_up_to_the_maximum_then_denies_until_the_window_ends() {
        let mut state = None;
        for expected in 1..=3 {
            let (next, decision) = Window::reserve(state, LIMIT, secs(10));
            assert_eq!(decision, Decision::Reserved { count: expected });
            state = Some(next);
        }
        let (unchanged, decision) = Window::reserve(state, LIMIT, secs(30));
        assert_eq!(
            decision,
            Decision::Denied {
                retry_after: secs(40)
            },
            "the window started at the first attempt"
        );
        assert_eq!(Some(unchanged), state, "a denied attempt is not counted");
        let (fresh, decision) = Window::reserve(state, LIMIT, secs(70));
        assert_eq!(decision, Decision::Reserved { count: 1 });
        assert_eq!(fresh.ends, secs(130));
    }

    #[test]
    fn giving_back_frees_a_slot_but_never_goes_below_nothing() {
        let (one, _) = Window::reserve(None, LIMIT, secs(0));
        assert_eq!(Window::give_back(Some(one), secs(1)), None);
        let (two, _) = Window::reserve(Some(one), LIMIT, secs(1));
        assert_eq!(
            Window::give_back(Some(two), secs(2)),
            Some(Window {
                count: 1,
                ends: secs(60)
            })
        );
        assert_eq!(Window::give_back(Some(two), secs(61)), None, "expired");
        assert_eq!(Window::give_back(None, secs(0)), None);
    }

    #[test]
    fn password_keys_fold_the_name_and_separate_addresses() {
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let b: IpAddr = "198.51.100.8".parse().unwrap();
        let ka = LimitKey::password(" Alice ", Some(a));
        let kb = LimitKey::password("alice", Some(b));
        assert_eq!(ka[0].limit(), PASSWORD_PER_USER_ADDRESS);
        assert_ne!(ka[0].key(), kb[0].key(), "per (username, address)");
        assert_eq!(ka[1].key(), kb[1].key(), "per username across addresses");
        assert!(ka[1].limit().max > ka[0].limit().max * 5);
        assert_eq!(ka[0].on_success(), OnSuccess::Clear);
        assert_eq!(ka[1].on_success(), OnSuccess::GiveBack);
    }

    #[test]
    fn second_factor_keys_clear_the_user_and_give_back_the_address() {
        let user = UserId::new("u1");
        let keys = LimitKey::second_factor(&user, Some("::1".parse().unwrap()));
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].on_success(), OnSuccess::Clear);
        assert_eq!(keys[1].on_success(), OnSuccess::GiveBack);
        assert_eq!(LimitKey::second_factor(&user, None).len(), 1);
    }
}
