//! `mapline-load`: a load generator for Mapline that is not the bottleneck. Real yrs documents
//! speak y-websocket over tokio-tungstenite, thousands of clients as tasks on a runtime of a few
//! threads; the scenarios of `tests/js/bench/load.mjs` run against Mapline and, in the same
//! invocation, against `@y/websocket-server` (in memory), with the disk's fsync as the floor.
//! Prints a Markdown table. See BENCHMARKS.md.

mod client;
mod protocol;
mod scenarios;
mod server;
mod stats;
mod sys;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use crate::scenarios::{Fanout, FanoutParams, Ingest, Storm};
use crate::server::{Kind, Server};

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
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAPLINE_LOAD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
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
        };
        rows.push(measure(&args, kind).await?);
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

async fn measure(args: &Args, kind: Kind) -> Result<Row> {
    let mut server = Server::start(kind).await?;
    let mut row = Row {
        name: server.name().to_owned(),
        ..Row::default()
    };
    if args.ingest_only {
        let server = ingest_and_loads(args, server, &mut row).await?;
        server.stop().await?;
        return Ok(row);
    }
    tracing::info!(server = %row.name, "fan-out");
    row.fanout = scenarios::fanout(
        &server,
        FanoutParams {
            plans: args.plans,
            clients: args.clients,
            rate: args.rate,
            seconds: args.seconds,
            grace: Duration::from_secs_f64(args.grace),
        },
    )
    .await
    .context("fan-out")?;
    if let Some(e) = &row.fanout.first_error {
        tracing::warn!(
            clients = row.fanout.failed_clients,
            "fan-out clients failed: {e}"
        );
    }
    if !args.fanout_only {
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
    out += &format!(
        "Disk floor ({} × write + fsync of a small file in the data folder): p50 {} ms, p99 {} ms, max {} ms\n\n",
        fsync.count,
        ms(fsync.p50),
        ms(fsync.p99),
        ms(fsync.max)
    );
    out += "| server | delivered | missed | diverged | p50 ms | p95 ms | p99 ms | max ms | server CPU s | load-gen CPU s | peak RSS MiB | connect storm ms | storm RSS/conn KiB | idle RSS/conn KiB | ingest CPU s | ingest wall s | warm join ms | cold load ms |\n";
    out += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for r in rows {
        let f = &r.fanout;
        out += &format!(
            "| {} | {}/{} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
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
    for r in rows {
        if r.fanout.failed_clients > 0 {
            out += &format!(
                "\n{}: {} fan-out clients failed; the first: {}\n",
                r.name,
                r.fanout.failed_clients,
                r.fanout.first_error.as_deref().unwrap_or("")
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
