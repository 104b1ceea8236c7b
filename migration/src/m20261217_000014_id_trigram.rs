//! A `pg_trgm` GIN index on `users.id` (PostgreSQL), for `id co` and `id ew`: an id is as
//! unique as a user, so without it those filters read every user. SQLite has no such index
//! and keeps reading the narrow primary-key index.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE INDEX idx_users_id_trgm ON users USING gin (id gin_trgm_ops)",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP INDEX IF EXISTS idx_users_id_trgm")
                .await?;
        }
        Ok(())
    }
}
