//! `?at=`: the plan as it was, rebuilt from a log of 20,000 updates.
//!
//!     cargo bench -p mapline-server --bench time_travel
//!
//! `read the log only` is the baseline in the same run (the store read without replay), so the
//! difference is the cost of replaying and projecting.

use std::time::Duration;

use chrono::{Days, NaiveDate};
use criterion::{Criterion, criterion_group, criterion_main};
use mapline_plan::NewPlan;
use mapline_plan::edit::move_due;
use mapline_server::history::plan_at;
use mapline_store::{Author, LogBound, NewUpdate, PlanId, PlanRecord, Side, Store, UpdateRecord};
use yrs::updates::decoder::Decode;
use yrs::{Doc, Transact, Update};

const UPDATES: u64 = 20_000;

fn record(update: Vec<u8>, at: i64) -> UpdateRecord {
    UpdateRecord {
        author: Author::Share {
            id: PlanId::from_u128(7),
            side: Side::Buyer,
        },
        client_ids: vec![3],
        received_at_ms: at,
        update,
    }
}

/// A store with one enterprise-template plan and 20,000 stored updates, each moving one
/// milestone's due date with a reason.
fn store_with_long_log(dir: &std::path::Path) -> (Store, PlanId) {
    let store = Store::open(&dir.join("bench.redb")).unwrap();
    let plan = NewPlan::parse("Bench", "Buyer", "Seller", "2027-04-01")
        .unwrap()
        .with_template("enterprise")
        .unwrap();
    let first = mapline_plan::new_plan_update(&plan, 1);
    let id = PlanId::from_u128(1);
    let meta = PlanRecord {
        title: "Bench".into(),
        buyer_org: "Buyer".into(),
        seller_org: "Seller".into(),
        go_live: "2027-04-01".into(),
        created_at_ms: 0,
    };
    store
        .create_plan(
            id,
            &meta,
            &record(first.clone(), 0),
            &[],
            &mapline_store::DerivedHistory::none(id),
        )
        .unwrap();
    let client = Doc::with_client_id(3);
    client
        .transact_mut()
        .apply_update(Update::decode_v1(&first).unwrap())
        .unwrap();
    let keys: Vec<_> = plan
        .template
        .unwrap()
        .milestones
        .iter()
        .map(|m| format!("ms-{}", m.key))
        .collect();
    let go_live = NaiveDate::from_ymd_opt(2027, 4, 1).unwrap();
    let mut batch = Vec::new();
    for n in 1..=UPDATES {
        let due = go_live.checked_sub_days(Days::new(n % 200));
        // The transaction's own update, as a Yjs client sends it (a state diff would carry the
        // whole delete set every time).
        let mut txn = client.transact_mut();
        move_due(&mut txn, &keys[n as usize % keys.len()], due, "bench").unwrap();
        let update = txn.encode_update_v1();
        drop(txn);
        batch.push(NewUpdate {
            plan_id: id,
            kind: mapline_store::DocKind::Plan,
            record: record(update, n as i64),
        });
        if batch.len() == 1000 {
            store.commit_batch(&batch, &[], &[]).unwrap();
            batch.clear();
        }
    }
    store.commit_batch(&batch, &[], &[]).unwrap();
    (store, id)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = store_with_long_log(dir.path());
    let mut group = c.benchmark_group("at");
    group.bench_function("read the log only (baseline), 20,000 updates", |b| {
        b.iter(|| store.log_prefix(plan, LogBound::Seq(UPDATES + 1)).unwrap())
    });
    group.bench_function("plan at the end of 20,000 updates", |b| {
        b.iter(|| {
            plan_at(&store, plan, LogBound::Seq(UPDATES + 1))
                .unwrap()
                .unwrap()
        })
    });
    group.bench_function("plan halfway (by time)", |b| {
        b.iter(|| {
            plan_at(&store, plan, LogBound::ReceivedBy(10_000))
                .unwrap()
                .unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(10)).sample_size(20);
    targets = bench
}
criterion_main!(benches);
