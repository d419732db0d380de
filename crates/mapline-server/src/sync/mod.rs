//! The sync engine: y-websocket messages decoded and encoded without IO ([`protocol`]), one
//! WebSocket ([`conn`]), one plan in memory ([`room`]), the registry that loads each plan once
//! and retires idle ones ([`rooms`]), each connection's bounded send queue ([`outbox`]), and the
//! group-commit writer thread that makes an update durable before its room applies and relays
//! it ([`writer`]); on a cluster's node, the writer that publishes updates to the command log
//! and feeds the rooms from it ([`replicated`]).

pub(crate) mod conn;
pub(crate) mod outbox;
pub mod protocol;
#[cfg(feature = "cluster")]
pub(crate) mod replicated;
pub(crate) mod room;
pub(crate) mod rooms;
pub(crate) mod writer;
