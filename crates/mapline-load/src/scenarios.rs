//! The scenarios of `tests/js/bench/load.mjs`, each against one running server.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use yrs::types::ToJson;
use yrs::{Any, ArrayPrelim, Doc, Map, MapPrelim, MapRef, Out, ReadTxn, StateVector, Transact};

use crate::client::{Arrivals, Client, now_us};
use crate::engine::Engine;
use crate::server::{Plan, Server};
use crate::stats::{self, ClientEnd, ConnMemory, Delivery, Percentiles};
use crate::sys::{ListenCounters, listen_counters, proc_stats};

/// Milestones the first client of every plan writes before the fan-out (a plan of realistic
/// size, the same in every server): like the enterprise template's.
const SEED_MILESTONES: usize = 17;
/// How long a step may take before the scenario fails.
const STEP_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
pub struct FanoutParams {
    pub plans: usize,
    pub clients: usize,
    pub rate: f64,
    pub seconds: f64,
    /// How long after its last send a client keeps waiting for the others' updates.
    pub grace: Duration,
}

#[derive(Debug, Default)]
pub struct Fanout {
    pub sent: u64,
    pub delivery: Delivery,
    pub latency: Percentiles,
    /// CPU seconds of the Mapline nodes, summed.
    pub server_cpu: f64,
    /// Each Mapline node's, in the order given.
    pub node_cpu: Vec<f64>,
    /// The engine's (every nats-server process's, summed), for a cluster.
    pub engine_cpu: Option<f64>,
    pub generator_cpu: f64,
    pub peak_rss: u64,
    pub failed_clients: usize,
    pub first_error: Option<String>,
}

/// A client's final document, compared between the clients of a plan.
#[derive(Debug, PartialEq)]
struct Summary {
    sv: StateVector,
    bench: Any,
    milestones: Any,
}

fn summary(doc: &Doc) -> Summary {
    let (bench, milestones) = (
        doc.get_or_insert_map("bench"),
        doc.get_or_insert_map("milestones"),
    );
    let txn = doc.transact();
    Summary {
        sv: txn.state_vector(),
        bench: bench.to_json(&txn),
        milestones: milestones.to_json(&txn),
    }
}

/// P plans × C clients, each writing R updates/s for S seconds: every update sets a note of the
/// client's own milestone (plan data, so Mapline derives history) and a key `t<c>-<n>` holding
/// its send time; every other client of the plan measures its arrival.
pub async fn fanout(server: &Server, p: FanoutParams) -> Result<Fanout> {
    fanout_on(&[server], None, p).await
}

