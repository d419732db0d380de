//! Credentials: the admin token and share-link tokens. Tokens are 256-bit random secrets; only
//! their SHA-256 is stored, and every comparison is constant-time.
//!
//! A share token carries its share id in the clear (`s_` + base64url(share id ‖ secret)) so the
//! server finds the one record to compare against without an index keyed by secret material.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mapline_store::{PlanId, Role, ShareId, ShareRecord, Store, StoreError};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

const SHARE_PREFIX: &str = "s_";
const ADMIN_PREFIX: &str = "a_";
const SECRET_BYTES: usize = 32;

/// SHA-256 of a token, the only form in which tokens are stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new admin credential.
pub fn new_admin_token() -> String {
    let mut secret = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    format!("{ADMIN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret))
}

/// A new share token for the given share id.
pub fn new_share_token(share: ShareId) -> String {
    let mut raw = [0u8; 16 + SECRET_BYTES];
    raw[..16].copy_from_slice(share.as_bytes());
    rand::rng().fill_bytes(&mut raw[16..]);
    format!("{SHARE_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

fn share_id_of(token: &str) -> Option<ShareId> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.strip_prefix(SHARE_PREFIX)?)
        .ok()?;
    (raw.len() == 16 + SECRET_BYTES)
        .then(|| Uuid::from_slice(&raw[..16]).ok())
        .flatten()
}

/// Who a request or connection is, once its token checked out.
#[derive(Debug, Clone)]
pub enum Principal {
    Admin,
    Share(ShareRecord),
}

impl Principal {
    /// Whether this principal may read a plan.
    pub fn can_read(&self, plan: PlanId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Share(share) => share.plan_id == plan,
        }
    }

    /// Whether updates from this principal may change documents.
    pub fn can_write(&self) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Share(share) => share.role == Role::Editor,
        }
    }

    /// The share id for logs and attribution (`None` for admin).
    pub fn share_id(&self) -> Option<ShareId> {
        match self {
            Principal::Admin => None,
            Principal::Share(share) => Some(share.id),
        }
    }
}

/// Why a token was not accepted. Deliberately not more specific to the caller than "unknown".
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the token is not valid")]
    Invalid,
    #[error("the share link has been revoked")]
    Revoked,
    #[error("the share link has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks tokens against the admin credential and the stored share links.
pub struct Authenticator {
    admin_hash: [u8; 32],
}

impl Authenticator {
    /// An authenticator accepting the admin credential with this hash.
    pub fn new(admin_hash: [u8; 32]) -> Self {
        Self { admin_hash }
    }

    /// Resolves a token to its principal. Blocks on the store: call from `spawn_blocking`.
    pub fn authenticate(
        &self,
        store: &Store,
        token: &str,
        now_ms: i64,
    ) -> Result<Principal, AuthError> {
        // Any token may be the admin credential (an operator may configure their own).
        let is_admin: bool = token_hash(token).ct_eq(&self.admin_hash).into();
        if is_admin {
            return Ok(Principal::Admin);
        }
        let id = share_id_of(token).ok_or(AuthError::Invalid)?;
        let share = store.share(id)?.ok_or(AuthError::Invalid)?;
        let matches: bool = token_hash(token).ct_eq(&share.token_hash).into();
        if !matches {
            return Err(AuthError::Invalid);
        }
        if share.revoked_at_ms.is_some() {
            return Err(AuthError::Revoked);
        }
        if share.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(AuthError::Expired);
        }
        Ok(Principal::Share(share))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_tokens_carry_their_id_and_differ_each_time() {
        let id = Uuid::now_v7();
        let (a, b) = (new_share_token(id), new_share_token(id));
        assert_ne!(a, b);
        assert_eq!(share_id_of(&a), Some(id));
        assert_eq!(share_id_of("s_short"), None);
        assert_eq!(share_id_of(&a.replacen("s_", "x_", 1)), None);
    }

    #[test]
    fn admin_token_is_checked_by_hash() {
        let token = new_admin_token();
        let auth = Authenticator::new(token_hash(&token));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.redb")).unwrap();
        assert!(matches!(
            auth.authenticate(&store, &token, 0),
            Ok(Principal::Admin)
        ));
        let other = new_admin_token();
        assert!(matches!(
            auth.authenticate(&store, &other, 0),
            Err(AuthError::Invalid)
        ));
        assert!(matches!(
            auth.authenticate(&store, "", 0),
            Err(AuthError::Invalid)
        ));
    }
}
