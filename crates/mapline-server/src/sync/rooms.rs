//! The registry of rooms in memory. A plan is loaded at most once at a time: concurrent openers
//! of an unloaded plan wait on the same load (two copies of one plan would silently split its
//! editors), and idle rooms are retired so memory follows the active plans.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mapline_plan::admission::PlanLimits;
use mapline_store::{Author, DocKind, DocRef, PlanId, Store, StoreError, UpdateRecord};
use tokio::sync::OnceCell;
use yrs::Update;
use yrs::updates::decoder::Decode;

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::sync::room::Room;
use crate::sync::writer::{WriteRequest, WriterHandle};

/// Why a room could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenRoomError {
    #[error("plan {0} does not exist")]
    NoSuchPlan(PlanId),
    #[error("loading the plan failed: {0}")]
    Store(#[from] StoreError),
    #[error("loading the plan was interrupted")]
    Interrupted,
    #[error("migrating the plan to the current schema failed: {0}")]
    Migration(String),
}

type Slot = Arc<OnceCell<Arc<Room>>>;

/// Builds a cold-loaded room's indexes on a blocking thread, the first time it is called for
/// the room (after its first client was answered: the first sync needs only the document).
/// An update or a projection that comes first builds them itself (see `Room::build_indexes`).
pub fn index_in_background(room: &Arc<Room>) {
    if !room.claim_indexing() {
        return;
    }
    let room = room.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        room.build_indexes();
        tracing::debug!(plan_id = %room.plan_id(), micros = started.elapsed().as_micros() as u64, "room indexed");
    });
}

/// The rooms in memory, by plan.
pub struct Rooms {
    slots: Mutex<HashMap<DocRef, Slot>>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    limits: PlanLimits,
    /// Where schema migrations are written; without it (tools, tests) documents load as stored.
    writer: std::sync::OnceLock<WriterHandle>,
}

