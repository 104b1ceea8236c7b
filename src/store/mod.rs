//! sea-orm repositories: the only place that speaks SQL. Works on SQLite and PostgreSQL.

pub mod audit;
pub mod bypass;
pub mod clients;
pub mod keys;
pub mod mfa;
pub mod settings;
pub mod users;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, SqlErr};

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
}

impl StoreError {
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
}

impl Store {
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        if url.starts_with("sqlite:") {
            // One writer at a time avoids SQLITE_BUSY; WAL keeps readers concurrent.
            options.max_connections(1).min_connections(1);
        } else {
            options.max_connections(20).min_connections(1);
        }
        let db = Database::connect(options).await?;
        if url.starts_with("sqlite:") {
            use sea_orm::ConnectionTrait;
            db.execute_unprepared("PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA case_sensitive_like = ON;")
                .await?;
        }
        Ok(Self { db })
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.db, None).await
    }
}
