//! Pages read by walking the order's index with the filter checked per user, which stops
//! once the page is complete: from the first user (or the last, for a page near the end),
//! where many users match ([`Store::walk_query`]); or on from a user whose position in the
//! page order is known (kept by [`super::totals::Totals::keep_positions`] from an earlier
//! page at the same state of the users), so that a client paging through a large result,
//! or asking a page again, reads about a page's worth of the order's index
//! ([`Store::read_on_query`]).

use entity::user;
use sea_orm::sea_query::{Alias, Asterisk, Expr, Order, Query, SelectStatement, UnionType};
use sea_orm::{Condition, DatabaseBackend, Statement};

use super::Store;
use super::user_query::{Emails, SortSql, has_index, page_rows, seeks, user_condition, user_ids};
use crate::domain::scim::search::Sort;
use crate::domain::scim::user::{UserField, UserFilter};

/// How many users a walk may read per user a collecting plan would: a walk reads about
/// `depth × users / total` users, collecting reads `total` matches and sorts them.
const WALK_RATIO: u128 = 2;

/// A filter an index finds ([`seeks`]) collects its matches rather than walking unless they
/// are at least this share of the users (1 / …): their number is then what collecting costs,
/// whereas a walk's estimate assumes matches spread evenly in page order, which a range of
/// times (the newest users) or of names is not.
const COLLECT_SEEKABLE_SHARE: u64 = 8;

impl Store {
    /// A filter many users match needs no collecting and sorting of all its matches: the
    /// page is read by walking the order's index with the filter checked per user (emails
    /// probed per user, `EXISTS`), which stops once the page is complete. With `total`
    /// matches among `users`, evenly spread, that reads about `depth × users / total` users;
    /// it is chosen when that is at most [`WALK_RATIO`] × `total` (where its matches come
    /// late in page order, a walk still reads at most every user once, no more than a scan),
    /// unless an index finds the matches and they are few ([`COLLECT_SEEKABLE_SHARE`]).
    /// `None` where a walk cannot help: no filter or an index already in page order, or a
    /// sort order no index holds (the walk would sort every user).
    pub(super) fn walk_query(
        &self,
        filter: Option<&UserFilter>,
        sort: Option<Sort<UserField>>,
        (offset, count): (u64, u64),
        (total, users): (u64, u64),
    ) -> Option<Statement> {
        let filter = filter?;
        let depth = offset + std::cmp::min(count, total.saturating_sub(offset));
        if !Self::walk_pays(filter, sort, depth, (total, users)) {
            return None;
        }
        let backend = self.db.get_database_backend();
        let order = SortSql::new(backend, sort);
        let matches = user_ids(user_condition(filter, Emails::Probed, backend));
        let mut inner = backend.build(&matches);
        if backend == DatabaseBackend::Sqlite {
            inner.sql = indexed_by(&inner.sql, &order.sqlite_index);
        }
        let ids = format!(
            "{} ORDER BY {} LIMIT {count} OFFSET {offset}",
            inner.sql, order.terms
        );
        Some(Statement {
            sql: page_rows(backend, &ids, &order.terms),
            ..inner
        })
    }

    /// Whether walking the order's index until `depth` matches are found (the filter checked
    /// per user) reads fewer users than collecting the `total` matches among `users` and
    /// sorting them: the rules of [`Store::walk_query`].
    pub(super) fn walk_pays(
        filter: &UserFilter,
        sort: Option<Sort<UserField>>,
        depth: u64,
        (total, users): (u64, u64),
    ) -> bool {
        if !sort.is_none_or(|s| has_index(s.field))
            || Self::in_index_order(filter, sort)
            || total == 0
            || (total.saturating_mul(COLLECT_SEEKABLE_SHARE) < users && seeks(filter))
        {
            return false;
        }
        let (total, users) = (u128::from(total), u128::from(std::cmp::max(users, total)));
        u128::from(depth) * users <= WALK_RATIO * total * total
    }

