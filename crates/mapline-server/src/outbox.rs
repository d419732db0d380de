//! What a room holds of each connection: a bounded queue of outgoing messages and a way to close
//! the connection with a reason. A full queue means the client stopped reading: it is closed
//! (it resyncs on reconnect) rather than skipped or allowed to slow the room.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
    /// 4413: a message larger than `--max-message-bytes`.
    MessageTooLarge,
    /// 4415: a text frame; the protocol is binary.
    TextFrame,
    /// 4422: an update that cannot be decoded.
    BadUpdate,
    /// 4429: the client did not read fast enough and its send buffer filled.
    SlowConsumer,
    /// 4429 too: the client sent awareness updates faster than any presence needs.
    TooFast,
    /// 4500: the server could not store the client's updates; reconnect to resend them.
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
            CloseCode::MessageTooLarge => 4413,
            CloseCode::TextFrame => 4415,
            CloseCode::BadUpdate => 4422,
            CloseCode::SlowConsumer | CloseCode::TooFast => 4429,
            CloseCode::ServerError => 4500,
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

/// The sending side of one connection, as rooms see it.
#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::Sender<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    closer: Closer,
}

/// The receiving side, drained by the connection task onto the socket.
pub struct OutboxReceiver {
    queue: mpsc::Receiver<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
}

impl OutboxReceiver {
    /// The next message to send; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let message = self.queue.recv().await?;
        self.queued_bytes
            .fetch_sub(message.len(), Ordering::Relaxed);
        Some(message)
    }
}

impl OutboxReceiver {
    /// The next queued message without waiting, if any.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let message = self.queue.try_recv().ok()?;
        self.queued_bytes
            .fetch_sub(message.len(), Ordering::Relaxed);
        Some(message)
    }
}

impl Outbox {
    /// An outbox and the receiver the connection task drains.
    pub fn new(limits: OutboxLimits, closer: Closer) -> (Self, OutboxReceiver) {
        let (queue, receiver) = mpsc::channel(limits.messages);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let outbox = Self {
            queue,
            queued_bytes: queued_bytes.clone(),
            max_bytes: limits.bytes,
            closer,
        };
        let receiver = OutboxReceiver {
            queue: receiver,
            queued_bytes,
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

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let reason = CloseReason::new(CloseCode::BadUpdate, "é".repeat(100));
        assert!(reason.reason.len() <= 123);
    }
}
