//! Projection and history derivation on a large plan (200 milestones).
//!
//!     cargo bench -p mapline-plan --bench projection
//!
//! `derive/apply only` is the baseline in the same run: the same updates applied to a plain
//! document, so `derive/apply and derive` minus it is what deriving the history adds per update,
//! and `derive/admit and apply` minus it is what admitting an update before storing it adds.
//! `derive/typing: …` is the same for a keystroke in a note (a `Y.Text`, schema v2).

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use criterion::{Criterion, criterion_group, criterion_main};
use mapline_plan::admission::{Admission, PlanLimits};
use mapline_plan::edit::{MilestoneDraft, add_milestone, move_due};
use mapline_plan::model::MilestoneSide;
use mapline_plan::{HistoryTracker, RawPlan, new_plan_update, project, project_doc};
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Doc, Map, MapPrelim, Out, ReadTxn, StateVector, Text, TextPrelim, Transact, Update,
    WriteTxn,
};

const MILESTONES: usize = 200;

fn go_live() -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 4, 1).unwrap()
}

/// A client document holding a realistic large plan: 200 milestones in chains of
/// dependencies, 20 stakeholders, objectives, criteria and risks.
fn large_plan() -> Doc {
    let plan = mapline_plan::NewPlan::parse("Bench", "Buyer", "Seller", "2027-04-01").unwrap();
    let doc = Doc::with_client_id(3);
    doc.transact_mut()
        .apply_update(Update::decode_v1(&new_plan_update(&plan, 1)).unwrap())
        .unwrap();
    let mut txn = doc.transact_mut();
    for i in 0..20 {
        let map = txn.get_or_insert_map("stakeholders");
        let fields: Vec<(&str, Any)> = vec![
            ("name", format!("Person {i}").into()),
            ("title", "Director".into()),
            ("side", if i % 2 == 0 { "buyer" } else { "seller" }.into()),
            ("role", "champion".into()),
            ("power", "influencer".into()),
            ("engagement", "engaged".into()),
            ("order", format!("a{i:03}").into()),
        ];
        map.insert(&mut txn, format!("st-{i}"), MapPrelim::from_iter(fields));
    }
    for i in 0..MILESTONES {
        let depends_on = if i % 10 == 0 {
            vec![]
        } else {
            vec![format!("ms-{}", i - 1)]
        };
        let owner = format!("st-{}", i % 20);
        let draft = MilestoneDraft {
            title: "A milestone with a realistic title",
            workstream: "legal_procurement",
            side: MilestoneSide::Joint,
            owner: Some(&owner),
            due: go_live().checked_sub_days(Days::new((MILESTONES - i) as u64)),
            depends_on,
            order: Some(format!("a{i:03}")),
        };
        add_milestone(&mut txn, &format!("ms-{i}"), &draft);
    }
    for (root, count) in [("objectives", 5), ("criteria", 10), ("risks", 10)] {
        for i in 0..count {
            let map = txn.get_or_insert_map(root);
            let fields: Vec<(&str, Any)> = vec![
                ("text", "Something that matters".into()),
                ("order", format!("a{i}").into()),
            ];
            map.insert(
                &mut txn,
                format!("{root}-{i}"),
                MapPrelim::from_iter(fields),
            );
        }
    }
    drop(txn);
    doc
}

/// A server-side copy of the client's document.
fn replica(of: &Doc) -> Doc {
    let doc = Doc::with_client_id(99);
    let state = of
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    doc.transact_mut()
        .apply_update(Update::decode_v1(&state).unwrap())
        .unwrap();
    doc
}

/// `count` successive updates from the client, each moving one due date with a reason.
fn moves(client: &Doc, count: u64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            let id = format!("ms-{}", n as usize % MILESTONES);
            let due = go_live().checked_sub_days(Days::new(n % 300));
            // The transaction's own update, as a Yjs client sends it.
            let mut txn = client.transact_mut();
            move_due(&mut txn, &id, due, "Moved for the benchmark").unwrap();
            txn.encode_update_v1()
        })
        .collect()
}

