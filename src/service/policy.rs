//! Where the bypass-code policy is kept: one setting, read by every service that follows it
//! (codes, sign-in, 2-step verification) and written only by `BypassCodeService`.

use super::ServiceError;
use crate::domain::bypass::Policy;
use crate::domain::repo::SettingRepo;
use crate::store::Store;

const SETTING: &str = "bypassCodePolicy";

/// The policy in force, as stored (the default until one is set).
pub async fn load(store: &Store) -> Result<Policy, ServiceError> {
    match store.get_setting(SETTING).await? {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| ServiceError::internal("stored bypass-code policy", e)),
        None => Ok(Policy::default()),
    }
}

/// Stores the policy in serde's form (`text`).
pub(super) async fn store(store: &Store, text: String) -> Result<(), ServiceError> {
    Ok(store.put_setting(SETTING, text).await?)
}