/// The fan-out with each plan's clients spread over `servers` in turn (client `c` of a plan
/// on server `c mod n`, so with two nodes an update sent on one reaches clients of the other):
/// the plans are created on the first; `engine`'s CPU is measured with the servers'.
pub async fn fanout_on(
    servers: &[&Server],
    engine: Option<&Engine>,
    p: FanoutParams,
) -> Result<Fanout> {
    let first = servers.first().context("the fan-out needs a server")?;
    let plans = first.plans(p.plans).await?;
    // Another node learns of a plan when it applies the log: a connect there may come first
    // and be turned away; it is retried until the step's deadline.
    let retry = servers.len() > 1;
    let deadline = Instant::now() + STEP_DEADLINE;
    let mut connecting = Vec::new();
    for plan in &plans {
        for c in 0..p.clients {
            let url = servers[c % servers.len()].url(plan);
            connecting.push(tokio::spawn(async move {
                if retry {
                    Client::connect_until(&url, deadline).await
                } else {
                    Client::connect(&url).await
                }
            }));
        }
    }
    let mut clients = Vec::with_capacity(connecting.len());
    for c in connecting {
        clients.push(c.await??);
    }

    tracing::debug!(clients = clients.len(), "connected and synced");
    // Seed: the first client of each plan writes the milestones, every client its own one.
    let deadline = Instant::now() + STEP_DEADLINE;
    let mut seeding = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let size = p.clients;
        seeding.push(tokio::spawn(async move {
            // Root types are taken before a transaction opens (taking one opens its own).
            let milestones = c.doc.get_or_insert_map("milestones");
            if i % size == 0 {
                c.change(|txn| seed_plan(&milestones, txn)).await?;
            }
            c.change(|txn| {
                milestones.insert(
                    txn,
                    format!("bench-{i}"),
                    MapPrelim::from([("title", format!("Bench {i}"))]),
                );
            })
            .await?;
            c.recv_until(deadline, |doc| {
                milestones.len(&doc.transact()) as usize >= SEED_MILESTONES + size
            })
            .await
            .context("waiting for the seeded plan")?;
            anyhow::Ok(c)
        }));
    }
    let mut clients = Vec::with_capacity(seeding.len());
    for s in seeding {
        clients.push(s.await??);
    }

    tracing::debug!("plans seeded");
    // Fan-out: clients start staggered over one period, like independent users.
    let n = (p.rate * p.seconds).round() as u32;
    let period = Duration::from_secs_f64(1.0 / p.rate);
    let total = clients.len() as u32;
    let servers_before = servers
        .iter()
        .map(|s| s.stats())
        .collect::<Result<Vec<_>>>()?;
    let engine_before = engine.map(Engine::cpu_s).transpose()?;
    let self_before = proc_stats("self")?;
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut running = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let offset = period.mul_f64(i as f64 / f64::from(total));
        let spec = Spec {
            me: i as u32,
            n,
            plan_size: p.clients as u32,
            start: start + offset,
            period,
            deadline: start + period * n + p.grace,
        };
        running.push(tokio::spawn(fanout_client(c, spec)));
    }
    let mut ends = Vec::with_capacity(running.len());
    let mut latencies = Vec::new();
    let mut result = Fanout::default();
    for r in running {
        let (end, mut lat, error) = r.await?;
        latencies.append(&mut lat);
        result.sent += u64::from(end.sent);
        if let Some(e) = error {
            result.failed_clients += 1;
            result.first_error.get_or_insert(e);
        }
        ends.push(end);
    }
    let servers_after = servers
        .iter()
        .map(|s| s.stats())
        .collect::<Result<Vec<_>>>()?;
    let engine_after = engine.map(Engine::cpu_s).transpose()?;
    let self_after = proc_stats("self")?;
    for plan in ends.chunks(p.clients) {
        result.delivery += stats::account_plan(plan);
    }
    result.latency = stats::percentiles(&mut latencies);
    result.node_cpu = servers_before
        .iter()
        .zip(&servers_after)
        .map(|(before, after)| after.cpu_s - before.cpu_s)
        .collect();
    result.server_cpu = result.node_cpu.iter().sum();
    result.engine_cpu = engine_before
        .zip(engine_after)
        .map(|(before, after)| after - before);
    result.generator_cpu = self_after.cpu_s - self_before.cpu_s;
    result.peak_rss = servers_after.iter().map(|s| s.peak_rss).max().unwrap_or(0);
    Ok(result)
}

fn seed_plan(milestones: &MapRef, txn: &mut yrs::TransactionMut) {
    for k in 0..SEED_MILESTONES {
        let depends: Vec<String> = if k > 0 {
            vec![format!("ms-{}", k - 1)]
        } else {
            vec![]
        };
        let mut m = MapPrelim::from([
            (
                "title",
                format!("Milestone {k} of the plan, with a realistic title"),
            ),
            ("workstream", "legal_procurement".to_owned()),
            ("side", "joint".to_owned()),
            ("owner", "Dana Whitfield".to_owned()),
            ("due", format!("2027-03-{:02}", k + 1)),
            ("status", "not_started".to_owned()),
            ("order", format!("a{k}")),
        ]);
        m.insert("dependsOn".into(), ArrayPrelim::from(depends).into());
        milestones.insert(txn, format!("ms-{k}"), m);
    }
}

struct Spec {
    me: u32,
    n: u32,
    plan_size: u32,
    start: tokio::time::Instant,
    period: Duration,
    deadline: tokio::time::Instant,
}

async fn fanout_client(
    mut c: Client,
    spec: Spec,
) -> (ClientEnd<impl PartialEq + use<>>, Vec<u64>, Option<String>) {
    let bench = c.doc.get_or_insert_map("bench");
    let arrivals = Arrivals::watch(&bench, spec.me);
    let mut latencies = Vec::with_capacity((spec.n * spec.plan_size) as usize);
    let mut sent = 0;
    let error = run_fanout(&mut c, &spec, &bench, &arrivals, &mut sent, &mut latencies)
        .await
        .err()
        .map(|e| format!("{e:#}"));
    let holds = {
        let txn = c.doc.transact();
        bench
            .keys(&txn)
            .filter_map(stats::parse_key)
            .filter(|(from, _)| *from != spec.me)
            .collect()
    };
    let end = ClientEnd {
        id: spec.me,
        sent,
        holds,
        state: summary(&c.doc),
    };
    c.close().await;
    (end, latencies, error)
}

