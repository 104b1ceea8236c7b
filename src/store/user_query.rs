//! The SQL of a user search: a resolved SCIM filter as a condition, a page in sort order
//! (off an index where one holds that order), and the sort terms.

use entity::{user, user_email};
use sea_orm::sea_query::{Expr, Func, LikeExpr, Query, SelectStatement, SimpleExpr, UnionType};
use sea_orm::{Condition, ExprTrait, Statement};

use super::Store;
use crate::domain::scim::filter::CompareOp;
use crate::domain::scim::search::{Sort, SortOrder};
use crate::domain::scim::user::{FieldKind, FilterValue, UserField, UserFilter};

impl Store {
    /// One page of users in `sort` order (oldest first without one), in one statement. The
    /// page's ids are chosen from narrow index entries (so an offset skips entries, not rows),
    /// then the rows read. Without a filter, or with `eq` on a search column and no sort, an
    /// index holds the matches in page order ((created_at, id), a sort column's index, or
    /// (column, created_at, id)) and the page is read off it. Any other filter collects its
    /// matches first (`MATERIALIZED`) by the filter's own index, or a scan of one narrow
    /// index for `co`/`ew` on SQLite, and sorts only those: otherwise a planner without
    /// statistics may walk every user in page order looking for a rare match.
    pub(super) fn page_query(
        &self,
        filter: Option<&UserFilter>,
        sort: Option<Sort<UserField>>,
        condition: Condition,
        offset: u64,
        count: u64,
    ) -> Statement {
        let backend = self.db.get_database_backend();
        let order = SortSql::new(backend, sort);
        let mut matches = user_ids(condition);
        let in_index_order = filter.is_none_or(|f| Self::in_index_order(f, sort));
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
            sql: page_rows(backend, &inner.sql, &order.terms),
            ..inner
        }
    }
}

/// The ids of the users that meet `condition`: what a page's users are chosen from.
pub(super) fn user_ids(condition: Condition) -> SelectStatement {
    let mut ids = Query::select();
    ids.column((user::Entity, user::Column::Id))
        .from(user::Entity)
        .cond_where(condition);
    ids
}

/// The rows of the users whose ids `ids` selects, in `terms` order, each with what else a page
/// shows of them (their emails in order, as a JSON array of `[value, type, primary,
/// display]`; whether a TOTP factor is set and confirmed) and the sum of `user_changes`: the
/// state of the users the page is of, which a total must have been counted at
/// ([`super::totals`]). One statement, so the users and their emails are of one state.
pub(super) fn page_rows(backend: sea_orm::DatabaseBackend, ids: &str, terms: &str) -> String {
    let mfa = "FROM user_mfa WHERE user_mfa.user_id = users.id";
    let own = "FROM user_emails WHERE user_emails.user_id = users.id";
    let emails = match backend {
        sea_orm::DatabaseBackend::Postgres => format!(
            "(SELECT json_agg(json_build_array(value, kind, is_primary, display) \
             ORDER BY position)::text {own})"
        ),
        _ => format!(
            "(SELECT json_group_array(json_array(value, kind, is_primary, display) \
             ORDER BY position) {own})"
        ),
    };
    format!(
        "SELECT users.*, {changes} AS page_changes, {emails} AS page_emails, \
         (SELECT totp_secret IS NOT NULL {mfa}) AS page_totp_set, \
         (SELECT totp_confirmed {mfa}) AS page_totp_confirmed \
         FROM users WHERE id IN ({ids}) ORDER BY {terms}",
        changes = super::totals::CHANGES
    )
}

impl Store {
    /// Whether an index holds the filter's matches in page order: no filter, `eq` on a
    /// search column in creation order (no sort, or by `meta.created`), or a comparison on the order's own key (a range of
    /// `meta.created` without a sort or sorted by it, of `meta.lastModified` sorted by it, of
    /// `userName` sorted by it): the page is then a stretch of that index.
    pub(super) fn in_index_order(filter: &UserFilter, sort: Option<Sort<UserField>>) -> bool {
        let UserFilter::Compare(field, op, value) = filter else {
            return false;
        };
        let ordered = || !matches!(op, CompareOp::Ne | CompareOp::Co | CompareOp::Ew);
        let sorted_by = sort.map(|s| s.field);
        match (field, value) {
            (field, FilterValue::Text(_)) if *op == CompareOp::Eq => {
                is_bytewise(*field) && matches!(sorted_by, None | Some(UserField::Created))
            }
            (UserField::Created, FilterValue::Time(_)) => {
                ordered() && matches!(sorted_by, None | Some(UserField::Created))
            }
            (UserField::LastModified, FilterValue::Time(_)) => {
                ordered() && sorted_by == Some(UserField::LastModified)
            }
            (UserField::UserName, FilterValue::Text(_)) => {
                ordered() && sorted_by == Some(UserField::UserName)
            }
            _ => false,
        }
    }
}

