//! What a room holds of each connection: a bounded queue of outgoing messages and a way to close
//! the connection with a reason. A full queue means the client stopped reading: it is closed
//! (it resyncs on reconnect) rather than skipped or allowed to slow the room.

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
    /// 4413: a message larger than `--max-message-bytes`.
    MessageTooLarge,
    /// 4415: a text frame; the protocol is binary.
    TextFrame,
    /// 4422: an update that cannot be decoded.
    BadUpdate,
    /// 4429: the client did not read fast enough and its send buffer filled.
    SlowConsumer,
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
            CloseCode::MessageTooLarge => 4413,
            CloseCode::TextFrame => 4415,
            CloseCode::BadUpdate => 4422,
            CloseCode::SlowConsumer => 4429,
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

/// The sending side of one connection, as rooms see it.
#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::Sender<Bytes>,
    closer: Closer,
}

impl Outbox {
    /// An outbox and the receiver the connection task drains, holding at most `capacity`
    /// messages.
    pub fn new(capacity: usize, closer: Closer) -> (Self, mpsc::Receiver<Bytes>) {
        let (queue, receiver) = mpsc::channel(capacity);
        (Self { queue, closer }, receiver)
    }

    /// Queues a message without waiting. Returns false if it was not queued: the connection is
    /// gone, or its queue is full, in which case the connection is told to close.
    pub fn push(&self, message: Bytes) -> bool {
        match self.queue.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.closer.close(CloseReason::new(
                    CloseCode::SlowConsumer,
                    "send buffer full: the client is not reading; reconnect to resync",
                ));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
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
        let (outbox, _receiver) = Outbox::new(2, closer.clone());
        assert!(outbox.push(Bytes::from_static(b"1")));
        assert!(outbox.push(Bytes::from_static(b"2")));
        assert!(!outbox.push(Bytes::from_static(b"3")));
        assert_eq!(closer.requested().await.code, CloseCode::SlowConsumer);
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let reason = CloseReason::new(CloseCode::BadUpdate, "é".repeat(100));
        assert!(reason.reason.len() <= 123);
    }
}
