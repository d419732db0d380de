//! What a node needs to reach the engine, and the names of what it keeps there.

use std::path::PathBuf;
use std::time::Duration;

/// Where the engine is and how to talk to it. Built by the binary from its flags.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// `nats://host:port` of the engine's nodes (any one is enough to connect; give all).
    pub urls: Vec<String>,
    /// A NATS credentials file (`--nats-creds`).
    pub creds: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for TLS to NATS (`--nats-tls-ca`); TLS is then
    /// required.
    pub tls_ca: Option<PathBuf>,
    /// Prefix of every subject, stream and bucket name: `[A-Za-z0-9_-]+`, `mapline` by default.
    pub prefix: String,
    /// `http://host:port` of each engine node's monitoring port. When given, `ensure` reads
    /// `/varz` of every node and refuses one that does not fsync before acknowledging
    /// (`sync_interval: always`) or is older than 2.12. A NATS client cannot see that setting
    /// through the client protocol, so without these URLs it is not checked (and `ensure` logs
    /// a warning saying so).
    pub monitor_urls: Vec<String>,
    /// How long `Cluster::connect` waits for the engine to be ready; `None` waits forever.
    pub ready_timeout: Option<Duration>,
    /// One JetStream request or publish acknowledgement, before it counts as timed out.
    pub request_timeout: Duration,
    /// How long one try of a publish waits for its acknowledgement before it is sent again
    /// (same `Nats-Msg-Id`, so stored once). Shorter than `request_timeout`: a try sent to a
    /// leader that just died never gets an answer, and the retry reaches the new one.
    pub publish_ack_timeout: Duration,
    /// How long a publish is retried (same `Nats-Msg-Id`) before it fails. Must stay well
    /// inside the stream's de-duplication window, [`Names::DEDUP_WINDOW`].
    pub publish_deadline: Duration,
    /// The idle heartbeat a reader asks its consumer for. A reader whose consumer lived on a
    /// node that died notices after two missed heartbeats and recreates it elsewhere, so this
    /// bounds its stall (async-nats's default, 15 s, stalled a reader ≈35 s in the tests);
    /// each idle reader sends one pull request per two heartbeats.
    pub read_heartbeat: Duration,
}

impl ClusterConfig {
    /// The defaults for the given engine URLs.
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            creds: None,
            tls_ca: None,
            prefix: "mapline".to_owned(),
            monitor_urls: Vec::new(),
            ready_timeout: None,
            request_timeout: Duration::from_secs(5),
            publish_ack_timeout: Duration::from_secs(1),
            publish_deadline: Duration::from_secs(60),
            read_heartbeat: Duration::from_secs(1),
        }
    }

    /// The names derived from the prefix.
    pub fn names(&self) -> Names {
        Names::new(&self.prefix)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.urls.is_empty() {
            return Err("no NATS URL given".to_owned());
        }
        let prefix_ok = !self.prefix.is_empty()
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !prefix_ok {
            return Err(format!(
                "the prefix {:?} must be letters, digits, '_' or '-'",
                self.prefix
            ));
        }
        if self.publish_deadline >= Names::DEDUP_WINDOW {
            return Err(format!(
                "the publish deadline {:?} must be shorter than the de-duplication window {:?}",
                self.publish_deadline,
                Names::DEDUP_WINDOW
            ));
        }
        if self.read_heartbeat < Duration::from_millis(100) {
            return Err("the read heartbeat must be at least 100 ms".to_owned());
        }
        Ok(())
    }
}

/// Names of the subjects, the stream and the buckets, for one prefix `p`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The log stream `p-log`: every update and command, in one order per subject.
    pub stream: String,
    /// Subjects of plan updates: `p.upd.<plan>` and `p.upd.<plan>.internal`.
    pub updates: String,
    /// Subjects of commands that must be ordered with the updates: `p.cmd.>`.
    pub commands: String,
    /// The KV bucket `p-kv` (stream `KV_p-kv`).
    pub kv_bucket: String,
    /// The object store `p-obj` (stream `OBJ_p-obj`).
    pub object_bucket: String,
    /// Plain NATS subjects, never stored: `p.presence.<plan>`.
    pub presence: String,
}

impl Names {
    /// How long the log remembers a `Nats-Msg-Id` to drop a re-sent publish.
    pub const DEDUP_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);

    pub fn new(prefix: &str) -> Self {
        Self {
            stream: format!("{prefix}-log"),
            updates: format!("{prefix}.upd.>"),
            commands: format!("{prefix}.cmd.>"),
            kv_bucket: format!("{prefix}-kv"),
            object_bucket: format!("{prefix}-obj"),
            presence: format!("{prefix}.presence.>"),
        }
    }

    /// The subject of one plan's updates (`internal`: the seller's internal document).
    pub fn update_subject(&self, plan: &str, internal: bool) -> String {
        document_subject(&self.updates, plan, internal)
    }

    /// The plain (never stored) subject of a document's presence: `p.presence.<plan>` or
    /// `p.presence.<plan>.internal`.
    pub fn presence_subject(&self, plan: &str, internal: bool) -> String {
        document_subject(&self.presence, plan, internal)
    }

    /// The subject of a command that is not a plan's update: `p.cmd.<kind>` (`kind`: a
    /// token such as `create_plan`).
    pub fn command_subject(&self, kind: &str) -> String {
        format!("{}{kind}", self.commands.trim_end_matches('>'))
    }

    /// The subjects the log stream must capture.
    pub fn stream_subjects(&self) -> Vec<String> {
        vec![self.updates.clone(), self.commands.clone()]
    }
}

/// A document's subject under a wildcard `p.x.>`: `p.x.<plan>`, or `p.x.<plan>.internal` for
/// the plan's internal document.
fn document_subject(wildcard: &str, plan: &str, internal: bool) -> String {
    let base = wildcard.trim_end_matches('>');
    if internal {
        format!("{base}{plan}.internal")
    } else {
        format!("{base}{plan}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let n = Names::new("mapline");
        assert_eq!(n.stream, "mapline-log");
        assert_eq!(n.update_subject("p1", false), "mapline.upd.p1");
        assert_eq!(n.update_subject("p1", true), "mapline.upd.p1.internal");
        assert_eq!(
            n.command_subject("revoke_share"),
            "mapline.cmd.revoke_share"
        );
        assert_eq!(n.stream_subjects(), ["mapline.upd.>", "mapline.cmd.>"]);
        assert_eq!(n.kv_bucket, "mapline-kv");
        assert_eq!(n.object_bucket, "mapline-obj");
    }

    #[test]
    fn a_prefix_that_is_not_a_token_is_refused() {
        let check = |prefix: &str, ok: bool| {
            let mut c = ClusterConfig::new(vec!["nats://127.0.0.1:4222".into()]);
            c.prefix = prefix.into();
            assert_eq!(c.validate().is_ok(), ok, "{prefix:?}");
        };
        check("mapline", true);
        check("m_2-x", true);
        check("", false);
        check("a.b", false);
        check("a>", false);
        check("a b", false);
    }
}