/// Gives every milestone a `notes` text (schema v2's prose), as the client and the server hold it.
fn with_notes(client: &Doc) {
    let milestones = client.get_or_insert_map("milestones");
    let mut txn = client.transact_mut();
    for n in 0..MILESTONES {
        if let Some(Out::YMap(step)) = milestones.get(&txn, &format!("ms-{n}")) {
            step.insert(&mut txn, "notes", TextPrelim::new("Notes: "));
        }
    }
}

/// `count` successive updates from the client, each typing one character into a note.
fn typing(client: &Doc, count: u64) -> Vec<Vec<u8>> {
    let milestones = client.get_or_insert_map("milestones");
    (0..count)
        .map(|n| {
            let id = format!("ms-{}", n as usize % MILESTONES);
            let mut txn = client.transact_mut();
            let Some(Out::YMap(step)) = milestones.get(&txn, &id) else {
                panic!("no {id}")
            };
            let Some(Out::YText(notes)) = step.get(&txn, "notes") else {
                panic!("no notes on {id}")
            };
            let end = notes.len(&txn);
            notes.insert(&mut txn, end, "x");
            txn.encode_update_v1()
        })
        .collect()
}

/// Applies updates to a document as they come, without deriving anything.
fn apply_all(server: &Doc, updates: &[Vec<u8>]) {
    for update in updates {
        server
            .transact_mut()
            .apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
    }
}

/// Applies updates through a tracker, checking that each derived a change.
fn derive_all(server: &Doc, updates: &[Vec<u8>]) {
    let mut tracker = HistoryTracker::attach(server);
    for update in updates {
        let (derivation, _) = tracker.apply(server, Update::decode_v1(update).unwrap(), update);
        assert!(!derivation.changes.is_empty());
    }
}

fn bench(c: &mut Criterion) {
    let doc = large_plan();
    assert_eq!(project_doc(&doc).milestones.len(), MILESTONES);
    let raw = RawPlan::read(&doc.transact());

    let mut group = c.benchmark_group("project");
    group.bench_function("read and project, 200 milestones", |b| {
        b.iter(|| project_doc(&doc))
    });
    group.bench_function("project only, 200 milestones", |b| b.iter(|| project(&raw)));
    group.finish();

    let mut group = c.benchmark_group("derive");
    group.bench_function("apply only (baseline)", |b| {
        b.iter_custom(|iters| {
            let client = large_plan();
            let server = replica(&client);
            let updates = moves(&client, iters);
            let started = Instant::now();
            apply_all(&server, &updates);
            started.elapsed()
        })
    });
    // What the server adds before storing each update: admission (its items' parents are types,
    // the plan within its limits), then the apply, as the writer does after the commit.
    group.bench_function("admit and apply, 200 milestones", |b| {
        b.iter_custom(|iters| {
            let client = large_plan();
            let server = replica(&client);
            let mut admission = Admission::new(PlanLimits::default(), true);
            admission.note_stored(
                &server
                    .transact()
                    .encode_state_as_update_v1(&StateVector::default()),
            );
            let updates = moves(&client, iters);
            let started = Instant::now();
            for update in &updates {
                admission.admit(&server.transact(), update).unwrap();
                server
                    .transact_mut()
                    .apply_update(Update::decode_v1(update).unwrap())
                    .unwrap();
                admission.settled(false);
            }
            started.elapsed()
        })
    });
    group.bench_function("apply and derive, 200 milestones", |b| {
        b.iter_custom(|iters| {
            let client = large_plan();
            let server = replica(&client);
            let updates = moves(&client, iters);
            let started = Instant::now();
            derive_all(&server, &updates);
            started.elapsed()
        })
    });
    // Schema v2: typing into a note (a Y.Text) — the update a page sends per keystroke.
    group.bench_function("typing: apply only (baseline)", |b| {
        b.iter_custom(|iters| {
            let client = large_plan();
            with_notes(&client);
            let server = replica(&client);
            let updates = typing(&client, iters);
            let started = Instant::now();
            apply_all(&server, &updates);
            started.elapsed()
        })
    });
    group.bench_function("typing: apply and derive, 200 milestones", |b| {
        b.iter_custom(|iters| {
            let client = large_plan();
            with_notes(&client);
            let server = replica(&client);
            let updates = typing(&client, iters);
            let started = Instant::now();
            derive_all(&server, &updates);
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(30);
    targets = bench
}
criterion_main!(benches);
