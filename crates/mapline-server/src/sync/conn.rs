//! One WebSocket connection: joins the plan's room, decodes each message, hands updates to the
//! writer and drains its outbox to the socket. Whatever goes wrong with this connection — a bad
//! frame, a slow reader — closes this connection only, with a specific code.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use mapline_store::{DocKind, DocRef, UpdateRecord};
use tracing::Instrument as _;

use crate::App;
use crate::clock::now_ms;
use crate::identity::auth::Principal;
use crate::sync::outbox::{CloseCode, CloseReason, Closer, Outbox};
use crate::sync::protocol::{self, Incoming, ProtocolError};
use crate::sync::room::{AwarenessRelay, ConnId, MAX_AWARENESS_CLIENTS_PER_CONNECTION, Room};
use crate::sync::writer::WriteRequest;

/// How long a close frame may take to reach a client before the socket is dropped anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Awareness updates one connection may send: a burst of this many, refilled at
/// [`AWARENESS_PER_SECOND`]. Cursors and presence need a few per second; every awareness update
/// is relayed to every other client of the plan, so a flood is refused, not amplified.
const AWARENESS_BURST: f64 = 300.0;
const AWARENESS_PER_SECOND: f64 = 100.0;
/// The same in bytes: presence states are small (a name, a colour, a field), so a client sending
/// large states fast is closed before it costs the room's readers anything.
const AWARENESS_BYTES_BURST: f64 = 256.0 * 1024.0;
const AWARENESS_BYTES_PER_SECOND: f64 = 64.0 * 1024.0;

/// A token bucket.
struct Bucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    fn new(burst: f64, per_second: f64) -> Self {
        Self {
            tokens: burst,
            burst,
            per_second,
            at: tokio::time::Instant::now(),
        }
    }

    /// Takes `amount` tokens; false when the connection is over its rate.
    fn take(&mut self, amount: f64) -> bool {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= amount {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }
}

/// One connection's awareness budget: by count and by bytes.
struct AwarenessBudget {
    count: Bucket,
    bytes: Bucket,
}

impl AwarenessBudget {
    fn new() -> Self {
        Self {
            count: Bucket::new(AWARENESS_BURST, AWARENESS_PER_SECOND),
            bytes: Bucket::new(AWARENESS_BYTES_BURST, AWARENESS_BYTES_PER_SECOND),
        }
    }

    /// Charges one relayed update of `size` bytes; the refusal to close with, if over.
    fn charge(&mut self, size: usize) -> Result<(), CloseReason> {
        if !self.count.take(1.0) {
            return Err(CloseReason::new(
                CloseCode::TooFast,
                format!("too many awareness updates (over {AWARENESS_PER_SECOND} a second)"),
            ));
        }
        if !self.bytes.take(size as f64) {
            return Err(CloseReason::new(
                CloseCode::TooFast,
                format!(
                    "too much awareness data (over {} KiB a second)",
                    AWARENESS_BYTES_PER_SECOND / 1024.0
                ),
            ));
        }
        Ok(())
    }
}

/// What a connection was opened with, checked before the upgrade.
pub struct ConnectionParams {
    /// The plan document, or the seller's internal document of the plan.
    pub doc: DocRef,
    pub principal: Principal,
    pub wants_acks: bool,
}

/// Serves one upgraded connection until it closes.
pub async fn serve(socket: WebSocket, app: Arc<App>, params: ConnectionParams) {
    let conn_id = app.next_conn_id();
    let span = tracing::info_span!(
        "conn",
        plan_id = %params.doc.plan,
        internal = params.doc.kind == DocKind::Internal,
        share_id = ?params.principal.share_id(),
        conn_id,
    );
    async move {
        app.metrics.connections_open.inc();
        let end = run(socket, &app, conn_id, params).await;
        app.metrics
            .connections_closed
            .get_or_create(&crate::metrics::CloseLabel {
                code: end.code.code(),
            })
            .inc();
        app.metrics.connections_open.dec();
        tracing::info!(code = end.code.code(), reason = %end.reason, "connection closed");
    }
    .instrument(span)
    .await;
}