/// A page order in SQL: the ORDER BY terms, over bare column names (so they read the same on
/// `users` and on the `matched` set), and the column they need besides `id, created_at`.
pub(super) struct SortSql {
    column: Option<user::Column>,
    pub(super) terms: String,
    /// The SQLite index that holds this order (for orders [`Store::walk_query`] walks).
    pub(super) sqlite_index: String,
    /// The order's key (`created_at` without a sort), and the columns that break its ties
    /// (none for a unique key), as [`super::user_walk`] asks them.
    pub(super) key: String,
    pub(super) ties: &'static [&'static str],
    /// SQLite's leading term for a key that may be missing: `(key IS NULL)`.
    pub(super) null_term: Option<String>,
    pub(super) descending: bool,
}

impl SortSql {
    /// Ties (and no sort) go oldest first, or newest first descending, so that one index
    /// read forwards or backwards serves the order. Users without a value come last
    /// ascending and first descending (RFC 7644 §3.4.2.3): PostgreSQL's order already;
    /// SQLite sorts NULL lowest, so its terms lead with `col IS NULL` (which its sort
    /// indexes hold). Text that is not a search column sorts on `lower()`, in code point
    /// order on both backends.
    pub(super) fn new(backend: sea_orm::DatabaseBackend, sort: Option<Sort<UserField>>) -> Self {
        use sea_orm::IdenStatic;
        let Some(sort) = sort else {
            return Self {
                column: None,
                terms: "created_at, id".to_owned(),
                sqlite_index: "idx_users_created_at_id".to_owned(),
                key: "created_at".to_owned(),
                ties: &["id"],
                null_term: None,
                descending: false,
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
        let null_term = (nullable && !postgres).then(|| format!("({key} IS NULL)"));
        // The meta times are their own order: ties go by id, as their indexes hold them.
        let ties: &'static [&'static str] = match sort.field {
            _ if unique => &[],
            UserField::Created | UserField::LastModified => &["id"],
            _ => &["created_at", "id"],
        };
        let terms: Vec<String> = null_term
            .iter()
            .chain(std::iter::once(&key))
            .map(|term| term.as_str())
            .chain(ties.iter().copied())
            .map(|term| format!("{term}{dir}"))
            .collect();
        let sqlite_index = match sort.field {
            // The table's PRIMARY KEY and UNIQUE constraints, in the order the first
            // migration declares them.
            UserField::Id => "sqlite_autoindex_users_1".to_owned(),
            UserField::UserName => "sqlite_autoindex_users_2".to_owned(),
            UserField::Created => "idx_users_created_at_id".to_owned(),
            UserField::LastModified => "idx_users_updated_at_id".to_owned(),
            _ => format!("idx_users_{name}_sort"),
        };
        Self {
            column: Some(column),
            terms: terms.join(", "),
            sqlite_index,
            key,
            ties,
            null_term,
            descending: sort.order == SortOrder::Descending,
        }
    }
}

/// The page order read backwards: every term reversed (users without a value then come
/// first ascending, as they come last descending); no sort is oldest first, so newest first.
pub(super) fn reversed(sort: Option<Sort<UserField>>) -> Sort<UserField> {
    match sort {
        Some(Sort { field, order }) => Sort {
            field,
            order: match order {
                SortOrder::Ascending => SortOrder::Descending,
                SortOrder::Descending => SortOrder::Ascending,
            },
        },
        None => Sort {
            field: UserField::Created,
            order: SortOrder::Descending,
        },
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

/// Whether an index finds the filter's matches: a comparison other than `ne`, `co` and `ew`
/// on an indexed attribute (an email's value through the emails' own index), both sides of
/// an `or`, either side of an `and`.
pub(super) fn seeks(filter: &UserFilter) -> bool {
    match filter {
        UserFilter::And(a, b) => seeks(a) || seeks(b),
        UserFilter::Or(a, b) => seeks(a) && seeks(b),
        UserFilter::AnyEmail(inner) => seeks(inner),
        UserFilter::Compare(field, op, _) => {
            !matches!(op, CompareOp::Ne | CompareOp::Co | CompareOp::Ew) && has_index(*field)
        }
        UserFilter::Not(_) | UserFilter::Present(_) => false,
    }
}

/// Whether the filter asks anything of a user's emails.
fn names_emails(filter: &UserFilter) -> bool {
    match filter {
        UserFilter::And(a, b) | UserFilter::Or(a, b) => names_emails(a) || names_emails(b),
        UserFilter::Not(inner) => names_emails(inner),
        UserFilter::AnyEmail(_) => true,
        UserFilter::Compare(..) | UserFilter::Present(_) => false,
    }
}

/// Whether an index holds the users in this attribute's order (then `created_at, id`): the
/// table's keys, the meta times, the search columns and migration 13's text attributes.
pub(super) fn has_index(field: UserField) -> bool {
    is_bytewise(field)
        || has_sort_index(field)
        || matches!(
            field,
            UserField::Id | UserField::Created | UserField::LastModified
        )
}

/// The users' text attributes without a lower-cased copy, which migration 13 indexes on
/// `lower(col)` then `(created_at, id)`.
fn has_sort_index(field: UserField) -> bool {
    matches!(
        field,
        UserField::NickName
            | UserField::ProfileUrl
            | UserField::Title
            | UserField::UserType
            | UserField::PreferredLanguage
            | UserField::Locale
            | UserField::Timezone
            | UserField::NameFormatted
            | UserField::NameMiddle
            | UserField::NamePrefix
            | UserField::NameSuffix
    )
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

/// How a condition on a user's emails is asked.
#[derive(Clone, Copy)]
pub(super) enum Emails {
    /// `users.id IN (the matching emails' users)`: the emails' own index finds the matches,
    /// for filters over every user.
    Collected,
    /// `EXISTS (a matching email of this user)`: one probe per user, for users read in page
    /// order (a walk).
    Probed,
}

pub(super) fn user_condition(
    filter: &UserFilter,
    emails: Emails,
    backend: sea_orm::DatabaseBackend,
) -> Condition {
    let ask = Ask {
        emails,
        postgres: backend == sea_orm::DatabaseBackend::Postgres,
    };
    condition(filter, ask, &|field| {
        Expr::col((user::Entity, user_column(field)))
    })
}

fn email_condition(filter: &UserFilter, postgres: bool) -> Condition {
    let ask = Ask {
        emails: Emails::Collected,
        postgres,
    };
    condition(filter, ask, &|field| {
        Expr::col((user_email::Entity, email_column(field)))
    })
}

/// How a condition is asked: emails collected or probed, and of which backend.
#[derive(Clone, Copy)]
struct Ask {
    emails: Emails,
    postgres: bool,
}

fn condition(filter: &UserFilter, ask: Ask, column: &dyn Fn(UserField) -> SimpleExpr) -> Condition {
    match filter {
        UserFilter::And(a, b) => Condition::all()
            .add(condition(a, ask, column))
            .add(condition(b, ask, column)),
        // An `or` over a user's emails and something else, asked of every user: each side
        // finds its own matches by its own index and the users are those of either. (As `A OR
        // id IN (…)`, PostgreSQL reads every user to check the `OR`.)
        UserFilter::Or(a, b) if matches!(ask.emails, Emails::Collected) && names_emails(filter) => {
            let side = |filter: &UserFilter| {
                let mut side = Query::select();
                side.column((user::Entity, user::Column::Id))
                    .from(user::Entity)
                    .cond_where(condition(filter, ask, column));
                side
            };
            let mut either = side(a);
            either.union(UnionType::All, side(b));
            Condition::all().add(Expr::col((user::Entity, user::Column::Id)).in_subquery(either))
        }
        UserFilter::Or(a, b) => Condition::any()
            .add(condition(a, ask, column))
            .add(condition(b, ask, column)),
        // Two-valued, as SCIM's `not` and PATCH paths are: a comparison with a missing value
        // is false, so `not` of it is true (SQL's NOT would leave the user out, and on
        // SQLite the seeking term of `compare_sorted_text` would turn that NULL into false).
        UserFilter::Not(inner) => {
            // `ne` on text counts a missing value as not equal, so `not` of it is exactly
            // `eq`, which an index finds (the form below reads every user).
            if let UserFilter::Compare(field, CompareOp::Ne, value @ FilterValue::Text(_)) =
                &**inner
            {
                let eq = UserFilter::Compare(*field, CompareOp::Eq, value.clone());
                return condition(&eq, ask, column);
            }
            let inner = SimpleExpr::from(condition(inner, ask, column));
            let placeholder = if ask.postgres {
                "($1) IS NOT TRUE"
            } else {
                "(?) IS NOT TRUE"
            };
            Condition::all().add(Expr::cust_with_expr(placeholder, inner))
        }
        UserFilter::AnyEmail(inner) => {
            let mut matching = Query::select();
            matching.from(user_email::Entity);
            match ask.emails {
                Emails::Collected => {
                    matching
                        .column((user_email::Entity, user_email::Column::UserId))
                        .cond_where(email_condition(inner, ask.postgres));
                    Condition::all()
                        .add(Expr::col((user::Entity, user::Column::Id)).in_subquery(matching))
                }
                Emails::Probed => {
                    matching.expr(Expr::val(1)).cond_where(
                        Condition::all()
                            .add(email_condition(inner, ask.postgres))
                            .add(
                                Expr::col((user_email::Entity, user_email::Column::UserId))
                                    .equals((user::Entity, user::Column::Id)),
                            ),
                    );
                    Condition::all().add(Expr::exists(matching))
                }
            }
        }
        UserFilter::Present(field) => match field.kind() {
            FieldKind::Text | FieldKind::ExactText => Condition::all()
                .add(column(*field).is_not_null())
                .add(column(*field).ne("")),
            FieldKind::Boolean | FieldKind::Time => {
                Condition::all().add(column(*field).is_not_null())
            }
        },
        UserFilter::Compare(field, op, value) => match value {
            FilterValue::Text(text) if has_sort_index(*field) => Condition::all().add(
                compare_sorted_text(column(*field), *op, &text.to_lowercase(), ask.postgres),
            ),
            _ => Condition::all().add(compare(*field, column(*field), *op, value)),
        },
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

/// A comparison on a text column of migration 13, by the key its sort index holds
/// (`lower(col)`, on PostgreSQL in code point order), so that `eq`, `sw` and ranges seek in
/// it: on SQLite, whose index leads with `(lower(col) IS NULL)`, with that term stated (a
/// comparison with a value is never true of a missing one). `co` and `ew` ask `lower(col)`
/// itself (PostgreSQL's trigram index on `profile_url` is on that).
fn compare_sorted_text(col: SimpleExpr, op: CompareOp, text: &str, postgres: bool) -> SimpleExpr {
    let lowered = SimpleExpr::from(Func::lower(col));
    let key = if postgres {
        Expr::cust_with_expr("$1 COLLATE \"C\"", lowered.clone())
    } else {
        lowered.clone()
    };
    let like = |pattern: String| lowered.clone().like(LikeExpr::new(pattern).escape('\\'));
    let text = text.to_owned();
    let seek = match op {
        CompareOp::Ne => {
            return Condition::any()
                .add(key.ne(text))
                .add(lowered.is_null())
                .into();
        }
        CompareOp::Co => return like(format!("%{}%", escape_like(&text))),
        CompareOp::Ew => return like(format!("%{}", escape_like(&text))),
        CompareOp::Eq => key.eq(text),
        CompareOp::Sw => {
            let mut range = Condition::all().add(key.clone().gte(text.clone()));
            if let Some(end) = prefix_end(&text) {
                range = range.add(key.lt(end));
            }
            range.add(like(format!("{}%", escape_like(&text)))).into()
        }
        CompareOp::Gt => key.gt(text),
        CompareOp::Ge => key.gte(text),
        CompareOp::Lt => key.lt(text),
        CompareOp::Le => key.lte(text),
    };
    if postgres {
        seek
    } else {
        Condition::all()
            // (`?` is SQLite's placeholder for the expression; PostgreSQL's is `$1`.)
            .add(Expr::cust_with_expr("(? IS NULL) = 0", lowered))
            .add(seek)
            .into()
    }
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