async fn run_fanout(
    c: &mut Client,
    spec: &Spec,
    bench: &MapRef,
    arrivals: &Arrivals,
    sent: &mut u32,
    latencies: &mut Vec<u64>,
) -> Result<()> {
    let milestone = match c
        .doc
        .get_or_insert_map("milestones")
        .get(&c.doc.transact(), &format!("bench-{}", spec.me))
    {
        Some(Out::YMap(m)) => m,
        _ => bail!("the client's own milestone is not a map"),
    };
    let mut tick = tokio::time::interval_at(spec.start, spec.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let all = spec.n * spec.plan_size;
    let deadline = tokio::time::sleep_until(spec.deadline);
    tokio::pin!(deadline);
    loop {
        if *sent == spec.n && bench.len(&c.doc.transact()) >= all {
            return Ok(());
        }
        tokio::select! {
            _ = tick.tick(), if *sent < spec.n => {
                let t = now_us();
                let n = *sent;
                c.change(|txn| {
                    bench.insert(txn, stats::key(spec.me, n), t as f64);
                    milestone.insert(txn, "notes", format!("Note {n} from client {}", spec.me));
                })
                .await?;
                *sent += 1;
            }
            received = c.recv() => {
                received?;
                arrivals.drain_into(c.last_arrival_us, latencies);
            }
            _ = &mut deadline => bail!("deadline passed with {} of {all} keys", bench.len(&c.doc.transact())),
        }
    }
}

/// N clients over M plans connecting at once.
#[derive(Debug, Default)]
pub struct Storm {
    /// From the first connect to the last client synced.
    pub ms: f64,
    /// The server's RSS growth over the storm per client, when the last client synced.
    pub rss_per_conn: f64,
    /// The same 1 s later, every client still connected.
    pub rss_per_conn_settled: f64,
    /// Connections the server's listen backlog could not take during the storm (this network
    /// namespace's counters: another process's overflow in the same moment would count too).
    pub listen: ListenCounters,
}

/// The storm as the issue states it: the plans' rooms are loaded by the storm itself (cold),
/// so the RSS per connection includes them.
pub async fn connect_storm(server: &Server, clients: usize, plans: usize) -> Result<Storm> {
    let plans = server.plans(plans.max(1)).await?;
    storm(server, &plans, clients).await
}

/// The same storm on plans that each already have one client connected (their rooms loaded):
/// the RSS per connection is the connections' own.
pub async fn connect_storm_warm(server: &Server, clients: usize, plans: usize) -> Result<Storm> {
    let plans = server.plans(plans.max(1)).await?;
    let holders = connect_all(server, &plans, plans.len()).await?;
    let result = storm(server, &plans, clients).await;
    close_all(holders).await;
    result
}

/// Not a storm: the same clients on plans that each already have one, connected `wave` at a
/// time (each wave synced before the next). What one wave's handshakes allocate for a moment
/// is reused by the next, so the RSS growth per connection is what a connection keeps.
pub async fn connect_waves(
    server: &Server,
    clients: usize,
    plans: usize,
    wave: usize,
) -> Result<Storm> {
    let plans = server.plans(plans.max(1)).await?;
    let holders = connect_all(server, &plans, plans.len()).await?;
    let before = server.stats()?;
    let listen_before = listen_counters()?;
    let started = Instant::now();
    let mut connected = Vec::with_capacity(clients);
    while connected.len() < clients {
        let n = wave.max(1).min(clients - connected.len());
        // Continue the round-robin where the last wave ended.
        let offset = connected.len();
        let tasks: Vec<_> = (offset..offset + n)
            .map(|i| {
                let url = server.url(&plans[stats::plan_of(i, plans.len())]);
                tokio::spawn(async move { Client::connect(&url).await })
            })
            .collect();
        for t in tasks {
            connected.push(t.await??);
        }
    }
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let listen = listen_before.since(listen_counters()?);
    let after = server.stats()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = server.stats()?;
    close_all(connected).await;
    close_all(holders).await;
    Ok(Storm {
        ms,
        rss_per_conn: stats::growth_per(before.rss, after.rss, clients),
        rss_per_conn_settled: stats::growth_per(before.rss, settled.rss, clients),
        listen,
    })
}

async fn storm(server: &Server, plans: &[Plan], clients: usize) -> Result<Storm> {
    let before = server.stats()?;
    let listen_before = listen_counters()?;
    let started = Instant::now();
    let connected = connect_all(server, plans, clients).await?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let listen = listen_before.since(listen_counters()?);
    let after = server.stats()?;
    // A second reading with the sockets still open, once what the handshakes and the syncs
    // allocated for a moment could be freed (a measurement interval, not a wait on a condition).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = server.stats()?;
    close_all(connected).await;
    Ok(Storm {
        ms,
        rss_per_conn: stats::growth_per(before.rss, after.rss, clients),
        rss_per_conn_settled: stats::growth_per(before.rss, settled.rss, clients),
        listen,
    })
}

async fn connect_all(server: &Server, plans: &[Plan], n: usize) -> Result<Vec<Client>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let url = server.url(&plans[stats::plan_of(i, plans.len())]);
            tokio::spawn(async move { Client::connect(&url).await })
        })
        .collect();
    let mut clients = Vec::with_capacity(n);
    for t in tasks {
        clients.push(t.await??);
    }
    Ok(clients)
}

