//! Replicas on a real 3-node nats-server cluster on loopback (the harness of mapline-cluster's
//! tests): two stores fed from the same log through connections to different engine nodes.

#[path = "../../mapline-cluster/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{NatsCluster, ONE_AT_A_TIME};
use mapline_cluster::{Cluster, Expect, HeaderMap};
use mapline_replica::{Replica, ReplicaConfig, ReplicaError};
use mapline_store::{
    Author, Command, DocKind, MemberRecord, MemberRole, NewUpdate, Outcome, PlanId, PlanRecord,
    Role, SessionRecord, SessionVia, ShareRecord, Side, SignInLinkRecord, SignInLinkRefusal, Store,
    StoreError, UpdateRecord,
};
use uuid::Uuid;

/// How long a replica may take to apply what was acknowledged (through a leader election).
const CATCH_UP: Duration = Duration::from_secs(60);

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn update(bytes: Vec<u8>) -> UpdateRecord {
    UpdateRecord {
        author: Author::System,
        client_ids: vec![1],
        received_at_ms: 100,
        update: bytes,
    }
}

fn create_plan(plan: u128, shares: Vec<ShareRecord>) -> Command {
    Command::CreatePlan {
        id: id(plan),
        plan: PlanRecord {
            title: format!("plan {plan}"),
            buyer_org: "Northwind".into(),
            seller_org: "Mapline".into(),
            go_live: "2027-04-01".into(),
            created_at_ms: 10,
        },
        first_update: update(vec![0]),
        internal_first_update: None,
        shares,
    }
}

fn share(n: u128, plan: u128) -> ShareRecord {
    ShareRecord {
        id: id(n),
        plan_id: id(plan),
        side: Side::Buyer,
        role: Role::Editor,
        label: format!("link {n}"),
        token_hash: [n as u8; 32],
        created_at_ms: 20,
        expires_at_ms: None,
        revoked_at_ms: None,
    }
}

fn append(plan: PlanId, bytes: Vec<u8>) -> Command {
    Command::AppendUpdates {
        updates: vec![NewUpdate {
            plan_id: plan,
            kind: DocKind::Plan,
            record: update(bytes),
        }],
    }
}

/// An update's bytes that name who sent it: found again in the stores afterwards.
fn tagged(writer: u8, n: u32) -> Vec<u8> {
    let mut bytes = vec![writer];
    bytes.extend_from_slice(&n.to_le_bytes());
    bytes
}

fn member(n: u128) -> MemberRecord {
    MemberRecord {
        id: id(n),
        email: format!("m{n}@example.com"),
        name: format!("Member {n}"),
        role: MemberRole::Rep,
        created_at_ms: 30,
        disabled_at_ms: None,
    }
}

struct Node {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    replica: Replica,
}

fn open_store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("replica.redb")).expect("open store");
    (dir, Arc::new(store))
}

async fn node(cluster: Cluster, name: &str, config: impl FnOnce(&mut ReplicaConfig)) -> Node {
    let (dir, store) = open_store();
    let mut c = ReplicaConfig::new(name);
    config(&mut c);
    let replica = Replica::start(cluster, store.clone(), c)
        .await
        .expect("start replica");
    Node {
        _dir: dir,
        store,
        replica,
    }
}

/// A fresh three-node cluster with the log made (`setup` is a connection to its first node),
/// and one replica `a` (on the second) that has created plan 1 with `shares`.
async fn one_replica_with_a_plan(
    shares: Vec<ShareRecord>,
    config: impl FnOnce(&mut ReplicaConfig),
) -> (NatsCluster, Cluster, Node) {
    let nats = NatsCluster::start().await;
    let setup = nats.connect(0).await;
    setup.ensure().await.expect("ensure");
    let a = node(nats.connect(1).await, "a", config).await;
    a.replica
        .submit(&create_plan(1, shares))
        .await
        .expect("create plan");
    (nats, setup, a)
}

async fn caught_up(replica: &Replica, position: u64) {
    tokio::time::timeout(CATCH_UP, replica.caught_up_to(position))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the replica stopped at {} short of {position}: {:?}",
                replica.position(),
                replica.stats()
            )
        })
        .expect("applier running");
}

