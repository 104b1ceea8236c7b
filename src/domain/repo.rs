//! The repositories the services need, as traits over domain types (lldap's
//! `*BackendHandler` style): a reader finds what is stored and asked for without reading SQL.
//! `store/` implements them with sea-orm for SQLite and PostgreSQL; nothing above it sees a
//! sea-orm type. Each trait names its own error, so the domain stays free of the store's.
//!
//! Implemented and called on the concrete store only (no `dyn`), so native `async fn` is
//! enough and the futures stay `Send` where the store's are.
#![allow(async_fn_in_trait)]

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::audit::{AuditEntry, AuditQuery};
use super::bypass::{NewCode, StoredCode};
use super::ids::{ClientId, GroupId, UserId};
use super::oauth::{Client, Grant, RefreshToken, StoredKey};
use super::scim::group::{Group, GroupChange, GroupField, GroupFilter, GroupWrite};
use super::scim::search::Sort;
use super::scim::user::{User, UserAttributes, UserField, UserFilter};
use super::totp::MfaRecord;

/// How to change the stored password hash.
pub enum PasswordChange {
    Keep,
    Set(String),
}

/// One page of a user listing.
pub struct UserPage {
    pub total: u64,
    pub users: Vec<User>,
}

/// One page of a group listing.
pub struct GroupPage {
    pub total: u64,
    pub groups: Vec<Group>,
}

/// A group a user belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRef {
    pub id: GroupId,
    pub display_name: String,
}

/// What inserting a bypass code did.
pub enum InsertOutcome {
    Inserted(Box<StoredCode>),
    /// The user already has `max_active` active codes.
    TooManyActive,
    /// Another of the user's codes has the same hash: generate again.
    Collision,
}

/// What a password step reads of a user once the password is checked, in one go: the user,
/// their password hash, since when their sign-ins count (`sessions_not_before`), and their
/// 2-step verification row.
#[derive(Clone, Debug)]
pub struct SignInRecord {
    pub user: User,
    pub password_hash: Option<String>,
    pub sessions_not_before: Option<DateTime<Utc>>,
    pub mfa: Option<MfaRecord>,
}

pub trait UserRepo {
    type Error;

    async fn create_user(
        &self,
        attrs: &UserAttributes,
        password_hash: Option<String>,
    ) -> Result<User, Self::Error>;

    /// The id and password hash of a user by userName (case-insensitive): all a password
    /// step reads before its check, so known and unknown users cost the same until then.
    async fn find_user_for_sign_in(
        &self,
        user_name: &str,
    ) -> Result<Option<(UserId, Option<String>)>, Self::Error>;

    /// A user with what a password step stands on, read after the password check.
    async fn sign_in_record(&self, id: &UserId) -> Result<Option<SignInRecord>, Self::Error>;

    async fn get_user(&self, id: &UserId) -> Result<Option<User>, Self::Error>;

    /// Replaces a user's attributes if its version is still `expected_version` (when given);
    /// with `end_sessions`, every grant of the user is revoked in the same transaction.
    async fn replace_user(
        &self,
        id: &UserId,
        attrs: &UserAttributes,
        password: PasswordChange,
        expected_version: Option<i64>,
        end_sessions: bool,
    ) -> Result<User, Self::Error>;

    /// Deletes a user if its version is still `expected_version` (when given) and revokes
    /// their bypass codes; returns the ids of the codes revoked.
    async fn delete_user(
        &self,
        id: &UserId,
        expected_version: Option<i64>,
        by: &str,
    ) -> Result<Vec<String>, Self::Error>;

    /// Lists users matching a filter, in `sort` order and then oldest first; `start_index`
    /// is 1-based as in SCIM.
    async fn list_users(
        &self,
        filter: Option<&UserFilter>,
        sort: Option<Sort<UserField>>,
        start_index: u64,
        count: u64,
    ) -> Result<UserPage, Self::Error>;
}

pub trait GrantRepo {
    type Error;

    async fn insert_grant(&self, row: &Grant) -> Result<(), Self::Error>;

