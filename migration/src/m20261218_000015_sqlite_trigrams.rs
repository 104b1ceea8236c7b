//! Trigram indexes for `co` and `ew` on SQLite (PostgreSQL has `pg_trgm` GIN indexes for
//! them): FTS5 tables with the `trigram` tokenizer over exactly the text those filters check
//! (`users.id`, `user_name_lower`, `external_id`, `display_name_lower`, `lower(profile_url)`,
//! and each email's `value_lower`), kept by triggers so that every writer keeps them. Without
//! them a substring filter on a value unique per user reads a whole index.
//!
//! The tables hold no copy of the text (`content=''`) and delete by rowid
//! (`contentless_delete=1`). An email's rowid is its own integer key; a user's is a key in
//! `user_trigram_keys`, since the rowid SQLite gives `users` (keyed by text) may change on
//! `VACUUM`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The user's row of `user_trigrams` made again from `users`, for the user whose id is `$ID`
/// (a trigger's `NEW.id`): nothing when the user is gone.
const REFRESH_USER: &str = "INSERT OR REPLACE INTO user_trigrams \
     (rowid, id, user_name, external_id, display_name, profile_url) \
     SELECT k.key, u.id, u.user_name_lower, u.external_id, u.display_name_lower, lower(u.profile_url) \
     FROM users u JOIN user_trigram_keys k ON k.user_id = u.id WHERE u.id = $ID;";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        let refresh = |id: &str| REFRESH_USER.replace("$ID", id);
        let statements = [
            "CREATE TABLE user_trigram_keys (\
                key INTEGER PRIMARY KEY, user_id TEXT NOT NULL UNIQUE)"
                .to_owned(),
            "CREATE VIRTUAL TABLE user_trigrams USING fts5(\
                id, user_name, external_id, display_name, profile_url, \
                content='', contentless_delete=1, tokenize='trigram')"
                .to_owned(),
            "CREATE VIRTUAL TABLE email_trigrams USING fts5(\
                value, content='', contentless_delete=1, tokenize='trigram')"
                .to_owned(),
            format!(
                "CREATE TRIGGER user_trigrams_insert AFTER INSERT ON users BEGIN \
                 INSERT INTO user_trigram_keys (user_id) VALUES (NEW.id); {} END",
                refresh("NEW.id")
            ),
            format!(
                "CREATE TRIGGER user_trigrams_update AFTER UPDATE OF \
                 user_name_lower, external_id, display_name_lower, profile_url ON users \
                 BEGIN {} END",
                refresh("NEW.id")
            ),
            "CREATE TRIGGER user_trigrams_delete AFTER DELETE ON users BEGIN \
             DELETE FROM user_trigrams WHERE rowid = \
               (SELECT key FROM user_trigram_keys WHERE user_id = OLD.id); \
             DELETE FROM user_trigram_keys WHERE user_id = OLD.id; END"
                .to_owned(),
            "CREATE TRIGGER email_trigrams_insert AFTER INSERT ON user_emails BEGIN \
             INSERT INTO email_trigrams (rowid, value) VALUES (NEW.id, NEW.value_lower); END"
                .to_owned(),
            "CREATE TRIGGER email_trigrams_update AFTER UPDATE OF id, value_lower ON user_emails \
             BEGIN DELETE FROM email_trigrams WHERE rowid = OLD.id; \
             INSERT INTO email_trigrams (rowid, value) VALUES (NEW.id, NEW.value_lower); END"
                .to_owned(),
            "CREATE TRIGGER email_trigrams_delete AFTER DELETE ON user_emails BEGIN \
             DELETE FROM email_trigrams WHERE rowid = OLD.id; END"
                .to_owned(),
            // The users and emails there are already.
            "INSERT INTO user_trigram_keys (user_id) SELECT id FROM users ORDER BY created_at, id"
                .to_owned(),
            "INSERT INTO user_trigrams \
             (rowid, id, user_name, external_id, display_name, profile_url) \
             SELECT k.key, u.id, u.user_name_lower, u.external_id, u.display_name_lower, \
             lower(u.profile_url) FROM users u JOIN user_trigram_keys k ON k.user_id = u.id"
                .to_owned(),
            "INSERT INTO email_trigrams (rowid, value) SELECT id, value_lower FROM user_emails"
                .to_owned(),
        ];
        let db = manager.get_connection();
        for statement in statements {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        let db = manager.get_connection();
        for trigger in [
            "user_trigrams_insert",
            "user_trigrams_update",
            "user_trigrams_delete",
            "email_trigrams_insert",
            "email_trigrams_update",
            "email_trigrams_delete",
        ] {
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger}"))
                .await?;
        }
        for table in ["email_trigrams", "user_trigrams", "user_trigram_keys"] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
                .await?;
        }
        Ok(())
    }
}
