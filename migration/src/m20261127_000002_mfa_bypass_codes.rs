//! 2-step verification: TOTP factors, bypass codes, their audit trail, and settings.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("users")
                    .add_column(boolean_null("mfa_required"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("user_mfa")
                    .col(string("user_id").primary_key())
                    .col(text_null("totp_secret"))
                    .col(boolean("totp_confirmed"))
                    .col(big_integer_null("totp_last_step"))
                    .col(blob("bypass_salt"))
                    .col(integer("consecutive_failures"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_mfa_user")
                            .from("user_mfa", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // No foreign key to users: codes and events outlive a deleted user, for audit.
        manager
            .create_table(
                Table::create()
                    .table("bypass_codes")
                    .col(string("id").primary_key())
                    .col(string("user_id"))
                    .col(blob("code_hash"))
                    .col(string("origin"))
                    .col(string("created_by"))
                    .col(string_null("client_id"))
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .col(big_integer_null("max_uses"))
                    .col(big_integer("use_count"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(string_null("revoked_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_bypass_codes_user_hash")
                    .table("bypass_codes")
                    .col("user_id")
                    .col("code_hash")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_events")
                    .col(big_pk_auto("id"))
                    .col(string("user_id"))
                    .col(string_null("code_id"))
                    .col(string("event"))
                    .col(string("actor"))
                    .col(string_null("client_id"))
                    .col(string_null("ip"))
                    .col(text_null("detail"))
                    .col(timestamp_with_time_zone("at"))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_audit_events_code", "code_id"),
            ("idx_audit_events_user", "user_id"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("audit_events")
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("settings")
                    .col(string("name").primary_key())
                    .col(text("value"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["settings", "audit_events", "bypass_codes", "user_mfa"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("users")
                    .drop_column("mfa_required")
                    .to_owned(),
            )
            .await
    }
}
