//! The engine under a Mapline cluster: three `nats-server` processes on loopback (a NATS
//! cluster of 3, JetStream with `sync_interval: always`, routes between them, a monitoring port
//! each), started and killed as child processes. Mapline creates its R3 streams itself; this
//! only runs the servers, reads their CPU from `/proc` and asks their monitoring ports who
//! leads a stream (`/jsz?streams=true`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::sys::proc_stats;

/// How long the engine may take to start (every node's JetStream healthy).
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Ports are taken from here up, below Linux's ephemeral range (32768–60999 by default).
const FIRST_PORT: u16 = 20_000;
const PORT_SPAN: u16 = 12_000;

/// What one node's config file says.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub name: String,
    pub client_port: u16,
    pub route_port: u16,
    pub http_port: u16,
    pub store_dir: PathBuf,
}

/// A node's config file: its ports on loopback, JetStream storing in `store_dir` and fsyncing
/// every write before it acknowledges (`sync_interval: always`), and routes to every node of
/// `cluster` (its own included: nats-server ignores a route to itself).
pub fn render_config(node: &NodeConfig, cluster: &[NodeConfig]) -> String {
    let routes: Vec<String> = cluster
        .iter()
        .map(|n| format!("nats-route://127.0.0.1:{}", n.route_port))
        .collect();
    format!(
        "server_name: {name}\n\
         listen: 127.0.0.1:{client}\n\
         http: 127.0.0.1:{http}\n\
         jetstream {{\n  store_dir: {store}\n  sync_interval: always\n}}\n\
         cluster {{\n  name: mapline-load\n  listen: 127.0.0.1:{route}\n  routes: [{routes}]\n}}\n",
        name = node.name,
        client = node.client_port,
        http = node.http_port,
        route = node.route_port,
        // A JSON string is a valid NATS config string (quotes and backslashes escaped).
        store = serde_json::Value::from(node.store_dir.display().to_string()),
        routes = routes.join(", "),
    )
}

