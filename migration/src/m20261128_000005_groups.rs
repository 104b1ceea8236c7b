//! SCIM Groups and their members. A membership dies with its user or its group; deleting a
//! group removes no user. Members are found by group (the primary key) and by user (for
//! `User.groups` and the roles a user holds). The bootstrap client gets the `scim:groups` scope.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("scim_groups")
                    .col(string("id").primary_key())
                    .col(string("display_name"))
                    .col(string_uniq("display_name_lower"))
                    .col(string_null("external_id"))
                    .col(big_integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("group_members")
                    .col(string("group_id"))
                    .col(string("user_id"))
                    .primary_key(Index::create().col("group_id").col("user_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_group_members_group")
                            .from("group_members", "group_id")
                            .to("scim_groups", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_group_members_user")
                            .from("group_members", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_group_members_user")
                    .table("group_members")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_scim_groups_external_id")
                    .table("scim_groups")
                    .col("external_id")
                    .to_owned(),
            )
            .await?;
        // Groups have their own scope; the bootstrap client provisions them too.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE oauth_clients SET scopes = scopes || ' scim:groups' \
                 WHERE client_id = 'bootstrap-admin' AND scopes NOT LIKE '%scim:groups%'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("group_members").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("scim_groups").to_owned())
            .await
    }
}
