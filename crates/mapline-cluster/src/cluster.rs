//! The connection to the engine: connect and wait, ensure/check, publish.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use async_nats::{ConnectErrorKind, HeaderMap};
use bytes::Bytes;

use crate::check::{self, Want};
use crate::config::{ClusterConfig, Names};
use crate::error::{ConnectError, EngineError, EnsureError, PublishError};

/// A connected node's handle on the engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) names: Names,
    pub(crate) config: ClusterConfig,
    /// Counts (re)connections: a reader whose connection moved to another engine node
    /// reopens its consumer rather than wait for async-nats to give up on the old one.
    pub(crate) connections: tokio::sync::watch::Receiver<u64>,
}

/// What `ensure` created (empty when everything was there and passed the checks).
#[derive(Debug, Default)]
pub struct Ensured {
    pub created: Vec<String>,
}

/// The per-subject compare-and-set of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No condition.
    Any,
    /// `Nats-Expected-Last-Subject-Sequence`: the subject's last message is at this stream
    /// sequence (0: the subject has no message yet).
    LastSubjectSeq(u64),
}

/// Where the log stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogState {
    /// The sequence of the last entry committed (0: empty).
    pub last_seq: u64,
    /// The server name of the stream's Raft leader.
    pub leader: Option<String>,
}

/// An acknowledged publish: committed by a quorum (and fsynced where the engine is set so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The message's stream sequence (for a duplicate: the sequence of the one stored).
    pub seq: u64,
    /// The engine had this msg id already and did not store the message again.
    pub duplicate: bool,
}

/// Backoff between tries while the engine is not ready or a publish is not acknowledged.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(2))
}