async fn close_all(clients: Vec<Client>) {
    let closing: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(c.close()))
        .collect();
    for c in closing {
        let _ = c.await;
    }
}

/// Idle sockets on one plan: the server's RSS growth per connection.
pub async fn idle(server: &Server, n: usize) -> Result<f64> {
    let plans = server.plans(1).await?;
    let before = server.stats()?;
    let clients = connect_all(server, &plans, n).await?;
    // Let the server settle what it allocated while connecting (a measurement, not a wait on
    // a condition: the sockets are synced already).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.stats()?;
    close_all(clients).await;
    Ok(stats::growth_per(before.rss, after.rss, n))
}

#[derive(Debug, Default)]
pub struct Ingest {
    pub cpu: f64,
    pub seconds: f64,
}

/// The key the ingest's last update sets, and its value.
fn last_entry(k: usize) -> (String, f64) {
    let last = k.saturating_sub(1);
    (format!("k{}", last % 500), last as f64)
}

fn holds_last(doc: &Doc, k: usize) -> bool {
    let (key, value) = last_entry(k);
    let log = doc.get_or_insert_map("log");
    matches!(log.get(&doc.transact(), &key), Some(Out::Any(Any::Number(v))) if v.as_f64() == Some(value))
}

/// K small updates sent one by one into one plan (one transaction each, 500 keys
/// overwritten in turn), until another client has the last: the server's CPU for them.
pub async fn ingest(server: &Server, k: usize) -> Result<(Ingest, Plan)> {
    let plan = server.plans(1).await?.remove(0);
    let mut writer = Client::connect(&server.url(&plan)).await?;
    let mut observer = Client::connect(&server.url(&plan)).await?;
    let before = server.stats()?;
    let started = Instant::now();
    let deadline = started + STEP_DEADLINE;
    let watching = tokio::spawn(async move {
        observer
            .recv_until(deadline, |doc| holds_last(doc, k))
            .await
            .map(|()| observer)
    });
    let log = writer.doc.get_or_insert_map("log");
    for i in 0..k {
        writer
            .change(|txn| {
                log.insert(txn, format!("k{}", i % 500), i as f64);
            })
            .await?;
        if i % 200 == 199 {
            tokio::task::yield_now().await;
        }
    }
    let observer = watching.await??;
    let seconds = started.elapsed().as_secs_f64();
    let after = server.stats()?;
    close_all(vec![writer, observer]).await;
    Ok((
        Ingest {
            cpu: after.cpu_s - before.cpu_s,
            seconds,
        },
        plan,
    ))
}

/// A new client's connect until it holds the ingested plan's full state, in ms.
pub async fn join(server: &Server, plan: &Plan, k: usize) -> Result<f64> {
    let started = Instant::now();
    let mut c = Client::connect(&server.url(plan)).await?;
    c.recv_until(started + STEP_DEADLINE, |doc| holds_last(doc, k))
        .await
        .context("the new client never got the full state")?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    c.close().await;
    Ok(ms)
}

/// The large node: sockets held open over plans of a large store while the server idles, then
/// while a fan-out runs on other plans.
#[derive(Debug, Clone, Copy)]
pub struct ScaleParams {
    pub sockets: usize,
    pub open_plans: usize,
    /// How long the server's CPU is measured with the sockets open and nothing sent.
    pub idle: Duration,
}

#[derive(Debug, Default)]
pub struct Scale {
    /// Spawn → "listening" on stdout, → `/healthz` answering 200, → a first client synced on
    /// a stored plan (ms).
    pub listening_ms: f64,
    pub healthy_ms: f64,
    pub first_sync_ms: f64,
    /// RSS once the first client synced.
    pub started_rss: u64,
    /// RSS at each step of opening the sockets.
    pub memory: ConnMemory,
    /// Opening one socket per plan (cold rooms), then the rest (ms).
    pub rooms_ms: f64,
    pub rest_ms: f64,
    /// Two idle windows one after the other, the sockets held.
    pub idle: [Idle; 2],
    /// The fan-out on other plans, with the sockets open.
    pub fanout: Fanout,
    /// RSS after the fan-out, the sockets still open.
    pub end_rss: u64,
    /// Held sockets the server had closed by the end (should be 0).
    pub closed: usize,
}

