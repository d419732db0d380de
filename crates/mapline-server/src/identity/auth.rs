//! Credentials: the admin token and share-link tokens. Tokens are 256-bit random secrets; only
//! their SHA-256 is stored, and every comparison is constant-time.
//!
//! A share token carries its share id in the clear (`s_` + base64url(share id ‖ secret)) so the
//! server finds the one record to compare against without an index keyed by secret material.
//!
//! A calendar-feed token (`f_` + base64url(share id ‖ HMAC-SHA256(share token, label))) is the
//! read-only credential a calendar service keeps: it opens `calendar.ics` of its link's plan and
//! nothing else ([`Authenticator::authenticate`] does not know it). It is derived from the share
//! token, so the link holder gets the same one each time (`/me`), while the server, which stores
//! only its SHA-256, cannot make it again without the share token — nor can anyone holding the
//! data file. It is checked against its link's record, so it dies with the link.
//!
//! A member's credential is the session cookie ([`COOKIE`]): [`authenticate_session`] resolves
//! it to its member; the cookie's life (sign-in, CSRF, sign-out) is `session.rs`'s.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use mapline_store::{MemberRecord, PlanId, Role, ShareId, ShareRecord, Store, StoreError};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

const SHARE_PREFIX: &str = "s_";
const ADMIN_PREFIX: &str = "a_";
const FEED_PREFIX: &str = "f_";
/// What a feed token's MAC is over; a new version would give every link a new feed.
const FEED_LABEL: &[u8] = b"mapline calendar feed v1";
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
    id_after(token, SHARE_PREFIX)
}

/// The id carried by a token of this kind (`prefix` + base64url(id ‖ 32 bytes)).
fn id_after(token: &str, prefix: &str) -> Option<Uuid> {
    let raw = URL_SAFE_NO_PAD.decode(token.strip_prefix(prefix)?).ok()?;
    (raw.len() == 16 + SECRET_BYTES)
        .then(|| Uuid::from_slice(&raw[..16]).ok())
        .flatten()
}

/// Whether a token is a calendar-feed token (by its form; it may still be invalid).
pub fn is_feed_token(token: &str) -> bool {
    token.starts_with(FEED_PREFIX)
}

