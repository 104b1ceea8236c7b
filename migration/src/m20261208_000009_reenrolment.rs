//! The lost-phone journey: when a user's 2-step verification was reset (so "reset, not yet
//! enrolled again" is told apart from "never enrolled"), the new authenticator a user is
//! setting up beside the one they have (replaced only when confirmed), and what a bypass
//! code is for (`signIn`, or `enrolment` only).

use sea_orm_migration::{prelude::*, schema::*};

use crate::columns::{add_column, drop_column};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_column(
            manager,
            "user_mfa",
            timestamp_with_time_zone_null("mfa_reset_at"),
        )
        .await?;
        add_column(manager, "user_mfa", text_null("replacement_secret")).await?;
        add_column(
            manager,
            "user_mfa",
            timestamp_with_time_zone_null("replacement_started_at"),
        )
        .await?;
        add_column(
            manager,
            "bypass_codes",
            string("purpose").default("signIn").to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_column(manager, "bypass_codes", "purpose").await?;
        drop_column(manager, "user_mfa", "replacement_started_at").await?;
        drop_column(manager, "user_mfa", "replacement_secret").await?;
        drop_column(manager, "user_mfa", "mfa_reset_at").await?;
        Ok(())
    }
}
