//! `mapline-store` owns the redb data file: plans, share links (hashed tokens only), each plan's
//! append-only update log with who sent every update, snapshots that keep cold loads short, and
//! the history derived from the log (change audit and slips), which link each share link was
//! minted through (so a revocation takes the links minted through it along), and the hash of
//! each link's calendar-feed token, and the seller team: members, their sessions and sign-in
//! links (hashed), plan ownership and membership, and review marks.
//!
//! It stores Yjs updates as opaque bytes and never needs a yrs type; it knows nothing of sockets
//! or async. Every write is one redb transaction, so a batch of updates from many plans costs
//! one fsync (group commit). The layout is documented in docs/storage.md.
//!
//! Every write of shared state is a [`Command`]: a value that can be encoded, published to a
//! replicated command log, and applied identically by every node to its own file
//! ([`Store::execute`], [`Store::execute_at`]); the write methods are thin wrappers over it.
//! What a node derives or keeps for itself (history, snapshots, the webhook outbox) is written
//! beside a command or on its own, never as one.

mod commands;
mod error;
mod feeds;
mod lineage;
mod members;
mod records;
mod store;
mod summaries;
mod webhooks;

pub use commands::{COMMAND_FORMAT, Command, CommandError, Durability, Outcome};
pub use error::{OpenError, Result, StoreError};
pub use lineage::{LinkedShare, Revocation};
pub use members::{
    MemberId, MemberRecord, MemberRole, PlanMemberRecord, PlanMemberRole, ReviewMark,
    SessionRecord, SessionVia, SignInLinkRecord, SignInLinkRefusal, normalize_email,
};
pub use records::{
    Author, ChangeKind, ChangeRecord, ConflictRecord, DerivedHistory, DocKind, DocRef, GENESIS,
    HistoryEntry, NewUpdate, PlanId, PlanRecord, Role, Seq, ShareId, ShareRecord, ShareSeen, Side,
    SlipRecord, Snapshot, UpdateRecord, digest,
};
pub use store::{
    BackupError, BackupStats, CommandRoute, DEFAULT_CACHE_BYTES, DocumentLoad, LogBound, PlanAudit,
    STORAGE_FORMAT, Store,
};
pub use summaries::{EncodedSummary, PlanWithSummary, SummaryState};
pub use webhooks::{AttemptRecord, DeliveryRecord, WebhookRecord};

#[cfg(test)]
mod command_tests;
#[cfg(test)]
mod tests;
