//! Recovery rules in the core: a relying party may be granted `bypass_codes:self` (minting for
//! whoever signs in to it) only when registered with `--allow-self-service-codes`; the audit
//! log is read by event and by actor (`/AuditEvents`), and events about no user (a policy
//! change) are stored with an empty `user_id`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [(&str, &str); 2] = [
    ("idx_audit_events_event", "event"),
    ("idx_audit_events_actor", "actor"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("oauth_clients")
                    .add_column(boolean("allow_self_service_codes").default(false))
                    .to_owned(),
            )
            .await?;
        for (name, column) in INDEXES {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("audit_events")
                        .col(column)
                        .col("id")
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table("audit_events").to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("oauth_clients")
                    .drop_column("allow_self_service_codes")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
