//! Users with their emails, OAuth clients and signing keys.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(string("id").primary_key())
                    .col(string("user_name"))
                    .col(string_uniq("user_name_lower"))
                    .col(string_null("external_id"))
                    .col(string_null("display_name"))
                    .col(string_null("nick_name"))
                    .col(string_null("profile_url"))
                    .col(string_null("title"))
                    .col(string_null("user_type"))
                    .col(string_null("preferred_language"))
                    .col(string_null("locale"))
                    .col(string_null("timezone"))
                    .col(string_null("name_formatted"))
                    .col(string_null("name_family"))
                    .col(string_null("name_given"))
                    .col(string_null("name_middle"))
                    .col(string_null("name_prefix"))
                    .col(string_null("name_suffix"))
                    .col(boolean_null("active"))
                    .col(text_null("password_hash"))
                    .col(big_integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        for column in ["external_id", "created_at", "updated_at"] {
            manager
                .create_index(
                    Index::create()
                        .name(format!("idx_users_{column}"))
                        .table("users")
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("user_emails")
                    .col(big_pk_auto("id"))
                    .col(string("user_id"))
                    .col(integer("position"))
                    .col(string("value"))
                    .col(string("value_lower"))
                    .col(string_null("kind"))
                    .col(boolean("is_primary"))
                    .col(string_null("display"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_emails_user")
                            .from("user_emails", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for column in ["user_id", "value_lower"] {
            manager
                .create_index(
                    Index::create()
                        .name(format!("idx_user_emails_{column}"))
                        .table("user_emails")
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("oauth_clients")
                    .col(string("client_id").primary_key())
                    .col(blob_null("secret_digest"))
                    .col(text("scopes"))
                    .col(text("grant_types"))
                    .col(text("redirect_uris"))
                    .col(boolean("is_public"))
                    .col(boolean("require_mfa"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("signing_keys")
                    .col(string("kid").primary_key())
                    .col(text("private_pem"))
                    .col(boolean("active"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["signing_keys", "oauth_clients", "user_emails", "users"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