impl Rooms {
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>, limits: PlanLimits) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            store,
            metrics,
            limits,
            writer: std::sync::OnceLock::new(),
        }
    }

    /// Migrates documents of an older schema as they load, through `writer` (started after the
    /// rooms: a replica's writer feeds them); the first writer set stays.
    pub fn set_writer(&self, writer: WriterHandle) {
        let _ = self.writer.set(writer);
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<DocRef, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The document's room, loading it from snapshot + log tail if it is not in memory.
    pub async fn open(&self, doc: DocRef) -> Result<Arc<Room>, OpenRoomError> {
        let plan = doc.plan;
        let slot = self.slots().entry(doc).or_default().clone();
        let room = slot
            .get_or_try_init(|| async {
                let store = self.store.clone();
                let metrics = self.metrics.clone();
                let limits = self.limits;
                let room = tokio::task::spawn_blocking(move || {
                    let load = store
                        .load_document(doc)?
                        .ok_or(OpenRoomError::NoSuchPlan(plan))?;
                    let tail = load.tail.len();
                    let stored_through = load.derived_through;
                    let started = Instant::now();
                    let (room, mut caught_up) = Room::load(doc, load, metrics, limits);
                    if caught_up.through > stored_through {
                        crate::history::summaries::summarize_pending(
                            &store,
                            || room.projection().0,
                            &mut caught_up,
                        );
                        store.commit_history(&[caught_up])?;
                    }
                    tracing::debug!(plan_id = %plan, tail, micros = started.elapsed().as_micros() as u64, "room loaded");
                    Ok::<_, OpenRoomError>(room)
                })
                .await
                .map_err(|_| OpenRoomError::Interrupted)??;
                self.metrics.room_loads.inc();
                self.metrics.rooms_in_memory.inc();
                let room = Arc::new(room);
                if doc.kind == DocKind::Plan {
                    self.migrate(&room).await?;
                }
                Ok::<_, OpenRoomError>(room)
            })
            .await;
        match room {
            Ok(room) => Ok(room.clone()),
            Err(error) => {
                // Leave no empty slot behind for a plan that failed to load.
                let mut slots = self.slots();
                if slots.get(&doc).is_some_and(|s| s.get().is_none()) {
                    slots.remove(&doc);
                }
                Err(error)
            }
        }
    }

    /// Upgrades a plan loaded in an older schema before anyone is served from it: its migration
    /// (both documents) is stored in one transaction and applied like any update, so its
    /// history entry is derived and stored as usual. Until that is durable the room is not
    /// handed out; a failure fails this load and the next open tries again.
    async fn migrate(&self, room: &Arc<Room>) -> Result<(), OpenRoomError> {
        let Some(writer) = self.writer.get() else {
            return Ok(());
        };
        let (outdated, _) = room.read(|txn| mapline_plan::migrate::needs_migration(txn));
        if !outdated {
            return Ok(());
        }
        let plan = room.plan_id();
        let internal = Box::pin(self.open(DocRef {
            plan,
            kind: DocKind::Internal,
        }))
        .await?;
        let Some(migration) = room.migration(&internal) else {
            return Ok(());
        };
        // Both decode (the server wrote them) before either is counted in flight, so no error
        // path leaves a room with a write it never ends.
        let mut decoded = Vec::new();
        for (target, raw) in [
            (&internal, migration.internal),
            (room, Some(migration.plan)),
        ] {
            let Some(raw) = raw else { continue };
            let update =
                Update::decode_v1(&raw).map_err(|e| OpenRoomError::Migration(e.to_string()))?;
            decoded.push((target, raw, update));
        }
        let mut updates = Vec::new();
        for (target, raw, update) in decoded {
            // Not checked against the plan's limits: a plan over a limit lowered since must
            // still open.
            target.admit_trusted(&raw);
            let record = UpdateRecord {
                author: Author::System,
                client_ids: vec![mapline_plan::migrate::MIGRATION_CLIENT],
                received_at_ms: now_ms(),
                update: raw,
            };
            updates.push((target.clone(), record, update));
        }
        let (done, durable) = tokio::sync::oneshot::channel();
        let rooms: Vec<Arc<Room>> = updates.iter().map(|(room, _, _)| room.clone()).collect();
        if writer
            .send(WriteRequest::Together { updates, done })
            .await
            .is_err()
        {
            // The writer has stopped (shutting down): nothing was stored or counted as applied.
            for room in rooms {
                room.reject_unsaved(crate::sync::writer::SERVER_ORIGIN);
            }
            return Err(OpenRoomError::Interrupted);
        }
        if durable.await != Ok(true) {
            return Err(OpenRoomError::Migration("storing it failed".into()));
        }
        tracing::info!(plan_id = %plan, to = mapline_plan::schema::SCHEMA_VERSION, "plan document migrated");
        Ok(())
    }

    /// Retires rooms idle for `idle_after` and returns them (their last snapshot is due).
    pub fn retire_idle(&self, idle_after: Duration) -> Vec<Arc<Room>> {
        let now = Instant::now();
        let mut retired = Vec::new();
        self.slots().retain(|_, slot| match slot.get() {
            Some(room) if room.try_retire(idle_after, now) => {
                retired.push(room.clone());
                false
            }
            _ => true,
        });
        self.metrics.rooms_in_memory.dec_by(retired.len() as i64);
        retired
    }

    /// The document's room if it is in memory (never loads it).
    pub fn loaded(&self, doc: DocRef) -> Option<Arc<Room>> {
        self.slots().get(&doc).and_then(|slot| slot.get().cloned())
    }

    /// Whether the document's room is being loaded right now (not in memory yet).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))] // used by a cluster's node
    pub fn is_loading(&self, doc: DocRef) -> bool {
        self.slots()
            .get(&doc)
            .is_some_and(|slot| slot.get().is_none())
    }

    /// Every room in memory.
    pub fn all(&self) -> Vec<Arc<Room>> {
        self.slots()
            .values()
            .filter_map(|slot| slot.get().cloned())
            .collect()
    }
}
