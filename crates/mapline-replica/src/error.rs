//! What can go wrong submitting a command, and what stops the applier.

use mapline_cluster::PublishError;
use mapline_store::{CommandError, StoreError};

/// A [`crate::Replica`] could not start, or a submitted command did not get its outcome.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The replica's file could not tell where it stands in the log.
    #[error("cannot read the replica's applied log position")]
    Position(#[source] StoreError),
    /// The cluster did not acknowledge the command (retried with the same msg id until the
    /// publish deadline): it may or may not be in the log. If it is, every node applies it.
    #[error("the command could not be published to the log")]
    Publish(#[from] PublishError),
    /// The command is in the log, and the store's rules refused it (every node refuses it
    /// alike): a plan that exists, a revoked parent link…
    #[error("the command was refused: {0}")]
    Refused(#[source] StoreError),
    /// The log entry does not decode as a command this version reads (skipped alike by every
    /// node of this version).
    #[error("log entry {position} is not a command this node can read")]
    Unreadable {
        position: u64,
        #[source]
        source: CommandError,
    },
    /// This node's applier is not running (stopped, or stopped by a storage failure): the
    /// command may be in the log, and this node cannot say what it did.
    #[error("the replica's applier has stopped: {reason}")]
    Stopped { reason: String },
}

/// Why the applier stopped on its own. Never skipped past: a restarted applier resumes at the
/// same position.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// This node's storage failed applying a log entry (disk full, I/O error, a damaged
    /// record, or a position already applied: another process writes this file). Nothing of
    /// that entry is recorded.
    #[error("applying log position {position} ({command}) failed")]
    Storage {
        position: u64,
        command: &'static str,
        #[source]
        source: StoreError,
    },
    /// The log holds a command in a format this node does not read: another version wrote it.
    /// Skipping it would make this replica differ from every node that applied it, so the
    /// applier stops there (nothing of it recorded) until the node runs a version that reads it.
    #[error(
        "log position {position} holds a command of format {found}; this node reads format {supported}"
    )]
    UnknownFormat {
        position: u64,
        found: u8,
        supported: u8,
    },
    /// A durable commit of the deferred applies failed.
    #[error("making the applied log positions durable failed")]
    Sync(#[source] StoreError),
    /// The applier thread panicked (a bug).
    #[error("the applier thread panicked")]
    Panicked,
}
