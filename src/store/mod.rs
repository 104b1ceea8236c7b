//! sea-orm repositories: the only place that speaks SQL. Works on SQLite and PostgreSQL.

pub mod audit;
pub mod bypass;
pub mod clients;
pub mod grants;
pub mod groups;
pub mod keys;
pub mod mfa;
pub mod sessions;
pub mod settings;
mod totals;
mod user_query;
mod user_walk;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, SqlErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("a row with the same unique value exists")]
    Duplicate,
    #[error("not found")]
    NotFound,
    #[error("the row changed since it was read")]
    VersionMismatch,
    /// A stored value this version cannot read.
    #[error("corrupt stored data: {0}")]
    Corrupt(&'static str),
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing a statement).
    pub fn is_unavailable(&self) -> bool {
        use sea_orm::RuntimeErr;
        use sea_orm::sqlx::Error as Sqlx;
        let runtime = match self {
            Self::Db(DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) => return true,
            Self::Db(DbErr::Exec(e) | DbErr::Query(e)) => e,
            _ => return false,
        };
        let RuntimeErr::SqlxError(inner) = runtime else {
            return false;
        };
        match inner.as_ref() {
            Sqlx::Io(_)
            | Sqlx::Tls(_)
            | Sqlx::Protocol(_)
            | Sqlx::PoolTimedOut
            | Sqlx::PoolClosed
            | Sqlx::WorkerCrashed => true,
            // The server going away under a running statement: shutdown (57P01-57P03),
            // connection exceptions (class 08), too many connections (53300).
            Sqlx::Database(db) => db.code().is_some_and(|code| {
                code.starts_with("57P") || code.starts_with("08") || code == "53300"
            }),
            _ => false,
        }
    }

    /// Whether the database refused text it cannot hold: PostgreSQL stores no NUL character
    /// (22021, character_not_in_repertoire), and any input may carry one.
    pub fn is_unstorable_text(&self) -> bool {
        use sea_orm::RuntimeErr;
        use sea_orm::sqlx::Error as Sqlx;
        let Self::Db(
            DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)),
        ) = self
        else {
            return false;
        };
        matches!(inner.as_ref(), Sqlx::Database(db) if db.code().as_deref() == Some("22021"))
    }

    /// Sorts a database error into a unique-constraint violation or anything else.
    pub fn classify(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => Self::Duplicate,
            _ => Self::Db(err),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pub db: DatabaseConnection,
    /// Totals of user searches, kept while no user changes ([`totals`]).
    totals: Arc<totals::Totals>,
}

/// SQLite keeps statistics of its memory by default, taking a process-wide mutex on every
/// allocation it makes (a page of 100 users makes thousands); nothing here reads them. The
/// setting is taken only before SQLite's first use in the process (later it is refused,
/// harmlessly), so it is made once, before the first SQLite connection.
fn sqlite_without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. sqlite3_config must not run while
        // another thread uses SQLite: this runs before the first connection is opened, and
        // any other first connection waits on `ONCE`.
        unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0);
        }
    });
}

impl Store {
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            // A database that does not answer turns into 503s within seconds, not a queue of
            // requests that wait half a minute each.
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false);
        if url.starts_with("sqlite:") {
            // A SQLite connection is a file kept open: nothing can cut it, so it is not pinged
            // before each statement (the pool's default, a hand-off to the connection's thread
            // and back that doubled every statement's). A PostgreSQL connection is: a restart
            // or failover cuts every pooled one, and the check is what lets the requests after
            // it run on fresh connections instead of failing once per cut connection.
            options.test_before_acquire(false);
            sqlite_without_memory_statistics();
            // Every connection gets the pragmas; WAL lets readers run beside the one writer,
            // and writers wait for each other instead of failing.
            options.map_sqlx_sqlite_opts(|opts| {
                opts.foreign_keys(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
                    .pragma("case_sensitive_like", "ON")
            });
            // An in-memory database exists once per connection.
            let connections = if url.contains(":memory:") { 1 } else { 4 };
            options.max_connections(connections).min_connections(1);
        } else {
            options.max_connections(20).min_connections(1);
        }
        Ok(Self {
            db: Database::connect(options).await?,
            totals: Arc::default(),
        })
    }

    /// A transaction that writes. On SQLite it takes the write lock at `BEGIN IMMEDIATE`,
    /// waiting its turn (`busy_timeout`): a deferred transaction that reads before it writes
    /// cannot wait to become the writer (SQLite does not call the busy handler for that) and
    /// fails at once with "database is locked" when another connection or instance has
    /// written meanwhile. PostgreSQL ignores the mode.
    pub(crate) async fn write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
    }

    /// Answers when the database does (readiness).
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.db, None).await
    }
}
