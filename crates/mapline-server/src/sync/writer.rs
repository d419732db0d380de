//! The group-commit writer: one thread owns every write of updates to the store. It takes all
//! requests waiting in its queue (from every room), commits them in one redb transaction (one
//! fsync), and only then applies them to their rooms, which derive each update's history and
//! relay and acknowledge the update. This is what makes "no update is seen by anyone before it
//! is durable" hold at low latency.
//!
//! The derived history is handed, at most every [`HISTORY_EVERY`], to a second thread
//! (`mapline-history`) that computes the plans' summaries and stores it with the snapshots it
//! covers in a transaction of its own. Each transaction costs an fsync and a page write per plan
//! it touches, so storing history with every batch doubled the server's CPU under load; storing
//! it on the writer's thread held back, for the 2–4 ms it takes, every update that arrived
//! meanwhile (the fan-out's p99). A crash before it is stored loses nothing: the log derives it
//! again when the plan loads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mapline_store::{DerivedHistory, NewUpdate, PlanId, Snapshot, Store, UpdateRecord};
use tokio::sync::mpsc;
use yrs::Update;

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::sync::room::{ConnId, Room};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 4096;
/// Requests that may wait for the writer before senders wait (back-pressure on clients).
const QUEUE: usize = 16_384;
/// Under load, derived history is stored with a batch at most this often...
pub const HISTORY_EVERY: Duration = Duration::from_millis(100);
/// ...unless this many history entries are waiting.
const HISTORY_MAX_WAITING: usize = 4096;

/// A request to the writer.
pub enum WriteRequest {
    /// Store an update, then apply it to its room.
    Update {
        room: Arc<Room>,
        origin: ConnId,
        record: UpdateRecord,
        update: Update,
        /// Told the update's log position once it is durable and applied (dropped unsent if
        /// its commit failed): for updates the server writes itself (`restore.rs`).
        durable: Option<tokio::sync::oneshot::Sender<mapline_store::Seq>>,
    },
    /// An empty update: nothing to store, but it is acknowledged in order.
    Noop { room: Arc<Room>, origin: ConnId },
    /// Store several updates (admitted by their rooms) in one transaction, apply them in
    /// order, then say whether they are durable: a schema migration's two documents.
    Together {
        updates: Vec<(Arc<Room>, UpdateRecord, Update)>,
        done: tokio::sync::oneshot::Sender<bool>,
    },
    /// Write the room's snapshot if the log moved past the stored one.
    Snapshot { room: Arc<Room> },
    /// Finish everything queued before this, then stop.
    Stop,
}

/// Where requests go; cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    queue: mpsc::Sender<WriteRequest>,
}

/// The writer's queue was closed: the server is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the writer has stopped")]
pub struct WriterStopped;

impl WriterHandle {
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))] // used by a cluster's node
    pub(crate) fn new(queue: mpsc::Sender<WriteRequest>) -> Self {
        Self { queue }
    }

    /// Queues a request, waiting if the writer is far behind.
    pub async fn send(&self, request: WriteRequest) -> Result<(), WriterStopped> {
        self.queue.send(request).await.map_err(|_| WriterStopped)
    }
}

/// Starts the writer thread (and the history thread it joins before it ends). The thread's
/// result says whether every derived history it was handed was stored.
pub fn spawn(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<bool>)> {
    let (queue, requests) = mpsc::channel(QUEUE);
    let (history_tx, history_thread) = spawn_history(store.clone(), metrics.clone())?;
    let thread = std::thread::Builder::new()
        .name("mapline-writer".into())
        .spawn(move || {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(requests, history_tx, &store, &metrics);
                // `run` dropped the sender: the history thread stores what it was handed last.
                history_thread.join().unwrap_or(false)
            }));
            match ran {
                Ok(history_stored) => history_stored,
                Err(_) => {
                    // Without the writer nothing more can be stored, and every editor would
                    // wait forever. Stop the process: what was acknowledged is on disk, and a
                    // restart (by the supervisor) derives whatever history was not.
                    tracing::error!("the writer thread panicked; aborting");
                    std::process::abort();
                }
            }
        })?;
    Ok((WriterHandle { queue }, thread))
}