async fn run(
    socket: WebSocket,
    app: &App,
    conn_id: ConnId,
    params: ConnectionParams,
) -> CloseReason {
    let closer = Closer::default();
    let (outbox, mut outgoing) = Outbox::new(app.config.outbox, closer.clone());
    let (mut sink, mut stream) = socket.split();

    let room = loop {
        let room = match app.rooms.open(params.doc).await {
            Ok(room) => room,
            Err(error) => {
                tracing::error!(%error, "cannot open the plan");
                let end = CloseReason::new(CloseCode::ServerError, "the plan could not be loaded");
                send_close(&mut sink, &end).await;
                return end;
            }
        };
        if room
            .join(conn_id, outbox.clone(), params.wants_acks)
            .is_ok()
        {
            break room;
        }
    };
    tracing::info!(
        wants_acks = params.wants_acks,
        writable = params.principal.can_write(),
        "connected"
    );
    // Registered before the re-check below, so a revocation racing this connect either finds
    // the socket here or is seen by the re-check.
    let _registered = params
        .principal
        .share_id()
        .map(|share| app.share_sockets.register(share, conn_id, closer.clone()));
    if let Some(share) = params.principal.share_id() {
        note_share_opened(app, share, &closer).await;
    }
    // A member's socket closes with 4401 when their session is signed out or revoked.
    let _session_registered = params.principal.member().map(|m| {
        app.session_sockets
            .register(m.session, conn_id, closer.clone())
    });
    if let Some(m) = params.principal.member() {
        crate::identity::session::recheck_session(app, m.session, &closer).await;
    }

    let end = {
        let send_loop = async {
            while let Some(message) = outgoing.recv().await {
                if sink.send(Message::Binary(message)).await.is_err() {
                    break;
                }
            }
        };
        let receive_loop = receive(&mut stream, app, &room, conn_id, &params);
        let expiry = share_expiry(&params.principal);
        tokio::select! {
            () = expiry => Some(CloseReason::new(CloseCode::AccessRevoked, match params.principal {
                Principal::Member(_) => "this session has expired",
                _ => "this share link has expired",
            })),
            end = receive_loop => end,
            () = send_loop => None,
            end = closer.requested() => Some(end),
            () = app.shutdown.cancelled() => Some(CloseReason::new(CloseCode::GoingAway, "server shutting down")),
        }
    };
    let removal = room.leave(conn_id);
    if let (Some(presence), Some(removal)) = (&app.presence, removal) {
        presence.publish(room.doc(), &removal);
    }
    match end {
        Some(end) => {
            if end.code != CloseCode::Normal {
                tracing::warn!(code = end.code.code(), reason = %end.reason, "closing connection");
            }
            send_close(&mut sink, &end).await;
            drain_until_closed(&mut stream).await;
            end
        }
        None => CloseReason::new(CloseCode::Normal, "client disconnected"),
    }
}

/// Resolves when the connection's share link expires (never for admin or links without expiry).
async fn share_expiry(principal: &Principal) {
    let expires_at_ms = match principal {
        Principal::Share(share) => share.expires_at_ms,
        Principal::Member(m) => Some(m.expires_at_ms),
        Principal::Admin => None,
    };
    match expires_at_ms {
        Some(at) => {
            let wait = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        None => std::future::pending().await,
    }
}

/// Records the share's visit (for "last seen") and closes the socket if the share was revoked
/// between the token check and the registration.
///
/// The check reads this node's file; the visit is recorded in the background (on a cluster's
/// node it is a write through the log, which must not hold up the socket).
async fn note_share_opened(app: &App, share: mapline_store::ShareId, closer: &Closer) {
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(error) = store.record_share_seen(share, now_ms()) {
            tracing::warn!(%error, "cannot record the share's visit");
        }
    });
    let store = app.store.clone();
    let checked = tokio::task::spawn_blocking(move || store.share(share)).await;
    match checked {
        Ok(Ok(Some(record))) if record.revoked_at_ms.is_none() => {}
        Ok(Ok(_)) => closer.close(CloseReason::new(
            CloseCode::AccessRevoked,
            crate::http::shares::REVOKED_REASON,
        )),
        Ok(Err(error)) => tracing::warn!(%error, "cannot check the share's revocation"),
        Err(error) => tracing::warn!(%error, "cannot check the share's revocation"),
    }
}

async fn send_close<S>(sink: &mut S, end: &CloseReason)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code: end.code.code(),
        reason: end.reason.clone().into(),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}

/// After sending a close frame, reads (and drops) whatever the client still sends until it
/// answers the close. Dropping a socket with unread input makes the kernel reset the connection,
/// and the client would then see 1006 instead of the close code and reason it was sent.
async fn drain_until_closed<S>(stream: &mut S)
where
    S: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let drain = async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
}

/// Reads messages until the connection ends. `None` means the peer went away (nothing to send).
async fn receive<S>(
    stream: &mut S,
    app: &App,
    room: &Arc<Room>,
    conn_id: ConnId,
    params: &ConnectionParams,
) -> Option<CloseReason>
where
    S: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let mut awareness = AwarenessBudget::new();
    loop {
        let message = match stream.next().await? {
            Ok(message) => message,
            Err(error) => return Some(read_error(&error, app.config.max_message_bytes)),
        };
        let max = app.config.max_message_bytes;
        let frame = match message {
            Message::Binary(frame) if frame.len() > max => {
                return Some(too_large(max));
            }
            Message::Binary(frame) => frame,
            Message::Text(_) => {
                return Some(CloseReason::new(
                    CloseCode::TextFrame,
                    "text frames are not part of the protocol; send binary y-websocket messages",
                ));
            }
            Message::Close(_) => return Some(CloseReason::new(CloseCode::Normal, "bye")),
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if let Err(end) = handle(frame, app, room, conn_id, params, &mut awareness).await {
            return Some(end);
        }
    }
}

