//! Named JSON settings.

use chrono::Utc;
use entity::setting;
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};

use super::{Store, StoreError};
use crate::domain::repo::SettingRepo;

impl SettingRepo for Store {
    type Error = StoreError;

    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(setting::Entity::find_by_id(name)
            .one(&self.db)
            .await?
            .map(|row| row.value))
    }

    async fn put_setting(&self, name: &str, value: String) -> Result<(), StoreError> {
        setting::Entity::insert(setting::ActiveModel {
            name: Set(name.to_owned()),
            value: Set(value),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::column(setting::Column::Name)
                .update_columns([setting::Column::Value, setting::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(&self.db)
        .await?;
        Ok(())
    }
}
