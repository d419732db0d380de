//! `mapline-load`: a load generator for Mapline that is not the bottleneck. Real yrs documents
//! speak y-websocket over tokio-tungstenite, thousands of clients as tasks on a runtime of a few
//! threads; the scenarios of `tests/js/bench/load.mjs` run against Mapline and, in the same
//! invocation, against `@y/websocket-server` (in memory), with the disk's fsync as the floor.
//! Prints a Markdown table. See BENCHMARKS.md.

mod client;
mod cluster;
mod engine;
mod protocol;
mod scenarios;
mod server;
mod stats;
mod sys;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use crate::engine::Engine;
use crate::scenarios::{Fanout, FanoutParams, Ingest, Scale, ScaleParams, Storm};
use crate::server::{ClusterNode, Kind, Plan, Server};

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum Only {
    Mapline,
    Baseline,
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Load generator: Mapline against an in-memory y-websocket server"
)]
struct Args {
    /// Fan-out: plans.
    #[arg(long, env = "MAPLINE_LOAD_PLANS", default_value_t = 50)]
    plans: usize,
    /// Fan-out: clients per plan.
    #[arg(long, env = "MAPLINE_LOAD_CLIENTS", default_value_t = 4)]
    clients: usize,
    /// Fan-out: updates per second per client.
    #[arg(long, env = "MAPLINE_LOAD_RATE", default_value_t = 5.0)]
    rate: f64,
    /// Fan-out: seconds of sending.
    #[arg(long, env = "MAPLINE_LOAD_SECONDS", default_value_t = 20.0)]
    seconds: f64,
    /// Connect storm: clients connecting at once.
    #[arg(long, env = "MAPLINE_LOAD_CONNECT_CLIENTS", default_value_t = 2000)]
    connect_clients: usize,
    /// Connect storm: plans they are spread over.
    #[arg(long, env = "MAPLINE_LOAD_CONNECT_PLANS", default_value_t = 500)]
    connect_plans: usize,
    /// Ingest: updates sent one by one into one plan (then warm and cold load of that plan).
    #[arg(long, env = "MAPLINE_LOAD_INGEST", default_value_t = 20000)]
    ingest: usize,
    /// Idle: sockets held open on one plan.
    #[arg(long, env = "MAPLINE_LOAD_IDLE", default_value_t = 1000)]
    idle: usize,
    /// Run only the fan-out (e.g. to check the generator's own CPU).
    #[arg(long, env = "MAPLINE_LOAD_FANOUT_ONLY")]
    fanout_only: bool,
    /// Run only the ingest and the warm and cold loads of its plan (issue 14's cold load).
    #[arg(long, env = "MAPLINE_LOAD_INGEST_ONLY", conflicts_with = "fanout_only")]
    ingest_only: bool,
    /// Run only the connect storm, `--storm-runs` times, each on a freshly started server:
    /// once with the storm loading its plans' rooms (cold), once on plans that each already
    /// have a client (warm: the connections' own memory); with the kernel's listen-overflow
    /// counters.
    #[arg(long, env = "MAPLINE_LOAD_STORM_ONLY", conflicts_with_all = ["fanout_only", "ingest_only"])]
    storm_only: bool,
    /// Connect storms of `--storm-only`, each kind.
    #[arg(long, env = "MAPLINE_LOAD_STORM_RUNS", default_value_t = 3)]
    storm_runs: usize,
    /// Run only the large node (issue 14): seed Mapline's store with `--scale-plans` plans,
    /// restart it (start-up timed), hold `--scale-sockets` sockets over `--scale-open-plans` of
    /// them, measure idle CPU and RSS, then the fan-out on other plans with the sockets held;
    /// plus the fan-out on an empty Mapline and on the in-memory server.
    #[arg(long, env = "MAPLINE_LOAD_SCALE_ONLY", conflicts_with_all = ["fanout_only", "ingest_only", "storm_only"])]
    scale_only: bool,
    /// Large node: plans in the store (from the built-in templates, in turn).
    #[arg(long, env = "MAPLINE_LOAD_SCALE_PLANS", default_value_t = 10000)]
    scale_plans: usize,
    /// Large node: sockets held open.
    #[arg(long, env = "MAPLINE_LOAD_SCALE_SOCKETS", default_value_t = 5000)]
    scale_sockets: usize,
    /// Large node: plans the held sockets are spread over.
    #[arg(long, env = "MAPLINE_LOAD_SCALE_OPEN_PLANS", default_value_t = 1000)]
    scale_open_plans: usize,
    /// Large node: seconds of each of the two idle windows (CPU and RSS) with the sockets held.
    #[arg(long, env = "MAPLINE_LOAD_SCALE_IDLE", default_value_t = 10.0)]
    scale_idle_seconds: f64,
    /// Large node: plan creations in flight while seeding.
    #[arg(long, env = "MAPLINE_LOAD_SCALE_SEED_THREADS", default_value_t = 4)]
    scale_seed_threads: usize,
    /// Large node: keep the seeded data file here (and its plans' links in `<file>.plans.json`)
    /// and start from a copy of it when it exists, instead of seeding again.
    #[arg(long, env = "MAPLINE_LOAD_SCALE_DATA")]
    scale_data: Option<PathBuf>,
    /// Run only the cluster's figures (issue 16): the fan-out against one Mapline node on
    /// redb and, same parameters, against two nodes (`serve --cluster`, clients spread over
    /// both) on three nats-server processes (R3, fsync always), with the engine's CPU; a
    /// writer's ack gap across a kill -9 of the log's leader; a node's start-up on a log of
    /// `--cluster-plans` plans (fresh file and restarted).
    #[arg(long, env = "MAPLINE_LOAD_CLUSTER_ONLY", conflicts_with_all = ["fanout_only", "ingest_only", "storm_only", "scale_only", "only"])]
    cluster_only: bool,
    /// The nats-server binary the cluster's engine runs (three processes).
    #[arg(
        long,
        env = "MAPLINE_LOAD_NATS_SERVER",
        default_value = "target/venv/bin/nats-server"
    )]
    nats_server: PathBuf,
    /// Cluster: plans created before the start-up is timed (0: no start-up figure).
    #[arg(long, env = "MAPLINE_LOAD_CLUSTER_PLANS", default_value_t = 10000)]
    cluster_plans: usize,
    /// Cluster: updates/s of the writer whose acks are timed across the leader's kill.
    #[arg(long, env = "MAPLINE_LOAD_KILL_RATE", default_value_t = 50.0)]
    kill_rate: f64,
    /// Cold loads of the ingested plan, each after its own restart of Mapline (the table
    /// shows the median, the list every one).
    #[arg(long, env = "MAPLINE_LOAD_COLD_LOADS", default_value_t = 1)]
    cold_loads: usize,
    /// Run against one server only.
    #[arg(long, env = "MAPLINE_LOAD_ONLY")]
    only: Option<Only>,
    /// The Mapline binary to start.
    #[arg(
        long,
        env = "MAPLINE_LOAD_MAPLINE_BIN",
        default_value = "target/release/mapline"
    )]
    mapline_bin: PathBuf,
    /// The baseline's entry point, started with `node`.
    #[arg(
        long,
        env = "MAPLINE_LOAD_BASELINE",
        default_value = "tests/js/node_modules/@y/websocket-server/src/server.js"
    )]
    baseline: PathBuf,
    /// Where Mapline's temporary data folder (and the fsync probe) goes.
    #[arg(long, env = "MAPLINE_LOAD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Write + fsync samples for the disk's floor.
    #[arg(long, env = "MAPLINE_LOAD_FSYNC_SAMPLES", default_value_t = 1000)]
    fsync_samples: usize,
    /// Generator threads (1: one thread drives every client).
    #[arg(long, env = "MAPLINE_LOAD_THREADS", default_value_t = 1)]
    threads: usize,
    /// Seconds a fan-out client keeps waiting for others' updates after its last send.
    #[arg(long, env = "MAPLINE_LOAD_GRACE", default_value_t = 10.0)]
    grace: f64,
}

