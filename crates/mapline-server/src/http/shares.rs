//! Share-link management over HTTP (mint, list with last use, revoke), the caller's own access
//! (`/me`), and the registry of open sockets per share so a revocation closes them at once.
//!
//! Who may manage a plan's links: the admin and the plan's seller editors list and revoke them
//! (buyers and viewers get 403 `sellers_only`: the list says who has opened the plan, which is
//! the seller's to see). Buyer editors may mint buyer links, so a champion can bring in their
//! CFO; viewers mint nothing.
//!
//! A link minted with a share link is bounded by it (its parent): it expires no later, and
//! revoking the parent revokes it too, transitively — the store marks every descendant in the
//! revocation's transaction, and the revocation closes all their sockets. Links minted with
//! the admin credential have no parent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use mapline_store::{
    LinkedShare, MemberRecord, PlanId, Role, ShareId, ShareRecord, ShareSeen, Side, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::App;
use crate::clock::now_ms;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::{ApiJson, PlanReader, bearer};
use crate::http::plans::{self, MAX_LABEL_CHARS, role_name, side_name};
use crate::identity::auth::{self, Principal};
use crate::sync::outbox::{CloseCode, CloseReason, Closer};
use crate::sync::room::ConnId;

/// Open sockets per credential (a share link, or a member's session), so revoking it can close
/// them.
pub struct Sockets<K> {
    open: Mutex<HashMap<K, HashMap<ConnId, Closer>>>,
}

/// Open sockets per share link.
pub type ShareSockets = Sockets<ShareId>;

