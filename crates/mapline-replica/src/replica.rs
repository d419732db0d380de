//! The applier (log → this node's file, in order) and submit (command → log → local outcome).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mapline_cluster::{Cluster, Delivered, Expect, HeaderMap, Names};
use mapline_store::{Author, Command, CommandError, DocKind, Durability, Outcome, Store};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::error::{ApplyError, ReplicaError};

/// The header JetStream de-duplicates on; the applier matches a local submit by it.
const MSG_ID: &str = "Nats-Msg-Id";

/// How a node runs its replica.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// This node's id: the prefix of every msg id it publishes, and a field of its log lines.
    pub node: String,
    /// Applies committed without an fsync between two durable commits (1: every apply
    /// fsyncs). See docs/cluster.md, *The replicated store*, for the figures behind the
    /// default.
    pub sync_every: u32,
    /// At most this long between an apply and the durable commit that covers it, when the
    /// log goes quiet.
    pub sync_interval: Duration,
    /// How many [`Applied`] announcements a slow subscriber may fall behind before it gets
    /// `RecvError::Lagged` (and must resynchronise from its store).
    pub announce_capacity: usize,
    /// Log entries read ahead of the applier.
    pub read_ahead: usize,
}

impl ReplicaConfig {
    /// The defaults for node `node`.
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            sync_every: 256,
            sync_interval: Duration::from_millis(100),
            announce_capacity: 4096,
            read_ahead: 256,
        }
    }
}

/// A command this node applied from the log, announced after the apply.
#[derive(Debug)]
pub struct Applied {
    /// Its log position (stream sequence).
    pub position: u64,
    pub command: Command,
    /// What the store returned (the same on every node).
    pub outcome: Outcome,
    /// The entry's `Nats-Msg-Id`: a node recognises its own submits by it
    /// ([`Replica::submit_as`]).
    pub msg_id: Option<String>,
}

/// Counters since this [`Replica`] started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// The last log position applied to the file (as of the last apply, durable or not).
    pub position: u64,
    /// Commands applied.
    pub applied: u64,
    /// Commands the store's rules refused (position consumed).
    pub refused: u64,
    /// Log entries that are not a readable command (position consumed, nothing applied).
    pub unreadable: u64,
    /// Durable commits made (deferred applies made durable, or applies that fsynced).
    pub syncs: u64,
}

type Waiter = oneshot::Sender<Result<Outcome, ReplicaError>>;

#[derive(Default)]
struct State {
    /// Local submits waiting for their log entry, by msg id.
    waiters: HashMap<String, Waiter>,
    /// Why the applier stopped; no new submit is accepted then.
    stopped: Option<String>,
}

struct Shared {
    node: String,
    state: Mutex<State>,
    announce: broadcast::Sender<Arc<Applied>>,
    applied: AtomicU64,
    refused: AtomicU64,
    unreadable: AtomicU64,
    syncs: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

enum Work {
    Apply(Delivered),
    /// Make deferred applies durable if the log has been quiet for `sync_interval`.
    Tick,
}

/// One node's replica: the applier task and thread, and submit. Dropping it stops the applier
/// (after a last durable commit); [`Replica::stop`] does the same and says how it ended.
pub struct Replica {
    shared: Arc<Shared>,
    cluster: Cluster,
    position: watch::Receiver<u64>,
    tasks: Mutex<Option<Tasks>>,
}

struct Tasks {
    reader: tokio::task::JoinHandle<()>,
    ticker: tokio::task::JoinHandle<()>,
    done: oneshot::Receiver<Result<(), ApplyError>>,
}

/// The subject a command is published on: a plan's update subject for updates of one of its
/// documents (`p.upd.<plan>` or `p.upd.<plan>.internal`), `p.cmd.<kind>` for every other
/// command (and for a batch of updates that spans documents). The log is one stream, so the
/// subject orders nothing by itself; it lets a reader filter one plan's updates.
pub fn subject_of(names: &Names, command: &Command) -> String {
    if let Command::AppendUpdates { updates } = command
        && let Some(first) = updates.first()
        && updates
            .iter()
            .all(|u| u.plan_id == first.plan_id && u.kind == first.kind)
    {
        return names.update_subject(&first.plan_id.to_string(), first.kind == DocKind::Internal);
    }
    names.command_subject(command.name())
}

/// Headers for someone reading the log with NATS tools (nothing applies them: the command holds
/// everything): `Mapline-Node` (who published), `Mapline-Command` (its kind) and, for updates
/// by one author, `Mapline-Author` (`system`, `admin`, `share:<id>:<side>`,
/// `member:<id>:<side>`).
pub fn headers_of(node: &str, command: &Command) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Mapline-Node", node);
    headers.insert("Mapline-Command", command.name());
    if let Command::AppendUpdates { updates } = command
        && let Some(first) = updates.first()
        && updates
            .iter()
            .all(|u| u.record.author == first.record.author)
    {
        headers.insert("Mapline-Author", author_name(&first.record.author).as_str());
    }
    headers
}

