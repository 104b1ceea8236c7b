//! Users and their emails, and the translation of resolved SCIM filters into SQL.

use std::collections::HashMap;

use chrono::Utc;
use entity::{user, user_email, user_mfa};
use sea_orm::sea_query::{Expr, Func, LikeExpr, Query, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter,
    Set, Statement, TransactionTrait,
};

use super::{Store, StoreError};
use crate::domain::ids::UserId;
use crate::domain::repo::{PasswordChange, UserPage, UserRepo};
use crate::domain::scim::filter::CompareOp;
use crate::domain::scim::search::{Sort, SortOrder};
use crate::domain::scim::user::{
    Email, FieldKind, FilterValue, Name, User, UserAttributes, UserField, UserFilter,
};
use crate::domain::totp::TotpStatus;

fn totp_status(mfa: Option<&user_mfa::Model>) -> TotpStatus {
    mfa.map_or(TotpStatus::None, |m| {
        TotpStatus::of(m.totp_secret.is_some(), m.totp_confirmed)
    })
}

fn to_domain(row: user::Model, emails: Vec<user_email::Model>, totp: TotpStatus) -> User {
    let mut emails = emails;
    emails.sort_by_key(|e| e.position);
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
            emails: emails
                .into_iter()
                .map(|e| Email {
                    value: e.value,
                    kind: e.kind,
                    primary: e.is_primary,
                    display: e.display,
                })
                .collect(),
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
        let txn = self.db.begin().await?;
        let row = model.insert(&txn).await.map_err(StoreError::classify)?;
        insert_emails(&txn, &row.id, &attrs.emails).await?;
        txn.commit().await?;
        // The row as stored (its timestamps at the database's precision); a new user has
        // exactly the emails given and no second factor, so nothing needs reading back.
        let mut user = to_domain(row, Vec::new(), TotpStatus::None);
        user.attributes.emails = attrs.emails.clone();
        Ok(user)
    }

    /// A user by userName (case-insensitive) with their password hash, for sign-in.
    async fn find_user_for_sign_in(
        &self,
        user_name: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let Some(row) = user::Entity::find()
            .filter(user::Column::UserNameLower.eq(user_name.to_lowercase()))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let hash = row.password_hash.clone();
        let id = UserId::new(row.id);
        Ok(self.get_user(&id).await?.map(|user| (user, hash)))
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let Some(row) = user::Entity::find_by_id(id.as_str()).one(&self.db).await? else {
            return Ok(None);
        };
        let emails = user_email::Entity::find()
            .filter(user_email::Column::UserId.eq(id.as_str()))
            .all(&self.db)
            .await?;
        let mfa = user_mfa::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await?;
        Ok(Some(to_domain(row, emails, totp_status(mfa.as_ref()))))
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
        let txn = self.db.begin().await?;
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
        let txn = self.db.begin().await?;
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
            Some(f) => user_condition(f),
            None => Condition::all(),
        };
        let offset = start_index.saturating_sub(1);
        let rows = if count == 0 {
            Vec::new()
        } else {
            let page = self.page_query(filter, sort, condition.clone(), offset, count);
            user::Entity::find()
                .from_raw_sql(page)
                .all(&self.db)
                .await?
        };
        // A short page that is not empty ends the result: its total needs no count.
        let total = if !rows.is_empty() && (rows.len() as u64) < count {
            offset + rows.len() as u64
        } else {
            user::Entity::find()
                .filter(condition)
                .count(&self.db)
                .await?
        };
        if rows.is_empty() {
            return Ok(UserPage {
                total,
                users: Vec::new(),
            });
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut emails: HashMap<String, Vec<user_email::Model>> = HashMap::new();
        let mut mfa: HashMap<String, user_mfa::Model> = HashMap::new();
        if !ids.is_empty() {
            for row in user_mfa::Entity::find()
                .filter(user_mfa::Column::UserId.is_in(ids.clone()))
                .all(&self.db)
                .await?
            {
                mfa.insert(row.user_id.clone(), row);
            }
            for email in user_email::Entity::find()
                .filter(user_email::Column::UserId.is_in(ids))
                .all(&self.db)
                .await?
            {
                emails.entry(email.user_id.clone()).or_default().push(email);
            }
        }
        let users = rows
            .into_iter()
            .map(|row| {
                let own = emails.remove(&row.id).unwrap_or_default();
                let totp = totp_status(mfa.get(&row.id));
                to_domain(row, own, totp)
            })
            .collect();
        Ok(UserPage { total, users })
    }
}

