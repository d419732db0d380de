//! Prometheus metrics, named for what an operator asks: how many are connected, is anything
//! refused, how long do commits take and how many updates ride in each.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

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
    /// Updates that changed nothing (echoes): acknowledged, not stored or relayed.
    pub updates_unchanged: Counter,
    /// Requests refused after too many failed attempts with their token or from their address.
    pub auth_refused: Counter,
    pub commit_batch_size: Histogram,
    pub commit_seconds: Histogram,
    pub commit_failures: Counter,
    pub history_seconds: Histogram,
    pub slips_recorded: Counter,
    pub stored_bytes: Gauge,
    /// Cluster mode: from publishing a command to the log until this node applied it.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))] // used by a cluster's node
    pub publish_seconds: Histogram,
    /// Cluster mode: log entries committed in the cluster that this node has not applied yet.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))] // used by a cluster's node
    pub log_lag: Gauge,
    /// Cluster mode: commands this node's replica applied from the log (every node's).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))] // used by a cluster's node
    pub log_applied: Gauge,
    /// Cluster mode: plans whose history this node derived differently from another node.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))] // used by a cluster's node
    pub history_mismatches: Counter,
}

/// Registers a metric under `mapline_<name>` and hands it back for the struct field.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mapline");
        let r = &mut registry;
        let gauge = Gauge::default;
        let counter = Counter::default;
        Self {
            connections_open: registered(
                r,
                "connections_open",
                "Open WebSocket connections",
                gauge(),
            ),
            connections_closed: registered(
                r,
                "connections_closed",
                "Closed WebSocket connections by close code",
                Family::default(),
            ),
            rooms_in_memory: registered(r, "rooms_in_memory", "Plans loaded in memory", gauge()),
            room_loads: registered(r, "room_loads", "Plans loaded from disk", counter()),
            updates_received: registered(
                r,
                "updates_received",
                "Document updates received from clients",
                counter(),
            ),
            updates_persisted: registered(
                r,
                "updates_persisted",
                "Document updates made durable",
                counter(),
            ),
            updates_broadcast: registered(
                r,
                "updates_broadcast",
                "Update messages sent to other clients",
                counter(),
            ),
            updates_refused: registered(
                r,
                "updates_refused",
                "Document updates refused (read-only connections)",
                counter(),
            ),
            updates_unchanged: registered(
                r,
                "updates_unchanged",
                "Updates that changed nothing (echoes of what the server has): acknowledged, neither stored nor relayed",
                counter(),
            ),
            auth_refused: registered(
                r,
                "auth_refused",
                "Requests refused (429) after too many failed attempts with their token or from their address",
                counter(),
            ),
            commit_batch_size: registered(
                r,
                "commit_batch_size",
                "Updates per storage commit",
                Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            ),
            commit_seconds: registered(
                r,
                "commit_seconds",
                "Duration of one storage commit",
                Histogram::new(exponential_buckets(0.000_125, 2.0, 14)),
            ),
            commit_failures: registered(
                r,
                "commit_failures",
                "Storage commits that failed",
                counter(),
            ),
            history_seconds: registered(
                r,
                "history_seconds",
                "Duration of a commit storing only carried history and snapshots (the writer was idle)",
                Histogram::new(exponential_buckets(0.000_125, 2.0, 14)),
            ),
            slips_recorded: registered(
                r,
                "slips_recorded",
                "Moved dates (milestone due or go-live) recorded in the slip history",
                counter(),
            ),
            stored_bytes: registered(r, "stored_bytes", "Size of the data file", gauge()),
            publish_seconds: registered(
                r,
                "cluster_publish_seconds",
                "Cluster mode: from publishing a command to the log until this node applied it (quorum commit, fsync, delivery)",
                Histogram::new(exponential_buckets(0.000_125, 2.0, 18)),
            ),
            log_lag: registered(
                r,
                "cluster_log_lag",
                "Cluster mode: log entries committed in the cluster this node has not applied yet (consumer lag)",
                gauge(),
            ),
            history_mismatches: registered(
                r,
                "cluster_history_mismatches",
                "Cluster mode: times this node found its derived history of a plan unlike the head another node published (an alarm)",
                counter(),
            ),
            log_applied: registered(
                r,
                "cluster_log_position",
                "Cluster mode: the last log position this node applied",
                gauge(),
            ),
            registry,
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