impl<K> Default for Sockets<K> {
    fn default() -> Self {
        Self {
            open: Mutex::default(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy> Sockets<K> {
    /// Registers an open connection of a credential; the returned guard unregisters it.
    pub fn register(self: &Arc<Self>, share: K, conn: ConnId, closer: Closer) -> Registered<K> {
        self.lock().entry(share).or_default().insert(conn, closer);
        Registered {
            sockets: self.clone(),
            share,
            conn,
        }
    }

    /// Closes every open connection of a share with 4401; returns how many there were.
    pub fn close_all(&self, share: K, reason: &str) -> usize {
        let closers = self.lock().remove(&share).unwrap_or_default();
        for closer in closers.values() {
            closer.close(CloseReason::new(CloseCode::AccessRevoked, reason));
        }
        closers.len()
    }

    /// The credentials with an open connection now.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))] // used by a cluster's node
    pub fn credentials(&self) -> Vec<K> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, HashMap<ConnId, Closer>>> {
        // The map stays consistent whatever panicked while holding it.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An open connection's place in [`Sockets`], removed on drop.
pub struct Registered<K: std::hash::Hash + Eq + Copy> {
    sockets: Arc<Sockets<K>>,
    share: K,
    conn: ConnId,
}

impl<K: std::hash::Hash + Eq + Copy> Drop for Registered<K> {
    fn drop(&mut self) {
        let mut open = self.sockets.lock();
        if let Some(conns) = open.get_mut(&self.share) {
            conns.remove(&self.conn);
            if conns.is_empty() {
                open.remove(&self.share);
            }
        }
    }
}

/// The reason given to sockets closed by a revocation.
pub const REVOKED_REASON: &str = "this share link was revoked";

/// Which sides' links a principal may mint: every side for the admin and seller editors, buyer
/// links for buyer editors (a champion bringing in their CFO), none for viewers.
fn mintable_sides(principal: &Principal) -> &'static [Side] {
    match principal {
        Principal::Admin | Principal::Member(_) => &[Side::Buyer, Side::Seller],
        Principal::Share(share) => match (share.side, share.role) {
            (Side::Seller, Role::Editor) => &[Side::Buyer, Side::Seller],
            (Side::Buyer, Role::Editor) => &[Side::Buyer],
            (_, Role::Viewer) => &[],
        },
    }
}

/// Checks that a principal may manage the plan's share links.
fn require_share_manager(principal: &Principal) -> Result<(), ApiError> {
    match principal {
        Principal::Admin | Principal::Member(_) => Ok(()),
        Principal::Share(share) if share.side == Side::Seller && share.role == Role::Editor => {
            Ok(())
        }
        Principal::Share(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "sellers_only",
            "only the seller's editors manage this plan's links",
        )),
    }
}

fn time(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

/// A share link as the list shows it: never its token (only the hash is stored).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedShare {
    id: Uuid,
    side: &'static str,
    role: &'static str,
    label: String,
    /// The link this one was minted through (`None`: minted with the admin credential, a
    /// plan's default link, or made before lineage was recorded).
    parent_id: Option<Uuid>,
    /// The parent's label, e.g. "Dev Patel (champion)", or the name of the member who
    /// minted it.
    minted_by: Option<String>,
    /// The member who minted it (`None`: minted with a link or the admin credential).
    minted_by_member: Option<Uuid>,
    created_at: Option<String>,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    status: &'static str,
    first_seen_at: Option<String>,
    last_seen_at: Option<String>,
    opens: u64,
}

/// `active`, `expired` or `revoked`.
fn status(share: &ShareRecord, now_ms: i64) -> &'static str {
    if share.revoked_at_ms.is_some() {
        "revoked"
    } else if share.expires_at_ms.is_some_and(|at| at <= now_ms) {
        "expired"
    } else {
        "active"
    }
}

/// Labels by share id, for `mintedBy`.
fn labels<'a>(shares: impl IntoIterator<Item = &'a LinkedShare>) -> HashMap<ShareId, String> {
    shares
        .into_iter()
        .map(|s| (s.record.id, s.record.label.clone()))
        .collect()
}

/// Who minted each link: the parent link's label, or the minting member (name, id).
struct Minters {
    labels: HashMap<ShareId, String>,
    members: HashMap<ShareId, MemberRecord>,
}

impl Minters {
    /// `mintedBy` and `mintedByMember` of a link.
    fn of(&self, linked: &LinkedShare) -> (Option<String>, Option<Uuid>) {
        match self.members.get(&linked.record.id) {
            Some(member) => (Some(member.name.clone()), Some(member.id)),
            None => (
                linked.parent.and_then(|p| self.labels.get(&p).cloned()),
                None,
            ),
        }
    }
}

/// The minters of these links (one store read for the members).
fn minters<'a>(
    store: &mapline_store::Store,
    links: impl IntoIterator<Item = &'a LinkedShare> + Clone,
) -> Result<Minters, StoreError> {
    let ids: Vec<ShareId> = links.clone().into_iter().map(|l| l.record.id).collect();
    Ok(Minters {
        labels: labels(links),
        members: store.share_minters(&ids)?,
    })
}

impl ListedShare {
    fn new(linked: &LinkedShare, seen: Option<ShareSeen>, minters: &Minters, now_ms: i64) -> Self {
        let share = &linked.record;
        let (minted_by, minted_by_member) = minters.of(linked);
        Self {
            id: share.id,
            side: side_name(share.side),
            role: role_name(share.role),
            label: share.label.clone(),
            parent_id: linked.parent,
            minted_by,
            minted_by_member,
            created_at: time(share.created_at_ms),
            expires_at: share.expires_at_ms.and_then(time),
            revoked_at: share.revoked_at_ms.and_then(time),
            status: status(share, now_ms),
            first_seen_at: seen.and_then(|s| time(s.first_ms)),
            last_seen_at: seen.and_then(|s| time(s.last_ms)),
            opens: seen.map_or(0, |s| s.opens),
        }
    }
}

/// `GET /api/plans/{id}/me`: who the caller is on this plan and what it may do, so a client
/// can show read-only views and the link manager only where they apply; for a share link also
/// its `calendarUrl`, the read-only feed to subscribe to (never the share token itself).
#[utoipa::path(get, path = "/api/plans/{plan_id}/me", tag = "shares", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "Who the caller is on this plan and what it may do, and `calendarUrl`: the link's read-only calendar feed (`null` for the admin)"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn me(
    State(app): State<Arc<App>>,
    PlanReader { principal, plan_id }: PlanReader,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let manages = require_share_manager(&principal).is_ok();
    let mintable: Vec<_> = mintable_sides(&principal)
        .iter()
        .map(|&side| side_name(side))
        .collect();
    let body = match &principal {
        // The admin has no link to derive a feed from; automation reads the feed with the
        // admin credential itself.
        Principal::Admin => json!({
            "planId": plan_id, "kind": "admin", "label": "Admin", "side": null, "role": "editor",
            "canEdit": true, "canManageShares": manages, "canMintSides": mintable,
            "calendarUrl": null,
        }),
        Principal::Member(m) => json!({
            "planId": plan_id, "kind": "member", "member": crate::identity::session::member_json(&m.member),
            "label": m.member.name, "side": "seller", "role": "editor",
            "canEdit": true, "canManageShares": manages, "canMintSides": mintable,
            "calendarUrl": null,
        }),
        Principal::Share(share) => {
            let feed = issue_feed(&app, share.id, bearer(&headers)).await?;
            json!({
                "planId": plan_id, "kind": "share", "shareId": share.id, "label": share.label,
                "side": side_name(share.side), "role": role_name(share.role),
                "canEdit": principal.can_write(), "canManageShares": manages,
                "canMintSides": mintable, "expiresAt": share.expires_at_ms.and_then(time),
                "calendarUrl": calendar_url(app.config.public_url.as_deref(), plan_id, &feed),
            })
        }
    };
    Ok(Json(body))
}