impl Store {
    /// One page of users in `sort` order (oldest first without one), in one statement. The
    /// page's ids are chosen from narrow index entries (so an offset skips entries, not rows),
    /// then the rows read. Without a filter, or with `eq` on a search column and no sort, an
    /// index holds the matches in page order ((created_at, id), a sort column's index, or
    /// (column, created_at, id)) and the page is read off it. Any other filter collects its
    /// matches first (`MATERIALIZED`) by the filter's own index, or a scan of one narrow
    /// index for `co`/`ew` on SQLite, and sorts only those: otherwise a planner without
    /// statistics may walk every user in page order looking for a rare match.
    fn page_query(
        &self,
        filter: Option<&UserFilter>,
        sort: Option<Sort<UserField>>,
        condition: Condition,
        offset: u64,
        count: u64,
    ) -> Statement {
        let backend = self.db.get_database_backend();
        let order = SortSql::new(backend, sort);
        let mut matches = Query::select();
        matches
            .column((user::Entity, user::Column::Id))
            .from(user::Entity)
            .cond_where(condition);
        let in_index_order = match filter {
            None => true,
            Some(UserFilter::Compare(field, CompareOp::Eq, FilterValue::Text(_))) => {
                sort.is_none() && is_bytewise(*field)
            }
            Some(_) => false,
        };
        let inner = if in_index_order {
            let inner = backend.build(&matches);
            Statement {
                sql: format!(
                    "{} ORDER BY {} LIMIT {count} OFFSET {offset}",
                    inner.sql, order.terms
                ),
                ..inner
            }
        } else {
            matches.column((user::Entity, user::Column::CreatedAt));
            if let Some(column) = order
                .column
                .filter(|c| !matches!(c, user::Column::Id | user::Column::CreatedAt))
            {
                matches.column((user::Entity, column));
            }
            let inner = backend.build(&matches);
            Statement {
                sql: format!(
                    "WITH matched AS MATERIALIZED ({}) SELECT id FROM matched \
                     ORDER BY {} LIMIT {count} OFFSET {offset}",
                    inner.sql, order.terms
                ),
                ..inner
            }
        };
        Statement {
            sql: format!(
                "SELECT * FROM users WHERE id IN ({}) ORDER BY {}",
                inner.sql, order.terms
            ),
            ..inner
        }
    }
}

/// A page order in SQL: the ORDER BY terms, over bare column names (so they read the same on
/// `users` and on the `matched` set), and the column they need besides `id, created_at`.
struct SortSql {
    column: Option<user::Column>,
    terms: String,
}