/// Everything measured against one server.
#[derive(Debug, Default)]
struct Row {
    name: String,
    fanout: Fanout,
    storm: Option<Storm>,
    idle: Option<f64>,
    ingest: Option<Ingest>,
    warm: Option<f64>,
    cold: Option<f64>,
    /// Every cold load, in the order measured.
    colds: Vec<f64>,
    /// `--storm-only`: each run's cold and warm storm, and the load average before it.
    storms: Vec<StormRun>,
    /// `--scale-only`: the large node (Mapline's first row).
    scale: Option<Scale>,
    /// `--scale-only`: seconds spent seeding the store (None: copied from `--scale-data`).
    seed_s: Option<f64>,
}

#[derive(Debug, Default)]
struct StormRun {
    load: String,
    cold: Storm,
    warm: Storm,
    /// The same clients on warm plans, [`WAVE`] at a time.
    waves: Storm,
}

/// Clients per wave in `--storm-only`'s connections in waves.
const WAVE: usize = 50;

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAPLINE_LOAD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if args.storm_only && args.storm_runs == 0 {
        bail!("--storm-runs must be at least 1");
    }
    if args.scale_only && (args.scale_plans < 2 || args.scale_open_plans == 0) {
        bail!("the large node needs at least two plans and one open plan");
    }
    if args.cluster_only && args.kill_rate <= 0.0 {
        bail!("--kill-rate must be positive");
    }
    if args.cold_loads == 0 {
        bail!("--cold-loads must be at least 1");
    }
    if args.plans == 0 || args.clients < 2 || args.rate <= 0.0 || args.seconds <= 0.0 {
        bail!(
            "the fan-out needs at least one plan, two clients per plan and a positive rate and duration"
        );
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let base = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let fsync = {
        let dir = tempfile::Builder::new()
            .prefix("mapline-load-fsync-")
            .tempdir_in(&base)
            .context("a temporary folder for the fsync probe")?;
        let mut samples = sys::fsync_floor(dir.path(), args.fsync_samples)?;
        stats::percentiles(&mut samples)
    };
    if args.cluster_only {
        let figures = measure_cluster(&args, &base).await?;
        print!("{}", report_cluster(&args, &fsync, &figures));
        return Ok(());
    }
    let mut rows = Vec::new();
    if args.only != Some(Only::Baseline) {
        if !args.mapline_bin.exists() {
            bail!(
                "{} not found: cargo build --release -p mapline (or --mapline-bin)",
                args.mapline_bin.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("mapline-load-")
            .tempdir_in(&base)
            .context("a temporary data folder")?;
        let kind = Kind::Mapline {
            bin: args.mapline_bin.clone(),
            data: dir.path().join("m.redb"),
            cluster: None,
        };
        if args.scale_only {
            rows.push(measure_scale(&args, kind).await?);
            let plain = tempfile::Builder::new()
                .prefix("mapline-load-")
                .tempdir_in(&base)
                .context("a temporary data folder")?;
            let kind = Kind::Mapline {
                bin: args.mapline_bin.clone(),
                data: plain.path().join("m.redb"),
                cluster: None,
            };
            let mut row = measure(&args, kind).await?;
            row.name = format!("{}, empty store, no sockets held", row.name);
            rows.push(row);
        } else {
            rows.push(measure(&args, kind).await?);
        }
    }
    if args.only != Some(Only::Mapline) {
        if !args.baseline.exists() {
            bail!(
                "{} not found: npm ci --prefix tests/js (or --baseline)",
                args.baseline.display()
            );
        }
        rows.push(
            measure(
                &args,
                Kind::Baseline {
                    script: args.baseline.clone(),
                },
            )
            .await?,
        );
    }
    print!("{}", report(&args, &fsync, &rows));
    Ok(())
}

/// The log stream of `serve --cluster`'s default prefix (`mapline`).
const LOG_STREAM: &str = "mapline-log";

/// Everything `--cluster-only` measures.
#[derive(Debug, Default)]
struct ClusterFigures {
    /// The fan-out against one node on redb, then against the two-node cluster.
    rows: Vec<Row>,
    recovery: Option<cluster::Recovery>,
    startup: Option<cluster::Startup>,
}

fn cluster_node(engine: &Engine, bin: &Path, dir: &Path, id: &str) -> Kind {
    Kind::Mapline {
        bin: bin.to_owned(),
        data: dir.join(format!("{id}.redb")),
        cluster: Some(ClusterNode {
            urls: engine.urls(),
            monitor: engine.monitor_urls(),
            id: id.to_owned(),
        }),
    }
}

/// `--cluster-only`: the single node's fan-out, then on a fresh engine the two nodes' fan-out
/// and the leader's kill, then on another fresh engine the start-up.
async fn measure_cluster(args: &Args, base: &Path) -> Result<ClusterFigures> {
    if !args.mapline_bin.exists() {
        bail!(
            "{} not found: cargo build --release -p mapline (or --mapline-bin)",
            args.mapline_bin.display()
        );
    }
    let mut figures = ClusterFigures::default();
    let dir = tempfile::Builder::new()
        .prefix("mapline-load-")
        .tempdir_in(base)
        .context("a temporary data folder")?;
    let single = Server::start(Kind::Mapline {
        bin: args.mapline_bin.clone(),
        data: dir.path().join("single.redb"),
        cluster: None,
    })
    .await?;
    let mut row = Row {
        name: single.name(),
        ..Row::default()
    };
    tracing::info!(server = %row.name, "fan-out");
    row.fanout = scenarios::fanout(&single, fanout_params(args))
        .await
        .context("fan-out, one node")?;
    single.stop().await?;
    figures.rows.push(row);

    let mut engine = Engine::start(&args.nats_server, base).await?;
    let a = Server::start(cluster_node(&engine, &args.mapline_bin, dir.path(), "a")).await?;
    let b = Server::start(cluster_node(&engine, &args.mapline_bin, dir.path(), "b")).await?;
    let mut row = Row {
        name: "Mapline ×2 (nodes a, b) on 3 × nats-server (JetStream R3, fsync always)".to_owned(),
        ..Row::default()
    };
    tracing::info!(server = %row.name, "fan-out");
    row.fanout = scenarios::fanout_on(&[&a, &b], Some(&engine), fanout_params(args))
        .await
        .context("fan-out, two nodes")?;
    figures.rows.push(row);
    b.stop().await?;
    tracing::info!("writes across a kill -9 of the log's leader");
    figures.recovery = Some(
        cluster::leader_kill(&a, &mut engine, LOG_STREAM, args.kill_rate)
            .await
            .context("the leader's kill")?,
    );
    a.stop().await?;
    drop(engine);

    if args.cluster_plans > 0 {
        let engine = Engine::start(&args.nats_server, base).await?;
        let seeder =
            Server::start(cluster_node(&engine, &args.mapline_bin, dir.path(), "s")).await?;
        figures.startup = Some(
            cluster::startup(
                seeder,
                cluster_node(&engine, &args.mapline_bin, dir.path(), "fresh"),
                args.cluster_plans,
                args.scale_seed_threads,
            )
            .await
            .context("the start-up on a seeded cluster")?,
        );
    }
    Ok(figures)
}

fn fanout_params(args: &Args) -> FanoutParams {
    FanoutParams {
        plans: args.plans,
        clients: args.clients,
        rate: args.rate,
        seconds: args.seconds,
        grace: Duration::from_secs_f64(args.grace),
    }
}

/// `--storm-only`: each run on fresh servers, the cold storm then the warm one.
async fn measure_storms(args: &Args, kind: Kind) -> Result<Row> {
    let mut row = Row::default();
    for run in 1..=args.storm_runs {
        let load = sys::load_average();
        let server = Server::start(kind.clone()).await?;
        row.name = server.name();
        tracing::info!(server = %row.name, run, %load, "connect storm, cold");
        let cold = scenarios::connect_storm(&server, args.connect_clients, args.connect_plans)
            .await
            .context("connect storm")?;
        server.stop().await?;
        let server = Server::start(kind.clone()).await?;
        tracing::info!(server = %row.name, run, "connect storm, warm");
        let warm = scenarios::connect_storm_warm(&server, args.connect_clients, args.connect_plans)
            .await
            .context("warm connect storm")?;
        server.stop().await?;
        let server = Server::start(kind.clone()).await?;
        tracing::info!(server = %row.name, run, "connections in waves");
        let waves =
            scenarios::connect_waves(&server, args.connect_clients, args.connect_plans, WAVE)
                .await
                .context("connections in waves")?;
        server.stop().await?;
        row.storms.push(StormRun {
            load,
            cold,
            warm,
            waves,
        });
    }
    Ok(row)
}

/// `--scale-only` for Mapline: a seeded store (or a copy of `--scale-data`), the timed start
/// on it, then the sockets, the idle window and the fan-out.
async fn measure_scale(args: &Args, kind: Kind) -> Result<Row> {
    let Kind::Mapline { data, .. } = &kind else {
        bail!("the large node is Mapline's");
    };
    let cached = args
        .scale_data
        .as_ref()
        .filter(|f| f.exists() && plans_file(f).exists());
    let (plans, seed_s) = if let Some(file) = cached {
        tracing::info!(file = %file.display(), "starting from a copy of the seeded store");
        std::fs::copy(file, data).context("copying the seeded store")?;
        // On disk before the timed start: else the server's first commit's fsync writes the
        // whole copy (seen: 1.4 s to "listening" instead of a few ms).
        std::fs::File::open(data)
            .and_then(|f| f.sync_all())
            .context("syncing the copy of the seeded store")?;
        (read_plans(&plans_file(file))?, None)
    } else {
        let server = Server::start(kind.clone()).await?;
        tracing::info!(plans = args.scale_plans, "seeding");
        let started = std::time::Instant::now();
        let plans = server
            .seed_plans(args.scale_plans, args.scale_seed_threads)
            .await
            .context("seeding the store")?;
        let seed_s = started.elapsed().as_secs_f64();
        server.stop().await?;
        if let Some(file) = &args.scale_data {
            std::fs::copy(data, file).context("keeping the seeded store")?;
            write_plans(&plans_file(file), &plans)?;
        }
        (plans, Some(seed_s))
    };
    if plans.len() < 2 {
        bail!("the seeded store holds {} plans", plans.len());
    }
    let server = Server::start(kind).await?;
    let mut row = Row {
        name: format!(
            "{}, {} plans stored, {} sockets held over {} plans",
            server.name(),
            plans.len(),
            args.scale_sockets,
            args.scale_open_plans
        ),
        seed_s,
        ..Row::default()
    };
    let mut scale = scenarios::scale(
        &server,
        &plans,
        ScaleParams {
            sockets: args.scale_sockets,
            open_plans: args.scale_open_plans,
            idle: Duration::from_secs_f64(args.scale_idle_seconds),
        },
        fanout_params(args),
    )
    .await
    .context("large node")?;
    server.stop().await?;
    // The fan-out's figures are the row's (the table compares them with the other servers').
    row.fanout = std::mem::take(&mut scale.fanout);
    row.scale = Some(scale);
    Ok(row)
}

fn plans_file(data: &std::path::Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".plans.json");
    PathBuf::from(name)
}

fn write_plans(path: &std::path::Path, plans: &[Plan]) -> Result<()> {
    let list: Vec<serde_json::Value> = plans
        .iter()
        .map(|p| serde_json::json!({"room": p.room, "token": p.token}))
        .collect();
    std::fs::write(path, serde_json::to_vec(&list)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn read_plans(path: &std::path::Path) -> Result<Vec<Plan>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let list: Vec<serde_json::Value> = serde_json::from_str(&text)?;
    list.iter()
        .map(|p| {
            Ok(Plan {
                room: p["room"]
                    .as_str()
                    .context("a plan without a room")?
                    .to_owned(),
                token: p["token"]
                    .as_str()
                    .context("a plan without a token")?
                    .to_owned(),
            })
        })
        .collect()
}

async fn measure(args: &Args, kind: Kind) -> Result<Row> {
    if args.storm_only {
        return measure_storms(args, kind).await;
    }
    let mut server = Server::start(kind).await?;
    let mut row = Row {
        name: server.name(),
        ..Row::default()
    };
    if args.ingest_only {
        let server = ingest_and_loads(args, server, &mut row).await?;
        server.stop().await?;
        return Ok(row);
    }
    tracing::info!(server = %row.name, "fan-out");
    row.fanout = scenarios::fanout(&server, fanout_params(args))
        .await
        .context("fan-out")?;
    if let Some(e) = &row.fanout.first_error {
        tracing::warn!(
            clients = row.fanout.failed_clients,
            "fan-out clients failed: {e}"
        );
    }
    if !args.fanout_only && !args.scale_only {
        tracing::info!(server = %row.name, "connect storm");
        row.storm = Some(
            scenarios::connect_storm(&server, args.connect_clients, args.connect_plans)
                .await
                .context("connect storm")?,
        );
        tracing::info!(server = %row.name, "idle");
        row.idle = Some(scenarios::idle(&server, args.idle).await.context("idle")?);
        server = ingest_and_loads(args, server, &mut row).await?;
    }
    server.stop().await?;
    Ok(row)
}

/// The ingest, a warm join of its plan and (Mapline) `--cold-loads` cold loads, each after a
/// restart.
async fn ingest_and_loads(args: &Args, mut server: Server, row: &mut Row) -> Result<Server> {
    tracing::info!(server = %row.name, "ingest");
    let (ingest, plan) = scenarios::ingest(&server, args.ingest)
        .await
        .context("ingest")?;
    row.ingest = Some(ingest);
    row.warm = Some(
        scenarios::join(&server, &plan, args.ingest)
            .await
            .context("warm join")?,
    );
    if server.is_mapline() {
        for _ in 0..args.cold_loads {
            server = server.restart().await?;
            row.colds.push(
                scenarios::join(&server, &plan, args.ingest)
                    .await
                    .context("cold load")?,
            );
        }
        let mut sorted = row.colds.clone();
        sorted.sort_by(f64::total_cmp);
        row.cold = sorted.get(sorted.len() / 2).copied();
    }
    Ok(server)
}

/// A line per row whose fan-out had clients that failed, with the first error.
fn failed_clients(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows.iter().filter(|r| r.fanout.failed_clients > 0) {
        out += &format!(
            "\n{}: {} fan-out clients failed; the first: {}\n",
            r.name,
            r.fanout.failed_clients,
            r.fanout.first_error.as_deref().unwrap_or("")
        );
    }
    out
}

/// A fan-out's cells, from *delivered* to *peak RSS MiB*, as every table shows them.
fn fanout_cells(f: &Fanout) -> String {
    format!(
        "{}/{} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.1}",
        f.delivery.delivered,
        f.delivery.expected,
        f.delivery.missed,
        f.delivery.diverged,
        ms(f.latency.p50),
        ms(f.latency.p95),
        ms(f.latency.p99),
        ms(f.latency.max),
        f.server_cpu,
        f.generator_cpu,
        f.peak_rss as f64 / 1048576.0,
    )
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1e3)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".to_owned()
    }
}

