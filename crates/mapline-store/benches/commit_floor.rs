//! What one durable commit costs the thread that makes it, in CPU time (user + system, which
//! includes the kernel's part of `fdatasync`), against the floor of any durable server: one
//! write + `fdatasync` of the same bytes to a file.
//!
//! Issue 14 asks for a fan-out server CPU of at most half the in-memory server's. At the
//! fan-out's rate (updates staggered ≈ 1 ms apart, so most batches carry one update) the server
//! makes one durable commit per update, and these figures say what that alone costs.
//!
//! `cargo bench -p mapline-store --bench commit_floor` (the data goes in `target/`, on the disk
//! the server would use; set `MAPLINE_BENCH_DIR` to measure another folder).

use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mapline_store::{
    Author, DerivedHistory, DocKind, NewUpdate, PlanId, PlanRecord, Side, Store, UpdateRecord,
};
use uuid::Uuid;

/// Bytes of one fan-out update's record (a note and a timestamp key, with attribution).
const UPDATE_BYTES: usize = 300;
/// Plans the log is spread over, as in the fan-out.
const PLANS: u128 = 50;

/// CPU time of the calling thread (user + system).
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("MAPLINE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    tempfile::tempdir_in(base).expect("a temporary folder for the bench")
}

fn record(byte: u8) -> UpdateRecord {
    UpdateRecord {
        author: Author::Share {
            id: Uuid::from_u128(7),
            side: Side::Buyer,
        },
        client_ids: vec![42],
        received_at_ms: 1_800_000_000_000,
        update: vec![byte; UPDATE_BYTES - 40],
    }
}

fn plan_id(n: u128) -> PlanId {
    Uuid::from_u128(n + 1)
}

/// A store with the fan-out's plans, each with a few hundred updates already in its log.
fn seeded_store(dir: &tempfile::TempDir) -> Store {
    let store = Store::open(&dir.path().join("mapline.redb")).expect("open the bench store");
    let plan = PlanRecord {
        title: "Rollout".into(),
        buyer_org: "Northwind".into(),
        seller_org: "Mapline".into(),
        go_live: "2027-04-01".into(),
        created_at_ms: 1,
    };
    for n in 0..PLANS {
        let id = plan_id(n);
        store
            .create_plan(id, &plan, &record(0), &[], &DerivedHistory::none(id))
            .expect("create a bench plan");
        let earlier: Vec<NewUpdate> = (0..300)
            .map(|i| NewUpdate {
                plan_id: id,
                kind: DocKind::Plan,
                record: record(i as u8),
            })
            .collect();
        store
            .commit_batch(&earlier, &[], &[])
            .expect("seed the bench plan's log");
    }
    store
}

fn commit_floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable commit of one update (thread CPU)");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));

    let dir = bench_dir();
    let store = seeded_store(&dir);
    group.bench_function("Store::commit_batch (redb, one fsync)", |b| {
        let mut n = 0u128;
        b.iter_custom(|iterations| {
            let start = thread_cpu();
            for _ in 0..iterations {
                let update = NewUpdate {
                    plan_id: plan_id(n % PLANS),
                    kind: DocKind::Plan,
                    record: record(n as u8),
                };
                n += 1;
                black_box(store.commit_batch(&[update], &[], &[]).expect("commit"));
            }
            thread_cpu() - start
        })
    });

    // The floor: the same bytes appended to a file that is already allocated (so `fdatasync`
    // writes the data and no size change), then made durable.
    let log = dir.path().join("append-only.log");
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&log)
        .expect("open the append-only file");
    let ring = 64 << 20;
    file.write_all_at(&vec![0u8; ring], 0)
        .expect("preallocate the file");
    file.sync_all().expect("sync the preallocated file");
    let bytes = vec![7u8; UPDATE_BYTES];
    group.bench_function("write + fdatasync (preallocated file)", |b| {
        let mut offset = 0u64;
        b.iter_custom(|iterations| {
            let start = thread_cpu();
            for _ in 0..iterations {
                file.write_all_at(&bytes, offset).expect("write");
                file.sync_data().expect("fdatasync");
                offset = (offset + UPDATE_BYTES as u64) % (ring as u64 - UPDATE_BYTES as u64);
            }
            thread_cpu() - start
        })
    });
    group.finish();
}

criterion_group!(benches, commit_floor);
criterion_main!(benches);
