//! `mapline-server` owns Mapline's network edge: the y-websocket sync endpoint and its rooms,
//! the group-commit writer that makes every update durable before anyone sees it, share-link
//! authentication, the JSON API, health, metrics and the web client's files.
//!
//! Data flow of one update: a connection task decodes it ([`protocol`]), hands it to the writer
//! thread, which commits a batch of updates from every room in one redb transaction and only
//! then applies each to its room, which relays it to the other connections and acknowledges it
//! to its sender. See ARCHITECTURE.md.

#[doc(hidden)]
mod clock;
#[cfg(feature = "cluster")]
pub mod cluster;
#[cfg(not(feature = "cluster"))]
#[path = "cluster_off.rs"]
pub mod cluster;
pub mod fuzzing;
pub mod history;
mod http;
mod identity;
mod metrics;
pub mod outbound;
mod sync;

// The paths the binary, the benches, the fuzzer and the tests use (`mapline_server::history`,
// `::plans`, …) stay where they were before the modules moved into their rooms.
pub use history::verify;
pub use http::{audit, exports, pipeline, plans};
pub use identity::members;
pub use sync::protocol;
// Every handler's `#[utoipa::path]` names the shared error schema as `crate::openapi::ErrorBody`.
use http::openapi;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::serve::ListenerExt as _;
use mapline_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use clock::now_ms;
pub use identity::auth::{new_admin_token, token_hash};
pub use identity::oidc::{OidcConfigError, OidcSettings};
pub use sync::outbox::{CloseCode, OutboxLimits};

/// Settings of a running server, validated by the binary.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Origin used in share links (`https://plans.example.com`); relative links when `None`.
    pub public_url: Option<String>,
    /// Largest accepted WebSocket message.
    pub max_message_bytes: usize,
    /// How much may wait for one connection before it counts as not reading and is closed.
    pub outbox: OutboxLimits,
    /// How long a plan with no connections stays in memory.
    pub room_idle: Duration,
    /// Folder with the built web client, if any.
    pub web_root: Option<PathBuf>,
    /// SHA-256 of the admin credential.
    pub admin_token_hash: [u8; 32],
    /// Failed attempts allowed per client address *and token* per minute before that token is
    /// answered 429 from that address (0: no limit).
    pub auth_failures_per_minute: u32,
    /// What one plan may hold (entries per collection, text length); updates and imports over
    /// it are refused.
    pub plan_limits: mapline_plan::admission::PlanLimits,
    /// Failed token attempts allowed per client address per minute, whatever the tokens, before
    /// every request with a token from it is answered 429 (0: no limit).
    pub auth_failures_per_address_per_minute: u32,
    /// Look for plans whose history a crash left underived, and derive it at start. The binary
    /// sets this from [`Store::take_clean_shutdown`] before it starts listening.
    pub catch_up_history: bool,
    /// Let webhooks reach loopback, private and shared (CGNAT) addresses: for deployments that
    /// deliver inside their own network. Off by default (see [`outbound`]).
    pub webhooks_allow_private: bool,
    /// Sign-in with the company's OpenID Connect provider, when configured.
    pub oidc: Option<OidcSettings>,
    /// Email domains whose people may sign in with the IdP without being invited first
    /// (they become `rep` members).
    pub oidc_allowed_domains: Vec<String>,
    /// OIDC sign-ins one client address may start per minute (0: no limit).
    pub oidc_logins_per_address_per_minute: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            max_message_bytes: 1024 * 1024,
            outbox: OutboxLimits {
                messages: 1024,
                bytes: 4 * 1024 * 1024,
            },
            room_idle: Duration::from_secs(60),
            web_root: None,
            admin_token_hash: [0; 32],
            auth_failures_per_minute: 30,
            plan_limits: mapline_plan::admission::PlanLimits::default(),
            auth_failures_per_address_per_minute: 300,
            catch_up_history: true,
            webhooks_allow_private: false,
            oidc: None,
            oidc_allowed_domains: Vec::new(),
            oidc_logins_per_address_per_minute: 30,
        }
    }
}

