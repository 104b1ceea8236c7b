//! Signing keys: RS256 for ID tokens (OpenID Connect's default) and, for access tokens,
//! ES256 by default (RS256 when configured). Signatures are made and checked with ring,
//! whose private-key operations are constant-time (not the `rsa` crate: RUSTSEC-2023-0071,
//! the Marvin timing attack); `rsa` only generates the RSA key, once. Keys are generated on
//! first start, stored sealed in the database so every instance signs with the same ones,
//! and all of them are published in the JWKS, whose body is built once per load.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openidconnect::core::{
    CoreGenderClaim, CoreJsonCurveType, CoreJsonWebKey, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AdditionalClaims, IdToken, IdTokenClaims, JsonWebKey, JsonWebKeyId,
    PrivateSigningKey, SigningError,
};
use ring::rand::SystemRandom;
use ring::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::domain::repo::KeyRepo;
use crate::service::ServiceError;
use crate::service::sealing::Sealer;
use crate::store::Store;

const RSA_BITS: usize = 2048;

/// The ID token claims beyond the standard ones: `sid`, the sign-in session (OpenID Connect
/// Front-/Back-Channel Logout §2).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SessionClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AdditionalClaims for SessionClaims {}

pub type IdClaims = IdTokenClaims<SessionClaims, CoreGenderClaim>;
/// A token naming an unknown `kid` reloads the keys at most this often: forged tokens
/// must not turn into a database query each.
const RELOAD_INTERVAL: Duration = Duration::from_secs(60);
/// Private keys stored before sealing existed are plain PEM.
const PLAIN_PEM: &str = "-----BEGIN";
const RSA_PEM: &str = "RSA PRIVATE KEY";
const PKCS8_PEM: &str = "PRIVATE KEY";

/// The JWS algorithm of a key (and of the tokens it signs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }
}

enum Private {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// One key pair, ready to sign, with its public half as a JWK.
struct Key {
    kid: String,
    alg: Alg,
    private: Private,
    jwk: CoreJsonWebKey,
}

impl Key {
    fn from_pem(kid: &str, pem: &str) -> Result<Self, ServiceError> {
        let corrupt = |what: &str| ServiceError::internal("signing key", format!("{kid}: {what}"));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD
            .decode(body.trim())
            .map_err(|_| corrupt("not PEM"))?;
        let id = Some(JsonWebKeyId::new(kid.to_owned()));
        if pem.contains(RSA_PEM) {
            let pair = RsaKeyPair::from_der(&der).map_err(|e| corrupt(&e.to_string()))?;
            let public: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
            let jwk = CoreJsonWebKey::new_rsa(public.n, public.e, id);
            return Ok(Self {
                kid: kid.to_owned(),
                alg: Alg::Rs256,
                private: Private::Rsa(pair),
                jwk,
            });
        }
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
                .map_err(|e| corrupt(&e.to_string()))?;
        // An uncompressed P-256 point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(corrupt("unexpected P-256 public key"));
        }
        let jwk = CoreJsonWebKey::new_ec(
            point[1..33].to_vec(),
            point[33..].to_vec(),
            CoreJsonCurveType::P256,
            id,
        );
        Ok(Self {
            kid: kid.to_owned(),
            alg: Alg::Es256,
            private: Private::Ec(pair),
            jwk,
        })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let rng = SystemRandom::new();
        let failed = |_| ServiceError::failed("signing");
        match &self.private {
            Private::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(failed)?;
                Ok(signature)
            }
            Private::Ec(pair) => Ok(pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec()),
        }
    }

    /// Checks a signature made by this key's private half.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.private {
            Private::Rsa(pair) => {
                let public: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                public
                    .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                    .is_ok()
            }
            Private::Ec(pair) => {
                signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key())
                    .verify(message, signature)
                    .is_ok()
            }
        }
    }
}

/// A compact JWS of `claims` signed with `key`, its header naming `alg`, `typ` and `kid`.
fn compact_jws(key: &Key, typ: &str, claims: &serde_json::Value) -> Result<String, ServiceError> {
    let header = serde_json::json!({"alg": key.alg.as_str(), "typ": typ, "kid": key.kid});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// Lets openidconnect build ID tokens with a ring RSA key.
struct IdTokenSigner<'a>(&'a Key);

impl PrivateSigningKey for IdTokenSigner<'_> {
    type VerificationKey = CoreJsonWebKey;

    fn sign(&self, alg: &CoreJwsSigningAlgorithm, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        match (alg, &self.0.private) {
            (CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, Private::Rsa(_)) => {
                self.0.sign(message).map_err(|_| SigningError::CryptoError)
            }
            (other, _) => Err(SigningError::UnsupportedAlg(format!("{other:?}"))),
        }
    }

    fn as_verification_key(&self) -> CoreJsonWebKey {
        self.0.jwk.clone()
    }
}

struct Loaded {
    id_token: Arc<Key>,
    access: Arc<Key>,
    by_kid: HashMap<String, Arc<Key>>,
    jwks_body: Arc<str>,
}

