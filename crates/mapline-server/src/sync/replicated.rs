//! The writer of a replica node (`serve --cluster`): where a single node's writer commits a
//! batch to redb and then applies it to the rooms, this one publishes each document's updates
//! to the cluster's command log and applies to the rooms only what the log hands back, in log
//! order, through the replica's [`Applied`] announcements. Updates of this node's connections
//! and of every other node's reach a room the same way, so every node's rooms see one order
//! per document, and nothing is relayed or acknowledged before the cluster committed it
//! (a quorum's fsync).
//!
//! Per document at most one command is in flight: the updates that arrive meanwhile wait and
//! go together in the next one. That keeps one connection's updates in the log in the order it
//! sent them (its durable acknowledgements count messages in order), and batches under load.
//!
//! Derived history and snapshots are node-local: they go to the same history thread as on a
//! single node ([`super::writer::spawn_history`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use mapline_replica::{Applied, Replica, ReplicaError};
use mapline_store::{Command, DocKind, DocRef, NewUpdate, Outcome, Seq, Store};
use tokio::sync::{broadcast, mpsc, oneshot};
use yrs::Update;

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::sync::room::{ConnId, Room};
use crate::sync::rooms::Rooms;
use crate::sync::writer::{
    Carried, HISTORY_EVERY, HistoryWork, SERVER_ORIGIN, WriteRequest, WriterHandle, record_history,
    spawn_history,
};

/// Requests that may wait for the writer before senders wait.
const QUEUE: usize = 16_384;
/// Most updates one command carries.
const MAX_COMMAND_UPDATES: usize = 1024;
/// How long a stopping writer waits for the cluster to confirm what is in flight.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the replica's writer task; the handle resolves, after [`WriteRequest::Stop`], to
/// whether every derived history it was handed was stored.
pub fn spawn(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    replica: Arc<Replica>,
    rooms: Arc<Rooms>,
) -> std::io::Result<(WriterHandle, tokio::task::JoinHandle<bool>)> {
    let (queue, requests) = mpsc::channel(QUEUE);
    let (history, history_thread) = spawn_history(store.clone(), metrics.clone())?;
    let (events_tx, events) = mpsc::unbounded_channel();
    let writer = ReplicatedWriter {
        applied: replica.subscribe(),
        replica,
        store,
        metrics,
        rooms,
        history,
        events_tx,
        docs: HashMap::new(),
        pending: HashMap::new(),
        carried: Carried::default(),
        opening: HashSet::new(),
        lags: 0,
    };
    let task = tokio::spawn(async move {
        writer.run(requests, events).await;
        tokio::task::spawn_blocking(move || history_thread.join().unwrap_or(false))
            .await
            .unwrap_or(false)
    });
    Ok((WriterHandle::new(queue), task))
}

/// What waits for a command's apply, in the order it was queued.
enum Followup {
    Update {
        room: Arc<Room>,
        origin: ConnId,
        update: Update,
        durable: Option<oneshot::Sender<Seq>>,
    },
    Noop {
        room: Arc<Room>,
        origin: ConnId,
    },
    Done(oneshot::Sender<bool>),
}

/// A document's queue: the command in flight (its msg id) and what waits for the next one.
#[derive(Default)]
struct DocQueue {
    in_flight: Option<String>,
    updates: Vec<NewUpdate>,
    followups: Vec<Followup>,
}

/// Things the writer's own tasks report back.
enum Event {
    /// A command's submit returned (after this node applied it, or failed).
    Submitted {
        doc: Option<DocRef>,
        msg_id: String,
        result: Result<Outcome, ReplicaError>,
        started: Instant,
    },
    /// A room opened for a document the log moved: catch it up from the store.
    Opened(DocRef, Option<Arc<Room>>),
}

struct ReplicatedWriter {
    replica: Arc<Replica>,
    applied: broadcast::Receiver<Arc<Applied>>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    rooms: Arc<Rooms>,
    history: std::sync::mpsc::Sender<HistoryWork>,
    events_tx: mpsc::UnboundedSender<Event>,
    docs: HashMap<DocRef, DocQueue>,
    /// Commands submitted by this writer and not yet seen applied, by msg id, with the
    /// [`ReplicatedWriter::lags`] count when they were submitted.
    pending: HashMap<String, (u64, Vec<Followup>)>,
    /// How often announcements were missed (the broadcast lagged).
    lags: u64,
    carried: Carried,
    /// Documents whose room is being opened for the log's sake.
    opening: HashSet<DocRef>,
}

