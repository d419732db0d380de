//! The servers under test: Mapline (its release binary on a temporary data file) and
//! `@y/websocket-server` (node, in memory), started and stopped as child processes.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::sys::{ProcStats, proc_stats};

const ADMIN: &str = "bench-admin-token-0123456789abcdef";

/// Which server to start.
#[derive(Debug, Clone)]
pub enum Kind {
    /// `cluster`: a node of a Mapline cluster (`serve --cluster`), `data` its replica file.
    Mapline {
        bin: PathBuf,
        data: PathBuf,
        cluster: Option<ClusterNode>,
    },
    Baseline {
        script: PathBuf,
    },
}

/// What a Mapline node of a cluster is started with.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// `nats://…,nats://…` (`--cluster`).
    pub urls: String,
    /// `http://…,http://…` (`--nats-monitor`): start refuses an engine that does not fsync.
    pub monitor: String,
    /// `--node-id`, in the node's log lines and the report.
    pub id: String,
}

/// How long a Mapline node of a cluster may take to listen: it applies the whole command log
/// into its replica file first (a fresh node on 10,000 plans).
const CLUSTER_LISTEN_DEADLINE: Duration = Duration::from_secs(600);
/// How long a single node (or the baseline) may take to listen.
const LISTEN_DEADLINE: Duration = Duration::from_secs(20);

/// One plan (room) and the token a client connects with.
#[derive(Debug, Clone)]
pub struct Plan {
    pub room: String,
    pub token: String,
}

pub struct Server {
    kind: Kind,
    child: Child,
    pid: String,
    /// `ws://…/sync` or `ws://…`: a room's URL is this, `/`, the room.
    ws_base: String,
    http: String,
    rooms: AtomicU32,
    /// When the process was spawned.
    spawned: Instant,
    /// From the spawn to the server's "listening" line on stdout.
    listening: Duration,
}