fn report(args: &Args, fsync: &stats::Percentiles, rows: &[Row]) -> String {
    let mut out = String::new();
    let command: Vec<String> = std::env::args().collect();
    out += &format!("Command: `{}`\n\n", command.join(" "));
    if args.ingest_only {
        return report_ingest(args, &out, rows);
    }
    if args.storm_only {
        return report_storms(args, &out, rows);
    }
    if args.scale_only {
        return report_scale(args, &out, fsync, rows);
    }
    let others = if args.fanout_only {
        "the fan-out only".to_owned()
    } else {
        format!(
            "connect storm {} clients over {} plans; idle {}; ingest {}",
            args.connect_clients, args.connect_plans, args.idle, args.ingest
        )
    };
    out += &format!(
        "Parameters: fan-out {} plans × {} clients × {} updates/s × {} s; {others}; generator threads {}\n\n",
        args.plans, args.clients, args.rate, args.seconds, args.threads
    );
    out += &format!("Machine: {}\n\n", sys::machine());
    out += &disk_floor_line(fsync);
    out += "| server | delivered | missed | diverged | p50 ms | p95 ms | p99 ms | max ms | server CPU s | load-gen CPU s | peak RSS MiB | connect storm ms | storm RSS/conn KiB | idle RSS/conn KiB | ingest CPU s | ingest wall s | warm join ms | cold load ms |\n";
    out += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            fanout_cells(&r.fanout),
            opt(r.storm.as_ref().map(|s| s.ms), 0),
            opt(r.storm.as_ref().map(|s| s.rss_per_conn / 1024.0), 1),
            opt(r.idle.map(|v| v / 1024.0), 1),
            opt(r.ingest.as_ref().map(|i| i.cpu), 2),
            opt(r.ingest.as_ref().map(|i| i.seconds), 2),
            opt(r.warm, 1),
            opt(r.cold, 1),
        );
    }
    if let [m, b] = rows {
        let (mf, bf) = (&m.fanout, &b.fanout);
        let pair = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => ratio(x, y),
            _ => "–".to_owned(),
        };
        out += &format!(
            "| ratio Mapline / in-memory | | | | {} | {} | {} | {} | {} | | {} | {} | {} | {} | {} | {} | {} | |\n",
            ratio(mf.latency.p50 as f64, bf.latency.p50 as f64),
            ratio(mf.latency.p95 as f64, bf.latency.p95 as f64),
            ratio(mf.latency.p99 as f64, bf.latency.p99 as f64),
            ratio(mf.latency.max as f64, bf.latency.max as f64),
            ratio(mf.server_cpu, bf.server_cpu),
            ratio(mf.peak_rss as f64, bf.peak_rss as f64),
            pair(
                m.storm.as_ref().map(|s| s.ms),
                b.storm.as_ref().map(|s| s.ms)
            ),
            pair(
                m.storm.as_ref().map(|s| s.rss_per_conn),
                b.storm.as_ref().map(|s| s.rss_per_conn)
            ),
            pair(m.idle, b.idle),
            pair(
                m.ingest.as_ref().map(|i| i.cpu),
                b.ingest.as_ref().map(|i| i.cpu)
            ),
            pair(
                m.ingest.as_ref().map(|i| i.seconds),
                b.ingest.as_ref().map(|i| i.seconds)
            ),
            pair(m.warm, b.warm),
        );
    }
    out += &failed_clients(rows);
    out
}

