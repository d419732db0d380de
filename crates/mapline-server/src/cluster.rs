//! A node of a cluster (`serve --cluster`): the replica that applies the cluster's command log
//! to this node's file, the route that sends the store's shared writes through that log, what
//! the node does when another node's command is applied here (close a revoked link's sockets),
//! presence between nodes on plain NATS subjects, and the node's view of the cluster's health.
//!
//! The writer of updates is [`crate::sync::replicated`]; the log and the replica are the crates
//! `mapline-cluster` and `mapline-replica` (docs/cluster.md).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use mapline_cluster::{Cluster, HeaderMap, Kv, KvError};
use mapline_replica::{Replica, ReplicaConfig, ReplicaError};
use mapline_store::{Command, CommandRoute, DocKind, DocRef, Outcome, Store, StoreError};
use yrs::sync::AwarenessUpdate;
use yrs::updates::decoder::Decode as _;

use crate::App;

/// The header naming the node that published a presence message (its own are skipped).
const NODE_HEADER: &str = "Mapline-Node";
/// How long a health check waits for the log's leader to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// This node's part of the cluster, handed to [`crate::run_cluster_node`].
pub struct ClusterNode {
    replica: Arc<Replica>,
    cluster: Cluster,
    kv: tokio::sync::OnceCell<Kv>,
}

