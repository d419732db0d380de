//! Pipeline with 10,000 plans: seeds a data file with plans created as the server creates them
//! (`plans::create_plan`, a template each) plus a few stored date moves by the buyer's and the
//! seller's links with their history derived, then starts a real `mapline` binary on it and
//! measures the start-up (spawn → listening) and `GET /api/plans` (admin token) over HTTP.
//!
//!     cargo build --release -p mapline
//!     cargo bench -p mapline-server --bench pipeline -- \
//!         --plans 10000 --requests 20 --bin target/release/mapline --data /tmp/pipeline.redb
//!
//! `--data` is seeded only when the file does not exist, so the same file can be measured
//! against another binary (the baseline) with a second run.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use mapline_plan::NewPlan;
use mapline_plan::edit::move_due;
use mapline_server::{history, plans};
use mapline_store::{Author, DocKind, NewUpdate, PlanId, Store, UpdateRecord};
use yrs::updates::decoder::Decode as _;
use yrs::{Doc, Transact as _, Update};

const TOKEN: &str = "pipeline-bench-admin-token-0123456789abcdef";
const TEMPLATES: [&str; 3] = ["enterprise", "mid-market", "renewal-expansion"];
/// Plans whose updates and history go into one transaction while seeding.
const SEED_BATCH: usize = 250;

struct Args {
    plans: usize,
    moves: usize,
    requests: usize,
    bin: PathBuf,
    data: PathBuf,
}

fn args() -> Args {
    let mut args = Args {
        plans: 10_000,
        moves: 3,
        requests: 20,
        bin: PathBuf::from("target/release/mapline"),
        data: std::env::temp_dir().join("mapline-pipeline-bench.redb"),
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().unwrap_or_default();
        match flag.as_str() {
            "--plans" => args.plans = value().parse().expect("--plans N"),
            "--moves" => args.moves = value().parse().expect("--moves N"),
            "--requests" => args.requests = value().parse().expect("--requests N"),
            "--bin" => args.bin = value().into(),
            "--data" => args.data = value().into(),
            // cargo bench passes `--bench`.
            _ => {}
        }
    }
    args
}

fn seed(args: &Args) {
    let started = Instant::now();
    let store = Store::open(&args.data).expect("open the data file");
    let go_live = NaiveDate::from_ymd_opt(2027, 6, 1).expect("a date");
    let now = mapline_server::now_ms();
    let mut batch_plans: Vec<PlanId> = Vec::new();
    let mut updates: Vec<NewUpdate> = Vec::new();
    for n in 0..args.plans {
        let template = TEMPLATES[n % TEMPLATES.len()];
        let plan = NewPlan::parse(
            &format!("Rollout {n}"),
            &format!("Buyer {n}"),
            "Mapline",
            &go_live.to_string(),
        )
        .and_then(|p| p.with_template(template))
        .expect("a valid plan");
        let first = mapline_plan::new_plan_update(&plan, 1 + n as u64);
        let id = PlanId::now_v7();
        let shares =
            plans::create_plan(&store, id, &plan, first.clone(), now).expect("create a plan");
        // A client that moves dates, as the buyer's and the seller's links.
        let client = Doc::with_client_id(100_000 + n as u64);
        client
            .transact_mut()
            .apply_update(Update::decode_v1(&first).expect("decodes"))
            .expect("applies");
        let keys: Vec<String> = plan
            .template
            .map(|t| {
                t.milestones
                    .iter()
                    .map(|m| format!("ms-{}", m.key))
                    .collect()
            })
            .unwrap_or_default();
        for m in 0..args.moves {
            let share = &shares[m % 2].record;
            let due = go_live.checked_sub_days(Days::new(30 + (n + m) as u64 % 60));
            let mut txn = client.transact_mut();
            move_due(&mut txn, &keys[(n + m) % keys.len()], due, "bench move").expect("moves");
            let update = txn.encode_update_v1();
            drop(txn);
            updates.push(NewUpdate {
                plan_id: id,
                kind: DocKind::Plan,
                record: UpdateRecord {
                    author: Author::Share {
                        id: share.id,
                        side: share.side,
                    },
                    client_ids: vec![100_000 + n as u64],
                    received_at_ms: now + m as i64,
                    update,
                },
            });
        }
        batch_plans.push(id);
        if batch_plans.len() == SEED_BATCH || n + 1 == args.plans {
            store.commit_batch(&updates, &[], &[]).expect("store moves");
            let derived: Vec<_> = batch_plans
                .iter()
                .map(|id| history::rebuild(&store, *id).expect("derive history"))
                .collect();
            store.commit_history(&derived).expect("store history");
            batch_plans.clear();
            updates.clear();
        }
    }
    store.mark_clean_shutdown().expect("mark clean");
    eprintln!(
        "seeded {} plans × {} moves in {:.1} s ({} MB)",
        args.plans,
        args.moves,
        started.elapsed().as_secs_f64(),
        store.file_bytes() / 1_000_000
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn measure(args: &Args) {
    let started = Instant::now();
    let mut child = Command::new(&args.bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(&args.data)
        .args(["--admin-token", TOKEN, "--web", "/nonexistent-web-root"])
        .env("MAPLINE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server to say where it listens")
            .expect("a line");
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on ".len()..];
            break rest.split_whitespace().next().unwrap_or(rest).to_owned();
        }
    };
    let startup = started.elapsed();
    // Keep draining the server's output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let agent = ureq::Agent::new_with_defaults();
    let get = || {
        let t = Instant::now();
        let body = agent
            .get(format!("{url}/api/plans?today=2027-03-01"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .call()
            .expect("GET /api/plans")
            .into_body()
            .read_to_string()
            .expect("a body");
        (t.elapsed(), body)
    };
    let (first, body) = get();
    let listed = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["plans"].as_array().map(Vec::len))
        .unwrap_or(0);
    let mut times: Vec<Duration> = (0..args.requests).map(|_| get().0).collect();
    times.sort();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    println!("binary: {}", args.bin.display());
    println!("start-up (spawn → listening): {}", ms(startup));
    println!(
        "GET /api/plans: {listed} plans, {} KB; first {}; then {} requests: p50 {}, p95 {}, max {}",
        body.len() / 1000,
        ms(first),
        times.len(),
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 95.0)),
        ms(times.last().copied().unwrap_or_default())
    );
}