/// The calendar-feed token of a share link, derived from the link's token: the same every time,
/// and only its holder can make it. `None` for anything that is not a share token.
pub fn feed_token(share_token: &str) -> Option<String> {
    let share = share_id_of(share_token)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(share_token.as_bytes()).ok()?;
    mac.update(FEED_LABEL);
    let mut raw = [0u8; 16 + SECRET_BYTES];
    raw[..16].copy_from_slice(share.as_bytes());
    raw[16..].copy_from_slice(&mac.finalize().into_bytes());
    Some(format!("{FEED_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
}

/// Who a request or connection is, once its token (or session cookie) checked out.
#[derive(Debug, Clone)]
pub enum Principal {
    Admin,
    Share(ShareRecord),
    /// A signed-in member of the seller team (session cookie; see `session.rs`).
    Member(Box<MemberSession>),
}

/// A member and the session they came with.
#[derive(Debug, Clone)]
pub struct MemberSession {
    pub member: MemberRecord,
    /// SHA-256 of the session id (the `sessions` key): what logout and revocation name.
    pub session: [u8; 32],
    pub expires_at_ms: i64,
}

/// How a principal may read plans, before any store lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAccess {
    /// Every plan (admin token, manager and admin members).
    Every,
    /// Only this plan (a share link).
    Only(PlanId),
    /// The plans this member owns or is a seller member of (a rep): the store decides.
    Membership(mapline_store::MemberId),
}

impl Principal {
    /// Which plans this principal may read; for a rep the store's membership decides.
    pub fn read_access(&self) -> ReadAccess {
        match self {
            Principal::Admin => ReadAccess::Every,
            Principal::Share(share) => ReadAccess::Only(share.plan_id),
            Principal::Member(m) if m.member.role.reads_every_plan() => ReadAccess::Every,
            Principal::Member(m) => ReadAccess::Membership(m.member.id),
        }
    }

    /// Whether updates from this principal may change documents. Members edit as seller
    /// editors.
    pub fn can_write(&self) -> bool {
        match self {
            Principal::Admin | Principal::Member(_) => true,
            Principal::Share(share) => share.role == Role::Editor,
        }
    }

    /// The share id for logs and attribution (`None` for admin and members).
    pub fn share_id(&self) -> Option<ShareId> {
        match self {
            Principal::Admin | Principal::Member(_) => None,
            Principal::Share(share) => Some(share.id),
        }
    }

    /// The member, for a session.
    pub fn member(&self) -> Option<&MemberSession> {
        match self {
            Principal::Member(m) => Some(m),
            _ => None,
        }
    }

    /// The author recorded for this principal's updates.
    pub fn author(&self) -> mapline_store::Author {
        use mapline_store::{Author, Side};
        match self {
            Principal::Admin => Author::Admin,
            Principal::Share(share) => Author::Share {
                id: share.id,
                side: share.side,
            },
            Principal::Member(m) => Author::Member {
                id: m.member.id,
                side: Side::Seller,
            },
        }
    }

    /// Whether this is the admin credential or an admin member.
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Member(m) => m.member.role == mapline_store::MemberRole::Admin,
            Principal::Share(_) => false,
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
    #[error("not signed in: the session cookie is missing or not valid")]
    NotSignedIn,
    #[error("this session has expired; sign in again")]
    SessionExpired,
    #[error("this session was signed out; sign in again")]
    SessionRevoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The session cookie's name.
pub const COOKIE: &str = "mapline_session";

/// The session id in the request's `Cookie` headers, if any.
pub fn cookie_session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Resolves a session id to its member. Blocks on the store.
pub fn authenticate_session(
    store: &Store,
    session_id: &str,
    now_ms: i64,
) -> Result<Principal, AuthError> {
    let hash = token_hash(session_id);
    let (session, member) = store.session(&hash)?.ok_or(AuthError::NotSignedIn)?;
    if session.revoked_at_ms.is_some() {
        return Err(AuthError::SessionRevoked);
    }
    if session.expires_at_ms <= now_ms {
        return Err(AuthError::SessionExpired);
    }
    if member.disabled_at_ms.is_some() {
        return Err(AuthError::SessionRevoked);
    }
    Ok(Principal::Member(Box::new(MemberSession {
        member,
        session: hash,
        expires_at_ms: session.expires_at_ms,
    })))
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

    /// Whether a token is the admin credential (whatever it looks like).
    pub fn is_admin(&self, token: &str) -> bool {
        token_hash(token).ct_eq(&self.admin_hash).into()
    }

    /// Resolves a token to its principal. Blocks on the store: call from `spawn_blocking`.
    pub fn authenticate(
        &self,
        store: &Store,
        token: &str,
        now_ms: i64,
    ) -> Result<Principal, AuthError> {
        // Any token may be the admin credential (an operator may configure their own).
        if self.is_admin(token) {
            return Ok(Principal::Admin);
        }
        let id = share_id_of(token).ok_or(AuthError::Invalid)?;
        let share = store.share(id)?.ok_or(AuthError::Invalid)?;
        check_share(token, &share.token_hash, &share, now_ms)?;
        Ok(Principal::Share(share))
    }

    /// Resolves a calendar-feed token to its share link, checked like the link's own token
    /// (revoked or expired links refuse their feed too). Blocks on the store.
    pub fn authenticate_feed(
        &self,
        store: &Store,
        token: &str,
        now_ms: i64,
    ) -> Result<ShareRecord, AuthError> {
        let id = id_after(token, FEED_PREFIX).ok_or(AuthError::Invalid)?;
        let (share, feed_hash) = store.share_with_feed(id)?.ok_or(AuthError::Invalid)?;
        // No feed issued yet for this link: nothing can match.
        let feed_hash = feed_hash.ok_or(AuthError::Invalid)?;
        check_share(token, &feed_hash, &share, now_ms)?;
        Ok(share)
    }
}

/// A presented token against the hash stored for it (in constant time), then the link's own
/// state: the same check for a link's token and for its calendar feed.
fn check_share(
    token: &str,
    stored_hash: &[u8; 32],
    share: &ShareRecord,
    now_ms: i64,
) -> Result<(), AuthError> {
    let matches: bool = token_hash(token).ct_eq(stored_hash).into();
    if !matches {
        return Err(AuthError::Invalid);
    }
    if share.revoked_at_ms.is_some() {
        return Err(AuthError::Revoked);
    }
    if share.expires_at_ms.is_some_and(|at| at <= now_ms) {
        return Err(AuthError::Expired);
    }
    Ok(())
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
    fn a_feed_token_is_the_same_for_its_link_and_tells_nothing_of_the_share_token() {
        let id = Uuid::now_v7();
        let (a, b) = (new_share_token(id), new_share_token(id));
        let feed = feed_token(&a).unwrap();
        assert_eq!(feed_token(&a).as_deref(), Some(feed.as_str()));
        assert_ne!(
            feed_token(&b).unwrap(),
            feed,
            "another token of the same id"
        );
        assert!(is_feed_token(&feed) && !is_feed_token(&a));
        assert_eq!(id_after(&feed, FEED_PREFIX), Some(id));
        // A feed token is no share token (so `authenticate` cannot resolve it) and makes none.
        assert_eq!(share_id_of(&feed), None);
        assert_eq!(feed_token(&feed), None);
        assert_eq!(feed_token(&new_admin_token()), None);
        let secret = a.strip_prefix(SHARE_PREFIX).unwrap();
        assert!(!feed.contains(&secret[22..]));
    }

    #[test]
    fn a_feed_token_is_accepted_only_once_issued_and_only_while_its_link_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.redb")).unwrap();
        let auth = Authenticator::new(token_hash(&new_admin_token()));
        let plan = Uuid::now_v7();
        let new_plan =
            mapline_plan::NewPlan::parse("Rollout", "Northwind", "Acme", "2027-04-01").unwrap();
        let first =
            mapline_plan::new_plan_update(&new_plan, crate::http::plans::server_client_id());
        let issued = crate::http::plans::create_plan(&store, plan, &new_plan, first, 0).unwrap();
        let (record, share_token) = (issued[0].record.clone(), issued[0].token.clone());
        let feed = feed_token(&share_token).unwrap();
        let check = |token: &str, now| auth.authenticate_feed(&store, token, now);
        assert!(
            matches!(check(&feed, 0), Err(AuthError::Invalid)),
            "not issued yet"
        );
        store.set_feed_hash(record.id, &token_hash(&feed)).unwrap();
        assert_eq!(check(&feed, 0).unwrap().id, record.id);
        assert!(matches!(check(&share_token, 0), Err(AuthError::Invalid)));
        let other = feed_token(&new_share_token(record.id)).unwrap();
        assert!(matches!(check(&other, 0), Err(AuthError::Invalid)));
        let expiring = crate::http::plans::issue_share(
            plan,
            mapline_store::Side::Buyer,
            Role::Viewer,
            "CFO",
            Some(1_000),
            0,
        );
        store.insert_share(&expiring.record, None).unwrap();
        let expiring_feed = feed_token(&expiring.token).unwrap();
        store
            .set_feed_hash(expiring.record.id, &token_hash(&expiring_feed))
            .unwrap();
        assert!(check(&expiring_feed, 999).is_ok());
        assert!(matches!(
            check(&expiring_feed, 1_000),
            Err(AuthError::Expired)
        ));
        store.revoke_share(plan, record.id, 10).unwrap();
        assert!(matches!(check(&feed, 0), Err(AuthError::Revoked)));
        // The feed token is not a credential anywhere else.
        assert!(matches!(
            auth.authenticate(&store, &feed, 0),
            Err(AuthError::Invalid)
        ));
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