/// The feed token of the link whose token the caller presented, its hash stored so the feed
/// opens (first call for a link: one write; later calls: one read).
async fn issue_feed(
    app: &Arc<App>,
    share: ShareId,
    share_token: Option<&str>,
) -> Result<String, ApiError> {
    let feed = share_token
        .and_then(auth::feed_token)
        .ok_or_else(|| ApiError::internal("a share principal without a share token"))?;
    let hash = auth::token_hash(&feed);
    blocking(app, move |store| store.set_feed_hash(share, &hash)).await?;
    Ok(feed)
}

/// The calendar feed's address for a feed token: absolute under `--public-url` (as share links
/// are), relative otherwise. The token rides in the query: calendar apps send no headers.
pub(crate) fn calendar_url(public_url: Option<&str>, plan: PlanId, feed: &str) -> String {
    let origin = public_url.unwrap_or("").trim_end_matches('/');
    format!("{origin}/api/plans/{plan}/calendar.ics?token={feed}")
}

/// `GET /api/plans/{id}/shares`: every link of the plan with when it was last used.
#[utoipa::path(get, path = "/api/plans/{plan_id}/shares", tag = "shares", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "`{ shares }` with when each was last used"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn list(
    State(app): State<Arc<App>>,
    PlanReader { principal, plan_id }: PlanReader,
) -> Result<impl IntoResponse, ApiError> {
    require_share_manager(&principal)?;
    let (shares, minters) = blocking(&app, move |store| {
        let shares = store.shares_of(plan_id)?;
        let minters = minters(store, shares.iter().map(|(share, _)| share))?;
        Ok((shares, minters))
    })
    .await?;
    let now = now_ms();
    let listed: Vec<_> = shares
        .iter()
        .map(|(share, seen)| ListedShare::new(share, *seen, &minters, now))
        .collect();
    Ok(Json(json!({ "shares": listed })))
}

/// One link that a revocation takes (or took) along, with its place in the tree.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RevokedLink {
    id: Uuid,
    side: &'static str,
    role: &'static str,
    label: String,
    parent_id: Option<Uuid>,
    minted_by: Option<String>,
    minted_by_member: Option<Uuid>,
    /// 0 for the link being revoked, 1 for the links minted through it, and so on.
    depth: usize,
    status: &'static str,
    revoked_at: Option<String>,
}