/// Where a listing's time goes, in this process on the same file (the server stopped): reading
/// every summary, and evaluating them for a day.
fn breakdown(args: &Args) {
    let store = Store::open(&args.data).expect("open the data file");
    let today = NaiveDate::from_ymd_opt(2027, 3, 1).expect("a date");
    let mut read = Vec::new();
    let mut evaluate = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let plans = store
            .plans_with_summaries::<mapline_plan::summary::PlanSummary>(
                mapline_plan::summary::SUMMARY_VERSION,
            )
            .expect("read summaries");
        read.push(t.elapsed());
        let t = Instant::now();
        let overdue: usize = plans
            .iter()
            .filter_map(|(_, _, s)| s.as_ref())
            .map(|(_, s)| s.view(today).overdue)
            .sum();
        evaluate.push(t.elapsed());
        std::hint::black_box(overdue);
    }
    read.sort();
    evaluate.sort();
    println!(
        "in process, median of 5: read every summary {}, evaluate them {}",
        ms(read[2]),
        ms(evaluate[2])
    );
    flush_cost(&store);
}

/// What the writer's history flush now does per plan whose history touched its milestones:
/// project the plan (here from a loaded document, as the room does from its tracker) and
/// advance its stored summary by one entry.
fn flush_cost(store: &Store) {
    const ROUNDS: u32 = 2_000;
    let plans = store.plans().expect("plans");
    let (id, _) = plans.first().expect("a plan");
    let doc = history::stored_doc(store, mapline_store::DocRef::plan(*id))
        .expect("read")
        .expect("a plan");
    let raw = mapline_plan::RawPlan::read(&doc.transact());
    let t = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(mapline_plan::project(&raw));
    }
    let project = t.elapsed() / ROUNDS;
    let plan = mapline_plan::project(&raw);
    let mut entry = store
        .all_history(*id)
        .expect("history")
        .pop()
        .expect("an entry")
        .1;
    entry.received_at_ms += 1;
    let through = store.derived_through(*id).expect("derived");
    let pending = mapline_store::DerivedHistory {
        plan_id: *id,
        entries: vec![(through + 1, entry)],
        through: through + 1,
        summary: None,
    };
    let t = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(
            mapline_server::history::summaries::advance(store, || plan.clone(), &pending)
                .expect("advance"),
        );
    }
    let advance = t.elapsed() / ROUNDS;
    println!(
        "writer, per plan and flush: project the plan {:.1} µs, advance its summary (read, \
         summarize, encode) {:.1} µs",
        project.as_secs_f64() * 1e6,
        advance.as_secs_f64() * 1e6
    );
}

fn main() {
    let args = args();
    if !args.data.exists() {
        seed(&args);
    }
    measure(&args);
    breakdown(&args);
}
