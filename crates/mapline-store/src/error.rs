use uuid::Uuid;

use crate::records::{PlanId, ShareId};

/// The data file could not be opened as a Mapline store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the folder for the data file: {0}")]
    Folder(#[source] std::io::Error),
    #[error("cannot open the data file: {0}")]
    Database(#[from] redb::DatabaseError),
    #[error("the data file has storage format {found}; this version reads format {supported}")]
    FormatVersion { found: u32, supported: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A read or write of the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage transaction failed: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("storage table failed: {0}")]
    Table(#[from] redb::TableError),
    #[error("storage read or write failed: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("storage commit failed: {0}")]
    Commit(#[from] redb::CommitError),
    #[error("stored record in {table} at {key} cannot be decoded")]
    Corrupt { table: &'static str, key: String },
    #[error("compaction failed: {0}")]
    Compaction(String),
    #[error("the data file is being reopened after a storage failure; try again")]
    Unavailable,
    #[error("plan {0} already exists")]
    PlanExists(PlanId),
    #[error("plan {0} does not exist")]
    NoSuchPlan(PlanId),
    #[error("share link {0} already exists")]
    ShareExists(ShareId),
    #[error("share link {0} is not a link of this plan")]
    NoSuchShare(ShareId),
    #[error("share link {0} has been revoked")]
    ShareRevoked(ShareId),
    #[error("share link {0} has expired")]
    ShareExpired(ShareId),
    #[error("a member with the email {0} already exists")]
    EmailTaken(String),
    #[error("member {0} does not exist")]
    NoSuchMember(Uuid),
    #[error("command log position {position} is already applied (this file is at {applied})")]
    AlreadyApplied { position: u64, applied: u64 },
    /// A replica's write could not go through the cluster's command log (no quorum, the
    /// applier stopped): it may or may not be in the log; if it is, every node applies it.
    #[error("the cluster did not take the write: {0}")]
    Cluster(String),
}

impl StoreError {
    /// Whether this is a command refused by the store's rules (the same on every replica that
    /// applies the same commands in order), as opposed to a failure of this node's storage or a
    /// damaged record (which say nothing about the command and must not consume its position).
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::PlanExists(_)
            | Self::NoSuchPlan(_)
            | Self::ShareExists(_)
            | Self::NoSuchShare(_)
            | Self::ShareRevoked(_)
            | Self::ShareExpired(_)
            | Self::EmailTaken(_)
            | Self::NoSuchMember(_) => true,
            Self::Transaction(_)
            | Self::Table(_)
            | Self::Storage(_)
            | Self::Commit(_)
            | Self::Corrupt { .. }
            | Self::Compaction(_)
            | Self::Unavailable
            | Self::AlreadyApplied { .. }
            | Self::Cluster(_) => false,
        }
    }
}

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
