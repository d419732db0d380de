//! The registry of rooms in memory. A plan is loaded at most once at a time: concurrent openers
//! of an unloaded plan wait on the same load (two copies of one plan would silently split its
//! editors), and idle rooms are retired so memory follows the active plans.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mapline_plan::admission::PlanLimits;
use mapline_store::{DocRef, PlanId, Store, StoreError};
use tokio::sync::OnceCell;

use crate::metrics::Metrics;
use crate::room::Room;

/// Why a room could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenRoomError {
    #[error("plan {0} does not exist")]
    NoSuchPlan(PlanId),
    #[error("loading the plan failed: {0}")]
    Store(#[from] StoreError),
    #[error("loading the plan was interrupted")]
    Interrupted,
}

type Slot = Arc<OnceCell<Arc<Room>>>;

/// The rooms in memory, by plan.
pub struct Rooms {
    slots: Mutex<HashMap<DocRef, Slot>>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    limits: PlanLimits,
}

impl Rooms {
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>, limits: PlanLimits) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            store,
            metrics,
            limits,
        }
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
                    let (room, caught_up) = Room::load(doc, load, metrics, limits);
                    if caught_up.through > stored_through {
                        store.commit_history(&[caught_up])?;
                    }
                    tracing::debug!(plan_id = %plan, tail, micros = started.elapsed().as_micros() as u64, "room loaded");
                    Ok::<_, OpenRoomError>(room)
                })
                .await
                .map_err(|_| OpenRoomError::Interrupted)??;
                self.metrics.room_loads.inc();
                self.metrics.rooms_in_memory.inc();
                Ok::<_, OpenRoomError>(Arc::new(room))
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

    /// Every room in memory.
    pub fn all(&self) -> Vec<Arc<Room>> {
        self.slots()
            .values()
            .filter_map(|slot| slot.get().cloned())
            .collect()
    }
}