fn too_large(max: usize) -> CloseReason {
    CloseReason::new(
        CloseCode::MessageTooLarge,
        format!("message larger than the limit of {max} bytes"),
    )
}

fn read_error(error: &axum::Error, max: usize) -> CloseReason {
    let text = error.to_string();
    if text.contains("too long") || text.contains("Space limit") || text.contains("too big") {
        too_large(max)
    } else {
        CloseReason::new(
            CloseCode::MalformedMessage,
            format!("bad WebSocket frame: {text}"),
        )
    }
}

/// The close code for an update that was not admitted: over a limit, or one that cannot
/// integrate.
pub(crate) fn refusal_code(refusal: &mapline_plan::admission::Refusal) -> CloseCode {
    if refusal.is_limit() {
        CloseCode::OverLimit
    } else {
        CloseCode::BadUpdate
    }
}

/// The close code for a message that could not be decoded.
pub(crate) fn close_code(error: &ProtocolError) -> CloseCode {
    match error {
        ProtocolError::BadUpdate(_) => CloseCode::BadUpdate,
        ProtocolError::Malformed(_) | ProtocolError::UnknownTag(_) => CloseCode::MalformedMessage,
        ProtocolError::TooLarge(_) => CloseCode::MessageTooLarge,
    }
}

async fn handle(
    frame: Bytes,
    app: &App,
    room: &Arc<Room>,
    conn_id: ConnId,
    params: &ConnectionParams,
    awareness: &mut AwarenessBudget,
) -> Result<(), CloseReason> {
    match protocol::decode(&frame) {
        Ok(Incoming::SyncStep1(sv)) => {
            room.answer_sync_step1(conn_id, &sv);
            // A cold-loaded room answers from its document alone; its indexes come next.
            crate::sync::rooms::index_in_background(room);
        }
        Ok(Incoming::Update { update, raw }) => {
            app.metrics.updates_received.inc();
            let unchanged = !update.is_empty() && room.changes_nothing(&update);
            if unchanged {
                app.metrics.updates_unchanged.inc();
            }
            let empty = update.is_empty() || unchanged;
            // An update that changes nothing (empty, or an echo of what the server has) is
            // acknowledged, never stored or relayed — even a read-only link's: its client
            // learns that it is up to date with what is durable.
            if !empty && !params.principal.can_write() {
                app.metrics.updates_refused.inc();
                tracing::warn!(bytes = raw.len(), "update from a read-only link refused");
                room.notify_refused(conn_id, "this link is read-only; the change was not saved");
                return Ok(());
            }
            if !empty && !room.is_indexed() {
                // A cold-loaded room's first update: admission needs the indexes, and building
                // them is CPU work for a blocking thread, not this task (`admit` would build
                // them under the room's lock otherwise).
                let indexing = room.clone();
                tokio::task::spawn_blocking(move || indexing.build_indexes())
                    .await
                    .map_err(|_| CloseReason::new(CloseCode::ServerError, "server error"))?;
            }
            if !empty && let Err(refusal) = room.admit(&raw, &update) {
                app.metrics.updates_refused.inc();
                tracing::warn!(bytes = raw.len(), %refusal, "update refused before storing");
                return Err(CloseReason::new(
                    refusal_code(&refusal),
                    refusal.to_string(),
                ));
            }
            if empty {
                room.begin_write(); // (an admitted update was counted by `admit`)
            }
            let request = if empty {
                WriteRequest::Noop {
                    room: room.clone(),
                    origin: conn_id,
                }
            } else {
                let author = params.principal.author();
                WriteRequest::Update {
                    room: room.clone(),
                    origin: conn_id,
                    record: UpdateRecord {
                        author,
                        client_ids: protocol::client_ids(&update),
                        received_at_ms: now_ms(),
                        update: raw.to_vec(),
                    },
                    update,
                    durable: None,
                }
            };
            if app.writer.send(request).await.is_err() {
                return Err(CloseReason::new(
                    CloseCode::GoingAway,
                    "server shutting down",
                ));
            }
        }
        // Only updates that change something count: echoes of others' states are free.
        Ok(Incoming::Awareness(update)) => {
            // A cluster's other nodes relay it to their connections of this plan.
            let for_nodes = app.presence.as_ref().map(|p| (p, update.clone()));
            match room.relay_awareness(conn_id, update) {
                AwarenessRelay::Unchanged => {}
                AwarenessRelay::Changed => {
                    if let Some((presence, update)) = for_nodes {
                        presence.publish(room.doc(), &update);
                    }
                    awareness.charge(frame.len())?
                }
                AwarenessRelay::TooManyClients => {
                    return Err(CloseReason::new(
                        CloseCode::MalformedMessage,
                        format!(
                            "more than {MAX_AWARENESS_CLIENTS_PER_CONNECTION} awareness clients on one connection"
                        ),
                    ));
                }
            }
        }
        Ok(Incoming::AwarenessQuery) => room.answer_awareness_query(conn_id),
        Ok(Incoming::Auth) => {}
        Err(error) => return Err(CloseReason::new(close_code(&error), error.to_string())),
    }
    Ok(())
}