/// Starts the history thread (`mapline-history`): it stores the [`HistoryWork`] it is handed
/// until every sender is dropped; its result says whether all of it was stored.
pub(crate) fn spawn_history(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(
    std::sync::mpsc::Sender<HistoryWork>,
    std::thread::JoinHandle<bool>,
)> {
    let (history_tx, history_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("mapline-history".into())
        .spawn(move || {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_history(history_rx, &store, &metrics)
            }));
            match ran {
                Ok(all_stored) => all_stored,
                Err(_) => {
                    // Derived history would pile up unstored; a restart derives it from
                    // the log.
                    tracing::error!("the history thread panicked; aborting");
                    std::process::abort();
                }
            }
        })?;
    Ok((history_tx, thread))
}

enum Followup {
    Apply {
        room: Arc<Room>,
        origin: ConnId,
        update: Update,
        durable: Option<tokio::sync::oneshot::Sender<mapline_store::Seq>>,
    },
    Noop {
        room: Arc<Room>,
        origin: ConnId,
    },
    /// Tell whoever waits whether the updates before it are durable.
    Done(tokio::sync::oneshot::Sender<bool>),
}

/// The origin of updates the server writes itself: no connection has it.
pub const SERVER_ORIGIN: ConnId = ConnId::MAX;

/// Work carried from one batch to the next until it is stored.
pub(crate) struct Carried {
    pub(crate) snapshots: Vec<(mapline_store::DocRef, Snapshot)>,
    /// History derived from committed updates, not stored yet.
    pub(crate) history: Vec<DerivedHistory>,
    /// The room of each plan in `history`: its summary is computed from the room's plan when
    /// the history is stored.
    pub(crate) rooms: HashMap<PlanId, Arc<Room>>,
    pub(crate) history_stored_at: Instant,
}

impl Default for Carried {
    fn default() -> Self {
        Self {
            snapshots: Vec::new(),
            history: Vec::new(),
            rooms: HashMap::new(),
            history_stored_at: Instant::now(),
        }
    }
}

impl Carried {
    /// Whether the history should be handed over now: it is due, plenty is waiting, or a
    /// snapshot is (a snapshot never goes to disk ahead of the history it covers).
    pub(crate) fn history_due(&self) -> bool {
        !self.history.is_empty()
            && (!self.snapshots.is_empty()
                || self.history.iter().map(|h| h.entries.len()).sum::<usize>()
                    >= HISTORY_MAX_WAITING
                || self.history_stored_at.elapsed() >= HISTORY_EVERY)
    }

    /// Hands the history and snapshots waiting to the history thread.
    pub(crate) fn hand_over(&mut self, history: &std::sync::mpsc::Sender<HistoryWork>) {
        if self.history.is_empty() && self.snapshots.is_empty() {
            return;
        }
        let work = HistoryWork {
            history: std::mem::take(&mut self.history),
            snapshots: std::mem::take(&mut self.snapshots),
            rooms: std::mem::take(&mut self.rooms),
        };
        self.history_stored_at = Instant::now();
        // Only fails if the history thread died, and then the process is aborting.
        let _ = history.send(work);
    }
}

/// What the writer hands the history thread: derived history, the snapshots it covers (stored
/// in the same transaction, so a snapshot never goes to disk ahead of its history), and each
/// plan's room for its summary.
#[derive(Default)]
pub(crate) struct HistoryWork {
    history: Vec<DerivedHistory>,
    snapshots: Vec<(mapline_store::DocRef, Snapshot)>,
    rooms: HashMap<PlanId, Arc<Room>>,
}

impl HistoryWork {
    /// Adds later work to this (a failed store is retried together with what came after it).
    fn merge(&mut self, later: HistoryWork) {
        for derived in later.history {
            match self
                .history
                .iter_mut()
                .find(|h| h.plan_id == derived.plan_id)
            {
                Some(earlier) => {
                    earlier.entries.extend(derived.entries);
                    earlier.through = earlier.through.max(derived.through);
                }
                None => self.history.push(derived),
            }
        }
        self.snapshots.extend(later.snapshots);
        self.rooms.extend(later.rooms);
    }

    /// Sets each plan's summary, advanced by the history about to be stored, from the plan as
    /// its room holds it now: every update the history covers, and any the writer applied since
    /// (their history comes with the next work, which advances the summary from there).
    fn summarize(&mut self, store: &Store) {
        for pending in &mut self.history {
            if let Some(room) = self.rooms.get(&pending.plan_id) {
                crate::history::summaries::summarize_pending(
                    store,
                    || room.projection().0,
                    pending,
                );
            }
        }
    }
}

