//! One y-websocket client with a real yrs document: a task of its own on the generator's
//! runtime (a few threads drive thousands of them).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};
use yrs::types::EntryChange;
use yrs::{Any, Doc, MapRef, Observable, Out, Transact};

use crate::protocol::{self, Received};
use crate::stats;

/// Microseconds since the generator started: the clock every timestamp is written in.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

pub struct Client {
    pub doc: Doc,
    /// When the last message was read off the socket ([`now_us`]), before it was applied.
    pub last_arrival_us: u64,
    /// Update messages (sync step 2 or update) sent: what a `durable` count counts.
    pub updates_sent: u64,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects and syncs (sends step 1, answers the server's, waits for its step 2).
    pub async fn connect(url: &str) -> Result<Client> {
        // tungstenite zero-fills its read buffer up to this size on every read (128 KiB by
        // default: a sixth of the generator's CPU in a profile); messages here are small, and
        // the buffer still grows for a large one (a cold load's sync step 2).
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = connect_async_with_config(url, Some(config), true)
            .await
            .with_context(|| format!("connecting to {}", url.split('?').next().unwrap_or("")))?;
        let mut client = Client {
            doc: Doc::new(),
            last_arrival_us: 0,
            updates_sent: 0,
            ws,
        };
        client.send(protocol::step1(&client.doc)).await?;
        while client.recv().await? != Received::Synced {}
        Ok(client)
    }

    /// [`Client::connect`], retried every 50 ms until `deadline` (the last error then).
    pub async fn connect_until(url: &str, deadline: Instant) -> Result<Client> {
        loop {
            match Client::connect(url).await {
                Ok(client) => return Ok(client),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(e) => tracing::debug!("connect retried: {e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.ws.send(WsMessage::binary(bytes)).await?;
        Ok(())
    }

    /// Reads the next message into the document (answering a sync step 1).
    pub async fn recv(&mut self) -> Result<Received> {
        loop {
            let frame = self
                .ws
                .next()
                .await
                .context("the server closed the socket")??;
            self.last_arrival_us = now_us();
            match frame {
                WsMessage::Binary(bytes) => {
                    let received = protocol::handle(&self.doc, &bytes)?;
                    if let Received::Step1 { reply } = &received {
                        self.send(reply.clone()).await?;
                        self.updates_sent += 1;
                    }
                    return Ok(received);
                }
                WsMessage::Close(frame) => bail!("the server closed the socket: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Reads until `done` holds of the document, or fails at `deadline`.
    pub async fn recv_until(
        &mut self,
        deadline: Instant,
        done: impl Fn(&Doc) -> bool,
    ) -> Result<()> {
        while !done(&self.doc) {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::timeout(left, self.recv())
                .await
                .context("deadline passed")??;
        }
        Ok(())
    }

    /// Makes a change in one transaction and sends it as an update message.
    /// Take root types (`get_or_insert_map`) before: that opens a transaction of its own.
    pub async fn change(&mut self, f: impl FnOnce(&mut yrs::TransactionMut)) -> Result<()> {
        let update = {
            let mut txn = self.doc.transact_mut();
            f(&mut txn);
            txn.encode_update_v1()
        };
        self.send(protocol::update(update)).await?;
        self.updates_sent += 1;
        Ok(())
    }

    /// Whether the server still has the socket open, read without waiting: whatever has
    /// arrived is taken off the socket (and dropped: a held client keeps no document current);
    /// a close frame, an error or the end of the stream means closed.
    pub fn is_open(&mut self) -> bool {
        loop {
            match self.ws.next().now_or_never() {
                None => return true,
                Some(Some(Ok(WsMessage::Close(_)))) | Some(Some(Err(_))) | Some(None) => {
                    return false;
                }
                Some(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

/// Records the send time of every other client's `t<c>-<n>` key inserted into the `bench` map.
pub struct Arrivals {
    pending: Arc<Mutex<Vec<u64>>>,
}

impl Arrivals {
    pub fn watch(bench: &MapRef, me: u32) -> Arrivals {
        let pending = Arc::new(Mutex::new(Vec::new()));
        let sink = pending.clone();
        bench.observe("load", move |txn, event| {
            let mut sent = match sink.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            for (key, change) in event.keys(txn) {
                let Some((from, _)) = stats::parse_key(key) else {
                    continue;
                };
                if from == me {
                    continue;
                }
                if let EntryChange::Inserted(Out::Any(Any::Number(t))) = change
                    && let Some(t) = t.as_f64()
                {
                    sent.push(t as u64);
                }
            }
        });
        Arrivals { pending }
    }

    /// Latencies (µs) of what arrived since the last call, given when it arrived.
    pub fn drain_into(&self, arrived_us: u64, latencies: &mut Vec<u64>) {
        let mut sent = match self.pending.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        latencies.extend(sent.drain(..).map(|t| arrived_us.saturating_sub(t)));
    }
}
