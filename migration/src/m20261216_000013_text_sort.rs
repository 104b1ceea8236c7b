//! Indexes for the text attributes that have no lower-cased copy (`title`, `nickName`,
//! `profileUrl`, `name.formatted`, …): each on the key the store sorts and compares them by,
//! `lower(col)`, then `(created_at, id)`, so `sortBy` any of them reads a page off an index
//! (a walk, not a sort of every match), and on PostgreSQL `eq`, ranges and `sw` seek.
//!
//! - SQLite: `((lower(col) IS NULL), lower(col), created_at, id)`, users without a value
//!   last ascending, the order the store asks for.
//! - PostgreSQL: `(lower(col) COLLATE "C", created_at, id)` (code point order, as the store
//!   compares them), and a `pg_trgm` GIN index on `lower(profile_url)`, the one of them whose
//!   values are as many as the users, for `co` and `ew`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The users' text columns compared on `lower(col)`.
const TEXT: [&str; 11] = [
    "nick_name",
    "profile_url",
    "title",
    "user_type",
    "preferred_language",
    "locale",
    "timezone",
    "name_formatted",
    "name_middle",
    "name_prefix",
    "name_suffix",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        for column in TEXT {
            let key = if postgres {
                format!("lower({column}) COLLATE \"C\"")
            } else {
                format!("(lower({column}) IS NULL), lower({column})")
            };
            db.execute_unprepared(&format!(
                "CREATE INDEX idx_users_{column}_sort ON users ({key}, created_at, id)"
            ))
            .await?;
        }
        if postgres {
            db.execute_unprepared(
                "CREATE INDEX idx_users_profile_url_trgm ON users \
                 USING gin (lower(profile_url) gin_trgm_ops)",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_users_profile_url_trgm")
            .await?;
        for column in TEXT {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS idx_users_{column}_sort"))
                .await?;
        }
        Ok(())
    }
}