impl Cluster {
    /// Connects and waits until JetStream answers (a meta leader is elected), retrying with a
    /// `warn` line per try; refuses a server older than 2.12.
    pub async fn connect(config: ClusterConfig) -> Result<Self, ConnectError> {
        config.validate().map_err(ConnectError::InvalidConfig)?;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let last: EngineError = match Self::try_connect(&config).await {
                Ok(Ok(cluster)) => {
                    tracing::info!(
                        server = %cluster.client.server_info().server_name,
                        version = %cluster.client.server_info().version,
                        attempt,
                        "connected to NATS JetStream"
                    );
                    return Ok(cluster);
                }
                Ok(Err(not_ready)) => not_ready,
                Err(fatal) => return Err(fatal),
            };
            let waited = started.elapsed();
            if config.ready_timeout.is_some_and(|limit| waited >= limit) {
                return Err(ConnectError::NotReady {
                    waited,
                    attempts: attempt,
                    last,
                });
            }
            let pause = backoff(attempt);
            tracing::warn!(
                urls = ?config.urls,
                attempt,
                error = %last,
                "NATS JetStream is not ready yet; retrying in {pause:?}"
            );
            tokio::time::sleep(pause).await;
        }
    }

    /// `Err`: give up; `Ok(Err)`: not ready yet, try again.
    async fn try_connect(
        config: &ClusterConfig,
    ) -> Result<Result<Self, EngineError>, ConnectError> {
        let (connected, connections) = tokio::sync::watch::channel(0u64);
        let mut options = async_nats::ConnectOptions::new()
            .name("mapline")
            .event_callback(move |event| {
                let connected = connected.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("connected to a NATS server");
                            connected.send_modify(|n| *n += 1);
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("disconnected from NATS; reconnecting");
                        }
                        other => tracing::debug!(event = %other, "NATS client event"),
                    }
                }
            })
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout));
        if let Some(path) = &config.creds {
            options =
                options
                    .credentials_file(path)
                    .await
                    .map_err(|source| ConnectError::Creds {
                        path: path.clone(),
                        source,
                    })?;
        }
        if let Some(ca) = &config.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        let client = match options.connect(config.urls.as_slice()).await {
            Ok(client) => client,
            Err(e) => {
                return match e.kind() {
                    ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                        Err(ConnectError::Auth(e.into()))
                    }
                    _ => Ok(Err(e.into())),
                };
            }
        };
        let info = client.server_info();
        check::server_version(&info.server_name, &info.version)?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .build(client.clone());
        if let Err(e) = js.query_account().await {
            return Ok(Err(e.into()));
        }
        Ok(Ok(Self {
            client,
            js,
            names: config.names(),
            config: config.clone(),
            connections,
        }))
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The underlying client, for plain (not stored) subjects such as presence.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Creates what is missing — the log stream, the KV bucket, the object store, all R3 on
    /// file storage — and checks what exists; with monitoring URLs, checks every node's
    /// version and fsync setting first. Safe to call from several nodes at once.
    ///
    /// The engine failing to answer (a stream choosing a new leader, a node down) is waited
    /// out, retried with a `warn` line per try, as long as `ready_timeout` allows; a refusal
    /// (the engine is not configured as the rules need) returns at once.
    pub async fn ensure(&self) -> Result<Ensured, EnsureError> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            match self.ensure_once().await {
                Err(EnsureError::Engine {
                    action,
                    what,
                    source,
                }) => {
                    let pause = backoff(attempt);
                    if self
                        .config
                        .ready_timeout
                        .is_some_and(|limit| started.elapsed() + pause >= limit)
                    {
                        return Err(EnsureError::Engine {
                            action,
                            what,
                            source,
                        });
                    }
                    tracing::warn!(attempt, action, what, error = %source, "JetStream cannot set up Mapline's streams yet; retrying in {pause:?}");
                    tokio::time::sleep(pause).await;
                }
                done => return done,
            }
        }
    }

    async fn ensure_once(&self) -> Result<Ensured, EnsureError> {
        if self.config.monitor_urls.is_empty() {
            tracing::warn!(
                "no NATS monitoring URLs given: cannot check that every engine node fsyncs \
                 before acknowledging (sync_interval: always) — a client cannot see it otherwise"
            );
        }
        for url in &self.config.monitor_urls {
            match crate::monitor::varz(url, self.config.request_timeout).await {
                Ok(varz) => check::varz(url, &varz)?,
                // A node that is down (the cluster keeps its quorum without it) must not keep
                // a Mapline node from starting; it is checked at the next start that reaches it.
                Err(error) => tracing::warn!(
                    url,
                    %error,
                    "cannot read this engine node's monitoring port (is the node down?): its version and fsync setting are not checked now"
                ),
            }
        }
        let mut ensured = Ensured::default();
        let names = &self.names;

        let subjects = names.stream_subjects();
        let log = Want {
            what: &format!("stream {}", names.stream),
            subjects: &subjects,
            dedup: true,
        };
        let log_config = stream::Config {
            name: names.stream.clone(),
            description: Some("Mapline: plan updates and commands, one order per subject".into()),
            subjects: subjects.clone(),
            storage: stream::StorageType::File,
            num_replicas: check::REPLICAS,
            retention: stream::RetentionPolicy::Limits,
            max_age: Duration::ZERO,
            duplicate_window: Names::DEDUP_WINDOW,
            deny_delete: true,
            allow_direct: true,
            ..Default::default()
        };
        self.ensure_stream_named(
            &names.stream,
            &log,
            || async {
                self.js
                    .create_stream(log_config.clone())
                    .await
                    .map(drop)
                    .map_err(EngineError::from)
            },
            &mut ensured,
        )
        .await?;

        let kv_stream = format!("KV_{}", names.kv_bucket);
        let kv = Want {
            what: &format!("KV bucket {}", names.kv_bucket),
            subjects: &[],
            dedup: false,
        };
        self.ensure_stream_named(
            &kv_stream,
            &kv,
            || async {
                self.js
                    .create_key_value(jetstream::kv::Config {
                        bucket: names.kv_bucket.clone(),
                        description: "Mapline: the cluster's base, claims (demo seeding, webhook deliveries), history heads".into(),
                        history: 1,
                        storage: stream::StorageType::File,
                        num_replicas: check::REPLICAS,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
                    .map_err(EngineError::from)
            },
            &mut ensured,
        )
        .await?;

        let obj_stream = format!("OBJ_{}", names.object_bucket);
        let obj = Want {
            what: &format!("object store {}", names.object_bucket),
            subjects: &[],
            dedup: false,
        };
        self.ensure_stream_named(
            &obj_stream,
            &obj,
            || async {
                self.js
                    .create_object_store(jetstream::object_store::Config {
                        bucket: names.object_bucket.clone(),
                        description: Some("Mapline: snapshots".into()),
                        storage: stream::StorageType::File,
                        num_replicas: check::REPLICAS,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
                    .map_err(EngineError::from)
            },
            &mut ensured,
        )
        .await?;
        Ok(ensured)
    }

    /// Gets the stream `name`; creates it when missing (another node may win the race: then
    /// the one it made is checked like any other); checks it.
    async fn ensure_stream_named<F, Fut>(
        &self,
        name: &str,
        want: &Want<'_>,
        create: F,
        ensured: &mut Ensured,
    ) -> Result<(), EnsureError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), EngineError>>,
    {
        let config = match self.stream_config(name).await? {
            Some(config) => config,
            None => {
                // Another node may have made it meanwhile: then creating fails, and what it
                // made is read and checked below.
                let created = create().await;
                match &created {
                    Ok(()) => {
                        tracing::info!(what = want.what, replicas = check::REPLICAS, "created");
                        ensured.created.push(want.what.to_owned());
                    }
                    Err(e) => {
                        tracing::debug!(what = want.what, error = %e, "create failed; reading what is there");
                    }
                }
                match self.stream_config(name).await? {
                    Some(config) => config,
                    None => {
                        return Err(EnsureError::Engine {
                            action: "create",
                            what: want.what.to_owned(),
                            source: created.err().unwrap_or_else(|| {
                                "it is missing right after it was created".into()
                            }),
                        });
                    }
                }
            }
        };
        check::stream(&config, want)?;
        Ok(())
    }

    async fn stream_config(&self, name: &str) -> Result<Option<stream::Config>, EnsureError> {
        use async_nats::jetstream::ErrorCode;
        use async_nats::jetstream::context::GetStreamErrorKind;
        match self.js.get_stream(name).await {
            Ok(mut s) => {
                let info = s.info().await.map_err(|e| EnsureError::Engine {
                    action: "read",
                    what: name.to_owned(),
                    source: e.into(),
                })?;
                Ok(Some(info.config.clone()))
            }
            Err(e) => match e.kind() {
                GetStreamErrorKind::JetStream(err)
                    if err.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(EnsureError::Engine {
                    action: "read",
                    what: name.to_owned(),
                    source: e.into(),
                }),
            },
        }
    }

    /// The log stream's last sequence (0 while it holds nothing): where a reader that must
    /// see "everything committed until now" (an operator's backup of the cluster) stops.
    pub async fn log_last_sequence(&self) -> Result<u64, EnsureError> {
        Ok(self.log_state().await?.last_seq)
    }

    /// The server name of the log stream's Raft leader, if it has one now.
    pub async fn log_leader(&self) -> Result<Option<String>, EnsureError> {
        Ok(self.log_state().await?.leader)
    }

    /// The log stream's last sequence and its Raft leader, as the stream's leader answers
    /// now: an answer at all means the stream has a leader, so writes can commit.
    pub async fn log_state(&self) -> Result<LogState, EnsureError> {
        let fail = |e: EngineError| EnsureError::Engine {
            action: "read",
            what: self.names.stream.clone(),
            source: e,
        };
        let mut s = self
            .js
            .get_stream(&self.names.stream)
            .await
            .map_err(|e| fail(e.into()))?;
        let info = s.info().await.map_err(|e| fail(e.into()))?;
        Ok(LogState {
            last_seq: info.state.last_sequence,
            leader: info.cluster.as_ref().and_then(|c| c.leader.clone()),
        })
    }

    /// Publishes to the log and returns once the cluster acknowledged it. A timeout, a lost
    /// connection or a leaderless moment is retried with the same `Nats-Msg-Id` until
    /// [`ClusterConfig::publish_deadline`], so a retried message is never stored twice.
    pub async fn publish(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
        msg_id: &str,
        expect: Expect,
    ) -> Result<Published, PublishError> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut message = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .headers(headers.clone())
                .message_id(msg_id);
            if let Expect::LastSubjectSeq(seq) = expect {
                message = message.expected_last_subject_sequence(seq);
            }
            let result = match self.js.send_publish(subject.to_owned(), message).await {
                // An ack that does not come within the shorter publish timeout is retried (the
                // same msg id: stored once): after a leader's loss the new leader answers a
                // retry, while the first request waits for a dead one.
                Ok(ack) => match tokio::time::timeout(self.config.publish_ack_timeout, ack).await {
                    Ok(acked) => acked,
                    Err(_) => Err(jetstream::context::PublishError::new(
                        PublishErrorKind::TimedOut,
                    )),
                },
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(ack) => {
                    if attempt > 1 {
                        tracing::info!(
                            subject,
                            msg_id,
                            attempt,
                            seq = ack.sequence,
                            duplicate = ack.duplicate,
                            "publish acknowledged after retrying"
                        );
                    }
                    return Ok(Published {
                        seq: ack.sequence,
                        duplicate: ack.duplicate,
                    });
                }
                Err(e) => e,
            };
            let subject_owned = || subject.to_owned();
            let retry = match error.kind() {
                PublishErrorKind::WrongLastSequence => {
                    let expected = match expect {
                        Expect::LastSubjectSeq(seq) => seq,
                        Expect::Any => 0,
                    };
                    return Err(PublishError::WrongLastSequence {
                        subject: subject_owned(),
                        expected,
                    });
                }
                PublishErrorKind::MaxPayloadExceeded => {
                    return Err(PublishError::TooLarge {
                        subject: subject_owned(),
                    });
                }
                // No responders: while a stream has no leader, or the stream is missing.
                PublishErrorKind::StreamNotFound
                | PublishErrorKind::TimedOut
                | PublishErrorKind::BrokenPipe => true,
                PublishErrorKind::Other => is_unavailable(&error),
                _ => false,
            };
            let waited = started.elapsed();
            let pause = backoff(attempt);
            if !retry {
                return Err(PublishError::Engine {
                    subject: subject_owned(),
                    source: error.into(),
                });
            }
            if waited + pause >= self.config.publish_deadline {
                if error.kind() == PublishErrorKind::StreamNotFound {
                    return Err(PublishError::NoStream {
                        subject: subject_owned(),
                    });
                }
                return Err(PublishError::Unacknowledged {
                    subject: subject_owned(),
                    attempts: attempt,
                    waited,
                    last: error.into(),
                });
            }
            tracing::warn!(subject, msg_id, attempt, error = %error, "publish not acknowledged; retrying with the same msg id in {pause:?}");
            tokio::time::sleep(pause).await;
        }
    }
}

/// A JetStream "503 temporarily unavailable" answer (no quorum yet): worth retrying.
/// An engine's answer that passes: no leader now (503), or a stream the answering engine
/// node does not know yet (404: right after `ensure` created it, before every node of the
/// engine has it — seen as "no stream found for given subject" on a new cluster's first
/// write).
fn is_unavailable(error: &async_nats::jetstream::context::PublishError) -> bool {
    use std::error::Error as _;
    error
        .source()
        .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|e| e.code() == 503 || e.code() == 404)
}
