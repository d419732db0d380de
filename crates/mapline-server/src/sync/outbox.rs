//! What a room holds of each connection: a bounded queue of outgoing messages and a way to close
//! the connection with a reason. A full queue means the client stopped reading: it is closed
//! with a code the stock y-websocket client reconnects on (it resyncs), rather than skipped or
//! allowed to slow the room.
//!
//! Awareness (presence) does not go through the queue: each connection keeps only the latest
//! state per awareness client not yet sent, flushed at most every [`AWARENESS_FLUSH_EVERY`].
//! So a burst of presence from one client can never fill a healthy reader's queue, and what a
//! room relays to each reader per second is bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use yrs::block::ClientID;
use yrs::sync::AwarenessUpdate;
use yrs::sync::awareness::AwarenessUpdateEntry;

use crate::sync::protocol;

/// Shortest time between two awareness messages to one connection: presence needs no more than
/// 20 a second, and what arrives meanwhile is merged (latest state per client).
pub const AWARENESS_FLUSH_EVERY: Duration = Duration::from_millis(50);

/// WebSocket close codes the server uses (documented in docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1000: the client closed, or the server is done with it normally.
    Normal,
    /// 1001: the server is shutting down; reconnect later.
    GoingAway,
    /// 4400: a message that is not a y-websocket message.
    MalformedMessage,
    /// 4401: the share link was revoked (or expired) while the connection was open.
    AccessRevoked,
    /// 4413: a message larger than `--max-message-bytes`, or an awareness state over its limit.
    MessageTooLarge,
    /// 4413 too: an update that would take the plan over one of its limits.
    OverLimit,
    /// 4415: a text frame; the protocol is binary.
    TextFrame,
    /// 4422: an update that cannot be decoded.
    BadUpdate,
    /// 4503: the client did not read fast enough and its send buffer filled. Not 44xx: the
    /// stock y-websocket client gives up on those, and a reader that was only slow should come
    /// back and resync by itself.
    SlowConsumer,
    /// 4429: the client sent awareness updates faster than any presence needs (by count or
    /// bytes). Retrying the same flood cannot help, so 44xx.
    TooFast,
    /// 4500: the server could not store the client's updates (or load the plan); reconnect to
    /// resend them.
    ServerError,
}

impl CloseCode {
    /// The numeric code sent in the close frame.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::MalformedMessage => 4400,
            CloseCode::AccessRevoked => 4401,
            CloseCode::MessageTooLarge | CloseCode::OverLimit => 4413,
            CloseCode::TextFrame => 4415,
            CloseCode::BadUpdate => 4422,
            CloseCode::TooFast => 4429,
            CloseCode::ServerError => 4500,
            CloseCode::SlowConsumer => 4503,
        }
    }
}

/// A close decision: the code and a human-readable reason (at most 123 bytes on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: CloseCode,
    pub reason: String,
}

impl CloseReason {
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        // A close frame's reason is limited to 123 bytes; cut on a character boundary.
        while reason.len() > 123 {
            reason.pop();
        }
        Self { code, reason }
    }
}

/// Asks a connection task to close, from anywhere (a room, the writer thread).
#[derive(Clone, Default)]
pub struct Closer {
    reason: Arc<OnceLock<CloseReason>>,
    token: CancellationToken,
}

impl Closer {
    /// Requests the close; the first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Resolves once a close was requested, with its reason.
    pub async fn requested(&self) -> CloseReason {
        self.token.cancelled().await;
        self.reason
            .get()
            .cloned()
            .unwrap_or_else(|| CloseReason::new(CloseCode::ServerError, "closed"))
    }
}

/// Limits of one connection's queue of outgoing messages.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    pub messages: usize,
    pub bytes: usize,
}

/// Awareness states waiting for one connection: the latest per awareness client.
#[derive(Default)]
struct PendingAwareness {
    states: Mutex<HashMap<ClientID, AwarenessUpdateEntry>>,
    ready: Notify,
}

