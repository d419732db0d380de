//! The engine layer against a real 3-node nats-server cluster on loopback (tests/common).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::{NatsCluster, ONE_AT_A_TIME, wait_for};
use mapline_cluster::{
    CheckError, Cluster, ClusterConfig, ConnectError, EnsureError, Expect, HeaderMap, KvError,
    ObjectError, PublishError,
};

/// The stream's info; retried (with a deadline) while the engine cannot answer, as right
/// after a node was killed.
async fn stream_info(cluster: &Cluster, name: &str) -> stream::Info {
    let js = jetstream::new(cluster.client().clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let error = match js.get_stream(name).await {
            Ok(mut s) => match s.info().await {
                Ok(info) => return info.clone(),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "no info on stream {name}: {error}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ensure_creates_r3_file_stores_and_a_second_call_accepts_them() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nats = NatsCluster::start().await;
    let a = nats.connect(0).await;
    let ensured = a.ensure().await.expect("ensure on an empty cluster");
    assert_eq!(
        ensured.created,
        [
            "stream mapline-log",
            "KV bucket mapline-kv",
            "object store mapline-obj"
        ]
    );
    for name in ["mapline-log", "KV_mapline-kv", "OBJ_mapline-obj"] {
        let info = stream_info(&a, name).await;
        assert_eq!(info.config.num_replicas, 3, "{name}");
        assert_eq!(info.config.storage, stream::StorageType::File, "{name}");
        assert_eq!(
            info.cluster.map(|c| c.replicas.len()),
            Some(2),
            "{name}: two followers"
        );
    }
    let log = stream_info(&a, "mapline-log").await.config;
    assert_eq!(log.subjects, ["mapline.upd.>", "mapline.cmd.>"]);
    assert_eq!(log.duplicate_window, Duration::from_secs(120));
    assert_eq!(log.max_age, Duration::ZERO);

    // A second node, connected through another engine node: everything is there and passes.
    let b = nats.connect(2).await;
    let again = b
        .ensure()
        .await
        .expect("ensure finds and accepts what the first made");
    assert!(
        again.created.is_empty(),
        "created again: {:?}",
        again.created
    );
}

#[tokio::test]
async fn a_hand_made_r1_or_memory_stream_is_refused() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nats = NatsCluster::start().await;
    let cluster = nats.connect(0).await;
    let js = jetstream::new(cluster.client().clone());
    let hand_made = |replicas, storage| stream::Config {
        name: "mapline-log".into(),
        subjects: vec!["mapline.upd.>".into(), "mapline.cmd.>".into()],
        num_replicas: replicas,
        storage,
        ..Default::default()
    };

    js.create_stream(hand_made(1, stream::StorageType::File))
        .await
        .expect("R1 stream");
    match cluster.ensure().await {
        Err(EnsureError::Refused(CheckError::TooFewReplicas { what, replicas: 1 })) => {
            assert_eq!(what, "stream mapline-log");
        }
        other => panic!("an R1 stream was not refused: {other:?}"),
    }
    assert_eq!(
        stream_info(&cluster, "mapline-log")
            .await
            .config
            .num_replicas,
        1,
        "left as it was"
    );

    js.delete_stream("mapline-log").await.expect("delete");
    js.create_stream(hand_made(3, stream::StorageType::Memory))
        .await
        .expect("memory stream");
    let refused = cluster
        .ensure()
        .await
        .expect_err("a memory stream is refused");
    assert!(
        matches!(
            refused,
            EnsureError::Refused(CheckError::MemoryStorage { .. })
        ),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        "stream mapline-log is kept in memory; Mapline needs file storage"
    );
}

#[tokio::test]
async fn a_node_that_does_not_fsync_before_acknowledging_is_refused_before_anything_is_made() {
    let _one = ONE_AT_A_TIME.lock().await;
    let lone = NatsCluster::start_with(1, false).await;
    let cluster = lone.connect(0).await;
    let refused = cluster
        .ensure()
        .await
        .expect_err("no sync_interval: always");
    match &refused {
        EnsureError::Refused(CheckError::NotSyncAlways { server, .. }) => assert_eq!(server, "n1"),
        other => panic!("expected NotSyncAlways, got {other:?}"),
    }
    assert!(
        refused
            .to_string()
            .contains("set `jetstream { sync_interval: always }`"),
        "{refused}"
    );
    let js = jetstream::new(cluster.client().clone());
    assert_eq!(
        js.query_account().await.expect("account").streams,
        0,
        "nothing created"
    );
}

#[tokio::test]
async fn ensure_on_fewer_than_three_engine_nodes_says_why_it_cannot_create() {
    let _one = ONE_AT_A_TIME.lock().await;
    let lone = NatsCluster::start_with(1, true).await;
    let cluster = lone.connect(0).await;
    match cluster.ensure().await {
        Err(
            e @ EnsureError::Engine {
                action: "create", ..
            },
        ) => {
            let source = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            assert!(
                source.contains("replicas"),
                "the engine's reason is kept: {source}"
            );
        }
        other => panic!("expected a create error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_publish_resent_with_the_same_msg_id_is_stored_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nats = NatsCluster::start().await;
    let cluster = nats.connect(0).await;
    cluster.ensure().await.expect("ensure");
    assert_eq!(
        cluster.log_last_sequence().await.expect("last"),
        0,
        "empty log"
    );
    let subject = cluster.names().update_subject("plan-1", false);
    let mut headers = HeaderMap::new();
    headers.insert("Mapline-Share", "share-1");

    let first = cluster
        .publish(
            &subject,
            headers.clone(),
            Bytes::from_static(b"u1"),
            "msg-1",
            Expect::Any,
        )
        .await
        .expect("publish");
    assert!(!first.duplicate);
    // The same message again, as a retry after a lost acknowledgement would send it.
    let again = cluster
        .publish(
            &subject,
            headers.clone(),
            Bytes::from_static(b"u1"),
            "msg-1",
            Expect::Any,
        )
        .await
        .expect("publish again");
    assert_eq!(
        again.seq, first.seq,
        "the duplicate's ack names the stored message"
    );
    assert!(again.duplicate);
    // Another node's connection sees the same.
    let other = nats.connect(1).await;
    let third = other
        .publish(
            &subject,
            headers,
            Bytes::from_static(b"u1"),
            "msg-1",
            Expect::Any,
        )
        .await
        .expect("publish from another node");
    assert_eq!((third.seq, third.duplicate), (first.seq, true));

    assert_eq!(
        stream_info(&cluster, "mapline-log").await.state.messages,
        1,
        "stored once"
    );
    assert_eq!(cluster.log_last_sequence().await.expect("last"), first.seq);
    let mut reader = cluster.read_from(None, 1);
    let got = reader.next().await;
    assert_eq!(
        (got.stream_seq, &got.subject[..], &got.payload[..]),
        (first.seq, &subject[..], &b"u1"[..])
    );
    assert_eq!(
        got.headers.get("Mapline-Share").map(|v| v.as_str()),
        Some("share-1")
    );
}

#[tokio::test]
async fn a_publish_with_a_stale_expected_subject_sequence_is_refused_and_not_stored() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nats = NatsCluster::start().await;
    let cluster = nats.connect(0).await;
    cluster.ensure().await.expect("ensure");
    let hist = "mapline.cmd.history.plan-1";
    let other = "mapline.cmd.history.plan-2";
    let publish = |subject: &'static str, id: &'static str, expect| {
        let cluster = cluster.clone();
        async move {
            cluster
                .publish(subject, HeaderMap::new(), Bytes::from(id), id, expect)
                .await
        }
    };

    let first = publish(hist, "h1", Expect::LastSubjectSeq(0))
        .await
        .expect("first writer wins");
    // Another subject moves the stream on but not this subject's sequence.
    publish(other, "o1", Expect::LastSubjectSeq(0))
        .await
        .expect("other subject");
    match publish(hist, "h2", Expect::LastSubjectSeq(0)).await {
        Err(PublishError::WrongLastSequence {
            subject,
            expected: 0,
        }) => assert_eq!(subject, hist),
        other => panic!("a stale CAS was not refused: {other:?}"),
    }
    let next = publish(hist, "h3", Expect::LastSubjectSeq(first.seq))
        .await
        .expect("CAS on the current sequence");
    assert_eq!(next.seq, first.seq + 2);
    assert_eq!(
        stream_info(&cluster, "mapline-log").await.state.messages,
        3,
        "the refused one is not stored"
    );
}

#[tokio::test]
async fn kv_cas_and_objects_round_trip_with_typed_errors() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nats = NatsCluster::start().await;
    let cluster = nats.connect(0).await;
    cluster.ensure().await.expect("ensure");
    let kv = cluster.kv().await.expect("kv");

    assert_eq!(kv.get("plan.p1").await.expect("get"), None);
    let r1 = kv
        .create("plan.p1", Bytes::from_static(b"v1"))
        .await
        .expect("create");
    assert!(matches!(
        kv.create("plan.p1", Bytes::from_static(b"v1'")).await,
        Err(KvError::AlreadyExists { .. })
    ));
    let r2 = kv
        .update("plan.p1", Bytes::from_static(b"v2"), r1)
        .await
        .expect("update at r1");
    assert!(matches!(
        kv.update("plan.p1", Bytes::from_static(b"stale"), r1).await,
        Err(KvError::WrongRevision { expected, .. }) if expected == r1
    ));
    let entry = kv.get("plan.p1").await.expect("get").expect("present");
    assert_eq!((&entry.value[..], entry.revision), (&b"v2"[..], r2));
    assert!(matches!(
        kv.get(".bad").await,
        Err(KvError::InvalidKey { .. })
    ));

    let objects = cluster.objects().await.expect("objects");
    let snapshot: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        objects.put("snap.p1", &snapshot).await.expect("put"),
        snapshot.len() as u64
    );
    assert_eq!(
        &objects.get("snap.p1").await.expect("get")[..],
        &snapshot[..]
    );
    assert!(matches!(
        objects.get("snap.none").await,
        Err(ObjectError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_node_started_before_the_engine_waits_and_connects_once_it_is_up() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut nats = NatsCluster::configure(3, true);
    let connecting = tokio::spawn(Cluster::connect(nats.config(0)));
    nats.launch().await;
    let cluster = connecting
        .await
        .expect("task")
        .expect("connected once the engine was up");
    cluster.ensure().await.expect("ensure");
}

#[tokio::test]
async fn connect_without_an_engine_retries_then_says_it_is_not_ready() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut config = ClusterConfig::new(vec![format!("nats://127.0.0.1:{port}")]);
    config.ready_timeout = Some(Duration::from_millis(800));
    match Cluster::connect(config).await {
        Err(ConnectError::NotReady { attempts, .. }) => assert!(attempts >= 2, "{attempts}"),
        other => panic!("expected NotReady, got {other:?}"),
    }
}

/// Which engine node hosts the (single, R1) consumer the reader made.
async fn reader_consumer_host(cluster: &Cluster) -> Option<String> {
    use futures_util::StreamExt;
    let js = jetstream::new(cluster.client().clone());
    let stream = js.get_stream("mapline-log").await.ok()?;
    let mut consumers = stream.consumers();
    while let Some(info) = consumers.next().await {
        if let Some(leader) = info.ok().and_then(|i| i.cluster).and_then(|c| c.leader) {
            return Some(leader);
        }
    }
    None
}

/// Waits until every replica of the log is current again (a restarted node caught up).
async fn wait_log_whole(cluster: &Cluster) {
    wait_for(
        "every replica of the log to be current",
        Duration::from_secs(30),
        || async {
            stream_info(cluster, "mapline-log")
                .await
                .cluster
                .is_some_and(|c| {
                    c.leader.is_some()
                        && c.replicas.len() == 2
                        && c.replicas.iter().all(|r| r.current && !r.offline)
                })
        },
    )
    .await;
}

#[derive(Clone, Copy, Debug)]
enum Kill {
    /// The log's Raft leader: writes stall until a new one is elected.
    LogLeader,
    /// The node the reader's connection is on: its client reconnects elsewhere.
    ReaderConnection,
    /// The node hosting the reader's (R1, ephemeral) consumer: it must be made again.
    ReaderConsumerHost,
}

/// Every acknowledged message is delivered exactly once, in stream order, to a reader that
/// reads while engine nodes are killed with SIGKILL one after another (each restarted and
/// caught up before the next): the log's leader, the node the reader is connected to, the
/// node hosting the reader's consumer. Publishing goes on through every stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_yields_every_acknowledged_message_once_in_order_across_kill_9s() {
    const ROUNDS: [(Kill, usize); 3] = [
        (Kill::LogLeader, 150),
        (Kill::ReaderConnection, 350),
        (Kill::ReaderConsumerHost, 550),
    ];
    /// Messages published after each kill, through the stall.
    const AFTER: usize = 100;
    const TOTAL: usize = 700;
    let _one = ONE_AT_A_TIME.lock().await;
    let mut nats = NatsCluster::start().await;
    let leader_view = nats.connect(0).await;
    leader_view.ensure().await.expect("ensure");
    let leader = leader_view
        .log_leader()
        .await
        .expect("info")
        .expect("a leader");
    let leader_index = nats.index_of(&leader);
    // Writer and reader connect first to nodes that are not the leader, as two Mapline
    // nodes would (their clients fail over to the other URLs).
    let writer = nats.connect((leader_index + 1) % 3).await;
    let reader_node = nats.connect((leader_index + 2) % 3).await;

    let subject = writer.names().update_subject("plan-k", false);
    let (delivered_tx, mut delivered_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut reader = reader_node.read_from(Some(&subject), 1);
    let reading = tokio::spawn(async move {
        loop {
            let m = reader.next().await;
            if delivered_tx.send(m).is_err() {
                return;
            }
        }
    });

    // The writer publishes up to `allowed`, so each kill lands while it is publishing.
    let (allowed_tx, mut allowed) = tokio::sync::watch::channel(0);
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let writing = tokio::spawn({
        let writer = writer.clone();
        let subject = subject.clone();
        async move {
            for i in 0..TOTAL {
                allowed.wait_for(|n| i < *n).await.expect("test alive");
                let id = format!("k-{i}");
                let sent = Instant::now();
                let ack = writer
                    .publish(
                        &subject,
                        HeaderMap::new(),
                        Bytes::from(i.to_string()),
                        &id,
                        Expect::Any,
                    )
                    .await
                    .expect("every publish is acknowledged in the end");
                acked_tx
                    .send((i, ack.seq, sent.elapsed()))
                    .expect("test alive");
            }
        }
    });

    let mut acked: Vec<(usize, u64, Duration)> = Vec::new();
    let mut delivered: Vec<mapline_cluster::Delivered> = Vec::new();
    let mut ack_until = async |n: usize, acked: &mut Vec<(usize, u64, Duration)>| {
        while acked.len() < n {
            acked.push(acked_rx.recv().await.expect("writer alive"));
        }
    };
    let mut deliver_through = async |seq: u64, delivered: &mut Vec<mapline_cluster::Delivered>| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while delivered.last().map(|d| d.stream_seq) < Some(seq) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, delivered_rx.recv()).await {
                Ok(Some(m)) => delivered.push(m),
                _ => panic!(
                    "the reader stopped at {:?}, short of {seq} ({} delivered)",
                    delivered.last().map(|d| d.stream_seq),
                    delivered.len()
                ),
            }
        }
    };

    let mut report = Vec::new();
    for (kill, at) in ROUNDS {
        allowed_tx.send(at + AFTER).expect("writer alive");
        ack_until(at, &mut acked).await;
        let victim = match kill {
            Kill::LogLeader => writer.log_leader().await.expect("info").expect("a leader"),
            Kill::ReaderConnection => reader_node.client().server_info().server_name,
            Kill::ReaderConsumerHost => reader_consumer_host(&writer)
                .await
                .expect("the reader's consumer"),
        };
        let victim_index = nats.index_of(&victim);
        tracing::info!(?kill, victim, "test: kill -9");
        nats.nodes[victim_index].kill9();
        let killed_at = Instant::now();
        ack_until(at + AFTER, &mut acked).await;
        let writes_back = killed_at.elapsed();
        deliver_through(acked[at + AFTER - 1].1, &mut delivered).await;
        report.push(format!(
            "{kill:?} {victim}: writes back after {writes_back:?}, reader through them after {:?}",
            killed_at.elapsed()
        ));
        if let Kill::LogLeader = kill {
            let new_leader = writer.log_leader().await.expect("info");
            assert_ne!(new_leader.as_deref(), Some(victim.as_str()), "a new leader");
        }
        nats.restart(victim_index);
        nats.wait_healthy(victim_index).await;
        wait_log_whole(&writer).await;
    }
    allowed_tx.send(TOTAL).expect("writer alive");
    ack_until(TOTAL, &mut acked).await;
    writing.await.expect("writer finished");
    deliver_through(acked[TOTAL - 1].1, &mut delivered).await;
    reading.abort();
    eprintln!("{}", report.join("\n"));

    let seqs: Vec<u64> = delivered.iter().map(|d| d.stream_seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in stream order, none twice: {seqs:?}"
    );
    let by_seq: BTreeMap<u64, &[u8]> = delivered
        .iter()
        .map(|d| (d.stream_seq, &d.payload[..]))
        .collect();
    for (i, seq, _) in &acked {
        assert_eq!(
            by_seq.get(seq).copied(),
            Some(i.to_string().as_bytes()),
            "acked #{i} at seq {seq}"
        );
    }
    assert_eq!(
        delivered.len(),
        acked.len(),
        "nothing but what was acknowledged, each once"
    );
    let info = stream_info(&writer, "mapline-log").await;
    assert_eq!(
        info.state.messages, TOTAL as u64,
        "no publish stored twice across the retries"
    );
}
