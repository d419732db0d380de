//! Mapline's layer over NATS JetStream: the engine a multi-node deployment keeps its shared
//! state in (docs/cluster.md).
//!
//! It owns: connecting (and waiting, visibly, while the engine is not ready), creating what is
//! missing — the update log stream, the KV bucket, the object store, all R3 on file storage —
//! and refusing what does not keep Mapline's rules (fewer than 3 replicas, memory storage, a
//! server older than 2.12, a server that does not fsync before it acknowledges); publishing
//! with `Nats-Msg-Id` de-duplication and optional per-subject compare-and-set, retried with the
//! same id until the cluster has acknowledged; reading the log in stream order across leader
//! changes; thin KV and object-store wrappers with typed errors.
//!
//! It must not know: yrs, plans, rooms, redb or HTTP. Payloads are bytes and headers.

mod check;
mod cluster;
mod config;
mod error;
mod monitor;
mod reader;
mod store;

pub use async_nats::HeaderMap;
pub(crate) use check::MIN_SERVER_VERSION_TEXT;
pub use check::{MIN_SERVER_VERSION, REPLICAS};
pub use cluster::{Cluster, Ensured, Expect, LogState, Published};
pub use config::{ClusterConfig, Names};
pub use error::{CheckError, ConnectError, EnsureError, KvError, ObjectError, PublishError};
pub use reader::{Delivered, Reader};
pub use store::{Kv, KvEntry, Objects};
