//! Users and their emails; the SQL of a search is in [`super::user_query`].

use std::time::Instant;

use chrono::Utc;
use entity::{user, user_email, user_mfa};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    AccessMode, ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction,
    DbBackend, EntityTrait, FromQueryResult, IsolationLevel, QueryFilter, QuerySelect, Set,
    TransactionTrait,
};

use super::totals::{self, Totals};
use super::user_query::{Emails, reversed, user_condition};
use super::{Store, StoreError};
use crate::domain::ids::UserId;
use crate::domain::repo::{PasswordChange, SignInRecord, UserPage, UserRepo};
use crate::domain::scim::search::Sort;
use crate::domain::scim::user::{Email, Name, User, UserAttributes, UserField, UserFilter};
use crate::domain::totp::TotpStatus;

fn totp_status(mfa: Option<&user_mfa::Model>) -> TotpStatus {
    mfa.map_or(TotpStatus::None, |m| {
        TotpStatus::of(m.totp_secret.is_some(), m.totp_confirmed)
    })
}

/// A user's email rows as the domain's emails, in the order the client sent them.
fn in_order(mut emails: Vec<user_email::Model>) -> Vec<Email> {
    emails.sort_by_key(|e| e.position);
    emails
        .into_iter()
        .map(|e| Email {
            value: e.value,
            kind: e.kind,
            primary: e.is_primary,
            display: e.display,
        })
        .collect()
}

fn to_domain(row: user::Model, emails: Vec<Email>, totp: TotpStatus) -> User {
    User {
        id: UserId::new(row.id),
        attributes: UserAttributes {
            user_name: row.user_name,
            external_id: row.external_id,
            name: Name {
                formatted: row.name_formatted,
                family_name: row.name_family,
                given_name: row.name_given,
                middle_name: row.name_middle,
                honorific_prefix: row.name_prefix,
                honorific_suffix: row.name_suffix,
            },
            display_name: row.display_name,
            nick_name: row.nick_name,
            profile_url: row.profile_url,
            title: row.title,
            user_type: row.user_type,
            preferred_language: row.preferred_language,
            locale: row.locale,
            timezone: row.timezone,
            active: row.active,
            mfa_required: row.mfa_required,
            emails,
        },
        version: row.version,
        created: row.created_at,
        last_modified: row.updated_at,
        totp,
    }
}

/// Now, to the millisecond: what `meta.created` and `meta.lastModified` show, so that a
/// filter naming the time a resource shows matches it on both backends (PostgreSQL would
/// keep microseconds, and `eq` on the shown time would match nothing).
pub(super) fn now_ms() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}

/// Copies the client-writable attributes onto an active model.
fn set_attributes(model: &mut user::ActiveModel, attrs: &UserAttributes) {
    model.user_name = Set(attrs.user_name.clone());
    model.user_name_lower = Set(attrs.user_name.to_lowercase());
    model.external_id = Set(attrs.external_id.clone());
    model.display_name = Set(attrs.display_name.clone());
    model.nick_name = Set(attrs.nick_name.clone());
    model.profile_url = Set(attrs.profile_url.clone());
    model.title = Set(attrs.title.clone());
    model.user_type = Set(attrs.user_type.clone());
    model.preferred_language = Set(attrs.preferred_language.clone());
    model.locale = Set(attrs.locale.clone());
    model.timezone = Set(attrs.timezone.clone());
    model.name_formatted = Set(attrs.name.formatted.clone());
    model.name_family = Set(attrs.name.family_name.clone());
    model.name_given = Set(attrs.name.given_name.clone());
    model.name_middle = Set(attrs.name.middle_name.clone());
    model.name_prefix = Set(attrs.name.honorific_prefix.clone());
    model.name_suffix = Set(attrs.name.honorific_suffix.clone());
    let lowered = |value: &Option<String>| value.as_deref().map(str::to_lowercase);
    model.name_family_lower = Set(lowered(&attrs.name.family_name));
    model.name_given_lower = Set(lowered(&attrs.name.given_name));
    model.display_name_lower = Set(lowered(&attrs.display_name));
    let sort_email = attrs
        .emails
        .iter()
        .find(|e| e.primary)
        .or(attrs.emails.first());
    model.email_lower = Set(sort_email.map(|e| e.value.to_lowercase()));
    model.active = Set(attrs.active);
    model.mfa_required = Set(attrs.mfa_required);
}