    /// The moment before which the user's sign-ins are void, if one was set.
    async fn sessions_not_before(
        &self,
        user_id: &UserId,
    ) -> Result<Option<DateTime<Utc>>, Self::Error>;

    async fn find_grant(&self, id: &str) -> Result<Option<Grant>, Self::Error>;

    async fn revoke_grant(&self, id: &str, now: DateTime<Utc>) -> Result<(), Self::Error>;

    async fn insert_refresh_token(
        &self,
        hash: Vec<u8>,
        grant_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), Self::Error>;

    async fn find_refresh_token(&self, hash: &[u8]) -> Result<Option<RefreshToken>, Self::Error>;

    /// The user's grants at this client that are not revoked.
    async fn live_grants(
        &self,
        user_id: &UserId,
        client_id: &ClientId,
    ) -> Result<Vec<Grant>, Self::Error>;

    /// Marks a refresh token used; false if it already was (a replay).
    async fn use_refresh_token(&self, hash: &[u8], now: DateTime<Utc>)
    -> Result<bool, Self::Error>;
}

pub trait BypassCodeRepo {
    type Error;

    /// Inserts a code unless the user already has `max_active` active ones. Touching the
    /// user's MFA row first serialises concurrent creations for the same user.
    async fn insert_code(
        &self,
        code: NewCode,
        max_active: u64,
        now: DateTime<Utc>,
    ) -> Result<InsertOutcome, Self::Error>;

    async fn list_codes(&self, user_id: &UserId) -> Result<Vec<StoredCode>, Self::Error>;