/// The server name of `stream`'s Raft leader as one node's `/jsz?streams=true` reports it
/// (`account_details[].stream_detail[].cluster.leader`); None when that node hosts no replica
/// of it or it has no leader now.
pub fn parse_stream_leader(jsz: &serde_json::Value, stream: &str) -> Option<String> {
    jsz.get("account_details")?
        .as_array()?
        .iter()
        .filter_map(|account| account.get("stream_detail")?.as_array())
        .flatten()
        .find(|s| s.get("name").and_then(|n| n.as_str()) == Some(stream))?
        .get("cluster")?
        .get("leader")?
        .as_str()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

/// `n` distinct loopback ports that were free a moment ago, below the ephemeral range so no
/// outgoing connection (the nodes' routes to each other, a client) takes one between choosing
/// it and the node binding it; each is held until all are chosen, so none is handed out twice.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    // Start somewhere of this process's own, so two generators rarely probe the same ports.
    let offset = (std::process::id() % u32::from(PORT_SPAN)) as u16;
    let mut held = Vec::with_capacity(n);
    for i in 0..PORT_SPAN {
        if held.len() == n {
            break;
        }
        let port = FIRST_PORT + (offset + i) % PORT_SPAN;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    if held.len() < n {
        bail!(
            "no {n} free loopback ports in {FIRST_PORT}..{}",
            FIRST_PORT + PORT_SPAN
        );
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

struct Node {
    config: NodeConfig,
    file: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    pid: Option<String>,
}

/// Three running nats-server nodes in a temporary folder (removed on drop, the processes
/// killed).
pub struct Engine {
    nodes: Vec<Node>,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl Engine {
    /// Writes three nodes' configs in a new folder under `base`, starts them and waits until
    /// each answers `/healthz` (JetStream current: the meta group has a leader).
    pub async fn start(binary: &Path, base: &Path) -> Result<Engine> {
        if !binary.is_file() {
            bail!(
                "no nats-server at {}: ./scripts/install-nats.sh (or --nats-server)",
                binary.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("mapline-load-nats-")
            .tempdir_in(base)
            .context("a temporary folder for the engine")?;
        let ports = free_ports(9)?;
        let configs: Vec<NodeConfig> = ports
            .chunks(3)
            .enumerate()
            .map(|(i, p)| NodeConfig {
                name: format!("n{}", i + 1),
                client_port: p[0],
                route_port: p[1],
                http_port: p[2],
                store_dir: dir.path().join(format!("n{}", i + 1)),
            })
            .collect();
        let mut nodes = Vec::with_capacity(configs.len());
        for config in &configs {
            let file = dir.path().join(format!("{}.conf", config.name));
            std::fs::write(&file, render_config(config, &configs))
                .with_context(|| format!("writing {}", file.display()))?;
            nodes.push(Node {
                log: dir.path().join(format!("{}.log", config.name)),
                config: config.clone(),
                file,
                child: None,
                pid: None,
            });
        }
        let mut engine = Engine {
            nodes,
            binary: binary.to_owned(),
            dir,
        };
        for i in 0..engine.nodes.len() {
            engine.spawn(i)?;
        }
        let deadline = Instant::now() + START_DEADLINE;
        for i in 0..engine.nodes.len() {
            engine.wait_healthy(i, deadline).await?;
        }
        tracing::info!(urls = %engine.urls(), folder = %engine.dir.path().display(), "engine started");
        Ok(engine)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&node.file)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        node.pid = Some(
            child
                .id()
                .context("nats-server exited at once")?
                .to_string(),
        );
        node.child = Some(child);
        Ok(())
    }

    async fn wait_healthy(&self, i: usize, deadline: Instant) -> Result<()> {
        let node = &self.nodes[i];
        let url = format!("{}/healthz", monitor_url(&node.config));
        loop {
            if let Some((200, _)) = http_get(&url).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                bail!(
                    "{} not healthy within {START_DEADLINE:?}; its log:\n{log}",
                    node.config.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `nats://…` of every node, comma-separated (`mapline serve --cluster`).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.config.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `http://…` of every node's monitoring port, comma-separated (`--nats-monitor`).
    pub fn monitor_urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| monitor_url(&n.config))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// CPU seconds (user + system) of the running nodes, summed. A killed node's are gone
    /// from `/proc`: measure over a window in which none is killed.
    pub fn cpu_s(&self) -> Result<f64> {
        let mut sum = 0.0;
        for pid in self.nodes.iter().filter_map(|n| n.pid.as_deref()) {
            sum += proc_stats(pid)?.cpu_s;
        }
        Ok(sum)
    }

    /// The leader of `stream` as the running nodes report it: the name most of them give
    /// (they can disagree for a moment during an election), None when none names one.
    pub async fn stream_leader(&self, stream: &str) -> Option<String> {
        let mut named = Vec::new();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let url = format!("{}/jsz?streams=true", monitor_url(&node.config));
            let Some((200, body)) = http_get(&url).await else {
                continue;
            };
            let Ok(jsz) = serde_json::from_str::<serde_json::Value>(&body) else {
                continue;
            };
            if let Some(leader) = parse_stream_leader(&jsz, stream) {
                named.push(leader);
            }
        }
        most_named(named)
    }

    /// SIGKILL of the node named `name` (no shutdown, nothing flushed beyond what it fsynced).
    pub async fn kill9(&mut self, name: &str) -> Result<()> {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.config.name == name)
            .with_context(|| format!("no engine node named {name}"))?;
        if let Some(mut child) = node.child.take() {
            child.kill().await.context("kill -9 nats-server")?;
        }
        node.pid = None;
        Ok(())
    }
}

/// The name given most often (the first of those tied), None for none.
fn most_named(names: Vec<String>) -> Option<String> {
    let mut best: Option<(String, usize)> = None;
    for name in &names {
        let count = names.iter().filter(|n| *n == name).count();
        if best.as_ref().is_none_or(|(_, c)| count > *c) {
            best = Some((name.clone(), count));
        }
    }
    best.map(|(name, _)| name)
}

fn monitor_url(node: &NodeConfig) -> String {
    format!("http://127.0.0.1:{}", node.http_port)
}

/// `GET url`: (status, body), or None while nothing answers.
async fn http_get(url: &str) -> Option<(u16, String)> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .new_agent();
        let response = agent.get(&url).call().ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().read_to_string().ok()?;
        Some((status, body))
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, base: u16) -> NodeConfig {
        NodeConfig {
            name: name.to_owned(),
            client_port: base,
            route_port: base + 1,
            http_port: base + 2,
            store_dir: PathBuf::from(format!("/tmp/x \"y\"/{name}")),
        }
    }

    #[test]
    fn a_nodes_config_fsyncs_always_and_routes_to_every_node() {
        let cluster = [node("n1", 21000), node("n2", 21010), node("n3", 21020)];
        let text = render_config(&cluster[1], &cluster);
        assert_eq!(
            text,
            "server_name: n2\n\
             listen: 127.0.0.1:21010\n\
             http: 127.0.0.1:21012\n\
             jetstream {\n  store_dir: \"/tmp/x \\\"y\\\"/n2\"\n  sync_interval: always\n}\n\
             cluster {\n  name: mapline-load\n  listen: 127.0.0.1:21011\n  \
             routes: [nats-route://127.0.0.1:21001, nats-route://127.0.0.1:21011, nats-route://127.0.0.1:21021]\n}\n"
        );
    }

    /// Trimmed from nats-server 2.12's `/jsz?streams=true`.
    const JSZ: &str = r#"{
      "server_id": "NDWY",
      "meta_cluster": {"name": "c", "leader": "n3"},
      "account_details": [
        {"name": "other", "stream_detail": [
          {"name": "mapline-kv", "cluster": {"leader": "n1"}}
        ]},
        {"name": "$G", "stream_detail": [
          {"name": "KV_mapline-kv", "cluster": {"leader": "n1"}},
          {"name": "mapline-log", "cluster": {"name": "c", "raft_group": "S-R3F",
            "leader": "n2", "replicas": [{"name": "n1", "current": true}]}}
        ]}
      ]
    }"#;

    fn check(jsz: &str, stream: &str, expected: Option<&str>) {
        let value: serde_json::Value = serde_json::from_str(jsz).expect("test JSON");
        assert_eq!(
            parse_stream_leader(&value, stream).as_deref(),
            expected,
            "{stream} in {jsz}"
        );
    }

    #[test]
    fn the_streams_leader_is_read_from_its_own_entry_not_the_meta_leader() {
        check(JSZ, "mapline-log", Some("n2"));
        check(JSZ, "mapline-kv", Some("n1"));
        check(JSZ, "mapline-obj", None);
        // No leader now (an election), no account details (jsz without streams=true).
        check(
            r#"{"account_details":[{"stream_detail":[{"name":"s","cluster":{"leader":""}}]}]}"#,
            "s",
            None,
        );
        check(
            r#"{"account_details":[{"stream_detail":[{"name":"s","cluster":{}}]}]}"#,
            "s",
            None,
        );
        check(r#"{"meta_cluster":{"leader":"n3"}}"#, "s", None);
        check(r#"{"account_details":{}}"#, "s", None);
    }

    #[test]
    fn the_leader_most_nodes_name_wins() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            most_named(names(&["n1", "n2", "n2"])).as_deref(),
            Some("n2")
        );
        assert_eq!(most_named(names(&["n3"])).as_deref(), Some("n3"));
        assert_eq!(most_named(names(&["n1", "n2"])).as_deref(), Some("n1"));
        assert_eq!(most_named(vec![]), None);
    }

    /// Creates an R3 stream through JetStream's API over the plain NATS protocol (the
    /// generator needs no NATS client: Mapline creates its streams itself).
    async fn create_stream(port: u16, name: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to nats");
        let config = format!(
            r#"{{"name":"{name}","subjects":["{name}.>"],"num_replicas":3,"storage":"file"}}"#
        );
        let request = format!(
            "CONNECT {{\"verbose\":false}}\r\nSUB _INBOX.t 1\r\n\
             PUB $JS.API.STREAM.CREATE.{name} _INBOX.t {}\r\n{config}\r\n",
            config.len()
        );
        s.write_all(request.as_bytes()).await.expect("send");
        let mut seen = String::new();
        let deadline = Instant::now() + START_DEADLINE;
        while !seen.contains("stream_create_response") {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline.into(), s.read(&mut buf))
                .await
                .expect("an answer within the deadline")
                .expect("read");
            assert!(n > 0, "nats closed the connection: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen
    }

    async fn wait_leader(engine: &Engine, stream: &str, not: Option<&str>) -> String {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(leader) = engine.stream_leader(stream).await
                && Some(leader.as_str()) != not
            {
                return leader;
            }
            assert!(Instant::now() < deadline, "no new leader of {stream}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_started_engine_names_a_streams_leader_and_another_after_a_kill_9() {
        let binary =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/nats-server");
        let base = tempfile::tempdir().expect("temp dir");
        let mut engine = Engine::start(&binary, base.path()).await.expect("engine");
        assert_eq!(engine.urls().split(',').count(), 3);
        assert!(engine.cpu_s().expect("engine cpu") > 0.0);
        let port = engine.nodes[0].config.client_port;
        let answer = create_stream(port, "loadtest").await;
        assert!(answer.contains("\"num_replicas\":3"), "{answer}");
        let first = wait_leader(&engine, "loadtest", None).await;
        engine.kill9(&first).await.expect("kill -9");
        let second = wait_leader(&engine, "loadtest", Some(&first)).await;
        assert_ne!(first, second);
        // The killed node is no longer asked, nor counted.
        assert!(engine.cpu_s().is_ok());
    }

    #[test]
    fn ports_are_distinct_and_below_the_ephemeral_range() {
        let ports = free_ports(9).expect("free ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 9);
        assert!(ports.iter().all(|p| (FIRST_PORT..32768).contains(p)));
    }
}