#[derive(Clone)]
pub struct KeyRing {
    store: Store,
    sealer: Sealer,
    access_alg: Alg,
    loaded: Arc<RwLock<Loaded>>,
    last_reload: Arc<std::sync::Mutex<Instant>>,
    reloads: Arc<AtomicU64>,
}

fn generate_rsa_pem() -> Result<String, ServiceError> {
    let key = rsa::RsaPrivateKey::new(&mut rand_core_06::OsRng, RSA_BITS)
        .map_err(|e| ServiceError::internal("RSA key generation", e))?;
    Ok(key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| ServiceError::internal("PEM encoding", e))?
        .to_string())
}

fn generate_ec_pem() -> Result<String, ServiceError> {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| ServiceError::failed("P-256 key generation"))?;
    let body = STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    Ok(format!(
        "-----BEGIN {PKCS8_PEM}-----\n{}\n-----END {PKCS8_PEM}-----\n",
        lines.join("\n")
    ))
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
        .map_err(|_| ServiceError::internal("signing key is not UTF-8", kid.to_owned()))
}

/// Loads every stored key, or says which kinds have no active key yet (RS256 for ID tokens,
/// `access_alg` for access tokens). A key that cannot be opened (a wrong encryption key) is
/// an error, so it stops start-up instead of being replaced.
async fn load(
    store: &Store,
    sealer: &Sealer,
    access_alg: Alg,
) -> Result<Result<Loaded, Vec<Alg>>, ServiceError> {
    let mut by_kid = HashMap::new();
    let mut id_token = None;
    let mut access = None;
    let mut jwks = Vec::new();
    for row in store.signing_keys().await? {
        let pem = open_pem(store, sealer, &row.kid, &row.private_pem).await?;
        let key = Arc::new(Key::from_pem(&row.kid, &pem)?);
        jwks.push(key.jwk.clone());
        // The oldest active key of each kind signs, so instances that raced agree.
        if row.active {
            if key.alg == Alg::Rs256 && id_token.is_none() {
                id_token = Some(key.clone());
            }
            if key.alg == access_alg && access.is_none() {
                access = Some(key.clone());
            }
        }
        by_kid.insert(row.kid.clone(), key);
    }
    let (Some(id_token), Some(access)) = (id_token.clone(), access.clone()) else {
        let mut missing = Vec::new();
        if id_token.is_none() {
            missing.push(Alg::Rs256);
        }
        if access.is_none() && access_alg != Alg::Rs256 {
            missing.push(access_alg);
        }
        return Ok(Err(missing));
    };
    jwks.sort_by(|a, b| {
        a.key_id()
            .map(|k| k.as_str())
            .cmp(&b.key_id().map(|k| k.as_str()))
    });
    let jwks_body = serde_json::to_string(&CoreJsonWebKeySet::new(jwks))
        .map_err(|e| ServiceError::internal("JWKS", e))?;
    Ok(Ok(Loaded {
        id_token,
        access,
        by_kid,
        jwks_body: jwks_body.into(),
    }))
}

/// Generates a key of `alg` and stores it sealed.
async fn generate(store: &Store, sealer: &Sealer, alg: Alg) -> Result<(), ServiceError> {
    let pem = match alg {
        Alg::Rs256 => tokio::task::spawn_blocking(generate_rsa_pem)
            .await
            .map_err(|e| ServiceError::internal("RSA key generation task", e))??,
        Alg::Es256 => generate_ec_pem()?,
    };
    let kid = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
    store
        .insert_signing_key(&kid, &sealer.seal(pem.as_bytes())?)
        .await?;
    tracing::info!(kid = %kid, alg = alg.as_str(), "generated a new signing key");
    Ok(())
}