/// The report of `--cluster-only`: the fan-out of both rows, the leader's kill, the start-up.
fn report_cluster(args: &Args, fsync: &stats::Percentiles, figures: &ClusterFigures) -> String {
    let command: Vec<String> = std::env::args().collect();
    let mut out = format!("Command: `{}`\n\n", command.join(" "));
    out += &format!(
        "Parameters: fan-out {} plans × {} clients × {} updates/s × {} s (two nodes: each plan's clients alternate between them); leader kill: one writer, {} updates/s, acks=1, on node a; start-up on {} plans (created through a node's API, {} in flight); generator threads {}\n\n",
        args.plans,
        args.clients,
        args.rate,
        args.seconds,
        args.kill_rate,
        args.cluster_plans,
        args.scale_seed_threads,
        args.threads
    );
    out += &machine_line();
    out += &disk_floor_line(fsync);
    out += "| server | delivered | missed | diverged | p50 ms | p95 ms | p99 ms | max ms | server CPU s | load-gen CPU s | peak RSS MiB | CPU s per Mapline node | engine CPU s (3 × nats-server) |\n";
    out += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for r in &figures.rows {
        let per_node: Vec<String> = r
            .fanout
            .node_cpu
            .iter()
            .map(|c| format!("{c:.2}"))
            .collect();
        out += &format!(
            "| {} | {} | {} | {} |\n",
            r.name,
            fanout_cells(&r.fanout),
            per_node.join(" / "),
            opt(r.fanout.engine_cpu, 2),
        );
    }
    if let [one, two] = &figures.rows[..] {
        let (o, t) = (&one.fanout, &two.fanout);
        out += &format!(
            "| ratio cluster / one node | | | | {} | {} | {} | {} | {} | | | | |\n",
            ratio(t.latency.p50 as f64, o.latency.p50 as f64),
            ratio(t.latency.p95 as f64, o.latency.p95 as f64),
            ratio(t.latency.p99 as f64, o.latency.p99 as f64),
            ratio(t.latency.max as f64, o.latency.max as f64),
            ratio(t.server_cpu + t.engine_cpu.unwrap_or(0.0), o.server_cpu),
        );
        out += "\n(The ratio's server CPU is the cluster's Mapline nodes plus its engine against the one node.)\n";
    }
    out += &failed_clients(&figures.rows);
    if let Some(r) = &figures.recovery {
        out += "\n| writes across a kill -9 of the log's leader | value |\n| --- | --- |\n";
        out += &format!(
            "| engine node killed (the log stream's leader) | {} |\n",
            r.leader
        );
        out += &format!(
            "| last ack before the kill → first ack after | {:.0} ms |\n",
            r.gap.gap_us() as f64 / 1e3
        );
        out += &format!(
            "| the kill → first ack after | {:.0} ms |\n",
            r.gap.after_kill_us() as f64 / 1e3
        );
        out += &format!(
            "| update messages sent / acknowledged by the end | {} / {} ({} acks) |\n",
            r.sent, r.acked, r.acks
        );
    }
    if let Some(s) = &figures.startup {
        out += &format!(
            "\nStart-up of a node on a log of {} plans (created through node s's API in {:.1} s):\n\n",
            s.plans, s.seed_s
        );
        out += "| node | replica file | spawn → listening ms | spawn → /healthz 200 ms |\n| --- | --- | --- | --- |\n";
        for (name, file, t) in [
            ("fresh", "empty: applies the whole log", s.fresh),
            ("s, restarted", "caught up", s.restarted),
        ] {
            out += &format!(
                "| {name} | {file} | {:.1} | {:.1} |\n",
                t.listening_ms, t.healthy_ms
            );
        }
    }
    out
}