impl Server {
    pub async fn start(kind: Kind) -> Result<Server> {
        let (mut command, ready, ws_path) = match &kind {
            Kind::Mapline { bin, data, cluster } => {
                let mut c = Command::new(bin);
                c.args(["serve", "--addr", "127.0.0.1:0", "--data"])
                    .arg(data)
                    .args(["--admin-token", ADMIN, "--web", "/nonexistent"]);
                if let Some(node) = cluster {
                    c.args(["--cluster", &node.urls])
                        .args(["--nats-monitor", &node.monitor])
                        .args(["--node-id", &node.id]);
                }
                c.env(
                    "MAPLINE_LOG",
                    std::env::var("MAPLINE_LOAD_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
                );
                (c, "listening on", "/sync")
            }
            Kind::Baseline { script } => {
                let port = free_port()?;
                let mut c = Command::new("node");
                c.arg(script)
                    .env("HOST", "127.0.0.1")
                    .env("PORT", port.to_string());
                (c, "running at", "")
            }
        };
        // Mapline logs to stdout (read below); MAPLINE_LOAD_SERVER_LOG=debug shows its room
        // loads there, echoed to stderr.
        let spawned = Instant::now();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {kind:?}"))?;
        let pid = child.id().context("the server exited at once")?.to_string();
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let deadline = match &kind {
            Kind::Mapline {
                cluster: Some(_), ..
            } => CLUSTER_LISTEN_DEADLINE,
            _ => LISTEN_DEADLINE,
        };
        let line = tokio::time::timeout(deadline, async {
            while let Some(line) = lines.next_line().await? {
                if line.contains(ready) {
                    return Ok(line);
                }
            }
            bail!("the server exited before it listened")
        })
        .await
        .with_context(|| format!("the server did not listen within {deadline:?}"))??;
        let listening = spawned.elapsed();
        // Keep reading stdout so the server never blocks on a full pipe.
        let echo = std::env::var_os("MAPLINE_LOAD_SERVER_LOG").is_some();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("server: {line}");
                }
            }
        });
        let http = match &kind {
            Kind::Mapline { .. } => line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .context("no address in the server's first line")?
                .to_owned(),
            Kind::Baseline { .. } => {
                let port = line
                    .rsplit(' ')
                    .next()
                    .context("no port in the server's first line")?;
                format!("http://127.0.0.1:{port}")
            }
        };
        let ws_base = format!("{}{ws_path}", http.replacen("http", "ws", 1));
        Ok(Server {
            kind,
            child,
            pid,
            ws_base,
            http,
            rooms: AtomicU32::new(0),
            spawned,
            listening,
        })
    }

    pub fn spawned(&self) -> Instant {
        self.spawned
    }

    /// From the spawn to the "listening" line.
    pub fn listening(&self) -> Duration {
        self.listening
    }

    /// Polls `GET /healthz` until it answers 200 (Mapline only), or fails at `deadline`.
    pub async fn wait_healthy(&self, deadline: Instant) -> Result<()> {
        let url = format!("{}/healthz", self.http);
        tokio::task::spawn_blocking(move || {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .new_agent();
            loop {
                if let Ok(response) = agent.get(&url).call()
                    && response.status().is_success()
                {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    bail!("{url} not ready by the deadline");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .await?
    }

    pub fn name(&self) -> String {
        match &self.kind {
            Kind::Mapline {
                cluster: Some(node),
                ..
            } => format!("Mapline node {} (JetStream R3, fsync always)", node.id),
            Kind::Mapline { .. } => "Mapline (redb, fsync per batch)".to_owned(),
            Kind::Baseline { .. } => "@y/websocket-server (in memory)".to_owned(),
        }
    }

    pub fn is_mapline(&self) -> bool {
        matches!(self.kind, Kind::Mapline { .. })
    }

    pub fn stats(&self) -> Result<ProcStats> {
        proc_stats(&self.pid)
    }

    pub fn url(&self, plan: &Plan) -> String {
        format!("{}/{}?token={}", self.ws_base, plan.room, plan.token)
    }

    /// Creates `n` plans: Mapline's through `POST /api/plans` (the seller's editor link),
    /// the baseline's are just room names.
    pub async fn plans(&self, n: usize) -> Result<Vec<Plan>> {
        if !self.is_mapline() {
            return Ok((0..n)
                .map(|_| Plan {
                    room: format!("bench-{}", self.rooms.fetch_add(1, Ordering::Relaxed)),
                    token: "none".to_owned(),
                })
                .collect());
        }
        let url = format!("{}/api/plans", self.http);
        tokio::task::spawn_blocking(move || create_plans(&url, n, None)).await?
    }

    /// Creates `n` realistic plans in Mapline (the templates enterprise, mid-market and
    /// renewal-expansion in turn, through `POST /api/plans`), `threads` requests at a time.
    pub async fn seed_plans(&self, n: usize, threads: usize) -> Result<Vec<Plan>> {
        if !self.is_mapline() {
            bail!("only Mapline's store can be seeded");
        }
        let url = format!("{}/api/plans", self.http);
        let threads = threads.clamp(1, n.max(1));
        let mut workers = Vec::with_capacity(threads);
        for t in 0..threads {
            // Worker t creates plans t, t + threads, …: the templates stay in turn overall.
            let mine: Vec<usize> = (t..n).step_by(threads).collect();
            let url = url.clone();
            workers.push(tokio::task::spawn_blocking(move || {
                let mut plans = Vec::with_capacity(mine.len());
                for i in mine {
                    let template = TEMPLATES[i % TEMPLATES.len()];
                    plans.push((i, create_plans(&url, 1, Some(template))?.remove(0)));
                }
                anyhow::Ok(plans)
            }));
        }
        let mut all = Vec::with_capacity(n);
        for w in workers {
            all.extend(w.await??);
        }
        all.sort_by_key(|(i, _)| *i);
        Ok(all.into_iter().map(|(_, p)| p).collect())
    }

    /// SIGTERM, then waits for the exit.
    pub async fn stop(mut self) -> Result<()> {
        if let Ok(pid) = self.pid.parse::<i32>() {
            // SAFETY: kill with a pid of our own child and a valid signal.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("the server did not stop within 20 s of SIGTERM");
            }
        }
        Ok(())
    }

    /// Starts the same server again (same binary, same data file).
    pub async fn restart(self) -> Result<Server> {
        let kind = self.kind.clone();
        self.stop().await?;
        Server::start(kind).await
    }
}

/// The built-in templates a seeded plan is made from, in turn.
const TEMPLATES: [&str; 3] = ["enterprise", "mid-market", "renewal-expansion"];

fn create_plans(url: &str, n: usize, template: Option<&str>) -> Result<Vec<Plan>> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let body = match template {
        Some(t) => serde_json::json!({"title": format!("Northwind rollout ({t})"),
            "buyerOrg": "Northwind Health", "sellerOrg": "Mapline Inc",
            "goLive": "2027-04-01", "template": t})
        .to_string(),
        None => {
            r#"{"title":"Bench","buyerOrg":"B","sellerOrg":"S","goLive":"2027-04-01"}"#.to_owned()
        }
    };
    let mut plans = Vec::with_capacity(n);
    for _ in 0..n {
        let response = agent
            .post(url)
            .header("authorization", &format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let text = response.into_body().read_to_string()?;
        if !status.is_success() {
            bail!("POST {url}: {status} {text}");
        }
        let v: serde_json::Value = serde_json::from_str(&text).context("the plan's JSON")?;
        let room = v["id"].as_str().context("no plan id")?.to_owned();
        let token = v["shares"]
            .as_array()
            .and_then(|shares| shares.iter().find(|s| s["side"] == "seller"))
            .and_then(|s| s["token"].as_str())
            .context("no seller link")?
            .to_owned();
        plans.push(Plan { room, token });
    }
    Ok(plans)
}

/// A port that was free a moment ago (the baseline takes a port number, not 0).
fn free_port() -> Result<u16> {
    let probe = TcpListener::bind("127.0.0.1:0")?;
    Ok(probe.local_addr()?.port())
}