/// The node could not join the cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cannot start applying the command log: {0}")]
    Replica(#[from] ReplicaError),
    #[error("cannot read where the command log stands: {0}")]
    Log(#[from] mapline_cluster::EnsureError),
    #[error("the data file already routes its writes elsewhere")]
    AlreadyRouted,
}

impl ClusterNode {
    /// Starts applying the log to `store` (from the position its file recorded) and sends every
    /// later shared write of `store` through the log. Call it inside the tokio runtime, before
    /// anything writes to `store`.
    pub async fn join(cluster: Cluster, store: Arc<Store>, node: &str) -> Result<Self, JoinError> {
        let replica = Arc::new(
            Replica::start(cluster.clone(), store.clone(), ReplicaConfig::new(node)).await?,
        );
        let route = LogRoute {
            replica: replica.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        if !store.route_commands(Arc::new(route)) {
            return Err(JoinError::AlreadyRouted);
        }
        Ok(Self {
            replica,
            cluster,
            kv: tokio::sync::OnceCell::new(),
        })
    }

    /// Waits until this node has applied everything the log held when it was called, logging
    /// progress: a node serves only once it is as current as the cluster was when it started.
    pub async fn catch_up(&self) -> Result<u64, JoinError> {
        let target = self.cluster.log_state().await?.last_seq;
        let from = self.replica.position();
        if target > from {
            tracing::info!(from, target, "catching up with the command log");
        }
        let mut progress = tokio::time::interval(Duration::from_secs(2));
        progress.tick().await;
        let caught_up = self.replica.caught_up_to(target);
        tokio::pin!(caught_up);
        loop {
            tokio::select! {
                done = &mut caught_up => {
                    done?;
                    return Ok(target);
                }
                _ = progress.tick() => {
                    tracing::info!(at = self.replica.position(), target, "still catching up with the command log");
                }
            }
        }
    }

    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        self.replica.node()
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Claims `key` in the cluster's KV bucket for this node: `true` for the one node whose
    /// claim came first (also when it asks again), `false` for every other. What is
    /// claimed is done by one node only: a webhook delivery every node queued from the same
    /// history. An error means the engine could not say (no quorum): ask again later.
    pub async fn claim(&self, key: &str) -> Result<bool, String> {
        let kv = self.kv().await?;
        let node = self.replica.node();
        let value = Bytes::from(node.to_owned());
        match tokio::time::timeout(HEALTH_TIMEOUT, kv.create(key, value)).await {
            Ok(Ok(_)) => Ok(true),
            // Ours if this node made it before: a create that timed out but was committed, or
            // this node's claim before a restart (its id is kept in its file).
            Ok(Err(KvError::AlreadyExists { .. })) => match kv.get(key).await {
                Ok(Some(entry)) => Ok(entry.value.as_ref() == node.as_bytes()),
                Ok(None) => Err("the claim vanished".to_owned()),
                Err(error) => Err(error.to_string()),
            },
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the engine did not answer in time".to_owned()),
        }
    }

    /// The cluster's KV bucket, opened once.
    async fn kv(&self) -> Result<&Kv, String> {
        self.kv
            .get_or_try_init(|| self.cluster.kv())
            .await
            .map_err(|e| e.to_string())
    }

    /// Whether this node can take writes now: its applier runs and the log's stream has a
    /// leader (a quorum of the engine) that answers within [`HEALTH_TIMEOUT`].
    pub async fn health(&self) -> Result<(), String> {
        if let Some(reason) = self.replica.stopped() {
            return Err(format!("this node stopped applying the log: {reason}"));
        }
        match tokio::time::timeout(HEALTH_TIMEOUT, self.cluster.log_state()).await {
            Ok(Ok(state)) if state.leader.is_some() => Ok(()),
            Ok(Ok(_)) => Err("the log has no leader (no quorum of the engine)".to_owned()),
            Ok(Err(error)) => Err(format!("the engine does not answer: {error}")),
            Err(_) => Err("the engine did not answer in time (no quorum?)".to_owned()),
        }
    }
}

/// Starts this node's writer (`sync::replicated`): updates through the log, rooms fed from it.
pub(crate) fn spawn_writer(
    node: &ClusterNode,
    store: Arc<Store>,
    metrics: Arc<crate::metrics::Metrics>,
    rooms: Arc<crate::sync::rooms::Rooms>,
) -> std::io::Result<(
    crate::sync::writer::WriterHandle,
    tokio::task::JoinHandle<bool>,
)> {
    crate::sync::replicated::spawn(store, metrics, node.replica.clone(), rooms)
}

/// The store's route on a replica: a command goes to the log, and its outcome is what this
/// node's apply of it returned. Called from blocking threads (the store blocks), so it blocks
/// on the submit.
struct LogRoute {
    replica: Arc<Replica>,
    runtime: tokio::runtime::Handle,
}

impl CommandRoute for LogRoute {
    fn execute(&self, command: &Command) -> Result<Outcome, StoreError> {
        let submit = self.replica.submit(command);
        let result = if tokio::runtime::Handle::try_current().is_ok() {
            // On a runtime thread (a blocking one, or a worker by mistake): tell the runtime
            // this thread blocks.
            tokio::task::block_in_place(|| self.runtime.block_on(submit))
        } else {
            self.runtime.block_on(submit)
        };
        result.map_err(|error| match error {
            ReplicaError::Refused(refused) => refused,
            other => StoreError::Cluster(other.to_string()),
        })
    }
}

/// Does on this node what a command applied from the log means beyond the file: a revoked
/// link's or session's sockets close on every node, not only where it was revoked.
pub(crate) async fn follow_commands(app: Arc<App>, cluster: Arc<ClusterNode>) {
    let mut applied = cluster.replica.subscribe();
    let lag = tokio::spawn({
        let (app, cluster) = (app.clone(), cluster.clone());
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                if let Some(reason) = cluster.replica.stopped() {
                    // Without its applier a node serves an ever older copy and can store
                    // nothing: stop, so its clients reconnect to a node that works and a
                    // supervisor restarts this one (it resumes at its last applied position).
                    tracing::error!(%reason, "this node stopped applying the cluster's log; exiting");
                    std::process::exit(70);
                }
                record_lag(&app, &cluster).await;
            }
        }
    });
    let _stop_lag = AbortOnDrop(lag);
    loop {
        let next = applied.recv().await;
        let applied = match next {
            Ok(applied) => applied,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                // A revocation may be among them: every open socket's link or session is
                // checked against this node's file, which has applied them all.
                tracing::warn!(
                    missed,
                    "missed announcements of applied commands; checking every open socket's credential"
                );
                close_revoked_sockets(&app).await;
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        match (&applied.command, &applied.outcome) {
            (Command::RevokeShare { .. }, Outcome::Revocation(Some(revocation))) => {
                for link in &revocation.links {
                    app.share_sockets
                        .close_all(link.record.id, crate::http::shares::REVOKED_REASON);
                }
            }
            (Command::RevokeSession { session_hash, .. }, Outcome::Changed(true)) => {
                crate::identity::session::close_sockets(&app, &[*session_hash]);
            }
            (Command::RevokeSessionsOf { .. }, Outcome::SessionsRevoked(sessions))
            | (Command::DisableMember { .. }, Outcome::Disabled { sessions, .. }) => {
                crate::identity::session::close_sockets(&app, sessions);
            }
            _ => {}
        }
    }
}

/// How often a node compares the history it derived with what other nodes published.
const HISTORY_CHECK_EVERY: Duration = Duration::from_secs(5);

/// What a node publishes per plan in the KV bucket (`history.<plan>`): how far it derived the
/// plan's history and the chain's head there.
#[derive(serde::Serialize, serde::Deserialize)]
struct PublishedHead {
    through: u64,
    head: String,
    node: String,
}

/// Every node derives every plan's history from the same log, so they must agree byte for
/// byte. Each node publishes, per plan, how far it derived and its chain's head there
/// (compare-and-set: a newer position replaces an older one), and checks the head another node
/// published against its own head at that position. A difference is an alarm (an `error` log
/// line and `mapline_cluster_history_mismatches`), never overwritten: the published head
/// stays for an operator to compare with `rebuild-history --cluster`.
pub(crate) async fn check_history(app: Arc<App>, cluster: Arc<ClusterNode>) {
    let mut checked: std::collections::HashMap<uuid::Uuid, u64> = Default::default();
    let mut every = tokio::time::interval(HISTORY_CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let store = app.store.clone();
        let plans = tokio::task::spawn_blocking(move || store.derived_positions()).await;
        let Ok(Ok(plans)) = plans else {
            continue;
        };
        for (plan, through) in plans {
            if through == 0 || checked.get(&plan) == Some(&through) {
                continue;
            }
            match compare_history(&app, &cluster, plan, through).await {
                Ok(()) => {
                    checked.insert(plan, through);
                }
                Err(error) => {
                    tracing::debug!(plan_id = %plan, %error, "history not compared yet; tried again later");
                }
            }
        }
    }
}

async fn compare_history(
    app: &Arc<App>,
    cluster: &ClusterNode,
    plan: uuid::Uuid,
    through: u64,
) -> Result<(), String> {
    let kv = cluster.kv().await?;
    // With the storage format: history derived again under a new format must not be
    // compared with heads of the old one (a rolling upgrade, a rebuild).
    let key = format!(
        "history.f{}.{}",
        mapline_store::STORAGE_FORMAT,
        plan.simple()
    );
    let head_at = |at: u64| {
        let store = app.store.clone();
        async move {
            tokio::task::spawn_blocking(move || store.history_head(plan, at))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        }
    };
    let ours = PublishedHead {
        through,
        head: hex(&head_at(through).await?),
        node: cluster.replica.node().to_owned(),
    };
    let value = || {
        serde_json::to_vec(&ours)
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    };
    let published = kv.get(&key).await.map_err(|e| e.to_string())?;
    let Some(entry) = published else {
        return match kv.create(&key, value()?).await {
            Ok(_) | Err(KvError::AlreadyExists { .. }) => Ok(()),
            Err(error) => Err(error.to_string()),
        };
    };
    let theirs: PublishedHead = serde_json::from_slice(&entry.value).map_err(|e| e.to_string())?;
    if theirs.through > through {
        // Checked when this node has derived that far.
        return Ok(());
    }
    let mine_there = if theirs.through == through {
        ours.head.clone()
    } else {
        hex(&head_at(theirs.through).await?)
    };
    if mine_there != theirs.head {
        app.metrics.history_mismatches.inc();
        tracing::error!(
            plan_id = %plan,
            position = theirs.through,
            this_node = %ours.node,
            other_node = %theirs.node,
            ours = %mine_there,
            theirs = %theirs.head,
            "ALARM: this node derived a different history than another node; compare both with `mapline rebuild-history --cluster … --check`"
        );
        return Ok(());
    }
    if through > theirs.through {
        match kv.update(&key, value()?, entry.revision).await {
            Ok(_) | Err(KvError::WrongRevision { .. }) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Aborts a task when dropped (with the task that started it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Closes the open sockets whose link or session this node's file says is revoked (or gone).
async fn close_revoked_sockets(app: &Arc<App>) {
    let shares = app.share_sockets.credentials();
    let sessions = app.session_sockets.credentials();
    let store = app.store.clone();
    let revoked = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
        let mut links = Vec::new();
        for share in shares {
            if store
                .share(share)?
                .is_none_or(|s| s.revoked_at_ms.is_some())
            {
                links.push(share);
            }
        }
        let mut ended = Vec::new();
        for session in sessions {
            if store
                .session(&session)?
                .is_none_or(|(s, _)| s.revoked_at_ms.is_some())
            {
                ended.push(session);
            }
        }
        Ok((links, ended))
    })
    .await;
    match revoked {
        Ok(Ok((links, sessions))) => {
            for link in links {
                app.share_sockets
                    .close_all(link, crate::http::shares::REVOKED_REASON);
            }
            crate::identity::session::close_sockets(app, &sessions);
        }
        Ok(Err(error)) => tracing::error!(%error, "cannot check open sockets' credentials"),
        Err(error) => tracing::error!(%error, "checking open sockets' credentials failed"),
    }
}

async fn record_lag(app: &App, cluster: &ClusterNode) {
    let position = cluster.replica.position();
    app.metrics.log_applied.set(position as i64);
    if let Ok(Ok(state)) = tokio::time::timeout(HEALTH_TIMEOUT, cluster.cluster.log_state()).await {
        app.metrics
            .log_lag
            .set(state.last_seq.saturating_sub(position) as i64);
    }
}

/// Presence (awareness) between nodes: what a connection here announces is published on the
/// document's plain subject, and what other nodes publish is relayed to this node's
/// connections. Never stored: a node that misses some presence misses only who is looking.
pub(crate) struct Presence {
    client: async_nats::Client,
    names: mapline_cluster::Names,
    node: String,
}

impl Presence {
    pub(crate) fn new(cluster: &ClusterNode) -> Self {
        Self {
            client: cluster.cluster.client().clone(),
            names: cluster.cluster.names().clone(),
            node: cluster.replica.node().to_owned(),
        }
    }

    /// Publishes an awareness update a connection of this node sent (fire and forget).
    pub(crate) fn publish(&self, doc: DocRef, update: &AwarenessUpdate) {
        let subject = self
            .names
            .presence_subject(&doc.plan.to_string(), doc.kind == DocKind::Internal);
        let mut headers = HeaderMap::new();
        headers.insert(NODE_HEADER, self.node.as_str());
        let payload = Bytes::from(yrs::updates::encoder::Encode::encode_v1(update));
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(error) = client.publish_with_headers(subject, headers, payload).await {
                tracing::debug!(%error, "cannot publish presence");
            }
        });
    }

    /// Relays other nodes' presence to this node's rooms in memory until the connection ends.
    pub(crate) async fn follow(self: Arc<Self>, app: Arc<App>) {
        let mut messages = match self.client.subscribe(self.names.presence.clone()).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::error!(%error, "cannot follow other nodes' presence");
                return;
            }
        };
        let prefix = self.names.presence.trim_end_matches('>').to_owned();
        while let Some(message) = messages.next().await {
            let from_here = message
                .headers
                .as_ref()
                .and_then(|h| h.get(NODE_HEADER))
                .is_some_and(|node| node.as_str() == self.node);
            if from_here {
                continue;
            }
            let Some(doc) = message
                .subject
                .as_str()
                .strip_prefix(&prefix)
                .and_then(parse_doc)
            else {
                continue;
            };
            let Some(room) = app.rooms.loaded(doc) else {
                continue;
            };
            match AwarenessUpdate::decode_v1(&message.payload) {
                Ok(update) => {
                    room.relay_awareness(crate::sync::writer::SERVER_ORIGIN, update);
                }
                Err(error) => tracing::debug!(%error, "presence from another node does not decode"),
            }
        }
    }
}

/// `<plan>` or `<plan>.internal`.
fn parse_doc(tail: &str) -> Option<DocRef> {
    let (plan, internal) = match tail.strip_suffix(".internal") {
        Some(plan) => (plan, true),
        None => (tail, false),
    };
    let plan = uuid::Uuid::parse_str(plan).ok()?;
    Some(if internal {
        DocRef::internal(plan)
    } else {
        DocRef::plan(plan)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_subjects_name_the_document() {
        let plan = uuid::Uuid::from_u128(7);
        assert_eq!(parse_doc(&plan.to_string()), Some(DocRef::plan(plan)));
        assert_eq!(
            parse_doc(&format!("{plan}.internal")),
            Some(DocRef::internal(plan))
        );
        assert_eq!(parse_doc("not-a-plan"), None);
        assert_eq!(parse_doc(&format!("{plan}.other")), None);
    }
}