impl SortSql {
    /// Ties (and no sort) go oldest first, or newest first descending, so that one index
    /// read forwards or backwards serves the order. Users without a value come last
    /// ascending and first descending (RFC 7644 §3.4.2.3): PostgreSQL's order already;
    /// SQLite sorts NULL lowest, so its terms lead with `col IS NULL` (which its sort
    /// indexes hold). Text that is not a search column sorts on `lower()`, in code point
    /// order on both backends.
    fn new(backend: sea_orm::DatabaseBackend, sort: Option<Sort<UserField>>) -> Self {
        use sea_orm::IdenStatic;
        let Some(sort) = sort else {
            return Self {
                column: None,
                terms: "created_at, id".to_owned(),
            };
        };
        let dir = match sort.order {
            SortOrder::Ascending => "",
            SortOrder::Descending => " DESC",
        };
        let (column, unique, nullable) = match sort.field {
            UserField::Id => (user::Column::Id, true, false),
            UserField::UserName => (user::Column::UserNameLower, true, false),
            UserField::Created => (user::Column::CreatedAt, false, false),
            UserField::LastModified => (user::Column::UpdatedAt, false, false),
            UserField::EmailValue => (user::Column::EmailLower, false, true),
            field => (user_column(field), false, true),
        };
        let name = column.as_str();
        let postgres = backend == sea_orm::DatabaseBackend::Postgres;
        let key = match sort.field.kind() {
            FieldKind::Text if !is_lowered(sort.field) && postgres => {
                format!("lower({name}) COLLATE \"C\"")
            }
            FieldKind::Text if !is_lowered(sort.field) => format!("lower({name})"),
            _ => name.to_owned(),
        };
        let mut terms = Vec::new();
        if nullable && !postgres {
            terms.push(format!("({key} IS NULL){dir}"));
        }
        terms.push(format!("{key}{dir}"));
        if !unique {
            // The meta times are their own order: ties go by id, as their indexes hold them.
            if !matches!(sort.field, UserField::Created | UserField::LastModified) {
                terms.push(format!("created_at{dir}"));
            }
            terms.push(format!("id{dir}"));
        }
        Self {
            column: Some(column),
            terms: terms.join(", "),
        }
    }
}

fn user_column(field: UserField) -> user::Column {
    match field {
        UserField::Id => user::Column::Id,
        UserField::UserName => user::Column::UserNameLower,
        UserField::ExternalId => user::Column::ExternalId,
        UserField::DisplayName => user::Column::DisplayNameLower,
        UserField::NickName => user::Column::NickName,
        UserField::ProfileUrl => user::Column::ProfileUrl,
        UserField::Title => user::Column::Title,
        UserField::UserType => user::Column::UserType,
        UserField::PreferredLanguage => user::Column::PreferredLanguage,
        UserField::Locale => user::Column::Locale,
        UserField::Timezone => user::Column::Timezone,
        UserField::NameFormatted => user::Column::NameFormatted,
        UserField::NameFamily => user::Column::NameFamilyLower,
        UserField::NameGiven => user::Column::NameGivenLower,
        UserField::NameMiddle => user::Column::NameMiddle,
        UserField::NamePrefix => user::Column::NamePrefix,
        UserField::NameSuffix => user::Column::NameSuffix,
        UserField::Active => user::Column::Active,
        UserField::Created => user::Column::CreatedAt,
        UserField::LastModified => user::Column::UpdatedAt,
        // Email fields are only reached through `email_condition`.
        UserField::EmailValue
        | UserField::EmailType
        | UserField::EmailDisplay
        | UserField::EmailPrimary => user::Column::Id,
    }
}

fn email_column(field: UserField) -> user_email::Column {
    match field {
        UserField::EmailType => user_email::Column::Kind,
        UserField::EmailDisplay => user_email::Column::Display,
        UserField::EmailPrimary => user_email::Column::IsPrimary,
        _ => user_email::Column::ValueLower,
    }
}

/// Columns that already hold a lower-cased copy, so a case-insensitive match can use an index.
fn is_lowered(field: UserField) -> bool {
    matches!(
        field,
        UserField::UserName
            | UserField::EmailValue
            | UserField::NameFamily
            | UserField::NameGiven
            | UserField::DisplayName
    )
}

/// The indexed search columns, which compare bytewise on both backends (the migration
/// gives them PostgreSQL's "C" collation), so a prefix is an index range.
fn is_bytewise(field: UserField) -> bool {
    is_lowered(field) || field == UserField::ExternalId
}

fn user_condition(filter: &UserFilter) -> Condition {
    condition(filter, &|field| {
        Expr::col((user::Entity, user_column(field)))
    })
}

fn email_condition(filter: &UserFilter) -> Condition {
    condition(filter, &|field| {
        Expr::col((user_email::Entity, email_column(field)))
    })
}

