//! A room is one plan's document in memory, with the connections editing it.
//!
//! Invariant: the room's document holds exactly the durable prefix of the plan's log — only the
//! writer thread applies updates, after their commit, in log order. So whatever a room serves
//! (a sync step 2, a broadcast) is already on disk, and a snapshot of the document is the state
//! as of `last_seq`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mapline_plan::admission::{Admission, PlanLimits, Refusal};
use mapline_plan::{HistoryTracker, Plan, TrackerIndex};
use mapline_store::{
    DerivedHistory, DocKind, DocRef, DocumentLoad, HistoryEntry, PlanId, Seq, Snapshot,
    UpdateRecord,
};
use yrs::sync::{Awareness, AwarenessUpdate};
use yrs::updates::decoder::Decode as _;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use crate::history;

use crate::metrics::Metrics;
use crate::sync::outbox::{CloseCode, CloseReason, Outbox};
use crate::sync::protocol;

/// Identifies a connection within the server's lifetime.
pub type ConnId = u64;

/// Fewest updates between two automatic snapshots: bounds the log tail a cold load replays.
pub const SNAPSHOT_EVERY: u64 = 256;
/// A snapshot also waits until the tail holds at least 1/`SNAPSHOT_GROWTH` of the last
/// snapshot's bytes, so the cost of writing snapshots stays proportional to the data ingested
/// however large a plan grows.
pub const SNAPSHOT_GROWTH: usize = 4;

/// Awareness client ids one connection may announce over its life: a browser tab has one per
/// document. The room remembers each (removed ones too), so this bounds what one connection
/// can make it hold; echoes of other connections' clients do not count.
pub const MAX_AWARENESS_CLIENTS_PER_CONNECTION: usize = 16;

/// What became of a connection's awareness update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwarenessRelay {
    /// It changed nothing (an echo); nothing was relayed.
    Unchanged,
    /// It changed presence and was queued for every other connection.
    Changed,
    /// The connection announced more awareness clients than any client has.
    TooManyClients,
}

/// What applying a durable update produced.
pub struct Applied {
    /// The update's history entry (`None` if it changed nothing).
    pub history: Option<HistoryEntry>,
    /// A snapshot, when one is due.
    pub snapshot: Option<(DocRef, Snapshot)>,
}

/// The room was retired (unloaded) between being found and being joined: open it again.
#[derive(Debug)]
pub struct Retired;

struct Member {
    outbox: Outbox,
    wants_acks: bool,
    /// Awareness client ids this connection announced, removed when it leaves.
    awareness_clients: HashSet<u64>,
    /// Every awareness client id this connection ever announced (the room remembers removed
    /// ones too, to refuse stale states), bounded by [`MAX_AWARENESS_CLIENTS_PER_CONNECTION`].
    announced_ever: HashSet<u64>,
    /// Update messages from this connection that are durable (or were empty).
    durable_messages: u64,
}

struct RoomState {
    awareness: Awareness,
    /// What an update may bring in before it is stored (see [`Room::admit`]). Empty while
    /// `unindexed` holds what it is to be built from: read it through [`RoomState::indexed`].
    admission: Admission,
    /// Derives each applied update's history and holds the document's last read state (plan
    /// documents only: nothing is derived from an internal document). `None` while
    /// `unindexed` is set: read it through [`RoomState::indexed`].
    tracker: Option<HistoryTracker>,
    /// The stored state a room loaded, until admission's index and the tracker are built from
    /// it. A cold load answers its first readers from the document alone; the indexes are
    /// built off the lock ([`Room::build_indexes`]) or, if an update or a projection needs
    /// them first, at that moment under the lock. While this is set nothing has changed the
    /// document since its load: every path that changes it builds the indexes first.
    unindexed: Option<Arc<Unindexed>>,
    /// The end of the plan's history chain, after the last derived entry.
    chain: history::Chain,
    members: HashMap<ConnId, Member>,
    /// Awareness clients announced by a cluster's other nodes (relayed with
    /// `SERVER_ORIGIN`): owned elsewhere, so a local connection's echo of them is free.
    remote_awareness: HashSet<u64>,
    last_seq: Seq,
    snapshot_seq: Seq,
    /// Size of the last snapshot and of the updates after it.
    snapshot_bytes: usize,
    tail_bytes: usize,
    retired: bool,
    idle_since: Option<Instant>,
    /// The document's deletions, read when an update that inserts nothing needs them and
    /// kept until the next update is applied.
    deleted: Option<DeletedRanges>,
    /// What admitted updates on their way to the disk delete (cleared with admission's record
    /// of what is in flight): an update resent meanwhile deletes nothing new either.
    in_flight_deletes: DeletedRanges,
}

/// What a room's indexes are built from: the stored updates its document was loaded from.
struct Unindexed {
    /// The snapshot's state, then the log tail, in log order.
    stored: Vec<Vec<u8>>,
    limits: PlanLimits,
    kind: DocKind,
}

impl Unindexed {
    /// Admission's index of the stored updates, as an eager load builds it.
    fn admission(&self) -> Admission {
        let mut admission = Admission::new(self.limits, self.kind == DocKind::Plan);
        for raw in &self.stored {
            admission.note_stored(raw);
        }
        admission
    }

    /// Both indexes, the tracker's from a replica of the document: the same stored updates
    /// replayed the same way make the same state. CPU-bound, and needs no lock.
    fn build(&self, plan_id: PlanId) -> (Admission, Option<TrackerIndex>) {
        let tracker = (self.kind == DocKind::Plan).then(|| {
            let replica = Doc::new();
            history::replay(
                plan_id,
                &replica,
                self.stored.iter().map(|raw| (0, raw.as_slice())),
            );
            TrackerIndex::of(&replica.transact())
        });
        (self.admission(), tracker)
    }
}