/// Shared state of a running server.
pub struct App {
    config: ServerConfig,
    store: Arc<Store>,
    auth: identity::auth::Authenticator,
    rooms: Arc<sync::rooms::Rooms>,
    writer: sync::writer::WriterHandle,
    /// This node's part of a cluster (`serve --cluster`); `None` on a single node.
    cluster: Option<Arc<cluster::ClusterNode>>,
    /// Presence between the cluster's nodes.
    presence: Option<Arc<cluster::Presence>>,
    metrics: Arc<metrics::Metrics>,
    /// Cancelled when the server starts shutting down; every connection closes with 1001.
    shutdown: CancellationToken,
    /// Counts open WebSocket connections so shutdown can wait for their close frames.
    connections: TaskTracker,
    /// Open sockets per share link, closed when the link is revoked.
    share_sockets: Arc<http::shares::ShareSockets>,
    /// Open sockets per member session (by the session id's hash), closed when it ends.
    session_sockets: Arc<http::shares::Sockets<[u8; 32]>>,
    auth_failures: http::limits::AuthFailures,
    next_conn: AtomicU64,
    /// Held by a restore from reading the plan until its update is durable and applied, so two
    /// restores of one entry never both write it (restores are rare: one lock for all plans).
    restoring: tokio::sync::Mutex<()>,
    /// OIDC sign-in: the discovered IdP and the logins in progress.
    oidc: identity::oidc::Oidc,
}