fn author_name(author: &Author) -> String {
    let side = |side: &mapline_store::Side| format!("{side:?}").to_ascii_lowercase();
    match author {
        Author::System => "system".to_owned(),
        Author::Admin => "admin".to_owned(),
        Author::Share { id, side: s } => format!("share:{id}:{}", side(s)),
        Author::Member { id, side: s } => format!("member:{id}:{}", side(s)),
    }
}

impl Replica {
    /// Starts the applier: reads the log from the file's applied position + 1 and applies it
    /// in order. Must be called inside a tokio runtime.
    pub async fn start(
        cluster: Cluster,
        store: Arc<Store>,
        config: ReplicaConfig,
    ) -> Result<Self, ReplicaError> {
        let from = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.applied_position())
                .await
                .map_err(|_| ReplicaError::Stopped {
                    reason: "reading the applied position panicked".to_owned(),
                })?
                .map_err(ReplicaError::Position)?
        };
        let (announce, _) = broadcast::channel(config.announce_capacity.max(1));
        let shared = Arc::new(Shared {
            node: config.node.clone(),
            state: Mutex::new(State::default()),
            announce,
            applied: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
        });
        let (position_tx, position) = watch::channel(from);
        let (work_tx, work_rx) = mpsc::channel(config.read_ahead.max(1));
        let (done_tx, done) = oneshot::channel();

        tracing::info!(node = %config.node, from = from + 1, "replica: applying the log");
        let mut log = cluster.read_from(None, from + 1);
        let reader = tokio::spawn({
            let work = work_tx.clone();
            async move {
                loop {
                    let entry = log.next().await;
                    if work.send(Work::Apply(entry)).await.is_err() {
                        return;
                    }
                }
            }
        });
        let ticker = tokio::spawn({
            let period = config.sync_interval;
            async move {
                let mut every = tokio::time::interval(period);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    // A full queue means a busy applier: it makes its own durable commits.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = work_tx.try_send(Work::Tick)
                    {
                        return;
                    }
                }
            }
        });
        let applier = Applier {
            store,
            shared: shared.clone(),
            config,
            position: position_tx,
            pending: 0,
            last_sync: Instant::now(),
        };
        std::thread::Builder::new()
            .name("mapline-replica".to_owned())
            .spawn(move || {
                // The sender outlives a panic only if the thread does not unwind past it:
                // dropped unsent, `stop` reports `Panicked`.
                let _ = done_tx.send(applier.run(work_rx));
            })
            .map_err(|e| ReplicaError::Stopped {
                reason: format!("cannot start the applier thread: {e}"),
            })?;
        Ok(Self {
            shared,
            cluster,
            position,
            tasks: Mutex::new(Some(Tasks {
                reader,
                ticker,
                done,
            })),
        })
    }

    /// Publishes `command` to the log (a fresh msg id; retried with the same id by the
    /// cluster layer) and waits until this node's applier has applied it; returns what the
    /// local store computed, which every node computes alike (so of two nodes consuming one
    /// sign-in link at once, exactly one gets the member).
    pub async fn submit(&self, command: &Command) -> Result<Outcome, ReplicaError> {
        self.submit_as(command, self.new_msg_id()).await
    }

    /// A msg id no other submit of any node has: this node's id and a UUID v7.
    pub fn new_msg_id(&self) -> String {
        format!("{}-{}", self.shared.node, uuid::Uuid::now_v7())
    }

    /// [`Replica::submit`] with a msg id the caller chose ([`Replica::new_msg_id`]), so it can
    /// recognise the command's [`Applied`] announcement among every node's.
    pub async fn submit_as(
        &self,
        command: &Command,
        msg_id: String,
    ) -> Result<Outcome, ReplicaError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.state();
            if let Some(reason) = &state.stopped {
                return Err(ReplicaError::Stopped {
                    reason: reason.clone(),
                });
            }
            state.waiters.insert(msg_id.clone(), tx);
        }
        // Registered before the publish: the apply may come before the acknowledgement.
        let _waiting = Unregister {
            shared: &self.shared,
            msg_id: &msg_id,
        };
        let subject = subject_of(self.cluster.names(), command);
        let published = self
            .cluster
            .publish(
                &subject,
                headers_of(&self.shared.node, command),
                Bytes::from(command.encode()),
                &msg_id,
                Expect::Any,
            )
            .await?;
        tracing::trace!(node = %self.shared.node, msg_id, position = published.seq, "submitted");
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(ReplicaError::Stopped {
                reason: self.stopped_reason(),
            }),
        }
    }

    /// This node's id (the prefix of its msg ids).
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Announcements of every command this node applies from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Applied>> {
        self.shared.announce.subscribe()
    }

    /// The last log position applied to the file.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Waits until the applier has applied the log through `position`.
    pub async fn caught_up_to(&self, position: u64) -> Result<(), ReplicaError> {
        let mut watching = self.position.clone();
        match watching.wait_for(|applied| *applied >= position).await {
            Ok(_) => Ok(()),
            Err(_) => Err(ReplicaError::Stopped {
                reason: self.stopped_reason(),
            }),
        }
    }

    pub fn stats(&self) -> ReplicaStats {
        ReplicaStats {
            position: self.position(),
            applied: self.shared.applied.load(Ordering::Relaxed),
            refused: self.shared.refused.load(Ordering::Relaxed),
            unreadable: self.shared.unreadable.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
        }
    }

    /// Why the applier stopped, once it has.
    pub fn stopped(&self) -> Option<String> {
        self.shared.state().stopped.clone()
    }

    fn stopped_reason(&self) -> String {
        self.stopped()
            .unwrap_or_else(|| "the applier ended".to_owned())
    }

    /// Stops reading the log, lets the applier finish what it has read, makes it durable, and
    /// says how the applier ended: `Err` if a storage failure had stopped it before.
    pub async fn stop(&self) -> Result<(), ApplyError> {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(tasks) = tasks else {
            return Ok(());
        };
        tasks.reader.abort();
        tasks.ticker.abort();
        // Both hold a sender of the applier's queue: once they are gone, it drains and ends.
        let _ = tasks.reader.await;
        let _ = tasks.ticker.await;
        tasks.done.await.unwrap_or(Err(ApplyError::Panicked))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(tasks) = self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            tasks.reader.abort();
            tasks.ticker.abort();
        }
    }
}