/// The report of `--ingest-only`: the ingest and the loads of its plan.
fn report_ingest(args: &Args, head: &str, rows: &[Row]) -> String {
    let mut out = head.to_owned();
    out += &format!(
        "Parameters: ingest {} updates into one plan, then a warm join and {} cold load(s), each after a restart\n\n",
        args.ingest, args.cold_loads
    );
    out += &format!("Machine: {}\n\n", sys::machine());
    out += "| server | ingest CPU s | ingest wall s | warm join ms | cold load ms (median) | every cold load ms |\n";
    out += "| --- | --- | --- | --- | --- | --- |\n";
    for r in rows {
        let colds: Vec<String> = r.colds.iter().map(|c| format!("{c:.1}")).collect();
        out += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name,
            opt(r.ingest.as_ref().map(|i| i.cpu), 2),
            opt(r.ingest.as_ref().map(|i| i.seconds), 2),
            opt(r.warm, 1),
            opt(r.cold, 1),
            if colds.is_empty() {
                "n/a".to_owned()
            } else {
                colds.join(", ")
            },
        );
    }
    out
}

/// The report of `--storm-only`: every run, cold and warm, then min / median / max.
fn report_storms(args: &Args, head: &str, rows: &[Row]) -> String {
    let mut out = head.to_owned();
    out += &format!(
        "Parameters: connect storm {} clients over {} plans, {} run(s) per server, each storm on a freshly started server; cold: the storm loads the plans' rooms; warm: each plan already has one client connected; waves: as warm, but {WAVE} clients at a time, each wave synced before the next\n\n",
        args.connect_clients, args.connect_plans, args.storm_runs
    );
    out += &format!("Machine: {}\n\n", sys::machine());
    out += "| server | run | load average | cold: all synced ms | cold: RSS/conn KiB (1 s later) | cold: listen overflows / drops | warm: all synced ms | warm: RSS/conn KiB (1 s later) | warm: listen overflows / drops | waves: RSS/conn KiB (1 s later) |\n";
    out += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for r in rows {
        for (i, s) in r.storms.iter().enumerate() {
            out += &format!(
                "| {} | {} | {} | {:.0} | {:.1} ({:.1}) | {} / {} | {:.0} | {:.1} ({:.1}) | {} / {} | {:.1} ({:.1}) |\n",
                r.name,
                i + 1,
                s.load,
                s.cold.ms,
                s.cold.rss_per_conn / 1024.0,
                s.cold.rss_per_conn_settled / 1024.0,
                s.cold.listen.overflows,
                s.cold.listen.drops,
                s.warm.ms,
                s.warm.rss_per_conn / 1024.0,
                s.warm.rss_per_conn_settled / 1024.0,
                s.warm.listen.overflows,
                s.warm.listen.drops,
                s.waves.rss_per_conn / 1024.0,
                s.waves.rss_per_conn_settled / 1024.0,
            );
        }
    }
    out += "\n| server | cold ms min / median / max | warm ms min / median / max | cold RSS/conn KiB median | warm RSS/conn KiB median |\n";
    out += "| --- | --- | --- | --- | --- |\n";
    let show = |v: Option<stats::Spread>, scale: f64, digits: usize| {
        v.map_or_else(
            || "n/a".to_owned(),
            |s| {
                format!(
                    "{:.digits$} / {:.digits$} / {:.digits$}",
                    s.min / scale,
                    s.median / scale,
                    s.max / scale
                )
            },
        )
    };
    for r in rows {
        let pick =
            |f: fn(&StormRun) -> f64| stats::spread(&r.storms.iter().map(f).collect::<Vec<_>>());
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            r.name,
            show(pick(|s| s.cold.ms), 1.0, 0),
            show(pick(|s| s.warm.ms), 1.0, 0),
            opt(pick(|s| s.cold.rss_per_conn).map(|s| s.median / 1024.0), 1),
            opt(pick(|s| s.warm.rss_per_conn).map(|s| s.median / 1024.0), 1),
        );
    }
    out
}