/// The history thread: stores what the writer hands it, one transaction at a time, coalescing
/// what waits. A failed store is kept and retried (with whatever came since, or after
/// [`HISTORY_EVERY`]); when the writer stops, what is left is stored before the thread ends,
/// and the result says whether it all was.
fn run_history(
    work: std::sync::mpsc::Receiver<HistoryWork>,
    store: &Store,
    metrics: &Metrics,
) -> bool {
    use std::sync::mpsc::RecvTimeoutError;
    let mut failed: Option<HistoryWork> = None;
    loop {
        let next = match &failed {
            None => work.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(_) => work.recv_timeout(HISTORY_EVERY),
        };
        let mut batch = failed.take().unwrap_or_default();
        let disconnected = match next {
            Ok(next) => {
                batch.merge(next);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        while let Ok(more) = work.try_recv() {
            batch.merge(more);
        }
        if !store_history(store, metrics, &mut batch) {
            failed = Some(batch);
        }
        if disconnected {
            if let Some(mut batch) = failed.take()
                && !store_history(store, metrics, &mut batch)
            {
                tracing::error!(
                    plans = batch.history.len(),
                    "derived history could not be stored at shutdown; the next start derives it again"
                );
                return false;
            }
            return true;
        }
    }
}

fn run(
    mut requests: mpsc::Receiver<WriteRequest>,
    history: std::sync::mpsc::Sender<HistoryWork>,
    store: &Store,
    metrics: &Metrics,
) {
    // Only for waiting on the queue with a deadline; the writer itself never awaits anything else.
    let clock = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(clock) => clock,
        Err(error) => {
            tracing::error!(%error, "the writer cannot start its timer");
            return;
        }
    };
    let mut carried = Carried::default();
    let mut stopping = false;
    while !stopping {
        let first = if carried.history.is_empty() && carried.snapshots.is_empty() {
            requests.blocking_recv()
        } else {
            // Something waits to be stored: hand it over when it is due unless a batch comes
            // first.
            let due_in = HISTORY_EVERY.saturating_sub(carried.history_stored_at.elapsed());
            match clock.block_on(async { tokio::time::timeout(due_in, requests.recv()).await }) {
                Ok(request) => request,
                Err(_) => {
                    carried.hand_over(&history);
                    continue;
                }
            }
        };
        let Some(first) = first else {
            break;
        };
        let mut updates: Vec<NewUpdate> = Vec::new();
        let mut followups: Vec<Followup> = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                WriteRequest::Update {
                    room,
                    origin,
                    record,
                    update,
                    durable,
                } => queue_update(
                    &mut updates,
                    &mut followups,
                    (room, origin, record, update),
                    durable,
                ),
                WriteRequest::Noop { room, origin } => {
                    followups.push(Followup::Noop { room, origin })
                }
                WriteRequest::Together {
                    updates: together,
                    done,
                } => {
                    for (room, record, update) in together {
                        let queued = (room, SERVER_ORIGIN, record, update);
                        queue_update(&mut updates, &mut followups, queued, None);
                    }
                    followups.push(Followup::Done(done));
                }
                WriteRequest::Snapshot { room } => {
                    carried.snapshots.extend(room.snapshot_if_behind(now_ms()))
                }
                WriteRequest::Stop => stopping = true,
            }
            if !stopping && followups.len() < MAX_BATCH {
                next = requests.try_recv().ok();
            }
        }
        commit(store, metrics, updates, followups, &mut carried);
        if !carried.snapshots.is_empty() || carried.history_due() {
            carried.hand_over(&history);
        }
    }
    carried.hand_over(&history);
    tracing::info!("writer stopped");
}

/// Adds an update to the batch: stored in order, then applied to its room (and `durable`
/// told its log position).
fn queue_update(
    updates: &mut Vec<NewUpdate>,
    followups: &mut Vec<Followup>,
    (room, origin, record, update): (Arc<Room>, ConnId, UpdateRecord, Update),
    durable: Option<tokio::sync::oneshot::Sender<mapline_store::Seq>>,
) {
    updates.push(NewUpdate {
        plan_id: room.plan_id(),
        kind: room.doc().kind,
        record,
    });
    followups.push(Followup::Apply {
        room,
        origin,
        update,
        durable,
    });
}