async fn insert_emails<C: sea_orm::ConnectionTrait>(
    db: &C,
    user_id: &str,
    emails: &[Email],
) -> Result<(), StoreError> {
    if emails.is_empty() {
        return Ok(());
    }
    let rows = emails
        .iter()
        .enumerate()
        .map(|(i, email)| user_email::ActiveModel {
            user_id: Set(user_id.to_owned()),
            position: Set(i as i32),
            value: Set(email.value.clone()),
            value_lower: Set(email.value.to_lowercase()),
            kind: Set(email.kind.clone()),
            is_primary: Set(email.primary),
            display: Set(email.display.clone()),
            ..Default::default()
        });
    user_email::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

impl UserRepo for Store {
    type Error = StoreError;

    async fn create_user(
        &self,
        attrs: &UserAttributes,
        password_hash: Option<String>,
    ) -> Result<User, StoreError> {
        let now = now_ms();
        let id = UserId::generate();
        let mut model = user::ActiveModel {
            id: Set(id.as_str().to_owned()),
            password_hash: Set(password_hash),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        set_attributes(&mut model, attrs);
        let txn = self.write().await?;
        let row = model.insert(&txn).await.map_err(StoreError::classify)?;
        insert_emails(&txn, &row.id, &attrs.emails).await?;
        totals::changed(&txn, &row.id).await?;
        txn.commit().await?;
        // The row as stored (its timestamps at the database's precision); a new user has
        // exactly the emails given and no second factor, so nothing needs reading back.
        let mut user = to_domain(row, Vec::new(), TotpStatus::None);
        user.attributes.emails = attrs.emails.clone();
        Ok(user)
    }

    async fn find_user_for_sign_in(
        &self,
        user_name: &str,
    ) -> Result<Option<(UserId, Option<String>)>, StoreError> {
        let found: Option<(String, Option<String>)> = user::Entity::find()
            .select_only()
            .columns([user::Column::Id, user::Column::PasswordHash])
            .filter(user::Column::UserNameLower.eq(user_name.to_lowercase()))
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(found.map(|(id, hash)| (UserId::new(id), hash)))
    }

    /// The user's row read once (with its password hash and `sessions_not_before`, which the
    /// domain's user leaves out), its emails and its 2-step verification row.
    async fn sign_in_record(&self, id: &UserId) -> Result<Option<SignInRecord>, StoreError> {
        let Some(row) = user::Entity::find_by_id(id.as_str()).one(&self.db).await? else {
            return Ok(None);
        };
        let (password_hash, sessions_not_before) =
            (row.password_hash.clone(), row.sessions_not_before);
        let (user, mfa) = self.complete(row).await?;
        Ok(Some(SignInRecord {
            user,
            password_hash,
            sessions_not_before,
            mfa,
        }))
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let Some(row) = user::Entity::find_by_id(id.as_str()).one(&self.db).await? else {
            return Ok(None);
        };
        Ok(Some(self.complete(row).await?.0))
    }

    /// Replaces a user's attributes if its version is still `expected_version` (when given);
    /// with `end_sessions`, every grant of the user is revoked in the same transaction.
    async fn replace_user(
        &self,
        id: &UserId,
        attrs: &UserAttributes,
        password: PasswordChange,
        expected_version: Option<i64>,
        end_sessions: bool,
    ) -> Result<User, StoreError> {
        // Read outside the transaction: the conditional update below re-checks the version,
        // and SQLite cannot upgrade a read transaction to a write one under contention.
        let current = user::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await?
            .ok_or(StoreError::NotFound)?;
        if expected_version.is_some_and(|v| v != current.version) {
            return Err(StoreError::VersionMismatch);
        }
        let txn = self.write().await?;
        let mut model = user::ActiveModel {
            version: Set(current.version + 1),
            updated_at: Set(now_ms()),
            ..Default::default()
        };
        set_attributes(&mut model, attrs);
        if let PasswordChange::Set(hash) = password {
            model.password_hash = Set(Some(hash));
        }
        // The version condition makes concurrent writers lose cleanly instead of interleaving.
        let result = user::Entity::update_many()
            .set(model)
            .filter(user::Column::Id.eq(id.as_str()))
            .filter(user::Column::Version.eq(current.version))
            .exec(&txn)
            .await
            .map_err(StoreError::classify)?;
        if result.rows_affected != 1 {
            return Err(StoreError::VersionMismatch);
        }
        user_email::Entity::delete_many()
            .filter(user_email::Column::UserId.eq(id.as_str()))
            .exec(&txn)
            .await?;
        insert_emails(&txn, id.as_str(), &attrs.emails).await?;
        if end_sessions {
            Store::revoke_user_grants(&txn, id, Utc::now()).await?;
        }
        totals::changed(&txn, id.as_str()).await?;
        txn.commit().await?;
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    /// Deletes a user if its version is still `expected_version` (when given) and revokes
    /// their bypass codes; returns the ids of the codes revoked.
    async fn delete_user(
        &self,
        id: &UserId,
        expected_version: Option<i64>,
        by: &str,
    ) -> Result<Vec<String>, StoreError> {
        let txn = self.write().await?;
        let mut delete = user::Entity::delete_many().filter(user::Column::Id.eq(id.as_str()));
        if let Some(version) = expected_version {
            delete = delete.filter(user::Column::Version.eq(version));
        }
        let result = delete.exec(&txn).await?;
        if result.rows_affected != 1 {
            return match user::Entity::find_by_id(id.as_str()).one(&txn).await? {
                Some(_) => Err(StoreError::VersionMismatch),
                None => Err(StoreError::NotFound),
            };
        }
        // The user's codes stay, revoked, for the audit trail.
        let revoked = Store::revoke_user_codes(&txn, id, None, by, Utc::now()).await?;
        Store::revoke_user_grants(&txn, id, Utc::now()).await?;
        totals::changed(&txn, id.as_str()).await?;
        txn.commit().await?;
        Ok(revoked)
    }

    /// Lists users matching a filter, in `sort` order and then oldest first; `start_index`
    /// is 1-based as in SCIM.
    async fn list_users(
        &self,
        filter: Option<&UserFilter>,
        sort: Option<Sort<UserField>>,
        start_index: u64,
        count: u64,
    ) -> Result<UserPage, StoreError> {
        let condition = match filter {
            Some(f) => user_condition(f, Emails::Collected, self.db.get_database_backend()),
            None => Condition::all(),
        };
        let offset = start_index.saturating_sub(1);
        let counting = self.count_statement(condition.clone());
        let wanted = |total: u64| count.min(total.saturating_sub(offset));
        // How many users there are only weighs a walk against collecting (kept a few
        // seconds: asked here, not while a snapshot holds a connection).
        let users = match filter {
            Some(_) => self.rough_count_users().await?,
            None => 0,
        };
        // The total first: it says whether there is a page at all and how many users match,
        // which chooses how the page is read. A total kept since no user changed costs no
        // statement; the page read with it shows which state of the users it is of
        // (`page_changes`), and when that is the state the total was counted at, the two agree.
        let mut known = None;
        let order = Totals::order_key(&counting, sort);
        if let Some(recalled) = self.totals.recall(&counting) {
            let now = Instant::now();
            // The page, the state of the users it was read at, and since when where it starts
            // is known; `None` where a user was written since (read below, with the total).
            let read = match wanted(recalled.total) {
                0 => Some((Vec::new(), Totals::changes(&self.db).await?, now)),
                n => {
                    let at = ((offset, n), (recalled.total, users));
                    let kept = recalled.changes.map(|changes| (changes, order.as_str()));
                    match self.read_on(filter, sort, kept, at).await? {
                        ReadOn::Page(page, since) => Some((page, recalled.changes, since)),
                        ReadOn::Moved => None,
                        ReadOn::Not => {
                            let (page, changes) = self
                                .page(&self.db, filter, sort, condition.clone(), at)
                                .await?;
                            Some((page, changes, now))
                        }
                    }
                }
            };
            if let Some((page, changes, since)) = read
                && changes == recalled.changes
            {
                self.keep_positions(changes, (&order, since), offset, &page);
                known = Some((recalled.total, page));
            }
        }
        // Otherwise a user was written since (the total, or where a page read from the end
        // starts, may be off by it): the total and the page are read in one snapshot.
        let (total, users) = match known {
            Some(known) => known,
            None => {
                let snapshot = self.snapshot().await?;
                let counted = self.totals.count_now(&snapshot, counting).await?;
                let total = counted.total;
                let page = match wanted(total) {
                    0 => Vec::new(),
                    n => {
                        let at = ((offset, n), (total, users));
                        self.page(&snapshot, filter, sort, condition, at).await?.0
                    }
                };
                snapshot.commit().await?;
                let since = Instant::now();
                self.keep_positions(counted.changes, (&order, since), offset, &page);
                (total, page)
            }
        };
        Ok(UserPage { total, users })
    }
}

/// How a page read on from a kept position went.
enum ReadOn {
    /// The page, and when the position it was read from was first read.
    Page(Vec<User>, Instant),
    /// A user was written since the position was kept.
    Moved,
    /// Not read on (no position kept near enough, or the read came back short).
    Not,
}

/// A page row's emails (`page_emails` of [`super::user_query`]): a JSON array of `[value,
/// type, primary, display]` in the client's order, or NULL for none. PostgreSQL writes
/// `primary` as a JSON boolean, SQLite as 0 or 1.
fn page_emails(json: Option<String>) -> Result<Vec<Email>, StoreError> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let rows: Vec<(String, Option<String>, Flag, Option<String>)> =
        serde_json::from_str(&json).map_err(|_| StoreError::Corrupt("a page's emails"))?;
    Ok(rows
        .into_iter()
        .map(|(value, kind, Flag(primary), display)| Email {
            value,
            kind,
            primary,
            display,
        })
        .collect())
}

/// A flag as either backend writes it in JSON: a boolean, or 0 / 1. (An untagged enum would
/// try one form, build an error, and then the other, for every email of a page.)
struct Flag(bool);

impl<'de> serde::Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl serde::de::Visitor<'_> for Either {
            type Value = Flag;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean, or 0 or 1")
            }
            fn visit_bool<E>(self, flag: bool) -> Result<Flag, E> {
                Ok(Flag(flag))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Flag, E> {
                Ok(Flag(n > 0))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Flag, E> {
                Ok(Flag(n > 0))
            }
        }
        deserializer.deserialize_any(Either)
    }
}

impl Store {
    /// A user's row made whole: their emails and their 2-step verification row (also
    /// returned, for a sign-in's checks).
    async fn complete(
        &self,
        row: user::Model,
    ) -> Result<(User, Option<crate::domain::totp::MfaRecord>), StoreError> {
        let emails = user_email::Entity::find()
            .filter(user_email::Column::UserId.eq(row.id.as_str()))
            .all(&self.db)
            .await?;
        let mfa = user_mfa::Entity::find_by_id(row.id.as_str())
            .one(&self.db)
            .await?;
        let user = to_domain(row, in_order(emails), totp_status(mfa.as_ref()));
        Ok((user, mfa.map(super::mfa::record)))
    }

    /// One state of the users to read from: a read-only REPEATABLE READ transaction on
    /// PostgreSQL; on SQLite a (deferred) transaction reads one snapshot of the WAL from its
    /// first read on.
    async fn snapshot(&self) -> Result<DatabaseTransaction, StoreError> {
        Ok(match self.db.get_database_backend() {
            DbBackend::Postgres => {
                self.db
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await?
            }
            _ => self.db.begin().await?,
        })
    }

    /// The `wanted` users after `offset` of the `total` that meet the filter (of `users`), in
    /// page order, with their emails and TOTP state, and the sum of `user_changes` they were
    /// read at (`None` for no rows).
    async fn page<C: ConnectionTrait>(
        &self,
        db: &C,
        filter: Option<&UserFilter>,
        sort: Option<Sort<UserField>>,
        condition: Condition,
        ((offset, wanted), (total, users)): ((u64, u64), (u64, u64)),
    ) -> Result<(Vec<User>, Option<i64>), StoreError> {
        // A page nearer the end is read from the end: in the reverse order, skipping the
        // matches after it, so the last page costs what the first does.
        let after = total - offset - wanted;
        let (sort, offset, backwards) = if after < offset {
            (Some(reversed(sort)), after, true)
        } else {
            (sort, offset, false)
        };
        let statement = self
            .walk_query(filter, sort, (offset, wanted), (total, users))
            .unwrap_or_else(|| self.page_query(filter, sort, condition, offset, wanted));
        let (mut rows, changes) = Self::page_rows(db, statement).await?;
        metrics::counter!("scim_user_pages_total", "read" => "from_an_end").increment(1);
        if backwards {
            rows.reverse();
        }
        Ok((rows, changes))
    }

    /// A page read on from a user whose position in the page order is kept at the state of
    /// the users the total was counted at (`kept`: that sum of `user_changes` and the
    /// order's key), where that skips at most half of what reading from either end would
    /// ([`Store::read_on_query`]).
    async fn read_on(
        &self,
        filter: Option<&UserFilter>,
        sort: Option<Sort<UserField>>,
        kept: Option<(i64, &str)>,
        ((offset, wanted), (total, users)): ((u64, u64), (u64, u64)),
    ) -> Result<ReadOn, StoreError> {
        let Some((changes, order)) = kept else {
            return Ok(ReadOn::Not);
        };
        let Some(kept) = self.totals.position_at_or_before(changes, order, offset) else {
            return Ok(ReadOn::Not);
        };
        let skip = offset - kept.at;
        if offset == 0 || skip.saturating_mul(2) > offset.min(total - offset - wanted) {
            return Ok(ReadOn::Not);
        }
        let Some(statement) =
            self.read_on_query(filter, sort, (&kept.user, skip, wanted), (total, users))
        else {
            return Ok(ReadOn::Not);
        };
        let (rows, read_at) = Self::page_rows(&self.db, statement).await?;
        let (how, read) = match read_at {
            Some(at) if at != changes => ("kept_position_moved", ReadOn::Moved),
            _ if rows.len() as u64 != wanted => ("kept_position_short", ReadOn::Not),
            _ => ("kept_position", ReadOn::Page(rows, kept.since)),
        };
        metrics::counter!("scim_user_pages_total", "read" => how).increment(1);
        Ok(read)
    }

    /// Keeps where the first and last user of a page stand in its order (the page starting
    /// at `offset`), read at the sum of `user_changes` `changes`; `since` is when the
    /// position it was read from was first read (or now), which ages with it.
    fn keep_positions(
        &self,
        changes: Option<i64>,
        (order, since): (&str, Instant),
        offset: u64,
        page: &[User],
    ) {
        if let (Some(changes), Some(first), Some(last)) = (changes, page.first(), page.last()) {
            let last_at = offset + page.len() as u64 - 1;
            self.totals.keep_positions(
                changes,
                order.to_owned(),
                since,
                [
                    (offset, first.id.as_str().to_owned()),
                    (last_at, last.id.as_str().to_owned()),
                ],
            );
        }
    }

    /// The users a page statement reads, with their emails and TOTP state, and the sum of
    /// `user_changes` they were read at (`None` for no rows).
    async fn page_rows<C: ConnectionTrait>(
        db: &C,
        statement: sea_orm::Statement,
    ) -> Result<(Vec<User>, Option<i64>), StoreError> {
        let mut changes = None;
        let mut rows = Vec::new();
        for result in db.query_all_raw(statement).await? {
            changes = result.try_get::<Option<i64>>("", "page_changes")?;
            let set: Option<bool> = result.try_get("", "page_totp_set")?;
            let confirmed: Option<bool> = result.try_get("", "page_totp_confirmed")?;
            let totp = TotpStatus::of(set.unwrap_or(false), confirmed.unwrap_or(false));
            let emails = page_emails(result.try_get("", "page_emails")?)?;
            rows.push(to_domain(
                user::Model::from_query_result(&result, "")?,
                emails,
                totp,
            ));
        }
        Ok((rows, changes))
    }

    /// How many users there are, up to a few seconds old ([`totals::Totals::rough_count`]).
    async fn rough_count_users(&self) -> Result<u64, StoreError> {
        self.totals
            .rough_count(&self.db, self.count_statement(Condition::all()))
            .await
    }

    fn count_statement(&self, condition: Condition) -> sea_orm::Statement {
        let mut count = Query::select();
        count
            .expr(Expr::cust("COUNT(*)"))
            .from(user::Entity)
            .cond_where(condition);
        self.db.get_database_backend().build(&count)
    }
}
