//! OAuth records as the rest of the service sees them: registered clients, the grants a
//! sign-in leaves behind, and refresh tokens. The store maps its rows to these.

use chrono::{DateTime, Utc};

use super::ids::{ClientId, UserId};
use super::scope::ScopeSet;

/// A client, as registered and as stored. The secret is only ever held as a digest.
#[derive(Clone, Debug)]
pub struct Client {
    pub client_id: ClientId,
    pub secret_digest: Option<Vec<u8>>,
    pub scopes: ScopeSet,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub require_mfa: bool,
    /// Whether a user's sign-in here may carry `bypass_codes:self`: the client then holds a
    /// token that mints bypass codes for whoever signs in to it, so it must be trusted as
    /// much as the user's own authenticator (`client add --allow-self-service-codes`).
    pub allow_self_service_codes: bool,
    /// Sign-ins here neither offer nor accept a bypass code, and a session opened with one
    /// does not satisfy them (`client add --no-bypass-codes`).
    pub refuses_bypass_codes: bool,
    /// Where RP-Initiated Logout may send the browser afterwards (matched exactly).
    pub post_logout_redirect_uris: Vec<String>,
    /// Where Back-Channel Logout tokens are posted.
    pub backchannel_logout_uri: Option<String>,
}

impl Client {
    pub fn may_use(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }

    /// Whether a user's sign-in at this client may carry `scope`.
    pub fn may_grant_user_scope(&self, scope: &str) -> bool {
        scope != super::scope::BYPASS_CODES_SELF || self.allow_self_service_codes
    }

    /// A short fingerprint of the client's current secret, carried in its client_credentials
    /// tokens: a client removed and registered again under the same id (how a secret is
    /// replaced) does not honour tokens minted with the old secret. A hash of the stored
    /// digest of a 256-bit secret: it tells nothing about the secret.
    pub fn secret_fingerprint(&self) -> Option<String> {
        use base64::Engine;
        use sha2::{Digest, Sha256};
        let digest = self.secret_digest.as_ref()?;
        let hash = Sha256::new()
            .chain_update(b"bypass-idp client secret fingerprint\0")
            .chain_update(digest)
            .finalize();
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash[..12]))
    }
}

/// What one sign-in granted a client: the root of its refresh tokens and user tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub user_id: UserId,
    pub client_id: ClientId,
    pub scope: String,
    /// When the user signed in (Unix seconds).
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub created_at: DateTime<Utc>,
    /// The bypass code the sign-in used: revoking it ends this grant.
    pub bypass_code_id: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The single sign-on session that gave it: ending the session ends the grant.
    pub session_id: Option<String>,
}

impl Grant {
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }

    /// When the sign-in's refresh tokens stop working, however often they were rotated.
    pub fn session_end(&self, lifetime: chrono::Duration) -> DateTime<Utc> {
        let signed_in = DateTime::from_timestamp(self.auth_time, 0).unwrap_or(self.created_at);
        signed_in + lifetime
    }
}

/// A stored refresh token (its digest is the key).
#[derive(Clone, Debug)]
pub struct RefreshToken {
    pub grant_id: String,
    pub expires_at: DateTime<Utc>,
}

/// A signing key as stored: its private half sealed (or, from before sealing, plain PEM).
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub private_pem: String,
    pub active: bool,
}
