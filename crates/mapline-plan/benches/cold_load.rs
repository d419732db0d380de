//! A room's cold load from its snapshot, split into its steps (issue 14: a 20,000-update plan
//! to a new client's full state in ≤ 25 ms).
//!
//!     cargo bench -p mapline-plan --bench cold_load
//!
//! Two snapshots of 20,000 updates: `log` is the load generator's ingest (a root map `log`
//! whose 500 keys are overwritten in turn, next to an empty plan), `dates` 20,000 due-date
//! moves with a reason on a 20-milestone plan. The steps are what `Room::load` runs on a
//! snapshot with an empty tail: `apply` decodes and applies the snapshot to a new document
//! (the floor: the document must exist), `tracker` attaches the history tracker (reads the
//! plan, indexes its map items for lost writes), `admission` indexes the snapshot's types and
//! entries for admission; `all` is the three in a row.

use std::time::Duration;

use chrono::{Days, NaiveDate};
use criterion::{Criterion, criterion_group, criterion_main};
use mapline_plan::admission::{Admission, PlanLimits};
use mapline_plan::edit::{MilestoneDraft, add_milestone, move_due};
use mapline_plan::model::MilestoneSide;
use mapline_plan::{HistoryTracker, NewPlan, new_plan_update};
use yrs::updates::decoder::Decode;
use yrs::{Doc, Map, ReadTxn, StateVector, Transact, Update};

const UPDATES: usize = 20_000;
const MILESTONES: usize = 20;

fn go_live() -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 4, 1).unwrap()
}

fn new_client() -> Doc {
    let plan = NewPlan::parse("Bench", "Buyer", "Seller", "2027-04-01").unwrap();
    let doc = Doc::with_client_id(3);
    doc.transact_mut()
        .apply_update(Update::decode_v1(&new_plan_update(&plan, 1)).unwrap())
        .unwrap();
    doc
}

/// Replays updates on a server-side document, one transaction each, and returns its state.
fn snapshot_of(updates: &[Vec<u8>], first: &Doc) -> Vec<u8> {
    let server = Doc::with_client_id(99);
    let initial = first
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    server
        .transact_mut()
        .apply_update(Update::decode_v1(&initial).unwrap())
        .unwrap();
    for update in updates {
        server
            .transact_mut()
            .apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
    }
    server
        .transact()
        .encode_state_as_update_v1(&StateVector::default())
}

/// The load generator's ingest: 500 keys of a root map `log` overwritten in turn.
fn log_snapshot() -> Vec<u8> {
    let client = new_client();
    let start = new_client();
    let log = client.get_or_insert_map("log");
    let updates: Vec<Vec<u8>> = (0..UPDATES)
        .map(|i| {
            let mut txn = client.transact_mut();
            log.insert(&mut txn, format!("k{}", i % 500), i as f64);
            txn.encode_update_v1()
        })
        .collect();
    snapshot_of(&updates, &start)
}

/// 20,000 due-date moves with a reason on a 20-milestone plan.
fn dates_snapshot() -> Vec<u8> {
    let client = new_client();
    {
        let mut txn = client.transact_mut();
        for i in 0..MILESTONES {
            let draft = MilestoneDraft {
                title: "A milestone with a realistic title",
                workstream: "legal_procurement",
                side: MilestoneSide::Joint,
                owner: None,
                due: go_live().checked_sub_days(Days::new((MILESTONES - i) as u64)),
                depends_on: Vec::new(),
                order: Some(format!("a{i:03}")),
            };
            add_milestone(&mut txn, &format!("ms-{i}"), &draft);
        }
    }
    let start = Doc::with_client_id(4);
    let state = client
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    start
        .transact_mut()
        .apply_update(Update::decode_v1(&state).unwrap())
        .unwrap();
    let updates: Vec<Vec<u8>> = (0..UPDATES)
        .map(|n| {
            let mut txn = client.transact_mut();
            let due = go_live().checked_sub_days(Days::new(n as u64 % 300));
            move_due(&mut txn, &format!("ms-{}", n % MILESTONES), due, "bench").unwrap();
            txn.encode_update_v1()
        })
        .collect();
    snapshot_of(&updates, &start)
}

fn loaded(snapshot: &[u8]) -> Doc {
    let doc = Doc::new();
    doc.transact_mut()
        .apply_update(Update::decode_v1(snapshot).unwrap())
        .unwrap();
    doc
}

fn bench(c: &mut Criterion) {
    for (name, snapshot) in [("log", log_snapshot()), ("dates", dates_snapshot())] {
        let mut group = c.benchmark_group(format!("cold_load/{name} ({} B)", snapshot.len()));
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(4));
        group.bench_function("apply", |b| b.iter(|| loaded(&snapshot)));
        group.bench_function("tracker", |b| {
            b.iter_batched(
                || loaded(&snapshot),
                |doc| {
                    let tracker = HistoryTracker::attach(&doc);
                    (doc, tracker)
                },
                criterion::BatchSize::LargeInput,
            )
        });
        group.bench_function("admission", |b| {
            b.iter(|| {
                let mut admission = Admission::new(PlanLimits::default(), true);
                admission.note_stored(&snapshot);
                admission
            })
        });
        group.bench_function("all", |b| {
            b.iter(|| {
                let doc = loaded(&snapshot);
                let tracker = HistoryTracker::attach(&doc);
                let mut admission = Admission::new(PlanLimits::default(), true);
                admission.note_stored(&snapshot);
                (doc, tracker, admission)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
