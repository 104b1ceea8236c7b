//! Database migrations, one module per schema change, applied in order.

pub use sea_orm_migration::prelude::*;

mod columns;

mod m20261127_000001_initial;
mod m20261127_000002_mfa_bypass_codes;
mod m20261128_000003_grants;
mod m20261128_000004_grant_revocation;
mod m20261128_000005_groups;
mod m20261129_000006_search_indexes;
mod m20261206_000007_access;
mod m20261207_000008_sessions;
mod m20261208_000009_reenrolment;
mod m20261210_000010_issuance;
mod m20261214_000011_sort;
mod m20261215_000012_user_changes;
mod m20261216_000013_text_sort;
mod m20261217_000014_id_trigram;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_initial::Migration),
            Box::new(m20261127_000002_mfa_bypass_codes::Migration),
            Box::new(m20261128_000003_grants::Migration),
            Box::new(m20261128_000004_grant_revocation::Migration),
            Box::new(m20261128_000005_groups::Migration),
            Box::new(m20261129_000006_search_indexes::Migration),
            Box::new(m20261206_000007_access::Migration),
            Box::new(m20261207_000008_sessions::Migration),
            Box::new(m20261208_000009_reenrolment::Migration),
            Box::new(m20261210_000010_issuance::Migration),
            Box::new(m20261214_000011_sort::Migration),
            Box::new(m20261215_000012_user_changes::Migration),
            Box::new(m20261216_000013_text_sort::Migration),
            Box::new(m20261217_000014_id_trigram::Migration),
        ]
    }
}