impl RoomState {
    /// Builds the indexes now if they are not yet, from the document itself (unchanged since
    /// its load while `unindexed` is set). Every use of `admission` or `tracker` goes through
    /// this first.
    fn indexed(&mut self) -> &mut Self {
        if let Some(unindexed) = self.unindexed.take() {
            self.admission = unindexed.admission();
            if unindexed.kind == DocKind::Plan {
                let doc = self.awareness.doc();
                let index = TrackerIndex::of(&doc.transact());
                self.tracker = Some(HistoryTracker::attach_indexed(doc, index));
            }
        }
        self
    }
}

/// A document's deletions as sorted, merged clock ranges per client: whether an update's
/// deletion is one already made is a binary search, whatever the ranges' lengths.
#[derive(Default)]
struct DeletedRanges(HashMap<yrs::block::ClientID, Vec<std::ops::Range<u32>>>);

impl DeletedRanges {
    fn of(deleted: &yrs::IdSet) -> Self {
        let mut ranges = Self::default();
        ranges.add(deleted);
        ranges
    }

    /// Adds deletions, keeping each client's ranges sorted and merged.
    fn add(&mut self, deleted: &yrs::IdSet) {
        for (client, ranges) in deleted.iter() {
            let list = self.0.entry(*client).or_default();
            list.extend(ranges.iter().cloned());
            list.sort_by_key(|range| range.start);
            let mut merged: Vec<std::ops::Range<u32>> = Vec::with_capacity(list.len());
            for range in list.drain(..) {
                match merged.last_mut() {
                    Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                    _ => merged.push(range),
                }
            }
            *list = merged;
        }
    }

    fn covers(&self, client: yrs::block::ClientID, range: &std::ops::Range<u32>) -> bool {
        if range.is_empty() {
            return true;
        }
        let Some(list) = self.0.get(&client) else {
            return false;
        };
        let after = list.partition_point(|r| r.start <= range.start);
        after > 0 && range.end <= list[after - 1].end
    }
}

