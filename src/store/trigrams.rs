//! SQLite's trigram indexes (migration 15) for `co` and `ew` on the text that is unique per
//! user: which of a filter's substring terms they answer, and the candidates they give.
//!
//! A term's candidates are the users (or emails) whose indexed text holds the term's text
//! with case folded: always every match and sometimes a few more, so the term's own
//! comparison still decides. The index is asked only for terms few users hold (probed with a
//! bounded read first): for text most users hold, reading its trigrams' lists and looking up
//! each candidate costs more than reading the narrow index the comparison scans.

use entity::{user, user_email};
use sea_orm::sea_query::{Expr, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DbBackend, ExprTrait, Statement, Value};

use super::{Store, StoreError};
use crate::domain::scim::filter::CompareOp;
use crate::domain::scim::user::{FieldKind, FilterValue, UserField, UserFilter};

/// The substring terms of a filter that the trigram index answers: the attribute and the
/// text as it is compared (lower-cased unless the attribute is compared exactly).
#[derive(Debug, Default)]
pub(super) struct Trigrams(Vec<(UserField, String)>);

/// A term the index may answer is asked of it when fewer than this share (1 / …) of the
/// users hold its text.
const RARE_SHARE: u64 = 8;

impl Trigrams {
    /// The candidates for `field op text` when the index answers that term: a condition on
    /// `users.id` for a user's attribute, on `user_emails.id` for an email's value.
    pub(super) fn candidates(
        &self,
        field: UserField,
        op: CompareOp,
        text: &str,
    ) -> Option<SimpleExpr> {
        let text = compared(field, op, text)?;
        if !self.0.iter().any(|(f, t)| *f == field && *t == text) {
            return None;
        }
        let (table, column) = indexed(field)?;
        let mut hits = Query::select();
        hits.column("rowid")
            .from(table)
            .and_where(Expr::cust_with_values(
                format!("{table} MATCH ?"),
                [phrase(column, &text)],
            ));
        Some(if field == UserField::EmailValue {
            Expr::col((user_email::Entity, user_email::Column::Id)).in_subquery(hits)
        } else {
            let mut keys = Query::select();
            keys.column("user_id")
                .from("user_trigram_keys")
                .and_where(Expr::col("key").in_subquery(hits));
            Expr::col((user::Entity, user::Column::Id)).in_subquery(keys)
        })
    }
}

impl Store {
    /// The `co`/`ew` terms of `filter` (outside `not`) that the trigram index answers on
    /// this database: on SQLite, those whose text fewer than 1/[`RARE_SHARE`] of the `users`
    /// hold, each found by one read of at most that many index entries. None on PostgreSQL,
    /// whose trigram indexes its planner weighs itself.
    pub(super) async fn rare_substrings(
        &self,
        filter: &UserFilter,
        users: u64,
    ) -> Result<Trigrams, StoreError> {
        let mut rare = Trigrams::default();
        if self.db.get_database_backend() != DbBackend::Sqlite {
            return Ok(rare);
        }
        let mut terms = Vec::new();
        substrings(filter, &mut terms);
        let bound = std::cmp::max(users / RARE_SHARE, 16);
        for (field, text) in terms {
            let Some((table, column)) = indexed(field) else {
                continue;
            };
            if rare.0.iter().any(|(f, t)| *f == field && *t == text) {
                continue;
            }
            let probe = Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!(
                    "SELECT COUNT(*) AS held FROM \
                     (SELECT 1 FROM {table} WHERE {table} MATCH ? LIMIT ?)"
                ),
                [phrase(column, &text), Value::from(bound as i64)],
            );
            let held: i64 = match self.db.query_one_raw(probe).await? {
                Some(row) => row.try_get("", "held")?,
                None => 0,
            };
            if (held as u64) < bound {
                rare.0.push((field, text));
            }
        }
        Ok(rare)
    }
}

/// The `co`/`ew` terms outside `not` on indexed attributes, with their compared text.
fn substrings(filter: &UserFilter, terms: &mut Vec<(UserField, String)>) {
    match filter {
        UserFilter::And(a, b) | UserFilter::Or(a, b) => {
            substrings(a, terms);
            substrings(b, terms);
        }
        UserFilter::AnyEmail(inner) => substrings(inner, terms),
        UserFilter::Compare(field, op, FilterValue::Text(text)) => {
            if let Some(text) = compared(*field, *op, text) {
                terms.push((*field, text));
            }
        }
        UserFilter::Compare(..) | UserFilter::Not(_) | UserFilter::Present(_) => {}
    }
}

/// The text a `co`/`ew` term on an indexed attribute compares, when it has the three
/// characters a trigram needs (a shorter text has no trigram to look up).
fn compared(field: UserField, op: CompareOp, text: &str) -> Option<String> {
    if !matches!(op, CompareOp::Co | CompareOp::Ew) || indexed(field).is_none() {
        return None;
    }
    let text = match field.kind() {
        FieldKind::ExactText => text.to_owned(),
        _ => text.to_lowercase(),
    };
    // (FTS5 would end the phrase at a NUL and give fewer candidates than there are matches.)
    (text.chars().count() >= 3 && !text.contains('\0')).then_some(text)
}

/// The FTS5 table and column that hold an attribute's compared text.
fn indexed(field: UserField) -> Option<(&'static str, &'static str)> {
    Some(match field {
        UserField::Id => ("user_trigrams", "id"),
        UserField::UserName => ("user_trigrams", "user_name"),
        UserField::ExternalId => ("user_trigrams", "external_id"),
        UserField::DisplayName => ("user_trigrams", "display_name"),
        UserField::ProfileUrl => ("user_trigrams", "profile_url"),
        UserField::EmailValue => ("email_trigrams", "value"),
        _ => return None,
    })
}

/// An FTS5 query for `text` as one phrase in `column`: with the trigram tokenizer, the rows
/// whose column holds the text as a substring, case folded. (Inside a quoted FTS5 string
/// only `"` is special, written twice.)
fn phrase(column: &str, text: &str) -> Value {
    Value::from(format!("{column} : \"{}\"", text.replace('"', "\"\"")))
}