impl PendingAwareness {
    fn any(&self) -> bool {
        !self
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn take(&self) -> Option<Bytes> {
        let states =
            std::mem::take(&mut *self.states.lock().unwrap_or_else(PoisonError::into_inner));
        (!states.is_empty()).then(|| protocol::awareness(AwarenessUpdate { clients: states }))
    }
}

/// The sending side of one connection, as rooms see it.
#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::Sender<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    closer: Closer,
    awareness: Arc<PendingAwareness>,
}

/// The receiving side, drained by the connection task onto the socket.
pub struct OutboxReceiver {
    queue: mpsc::Receiver<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    awareness: Arc<PendingAwareness>,
    last_awareness: Option<tokio::time::Instant>,
}

impl OutboxReceiver {
    /// The next message to send: queued messages in order, and the merged awareness states at
    /// most every [`AWARENESS_FLUSH_EVERY`]. `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            let pending = self.awareness.clone();
            let last = self.last_awareness;
            let awareness_due = async move {
                // Checked before waiting, so states pushed while a queued message was being
                // sent are not left behind until the next push.
                while !pending.any() {
                    pending.ready.notified().await;
                }
                if let Some(last) = last {
                    tokio::time::sleep_until(last + AWARENESS_FLUSH_EVERY).await;
                }
            };
            tokio::select! {
                biased;
                message = self.queue.recv() => {
                    let message = message?;
                    self.queued_bytes.fetch_sub(message.len(), Ordering::Relaxed);
                    return Some(message);
                }
                () = awareness_due => {
                    if let Some(message) = self.awareness.take() {
                        self.last_awareness = Some(tokio::time::Instant::now());
                        return Some(message);
                    }
                }
            }
        }
    }

    /// The next message without waiting, if any (queued first, then merged awareness).
    pub fn try_recv(&mut self) -> Option<Bytes> {
        match self.queue.try_recv() {
            Ok(message) => {
                self.queued_bytes
                    .fetch_sub(message.len(), Ordering::Relaxed);
                Some(message)
            }
            Err(_) => self.awareness.take(),
        }
    }
}

impl Outbox {
    /// An outbox and the receiver the connection task drains.
    pub fn new(limits: OutboxLimits, closer: Closer) -> (Self, OutboxReceiver) {
        let (queue, receiver) = mpsc::channel(limits.messages);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let awareness = Arc::new(PendingAwareness::default());
        let outbox = Self {
            queue,
            queued_bytes: queued_bytes.clone(),
            max_bytes: limits.bytes,
            closer,
            awareness: awareness.clone(),
        };
        let receiver = OutboxReceiver {
            queue: receiver,
            queued_bytes,
            awareness,
            last_awareness: None,
        };
        (outbox, receiver)
    }

    /// Queues a message without waiting. Returns false if it was not queued: the connection is
    /// gone, or its queue is full (by count or bytes), in which case it is told to close.
    pub fn push(&self, message: Bytes) -> bool {
        let size = message.len();
        let before = self.queued_bytes.fetch_add(size, Ordering::Relaxed);
        // The limit is on what piles up: one message, however large (a newcomer's sync step 2
        // of a big plan), always fits into an empty queue.
        let result = if before > 0 && before + size > self.max_bytes {
            Err(mpsc::error::TrySendError::Full(message))
        } else {
            self.queue.try_send(message)
        };
        match result {
            Ok(()) => true,
            Err(error) => {
                self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                if let mpsc::error::TrySendError::Full(_) = error {
                    self.closer.close(CloseReason::new(
                        CloseCode::SlowConsumer,
                        "send buffer full: the client is not reading; reconnect to resync",
                    ));
                }
                false
            }
        }
    }

    /// Merges awareness states into what waits for this connection: per awareness client only
    /// the newest state (by clock; a removal wins a tie, as in y-protocols) is kept.
    pub fn push_awareness(&self, update: &AwarenessUpdate) {
        {
            let mut states = self
                .awareness
                .states
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (client, entry) in &update.clients {
                let newer = states.get(client).is_none_or(|known| {
                    entry.clock > known.clock
                        || (entry.clock == known.clock && entry.json.as_ref() == "null")
                });
                if newer {
                    states.insert(*client, entry.clone());
                }
            }
        }
        self.awareness.ready.notify_one();
    }

