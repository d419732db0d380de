//! `mapline migrate`, and `backup` / `verify` / `rebuild-history` with `--cluster`, run as the
//! real binary against a real 3-node nats-server cluster on loopback (mapline-cluster's test
//! harness, included by path like mapline-replica's tests do). Also the refusals: a cluster in
//! use, a corrupt file, an unreachable cluster, a base whose bytes do not match its record,
//! admin writes on a replica's file, `restore --cluster`.

#[path = "../../mapline-cluster/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use common::{NatsCluster, ONE_AT_A_TIME};
use mapline_replica::{Replica, ReplicaConfig};
use mapline_store::{MemberRecord, MemberRole, Store};

fn mapline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mapline"))
        .args(args)
        .env_remove("MAPLINE_DATA")
        .env_remove("MAPLINE_ADMIN_TOKEN")
        .output()
        .expect("run mapline")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn ok(out: Output) -> String {
    let all = text(&out);
    assert!(
        out.status.success(),
        "mapline failed ({}):\n{all}",
        out.status
    );
    all
}

fn refused(out: Output) -> String {
    let all = text(&out);
    assert!(!out.status.success(), "mapline should have refused:\n{all}");
    all
}

fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The cluster flags for this test cluster.
fn cluster_flags(nats: &NatsCluster) -> Vec<String> {
    let monitors: Vec<String> = nats.nodes.iter().map(common::Node::monitor_url).collect();
    vec![
        "--cluster".into(),
        nats.urls().join(","),
        "--nats-monitor".into(),
        monitors.join(","),
        "--cluster-timeout".into(),
        "30".into(),
    ]
}

fn with<'a>(args: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    args.iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .collect()
}

/// (id, title) of every plan in a file, sorted.
fn plans_of(path: &Path) -> Vec<(String, String)> {
    let store = Store::open(path).expect("opens");
    let mut plans: Vec<(String, String)> = store
        .plans()
        .expect("plans")
        .into_iter()
        .map(|(id, plan)| (id.to_string(), plan.title))
        .collect();
    plans.sort();
    plans
}

fn members_of(path: &Path) -> Vec<String> {
    let store = Store::open(path).expect("opens");
    let mut emails: Vec<String> = store
        .members()
        .expect("members")
        .into_iter()
        .map(|m| m.email)
        .collect();
    emails.sort();
    emails
}