impl App {
    fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// The server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the writer thread: {0}")]
    Writer(#[source] std::io::Error),
    #[error("serving failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting, closes every WebSocket
/// with 1001, finishes the commit in flight, snapshots the plans in memory and returns.
pub async fn run(
    listener: TcpListener,
    store: Arc<Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    serve(listener, store, config, None, shutdown).await
}

/// [`run`] for a node of a cluster: `store` is this node's replica, fed by `node` (see
/// [`cluster::ClusterNode::join`]); updates go through the cluster's log and the rooms are fed
/// from it.
pub async fn run_cluster_node(
    listener: TcpListener,
    store: Arc<Store>,
    config: ServerConfig,
    node: cluster::ClusterNode,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    serve(listener, store, config, Some(Arc::new(node)), shutdown).await
}

/// How the writer ends: a single node's thread, or a replica's task.
enum WriterDone {
    Thread(std::thread::JoinHandle<bool>),
    Task(tokio::task::JoinHandle<bool>),
}

impl WriterDone {
    /// Waits for the writer; whether every derived history it was handed was stored.
    async fn history_stored(self) -> bool {
        match self {
            Self::Thread(thread) => matches!(
                tokio::task::spawn_blocking(move || thread.join()).await,
                Ok(Ok(true))
            ),
            Self::Task(task) => matches!(task.await, Ok(true)),
        }
    }
}

async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    config: ServerConfig,
    cluster: Option<Arc<cluster::ClusterNode>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let metrics = Arc::new(metrics::Metrics::default());
    let rooms = Arc::new(sync::rooms::Rooms::new(
        store.clone(),
        metrics.clone(),
        config.plan_limits,
    ));
    let (writer, writer_done) = match &cluster {
        None => {
            let (writer, thread) =
                sync::writer::spawn(store.clone(), metrics.clone()).map_err(RunError::Writer)?;
            (writer, WriterDone::Thread(thread))
        }
        Some(node) => {
            let (writer, task) =
                cluster::spawn_writer(node, store.clone(), metrics.clone(), rooms.clone())
                    .map_err(RunError::Writer)?;
            (writer, WriterDone::Task(task))
        }
    };
    rooms.set_writer(writer.clone());
    let presence = cluster
        .as_ref()
        .map(|node| Arc::new(cluster::Presence::new(node)));
    let app = Arc::new(App {
        auth: identity::auth::Authenticator::new(config.admin_token_hash),
        auth_failures: http::limits::AuthFailures::new(
            config.auth_failures_per_minute,
            config.auth_failures_per_address_per_minute,
        ),
        oidc: identity::oidc::Oidc::new(
            config.oidc.clone(),
            config.oidc_logins_per_address_per_minute,
        ),
        rooms,
        cluster: cluster.clone(),
        presence: presence.clone(),
        config,
        store,
        writer: writer.clone(),
        metrics,
        shutdown: CancellationToken::new(),
        connections: TaskTracker::new(),
        share_sockets: Arc::default(),
        session_sockets: Arc::default(),
        restoring: tokio::sync::Mutex::new(()),
        next_conn: AtomicU64::new(1),
    });

    let followers = cluster.as_ref().map(|node| {
        (
            tokio::spawn(cluster::follow_commands(app.clone(), node.clone())),
            tokio::spawn(cluster::check_history(app.clone(), node.clone())),
            presence
                .clone()
                .map(|presence| tokio::spawn(presence.follow(app.clone()))),
        )
    });
    let sweeper = tokio::spawn(retire_idle_rooms(app.clone()));
    let webhook_worker = tokio::spawn(http::webhooks::run(app.clone()));
    let oidc_discovery = tokio::spawn(identity::oidc::discover(app.clone()));
    let app_for_catch_up = app.clone();
    let catch_up = tokio::spawn(async move {
        if app_for_catch_up.config.catch_up_history {
            catch_up_history(app_for_catch_up.clone()).await
        }
        // Plans from before summaries existed (or whose summary no longer decodes) get one now,
        // rather than on the first listing.
        history::summaries::fill_missing(app_for_catch_up).await
    });
    let stopping = app.shutdown.clone();
    let service =
        http::router::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // Every message is small and wanted at once: without TCP_NODELAY, Nagle's algorithm holds a
    // relay back until the previous segment is acknowledged — up to the peer's 40 ms delayed
    // ACK, which was Mapline's fan-out tail (BENCHMARKS.md).
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
            stopping.cancel();
        })
        .await;
    app.shutdown.cancel();
    sweeper.abort();
    webhook_worker.abort();
    oidc_discovery.abort();
    catch_up.abort();
    if let Some((commands, history, presence)) = followers {
        commands.abort();
        history.abort();
        if let Some(presence) = presence {
            presence.abort();
        }
    }
    app.connections.close();
    app.connections.wait().await;

    for room in app.rooms.all() {
        let _ = writer
            .send(sync::writer::WriteRequest::Snapshot { room })
            .await;
    }
    let _ = writer.send(sync::writer::WriteRequest::Stop).await;
    // `true` only if the history thread stored everything it was handed: otherwise the next
    // start must look for underived history, so the shutdown is not marked clean.
    let history_stored = writer_done.history_stored().await;
    if result.is_ok()
        && history_stored
        && let Err(error) = app.store.mark_clean_shutdown()
    {
        tracing::error!(%error, "cannot mark the clean shutdown; the next start looks for underived history");
    }
    result.map_err(RunError::Serve)
}

/// Derives the history a crash lost (it is written unsynced, see the writer): every plan whose
/// log is ahead of its history is loaded once, which derives the rest, and retires when idle.
async fn catch_up_history(app: Arc<App>) {
    let store = app.store.clone();
    let behind = match tokio::task::spawn_blocking(move || store.plans_behind()).await {
        Ok(Ok(behind)) => behind,
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot find plans whose history is behind");
            return;
        }
        Err(_) => return,
    };
    for plan in behind {
        if let Err(error) = app.rooms.open(mapline_store::DocRef::plan(plan)).await {
            tracing::error!(plan_id = %plan, %error, "deriving missing history failed");
        }
    }
}

async fn retire_idle_rooms(app: Arc<App>) {
    let period = (app.config.room_idle / 4).max(Duration::from_millis(250));
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        for room in app.rooms.retire_idle(app.config.room_idle) {
            tracing::debug!(plan_id = %room.plan_id(), "room retired");
            let _ = app
                .writer
                .send(sync::writer::WriteRequest::Snapshot { room })
                .await;
        }
    }
}