    /// Closes the connection with a reason.
    pub fn close(&self, reason: CloseReason) {
        self.closer.close(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_closes_the_connection_as_slow() {
        let closer = Closer::default();
        let limits = OutboxLimits {
            messages: 2,
            bytes: 100,
        };
        let (outbox, _receiver) = Outbox::new(limits, closer.clone());
        assert!(outbox.push(Bytes::from_static(b"1")));
        assert!(outbox.push(Bytes::from_static(b"2")));
        assert!(!outbox.push(Bytes::from_static(b"3")));
        assert_eq!(closer.requested().await.code, CloseCode::SlowConsumer);
    }

    #[tokio::test]
    async fn queued_bytes_are_bounded_and_released_when_sent() {
        let closer = Closer::default();
        let limits = OutboxLimits {
            messages: 10,
            bytes: 10,
        };
        let (outbox, mut receiver) = Outbox::new(limits, closer.clone());
        assert!(outbox.push(Bytes::from_static(b"123456")));
        assert_eq!(receiver.recv().await.as_deref(), Some(&b"123456"[..]));
        assert!(
            outbox.push(Bytes::from_static(b"123456")),
            "sent bytes no longer count"
        );
        assert!(
            !outbox.push(Bytes::from_static(b"123456")),
            "12 queued bytes exceed 10"
        );
        assert_eq!(closer.requested().await.code, CloseCode::SlowConsumer);
    }

    fn presence(clock: u32, json: &str) -> AwarenessUpdate {
        AwarenessUpdate {
            clients: HashMap::from([(
                ClientID::new(7),
                AwarenessUpdateEntry {
                    clock,
                    json: json.into(),
                },
            )]),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn awareness_bursts_are_merged_and_never_fill_the_queue() {
        let closer = Closer::default();
        let limits = OutboxLimits {
            messages: 2,
            bytes: 100,
        };
        let (outbox, mut receiver) = Outbox::new(limits, closer.clone());
        for clock in 1..=1000 {
            outbox.push_awareness(&presence(clock, &format!("{{\"n\":{clock}}}")));
        }
        let first = receiver.recv().await.expect("merged awareness");
        let expected = protocol::awareness(presence(1000, "{\"n\":1000}"));
        assert_eq!(first, expected, "only the latest state is sent");
        assert!(receiver.try_recv().is_none());
        // An older state never replaces a newer one; a removal at the same clock does.
        outbox.push_awareness(&presence(1001, "{}"));
        outbox.push_awareness(&presence(999, "{\"stale\":true}"));
        outbox.push_awareness(&presence(1001, "null"));
        assert_eq!(
            receiver.recv().await,
            Some(protocol::awareness(presence(1001, "null")))
        );
        assert!(
            outbox.push(Bytes::from_static(b"update")),
            "queue untouched"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn awareness_is_flushed_at_most_every_interval_while_updates_pass() {
        let (outbox, mut receiver) = Outbox::new(
            OutboxLimits {
                messages: 8,
                bytes: 1000,
            },
            Closer::default(),
        );
        outbox.push_awareness(&presence(1, "{}"));
        let start = tokio::time::Instant::now();
        assert!(receiver.recv().await.is_some());
        outbox.push_awareness(&presence(2, "{}"));
        assert!(outbox.push(Bytes::from_static(b"update")));
        assert_eq!(receiver.recv().await.as_deref(), Some(&b"update"[..]));
        assert!(receiver.recv().await.is_some());
        assert!(
            start.elapsed() >= AWARENESS_FLUSH_EVERY,
            "second flush waited"
        );
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let reason = CloseReason::new(CloseCode::BadUpdate, "é".repeat(100));
        assert!(reason.reason.len() <= 123);
    }
}