/// The links of a revocation as the API shows them, in the store's order (the link first,
/// then the tree below it depth first).
fn revoked_links(links: &[LinkedShare], minters: &Minters, now_ms: i64) -> Vec<RevokedLink> {
    let mut depths: HashMap<ShareId, usize> = HashMap::new();
    links
        .iter()
        .map(|linked| {
            let share = &linked.record;
            // Each link comes after its parent; the first one's parent is outside the tree.
            let depth = linked
                .parent
                .and_then(|p| depths.get(&p))
                .map_or(0, |d| d + 1);
            depths.insert(share.id, depth);
            let (minted_by, minted_by_member) = minters.of(linked);
            RevokedLink {
                id: share.id,
                side: side_name(share.side),
                role: role_name(share.role),
                label: share.label.clone(),
                parent_id: linked.parent,
                minted_by,
                minted_by_member,
                depth,
                status: status(share, now_ms),
                revoked_at: share.revoked_at_ms.and_then(time),
            }
        })
        .collect()
}

fn share_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "share_not_found",
        "this plan has no share link with this id",
    )
}

/// `GET /api/plans/{id}/shares/{shareId}/revocation`: what revoking the link would revoke —
/// the link and every link minted through it, transitively — so a person can confirm first.
#[utoipa::path(get, path = "/api/plans/{plan_id}/shares/{share_id}/revocation", tag = "shares", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("share_id" = String, Path, description = "The link's id")), responses((status = 200, description = "`{ shares }`: the link first, then every link minted through it (depth first, with `depth`, `parentId`, `mintedBy`)"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn revocation(
    State(app): State<Arc<App>>,
    Path((_, share_id)): Path<(String, String)>,
    PlanReader { principal, plan_id }: PlanReader,
) -> Result<impl IntoResponse, ApiError> {
    require_share_manager(&principal)?;
    let share_id = Uuid::parse_str(&share_id).map_err(|_| share_not_found())?;
    let (links, minters) = blocking(&app, move |store| {
        let Some(links) = store.revocation_of(plan_id, share_id)? else {
            return Ok(None);
        };
        let minters = minters(store, &links)?;
        Ok(Some((links, minters)))
    })
    .await?
    .ok_or_else(share_not_found)?;
    Ok(Json(
        json!({ "shares": revoked_links(&links, &minters, now_ms()) }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum SideBody {
    Buyer,
    Seller,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum RoleBody {
    Editor,
    Viewer,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateShareBody {
    side: SideBody,
    role: RoleBody,
    label: String,
    /// RFC 3339; the link stops working then.
    #[serde(default)]
    expires_at: Option<String>,
}

/// `POST /api/plans/{id}/shares`: mints a link; its token is in this answer only.
#[utoipa::path(post, path = "/api/plans/{plan_id}/shares", tag = "shares", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), request_body = CreateShareBody, responses((status = 201, description = "The new link; its token is in this answer only"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn create(
    State(app): State<Arc<App>>,
    PlanReader { principal, plan_id }: PlanReader,
    body: Result<ApiJson<CreateShareBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let mintable = mintable_sides(&principal);
    if mintable.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "editors_only",
            "a view-only link cannot make links",
        ));
    }
    let ApiJson(body) = body?;
    let label = body.label.trim().to_owned();
    if label.is_empty() {
        return Err(ApiError::invalid("`label` must name who the link is for"));
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(ApiError::invalid(format!(
            "`label` is longer than {MAX_LABEL_CHARS} characters"
        )));
    }
    let now = now_ms();
    let expires_at_ms = match body.expires_at.as_deref() {
        None => None,
        Some(text) => {
            let at = chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "`expiresAt` must be an RFC 3339 time, got {text:?}"
                    ))
                })?
                .timestamp_millis();
            if at <= now {
                return Err(ApiError::invalid("`expiresAt` is in the past"));
            }
            Some(at)
        }
    };
    let side = match body.side {
        SideBody::Buyer => Side::Buyer,
        SideBody::Seller => Side::Seller,
    };
    if !mintable.contains(&side) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "buyer_links_only",
            "a buyer's link can make only buyer links",
        ));
    }
    let role = match body.role {
        RoleBody::Editor => Role::Editor,
        RoleBody::Viewer => Role::Viewer,
    };
    let mut share = plans::issue_share(plan_id, side, role, &label, expires_at_ms, now);
    // Minted through a share link: bounded by it. The store caps the expiry at the parent's
    // (answered below) and refuses a parent revoked since its token was checked.
    let parent = principal.share_id();
    let minter = principal.member().map(|m| m.member.id);
    let record = share.record.clone();
    share.record = blocking(&app, move |store| {
        let stored = store.insert_share(&record, parent)?;
        if let Some(member) = minter {
            store.set_share_minter(stored.id, member)?;
        }
        Ok(stored)
    })
    .await?;
    share.parent = parent;
    tracing::info!(plan_id = %plan_id, share_id = %share.record.id, by = ?parent, "share created");
    Ok((
        StatusCode::CREATED,
        Json(share.view(app.config.public_url.as_deref())),
    ))
}