/// One idle window: its length (s), the server's CPU over it (s), its RSS at the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Idle {
    pub seconds: f64,
    pub cpu: f64,
    pub rss: u64,
}

/// Measures the start of a server on a store that already holds `plans`' plans, then holds
/// sockets open on the first `p.open_plans` of them, idles, and runs the fan-out on new plans.
pub async fn scale(
    server: &Server,
    plans: &[Plan],
    p: ScaleParams,
    fanout_params: FanoutParams,
) -> Result<Scale> {
    let mut out = Scale {
        listening_ms: server.listening().as_secs_f64() * 1e3,
        ..Scale::default()
    };
    let deadline = Instant::now() + STEP_DEADLINE;
    server.wait_healthy(deadline).await?;
    out.healthy_ms = server.spawned().elapsed().as_secs_f64() * 1e3;
    // The first sync on a plan no held socket opens (the last of the store), so its room is
    // cold here and stays out of the rooms counted below.
    let last = plans.last().context("the store holds no plans")?;
    let first = Client::connect(&server.url(last)).await?;
    out.first_sync_ms = server.spawned().elapsed().as_secs_f64() * 1e3;
    first.close().await;
    out.started_rss = server.stats()?.rss;

    let open = &plans[..p.open_plans.min(plans.len().saturating_sub(1)).max(1)];
    let started = Instant::now();
    let mut held = connect_all(server, open, open.len()).await?;
    out.rooms_ms = started.elapsed().as_secs_f64() * 1e3;
    let rooms_open = server.stats()?.rss;
    let started = Instant::now();
    // The rest round-robin over the same plans (the first pass opened each once).
    let rest = p.sockets.saturating_sub(open.len());
    held.extend(connect_all(server, open, rest).await?);
    out.rest_ms = started.elapsed().as_secs_f64() * 1e3;
    let all_open = server.stats()?;
    out.memory = ConnMemory {
        start: out.started_rss,
        rooms_open,
        all_open: all_open.rss,
        plans: open.len(),
        sockets: held.len(),
    };
    tracing::info!(
        sockets = held.len(),
        plans = open.len(),
        "held open; idling"
    );

    // Two idle windows (measurement intervals, not waits for a condition): the first still
    // holds the work a room does after its first sync (its indexes, built in the background),
    // the second is the held sockets' own.
    let mut last = all_open;
    for window in &mut out.idle {
        let started = Instant::now();
        tokio::time::sleep(p.idle).await;
        let now = server.stats()?;
        *window = Idle {
            seconds: started.elapsed().as_secs_f64(),
            cpu: now.cpu_s - last.cpu_s,
            rss: now.rss,
        };
        last = now;
    }

    tracing::info!("fan-out with the sockets held");
    out.fanout = fanout(server, fanout_params).await.context("fan-out")?;
    out.end_rss = server.stats()?.rss;
    out.closed = held
        .iter_mut()
        .map(Client::is_open)
        .filter(|open| !open)
        .count();
    close_all(held).await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Transact, Update};

    fn write(doc: &Doc, key: &str, v: f64) -> Vec<u8> {
        let bench = doc.get_or_insert_map("bench");
        let mut txn = doc.transact_mut();
        bench.insert(&mut txn, key, v);
        txn.encode_update_v1()
    }

    fn apply(doc: &Doc, update: &[u8]) {
        let u = Update::decode_v1(update).expect("own encoding");
        doc.transact_mut().apply_update(u).expect("applies");
    }

    #[test]
    fn documents_that_got_the_same_updates_in_another_order_compare_equal() {
        let (a, b) = (Doc::with_client_id(1), Doc::with_client_id(2));
        let ua = write(&a, "t1-0", 1.0);
        let ub = write(&b, "t2-0", 2.0);
        let (c, d) = (Doc::with_client_id(3), Doc::with_client_id(4));
        for u in [&ua, &ub] {
            apply(&c, u);
        }
        for u in [&ub, &ua] {
            apply(&d, u);
        }
        assert_eq!(summary(&c), summary(&d));
        // One that missed an update has diverged.
        let e = Doc::with_client_id(5);
        apply(&e, &ua);
        assert_ne!(summary(&c), summary(&e));
    }
}
