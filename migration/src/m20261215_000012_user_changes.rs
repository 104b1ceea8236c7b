//! `user_changes`: how many times the users have changed, so that a search's `totalResults`
//! can be kept and known to be still exact. Every write of a user or their emails adds one to
//! one of 16 rows in its own transaction (spread over rows so that concurrent writers on
//! PostgreSQL seldom wait for each other's row); the sum only grows, so a sum read again
//! unchanged means no user changed in between.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The rows a write may add to (the store picks one per user).
const STRIPES: i64 = 16;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE TABLE user_changes (stripe integer NOT NULL PRIMARY KEY, n bigint NOT NULL)",
        )
        .await?;
        let rows: Vec<String> = (0..STRIPES).map(|s| format!("({s}, 0)")).collect();
        db.execute_unprepared(&format!(
            "INSERT INTO user_changes (stripe, n) VALUES {}",
            rows.join(", ")
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE user_changes")
            .await?;
        Ok(())
    }
}
