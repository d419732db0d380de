//! Reading the log in stream order from a given sequence, across leader changes.
//!
//! An ordered consumer (ephemeral, pull-based, no acks, one per reader): the client checks
//! that consumer sequences have no gap and recreates the consumer from the last stream
//! sequence it delivered when they do, when heartbeats stop (the consumer's node died), or
//! when the consumer is deleted. A durable pull consumer would survive on its own but needs
//! an ack per message and a name per reader, and its R3 state costs a Raft write per ack; a
//! room only needs "everything after what I have", which it knows itself.
//!
//! When the reader's own connection moves to another engine node (the one it was on died),
//! async-nats would first ask the dead consumer for its state, 5 tries of a 5 s timeout, and
//! stall the reader ≈45 s; so the reader watches the connection count and reopens its
//! consumer at once from where it was. And the reader keeps its own next expected sequence:
//! whatever happens below, it never yields a sequence twice or out of order, and on any error
//! it starts over from there.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::cluster::Cluster;

/// One message of the log.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub stream_seq: u64,
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Yields the log's messages (optionally only those on `filter`) in stream order.
pub struct Reader {
    cluster: Cluster,
    filter: Option<String>,
    next_seq: u64,
    messages: Option<pull::Ordered>,
    connections: tokio::sync::watch::Receiver<u64>,
    failures: u32,
}

impl Cluster {
    /// A reader from stream sequence `from` (1: the beginning) on; `filter` is a subject or
    /// wildcard within the log (`mapline.upd.<plan>`), `None` for all of it.
    pub fn read_from(&self, filter: Option<&str>, from: u64) -> Reader {
        Reader {
            cluster: self.clone(),
            filter: filter.map(str::to_owned),
            next_seq: from.max(1),
            messages: None,
            connections: self.connections.clone(),
            failures: 0,
        }
    }
}

impl Reader {
    /// The sequence the next message will have at least.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next message. Waits while there is none; retries (with a `warn` line) while the
    /// engine cannot serve it, so it only returns a message.
    pub async fn next(&mut self) -> Delivered {
        loop {
            if self.messages.is_none() {
                self.connections.borrow_and_update();
                match self.open().await {
                    Ok(messages) => self.messages = Some(messages),
                    Err(e) => {
                        self.failed(&e).await;
                        continue;
                    }
                }
            }
            let Some(messages) = self.messages.as_mut() else {
                continue;
            };
            let item = tokio::select! {
                item = messages.next() => item,
                Ok(()) = self.connections.changed() => {
                    tracing::info!(
                        stream = %self.cluster.names.stream,
                        next_seq = self.next_seq,
                        "the connection moved to another NATS server; reopening the reader"
                    );
                    self.messages = None;
                    continue;
                }
            };
            match item {
                Some(Ok(message)) => {
                    let seq = match message.info() {
                        Ok(info) => info.stream_sequence,
                        Err(e) => {
                            self.messages = None;
                            self.failed(&e.to_string()).await;
                            continue;
                        }
                    };
                    self.failures = 0;
                    if seq < self.next_seq {
                        continue;
                    }
                    self.next_seq = seq + 1;
                    let message = message.message;
                    return Delivered {
                        stream_seq: seq,
                        subject: message.subject.to_string(),
                        headers: message.headers.unwrap_or_default(),
                        payload: message.payload,
                    };
                }
                Some(Err(e)) => {
                    // The ordered consumer recreates itself after missed heartbeats; anything
                    // it reports: start over from next_seq.
                    if e.kind() != pull::OrderedErrorKind::MissingHeartbeat {
                        self.messages = None;
                    }
                    self.failed(&e.to_string()).await;
                }
                None => {
                    self.messages = None;
                    self.failed("the consumer ended").await;
                }
            }
        }
    }

    // `&mut self`: a `&Reader` held across an await would need `Ordered: Sync`.
    async fn open(&mut self) -> Result<pull::Ordered, String> {
        let stream = self
            .cluster
            .js
            .get_stream(&self.cluster.names.stream)
            .await
            .map_err(|e| e.to_string())?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.filter.clone().unwrap_or_default(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: self.next_seq,
                },
                // Pull requests expire after two heartbeats, and async-nats asks for a
                // heartbeat of half the expiry: see ClusterConfig::read_heartbeat.
                max_expires: self.cluster.config.read_heartbeat * 2,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        consumer.messages().await.map_err(|e| e.to_string())
    }

    async fn failed(&mut self, error: &str) {
        self.failures += 1;
        let pause = Duration::from_millis(100u64 << self.failures.min(4));
        tracing::warn!(
            stream = %self.cluster.names.stream,
            filter = ?self.filter,
            next_seq = self.next_seq,
            error,
            "reading the log failed; resuming from next_seq in {pause:?}"
        );
        tokio::time::sleep(pause).await;
    }
}
