//! Entry points for the fuzz targets in `fuzz/`: a connection's message handling as the server
//! does it, without sockets, threads or disk; also used by the fuzz regression tests.

use std::sync::Arc;

use bytes::Bytes;
use mapline_store::{Author, DocRef, DocumentLoad, GENESIS, PlanId, UpdateRecord};

use crate::metrics::Metrics;
use crate::sync::outbox::{Closer, Outbox, OutboxLimits, OutboxReceiver};
use crate::sync::protocol::{self, Incoming};
use crate::sync::room::Room;

/// What a room did with one connection's frames.
#[derive(Debug, Default)]
pub struct Exchange {
    /// Messages sent to the connection that sent the frames.
    pub replies: Vec<Bytes>,
    /// Messages relayed to a second, silent connection of the same plan.
    pub relayed: Vec<Bytes>,
    /// The close code, if a frame made the server close the connection.
    pub closed: Option<u16>,
    /// Updates stored.
    pub stored: u64,
}

fn drain(receiver: &mut OutboxReceiver) -> Vec<Bytes> {
    std::iter::from_fn(|| receiver.try_recv()).collect()
}

/// Feeds frames to a fresh plan's room from one writable connection that asked for
/// acknowledgements, each update made durable at once (as the writer does after its commit),
/// until the first frame the server would close the connection for. A second connection
/// listens. Also projects the plan at the end (the projection must be total).
pub fn exchange(frames: &[Vec<u8>]) -> Exchange {
    let load = DocumentLoad {
        snapshot: None,
        tail: Vec::new(),
        last_seq: 0,
        derived_through: 0,
        chain_head: GENESIS,
    };
    let (room, _) = Room::load(
        DocRef::plan(PlanId::nil()),
        load,
        Arc::new(Metrics::default()),
        mapline_plan::admission::PlanLimits::default(),
    );
    let limits = OutboxLimits {
        messages: 1 << 20,
        bytes: 1 << 30,
    };
    let (sender, mut replies) = Outbox::new(limits, Closer::default());
    let (listener, mut relayed) = Outbox::new(limits, Closer::default());
    let mut exchange = Exchange::default();
    if room.join(1, sender, true).is_err() || room.join(2, listener, false).is_err() {
        return exchange;
    }
    for frame in frames {
        match protocol::decode(&Bytes::copy_from_slice(frame)) {
            Ok(Incoming::SyncStep1(sv)) => room.answer_sync_step1(1, &sv),
            Ok(Incoming::Update { update, raw }) => {
                if !update.is_empty()
                    && let Err(refusal) = room.admit(&raw, &update)
                {
                    exchange.closed = Some(crate::sync::conn::refusal_code(&refusal).code());
                    break;
                }
                if update.is_empty() {
                    room.begin_write();
                }
                if update.is_empty() {
                    room.acknowledge_noop(1);
                } else {
                    exchange.stored += 1;
                    let record = UpdateRecord {
                        author: Author::Admin,
                        client_ids: protocol::client_ids(&update),
                        received_at_ms: 0,
                        update: raw.to_vec(),
                    };
                    room.apply_durable(exchange.stored, update, &record, 1, 0);
                }
            }
            Ok(Incoming::Awareness(update)) => {
                room.relay_awareness(1, update);
            }
            Ok(Incoming::AwarenessQuery) => room.answer_awareness_query(1),
            Ok(Incoming::Auth) => {}
            Err(error) => {
                exchange.closed = Some(crate::sync::conn::close_code(&error).code());
                break;
            }
        }
    }
    let _ = room.projection();
    let _ = room.leave(1);
    exchange.replies = drain(&mut replies);
    exchange.relayed = drain(&mut relayed);
    exchange
}
