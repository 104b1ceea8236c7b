//! Issuance controls: a code's reason, its start time, its two-person approval (and the
//! lifetime asked for, counted from the approval), and relying parties that refuse codes.

use sea_orm_migration::{prelude::*, schema::*};

use crate::columns::{add_column, drop_column};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_column(manager, "bypass_codes", text_null("reason")).await?;
        add_column(
            manager,
            "bypass_codes",
            timestamp_with_time_zone_null("starts_at"),
        )
        .await?;
        add_column(manager, "bypass_codes", string_null("approval")).await?;
        add_column(manager, "bypass_codes", text_null("decided_by")).await?;
        add_column(
            manager,
            "bypass_codes",
            timestamp_with_time_zone_null("decided_at"),
        )
        .await?;
        add_column(
            manager,
            "bypass_codes",
            big_integer_null("lifetime_minutes"),
        )
        .await?;
        add_column(manager, "bypass_codes", text_null("send_to")).await?;
        add_column(
            manager,
            "oauth_clients",
            boolean("accepts_bypass_codes").default(true).to_owned(),
        )
        .await?;
        // The approvals page lists the open requests of every user.
        manager
            .create_index(
                Index::create()
                    .name("idx_bypass_codes_approval")
                    .table("bypass_codes")
                    .col("approval")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_bypass_codes_approval")
                    .table("bypass_codes")
                    .to_owned(),
            )
            .await?;
        drop_column(manager, "oauth_clients", "accepts_bypass_codes").await?;
        for column in [
            "send_to",
            "lifetime_minutes",
            "decided_at",
            "decided_by",
            "approval",
            "starts_at",
            "reason",
        ] {
            drop_column(manager, "bypass_codes", column).await?;
        }
        Ok(())
    }
}
