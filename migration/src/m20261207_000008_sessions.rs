//! Single sign-on: a sign-in session shared by every instance (`sign_in_sessions`, found by
//! the SHA-256 of its cookie), the grants each session gave (`grants.session_id`), the logout
//! addresses of clients, and when a user's authenticator was confirmed (a session may step
//! up only with a factor confirmed before it began).

use sea_orm_migration::{prelude::*, schema::*};

use crate::columns::{add_column, drop_column};

#[derive(DeriveMigrationName)]
pub struct Migration;

const SESSION_INDEXES: [(&str, &str); 3] = [
    ("idx_sign_in_sessions_user", "user_id"),
    ("idx_sign_in_sessions_code", "bypass_code_id"),
    ("idx_sign_in_sessions_logout", "logout_pending_since"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("sign_in_sessions")
                    .col(string("id").primary_key())
                    .col(string_uniq("token_hash"))
                    .col(string("user_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(big_integer("auth_time"))
                    .col(string("amr"))
                    .col(string("acr"))
                    .col(string_null("bypass_code_id"))
                    .col(timestamp_with_time_zone("last_seen_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone("single_sign_on_until"))
                    .col(string_null("ip"))
                    .col(timestamp_with_time_zone_null("ended_at"))
                    .col(string_null("end_reason"))
                    .col(timestamp_with_time_zone_null("logout_pending_since"))
                    .to_owned(),
            )
            .await?;
        for (name, column) in SESSION_INDEXES {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("sign_in_sessions")
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        add_column(manager, "grants", string_null("session_id")).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_grants_session")
                    .table("grants")
                    .col("session_id")
                    .to_owned(),
            )
            .await?;
        add_column(
            manager,
            "oauth_clients",
            text("post_logout_redirect_uris").default("").to_owned(),
        )
        .await?;
        add_column(
            manager,
            "oauth_clients",
            text_null("backchannel_logout_uri"),
        )
        .await?;
        add_column(
            manager,
            "user_mfa",
            timestamp_with_time_zone_null("totp_confirmed_at"),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_column(manager, "user_mfa", "totp_confirmed_at").await?;
        drop_column(manager, "oauth_clients", "backchannel_logout_uri").await?;
        drop_column(manager, "oauth_clients", "post_logout_redirect_uris").await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_grants_session")
                    .table("grants")
                    .to_owned(),
            )
            .await?;
        drop_column(manager, "grants", "session_id").await?;
        manager
            .drop_table(Table::drop().table("sign_in_sessions").to_owned())
            .await?;
        Ok(())
    }
}