impl KeyRing {
    /// Loads the stored keys, creating an RSA key (ID tokens) and a key for access tokens
    /// of `access_alg` if there is none.
    pub async fn open(store: Store, sealer: Sealer, access_alg: Alg) -> Result<Self, ServiceError> {
        let loaded = match load(&store, &sealer, access_alg).await? {
            Ok(loaded) => loaded,
            Err(missing) => {
                for alg in missing {
                    generate(&store, &sealer, alg).await?;
                }
                load(&store, &sealer, access_alg)
                    .await?
                    .map_err(|_| ServiceError::bug("signing keys vanished after insert"))?
            }
        };
        Ok(Self {
            store,
            sealer,
            access_alg,
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

    /// Signs claims as a compact JWS with the access-token key; the header names its `alg`.
    pub async fn sign_jwt(
        &self,
        typ: &str,
        claims: &serde_json::Value,
    ) -> Result<String, ServiceError> {
        let key = self.loaded.read().await.access.clone();
        compact_jws(&key, typ, claims)
    }

    /// Signs claims with the ID-token key (RS256), for tokens relying parties verify as they
    /// verify ID tokens (Back-Channel Logout tokens).
    pub async fn sign_with_id_token_key(
        &self,
        typ: &str,
        claims: &serde_json::Value,
    ) -> Result<String, ServiceError> {
        let key = self.loaded.read().await.id_token.clone();
        compact_jws(&key, typ, claims)
    }

    /// Verifies a signature made by one of our keys with algorithm `alg` (a token naming a
    /// key of another algorithm is refused). An unknown `kid` reloads the keys (at most once
    /// per [`RELOAD_INTERVAL`]), for a key another instance created after this one started.
    pub async fn verify(
        &self,
        alg: Alg,
        kid: &str,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, ServiceError> {
        let key = self.loaded.read().await.by_kid.get(kid).cloned();
        let key = match key {
            Some(key) => key,
            None => {
                if !self.may_reload() {
                    return Ok(false);
                }
                self.reloads.fetch_add(1, Ordering::Relaxed);
                let Ok(fresh) = load(&self.store, &self.sealer, self.access_alg).await? else {
                    return Ok(false);
                };
                let key = fresh.by_kid.get(kid).cloned();
                *self.loaded.write().await = fresh;
                match key {
                    Some(key) => key,
                    None => return Ok(false),
                }
            }
        };
        Ok(key.alg == alg && key.verify(signing_input, signature))
    }

    /// Whether a key `kid` of algorithm `alg` is held now: what a signature it made, checked
    /// before, still needs (a key removed since no longer vouches for its tokens).
    pub async fn holds(&self, alg: Alg, kid: &str) -> bool {
        self.loaded
            .read()
            .await
            .by_kid
            .get(kid)
            .is_some_and(|key| key.alg == alg)
    }

    /// Drops a key from those held, as a reload after its removal would.
    #[cfg(test)]
    pub(crate) async fn forget(&self, kid: &str) {
        self.loaded.write().await.by_kid.remove(kid);
    }

    /// Signs ID token claims (RS256, with `kid`), adding `at_hash` for `access_token`.
    pub async fn sign_id_token(
        &self,
        claims: IdClaims,
        access_token: &str,
    ) -> Result<String, ServiceError> {
        let key = self.loaded.read().await.id_token.clone();
        let token = IdToken::<
            SessionClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >::new(
            claims,
            &IdTokenSigner(&key),
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Some(&AccessToken::new(access_token.to_owned())),
            None,
        )
        .map_err(|e| ServiceError::internal("ID token", e))?;
        Ok(token.to_string())
    }

    /// The JWKS document, built when the keys were loaded.
    pub async fn jwks_body(&self) -> Arc<str> {
        self.loaded.read().await.jwks_body.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ring(alg: Alg) -> KeyRing {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        KeyRing::open(store, Sealer::new(None).unwrap(), alg)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn unknown_key_ids_reload_at_most_once_a_minute() {
        let keys = ring(Alg::Es256).await;
        for i in 0..20 {
            assert!(
                !keys
                    .verify(Alg::Es256, &format!("forged-{i}"), b"x", b"y")
                    .await
                    .unwrap()
            );
        }
        assert_eq!(keys.reloads(), 1);
    }

    #[tokio::test]
    async fn tokens_verify_only_with_their_key_and_algorithm() {
        for alg in [Alg::Es256, Alg::Rs256] {
            let keys = ring(alg).await;
            let token = keys
                .sign_jwt("at+jwt", &serde_json::json!({"sub": "x"}))
                .await
                .unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            let header: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            assert_eq!(header["alg"], alg.as_str());
            let kid = header["kid"].as_str().unwrap();
            let input = format!("{}.{}", parts[0], parts[1]);
            let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            assert!(
                keys.verify(alg, kid, input.as_bytes(), &signature)
                    .await
                    .unwrap()
            );
            let other = if alg == Alg::Es256 {
                Alg::Rs256
            } else {
                Alg::Es256
            };
            assert!(
                !keys
                    .verify(other, kid, input.as_bytes(), &signature)
                    .await
                    .unwrap()
            );
            let tampered = format!("{input}x");
            assert!(
                !keys
                    .verify(alg, kid, tampered.as_bytes(), &signature)
                    .await
                    .unwrap()
            );
            // Both keys are published.
            let jwks: serde_json::Value = serde_json::from_str(&keys.jwks_body().await).unwrap();
            let types: Vec<&str> = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kty"].as_str().unwrap())
                .collect();
            let expected = if alg == Alg::Es256 { 2 } else { 1 };
            assert_eq!(types.len(), expected, "{jwks}");
            assert!(types.contains(&"RSA"));
        }
    }

    #[tokio::test]
    async fn a_wrong_encryption_key_stops_start_up_instead_of_replacing_keys() {
        use base64::engine::general_purpose::STANDARD;
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let key = |b: u8| crate::domain::secret::Secret::new(STANDARD.encode([b; 32]));
        KeyRing::open(
            store.clone(),
            Sealer::new(Some(&key(1))).unwrap(),
            Alg::Es256,
        )
        .await
        .unwrap();
        let before = store.signing_keys().await.unwrap().len();
        assert!(
            KeyRing::open(
                store.clone(),
                Sealer::new(Some(&key(2))).unwrap(),
                Alg::Es256
            )
            .await
            .is_err()
        );
        assert_eq!(
            store.signing_keys().await.unwrap().len(),
            before,
            "no key was added"
        );
    }
}
