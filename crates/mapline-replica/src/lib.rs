//! `mapline-replica` is the piece between the command log and a node's redb file when Mapline
//! runs as several nodes (docs/cluster.md, *The replicated store*).
//!
//! JetStream holds one ordered log of [`Command`]s (`mapline-cluster`); every node applies it
//! in log order to its own file with [`Store::execute_at_with`], which makes that file a
//! replica. A [`Replica`] owns that applier for one node: it reads the log from the file's
//! recorded position on, applies each entry on a thread of its own (redb is blocking), resolves
//! the local [`Replica::submit`] waiting for that entry, and announces every applied command
//! ([`Applied`]) to whoever subscribed (rooms relaying updates, sockets of a revoked link).
//!
//! It owns: the order of applies (the log's, nothing else), what happens to a log entry that
//! is not a command or that the store refuses (logged, counted, its position consumed alike on
//! every node), the durability of a replica's commits (deferred, with a durable commit every
//! so often: the log is the record), and submitting a command (publish, then wait for the
//! local apply and return the store's outcome).
//!
//! It must not know: yrs, rooms, HTTP, or what a command means beyond its subject.
//!
//! [`Command`]: mapline_store::Command
//! [`Store::execute_at_with`]: mapline_store::Store::execute_at_with

mod error;
mod replica;

pub use error::{ApplyError, ReplicaError};
pub use replica::{Applied, Replica, ReplicaConfig, ReplicaStats, headers_of, subject_of};
