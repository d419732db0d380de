//! The scenarios only a Mapline cluster has (issue 16): writes across a kill -9 of the log
//! stream's leader, and a node's start-up on a log of many plans.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use yrs::Map;

use crate::client::{Client, now_us};
use crate::engine::Engine;
use crate::protocol::Received;
use crate::server::{Kind, Server};
use crate::stats::{self, AckGap};

/// How long the writer runs before the kill, and after the first ack that follows it.
const STEADY: Duration = Duration::from_secs(3);
/// How long the writes may take to recover, and the last sent to be acknowledged.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(120);

/// What a kill -9 of the log's leader did to one steady writer's acknowledgements.
#[derive(Debug)]
pub struct Recovery {
    /// The engine node killed.
    pub leader: String,
    pub gap: AckGap,
    /// Update messages the writer sent, and how many of them were acknowledged by the end.
    pub sent: u64,
    pub acked: u64,
    /// Acks received (each covers every update sent up to its count).
    pub acks: usize,
}

/// One client on `server` writes `rate` updates/s into a new plan with `?acks=1`; after
/// [`STEADY`] the log stream's leader (`stream`) is killed -9; it writes on for [`STEADY`] after
/// the first ack that follows, then waits (with a deadline) until all it sent is acknowledged.
pub async fn leader_kill(
    server: &Server,
    engine: &mut Engine,
    stream: &str,
    rate: f64,
) -> Result<Recovery> {
    let plan = server.plans(1).await?.remove(0);
    let leader = engine
        .stream_leader(stream)
        .await
        .with_context(|| format!("no engine node names a leader of {stream}"))?;
    let mut c = Client::connect(&format!("{}&acks=1", server.url(&plan))).await?;
    let log = c.doc.get_or_insert_map("log");
    let mut acks: Vec<u64> = Vec::new();
    let mut acked = 0;
    let mut kill = None;
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        let gap = kill.and_then(|k| stats::ack_gap(&acks, k));
        let writing = match gap {
            Some(g) => now_us() < g.first_after + STEADY.as_micros() as u64,
            None => true,
        };
        if !writing && acked >= c.updates_sent {
            break;
        }
        if kill.is_none() && started.elapsed() >= STEADY {
            if acks.is_empty() {
                bail!("no write was acknowledged in {STEADY:?} before the kill");
            }
            tracing::info!(%leader, "kill -9 of the log's leader");
            kill = Some(now_us());
            engine.kill9(&leader).await?;
        }
        if let Some(k) = kill
            && now_us() > k + RECOVERY_DEADLINE.as_micros() as u64
        {
            bail!(
                "{acked} of {} updates acknowledged {RECOVERY_DEADLINE:?} after the kill of {leader}",
                c.updates_sent
            );
        }
        tokio::select! {
            _ = tick.tick(), if writing => {
                c.change(|txn| {
                    log.insert(txn, format!("k{}", n % 100), n as f64);
                })
                .await
                .context("the writer's update")?;
                n += 1;
            }
            received = tokio::time::timeout(Duration::from_millis(100), c.recv()) => {
                // A quiet 100 ms lets the deadlines above be checked.
                if let Ok(received) = received
                    && let Received::Durable { count } = received.context("the writer's socket")?
                    && count > acked
                {
                    acked = count;
                    acks.push(c.last_arrival_us);
                }
            }
        }
    }
    let kill = kill.context("the writer stopped before the kill")?;
    let gap = stats::ack_gap(&acks, kill).context("no ack after the kill")?;
    let sent = c.updates_sent;
    c.close().await;
    Ok(Recovery {
        leader,
        gap,
        sent,
        acked,
        acks: acks.len(),
    })
}

/// A Mapline node's start on a cluster whose log holds many plans.
#[derive(Debug, Default, Clone, Copy)]
pub struct StartTimes {
    /// Spawn → "listening" on stdout (the log applied), → `/healthz` answering 200 (ms).
    pub listening_ms: f64,
    pub healthy_ms: f64,
}

#[derive(Debug, Default)]
pub struct Startup {
    pub plans: usize,
    /// Seconds to create them through a node's API.
    pub seed_s: f64,
    /// A node on an empty replica file: applies the whole log.
    pub fresh: StartTimes,
    /// The seeding node restarted: its file is caught up.
    pub restarted: StartTimes,
}

/// Creates `plans` plans through `seeder`'s API, `threads` at a time; then starts `fresh` (an
/// empty replica file) and restarts the seeder, timing each until it listens and is healthy.
pub async fn startup(seeder: Server, fresh: Kind, plans: usize, threads: usize) -> Result<Startup> {
    tracing::info!(plans, "seeding the cluster");
    let started = Instant::now();
    let created = seeder.seed_plans(plans, threads).await?;
    let seed_s = started.elapsed().as_secs_f64();
    tracing::info!(
        plans = created.len(),
        seed_s,
        "seeded; starting a fresh node"
    );
    let node = Server::start(fresh).await?;
    let fresh = start_times(&node).await?;
    node.stop().await?;
    tracing::info!("restarting the seeding node");
    let node = seeder.restart().await?;
    let restarted = start_times(&node).await?;
    node.stop().await?;
    Ok(Startup {
        plans: created.len(),
        seed_s,
        fresh,
        restarted,
    })
}

async fn start_times(server: &Server) -> Result<StartTimes> {
    let listening_ms = server.listening().as_secs_f64() * 1e3;
    server
        .wait_healthy(Instant::now() + RECOVERY_DEADLINE)
        .await?;
    Ok(StartTimes {
        listening_ms,
        healthy_ms: server.spawned().elapsed().as_secs_f64() * 1e3,
    })
}
