//! Indexes for SCIM filters and paging at scale (issue 11).
//!
//! - `name_family_lower`, `name_given_lower`, `display_name_lower`: lower-cased copies kept by
//!   the server (Unicode lower-casing, which SQLite's `lower()` is not), so that the
//!   case-insensitive attributes are matched on a plain indexed column, like `userName` and
//!   `emails.value` already were.
//! - `(created_at, id)`: the listing order, so a page is read from an index (and an offset
//!   skips index entries, not rows); `(column, created_at, id)` for the search columns, so
//!   `eq` reads its page in order, and `(value_lower, user_id)` for emails.
//! - PostgreSQL: the search columns compare bytewise (`COLLATE "C"`), so `sw` is an index
//!   range on both backends; and `pg_trgm` GIN indexes serve `co` and `ew`. SQLite answers
//!   `co`/`ew` with a scan of one narrow column.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const LOWERED: [(&str, &str); 3] = [
    ("name_family_lower", "name_family"),
    ("name_given_lower", "name_given"),
    ("display_name_lower", "display_name"),
];

/// Search columns with a (column, created_at, id) index.
const PAGED: [&str; 4] = [
    "external_id",
    "name_family_lower",
    "name_given_lower",
    "display_name_lower",
];

/// Indexes the wider ones above make redundant: (table, index).
const REPLACED: [(&str, &str); 3] = [
    ("users", "idx_users_created_at"),
    ("users", "idx_users_external_id"),
    ("user_emails", "idx_user_emails_value_lower"),
];

/// The PostgreSQL search columns: (table, column).
const SEARCHED: [(&str, &str); 6] = [
    ("users", "user_name_lower"),
    ("users", "external_id"),
    ("users", "name_family_lower"),
    ("users", "name_given_lower"),
    ("users", "display_name_lower"),
    ("user_emails", "value_lower"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (lowered, _) in LOWERED {
            manager
                .alter_table(
                    Table::alter()
                        .table("users")
                        .add_column(string_null(lowered))
                        .to_owned(),
                )
                .await?;
        }
        // Existing rows: SQL's lower() (ASCII-only on SQLite); the server rewrites the copy
        // with Unicode lower-casing on the user's next write.
        let backfill = LOWERED
            .iter()
            .map(|(lowered, source)| format!("{lowered} = lower({source})"))
            .collect::<Vec<_>>()
            .join(", ");
        db.execute_unprepared(&format!("UPDATE users SET {backfill}"))
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            for (table, column) in SEARCHED {
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar COLLATE \"C\""
                ))
                .await?;
            }
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                .await?;
            for (table, column) in SEARCHED {
                db.execute_unprepared(&format!(
                    "CREATE INDEX idx_{table}_{column}_trgm ON {table} \
                     USING gin ({column} gin_trgm_ops)"
                ))
                .await?;
            }
        }
        // Equality on a search column reads a page straight off (column, created_at, id);
        // the same entries are the narrow scan SQLite makes for `co`/`ew`.
        for column in PAGED {
            manager
                .create_index(
                    Index::create()
                        .name(format!("idx_users_{column}_page"))
                        .table("users")
                        .col(column)
                        .col("created_at")
                        .col("id")
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_user_emails_value_lower_user")
                    .table("user_emails")
                    .col("value_lower")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_created_at_id")
                    .table("users")
                    .col("created_at")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        for (table, index) in REPLACED {
            manager
                .drop_index(Index::drop().name(index).table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (table, index) in REPLACED {
            let column = match index {
                "idx_users_created_at" => "created_at",
                "idx_users_external_id" => "external_id",
                _ => "value_lower",
            };
            manager
                .create_index(
                    Index::create()
                        .name(index)
                        .table(table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        let added = PAGED
            .iter()
            .map(|column| ("users", format!("idx_users_{column}_page")))
            .chain([
                ("users", "idx_users_created_at_id".to_owned()),
                ("user_emails", "idx_user_emails_value_lower_user".to_owned()),
            ]);
        for (table, index) in added {
            manager
                .drop_index(Index::drop().name(index).table(table).to_owned())
                .await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            for (table, column) in SEARCHED {
                db.execute_unprepared(&format!("DROP INDEX idx_{table}_{column}_trgm"))
                    .await?;
            }
        }
        for (lowered, _) in LOWERED {
            manager
                .alter_table(
                    Table::alter()
                        .table("users")
                        .drop_column(lowered)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