/// `DELETE /api/plans/{id}/shares/{shareId}`: revokes a link and every link minted through it
/// at once, and closes all their sockets (4401). Revoking again answers the same record.
#[utoipa::path(delete, path = "/api/plans/{plan_id}/shares/{share_id}", tag = "shares", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("share_id" = String, Path, description = "The link's id")), responses((status = 200, description = "`{ id, status, revokedAt, closedConnections, revoked }`"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn revoke(
    State(app): State<Arc<App>>,
    Path((_, share_id)): Path<(String, String)>,
    PlanReader { principal, plan_id }: PlanReader,
) -> Result<impl IntoResponse, ApiError> {
    require_share_manager(&principal)?;
    let share_id = Uuid::parse_str(&share_id).map_err(|_| share_not_found())?;
    let now = now_ms();
    let (revocation, minters) = blocking(&app, move |store| {
        let Some(revocation) = store.revoke_share(plan_id, share_id, now)? else {
            return Ok(None);
        };
        let minters = minters(store, &revocation.links)?;
        Ok(Some((revocation, minters)))
    })
    .await?
    .ok_or_else(share_not_found)?;
    // Every link of the tree, also those revoked before: a socket that raced an earlier
    // revocation is closed too.
    let closed: usize = revocation
        .links
        .iter()
        .map(|link| app.share_sockets.close_all(link.record.id, REVOKED_REASON))
        .sum();
    let Some(revoked) = revocation.links.first().map(|l| l.record.clone()) else {
        return Err(share_not_found());
    };
    let event = |share: &ShareRecord, with: Option<ShareId>| {
        let mut data = json!({ "shareId": share.id, "label": share.label,
            "side": side_name(share.side), "role": role_name(share.role),
            "revokedAt": share.revoked_at_ms.and_then(time) });
        if let Some(root) = with {
            data["revokedWith"] = json!(root);
        }
        data
    };
    // The link itself (as before lineage, every time), and each link it took along that was
    // not revoked yet.
    let mut events = vec![(share_id, event(&revoked, None))];
    events.extend(
        revocation
            .links
            .iter()
            .skip(1)
            .filter(|l| revocation.newly_revoked.contains(&l.record.id))
            .map(|l| (l.record.id, event(&l.record, Some(share_id)))),
    );
    let queued = blocking(&app, move |store| {
        for (id, data) in events {
            crate::http::webhooks::queue_event(
                store,
                plan_id,
                "share.revoked",
                &format!("revoked.{id}"),
                data,
            )?;
        }
        Ok(())
    })
    .await;
    if let Err(error) = queued {
        tracing::error!(?error, "cannot queue the share.revoked events");
    }
    tracing::info!(plan_id = %plan_id, share_id = %share_id, closed,
        descendants = revocation.links.len() - 1, by = ?principal.share_id(), "share revoked");
    Ok(Json(json!({
        "id": revoked.id,
        "status": "revoked",
        "revokedAt": revoked.revoked_at_ms.and_then(time),
        "closedConnections": closed,
        "revoked": revoked_links(&revocation.links, &minters, now),
    })))
}