/// The report of `--scale-only`: the large node's start, memory and idle CPU, then the
/// fan-out of every row against the in-memory server's.
fn report_scale(args: &Args, head: &str, fsync: &stats::Percentiles, rows: &[Row]) -> String {
    let mut out = head.to_owned();
    out += &format!(
        "Parameters: {} plans stored (templates in turn), {} sockets held over {} of them, {} s idle; fan-out {} plans × {} clients × {} updates/s × {} s on other plans; generator threads {}\n\n",
        args.scale_plans,
        args.scale_sockets,
        args.scale_open_plans,
        args.scale_idle_seconds,
        args.plans,
        args.clients,
        args.rate,
        args.seconds,
        args.threads
    );
    out += &machine_line();
    out += &disk_floor_line(fsync);
    for r in rows {
        let Some(s) = &r.scale else { continue };
        let m = &s.memory;
        let mib = |b: u64| b as f64 / 1048576.0;
        out += &format!("{}:\n\n", r.name);
        out += "| figure | value |\n| --- | --- |\n";
        out += &format!(
            "| seeding the store | {} |\n",
            r.seed_s.map_or_else(
                || "copied from --scale-data".to_owned(),
                |s| format!("{s:.1} s")
            )
        );
        out += &format!(
            "| start-up: spawn → listening / → /healthz 200 / → first client synced | {:.1} / {:.1} / {:.1} ms |\n",
            s.listening_ms, s.healthy_ms, s.first_sync_ms
        );
        out += &format!("| RSS after start | {:.1} MiB |\n", mib(s.started_rss));
        out += &format!(
            "| one socket on each of {} plans (rooms loaded cold) | {:.0} ms, RSS {:.1} MiB: {:.1} KiB per room + its socket |\n",
            m.plans,
            s.rooms_ms,
            mib(m.rooms_open),
            m.per_room() / 1024.0
        );
        out += &format!(
            "| the other {} sockets (rooms warm) | {:.0} ms, RSS {:.1} MiB: {:.1} KiB per socket |\n",
            m.sockets.saturating_sub(m.plans),
            s.rest_ms,
            mib(m.all_open),
            m.per_socket_warm() / 1024.0
        );
        out += &format!(
            "| all {} sockets, rooms included | {:.1} KiB per socket |\n",
            m.sockets,
            m.per_socket_cold() / 1024.0
        );
        for (i, w) in s.idle.iter().enumerate() {
            out += &format!(
                "| idle window {}, sockets held: CPU, RSS at its end | {:.2} s over {:.1} s ({:.2} % of a core), {:.1} MiB |\n",
                i + 1,
                w.cpu,
                w.seconds,
                stats::percent_of_a_core(w.cpu, w.seconds),
                mib(w.rss)
            );
        }
        out += &format!(
            "| RSS after the fan-out, sockets held | {:.1} MiB |\n",
            mib(s.end_rss)
        );
        out += &format!("| held sockets the server closed | {} |\n\n", s.closed);
    }
    out += "| server | delivered | missed | diverged | p50 ms | p95 ms | p99 ms | max ms | server CPU s | load-gen CPU s | peak RSS MiB |\n";
    out += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for r in rows {
        out += &format!("| {} | {} |\n", r.name, fanout_cells(&r.fanout));
    }
    if let Some((b, ms_rows)) = rows.split_last()
        && !b.name.starts_with("Mapline")
    {
        for m in ms_rows {
            let (mf, bf) = (&m.fanout, &b.fanout);
            out += &format!(
                "| ratio {} / in-memory | | | | {} | {} | {} | {} | {} | | |\n",
                if m.scale.is_some() {
                    "large node"
                } else {
                    "empty store"
                },
                ratio(mf.latency.p50 as f64, bf.latency.p50 as f64),
                ratio(mf.latency.p95 as f64, bf.latency.p95 as f64),
                ratio(mf.latency.p99 as f64, bf.latency.p99 as f64),
                ratio(mf.latency.max as f64, bf.latency.max as f64),
                ratio(mf.server_cpu, bf.server_cpu),
            );
        }
    }
    out += &failed_clients(rows);
    out
}

/// The report's machine line, with the load average as the run ends.
fn machine_line() -> String {
    format!(
        "Machine: {}; load average at the end {}\n\n",
        sys::machine(),
        sys::load_average()
    )
}

/// The report's line on the disk's own fsync latency, the floor under a durable commit.
fn disk_floor_line(fsync: &stats::Percentiles) -> String {
    format!(
        "Disk floor ({} × write + fsync of a small file in the data folder): p50 {} ms, p99 {} ms, max {} ms\n\n",
        fsync.count,
        ms(fsync.p50),
        ms(fsync.p99),
        ms(fsync.max)
    )
}