/// Forgets a submit's waiter when the submit returns or is dropped.
struct Unregister<'a> {
    shared: &'a Shared,
    msg_id: &'a str,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.shared.state().waiters.remove(self.msg_id);
    }
}

/// The applier thread: one log entry at a time, in order.
struct Applier {
    store: Arc<Store>,
    shared: Arc<Shared>,
    config: ReplicaConfig,
    position: watch::Sender<u64>,
    /// Entries committed without an fsync since the last durable commit.
    pending: u32,
    last_sync: Instant,
}

impl Applier {
    fn run(mut self, mut work: mpsc::Receiver<Work>) -> Result<(), ApplyError> {
        let mut ended = Ok(());
        while let Some(next) = work.blocking_recv() {
            let result = match next {
                Work::Apply(entry) => self.apply(entry),
                Work::Tick
                    if self.pending > 0
                        && self.last_sync.elapsed() >= self.config.sync_interval =>
                {
                    self.sync()
                }
                Work::Tick => Ok(()),
            };
            if let Err(e) = result {
                ended = Err(e);
                break;
            }
        }
        if ended.is_ok() && self.pending > 0 {
            ended = self.sync();
        }
        let reason = match &ended {
            Ok(()) => "the replica was stopped".to_owned(),
            Err(e) => {
                tracing::error!(
                    node = %self.shared.node,
                    position = *self.position.borrow(),
                    error = %e,
                    source = ?std::error::Error::source(e).map(ToString::to_string),
                    "replica: the applier stopped; restart the node once the cause is fixed \
                     (it resumes at the first position not applied)"
                );
                format!(
                    "{e}: {}",
                    std::error::Error::source(e)
                        .map(ToString::to_string)
                        .unwrap_or_default()
                )
            }
        };
        let waiters = {
            let mut state = self.shared.state();
            state.stopped = Some(reason.clone());
            std::mem::take(&mut state.waiters)
        };
        for (_, waiter) in waiters {
            let _ = waiter.send(Err(ReplicaError::Stopped {
                reason: reason.clone(),
            }));
        }
        ended
    }

