//! Prometheus metrics, named for what an operator asks: how many are connected, is anything
//! refused, how long do commits take and how many updates ride in each.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of a closed connection: the close code it ended with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabel {
    pub code: u16,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    pub connections_open: Gauge,
    pub connections_closed: Family<CloseLabel, Counter>,
    pub rooms_in_memory: Gauge,
    pub room_loads: Counter,
    pub updates_received: Counter,
    pub updates_persisted: Counter,
    pub updates_broadcast: Counter,
    pub updates_refused: Counter,
    pub commit_batch_size: Histogram,
    pub commit_seconds: Histogram,
    pub commit_failures: Counter,
    pub stored_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mapline");
        let metrics = Self {
            connections_open: Gauge::default(),
            connections_closed: Family::default(),
            rooms_in_memory: Gauge::default(),
            room_loads: Counter::default(),
            updates_received: Counter::default(),
            updates_persisted: Counter::default(),
            updates_broadcast: Counter::default(),
            updates_refused: Counter::default(),
            commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_125, 2.0, 14)),
            commit_failures: Counter::default(),
            stored_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "connections_open",
            "Open WebSocket connections",
            m.connections_open.clone(),
        );
        registry.register(
            "connections_closed",
            "Closed WebSocket connections by close code",
            m.connections_closed.clone(),
        );
        registry.register(
            "rooms_in_memory",
            "Plans loaded in memory",
            m.rooms_in_memory.clone(),
        );
        registry.register("room_loads", "Plans loaded from disk", m.room_loads.clone());
        registry.register(
            "updates_received",
            "Document updates received from clients",
            m.updates_received.clone(),
        );
        registry.register(
            "updates_persisted",
            "Document updates made durable",
            m.updates_persisted.clone(),
        );
        registry.register(
            "updates_broadcast",
            "Update messages sent to other clients",
            m.updates_broadcast.clone(),
        );
        registry.register(
            "updates_refused",
            "Document updates refused (read-only connections)",
            m.updates_refused.clone(),
        );
        registry.register(
            "commit_batch_size",
            "Updates per storage commit",
            m.commit_batch_size.clone(),
        );
        registry.register(
            "commit_seconds",
            "Duration of one storage commit",
            m.commit_seconds.clone(),
        );
        registry.register(
            "commit_failures",
            "Storage commits that failed",
            m.commit_failures.clone(),
        );
        registry.register(
            "stored_bytes",
            "Size of the data file",
            m.stored_bytes.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
