//! One error enum per operation family; the engine's own errors are kept as sources.

use std::path::PathBuf;
use std::time::Duration;

/// An error from the NATS client, kept as the source.
pub type EngineError = Box<dyn std::error::Error + Send + Sync>;

/// Something about the engine that breaks Mapline's rules; `ensure` and `connect` refuse it.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "NATS server {server} is version {version}; Mapline needs {min} or newer \
         (older servers do not fsync before acknowledging)",
        min = crate::MIN_SERVER_VERSION_TEXT
    )]
    ServerTooOld { server: String, version: String },
    #[error("{what} has {replicas} replica(s); Mapline needs {min}", min = crate::REPLICAS)]
    TooFewReplicas { what: String, replicas: usize },
    #[error("{what} is kept in memory; Mapline needs file storage")]
    MemoryStorage { what: String },
    #[error("{what} has retention {retention}; Mapline needs limits retention")]
    Retention { what: String, retention: String },
    #[error("{what} drops messages older than {max_age:?}; Mapline needs no maximum age")]
    MaxAge { what: String, max_age: Duration },
    #[error("{what} has no de-duplication window; Mapline needs one for Nats-Msg-Id")]
    NoDedupWindow { what: String },
    #[error("{what} does not capture the subjects {missing:?}")]
    MissingSubjects { what: String, missing: Vec<String> },
    #[error(
        "NATS server {server} ({url}) does not fsync before acknowledging; \
         set `jetstream {{ sync_interval: always }}`"
    )]
    NotSyncAlways { server: String, url: String },
    #[error("NATS server {server} ({url}) has JetStream disabled")]
    NoJetStream { server: String, url: String },
    #[error("the monitoring port {url} could not be read: {reason}")]
    Monitor { url: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid cluster configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot read the NATS credentials file {path}")]
    Creds {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("NATS refused the credentials")]
    Auth(#[source] EngineError),
    #[error("JetStream was not ready after {waited:?} ({attempts} attempts)")]
    NotReady {
        waited: Duration,
        attempts: u32,
        #[source]
        last: EngineError,
    },
    #[error(transparent)]
    Refused(#[from] CheckError),
}

#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    #[error(transparent)]
    Refused(#[from] CheckError),
    #[error("JetStream failed to {action} {what}")]
    Engine {
        action: &'static str,
        what: String,
        #[source]
        source: EngineError,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The per-subject compare-and-set failed: someone else published on the subject since.
    #[error("{subject}: the last sequence on the subject is not {expected}")]
    WrongLastSequence { subject: String, expected: u64 },
    #[error("{subject}: the message is larger than the server's max_payload")]
    TooLarge { subject: String },
    #[error("{subject}: no stream captures this subject")]
    NoStream { subject: String },
    /// Not acknowledged within the publish deadline; it may or may not be stored, and a
    /// publish with the same msg id within the de-duplication window will not store it twice.
    #[error("{subject}: not acknowledged after {attempts} attempts in {waited:?}")]
    Unacknowledged {
        subject: String,
        attempts: u32,
        waited: Duration,
        #[source]
        last: EngineError,
    },
    #[error("{subject}: publish failed")]
    Engine {
        subject: String,
        #[source]
        source: EngineError,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("invalid KV key {key:?}")]
    InvalidKey { key: String },
    #[error("KV key {key:?} already exists")]
    AlreadyExists { key: String },
    /// The compare-and-set failed: the key's revision is no longer `expected`.
    #[error("KV key {key:?} is no longer at revision {expected}")]
    WrongRevision { key: String, expected: u64 },
    #[error("KV {action} of {key:?} failed")]
    Engine {
        action: &'static str,
        key: String,
        #[source]
        source: EngineError,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("no object {name:?}")]
    NotFound { name: String },
    #[error("invalid object name {name:?}")]
    InvalidName { name: String },
    #[error("object store {action} of {name:?} failed")]
    Engine {
        action: &'static str,
        name: String,
        #[source]
        source: EngineError,
    },
}