    /// How many of the user's codes are active at `now` (what `maxActive` counts).
    async fn count_active_codes(
        &self,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> Result<u64, Self::Error>;

    async fn find_code(
        &self,
        user_id: &UserId,
        code_id: &str,
    ) -> Result<Option<StoredCode>, Self::Error>;

    /// The user's code with this hash: an index hit on (user_id, code_hash).
    async fn find_code_by_hash(
        &self,
        user_id: &UserId,
        hash: &[u8],
    ) -> Result<Option<StoredCode>, Self::Error>;

    /// Records one use if the code is still active at `now`; false if it no longer is.
    async fn consume_code(&self, code_id: &str, now: DateTime<Utc>) -> Result<bool, Self::Error>;

    /// Revokes one code and ends the sign-ins that used it; false if it was already revoked
    /// (its sign-ins are ended again all the same: a grant issued meanwhile dies too).
    async fn revoke_code(
        &self,
        code_id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Self::Error>;
}

pub trait MfaRepo {
    type Error;

    /// Resets a user's 2-step verification: the TOTP factor goes, every code is revoked and
    /// every sign-in ends, in one transaction.
    async fn reset_mfa(
        &self,
        user_id: &UserId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, Self::Error>;

    async fn get_mfa(&self, user_id: &UserId) -> Result<Option<MfaRecord>, Self::Error>;

    /// The user's MFA row, created with `salt` if it does not exist yet.
    async fn ensure_mfa(&self, user_id: &UserId, salt: Vec<u8>) -> Result<MfaRecord, Self::Error>;

    /// Stores a new, unconfirmed TOTP secret (sealed), replacing any unconfirmed one; a user
    /// without a 2-step verification row gets one, with `salt` for their bypass codes.
    /// Returns false if a confirmed factor exists.
    async fn set_pending_totp(
        &self,
        user_id: &UserId,
        sealed_secret: String,
        salt: Vec<u8>,
    ) -> Result<bool, Self::Error>;

    /// Accepts a TOTP time step: confirming a pending factor, or using a confirmed one. The
    /// step must be later than any accepted before, so a code is never accepted twice, even
    /// by two instances at once.
    async fn accept_totp_step(
        &self,
        user_id: &UserId,
        sealed_secret: &str,
        step: i64,
        confirming: bool,
    ) -> Result<bool, Self::Error>;

    /// Counts an attempt into the user's failure streak before it is checked, unless the
    /// streak has reached `cap`; false then. A success resets the streak.
    async fn reserve_mfa_attempt(&self, user_id: &UserId, cap: i32) -> Result<bool, Self::Error>;

    /// Takes back one attempt counted by `reserve_mfa_attempt` that was never checked.
    async fn release_mfa_attempt(&self, user_id: &UserId) -> Result<(), Self::Error>;

    async fn reset_mfa_failures(&self, user_id: &UserId) -> Result<(), Self::Error>;
}

pub trait ClientRepo {
    type Error;

    async fn insert_client(&self, client: Client) -> Result<(), Self::Error>;

    /// Inserts the client or replaces what is registered under its id.
    async fn save_client(&self, client: Client) -> Result<(), Self::Error>;

    async fn find_client(&self, client_id: &ClientId) -> Result<Option<Client>, Self::Error>;

    async fn list_clients(&self) -> Result<Vec<Client>, Self::Error>;

    async fn count_clients(&self) -> Result<u64, Self::Error>;

    /// Returns whether a client was removed.
    async fn remove_client(&self, client_id: &ClientId) -> Result<bool, Self::Error>;
}

pub trait AuditRepo {
    type Error;

    /// A code's events, oldest first.
    async fn code_events(&self, code_id: &str) -> Result<Vec<AuditEntry>, Self::Error>;

    /// A user's latest events, newest first.
    async fn user_events(
        &self,
        user_id: &UserId,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, Self::Error>;

    async fn append_event(&self, entry: AuditEntry) -> Result<(), Self::Error>;

    /// The events `query` selects, newest first: `count` of them from the 1-based
    /// `start_index`, and how many there are in all.
    async fn search_events(
        &self,
        query: &AuditQuery,
        start_index: u64,
        count: u64,
    ) -> Result<(Vec<AuditEntry>, u64), Self::Error>;
}

pub trait KeyRepo {
    type Error;

    /// All keys, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, Self::Error>;

    async fn insert_signing_key(&self, kid: &str, private_pem: &str) -> Result<(), Self::Error>;

    /// Replaces a key's stored form (a legacy plain PEM being sealed).
    async fn reseal_signing_key(&self, kid: &str, stored: &str) -> Result<(), Self::Error>;
}

pub trait SettingRepo {
    type Error;

    async fn get_setting(&self, name: &str) -> Result<Option<String>, Self::Error>;

    async fn put_setting(&self, name: &str, value: String) -> Result<(), Self::Error>;
}

pub trait GroupRepo {
    type Error;

    /// Creates a group with its members (who must exist); `displayName` is unique ignoring case.
    async fn create_group(&self, write: &GroupWrite) -> Result<Group, Self::Error>;

    async fn get_group(
        &self,
        id: &GroupId,
        with_members: bool,
    ) -> Result<Option<Group>, Self::Error>;

    /// Lists groups matching a filter, in `sort` order and then oldest first; `start_index`
    /// is 1-based as in SCIM.
    async fn list_groups(
        &self,
        filter: Option<&GroupFilter>,
        sort: Option<Sort<GroupField>>,
        start_index: u64,
        count: u64,
        with_members: bool,
    ) -> Result<GroupPage, Self::Error>;

    /// Replaces name, external id and members if the version is still `expected_version`
    /// (when given); returns the members before.
    async fn replace_group(
        &self,
        id: &GroupId,
        write: &GroupWrite,
        expected_version: Option<i64>,
    ) -> Result<Vec<UserId>, Self::Error>;

    /// Applies PATCH changes without reading the member list (unless a change replaces it);
    /// returns the users who stopped being members.
    async fn change_group(
        &self,
        id: &GroupId,
        changes: &[GroupChange],
        expected_version: Option<i64>,
    ) -> Result<Vec<UserId>, Self::Error>;

    /// Deletes a group (no user); returns its members.
    async fn delete_group(
        &self,
        id: &GroupId,
        expected_version: Option<i64>,
    ) -> Result<Vec<UserId>, Self::Error>;

    /// The groups of each of these users, in one query.
    async fn groups_of_users(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Vec<GroupRef>>, Self::Error>;

    /// Which of these user ids name no user.
    async fn missing_users(&self, users: &[UserId]) -> Result<Vec<UserId>, Self::Error>;
}