    /// The `wanted` users after the first `skip` from user `from` on (who is at the kept
    /// position) in `sort` order, by walking the order's index from that user with the filter
    /// checked per user; `None` where that would not read fewer users than the other plans
    /// (the rules of [`Store::walk_query`], with the walk starting at the kept user).
    ///
    /// Users without a value for the sort key (last ascending) are not reached: a read that
    /// comes back short must be read again the usual way, as must one at another state of the
    /// users than the position was kept at (the rows carry `page_changes`).
    pub(super) fn read_on_query(
        &self,
        filter: Option<&UserFilter>,
        sort: Option<Sort<UserField>>,
        (from, skip, wanted): (&str, u64, u64),
        (total, users): (u64, u64),
    ) -> Option<Statement> {
        if !sort.is_none_or(|s| has_index(s.field))
            || filter.is_some_and(|f| !Self::walk_pays(f, sort, skip + wanted, (total, users)))
        {
            return None;
        }
        let backend = self.db.get_database_backend();
        let order = SortSql::new(backend, sort);
        let condition = match filter {
            Some(f) => user_condition(f, Emails::Probed, backend),
            None => Condition::all(),
        };
        let (ge, gt) = comparisons(&order);
        let key = order.key.as_str();
        let read = if order.ties.is_empty() {
            // A unique key: from the user on is one range of it.
            let from_on = format!("{key} {ge} {}", kept(key, backend, 1));
            part(&order, condition, (&from_on, 1, false), from, skip + wanted)
        } else {
            // The users tied with `from` on the key, from `from` on, then those past the key:
            // each a range of the order's index (a row value over an expression does not
            // seek on SQLite, so the key and its ties are asked apart).
            let ties = order.ties.join(", ");
            let tied = format!(
                "{key} = {} AND ({ties}) {ge} {}",
                kept(key, backend, 1),
                kept(&ties, backend, 2)
            );
            let past = format!("{key} {gt} {}", kept(key, backend, 1));
            let limit = skip + wanted;
            let mut both = wrap(part(
                &order,
                condition.clone(),
                (&tied, 2, true),
                from,
                limit,
            ));
            both.union(
                UnionType::All,
                wrap(part(&order, condition, (&past, 1, false), from, limit)),
            );
            both
        };
        let mut ids = Query::select();
        ids.column(Alias::new("id"))
            .from_subquery(read, Alias::new("read_on"));
        for term in std::iter::once("page_key").chain(order.ties.iter().copied()) {
            ids.order_by_expr(Expr::cust(term), direction(&order));
        }
        ids.limit(wanted).offset(skip);
        let mut inner = backend.build(&ids);
        if backend == DatabaseBackend::Sqlite {
            inner.sql = indexed_by(&inner.sql, &order.sqlite_index);
        }
        Some(Statement {
            sql: page_rows(backend, &inner.sql, &order.terms),
            ..inner
        })
    }
}

/// A walk's SQL on SQLite, told to read the users through the order's `index`: SQLite's
/// planner, without statistics, may rather read every user (or the filter's own index) and
/// sort them all for a small LIMIT. (PostgreSQL chooses by its statistics.) Every read of
/// `users` with a condition is the walk's own: a probed filter asks a user's emails through
/// `EXISTS` on `user_emails`, and a kept user is read `FROM users AS kept`.
fn indexed_by(sql: &str, index: &str) -> String {
    sql.replace(
        r#"FROM "users" WHERE"#,
        &format!(r#"FROM "users" INDEXED BY "{index}" WHERE"#),
    )
}

/// `>=` and `>` in the order's direction (`<=` and `<` descending).
fn comparisons(order: &SortSql) -> (&'static str, &'static str) {
    if order.descending {
        ("<=", "<")
    } else {
        (">=", ">")
    }
}

fn direction(order: &SortSql) -> Order {
    if order.descending {
        Order::Desc
    } else {
        Order::Asc
    }
}

/// The value of `columns` for the kept user, as a subquery of one row; its placeholder (the
/// `n`th of its expression) is the user's id.
fn kept(columns: &str, backend: DatabaseBackend, n: usize) -> String {
    let placeholder = match backend {
        DatabaseBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    format!("(SELECT {columns} FROM users AS kept WHERE kept.id = {placeholder})")
}

/// Up to `limit` users meeting `condition` and `from_kept` (SQL that names the kept user's
/// id `uses` times; `tied`: users of the kept user's key), in the order, each with their key and its ties (which the read orders
/// by).
fn part(
    order: &SortSql,
    condition: Condition,
    (from_kept, uses, tied): (&str, usize, bool),
    from: &str,
    limit: u64,
) -> SelectStatement {
    let mut part = Query::select();
    part.expr_as(
        Expr::col((user::Entity, user::Column::Id)),
        Alias::new("id"),
    )
    .expr_as(Expr::cust(order.key.clone()), Alias::new("page_key"))
    .from(user::Entity)
    .cond_where(condition)
    .and_where(Expr::cust_with_values(
        from_kept.to_owned(),
        std::iter::repeat_n(from.to_owned(), uses),
    ));
    for tie in order.ties {
        if *tie != "id" {
            part.expr(Expr::cust(*tie));
        }
    }
    if let Some(null_term) = &order.null_term {
        // Users with a value only (which the key's comparison also says, but the index
        // leads with this term).
        part.and_where(Expr::cust(format!("{null_term} = 0")));
    }
    // Users tied on the key are in the order of their ties (SQLite sorts them all when also
    // told the key its index already holds equal).
    let key = (!tied).then_some(order.key.as_str());
    for term in key.into_iter().chain(order.ties.iter().copied()) {
        part.order_by_expr(Expr::cust(term.to_owned()), direction(order));
    }
    part.limit(limit);
    part
}

/// A part as a subquery (`SELECT * FROM (part)`), which SQLite needs for a part of a
/// compound select to have its own ORDER BY and LIMIT.
fn wrap(part: SelectStatement) -> SelectStatement {
    let mut wrapped = Query::select();
    wrapped
        .column(Asterisk)
        .from_subquery(part, Alias::new("part"));
    wrapped
}