impl ReplicatedWriter {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<WriteRequest>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        let mut history_tick = tokio::time::interval(HISTORY_EVERY);
        history_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        let stop_deadline = tokio::time::sleep(std::time::Duration::MAX);
        tokio::pin!(stop_deadline);
        loop {
            if stopping
                && self.pending.is_empty()
                && self.docs.values().all(|d| d.in_flight.is_none())
            {
                break;
            }
            tokio::select! {
                biased;
                applied = self.applied.recv() => match applied {
                    Ok(applied) => self.on_applied(&applied).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "the writer fell behind the log's announcements; catching every room up from the store");
                        self.resynchronise().await;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        tracing::error!("the replica stopped: no more updates can be applied");
                        self.fail_everything();
                        break;
                    }
                },
                Some(event) = events.recv() => self.on_event(event).await,
                request = requests.recv(), if !stopping => match request {
                    Some(WriteRequest::Stop) | None => {
                        stopping = true;
                        stop_deadline.as_mut().reset(tokio::time::Instant::now() + STOP_WAIT);
                    }
                    Some(request) => self.on_request(request),
                },
                _ = &mut stop_deadline, if stopping => {
                    tracing::warn!(commands = self.pending.len(), "stopping with updates the cluster has not confirmed; their senders resend them on reconnect");
                    self.fail_everything();
                    break;
                }
                _ = history_tick.tick() => {
                    if self.carried.history_due() || !self.carried.snapshots.is_empty() {
                        self.carried.hand_over(&self.history);
                    }
                }
            }
        }
        self.carried.hand_over(&self.history);
        tracing::info!("replica writer stopped");
    }

    fn on_request(&mut self, request: WriteRequest) {
        match request {
            WriteRequest::Update {
                room,
                origin,
                record,
                update,
                durable,
            } => {
                let doc = room.doc();
                let queue = self.docs.entry(doc).or_default();
                queue.updates.push(NewUpdate {
                    plan_id: doc.plan,
                    kind: doc.kind,
                    record,
                });
                queue.followups.push(Followup::Update {
                    room,
                    origin,
                    update,
                    durable,
                });
                self.submit_next(doc);
            }
            WriteRequest::Noop { room, origin } => {
                let doc = room.doc();
                match self.docs.get_mut(&doc) {
                    // Acknowledged after the updates before it, in its connection's order.
                    Some(queue) if queue.in_flight.is_some() || !queue.followups.is_empty() => {
                        queue.followups.push(Followup::Noop { room, origin });
                    }
                    _ => room.acknowledge_noop(origin),
                }
            }
            WriteRequest::Together { updates, done } => {
                let mut records = Vec::new();
                let mut followups = Vec::new();
                for (room, record, update) in updates {
                    let doc = room.doc();
                    records.push(NewUpdate {
                        plan_id: doc.plan,
                        kind: doc.kind,
                        record,
                    });
                    followups.push(Followup::Update {
                        room,
                        origin: SERVER_ORIGIN,
                        update,
                        durable: None,
                    });
                }
                followups.push(Followup::Done(done));
                self.submit(None, records, followups);
            }
            WriteRequest::Snapshot { room } => {
                self.carried
                    .snapshots
                    .extend(room.snapshot_if_behind(now_ms()));
            }
            WriteRequest::Stop => {}
        }
    }

    /// Submits what waits for `doc` unless a command of it is in flight.
    fn submit_next(&mut self, doc: DocRef) {
        let Some(queue) = self.docs.get_mut(&doc) else {
            return;
        };
        if queue.in_flight.is_some() || queue.updates.is_empty() {
            if queue.in_flight.is_none() {
                // Only acknowledgements of no-ops wait: nothing is ahead of them any more.
                for followup in std::mem::take(&mut queue.followups) {
                    finish_unsubmitted(followup, true);
                }
                self.docs.remove(&doc);
            }
            return;
        }
        let take = queue.updates.len().min(MAX_COMMAND_UPDATES);
        let updates: Vec<NewUpdate> = queue.updates.drain(..take).collect();
        // The followups up to and including the last update taken (no-ops between them ride
        // along; those after stay with the updates after).
        let mut seen = 0;
        let mut cut = 0;
        for (i, followup) in queue.followups.iter().enumerate() {
            if matches!(followup, Followup::Update { .. }) {
                seen += 1;
                if seen == take {
                    cut = i + 1;
                    break;
                }
            }
        }
        let followups: Vec<Followup> = queue.followups.drain(..cut).collect();
        let msg_id = self.submit(Some(doc), updates, followups);
        if let Some(queue) = self.docs.get_mut(&doc) {
            queue.in_flight = Some(msg_id);
        }
    }

    fn submit(
        &mut self,
        doc: Option<DocRef>,
        updates: Vec<NewUpdate>,
        followups: Vec<Followup>,
    ) -> String {
        let msg_id = self.replica.new_msg_id();
        self.pending.insert(msg_id.clone(), (self.lags, followups));
        let replica = self.replica.clone();
        let events = self.events_tx.clone();
        let id = msg_id.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = replica
                .submit_as(&Command::AppendUpdates { updates }, id.clone())
                .await;
            let _ = events.send(Event::Submitted {
                doc,
                msg_id: id,
                result,
                started,
            });
        });
        msg_id
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Submitted {
                doc,
                msg_id,
                result,
                started,
            } => {
                self.metrics
                    .publish_seconds
                    .observe(started.elapsed().as_secs_f64());
                match result {
                    // Its followups run when the announcement of its apply comes: it was sent
                    // before the submit returned, so it waits in the receiver now...
                    Ok(_) => {
                        // ...unless announcements were missed since it was submitted: then it
                        // may have been among them, and the rooms were caught up from the store.
                        if self
                            .pending
                            .get(&msg_id)
                            .is_some_and(|(lags, _)| *lags != self.lags)
                            && let Some((_, followups)) = self.pending.remove(&msg_id)
                        {
                            self.finish_caught_up(followups);
                        }
                    }
                    Err(error) => {
                        if let Some((_, followups)) = self.pending.remove(&msg_id) {
                            self.metrics.commit_failures.inc();
                            tracing::error!(%error, msg_id, "publishing updates to the cluster failed; senders are told to resend");
                            for followup in followups {
                                finish_unsubmitted(followup, false);
                            }
                            // What waits behind it may build on it: its senders resend it all
                            // on reconnect, in order.
                            if let Some(queue) = doc.and_then(|doc| self.docs.get_mut(&doc)) {
                                queue.updates.clear();
                                for followup in std::mem::take(&mut queue.followups) {
                                    finish_unsubmitted(followup, false);
                                }
                            }
                        }
                    }
                }
                if let Some(doc) = doc {
                    if let Some(queue) = self.docs.get_mut(&doc)
                        && queue.in_flight.as_deref() == Some(msg_id.as_str())
                    {
                        queue.in_flight = None;
                    }
                    self.submit_next(doc);
                }
            }
            Event::Opened(doc, room) => {
                self.opening.remove(&doc);
                if let Some(room) = room {
                    self.catch_up_until(&room, None).await;
                }
            }
        }
    }

    async fn on_applied(&mut self, applied: &Applied) {
        let Command::AppendUpdates { updates } = &applied.command else {
            if let Command::CreatePlan { id, .. } = &applied.command
                && !self.is_own(applied)
            {
                // Another node created it: derive its first history here too.
                self.open_for_log(DocRef::plan(*id));
            }
            return;
        };
        let Outcome::Appended(seqs) = &applied.outcome else {
            return;
        };
        let followups = applied
            .msg_id
            .as_ref()
            .and_then(|id| self.pending.remove(id))
            .map(|(_, followups)| followups);
        let now = now_ms();
        match followups {
            Some(followups) => {
                let mut stored = updates.iter().zip(seqs.iter().copied());
                for followup in followups {
                    match followup {
                        Followup::Update {
                            room,
                            origin,
                            update,
                            durable,
                        } => {
                            let Some((new, seq)) = stored.next() else {
                                break;
                            };
                            self.fill_gap(&room, seq).await;
                            if seq > room.last_seq() {
                                let result =
                                    room.apply_durable(seq, update, &new.record, origin, now);
                                self.record(&room, seq, result);
                            } else {
                                // A catch-up from the store applied it already.
                                room.acknowledge_noop(origin);
                            }
                            self.metrics.updates_persisted.inc();
                            if let Some(durable) = durable {
                                let _ = durable.send(seq);
                            }
                        }
                        Followup::Noop { room, origin } => room.acknowledge_noop(origin),
                        Followup::Done(done) => {
                            let _ = done.send(true);
                        }
                    }
                }
            }
            None => {
                for (new, seq) in updates.iter().zip(seqs.iter().copied()) {
                    let doc = DocRef {
                        plan: new.plan_id,
                        kind: new.kind,
                    };
                    match self.rooms.loaded(doc) {
                        Some(room) => {
                            self.fill_gap(&room, seq).await;
                            if let Some(result) = room.apply_replicated(seq, &new.record, now) {
                                self.record(&room, seq, result);
                            }
                        }
                        // Every node derives every plan's history as the log moves: the room
                        // loads (deriving what it reads) and then follows the log.
                        None if doc.kind == DocKind::Plan || self.rooms.is_loading(doc) => {
                            self.open_for_log(doc)
                        }
                        None => {}
                    }
                }
            }
        }
    }

    fn is_own(&self, applied: &Applied) -> bool {
        applied
            .msg_id
            .as_ref()
            .is_some_and(|id| id.starts_with(&format!("{}-", self.replica.node())))
    }

    /// Keeps a room's derived history and snapshot of an applied update.
    fn record(&mut self, room: &Arc<Room>, seq: Seq, applied: crate::sync::room::Applied) {
        self.carried.snapshots.extend(applied.snapshot);
        let slips = applied.history.as_ref().map_or(0, |h| h.slips.len());
        self.metrics.slips_recorded.inc_by(slips as u64);
        if room.doc().kind == DocKind::Plan {
            record_history(
                &mut self.carried.history,
                room.plan_id(),
                seq,
                applied.history,
            );
            self.carried.rooms.insert(room.plan_id(), room.clone());
        }
    }

    /// Opens a document's room in the background; it is caught up when it is in memory.
    fn open_for_log(&mut self, doc: DocRef) {
        if !self.opening.insert(doc) {
            return;
        }
        let rooms = self.rooms.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let room = match rooms.open(doc).await {
                Ok(room) => Some(room),
                Err(error) => {
                    tracing::error!(plan_id = %doc.plan, kind = ?doc.kind, %error, "cannot load a plan the log moved");
                    None
                }
            };
            let _ = events.send(Event::Opened(doc, room));
        });
    }

    /// Applies what the store holds between the room's position and `seq` (exclusive): a room
    /// that loaded while the update before was being applied, or announcements missed.
    async fn fill_gap(&mut self, room: &Arc<Room>, seq: Seq) {
        if seq > room.last_seq() + 1 {
            self.catch_up_until(room, Some(seq)).await;
        }
    }

    async fn catch_up_until(&mut self, room: &Arc<Room>, before: Option<Seq>) {
        let doc = room.doc();
        let after = room.last_seq();
        let store = self.store.clone();
        let missing = match tokio::task::spawn_blocking(move || store.updates_after(doc, after))
            .await
        {
            Ok(Ok(missing)) => missing,
            Ok(Err(error)) => {
                tracing::error!(plan_id = %doc.plan, %error, "cannot read the updates a room missed");
                return;
            }
            Err(_) => return,
        };
        let now = now_ms();
        for (seq, record) in missing {
            if before.is_some_and(|before| seq >= before) {
                break;
            }
            if let Some(result) = room.apply_replicated(seq, &record, now) {
                self.record(room, seq, result);
            }
        }
    }

    /// After missed announcements: every room in memory catches up from the store. Commands of
    /// this node whose announcement may have been missed are finished when their submit
    /// returns (see `on_event`).
    async fn resynchronise(&mut self) {
        self.lags += 1;
        for room in self.rooms.all() {
            self.catch_up_until(&room, None).await;
        }
    }

    /// Finishes the followups of a command applied to this node's file whose announcement may
    /// have been missed: the rooms hold its updates (caught up from the store), so its senders
    /// are acknowledged.
    fn finish_caught_up(&mut self, followups: Vec<Followup>) {
        for followup in followups {
            match followup {
                Followup::Update {
                    room,
                    origin,
                    durable,
                    ..
                } => {
                    room.acknowledge_noop(origin);
                    if let Some(durable) = durable {
                        let _ = durable.send(room.last_seq());
                    }
                }
                Followup::Noop { room, origin } => room.acknowledge_noop(origin),
                Followup::Done(done) => {
                    let _ = done.send(true);
                }
            }
        }
    }

    /// The replica stopped: nothing in flight will be applied here.
    fn fail_everything(&mut self) {
        for (_, (_, followups)) in self.pending.drain() {
            for followup in followups {
                finish_unsubmitted(followup, false);
            }
        }
        for (_, queue) in self.docs.drain() {
            for followup in queue.followups {
                finish_unsubmitted(followup, false);
            }
        }
    }
}

/// Ends a followup whose command was never applied here (`stored`: false when it failed).
fn finish_unsubmitted(followup: Followup, stored: bool) {
    match followup {
        Followup::Update { room, origin, .. } => room.reject_unsaved(origin),
        Followup::Noop { room, origin } => room.acknowledge_noop(origin),
        Followup::Done(done) => {
            let _ = done.send(stored);
        }
    }
}