/// Stores handed-over history (with its summaries) and snapshots in one transaction; false if
/// it failed (the caller keeps it to retry).
fn store_history(store: &Store, metrics: &Metrics, work: &mut HistoryWork) -> bool {
    if work.history.is_empty() && work.snapshots.is_empty() {
        return true;
    }
    let started = Instant::now();
    work.summarize(store);
    let result = store.commit_batch(&[], &work.snapshots, &work.history);
    metrics
        .history_seconds
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(_) => true,
        Err(error) => {
            metrics.commit_failures.inc();
            tracing::error!(%error, "storing derived history failed; retried");
            reopen_after_failure(store);
            false
        }
    }
}

/// After a failed commit the data file refuses everything until it is reopened (redb latches
/// I/O errors). Reopen it now, so the next batch — the senders resend on reconnect — can commit
/// as soon as the cause (a full disk) is gone. If it cannot be reopened yet, the next failure
/// tries again.
fn reopen_after_failure(store: &Store) {
    if let Err(error) = store.recover() {
        tracing::error!(%error, "cannot reopen the data file yet; retried after the next failure");
    }
}

fn commit(
    store: &Store,
    metrics: &Metrics,
    updates: Vec<NewUpdate>,
    followups: Vec<Followup>,
    carried: &mut Carried,
) {
    if updates.is_empty() {
        for followup in followups {
            match followup {
                Followup::Noop { room, origin } => room.acknowledge_noop(origin),
                Followup::Done(done) => {
                    let _ = done.send(true);
                }
                Followup::Apply { .. } => {}
            }
        }
        return;
    }
    let started = Instant::now();
    // The batch's updates alone: derived history, summaries and snapshots are stored after the
    // batch is relayed (`flush` below), so the updates that happen to arrive when history is
    // due are not held back by it.
    let result = store.commit_batch(&updates, &[], &[]);
    metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    let seqs = match result {
        Ok(seqs) => seqs,
        Err(error) => {
            metrics.commit_failures.inc();
            tracing::error!(%error, updates = followups.len(), "commit failed; senders are told to resend");
            reopen_after_failure(store);
            // Snapshots stay queued and are retried with the next commit.
            for followup in followups {
                match followup {
                    Followup::Apply { room, origin, .. } => room.reject_unsaved(origin),
                    Followup::Noop { room, origin } => room.acknowledge_noop(origin),
                    Followup::Done(done) => {
                        let _ = done.send(false);
                    }
                }
            }
            return;
        }
    };
    metrics.commit_batch_size.observe(seqs.len() as f64);
    metrics.updates_persisted.inc_by(seqs.len() as u64);

    // Apply every durable update to its room: it derives the history (stored with a
    // later commit), relays the update and acknowledges it.
    let now = now_ms();
    let mut durable = seqs.into_iter().zip(updates);
    for followup in followups {
        match followup {
            Followup::Apply {
                room,
                origin,
                update,
                durable: notify,
            } => {
                // Every Apply has exactly one stored update, in the same order.
                let Some((seq, stored)) = durable.next() else {
                    break;
                };
                let applied = room.apply_durable(seq, update, &stored.record, origin, now);
                if let Some(notify) = notify {
                    let _ = notify.send(seq);
                }
                carried.snapshots.extend(applied.snapshot);
                let slips = applied.history.as_ref().map_or(0, |h| h.slips.len());
                metrics.slips_recorded.inc_by(slips as u64);
                // Internal documents have their own log positions and no derived history.
                if room.doc().kind == mapline_store::DocKind::Plan {
                    record_history(&mut carried.history, room.plan_id(), seq, applied.history);
                    carried.rooms.insert(room.plan_id(), room.clone());
                }
            }
            Followup::Noop { room, origin } => room.acknowledge_noop(origin),
            Followup::Done(done) => {
                let _ = done.send(true);
            }
        }
    }
}

/// Adds one update's derivation to the batch's history for its plan.
pub(crate) fn record_history(
    batch: &mut Vec<DerivedHistory>,
    plan_id: PlanId,
    seq: mapline_store::Seq,
    entry: Option<mapline_store::HistoryEntry>,
) {
    let position = match batch.iter().position(|h| h.plan_id == plan_id) {
        Some(position) => position,
        None => {
            batch.push(DerivedHistory {
                plan_id,
                entries: Vec::new(),
                through: seq,
                summary: None,
            });
            batch.len() - 1
        }
    };
    let plan = &mut batch[position];
    plan.through = plan.through.max(seq);
    plan.entries.extend(entry.map(|e| (seq, e)));
}