    fn durability(&self) -> Durability {
        if self.pending + 1 >= self.config.sync_every
            || self.last_sync.elapsed() >= self.config.sync_interval
        {
            Durability::Immediate
        } else {
            Durability::Deferred
        }
    }

    fn committed(&mut self, durability: Durability) {
        match durability {
            Durability::Immediate => {
                self.pending = 0;
                self.last_sync = Instant::now();
                self.shared.syncs.fetch_add(1, Ordering::Relaxed);
            }
            Durability::Deferred => self.pending += 1,
        }
    }

    fn sync(&mut self) -> Result<(), ApplyError> {
        self.store.sync().map_err(ApplyError::Sync)?;
        self.committed(Durability::Immediate);
        Ok(())
    }

    fn apply(&mut self, entry: Delivered) -> Result<(), ApplyError> {
        let position = entry.stream_seq;
        let durability = self.durability();
        // What the store actually did: a command that is never made durable on its own (a
        // link's visit) is deferred whatever was asked, and must not count as a sync.
        let mut used = durability;
        let msg_id = entry.headers.get(MSG_ID).map(|v| v.as_str().to_owned());
        let node = &self.shared.node;
        let result = match Command::decode(&entry.payload) {
            // Another version wrote it (a newer node, or an older format this one has no
            // decoder for): skipping it would leave this node unlike every node that applied
            // it, so this one stops there.
            Err(CommandError::UnknownFormat { found, supported }) => {
                tracing::error!(
                    node = %node,
                    position,
                    subject = %entry.subject,
                    found,
                    supported,
                    "replica: the log holds a command of a format this node does not read"
                );
                return Err(ApplyError::UnknownFormat {
                    position,
                    found,
                    supported,
                });
            }
            Err(unreadable) => {
                // Every node reads the same bytes and skips them alike: the replicas stay equal.
                tracing::warn!(
                    node = %node,
                    position,
                    subject = %entry.subject,
                    msg_id = ?msg_id,
                    bytes = entry.payload.len(),
                    error = %unreadable,
                    "replica: a log entry is not a command; skipped"
                );
                self.store
                    .skip_at(position, durability)
                    .map_err(|source| ApplyError::Storage {
                        position,
                        command: "unreadable",
                        source,
                    })?;
                self.shared.unreadable.fetch_add(1, Ordering::Relaxed);
                Err(ReplicaError::Unreadable {
                    position,
                    source: unreadable,
                })
            }
            Ok(command) => {
                if !command.is_durable() {
                    used = Durability::Deferred;
                }
                let applied = self.store.execute_at_with(&command, position, durability);
                match applied {
                    Ok(outcome) => {
                        self.shared.applied.fetch_add(1, Ordering::Relaxed);
                        let applied = Arc::new(Applied {
                            position,
                            command,
                            outcome: outcome.clone(),
                            msg_id: msg_id.clone(),
                        });
                        // No subscriber is not an error.
                        let _ = self.shared.announce.send(applied);
                        Ok(outcome)
                    }
                    Err(refused) if refused.is_refusal() => {
                        tracing::info!(
                            node = %node,
                            position,
                            command = command.name(),
                            msg_id = ?msg_id,
                            error = %refused,
                            "replica: command refused by the store's rules"
                        );
                        self.shared.refused.fetch_add(1, Ordering::Relaxed);
                        Err(ReplicaError::Refused(refused))
                    }
                    Err(source) => {
                        return Err(ApplyError::Storage {
                            position,
                            command: command.name(),
                            source,
                        });
                    }
                }
            }
        };
        self.committed(used);
        self.position.send_replace(position);
        if let Some(msg_id) = msg_id {
            let waiter = self.shared.state().waiters.remove(&msg_id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(result);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapline_store::{NewUpdate, UpdateRecord};
    use uuid::Uuid;

    fn update(plan: u128, kind: DocKind) -> NewUpdate {
        NewUpdate {
            plan_id: Uuid::from_u128(plan),
            kind,
            record: UpdateRecord {
                author: Author::System,
                client_ids: Vec::new(),
                received_at_ms: 0,
                update: vec![1],
            },
        }
    }

    fn check(updates: Vec<NewUpdate>, expected: &str) {
        let names = Names::new("p");
        let command = Command::AppendUpdates { updates };
        assert_eq!(subject_of(&names, &command), expected);
    }

    #[test]
    fn headers_name_the_node_the_command_and_a_single_author() {
        let share = Uuid::from_u128(9);
        let by = |author: Author| NewUpdate {
            record: UpdateRecord {
                author,
                ..update(1, DocKind::Plan).record
            },
            ..update(1, DocKind::Plan)
        };
        let buyer = Author::Share {
            id: share,
            side: mapline_store::Side::Buyer,
        };
        let one = Command::AppendUpdates {
            updates: vec![by(buyer), by(buyer)],
        };
        let headers = headers_of("web1", &one);
        let get = |h: &HeaderMap, k: &str| h.get(k).map(|v| v.as_str().to_owned());
        assert_eq!(get(&headers, "Mapline-Node").as_deref(), Some("web1"));
        assert_eq!(
            get(&headers, "Mapline-Command").as_deref(),
            Some("append_updates")
        );
        assert_eq!(
            get(&headers, "Mapline-Author"),
            Some(format!("share:{share}:buyer"))
        );
        // Updates of several authors name none.
        let mixed = Command::AppendUpdates {
            updates: vec![by(buyer), by(Author::System)],
        };
        assert_eq!(get(&headers_of("web1", &mixed), "Mapline-Author"), None);
    }

    #[test]
    fn updates_of_one_document_go_to_its_plan_subject_and_the_rest_to_commands() {
        let plan = "00000000-0000-0000-0000-000000000001";
        check(vec![update(1, DocKind::Plan)], &format!("p.upd.{plan}"));
        check(
            vec![update(1, DocKind::Internal), update(1, DocKind::Internal)],
            &format!("p.upd.{plan}.internal"),
        );
        check(
            vec![update(1, DocKind::Plan), update(1, DocKind::Internal)],
            "p.cmd.append_updates",
        );
        check(
            vec![update(1, DocKind::Plan), update(2, DocKind::Plan)],
            "p.cmd.append_updates",
        );
        check(Vec::new(), "p.cmd.append_updates");
        let names = Names::new("p");
        let revoke = Command::RevokeShare {
            plan: Uuid::from_u128(1),
            share: Uuid::from_u128(2),
            now_ms: 0,
        };
        assert_eq!(subject_of(&names, &revoke), "p.cmd.revoke_share");
    }
}
