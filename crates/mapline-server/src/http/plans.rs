//! Creating plans and minting share links: shared by the HTTP API and the binary's `--demo`.

use mapline_plan::{FirstUpdates, NewPlan};
use mapline_store::{
    Author, PlanId, PlanRecord, Role, ShareId, ShareRecord, Side, Store, StoreError, UpdateRecord,
};
use rand::Rng as _;
use serde::Serialize;
use uuid::Uuid;
use yrs::updates::decoder::Decode as _;

use crate::identity::auth::{new_share_token, token_hash};

/// Longest accepted share label, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// A share link just minted: the only moment its token exists outside the holder's hands.
#[derive(Debug, Clone)]
pub struct IssuedShare {
    pub record: ShareRecord,
    pub token: String,
    /// The link it was minted through, if any.
    pub parent: Option<ShareId>,
}

/// What a share link looks like in API answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareView {
    pub id: Uuid,
    pub side: &'static str,
    pub role: &'static str,
    pub label: String,
    pub token: String,
    /// The link a person opens in a browser.
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The link it was minted through (absent for links minted with the admin credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<Uuid>,
}

/// The lower-case name of a side, as in the schema and the API.
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buyer => "buyer",
        Side::Seller => "seller",
    }
}

/// The lower-case name of a role, as in the API.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Editor => "editor",
        Role::Viewer => "viewer",
    }
}

/// The browser link for a share: the token rides in the fragment, so it never reaches server
/// logs or a `Referer` header.
pub fn share_url(public_url: Option<&str>, plan: PlanId, token: &str) -> String {
    let origin = public_url.unwrap_or("").trim_end_matches('/');
    format!("{origin}/p/{plan}#token={token}")
}

impl IssuedShare {
    /// The share as the API shows it to the person who minted it.
    pub fn view(&self, public_url: Option<&str>) -> ShareView {
        ShareView {
            id: self.record.id,
            side: side_name(self.record.side),
            role: role_name(self.record.role),
            label: self.record.label.clone(),
            token: self.token.clone(),
            url: share_url(public_url, self.record.plan_id, &self.token),
            expires_at: self
                .record
                .expires_at_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339()),
            parent_id: self.parent,
        }
    }
}

/// A share record with a fresh token (not yet stored).
pub fn issue_share(
    plan_id: PlanId,
    side: Side,
    role: Role,
    label: &str,
    expires_at_ms: Option<i64>,
    now_ms: i64,
) -> IssuedShare {
    let id = Uuid::now_v7();
    let token = new_share_token(id);
    IssuedShare {
        record: ShareRecord {
            id,
            plan_id,
            side,
            role,
            label: label.to_owned(),
            token_hash: token_hash(&token),
            created_at_ms: now_ms,
            expires_at_ms,
            revoked_at_ms: None,
        },
        token,
        parent: None,
    }
}

/// A plan's creation: its record, its first document update (and its internal document's,
/// when it starts with seller judgments) and its default share links (one seller editor, one
/// buyer editor), in one transaction. Blocks on the store.
pub fn create_plan(
    store: &Store,
    id: PlanId,
    plan: &NewPlan,
    first: impl Into<FirstUpdates>,
    now_ms: i64,
) -> Result<Vec<IssuedShare>, StoreError> {
    let shares = vec![
        issue_share(
            id,
            Side::Seller,
            Role::Editor,
            &format!("{} team", plan.seller_org),
            None,
            now_ms,
        ),
        issue_share(
            id,
            Side::Buyer,
            Role::Editor,
            &format!("{} team", plan.buyer_org),
            None,
            now_ms,
        ),
    ];
    let record = PlanRecord {
        title: plan.title.clone(),
        buyer_org: plan.buyer_org.clone(),
        seller_org: plan.seller_org.clone(),
        go_live: mapline_plan::format_date(plan.go_live),
        created_at_ms: now_ms,
    };
    let system_record = |update: Vec<u8>| UpdateRecord {
        author: Author::System,
        client_ids: yrs::Update::decode_v1(&update)
            .map(|u| crate::sync::protocol::client_ids(&u))
            .unwrap_or_default(),
        received_at_ms: now_ms,
        update,
    };
    let first: FirstUpdates = first.into();
    let internal = first.internal.map(system_record);
    let first = system_record(first.plan);
    // The creation's history is stored with the plan, so a new plan never needs deriving later.
    // (The internal document derives no history.)
    let history = crate::history::derive_log_summarized(id, Some(&record), [(1, &first)]);
    let records: Vec<_> = shares.iter().map(|s| s.record.clone()).collect();
    store.create_plan_with_internal(id, &record, &first, internal.as_ref(), &records, &history)?;
    Ok(shares)
}

/// A random Yjs client id for a document the server writes itself.
pub fn server_client_id() -> u64 {
    rand::rng().random_range(1..mapline_plan::JS_SAFE_CLIENT_ID)
}

/// Why the demo plan could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DemoPlanError {
    #[error(transparent)]
    Fixture(#[from] mapline_plan::DemoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates the demo plan with its default share links. Blocks on the store.
pub fn create_demo_plan(
    store: &Store,
    now_ms: i64,
) -> Result<(PlanId, Vec<IssuedShare>), DemoPlanError> {
    let (plan, updates) = mapline_plan::demo_plan(server_client_id())?;
    let id = Uuid::now_v7();
    let shares = create_plan(store, id, &plan, updates, now_ms)?;
    Ok((id, shares))
}
