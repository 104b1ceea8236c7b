//! Sorting (`sortBy`, RFC 7644 §3.4.2.3) read off indexes.
//!
//! - `email_lower`: the user's primary address (or else the first), lower-cased, which is
//!   what `sortBy=emails` orders by; the server keeps it with the emails.
//! - `(email_lower, created_at, id)` and `(updated_at, id)`: the orders of `sortBy=emails` and
//!   `sortBy=meta.lastModified` (`created_at, id` and the search columns' indexes exist).
//! - PostgreSQL: existing meta times cut to the millisecond, which is what the server now
//!   stores and shows. (SQLite keeps its rows' times as they were written.)
//! - SQLite keeps NULLs first in an index, but SCIM puts users without a value last when
//!   ascending: there, the nullable sort columns get an index on `(col IS NULL, col,
//!   created_at, id)`, the order the store asks for. PostgreSQL's indexes already keep NULLs
//!   last.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

use crate::columns::{add_column, drop_column};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Nullable columns a sort reads in order; SQLite gets a NULLs-last index for each.
const SORTED: [&str; 5] = [
    "external_id",
    "name_family_lower",
    "name_given_lower",
    "display_name_lower",
    "email_lower",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        add_column(manager, "users", string_null("email_lower")).await?;
        if postgres {
            // Compared bytewise like the other search columns (code point order).
            db.execute_unprepared(
                "ALTER TABLE users ALTER COLUMN email_lower TYPE varchar COLLATE \"C\"",
            )
            .await?;
        }
        db.execute_unprepared(
            "UPDATE users SET email_lower = (SELECT e.value_lower FROM user_emails e \
             WHERE e.user_id = users.id ORDER BY e.is_primary DESC, e.position LIMIT 1)",
        )
        .await?;
        for (name, columns) in [
            (
                "idx_users_email_lower_page",
                &["email_lower", "created_at", "id"][..],
            ),
            ("idx_users_updated_at_id", &["updated_at", "id"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table("users");
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        if postgres {
            // The server now stores the meta times to the millisecond, as it shows them, so
            // that a filter naming a shown time matches it; older rows too.
            for table in ["users", "scim_groups"] {
                db.execute_unprepared(&format!(
                    "UPDATE {table} SET created_at = date_trunc('milliseconds', created_at), \
                     updated_at = date_trunc('milliseconds', updated_at)"
                ))
                .await?;
            }
        }
        if !postgres {
            for column in SORTED {
                db.execute_unprepared(&format!(
                    "CREATE INDEX idx_users_{column}_sort ON users \
                     (({column} IS NULL), {column}, created_at, id)"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() != DbBackend::Postgres {
            for column in SORTED {
                db.execute_unprepared(&format!("DROP INDEX IF EXISTS idx_users_{column}_sort"))
                    .await?;
            }
        }
        for name in ["idx_users_email_lower_page", "idx_users_updated_at_id"] {
            manager
                .drop_index(Index::drop().name(name).table("users").to_owned())
                .await?;
        }
        drop_column(manager, "users", "email_lower").await
    }
}
