//! The values Mapline keeps. Every stored value is one format byte followed by the record in
//! postcard encoding (see docs/storage.md); the format byte lets a later version read old data.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// A plan's id (UUID v7, so ids sort by creation time).
pub type PlanId = Uuid;
/// A share link's id.
pub type ShareId = Uuid;
/// Position of an update in its plan's log; the first update of a plan is 1.
pub type Seq = u64;

/// Which side of the deal a person is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    Buyer,
    Seller,
}

/// What a share link allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Editor,
    Viewer,
}

/// A plan's creation record (its document lives in the update log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub title: String,
    pub buyer_org: String,
    pub seller_org: String,
    /// `YYYY-MM-DD`, as given at creation.
    pub go_live: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A share link. The token itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRecord {
    pub id: ShareId,
    pub plan_id: PlanId,
    pub side: Side,
    pub role: Role,
    /// Who the link was given to, e.g. "Dev Patel (champion)".
    pub label: String,
    pub token_hash: [u8; 32],
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// When a share link was used to open its plan (a sync connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareSeen {
    /// Milliseconds since the Unix epoch.
    pub first_ms: i64,
    pub last_ms: i64,
    /// How many connections it opened.
    pub opens: u64,
}

/// Who an update came from: always the authenticated principal, never a client-claimed name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Author {
    /// Written by the server itself (a plan's first update, the demo plan).
    System,
    /// Sent over a connection authenticated with the admin credential.
    Admin,
    /// Sent over a connection authenticated with this share link.
    Share { id: ShareId, side: Side },
    /// Sent by a signed-in member of the seller team (a session cookie). Appended last: records
    /// are encoded positionally (the variant's index), so every older record decodes as before.
    Member { id: Uuid, side: Side },
}

/// One entry of a plan's update log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRecord {
    pub author: Author,
    /// Yjs client ids whose insertions the update carries.
    pub client_ids: Vec<u64>,
    /// Server time the update was received, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The Yjs update, lib0 v1 encoding, exactly as received.
    #[serde(with = "serde_bytes")]
    pub update: Vec<u8>,
}

/// An update to append to a plan's log (carried by [`crate::Command::AppendUpdates`], so it is
/// serde: encoded positionally, fields are never reordered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUpdate {
    pub plan_id: PlanId,
    /// Which of the plan's documents the update is for.
    pub kind: DocKind,
    pub record: UpdateRecord,
}

/// A plan's two documents: the plan both sides edit, and the seller's internal document
/// (forecast, qualification notes) that buyer credentials can never read or write. Each has its
/// own log and snapshot; history is derived for the plan document only. In commands it is
/// encoded by variant index: a new kind is appended last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DocKind {
    Plan,
    Internal,
}

/// One document of one plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocRef {
    pub plan: PlanId,
    pub kind: DocKind,
}

impl DocRef {
    /// The plan document.
    pub fn plan(plan: PlanId) -> Self {
        Self {
            plan,
            kind: DocKind::Plan,
        }
    }

    /// The seller's internal document of a plan.
    pub fn internal(plan: PlanId) -> Self {
        Self {
            plan,
            kind: DocKind::Internal,
        }
    }
}

/// A plan's whole document state as of a log position, so loading needs only the tail after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last log position the state includes.
    pub covers_seq: Seq,
    pub taken_at_ms: i64,
    /// The document state as one Yjs update (lib0 v1).
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
}

/// What happened to an entity or field (see [`ChangeRecord`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
    /// A plain value lost to a concurrent write: `old` is the lost value, `new` the kept one.
    Conflict,
}

/// Whose values a conflict set against each other (Yjs client ids; the history entries that
/// carried each client's insertions name the people).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRecord {
    pub kept_client: u64,
    pub lost_client: u64,
    /// This entry's update lost its value (`true`), or replaced one its writer had not seen.
    pub lost_here: bool,
}

/// One field change derived from an update (the change audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The root: `meta`, `success` or a collection such as `milestones`.
    pub entity: String,
    /// The entry's id in a collection.
    pub entity_id: Option<String>,
    /// The field; `None` when a whole entry was created or deleted.
    pub field: Option<String>,
    pub kind: ChangeKind,
    /// The value before and after, as JSON text.
    pub old: Option<String>,
    pub new: Option<String>,
    /// For [`ChangeKind::Conflict`].
    pub conflict: Option<ConflictRecord>,
}

/// A moved date derived from an update: a milestone's due date, or go-live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlipRecord {
    /// `None` for go-live.
    pub milestone_id: Option<String>,
    pub title: Option<String>,
    pub from: String,
    /// `None` when the date was cleared.
    pub to: Option<String>,
    pub days: Option<i64>,
    pub reason: Option<String>,
    /// `false` for a move that lost to a concurrent move of the same date.
    pub kept: bool,
}

/// Everything derived from one stored update, with who sent it and when it arrived (copied from
/// its [`UpdateRecord`], so history reads never touch the log).
///
/// Entries are hash-chained per plan, so history cannot be quietly rewritten: each commits to
/// the stored bytes of the update it came from and to the stored bytes of the plan's previous
/// entry (see [`digest`]); `mapline verify` walks the chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub author: Author,
    pub client_ids: Vec<u64>,
    pub received_at_ms: i64,
    pub changes: Vec<ChangeRecord>,
    pub slips: Vec<SlipRecord>,
    /// SHA-256 of the stored update record this entry was derived from.
    pub update_sha256: [u8; 32],
    /// SHA-256 of the plan's previous stored history entry ([`GENESIS`] for the first).
    pub prev_sha256: [u8; 32],
}

/// The `prev_sha256` of a plan's first history entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// SHA-256 of a record's stored bytes (format byte and encoding): what history entries commit
/// to, for update records and for the previous entry.
pub fn digest<T: Serialize>(record: &T) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(encode(record)).into()
}

/// The history derived from a run of a plan's log: entries for the updates that changed
/// something, and the last log position the derivation covers (including updates that changed
/// nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedHistory {
    pub plan_id: PlanId,
    pub entries: Vec<(Seq, HistoryEntry)>,
    pub through: Seq,
    /// The plan's summary as of `through`, stored in the same transaction (see summaries.rs);
    /// `None` leaves the stored summary as it is.
    pub summary: Option<crate::summaries::EncodedSummary>,
}

impl DerivedHistory {
    /// No history derived yet (a plan whose log still needs deriving).
    pub fn none(plan_id: PlanId) -> Self {
        Self {
            plan_id,
            entries: Vec::new(),
            through: 0,
            summary: None,
        }
    }
}

/// The format byte in front of every stored value.
pub(crate) const RECORD_FORMAT: u8 = 1;

/// SHA-256 of stored bytes, as read from the file.
pub(crate) fn digest_bytes(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = vec![RECORD_FORMAT];
    // postcard only fails on writer errors or unsupported serde features; a Vec writer with
    // these plain structs has neither, so an error here is a bug in this crate.
    postcard::to_io(record, &mut out).expect("postcard encodes plain records into a Vec");
    out
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&RECORD_FORMAT, body)) => postcard::from_bytes(body).ok(),
        _ => None,
    }
}

impl HistoryEntry {
    /// The entry's stored bytes (format byte and postcard encoding): what its [`digest`] and
    /// the next entry's `prev_sha256` are the SHA-256 of. An audit export carries them so a
    /// third party can re-hash the chain.
    pub fn stored_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// An entry read back from its stored bytes (`None` if they are not one).
    pub fn from_stored_bytes(bytes: &[u8]) -> Option<Self> {
        decode(bytes)
    }
}
