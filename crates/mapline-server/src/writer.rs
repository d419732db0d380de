//! The group-commit writer: one thread owns every write of updates to the store. It takes all
//! requests waiting in its queue (from every room), commits them in one redb transaction (one
//! fsync), and only then applies them to their rooms, which relay and acknowledge them. This is
//! what makes "no update is seen by anyone before it is durable" hold at low latency.

use std::sync::Arc;
use std::time::Instant;

use mapline_store::{NewUpdate, PlanId, Snapshot, Store, UpdateRecord};
use tokio::sync::mpsc;
use yrs::Update;

use crate::metrics::Metrics;
use crate::room::{ConnId, Room};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 4096;
/// Requests that may wait for the writer before senders wait (back-pressure on clients).
const QUEUE: usize = 16_384;

/// A request to the writer.
pub enum WriteRequest {
    /// Store an update, then apply it to its room.
    Update {
        room: Arc<Room>,
        origin: ConnId,
        record: UpdateRecord,
        update: Update,
    },
    /// An empty update: nothing to store, but it is acknowledged in order.
    Noop { room: Arc<Room>, origin: ConnId },
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
    /// Queues a request, waiting if the writer is far behind.
    pub async fn send(&self, request: WriteRequest) -> Result<(), WriterStopped> {
        self.queue.send(request).await.map_err(|_| WriterStopped)
    }
}

/// Starts the writer thread.
pub fn spawn(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (queue, requests) = mpsc::channel(QUEUE);
    let thread = std::thread::Builder::new()
        .name("mapline-writer".into())
        .spawn(move || run(requests, &store, &metrics))?;
    Ok((WriterHandle { queue }, thread))
}

/// Milliseconds since the Unix epoch, by the server's clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

enum Followup {
    Apply {
        room: Arc<Room>,
        origin: ConnId,
        update: Update,
    },
    Noop {
        room: Arc<Room>,
        origin: ConnId,
    },
}

fn run(mut requests: mpsc::Receiver<WriteRequest>, store: &Store, metrics: &Metrics) {
    let mut snapshots: Vec<(PlanId, Snapshot)> = Vec::new();
    let mut stopping = false;
    while !stopping {
        let Some(first) = requests.blocking_recv() else {
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
                } => {
                    updates.push(NewUpdate {
                        plan_id: room.plan_id(),
                        record,
                    });
                    followups.push(Followup::Apply {
                        room,
                        origin,
                        update,
                    });
                }
                WriteRequest::Noop { room, origin } => {
                    followups.push(Followup::Noop { room, origin })
                }
                WriteRequest::Snapshot { room } => {
                    snapshots.extend(room.snapshot_if_behind(now_ms()))
                }
                WriteRequest::Stop => stopping = true,
            }
            if !stopping && followups.len() < MAX_BATCH {
                next = requests.try_recv().ok();
            }
        }
        commit(store, metrics, updates, followups, &mut snapshots);
    }
    tracing::info!("writer stopped");
}

fn commit(
    store: &Store,
    metrics: &Metrics,
    updates: Vec<NewUpdate>,
    followups: Vec<Followup>,
    snapshots: &mut Vec<(PlanId, Snapshot)>,
) {
    if updates.is_empty() && snapshots.is_empty() {
        for followup in followups {
            if let Followup::Noop { room, origin } = followup {
                room.acknowledge_noop(origin);
            }
        }
        return;
    }
    let started = Instant::now();
    let result = store.commit_batch(&updates, snapshots);
    metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    let raws = updates.into_iter().map(|u| u.record.update);
    match result {
        Ok(seqs) => {
            metrics.commit_batch_size.observe(seqs.len() as f64);
            metrics.updates_persisted.inc_by(seqs.len() as u64);
            snapshots.clear();
            let mut durable = seqs.into_iter().zip(raws);
            let now = now_ms();
            for followup in followups {
                match followup {
                    Followup::Apply {
                        room,
                        origin,
                        update,
                    } => {
                        // Every Apply has exactly one stored update, in the same order.
                        let Some((seq, raw)) = durable.next() else {
                            break;
                        };
                        snapshots.extend(room.apply_durable(seq, update, &raw, origin, now));
                    }
                    Followup::Noop { room, origin } => room.acknowledge_noop(origin),
                }
            }
        }
        Err(error) => {
            metrics.commit_failures.inc();
            tracing::error!(%error, updates = followups.len(), "commit failed; senders are told to resend");
            // Snapshots stay queued and are retried with the next commit.
            for followup in followups {
                match followup {
                    Followup::Apply { room, origin, .. } => room.reject_unsaved(origin),
                    Followup::Noop { room, origin } => room.acknowledge_noop(origin),
                }
            }
        }
    }
}
