//! Revocation that ends sessions: a grant remembers the bypass code its sign-in used,
//! grants are found by user and by code, and a user's sign-ins before a moment can be voided;
//! the policy scope `bypass_codes:settings` is given to the bootstrap administrator client.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("grants")
                    .add_column(string_null("bypass_code_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("users")
                    .add_column(timestamp_with_time_zone_null("sessions_not_before"))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_grants_user", "user_id"),
            ("idx_grants_bypass_code", "bypass_code_id"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("grants")
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        // Changing the policy needs its own scope now; the bootstrap client had it implied.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE oauth_clients SET scopes = scopes || ' bypass_codes:settings' \
                 WHERE client_id = 'bootstrap-admin' AND scopes NOT LIKE '%bypass_codes:settings%'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["idx_grants_bypass_code", "idx_grants_user"] {
            manager
                .drop_index(Index::drop().name(name).table("grants").to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("users")
                    .drop_column("sessions_not_before")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("grants")
                    .drop_column("bypass_code_id")
                    .to_owned(),
            )
            .await
    }
}
