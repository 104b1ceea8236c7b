//! RS256 signing keys: generated and stored on first start, shared through the database so
//! that every instance signs with the same key and publishes all of them in the JWKS.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenClaims, CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreRsaPrivateSigningKey,
};
use openidconnect::{AccessToken, JsonWebKey, JsonWebKeyId, PrivateSigningKey};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use tokio::sync::RwLock;

use crate::service::ServiceError;
use crate::service::sealing::Sealer;
use crate::store::Store;

const RSA_BITS: usize = 2048;
/// A token naming an unknown `kid` reloads the keys at most this often: forged tokens
/// must not turn into a database query each.
const RELOAD_INTERVAL: Duration = Duration::from_secs(60);
/// Private keys stored before sealing existed are plain PEM.
const PLAIN_PEM: &str = "-----BEGIN";

struct Loaded {
    signing_kid: String,
    signing: Arc<CoreRsaPrivateSigningKey>,
    verification: HashMap<String, CoreJsonWebKey>,
}

#[derive(Clone)]
pub struct KeyRing {
    store: Store,
    sealer: Sealer,
    loaded: Arc<RwLock<Loaded>>,
    last_reload: Arc<std::sync::Mutex<Instant>>,
    reloads: Arc<AtomicU64>,
}

fn generate_pem() -> Result<String, ServiceError> {
    let key = rsa::RsaPrivateKey::new(&mut rand_core_06::OsRng, RSA_BITS)
        .map_err(|e| ServiceError::Internal(format!("RSA key generation: {e}")))?;
    Ok(key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| ServiceError::Internal(format!("PEM encoding: {e}")))?
        .to_string())
}

/// The PEM of a stored key; a plain one is sealed in place when a key is configured.
async fn open_pem(
    store: &Store,
    sealer: &Sealer,
    kid: &str,
    stored: &str,
) -> Result<String, ServiceError> {
    if stored.starts_with(PLAIN_PEM) {
        if sealer.seals() {
            store
                .reseal_signing_key(kid, &sealer.seal(stored.as_bytes())?)
                .await?;
            tracing::info!(kid = %kid, "sealed a signing key stored before sealing was configured");
        }
        return Ok(stored.to_owned());
    }
    String::from_utf8(sealer.open(stored)?)
        .map_err(|_| ServiceError::Internal(format!("signing key {kid} is corrupt")))
}

async fn load(store: &Store, sealer: &Sealer) -> Result<Option<Loaded>, ServiceError> {
    let rows = store.signing_keys().await?;
    let mut verification = HashMap::new();
    let mut signing = None;
    for row in rows {
        let pem = open_pem(store, sealer, &row.kid, &row.private_pem).await?;
        let key =
            CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(row.kid.clone())))
                .map_err(|e| ServiceError::Internal(format!("signing key {}: {e}", row.kid)))?;
        verification.insert(row.kid.clone(), key.as_verification_key());
        // The oldest active key signs, so instances that raced to create one still agree.
        if row.active && signing.is_none() {
            signing = Some((row.kid, Arc::new(key)));
        }
    }
    Ok(signing.map(|(signing_kid, signing)| Loaded {
        signing_kid,
        signing,
        verification,
    }))
}

impl KeyRing {
    /// Loads the stored keys, creating the first one if there is none.
    pub async fn open(store: Store, sealer: Sealer) -> Result<Self, ServiceError> {
        let loaded = match load(&store, &sealer).await? {
            Some(loaded) => loaded,
            None => {
                let pem = tokio::task::spawn_blocking(generate_pem)
                    .await
                    .map_err(|e| ServiceError::Internal(e.to_string()))??;
                let kid = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
                store
                    .insert_signing_key(&kid, &sealer.seal(pem.as_bytes())?)
                    .await?;
                tracing::info!(kid = %kid, "generated a new RS256 signing key");
                load(&store, &sealer).await?.ok_or_else(|| {
                    ServiceError::Internal("signing key vanished after insert".into())
                })?
            }
        };
        Ok(Self {
            store,
            sealer,
            loaded: Arc::new(RwLock::new(loaded)),
            // The first unknown kid may reload at once.
            last_reload: Arc::new(std::sync::Mutex::new(
                Instant::now()
                    .checked_sub(RELOAD_INTERVAL)
                    .unwrap_or_else(Instant::now),
            )),
            reloads: Arc::new(AtomicU64::new(0)),
        })
    }

    /// How often the keys were reloaded for an unknown `kid`.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Whether a reload may happen now; claims it if so.
    fn may_reload(&self) -> bool {
        let Ok(mut last) = self.last_reload.lock() else {
            return false;
        };
        if last.elapsed() < RELOAD_INTERVAL {
            return false;
        }
        *last = Instant::now();
        true
    }

    /// Signs `header.payload` and returns the compact JWS.
    pub async fn sign_jwt(
        &self,
        typ: &str,
        claims: &serde_json::Value,
    ) -> Result<String, ServiceError> {
        let (kid, key) = {
            let loaded = self.loaded.read().await;
            (loaded.signing_kid.clone(), loaded.signing.clone())
        };
        let header = serde_json::json!({"alg": "RS256", "typ": typ, "kid": kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key
            .sign(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                signing_input.as_bytes(),
            )
            .map_err(|e| ServiceError::Internal(format!("signing: {e}")))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// Verifies an RS256 signature made by one of our keys. An unknown `kid` reloads the keys
    /// (at most once per [`RELOAD_INTERVAL`]), for a key another instance created after this
    /// one started.
    pub async fn verify(
        &self,
        kid: &str,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, ServiceError> {
        let key = self.loaded.read().await.verification.get(kid).cloned();
        let key = match key {
            Some(key) => key,
            None => {
                if !self.may_reload() {
                    return Ok(false);
                }
                self.reloads.fetch_add(1, Ordering::Relaxed);
                let Some(fresh) = load(&self.store, &self.sealer).await? else {
                    return Ok(false);
                };
                let key = fresh.verification.get(kid).cloned();
                *self.loaded.write().await = fresh;
                match key {
                    Some(key) => key,
                    None => return Ok(false),
                }
            }
        };
        Ok(key
            .verify_signature(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                signing_input,
                signature,
            )
            .is_ok())
    }

    /// Signs ID token claims (RS256, with `kid`), adding `at_hash` for `access_token`.
    pub async fn sign_id_token(
        &self,
        claims: CoreIdTokenClaims,
        access_token: &str,
    ) -> Result<String, ServiceError> {
        let key = self.loaded.read().await.signing.clone();
        let token = CoreIdToken::new(
            claims,
            key.as_ref(),
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Some(&AccessToken::new(access_token.to_owned())),
            None,
        )
        .map_err(|e| ServiceError::Internal(format!("ID token: {e}")))?;
        Ok(token.to_string())
    }

    pub async fn jwks(&self) -> CoreJsonWebKeySet {
        let loaded = self.loaded.read().await;
        let mut keys: Vec<CoreJsonWebKey> = loaded.verification.values().cloned().collect();
        keys.sort_by(|a, b| {
            a.key_id()
                .map(|k| k.as_str())
                .cmp(&b.key_id().map(|k| k.as_str()))
        });
        CoreJsonWebKeySet::new(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_key_ids_reload_at_most_once_a_minute() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let keys = KeyRing::open(store, Sealer::new(None).unwrap())
            .await
            .unwrap();
        for i in 0..20 {
            assert!(
                !keys
                    .verify(&format!("forged-{i}"), b"x", b"y")
                    .await
                    .unwrap()
            );
        }
        assert_eq!(keys.reloads(), 1);
    }
}
