//! Plan health on large dependency graphs (issue 17).
//!
//!     cargo bench -p mapline-plan --bench health -- --quick
//!
//! Two shapes: a chain (each milestone waits for the one before it: the critical path is the
//! whole plan) and a fan-in (one milestone waits for all the others). `reference` is the
//! computation health had before (a linear search per dependency), in the same run, at the
//! sizes where it finishes in reasonable time (checked equal to the new result first).

#[path = "../tests/reference/health.rs"]
#[allow(dead_code)]
mod reference;

use std::time::Duration;

use chrono::{Days, NaiveDate};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mapline_plan::health::{Activity, health};
use mapline_plan::model::{Meta, Milestone, MilestoneSide, Plan, Status};

fn day(offset: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 1, 1)
        .and_then(|d| d.checked_add_days(Days::new(offset as u64 / 50)))
        .unwrap()
}

fn milestone(i: usize, depends_on: Vec<String>) -> Milestone {
    Milestone {
        id: format!("ms-{i:06}"),
        title: Some("A milestone with a realistic title".to_owned()),
        workstream: Some("legal_procurement".to_owned()),
        side: Some(if i.is_multiple_of(3) {
            MilestoneSide::Buyer
        } else {
            MilestoneSide::Seller
        }),
        owner: None,
        due: Some(day(i)),
        status: Some(Status::NotStarted),
        depends_on,
        notes: None,
        slip_reason: None,
        order: Some(format!("a{i:06}")),
    }
}

fn plan(milestones: Vec<Milestone>) -> Plan {
    Plan {
        meta: Meta {
            go_live: Some(day(200_000)),
            ..Meta::default()
        },
        milestones,
        ..Plan::default()
    }
}

/// `n` milestones, each waiting for the one before it.
fn chain(n: usize) -> Plan {
    plan(
        (0..n)
            .map(|i| {
                let before = i.checked_sub(1).map(|j| format!("ms-{j:06}"));
                milestone(i, before.into_iter().collect())
            })
            .collect(),
    )
}

/// `n - 1` independent milestones and a last one waiting for all of them.
fn fan_in(n: usize) -> Plan {
    let mut milestones: Vec<Milestone> = (0..n - 1).map(|i| milestone(i, Vec::new())).collect();
    let all = milestones.iter().map(|m| m.id.clone()).collect();
    milestones.push(milestone(n - 1, all));
    plan(milestones)
}

fn bench(c: &mut Criterion) {
    let today = day(0);
    let activity = Activity::default();
    for (shape, build) in [("chain", chain as fn(usize) -> Plan), ("fan-in", fan_in)] {
        let mut group = c.benchmark_group(format!("health/{shape}"));
        for n in [1_000, 10_000, 100_000] {
            let plan = build(n);
            let h = health(&plan, today, &activity);
            if n <= 10_000 {
                assert_eq!(h, reference::health_before(&plan, today, &activity));
            }
            group.bench_with_input(BenchmarkId::new("linear", n), &plan, |b, plan| {
                b.iter(|| health(plan, today, &activity))
            });
            if n <= 10_000 {
                group.bench_with_input(BenchmarkId::new("reference", n), &plan, |b, plan| {
                    b.iter(|| reference::health_before(plan, today, &activity))
                });
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).sample_size(10);
    targets = bench
}
criterion_main!(benches);
