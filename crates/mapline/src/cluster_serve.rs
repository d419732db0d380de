//! `serve --cluster`: the flags that put a node on a NATS JetStream cluster, and the steps
//! before it serves — connect (waiting for the engine), check and create what the rules need,
//! start applying the command log to the node's replica file and catch up with it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use mapline_cluster::{Cluster, ClusterConfig};
use mapline_server::cluster::ClusterNode;
use mapline_store::Store;

/// How a node reaches the cluster (all optional: without `--cluster` the node runs alone on
/// its redb file).
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Run this node on a NATS JetStream cluster (three engine nodes, R3): comma-separated
    /// `nats://host:port` URLs of its nodes. The data file is then this node's replica of the
    /// cluster's command log. Without it, one node on its redb file.
    #[arg(long, env = "MAPLINE_CLUSTER", value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// A NATS credentials file for the cluster.
    #[arg(long, env = "MAPLINE_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// PEM file of CA certificates to trust for TLS to NATS (TLS is then required).
    #[arg(long, env = "MAPLINE_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Comma-separated `http://host:port` monitoring URLs of the engine's nodes: start refuses
    /// an engine node that does not fsync before it acknowledges (`sync_interval: always`) or
    /// is older than 2.12. Without them that setting cannot be checked (a warning says so).
    #[arg(long, env = "MAPLINE_NATS_MONITOR", value_delimiter = ',')]
    pub nats_monitor: Vec<String>,
    /// Prefix of the names Mapline keeps in the engine (stream, buckets, subjects), so several
    /// deployments can share one engine.
    #[arg(long, env = "MAPLINE_CLUSTER_PREFIX", default_value = "mapline")]
    pub cluster_prefix: String,
    /// Seconds to wait for the engine to be reachable and ready before giving up. Default:
    /// `serve` waits as long as it takes (logging each retry), the operations 60 s.
    #[arg(long, env = "MAPLINE_CLUSTER_TIMEOUT", value_name = "SECS")]
    pub cluster_timeout: Option<u64>,
}

/// How long the operations wait for the engine without `--cluster-timeout`.
const OPERATION_TIMEOUT_SECS: u64 = 60;

impl ClusterArgs {
    /// Whether `--cluster` was given.
    pub fn given(&self) -> bool {
        !self.cluster.is_empty()
    }

    /// The engine's settings for an operation (`verify`, `backup`, `migrate` …), which gives
    /// up after `--cluster-timeout` (60 s by default).
    pub fn operation_config(&self) -> anyhow::Result<ClusterConfig> {
        let mut config = self.config()?.context("--cluster is required")?;
        config.ready_timeout = Some(Duration::from_secs(
            self.cluster_timeout.unwrap_or(OPERATION_TIMEOUT_SECS),
        ));
        Ok(config)
    }

    /// The engine's settings for `serve`, or `None` without `--cluster`.
    pub fn config(&self) -> anyhow::Result<Option<ClusterConfig>> {
        let urls: Vec<String> = self
            .cluster
            .iter()
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty())
            .collect();
        if urls.is_empty() {
            if !self.cluster.is_empty() {
                bail!("--cluster: no NATS URL given");
            }
            return Ok(None);
        }
        if let Some(bad) = urls
            .iter()
            .find(|url| !(url.starts_with("nats://") || url.starts_with("tls://")))
        {
            bail!("--cluster: {bad:?} is not a nats:// (or tls://) URL");
        }
        let mut config = ClusterConfig::new(urls);
        config.creds = self.nats_creds.clone();
        config.tls_ca = self.nats_tls_ca.clone();
        config.monitor_urls = self.nats_monitor.clone();
        config.prefix = self.cluster_prefix.clone();
        config.ready_timeout = self.cluster_timeout.map(Duration::from_secs);
        Ok(Some(config))
    }
}