/// A single-node file made by the binary: two plans created with `plans create --data`.
fn single_node_file(path: &Path) {
    for (title, buyer) in [
        ("Northwind rollout", "Northwind"),
        ("Contoso pilot", "Contoso"),
    ] {
        ok(mapline(&[
            "plans",
            "create",
            "--data",
            p(path),
            "--title",
            title,
            "--buyer-org",
            buyer,
            "--seller-org",
            "Mapline",
            "--go-live",
            "2027-04-01",
        ]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_file_is_what_the_cluster_verifies_backs_up_and_rebuilds() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nats = NatsCluster::start().await;
    let flags = cluster_flags(&nats);
    let dir = tempfile::tempdir().expect("temp dir");
    let single = dir.path().join("single.redb");
    single_node_file(&single);
    let original = plans_of(&single);
    assert_eq!(original.len(), 2);

    let out = ok(mapline(&with(
        &["migrate", "--from-data", p(&single)],
        &flags,
    )));
    assert!(out.contains("2 plans"), "{out}");

    // Migrating again (the cluster has a base now) is refused, and says why.
    let again = refused(mapline(&with(
        &["migrate", "--from-data", p(&single)],
        &flags,
    )));
    assert!(again.contains("already in use"), "{again}");

    // The cluster's state is the base: it verifies, and a backup holds the same plans.
    let out = ok(mapline(&with(&["verify"], &flags)));
    assert!(out.contains("verified 2 plans"), "{out}");
    let first = dir.path().join("first-backup.redb");
    ok(mapline(&with(&["backup", p(&first)], &flags)));
    assert_eq!(plans_of(&first), original);

    // A write through the log after the base: a replica (a node) submits a member.
    let cluster = nats.connect(1).await;
    let node_file = dir.path().join("node.redb");
    let node_store = Arc::new(Store::open(&node_file).expect("node file"));
    let replica = Replica::start(cluster.clone(), node_store, ReplicaConfig::new("node-a"))
        .await
        .expect("replica");
    replica
        .submit(&mapline_store::Command::InsertMember {
            member: MemberRecord {
                id: uuid::Uuid::from_u128(7),
                email: "ana@example.com".into(),
                name: "Ana".into(),
                role: MemberRole::Rep,
                created_at_ms: 1,
                disabled_at_ms: None,
            },
        })
        .await
        .expect("submitted");
    replica.stop().await.expect("stopped");
    drop(replica);

    // Migrating into a cluster whose log holds entries is refused too.
    let again = refused(mapline(&with(
        &["migrate", "--from-data", p(&single)],
        &flags,
    )));
    assert!(again.contains("already in use"), "{again}");

    // The backup now holds the base and the log: the plans and the member.
    let second = dir.path().join("second-backup.redb");
    let out = ok(mapline(&with(&["backup", p(&second)], &flags)));
    assert!(out.contains("through log position 1"), "{out}");
    assert_eq!(plans_of(&second), original);
    assert_eq!(members_of(&second), ["ana@example.com"]);
    let out = ok(mapline(&with(&["verify"], &flags)));
    assert!(out.contains("verified 2 plans"), "{out}");

    // rebuild-history materializes into a new file and checks there.
    let rebuilt = dir.path().join("rebuilt.redb");
    let out = ok(mapline(&with(
        &["rebuild-history", "--check", "--data", p(&rebuilt)],
        &flags,
    )));
    assert!(out.contains("2 plans checked; 0 differ"), "{out}");
    assert_eq!(plans_of(&rebuilt), original);
    // ... and never into an existing file.
    let out = refused(mapline(&with(
        &["rebuild-history", "--data", p(&rebuilt)],
        &flags,
    )));
    assert!(out.contains("already exists"), "{out}");

    // The backup is a replica's file (it applied log position 1): admin writes on it are
    // refused, reads work.
    let out = refused(mapline(&[
        "plans",
        "create",
        "--data",
        p(&second),
        "--title",
        "Local",
        "--buyer-org",
        "X",
        "--seller-org",
        "Y",
        "--go-live",
        "2027-01-01",
    ]));
    assert!(
        out.contains("this file is a cluster replica; use --server against a node")
            || out.contains("this file is a cluster replica"),
        "{out}"
    );
    let out = refused(mapline(&[
        "members",
        "invite",
        "bo@example.com",
        "--name",
        "Bo",
        "--role",
        "rep",
        "--data",
        p(&second),
    ]));
    assert!(out.contains("cluster replica"), "{out}");
    assert_eq!(plans_of(&second), original, "nothing was written");
    ok(mapline(&["plans", "list", "--data", p(&second)]));

    // A backup of the cluster migrates into a fresh cluster (another prefix): how a cluster
    // is restored. Its nodes start from position 0 of the new log.
    let mut fresh = flags.clone();
    fresh.extend(["--cluster-prefix".into(), "restored".into()]);
    let out = ok(mapline(&with(
        &["migrate", "--from-data", p(&second)],
        &fresh,
    )));
    assert!(out.contains("2 plans"), "{out}");
    let third = dir.path().join("restored-backup.redb");
    ok(mapline(&with(&["backup", p(&third)], &fresh)));
    assert_eq!(plans_of(&third), original);
    assert_eq!(members_of(&third), ["ana@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_files_tampered_bases_and_unreachable_clusters_are_refused() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");

    // Nothing listens on the port: refused after --cluster-timeout, with the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("nats://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let out = refused(mapline(&[
        "verify",
        "--cluster",
        &url,
        "--cluster-timeout",
        "2",
    ]));
    assert!(out.contains("cannot reach the cluster"), "{out}");
    let unreachable_backup = dir.path().join("never.redb");
    refused(mapline(&[
        "backup",
        p(&unreachable_backup),
        "--cluster",
        &url,
        "--cluster-timeout",
        "1",
    ]));
    assert!(!unreachable_backup.exists());

    // restore --cluster is refused and says what to do instead.
    let out = refused(mapline(&["restore", "x.redb", "--cluster", &url]));
    assert!(
        out.contains("migrating a backup into a fresh cluster"),
        "{out}"
    );

    let nats = NatsCluster::start().await;
    let flags = cluster_flags(&nats);
    let cluster = nats.connect(0).await;

    // A file that is not a Mapline data file: refused, nothing uploaded.
    let corrupt = dir.path().join("corrupt.redb");
    std::fs::write(&corrupt, b"not a redb file at all, just bytes").expect("written");
    let out = refused(mapline(&with(
        &["migrate", "--from-data", p(&corrupt)],
        &flags,
    )));
    assert!(out.contains("does not open"), "{out}");
    cluster.ensure().await.expect("ensured");
    let kv = cluster.kv().await.expect("kv");
    assert!(
        kv.get("base").await.expect("read").is_none(),
        "no base recorded"
    );
    assert_eq!(cluster.log_last_sequence().await.expect("log"), 0);

    // A good file migrates; then the object's bytes are replaced behind the record's back.
    let single = dir.path().join("single.redb");
    single_node_file(&single);
    ok(mapline(&with(
        &["migrate", "--from-data", p(&single)],
        &flags,
    )));
    // Another good data file, so only the sha256 can tell.
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other_file = other_dir.path().join("other.redb");
    single_node_file(&other_file);
    let other = std::fs::read(&other_file).expect("read");
    let objects = cluster.objects().await.expect("objects");
    objects.put("base", &other).await.expect("replaced");

    // Every materializing command refuses the base and writes nothing.
    let out = refused(mapline(&with(&["verify"], &flags)));
    assert!(out.contains("sha256"), "{out}");
    let backup = dir.path().join("backup.redb");
    let out = refused(mapline(&with(&["backup", p(&backup)], &flags)));
    assert!(out.contains("sha256"), "{out}");
    assert!(out.contains("nothing was written"), "{out}");
    let rebuilt = dir.path().join("rebuilt.redb");
    refused(mapline(&with(
        &["rebuild-history", "--data", p(&rebuilt)],
        &flags,
    )));
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("listing")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["corrupt.redb", "single.redb"], "files left behind");
}