/// `stores` equal in every shared table, at `position`.
fn assert_identical(stores: &[&Store], position: u64) {
    let first = stores[0].shared_digest().expect("digest");
    for (i, store) in stores.iter().enumerate() {
        assert_eq!(
            store.applied_position().expect("position"),
            position,
            "store {i}"
        );
        assert_eq!(store.shared_digest().expect("digest"), first, "store {i}");
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Two nodes submit interleaved commands at once, each through its own engine connection;
/// both files end with identical shared tables at the same position. A sign-in link consumed
/// on both nodes at once signs in on exactly one. A garbage log entry is skipped alike. A
/// stopped replica resumes without applying anything twice, and a replica from an empty file
/// catches up to the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_submitting_at_once_end_identical_and_a_sign_in_link_works_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nats = NatsCluster::start().await;
    let setup = nats.connect(0).await;
    setup.ensure().await.expect("ensure");
    let a = node(nats.connect(1).await, "a", |_| {}).await;
    let b = node(nats.connect(2).await, "b", |_| {}).await;
    let mut announced = b.replica.subscribe();

    // Each node creates its plans and writes to all of them, both at once.
    async fn work(replica: &Replica, me: u8) -> Outcome {
        {
            let mine = 10 * u128::from(me);
            for p in 0..3 {
                replica
                    .submit(&create_plan(
                        mine + p,
                        vec![share(mine + p + 100, mine + p)],
                    ))
                    .await
                    .expect("create plan");
            }
            for round in 0..20u32 {
                for p in [10, 11, 12, 20, 21, 22] {
                    // The other node's plans may not exist yet: a refusal, the same everywhere.
                    match replica.submit(&append(id(p), tagged(me, round))).await {
                        Ok(Outcome::Appended(seqs)) => assert_eq!(seqs.len(), 1),
                        Err(ReplicaError::Refused(StoreError::NoSuchPlan(_))) => {}
                        other => panic!("append: {other:?}"),
                    }
                }
            }
            replica
                .submit(&Command::InsertMember {
                    member: member(500 + u128::from(me)),
                })
                .await
                .expect("member")
        }
    }
    let (done_a, done_b) = tokio::join!(work(&a.replica, 1), work(&b.replica, 2));
    assert_eq!((done_a, done_b), (Outcome::Done, Outcome::Done));

    // Links minted through links, then the parent revoked: the cascade is one command.
    let child = a
        .replica
        .submit(&Command::InsertShare {
            share: share(201, 10),
            parent: Some(id(110)),
        })
        .await
        .expect("child link");
    assert!(matches!(child, Outcome::Share(_)));
    b.replica
        .submit(&Command::InsertShare {
            share: share(202, 10),
            parent: Some(id(201)),
        })
        .await
        .expect("grandchild link");
    let revoked = b
        .replica
        .submit(&Command::RevokeShare {
            plan: id(10),
            share: id(110),
            now_ms: 1_000,
        })
        .await
        .expect("revoke");
    let Outcome::Revocation(Some(revocation)) = revoked else {
        panic!("{revoked:?}")
    };
    assert_eq!(revocation.newly_revoked, [id(110), id(201), id(202)]);
    let refused = a
        .replica
        .submit(&Command::InsertShare {
            share: share(203, 10),
            parent: Some(id(202)),
        })
        .await;
    assert!(
        matches!(
            refused,
            Err(ReplicaError::Refused(StoreError::ShareRevoked(_)))
        ),
        "minted through a revoked link: {refused:?}"
    );

    // One sign-in link, consumed on both nodes at once.
    let token = [0x51; 32];
    a.replica
        .submit(&Command::InsertSignInLink {
            token_hash: token,
            link: SignInLinkRecord {
                member: id(501),
                created_at_ms: 40,
                expires_at_ms: 50_000,
                used_at_ms: None,
            },
        })
        .await
        .expect("sign-in link");
    let consume = |session: u8| Command::ConsumeSignInLink {
        token_hash: token,
        session_hash: [session; 32],
        session: SessionRecord {
            member: id(501),
            created_at_ms: 41,
            expires_at_ms: 90_000,
            revoked_at_ms: None,
            via: SessionVia::Link,
            user_agent: None,
        },
        now_ms: 41,
    };
    let (one, two) = (consume(1), consume(2));
    let (on_a, on_b) = tokio::join!(a.replica.submit(&one), b.replica.submit(&two));
    let signed_in: Vec<_> = [on_a.expect("consume on a"), on_b.expect("consume on b")]
        .into_iter()
        .map(|o| match o {
            Outcome::SignIn(result) => result,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        signed_in.iter().filter(|r| r.is_ok()).count(),
        1,
        "exactly one sign-in: {signed_in:?}"
    );
    assert!(
        signed_in.contains(&Err(SignInLinkRefusal::Used)),
        "{signed_in:?}"
    );

    // A log entry that is not a command, on a command subject: both skip it alike.
    let garbage = setup
        .publish(
            &setup.names().command_subject("garbage"),
            HeaderMap::new(),
            Bytes::from_static(b"\x01\xffnot a command"),
            "garbage-1",
            Expect::Any,
        )
        .await
        .expect("publish garbage");
    for n in [&a, &b] {
        caught_up(&n.replica, garbage.seq).await;
        assert_eq!(
            n.store.applied_position().expect("position"),
            garbage.seq,
            "its position is consumed in the file"
        );
    }
    let after = a
        .replica
        .submit(&append(id(20), b"after the garbage".to_vec()))
        .await
        .expect("the log goes on past it");
    assert!(matches!(after, Outcome::Appended(_)));

    let end = a.replica.position().max(b.replica.position());
    assert!(end > garbage.seq);
    caught_up(&a.replica, end).await;
    caught_up(&b.replica, end).await;
    assert_identical(&[&a.store, &b.store], end);
    for n in [&a, &b] {
        let stats = n.replica.stats();
        assert_eq!(stats.unreadable, 1, "{stats:?}");
        assert_eq!(
            stats.applied + stats.refused + stats.unreadable,
            end,
            "{stats:?}"
        );
    }
    assert_eq!(a.replica.stats().refused, b.replica.stats().refused);
    let plan_20 = a.store.log(id(20)).expect("log");
    assert_eq!(
        plan_20.last().map(|(_, u)| &u.update[..]),
        Some(&b"after the garbage"[..])
    );

    // What b announced: every command it applied, in log order.
    let mut positions = Vec::new();
    while let Ok(applied) = announced.try_recv() {
        positions.push(applied.position);
    }
    assert_eq!(positions.len() as u64, b.replica.stats().applied);
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // b stops; a goes on; b restarts on its file and applies only what it missed.
    b.replica.stop().await.expect("b stops cleanly");
    let stopped = b.replica.submit(&append(id(20), vec![9])).await;
    assert!(
        matches!(stopped, Err(ReplicaError::Stopped { .. })),
        "{stopped:?}"
    );
    for n in 0..10 {
        a.replica
            .submit(&append(id(21), tagged(1, 1_000 + n)))
            .await
            .expect("append while b is stopped");
    }
    let b_store = b.store.clone();
    assert_eq!(
        b_store.applied_position().expect("position"),
        end,
        "durable at stop"
    );
    let b2 = Replica::start(
        nats.connect(2).await,
        b_store.clone(),
        ReplicaConfig::new("b"),
    )
    .await
    .expect("restart b");
    let end = a.replica.position();
    caught_up(&b2, end).await;
    assert_eq!(
        b2.stats().applied,
        10,
        "nothing applied twice: {:?}",
        b2.stats()
    );
    assert_identical(&[&a.store, &b_store], end);

    // A third replica from an empty file, and the cost of applying: a log of updates, applied
    // by a replica that fsyncs every apply and by one with the default deferred durability.
    let mut submitting = tokio::task::JoinSet::new();
    let a_replica = Arc::new(a.replica);
    for w in 0..32u32 {
        let replica = a_replica.clone();
        submitting.spawn(async move {
            for n in 0..50u32 {
                replica
                    .submit(&append(id(22), tagged(3, w * 1_000 + n)))
                    .await
                    .expect("bulk append");
            }
        });
    }
    let started = Instant::now();
    while let Some(done) = submitting.join_next().await {
        done.expect("submitter");
    }
    let submit_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "submit: 1600 appends, 32 in flight, in {submit_secs:.2} s ({:.0}/s)",
        1600.0 / submit_secs
    );
    let end = a_replica.position();
    for (label, sync_every) in [("fsync every apply", 1), ("deferred (default)", 256)] {
        let cpu = cpu_seconds();
        let started = Instant::now();
        let c = node(nats.connect(0).await, "c", |c| c.sync_every = sync_every).await;
        caught_up(&c.replica, end).await;
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        eprintln!(
            "catch-up, {label}: {end} entries in {secs:.2} s ({:.0}/s), test process CPU {cpu:.2} s, {} durable commits",
            end as f64 / secs,
            c.replica.stats().syncs
        );
        assert_identical(&[&a.store, &c.store], end);
    }
    b2.stop().await.expect("b2 stops");
}

/// Two nodes submit updates while the log's leader is killed with SIGKILL (and restarted):
/// every submit that returned `Ok` is in both files exactly once, and the files are identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_submit_is_in_both_replicas_once_across_a_kill_9_of_the_leader() {
    const PER_WRITER: u32 = 300;
    const KILL_AT: usize = 150;
    let _one = ONE_AT_A_TIME.lock().await;
    let mut nats = NatsCluster::start().await;
    let setup = nats.connect(0).await;
    setup.ensure().await.expect("ensure");
    let leader = setup.log_leader().await.expect("info").expect("a leader");
    let leader_index = nats.index_of(&leader);
    // Both nodes connect first to engine nodes that are not the leader.
    let a = Arc::new(node(nats.connect((leader_index + 1) % 3).await, "a", |_| {}).await);
    let b = Arc::new(node(nats.connect((leader_index + 2) % 3).await, "b", |_| {}).await);
    let plan = id(7);
    a.replica
        .submit(&create_plan(7, Vec::new()))
        .await
        .expect("create plan");

    let (ok_tx, mut ok_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut writers = tokio::task::JoinSet::new();
    for (me, n) in [(1u8, a.clone()), (2u8, b.clone())] {
        let ok = ok_tx.clone();
        writers.spawn(async move {
            let mut failed = Vec::new();
            for i in 0..PER_WRITER {
                match n.replica.submit(&append(plan, tagged(me, i))).await {
                    Ok(Outcome::Appended(_)) => ok.send(tagged(me, i)).expect("test alive"),
                    Ok(other) => panic!("{other:?}"),
                    // Not acknowledged within the publish deadline: in the log or not, never twice.
                    Err(ReplicaError::Publish(e)) => failed.push((i, e.to_string())),
                    Err(e) => panic!("submit {me}/{i}: {e}"),
                }
            }
            failed
        });
    }
    drop(ok_tx);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < KILL_AT {
        acknowledged.push(ok_rx.recv().await.expect("writers alive"));
    }
    let victim = setup.log_leader().await.expect("info").expect("a leader");
    let victim_index = nats.index_of(&victim);
    eprintln!("kill -9 of the log's leader {victim} after {KILL_AT} acknowledged submits");
    nats.nodes[victim_index].kill9();
    let killed_at = Instant::now();
    let mut failed = Vec::new();
    while let Some(done) = writers.join_next().await {
        failed.extend(done.expect("writer"));
    }
    while let Some(bytes) = ok_rx.recv().await {
        acknowledged.push(bytes);
    }
    eprintln!(
        "all submits returned {:?} after the kill; {} acknowledged, not acknowledged: {failed:?}",
        killed_at.elapsed(),
        acknowledged.len()
    );
    nats.restart(victim_index);
    nats.wait_healthy(victim_index).await;

    let end = a.replica.position().max(b.replica.position());
    caught_up(&a.replica, end).await;
    caught_up(&b.replica, end).await;
    assert_identical(&[&a.store, &b.store], end);
    for n in [&a, &b] {
        let mut counts: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for (_, u) in n.store.log(plan).expect("log") {
            *counts.entry(u.update).or_default() += 1;
        }
        for bytes in &acknowledged {
            assert_eq!(counts.get(bytes), Some(&1), "acknowledged {bytes:?}");
        }
        assert!(counts.values().all(|&c| c == 1), "nothing stored twice");
        // The plan's first update, every acknowledged one, and at most the unacknowledged.
        assert!(
            (acknowledged.len() + 1..=acknowledged.len() + 1 + failed.len())
                .contains(&counts.len()),
            "only what was submitted: {} stored",
            counts.len()
        );
    }
}

/// A failure of the node's storage stops the applier with the position and the cause; it
/// skips nothing (here the file is already past the log entry, as when another process writes
/// it), and a submit waiting on it gets `Stopped`, as does every submit after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_stops_the_applier_with_a_clear_error_and_skips_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_nats, _setup, a) = one_replica_with_a_plan(Vec::new(), |_| {}).await;
    // Something else writes the file at position 3: the log's position 2 can no longer apply.
    a.store
        .execute_at(&append(id(1), vec![3]), 3)
        .expect("a write behind the replica's back");
    let waiting = a.replica.submit(&append(id(1), vec![2])).await;
    let Err(ReplicaError::Stopped { reason }) = waiting else {
        panic!("{waiting:?}")
    };
    assert!(
        reason.contains("applying log position 2 (append_updates) failed")
            && reason.contains("already applied"),
        "{reason}"
    );
    assert!(matches!(
        a.replica.submit(&append(id(1), vec![4])).await,
        Err(ReplicaError::Stopped { .. })
    ));
    match a.replica.stop().await {
        Err(mapline_replica::ApplyError::Storage {
            position: 2,
            command: "append_updates",
            source: StoreError::AlreadyApplied { .. },
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(a.replica.stats().position, 1, "nothing past the failure");
    assert_eq!(a.store.applied_position().expect("position"), 3);
}

/// A command of a format newer than this node reads (a newer node wrote it) stops the applier
/// before it: skipping it, as garbage is skipped, would leave this replica unlike every node that
/// applied it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_of_an_unknown_format_stops_the_applier_instead_of_being_skipped() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_nats, setup, a) = one_replica_with_a_plan(Vec::new(), |_| {}).await;
    let mut newer = append(id(1), vec![9]).encode();
    newer[0] = mapline_store::COMMAND_FORMAT + 1;
    let published = setup
        .publish(
            &setup.names().command_subject("append_updates"),
            HeaderMap::new(),
            Bytes::from(newer),
            "from-a-newer-node",
            Expect::Any,
        )
        .await
        .expect("publish a newer command");
    let after = a.replica.submit(&append(id(1), vec![10])).await;
    assert!(
        matches!(after, Err(ReplicaError::Stopped { .. })),
        "{after:?}"
    );
    match a.replica.stop().await {
        Err(mapline_replica::ApplyError::UnknownFormat {
            position,
            found,
            supported,
        }) => {
            assert_eq!(position, published.seq);
            assert_eq!(
                (found, supported),
                (
                    mapline_store::COMMAND_FORMAT + 1,
                    mapline_store::COMMAND_FORMAT
                )
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        a.store.applied_position().expect("position"),
        published.seq - 1,
        "nothing of the newer command is recorded"
    );
}

/// A link's visit is never made durable on its own (the store defers it whatever is asked), so
/// it must not count as the replica's sync: with a sync due at every apply, the visit leaves the
/// sync count alone and the next command syncs it along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_is_not_counted_as_a_durable_sync() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_nats, _setup, a) = one_replica_with_a_plan(vec![share(5, 1)], |c| c.sync_every = 1).await;
    let before = a.replica.stats().syncs;
    a.replica
        .submit(&Command::RecordShareSeen {
            share: id(5),
            now_ms: 1_000,
        })
        .await
        .expect("a visit");
    assert_eq!(
        a.replica.stats().syncs,
        before,
        "a deferred visit is not a sync"
    );
    a.replica
        .submit(&append(id(1), vec![1]))
        .await
        .expect("an update");
    assert_eq!(a.replica.stats().syncs, before + 1);
    a.replica.stop().await.expect("stop");
}

/// The child process of `a_replica_killed_with_deferred_applies_resumes_from_its_durable_position`:
/// applies the log with no durable commit at all, then aborts (no close, like kill -9). Does
/// nothing unless that test started it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_applies_without_syncing_then_aborts() {
    let Ok(store_path) = std::env::var("MAPLINE_REPLICA_CRASH_STORE") else {
        return;
    };
    let urls = std::env::var("MAPLINE_REPLICA_CRASH_URLS").expect("urls");
    let end: u64 = std::env::var("MAPLINE_REPLICA_CRASH_END")
        .expect("end")
        .parse()
        .expect("end is a number");
    let cluster = Cluster::connect(mapline_cluster::ClusterConfig::new(
        urls.split(',').map(str::to_owned).collect(),
    ))
    .await
    .expect("connect");
    let store = Arc::new(Store::open(std::path::Path::new(&store_path)).expect("open"));
    let mut config = ReplicaConfig::new("crashing");
    config.sync_every = u32::MAX;
    config.sync_interval = Duration::from_secs(3600);
    let replica = Replica::start(cluster, store.clone(), config)
        .await
        .expect("start");
    caught_up(&replica, end).await;
    assert_eq!(store.applied_position().expect("position"), end);
    assert_eq!(replica.stats().syncs, 0, "{:?}", replica.stats());
    println!("CHILD APPLIED THROUGH {end}");
    std::process::abort();
}

/// A replica that dies (abort: no close) with applies that never reached the disk loses them
/// together with their positions, and a replica restarted on its file resumes from the durable
/// position and ends identical to one that never crashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_with_deferred_applies_resumes_from_its_durable_position() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nats = NatsCluster::start().await;
    let setup = nats.connect(0).await;
    setup.ensure().await.expect("ensure");
    let a = node(nats.connect(1).await, "a", |_| {}).await;
    a.replica
        .submit(&create_plan(1, vec![share(2, 1)]))
        .await
        .expect("create plan");
    for n in 0..40 {
        a.replica
            .submit(&append(id(1), tagged(1, n)))
            .await
            .expect("append");
    }
    a.replica
        .submit(&Command::RevokeShare {
            plan: id(1),
            share: id(2),
            now_ms: 5,
        })
        .await
        .expect("revoke");
    let end = a.replica.position();

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crashed.redb");
    let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash_child_applies_without_syncing_then_aborts",
            "--nocapture",
        ])
        .env("MAPLINE_REPLICA_CRASH_STORE", &path)
        .env("MAPLINE_REPLICA_CRASH_URLS", nats.urls().join(","))
        .env("MAPLINE_REPLICA_CRASH_END", end.to_string())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        stdout.contains(&format!("CHILD APPLIED THROUGH {end}")) && !child.status.success(),
        "the child applied the log and aborted: {:?}\n{stdout}\n{}",
        child.status,
        String::from_utf8_lossy(&child.stderr)
    );

    let store = Arc::new(Store::open(&path).expect("reopen after the crash"));
    let durable = store.applied_position().expect("position");
    eprintln!("after the crash: durable position {durable} of {end}");
    assert!(
        durable < end,
        "deferred applies were lost: at {durable} of {end}"
    );
    let c = Replica::start(
        nats.connect(2).await,
        store.clone(),
        ReplicaConfig::new("c"),
    )
    .await
    .expect("restart");
    caught_up(&c, end).await;
    let stats = c.stats();
    assert_eq!(
        stats.applied + stats.refused + stats.unreadable,
        end - durable,
        "each lost position applied again, once: {stats:?}"
    );
    assert_identical(&[&a.store, &store], end);
    c.stop().await.expect("stop");
}
