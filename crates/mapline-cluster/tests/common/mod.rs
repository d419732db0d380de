//! Three real nats-server processes on loopback: a cluster of 3, JetStream with
//! `sync_interval: always`, each with its own store in a temp dir. Found through
//! `MAPLINE_NATS_SERVER` or `target/venv/bin/nats-server` (scripts/install-nats.sh); a missing
//! binary fails the test, it never passes silently.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mapline_cluster::{Cluster, ClusterConfig};

/// How long a cluster may take to start or a node to come back.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// Tests start clusters one at a time: the machine has 2 cores and each node fsyncs every write.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn nats_server_binary() -> PathBuf {
    let path = match std::env::var_os("MAPLINE_NATS_SERVER") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/nats-server"),
    };
    assert!(
        path.is_file(),
        "no nats-server at {}: run scripts/install-nats.sh (or set MAPLINE_NATS_SERVER)",
        path.display()
    );
    path
}

/// The next port `free_ports` tries; starts at a place of its own per test process.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// `n` distinct free loopback ports for the nodes to listen on. They are taken below Linux's
/// ephemeral range (32768–60999 by default), so no outgoing connection — the nodes' own routes
/// to each other, a client — can take one between choosing it and the node binding it (seen in
/// CI: a route connected to another node's client port), and each is held until all are chosen,
/// so one call never hands out the same port twice.
fn free_ports(n: usize) -> Vec<u16> {
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let _ = NEXT_PORT.compare_exchange(
        0,
        FIRST + (std::process::id() * 97) % SPAN,
        std::sync::atomic::Ordering::Relaxed,
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut held = Vec::with_capacity(n);
    let mut tried = 0;
    while held.len() < n {
        assert!(
            tried < SPAN,
            "no {n} free loopback ports in {FIRST}..{}",
            FIRST + SPAN
        );
        tried += 1;
        let next = NEXT_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = FIRST + (next - FIRST) % SPAN;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port as u16)) {
            held.push(listener);
        }
    }
    held.iter()
        .map(|l| l.local_addr().expect("a bound port").port())
        .collect()
}

pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub http_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn start(&mut self, binary: &PathBuf) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log file");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush beyond what was fsynced.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 nats-server");
            child.wait().expect("reap nats-server");
        }
    }

    /// `GET path` on the monitoring port: (status, body), or None while nothing answers.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct NatsCluster {
    pub nodes: Vec<Node>,
    binary: PathBuf,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts three nodes and waits (with a deadline) until every node reports JetStream
    /// healthy, which needs the meta group to have a leader.
    pub async fn start() -> Self {
        Self::start_with(3, true).await
    }

    /// `count` nodes (1: a lone server, no cluster block); `sync_always: false` leaves the
    /// server's default fsync interval (2 minutes), which Mapline must refuse.
    pub async fn start_with(count: usize, sync_always: bool) -> Self {
        let mut cluster = Self::configure(count, sync_always);
        cluster.launch().await;
        cluster
    }

    /// Starts every node and waits (with a deadline) until each reports JetStream healthy.
    pub async fn launch(&mut self) {
        let binary = self.binary.clone();
        for node in &mut self.nodes {
            node.start(&binary);
        }
        for i in 0..self.nodes.len() {
            self.wait_healthy(i).await;
        }
    }

    /// Writes the nodes' config files and picks their ports; starts nothing.
    pub fn configure(count: usize, sync_always: bool) -> Self {
        // The layer's own log lines (retries, recreated consumers) in the test's output;
        // RUST_LOG overrides.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "mapline_cluster=info".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        let binary = nats_server_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16, u16)> = free_ports(count * 3)
            .chunks(3)
            .map(|p| (p[0], p[1], p[2]))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route, _)| format!("nats-route://127.0.0.1:{route}"))
            .collect();
        let mut nodes = Vec::new();
        for (i, (client, route, http)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            let config = dir.path().join(format!("{name}.conf"));
            let sync = if sync_always {
                "\n  sync_interval: always"
            } else {
                ""
            };
            let cluster = if count > 1 {
                format!(
                    "cluster {{\n  name: mapline-test\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\n\
                     listen: 127.0.0.1:{client}\n\
                     http: 127.0.0.1:{http}\n\
                     jetstream {{\n  store_dir: \"{store}\"{sync}\n}}\n{cluster}",
                    store = store.display(),
                ),
            )
            .expect("write node config");
            nodes.push(Node {
                name,
                client_port: *client,
                http_port: *http,
                config,
                log: dir.path().join(format!("n{}.log", i + 1)),
                child: None,
            });
        }
        Self {
            nodes,
            binary,
            _dir: dir,
        }
    }

    /// Waits until node `i` answers `/healthz` with 200 (JetStream current).
    pub async fn wait_healthy(&self, i: usize) {
        let node = &self.nodes[i];
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some((200, _)) = node.http_get("/healthz") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not healthy within {START_DEADLINE:?}; its log:\n{}",
                node.name,
                node.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Config for Mapline's layer, URLs listed starting at node `first`.
    pub fn config(&self, first: usize) -> ClusterConfig {
        let mut urls = self.urls();
        urls.rotate_left(first);
        let mut config = ClusterConfig::new(urls);
        config.ready_timeout = Some(START_DEADLINE);
        config.monitor_urls = self.nodes.iter().map(Node::monitor_url).collect();
        config
    }

    pub async fn connect(&self, first: usize) -> Cluster {
        Cluster::connect(self.config(first))
            .await
            .expect("connect to the test cluster")
    }

    pub fn index_of(&self, server_name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == server_name)
            .unwrap_or_else(|| panic!("no node named {server_name}"))
    }

    pub fn restart(&mut self, i: usize) {
        let binary = self.binary.clone();
        self.nodes[i].start(&binary);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill9();
        }
    }
}

/// Waits for `condition` with a deadline, polling.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    while !condition().await {
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