/// A node's id: the one given with `--node-id` (checked) or a random one.
pub fn node_id(given: Option<&str>) -> anyhow::Result<String> {
    match given {
        Some(id) => {
            let ok = !id.is_empty()
                && id.len() <= 32
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                bail!("--node-id {id:?}: use letters, digits and '_' (at most 32)");
            }
            Ok(id.to_owned())
        }
        None => {
            // The random tail of a UUID v7.
            let id = uuid::Uuid::now_v7().simple().to_string();
            Ok(format!("n{}", &id[id.len() - 8..]))
        }
    }
}

/// Connects to the engine (waiting, with a log line, while it is not ready) and creates or
/// checks the stream, KV bucket and object store; refuses an engine the rules cannot rely on.
pub async fn connect(config: ClusterConfig) -> anyhow::Result<Cluster> {
    let cluster = Cluster::connect(config)
        .await
        .context("connecting to the NATS cluster")?;
    let ensured = cluster
        .ensure()
        .await
        .context("the NATS cluster is not configured as Mapline needs")?;
    tracing::info!(
        ?ensured,
        "the cluster's stream, KV bucket and object store are ready"
    );
    Ok(cluster)
}

/// Starts applying the log to `store` and waits until it is as current as the log was.
pub async fn join(cluster: Cluster, store: Arc<Store>, node: &str) -> anyhow::Result<ClusterNode> {
    let node_handle = ClusterNode::join(cluster, store, node)
        .await
        .context("joining the cluster")?;
    let started = std::time::Instant::now();
    let position = node_handle
        .catch_up()
        .await
        .context("catching up with the command log")?;
    tracing::info!(
        node,
        position,
        millis = started.elapsed().as_millis() as u64,
        "caught up with the command log"
    );
    Ok(node_handle)
}

/// Whether this node seeds the cluster's demo plan: the first node to claim it in the KV
/// bucket does, once per cluster.
pub async fn claim_demo(node: &ClusterNode) -> anyhow::Result<bool> {
    // The claim holds the node's id, so the seeding node restarted seeds (prints) again, as a
    // single node does. An engine electing a leader right now is waited out.
    let started = std::time::Instant::now();
    loop {
        match node.claim("demo-seeded").await {
            Ok(mine) => return Ok(mine),
            Err(error) if started.elapsed() < Duration::from_secs(30) => {
                tracing::warn!(%error, "cannot claim the demo plan's seeding yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => bail!("claiming the demo plan's seeding failed: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(urls: &[&str]) -> ClusterArgs {
        ClusterArgs {
            cluster: urls.iter().map(|u| (*u).to_owned()).collect(),
            nats_creds: None,
            nats_tls_ca: None,
            nats_monitor: Vec::new(),
            cluster_prefix: "mapline".to_owned(),
            cluster_timeout: None,
        }
    }

    #[test]
    fn cluster_flags_are_checked() {
        assert!(args(&[]).config().expect("no cluster").is_none());
        let config = args(&["nats://a:4222", " nats://b:4222 "])
            .config()
            .expect("valid")
            .expect("a cluster");
        assert_eq!(config.urls, ["nats://a:4222", "nats://b:4222"]);
        // serve waits for the engine as long as it takes; operations give up after 60 s.
        assert_eq!(config.ready_timeout, None);
        assert_eq!(
            args(&["nats://a:4222"])
                .operation_config()
                .expect("valid")
                .ready_timeout,
            Some(Duration::from_secs(60))
        );
        assert!(args(&["http://a:4222"]).config().is_err());
        assert!(args(&["", " "]).config().is_err());
        assert!(args(&[]).operation_config().is_err());
    }

    #[test]
    fn node_ids_are_tokens() {
        assert_eq!(node_id(Some("web_1")).expect("valid"), "web_1");
        for bad in ["", "a-b", "a.b", "a b", &"x".repeat(33)] {
            assert!(node_id(Some(bad)).is_err(), "{bad:?}");
        }
        let random = node_id(None).expect("random");
        assert!(random.starts_with('n') && random.len() == 9, "{random}");
        assert_ne!(random, node_id(None).expect("random"));
    }
}