/// One document of a plan in memory.
pub struct Room {
    doc: DocRef,
    state: Mutex<RoomState>,
    /// Updates handed to the writer and not yet applied; a room with any is never retired.
    pending_writes: AtomicUsize,
    /// Whether building the indexes off the lock was started (see [`Room::claim_indexing`]).
    indexing_claimed: AtomicBool,
    /// Set once the indexes are known to be built (they never become unbuilt again), so the
    /// check before each update's admission is one atomic load, not a second lock.
    indexed: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Room {
    /// Rebuilds a plan's document from its snapshot and log tail. CPU-bound: call it off the
    /// async runtime. A stored update that no longer applies is logged and skipped, never fatal.
    /// Updates past the stored history (lost in a crash before their history was written) are
    /// derived now; the returned history must be stored before the room is used.
    pub fn load(
        doc_ref: DocRef,
        load: DocumentLoad,
        metrics: Arc<Metrics>,
        limits: PlanLimits,
    ) -> (Self, DerivedHistory) {
        let plan_id = doc_ref.plan;
        let doc = Doc::new();
        let derived_through = load.derived_through;
        let last_seq = load.last_seq;
        let snapshot_seq = load.snapshot.as_ref().map_or(0, |s| s.covers_seq);
        let snapshot_bytes = load.snapshot.as_ref().map_or(0, |s| s.state.len());
        let tail_bytes = load.tail.iter().map(|(_, r)| r.update.len()).sum();
        let mut chain = history::Chain::after(load.chain_head);
        let mut catch_up = DerivedHistory {
            plan_id,
            entries: Vec::new(),
            through: derived_through.min(load.last_seq),
            summary: None,
        };
        let underived = doc_ref.kind == DocKind::Plan
            && load.tail.iter().any(|(seq, _)| *seq > derived_through);
        let (admission, tracker, unindexed) = if underived {
            // History a crash left unstored is derived now, so the indexes are built now.
            Self::load_deriving(doc_ref, &doc, &load, limits, &mut chain, &mut catch_up)
        } else {
            // The usual cold load: only the document is built now; its indexes are built from
            // the same stored updates later (see `RoomState::unindexed`).
            let DocumentLoad { snapshot, tail, .. } = load;
            let stored: Vec<Vec<u8>> = snapshot
                .map(|s| s.state)
                .into_iter()
                .chain(tail.into_iter().map(|(_, record)| record.update))
                .collect();
            history::replay(plan_id, &doc, stored.iter().map(|raw| (0, raw.as_slice())));
            let unindexed = Unindexed {
                stored,
                limits,
                kind: doc_ref.kind,
            };
            let empty = Admission::new(limits, doc_ref.kind == DocKind::Plan);
            (empty, None, Some(Arc::new(unindexed)))
        };
        let room = Self {
            doc: doc_ref,
            state: Mutex::new(RoomState {
                awareness: Awareness::new(doc),
                admission,
                tracker,
                unindexed,
                chain,
                members: HashMap::new(),
                remote_awareness: HashSet::new(),
                last_seq,
                snapshot_seq,
                snapshot_bytes,
                tail_bytes,
                retired: false,
                idle_since: Some(Instant::now()),
                deleted: None,
                in_flight_deletes: DeletedRanges::default(),
            }),
            pending_writes: AtomicUsize::new(0),
            indexing_claimed: AtomicBool::new(false),
            indexed: AtomicBool::new(false),
            metrics,
        };
        (room, catch_up)
    }

    /// The load of a plan whose log ends in updates without stored history: the document is
    /// replayed up to its derived history, the tracker attached, and the rest applied through
    /// it (deriving what is missing, into `catch_up`); admission's index is built at once.
    fn load_deriving(
        doc_ref: DocRef,
        doc: &Doc,
        load: &DocumentLoad,
        limits: PlanLimits,
        chain: &mut history::Chain,
        catch_up: &mut DerivedHistory,
    ) -> (Admission, Option<HistoryTracker>, Option<Arc<Unindexed>>) {
        let plan_id = doc_ref.plan;
        let derived_through = load.derived_through;
        let snapshot = load
            .snapshot
            .as_ref()
            .map(|s| (s.covers_seq, s.state.as_slice()));
        let derived_tail = load
            .tail
            .iter()
            .take_while(|(seq, _)| *seq <= derived_through)
            .map(|(seq, record)| (*seq, record.update.as_slice()));
        history::replay(plan_id, doc, snapshot.into_iter().chain(derived_tail));
        let mut tracker = HistoryTracker::attach(doc);
        for (seq, record) in load.tail.iter().filter(|(seq, _)| *seq > derived_through) {
            if let Some(entry) =
                history::apply_stored(plan_id, doc, &mut tracker, *seq, record, chain)
            {
                catch_up.entries.push((*seq, entry));
            }
            catch_up.through = *seq;
        }
        if catch_up.through > derived_through {
            tracing::info!(plan_id = %plan_id, from = derived_through + 1, through = catch_up.through, "derived the history a crash left unstored");
        }
        let mut admission = Admission::new(limits, doc_ref.kind == DocKind::Plan);
        if let Some(snapshot) = &load.snapshot {
            admission.note_stored(&snapshot.state);
        }
        for (_, record) in &load.tail {
            admission.note_stored(&record.update);
        }
        (admission, Some(tracker), None)
    }

    /// Whether the room's indexes are built (see `RoomState::unindexed`).
    pub fn is_indexed(&self) -> bool {
        if self.indexed.load(Ordering::Acquire) {
            return true;
        }
        let built = self.lock().unindexed.is_none();
        if built {
            self.indexed.store(true, Ordering::Release);
        }
        built
    }

    /// Whether the caller is the first to ask, and the indexes are still to build: then it
    /// runs [`Room::build_indexes`]. Cheap after the first call (one atomic).
    pub fn claim_indexing(&self) -> bool {
        !self.indexing_claimed.swap(true, Ordering::SeqCst) && self.lock().unindexed.is_some()
    }

    /// Builds the room's indexes if a load left them unbuilt (see `RoomState::unindexed`),
    /// without holding the room's lock while it works: the first readers of a cold-loaded room
    /// are answered meanwhile. CPU-bound: call it off the async runtime. If an update or a
    /// projection needed the indexes first, they were built then and this does nothing more.
    pub fn build_indexes(&self) {
        let Some(unindexed) = self.lock().unindexed.clone() else {
            return;
        };
        let (admission, index) = unindexed.build(self.doc.plan);
        let mut state = self.lock();
        // Still the same pending load: nothing has changed the document since (every change
        // builds the indexes first and clears it), so the replica's index is the document's.
        if !state
            .unindexed
            .as_ref()
            .is_some_and(|pending| Arc::ptr_eq(pending, &unindexed))
        {
            return;
        }
        state.unindexed = None;
        state.admission = admission;
        if let Some(index) = index {
            state.tracker = Some(HistoryTracker::attach_indexed(state.awareness.doc(), index));
        }
    }

    /// The plan whose document this room holds.
    pub fn plan_id(&self) -> PlanId {
        self.doc.plan
    }

    /// Which document of the plan this room holds.
    pub fn doc(&self) -> DocRef {
        self.doc
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        // A panic while holding the lock cannot leave the document half-written (yrs applies an
        // update inside one transaction), so a poisoned lock is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a connection. It is sent the server's sync step 1 (so it uploads what the server
    /// lacks, e.g. offline edits) and the current awareness. Registering and reading the state
    /// happen under one lock: no update can fall between what it is served and what it is sent.
    pub fn join(&self, conn: ConnId, outbox: Outbox, wants_acks: bool) -> Result<(), Retired> {
        let mut state = self.lock();
        if state.retired {
            return Err(Retired);
        }
        let sv = state.awareness.doc().transact().state_vector();
        outbox.push(protocol::sync_step1(sv));
        if let Some(message) = awareness_of_all(&state.awareness) {
            outbox.push(message);
        }
        state.members.insert(
            conn,
            Member {
                outbox,
                wants_acks,
                awareness_clients: HashSet::new(),
                announced_ever: HashSet::new(),
                durable_messages: 0,
            },
        );
        state.idle_since = None;
        Ok(())
    }

    /// Removes a connection; its awareness entries are removed and the removal broadcast.
    /// Returns the awareness update that removed the connection's clients, if any (a
    /// cluster's node tells the other nodes).
    pub fn leave(&self, conn: ConnId) -> Option<AwarenessUpdate> {
        let mut state = self.lock();
        let member = state.members.remove(&conn)?;
        let clients: Vec<_> = member.awareness_clients.into_iter().collect();
        for &client in &clients {
            state
                .awareness
                .remove_state(yrs::block::ClientID::new(client));
        }
        let mut removal = None;
        if !clients.is_empty() {
            let ids = clients.into_iter().map(yrs::block::ClientID::new);
            if let Ok(update) = state.awareness.update_with_clients(ids) {
                for member in state.members.values() {
                    member.outbox.push_awareness(&update);
                }
                removal = Some(update);
            }
        }
        if state.members.is_empty() {
            state.idle_since = Some(Instant::now());
        }
        removal
    }

    /// Answers a client's sync step 1 with everything durable it lacks.
    pub fn answer_sync_step1(&self, conn: ConnId, sv: &StateVector) {
        let state = self.lock();
        let diff = state
            .awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(sv);
        if let Some(member) = state.members.get(&conn) {
            member.outbox.push(protocol::sync_step2(diff));
        }
    }

    /// Applies a connection's awareness update and relays it to the others if it changed
    /// anything. Awareness is presence, not plan data: it is never stored. y-websocket clients
    /// echo every awareness update they receive, and those echoes change nothing, so they are
    /// [`AwarenessRelay::Unchanged`] (and free of the sender's budget).
    pub fn relay_awareness(&self, conn: ConnId, update: AwarenessUpdate) -> AwarenessRelay {
        let mut state = self.lock();
        if let Some(member) = state.members.get(&conn) {
            // Clients another connection announced are echoes (y-websocket sends back every
            // state it receives): they never count against this one.
            let owned_elsewhere = |client: u64| {
                state.remote_awareness.contains(&client)
                    || state
                        .members
                        .iter()
                        .any(|(id, other)| *id != conn && other.awareness_clients.contains(&client))
            };
            // Counted without copying the set: one awareness message holds each client once.
            let new_clients = update
                .clients
                .keys()
                .map(|client| client.get())
                .filter(|client| !member.announced_ever.contains(client))
                .filter(|client| !owned_elsewhere(*client))
                .count();
            if member.announced_ever.len() + new_clients > MAX_AWARENESS_CLIENTS_PER_CONNECTION {
                return AwarenessRelay::TooManyClients;
            }
        }
        let Ok(Some(summary)) = state.awareness.apply_update_summary(update.clone()) else {
            return AwarenessRelay::Unchanged;
        };
        if let Some(member) = state.members.get_mut(&conn) {
            for client in summary.added.iter().chain(&summary.updated) {
                member.awareness_clients.insert(client.get());
                member.announced_ever.insert(client.get());
            }
            for client in &summary.removed {
                member.awareness_clients.remove(&client.get());
            }
        } else if conn == crate::sync::writer::SERVER_ORIGIN {
            for client in summary.added.iter().chain(&summary.updated) {
                state.remote_awareness.insert(client.get());
            }
            for client in &summary.removed {
                state.remote_awareness.remove(&client.get());
            }
        }
        for (id, member) in &state.members {
            if *id != conn {
                member.outbox.push_awareness(&update);
            }
        }
        AwarenessRelay::Changed
    }

    /// Sends a connection everyone's awareness state (its answer to an awareness query).
    pub fn answer_awareness_query(&self, conn: ConnId) {
        let state = self.lock();
        if let (Some(member), Some(message)) =
            (state.members.get(&conn), awareness_of_all(&state.awareness))
        {
            member.outbox.push(message);
        }
    }

    /// Tells a read-only connection, if it asked for notices, that its update was refused.
    pub fn notify_refused(&self, conn: ConnId, reason: &str) {
        let state = self.lock();
        if let Some(member) = state.members.get(&conn).filter(|m| m.wants_acks) {
            member.outbox.push(protocol::refused(reason));
        }
    }

    /// Decides whether a connection's update may be stored: every item must integrate (a parent
    /// that is a type) and the plan must stay within its limits. An admitted update is counted
    /// as a write in flight at once, under the same lock (as [`Room::begin_write`] does), so the
    /// writer cannot settle the admission state between the two.
    pub fn admit(&self, raw: &[u8], update: &Update) -> Result<(), Refusal> {
        let mut state = self.lock();
        let RoomState {
            awareness,
            admission,
            in_flight_deletes,
            ..
        } = state.indexed();
        admission.admit(&awareness.doc().transact(), raw)?;
        in_flight_deletes.add(update.delete_set());
        self.begin_write();
        Ok(())
    }

    /// Whether an update would change nothing: every item it carries is in the document (or
    /// admitted and on its way there) and everything it deletes is deleted already — an echo,
    /// such as pycrdt clients send of every update they receive, or an update sent twice.
    /// Such an update is acknowledged and neither stored nor relayed.
    pub fn changes_nothing(&self, update: &Update) -> bool {
        let mut state = self.lock();
        let RoomState {
            awareness,
            admission,
            deleted,
            in_flight_deletes: state_in_flight,
            ..
        } = &mut *state;
        // (Not `indexed()`: this reads only what is in flight, and while the indexes are
        // unbuilt nothing is — `admit` builds them — so an echo costs no index build.)
        let doc = awareness.doc();
        let known = doc.transact().state_vector();
        let inserts = update.insertions(true);
        for (client, ranges) in inserts.iter() {
            let known = known.get(client).max(admission.in_flight_clock(*client));
            if ranges.iter().any(|range| range.end > known) {
                return false;
            }
        }
        let deletes = update.delete_set();
        if deletes.is_empty() {
            return true;
        }
        let deleted =
            deleted.get_or_insert_with(|| DeletedRanges::of(&doc.transact().snapshot().delete_set));
        deletes.iter().all(|(client, ranges)| {
            ranges.iter().all(|range| {
                deleted.covers(*client, range) || state_in_flight.covers(*client, range)
            })
        })
    }

    /// Counts in an update the server wrote itself (a schema migration): recorded by admission
    /// without its checks, and in flight like an admitted one.
    pub fn admit_trusted(&self, raw: &[u8]) {
        self.lock().indexed().admission.admit_trusted(raw);
        self.begin_write();
    }

    /// Called before handing an update to the writer: the room stays loaded until it is applied.
    /// (An admitted update already counts: see [`Room::admit`].)
    pub fn begin_write(&self) {
        self.pending_writes.fetch_add(1, Ordering::SeqCst);
    }

    fn end_write(&self) {
        self.pending_writes.fetch_sub(1, Ordering::SeqCst);
    }

    /// Writer thread, after commit: applies a durable update, derives its history, relays the
    /// update to every other connection and acknowledges it to its sender. Returns the history
    /// (stored with a later commit) and a snapshot when one is due.
    pub fn apply_durable(
        &self,
        seq: Seq,
        update: Update,
        record: &UpdateRecord,
        origin: ConnId,
        now_ms: i64,
    ) -> Applied {
        let mut state = self.lock();
        let RoomState {
            awareness,
            tracker,
            chain,
            ..
        } = state.indexed();
        let (history, error) = match tracker {
            Some(tracker) => {
                let (derivation, error) = tracker.apply(awareness.doc(), update, &record.update);
                (
                    history::entry(record, derivation, chain),
                    error.map(|e| e.to_string()),
                )
            }
            None => {
                let applied = awareness.doc().transact_mut().apply_update(update);
                (None, applied.err().map(|e| e.to_string()))
            }
        };
        if let Some(error) = error {
            tracing::error!(plan_id = %self.doc.plan, kind = ?self.doc.kind, seq, %error, "durable update does not apply");
        }
        state.last_seq = seq;
        state.tail_bytes += record.update.len();
        state.deleted = None;
        if self.pending_writes.load(Ordering::SeqCst) == 1 {
            // This was the last write in flight: the document holds everything admitted, but
            // for what yrs keeps pending (waiting for missing updates).
            let RoomState {
                awareness,
                admission,
                ..
            } = &mut *state;
            let pending = awareness
                .doc()
                .transact()
                .store()
                .pending_update()
                .is_some();
            admission.settled(pending);
            if !pending {
                state.in_flight_deletes = DeletedRanges::default();
            }
        }
        let sent = broadcast(
            &state.members,
            Some(origin),
            &protocol::update(&record.update),
        );
        self.metrics.updates_broadcast.inc_by(sent);
        acknowledge(&mut state, origin);
        let due = state.last_seq - state.snapshot_seq >= SNAPSHOT_EVERY
            && state.tail_bytes * SNAPSHOT_GROWTH >= state.snapshot_bytes;
        let snapshot = due.then(|| self.snapshot_locked(&mut state, now_ms));
        drop(state);
        self.end_write();
        Applied { history, snapshot }
    }

    /// The log position of the document's last applied update.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))] // used by a cluster's node
    pub fn last_seq(&self) -> Seq {
        self.lock().last_seq
    }

    /// A replica's room, for an update it did not receive from one of its own connections
    /// (another node's, or one it missed): applied like a durable update of the server's own,
    /// relayed to every connection and acknowledged to none. `None` if the room holds that
    /// position already (it loaded after the update was stored) or the update does not decode
    /// (logged; the stored log is what a reload reads).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))] // used by a cluster's node
    pub fn apply_replicated(
        &self,
        seq: Seq,
        record: &UpdateRecord,
        now_ms: i64,
    ) -> Option<Applied> {
        if seq <= self.last_seq() {
            return None;
        }
        let update = match Update::decode_v1(&record.update) {
            Ok(update) => update,
            Err(error) => {
                tracing::error!(plan_id = %self.doc.plan, kind = ?self.doc.kind, seq, %error, "a stored update does not decode");
                return None;
            }
        };
        self.admit_trusted(&record.update);
        Some(self.apply_durable(
            seq,
            update,
            record,
            crate::sync::writer::SERVER_ORIGIN,
            now_ms,
        ))
    }

    /// The schema migration this plan's document needs (`mapline_plan::migrate`), computed
    /// with its internal document's room, or `None` when it is current.
    pub fn migration(&self, internal: &Room) -> Option<mapline_plan::migrate::Migration> {
        let plan = self.lock();
        let internal = internal.lock();
        mapline_plan::migrate::migration(plan.awareness.doc(), internal.awareness.doc())
    }

    /// Reads the room's document (its durable state) under the room's lock, and the log
    /// position that state is as of.
    pub fn read<R>(&self, read: impl FnOnce(&yrs::Transaction<'_>) -> R) -> (R, Seq) {
        let state = self.lock();
        (read(&state.awareness.doc().transact()), state.last_seq)
    }

    /// The projected plan as of the last applied update, and that log position.
    pub fn projection(&self) -> (Plan, Seq) {
        let mut state = self.lock();
        let plan = match &state.indexed().tracker {
            Some(tracker) => mapline_plan::project(tracker.current()),
            None => mapline_plan::project(&mapline_plan::RawPlan::default()),
        };
        (plan, state.last_seq)
    }

    /// Writer thread: an empty update needs no storage, but its acknowledgement keeps its place
    /// in the connection's order.
    pub fn acknowledge_noop(&self, origin: ConnId) {
        acknowledge(&mut self.lock(), origin);
        self.end_write();
    }

    /// Writer thread: the commit holding this connection's update failed. The update was never
    /// acknowledged or relayed; closing the connection makes the client resend it on reconnect.
    pub fn reject_unsaved(&self, origin: ConnId) {
        let mut state = self.lock();
        // What was admitted may not be stored now: a resend must not look like an echo.
        state.indexed().admission.forget_in_flight();
        state.in_flight_deletes = DeletedRanges::default();
        if let Some(member) = state.members.get(&origin) {
            member.outbox.close(CloseReason::new(
                CloseCode::ServerError,
                "storage failure: your last changes were not saved; reconnect to resend them",
            ));
        }
        self.end_write();
    }

    /// A snapshot of the document if the log moved past the last one.
    pub fn snapshot_if_behind(&self, now_ms: i64) -> Option<(DocRef, Snapshot)> {
        let mut state = self.lock();
        (state.last_seq > state.snapshot_seq).then(|| self.snapshot_locked(&mut state, now_ms))
    }

    fn snapshot_locked(&self, state: &mut RoomState, now_ms: i64) -> (DocRef, Snapshot) {
        state.snapshot_seq = state.last_seq;
        let bytes = state
            .awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        state.snapshot_bytes = bytes.len();
        state.tail_bytes = 0;
        (
            self.doc,
            Snapshot {
                covers_seq: state.last_seq,
                taken_at_ms: now_ms,
                state: bytes,
            },
        )
    }

    /// Retires the room if nobody is connected, no write is in flight and it has been idle for
    /// `idle_after`. A retired room refuses joins, so no connection can ever attach to a copy
    /// of the plan that is no longer the one in the registry.
    pub fn try_retire(&self, idle_after: Duration, now: Instant) -> bool {
        let mut state = self.lock();
        let idle = state
            .idle_since
            .is_some_and(|since| now.duration_since(since) >= idle_after);
        if state.members.is_empty() && idle && self.pending_writes.load(Ordering::SeqCst) == 0 {
            state.retired = true;
        }
        state.retired
    }
}

fn acknowledge(state: &mut RoomState, origin: ConnId) {
    let RoomState {
        awareness, members, ..
    } = state;
    if let Some(member) = members.get_mut(&origin) {
        member.durable_messages += 1;
        if member.wants_acks {
            let sv = awareness.doc().transact().state_vector();
            member
                .outbox
                .push(protocol::durable_ack(member.durable_messages, &sv));
        }
    }
}

/// Queues a message for every member but `except`; returns how many it was queued for.
fn broadcast(members: &HashMap<ConnId, Member>, except: Option<ConnId>, message: &Bytes) -> u64 {
    let mut sent = 0;
    for (id, member) in members {
        if Some(*id) != except && member.outbox.push(message.clone()) {
            sent += 1;
        }
    }
    sent
}

fn awareness_of_all(awareness: &Awareness) -> Option<Bytes> {
    let update = awareness.update().ok()?;
    (!update.clients.is_empty()).then(|| protocol::awareness(update))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::outbox::{Closer, OutboxLimits, OutboxReceiver};
    use yrs::Map;
    use yrs::updates::decoder::Decode;

    const LIMITS: OutboxLimits = OutboxLimits {
        messages: 64,
        bytes: 1 << 20,
    };

    fn empty_room() -> Room {
        let load = DocumentLoad {
            snapshot: None,
            tail: Vec::new(),
            last_seq: 0,
            derived_through: 0,
            chain_head: mapline_store::GENESIS,
        };
        Room::load(
            DocRef::plan(PlanId::from_u128(1)),
            load,
            Arc::new(Metrics::default()),
            PlanLimits::default(),
        )
        .0
    }

    fn record(raw: &[u8]) -> UpdateRecord {
        UpdateRecord {
            author: mapline_store::Author::Admin,
            client_ids: vec![4],
            received_at_ms: 1_000,
            update: raw.to_vec(),
        }
    }

    /// What the writer does for one committed update.
    fn apply(room: &Room, seq: Seq, update: Update, raw: &[u8], origin: ConnId) -> Applied {
        room.begin_write();
        room.apply_durable(seq, update, &record(raw), origin, 0)
    }

    fn join(room: &Room, conn: ConnId, wants_acks: bool) -> OutboxReceiver {
        let (outbox, receiver) = Outbox::new(LIMITS, Closer::default());
        room.join(conn, outbox, wants_acks).expect("room is live");
        receiver
    }

    fn drain(receiver: &mut OutboxReceiver) -> Vec<Bytes> {
        std::iter::from_fn(|| receiver.try_recv()).collect()
    }

    fn edit() -> (Update, Vec<u8>) {
        let doc = Doc::new();
        doc.get_or_insert_map("meta")
            .insert(&mut doc.transact_mut(), "title", "Plan");
        let raw = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        (Update::decode_v1(&raw).unwrap(), raw)
    }

    #[test]
    fn a_durable_update_is_relayed_to_others_and_acknowledged_to_its_sender_only_if_asked() {
        let room = empty_room();
        let mut sender = join(&room, 1, true);
        let mut other = join(&room, 2, false);
        drain(&mut sender);
        drain(&mut other);
        let (update, raw) = edit();
        let applied = apply(&room, 1, update, &raw, 1);
        assert_eq!(applied.history.unwrap().changes.len(), 1);
        let to_sender = drain(&mut sender);
        let to_other = drain(&mut other);
        assert_eq!(to_other, vec![protocol::update(&raw)]);
        assert_eq!(to_sender.len(), 1);
        assert_eq!(to_sender[0][0], protocol::MSG_DURABLE);
    }

    #[test]
    fn a_room_with_a_write_in_flight_or_a_member_is_never_retired() {
        let room = empty_room();
        let _member = join(&room, 1, false);
        assert!(!room.try_retire(Duration::ZERO, Instant::now()));
        let _ = room.leave(1);
        room.begin_write();
        assert!(
            !room.try_retire(Duration::ZERO, Instant::now()),
            "write in flight"
        );
        room.acknowledge_noop(1);
        assert!(room.try_retire(Duration::ZERO, Instant::now()));
        let (outbox, _receiver) = Outbox::new(LIMITS, Closer::default());
        assert!(
            room.join(2, outbox, false).is_err(),
            "a retired room refuses joins"
        );
    }

    #[test]
    fn a_newcomer_is_sent_the_servers_sync_step_1_on_join() {
        let room = empty_room();
        let (update, raw) = edit();
        apply(&room, 1, update, &raw, 99);
        let mut newcomer = join(&room, 1, false);
        let greeting = drain(&mut newcomer);
        let sv = room.lock().awareness.doc().transact().state_vector();
        assert_eq!(greeting, vec![protocol::sync_step1(sv)]);
    }

    #[test]
    fn snapshots_cover_the_last_applied_position() {
        let room = empty_room();
        assert!(room.snapshot_if_behind(0).is_none());
        let (update, raw) = edit();
        apply(&room, 7, update, &raw, 1);
        let (_, snapshot) = room.snapshot_if_behind(5).expect("behind by one update");
        assert_eq!(snapshot.covers_seq, 7);
        let reloaded = Doc::new();
        reloaded
            .transact_mut()
            .apply_update(Update::decode_v1(&snapshot.state).unwrap())
            .unwrap();
        let title = reloaded
            .get_or_insert_map("meta")
            .get(&reloaded.transact(), "title")
            .map(|v| v.to_string(&reloaded.transact()));
        assert_eq!(title.as_deref(), Some("Plan"));
        assert!(room.snapshot_if_behind(6).is_none(), "nothing new since");
    }

    fn presence(clients: impl IntoIterator<Item = u64>, clock: u32) -> AwarenessUpdate {
        AwarenessUpdate {
            clients: clients
                .into_iter()
                .map(|client| {
                    (
                        yrs::block::ClientID::new(client),
                        yrs::sync::awareness::AwarenessUpdateEntry {
                            clock,
                            json: "{}".into(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn echoes_of_a_crowded_room_never_count_against_the_newcomer() {
        let room = empty_room();
        let mut receivers = Vec::new();
        for conn in 0..20u64 {
            receivers.push(join(&room, conn, false));
            assert_eq!(
                room.relay_awareness(conn, presence([1000 + conn], 1)),
                AwarenessRelay::Changed
            );
        }
        // The newcomer echoes everyone's state back (y-websocket does), then announces its own.
        let _newcomer = join(&room, 99, false);
        assert_eq!(
            room.relay_awareness(99, presence(1000..1020, 1)),
            AwarenessRelay::Unchanged
        );
        assert_eq!(
            room.relay_awareness(99, presence([5000], 1)),
            AwarenessRelay::Changed
        );
        // But one connection announcing seventeen clients of its own is refused.
        assert_eq!(
            room.relay_awareness(99, presence(6000..6016, 1)),
            AwarenessRelay::TooManyClients
        );
    }

    #[test]
    fn a_plan_holding_an_update_that_cannot_integrate_loads_serves_and_refuses_it_again() {
        let doc = Doc::with_client_id(4);
        doc.get_or_insert_map("meta")
            .insert(&mut doc.transact_mut(), "title", "Plan");
        let first = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        // Stored before updates were admitted first: its item's parent is the title string.
        let poisoned =
            mapline_plan::admission::update_with_parent(9, yrs::ID::new(yrs::ClientID::new(4), 0));
        let load = DocumentLoad {
            snapshot: None,
            tail: vec![(1, record(&first)), (2, record(&poisoned))],
            last_seq: 2,
            derived_through: 0,
            chain_head: mapline_store::GENESIS,
        };
        let (room, _) = Room::load(
            DocRef::plan(PlanId::from_u128(1)),
            load,
            Arc::new(Metrics::default()),
            PlanLimits::default(),
        );
        let mut newcomer = join(&room, 1, false);
        drain(&mut newcomer);
        room.answer_sync_step1(1, &StateVector::default());
        let served = drain(&mut newcomer);
        let Ok(protocol::Incoming::Update { update, .. }) = protocol::decode(&served[0]) else {
            panic!("a sync step 2")
        };
        let client = Doc::new();
        client
            .transact_mut()
            .apply_update(update)
            .expect("what the room serves integrates");
        assert_eq!(room.projection().0.meta.title.as_deref(), Some("Plan"));
        assert!(
            matches!(
                room.admit(&poisoned, &Update::decode_v1(&poisoned).unwrap()),
                Err(Refusal::InvalidParent { .. })
            ),
            "a client resending it is refused"
        );
    }

    #[test]
    fn loading_derives_the_history_lost_after_the_stored_position() {
        let (_, first) = edit();
        let doc = Doc::new();
        doc.get_or_insert_map("meta")
            .insert(&mut doc.transact_mut(), "goLive", "2027-04-01");
        let second = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let tail = vec![(1, record(&first)), (2, record(&second))];
        let load = |derived_through| DocumentLoad {
            snapshot: None,
            tail: tail.clone(),
            last_seq: 2,
            derived_through,
            chain_head: mapline_store::GENESIS,
        };
        let metrics = Arc::new(Metrics::default());
        let (_, nothing_missing) = Room::load(
            DocRef::plan(PlanId::from_u128(1)),
            load(2),
            metrics.clone(),
            PlanLimits::default(),
        );
        assert_eq!(nothing_missing.entries, []);
        let (room, caught_up) = Room::load(
            DocRef::plan(PlanId::from_u128(1)),
            load(1),
            metrics,
            PlanLimits::default(),
        );
        assert_eq!(caught_up.through, 2);
        let seqs: Vec<_> = caught_up.entries.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [2]);
        assert_eq!(
            caught_up.entries[0].1.changes[0].field.as_deref(),
            Some("goLive")
        );
        let (plan, seq) = room.projection();
        assert_eq!((plan.meta.title.as_deref(), seq), (Some("Plan"), 2));
    }

    /// A client's edit as its own update.
    fn client_edit(doc: &Doc, edit: impl FnOnce(&mut yrs::TransactionMut)) -> Vec<u8> {
        let mut txn = doc.transact_mut();
        edit(&mut txn);
        txn.encode_update_v1()
    }

    fn sync(from: &Doc, to: &Doc) {
        let sv = to.transact().state_vector();
        let diff = from.transact().encode_state_as_update_v1(&sv);
        to.transact_mut()
            .apply_update(Update::decode_v1(&diff).unwrap())
            .unwrap();
    }

    fn add(txn: &mut yrs::TransactionMut, id: &str) {
        let draft = mapline_plan::edit::MilestoneDraft {
            title: "Step",
            workstream: "legal_procurement",
            side: mapline_plan::model::MilestoneSide::Joint,
            owner: None,
            due: chrono::NaiveDate::from_ymd_opt(2027, 3, 1),
            depends_on: Vec::new(),
            order: None,
        };
        mapline_plan::edit::add_milestone(txn, id, &draft);
    }

    fn due(txn: &mut yrs::TransactionMut, id: &str, day: u32) {
        mapline_plan::edit::move_due(txn, id, chrono::NaiveDate::from_ymd_opt(2027, 3, day), "x")
            .unwrap();
    }

    /// A stored plan (a snapshot with a lost write in it, and a tail) and the updates that
    /// follow: concurrent writes to a stored value, an entry over the limit, a nested edit.
    fn stored_plan_and_later_updates() -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
        let (a, b) = (Doc::with_client_id(11), Doc::with_client_id(12));
        let plan = mapline_plan::NewPlan::parse("P", "Buyer", "Seller", "2027-04-01").unwrap();
        let mut log = vec![mapline_plan::new_plan_update(&plan, 1)];
        a.transact_mut()
            .apply_update(Update::decode_v1(&log[0]).unwrap())
            .unwrap();
        log.push(client_edit(&a, |txn| add(txn, "ms-1")));
        sync(&a, &b);
        log.push(client_edit(&a, |txn| due(txn, "ms-1", 2)));
        log.push(client_edit(&b, |txn| due(txn, "ms-1", 3)));
        let server = Doc::new();
        for raw in &log {
            server
                .transact_mut()
                .apply_update(Update::decode_v1(raw).unwrap())
                .unwrap();
        }
        let snapshot = server
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        sync(&b, &a);
        let tail = client_edit(&a, |txn| add(txn, "ms-2"));
        sync(&a, &b);
        let later = vec![
            client_edit(&a, |txn| due(txn, "ms-1", 4)),
            client_edit(&b, |txn| due(txn, "ms-1", 5)),
            client_edit(&b, |txn| due(txn, "ms-2", 6)),
            client_edit(&a, |txn| add(txn, "ms-3")),
        ];
        (snapshot, tail, later)
    }

    /// The snapshot (through log position 4) and the tail (position 5), all derived.
    fn stored(snapshot: &[u8], tail: &[u8]) -> DocumentLoad {
        DocumentLoad {
            snapshot: Some(Snapshot {
                covers_seq: 4,
                taken_at_ms: 0,
                state: snapshot.to_vec(),
            }),
            tail: vec![(5, record(tail))],
            last_seq: 5,
            derived_through: 5,
            chain_head: mapline_store::GENESIS,
        }
    }

    /// What a room makes of the later updates: each one's admission and history.
    fn run_later(room: &Room, later: &[Vec<u8>]) -> Vec<String> {
        let mut seq = 5;
        let mut outcomes = Vec::new();
        for raw in later {
            let update = Update::decode_v1(raw).unwrap();
            match room.admit(raw, &update) {
                Err(refusal) => outcomes.push(format!("refused: {refusal}")),
                Ok(()) => {
                    seq += 1;
                    let applied = room.apply_durable(seq, update, &record(raw), 1, 0);
                    outcomes.push(format!("{:?}", applied.history));
                }
            }
        }
        outcomes.push(format!("{:?}", room.projection()));
        outcomes
    }

    #[test]
    fn a_cold_loaded_rooms_indexes_built_later_equal_those_built_at_load() {
        let limits = PlanLimits {
            entries_per_collection: 2,
            ..PlanLimits::default()
        };
        let open = |load: DocumentLoad| {
            Room::load(
                DocRef::plan(PlanId::from_u128(1)),
                load,
                Arc::new(Metrics::default()),
                limits,
            )
            .0
        };
        // The reference builds both indexes at load, before the document serves anyone: the
        // load that derives a crash's missing history (here, of nothing past the tail) does.
        let (snapshot, tail, later) = stored_plan_and_later_updates();
        let reference = {
            let room = open(stored(&snapshot, &tail));
            let (admission, tracker, _) = {
                let state = room.lock();
                assert!(state.unindexed.is_some(), "a cold load defers its indexes");
                let doc = state.awareness.doc();
                let mut admission = Admission::new(limits, true);
                admission.note_stored(&snapshot);
                admission.note_stored(&tail);
                (admission, HistoryTracker::attach(doc), ())
            };
            {
                let mut state = room.lock();
                state.unindexed = None;
                state.admission = admission;
                state.tracker = Some(tracker);
            }
            run_later(&room, &later)
        };
        assert!(reference[0].contains("Some("), "{reference:?}");
        assert!(
            reference.iter().any(|o| o.contains("Conflict")),
            "a write to a stored value is lost: {reference:?}"
        );
        assert!(
            reference[3].starts_with("refused: milestones would hold 3"),
            "{reference:?}"
        );
        // Built off the lock from a replica, before the first update. A client's echo of what
        // the room holds is told apart without them.
        let room = open(stored(&snapshot, &tail));
        let echo = Update::decode_v1(&tail).unwrap();
        assert!(room.changes_nothing(&echo));
        assert!(room.claim_indexing());
        assert!(!room.claim_indexing(), "claimed once");
        room.build_indexes();
        assert!(room.lock().unindexed.is_none());
        assert_eq!(run_later(&room, &later), reference);
        // Built under the lock by the first update that needs them.
        let room = open(stored(&snapshot, &tail));
        assert_eq!(run_later(&room, &later), reference);
        room.build_indexes();
        assert_eq!(Some(&format!("{:?}", room.projection())), reference.last());
    }
}