fn condition(filter: &UserFilter, column: &dyn Fn(UserField) -> SimpleExpr) -> Condition {
    match filter {
        UserFilter::And(a, b) => Condition::all()
            .add(condition(a, column))
            .add(condition(b, column)),
        UserFilter::Or(a, b) => Condition::any()
            .add(condition(a, column))
            .add(condition(b, column)),
        UserFilter::Not(inner) => condition(inner, column).not(),
        UserFilter::AnyEmail(inner) => {
            let mut emails = Query::select();
            emails
                .column((user_email::Entity, user_email::Column::UserId))
                .from(user_email::Entity)
                .cond_where(email_condition(inner));
            Condition::all().add(Expr::col((user::Entity, user::Column::Id)).in_subquery(emails))
        }
        UserFilter::Present(field) => match field.kind() {
            FieldKind::Text | FieldKind::ExactText => Condition::all()
                .add(column(*field).is_not_null())
                .add(column(*field).ne("")),
            FieldKind::Boolean | FieldKind::Time => {
                Condition::all().add(column(*field).is_not_null())
            }
        },
        UserFilter::Compare(field, op, value) => {
            Condition::all().add(compare(*field, column(*field), *op, value))
        }
    }
}

pub(super) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The least string above every string that starts with `prefix`, in code point order (which
/// is UTF-8 byte order): the prefix with its last character raised by one, after dropping
/// trailing U+10FFFF; `None` when nothing is above (empty, or all U+10FFFF).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            code => char::from_u32(code + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn compare(field: UserField, col: SimpleExpr, op: CompareOp, value: &FilterValue) -> SimpleExpr {
    match value {
        FilterValue::Boolean(b) => match op {
            CompareOp::Ne => col.ne(*b),
            _ => col.eq(*b),
        },
        FilterValue::Time(t) => match op {
            CompareOp::Eq => col.eq(*t),
            CompareOp::Ne => col.ne(*t),
            CompareOp::Gt => col.gt(*t),
            CompareOp::Ge => col.gte(*t),
            CompareOp::Lt => col.lt(*t),
            _ => col.lte(*t),
        },
        FilterValue::Text(text) => {
            let (lhs, text) = match field.kind() {
                FieldKind::ExactText => (col, text.clone()),
                _ if is_lowered(field) => (col, text.to_lowercase()),
                _ => (SimpleExpr::from(Func::lower(col)), text.to_lowercase()),
            };
            let like = |pattern: String| lhs.clone().like(LikeExpr::new(pattern).escape('\\'));
            match op {
                CompareOp::Eq => lhs.eq(text),
                CompareOp::Ne => Condition::any()
                    .add(lhs.clone().ne(text))
                    .add(lhs.is_null())
                    .into(),
                CompareOp::Co => like(format!("%{}%", escape_like(&text))),
                // A range first, which an index serves on both backends (the search columns
                // compare bytewise: SQLite's BINARY, PostgreSQL's "C"); LIKE then keeps
                // only true prefixes.
                CompareOp::Sw if is_bytewise(field) => {
                    let mut range = Condition::all().add(lhs.clone().gte(text.clone()));
                    if let Some(end) = prefix_end(&text) {
                        range = range.add(lhs.clone().lt(end));
                    }
                    range.add(like(format!("{}%", escape_like(&text)))).into()
                }
                CompareOp::Sw => like(format!("{}%", escape_like(&text))),
                CompareOp::Ew => like(format!("%{}", escape_like(&text))),
                CompareOp::Gt => lhs.gt(text),
                CompareOp::Ge => lhs.gte(text),
                CompareOp::Lt => lhs.lt(text),
                CompareOp::Le => lhs.lte(text),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_just_above_every_extension_of_the_prefix() {
        assert_eq!(prefix_end("user0999").as_deref(), Some("user099:"));
        assert_eq!(prefix_end("ab\u{10FFFF}").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
        for prefix in ["user0999", "ä", "ab\u{10FFFF}", "z\u{D7FF}"] {
            let end = prefix_end(prefix).unwrap();
            for tail in ["", "\u{0}", "zzz", "\u{10FFFF}\u{10FFFF}x"] {
                let value = format!("{prefix}{tail}");
                assert!(
                    value.as_str() >= prefix && value < end,
                    "{value:?} vs {end:?}"
                );
            }
        }
    }
}
