//! The rules an engine must keep for Mapline, as pure functions over what the engine reports.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};

use crate::error::CheckError;

/// The oldest nats-server that fsyncs before acknowledging (`sync_interval: always`) and whose
/// per-subject compare-and-set holds under concurrency: (major, minor).
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 12);
pub(crate) const MIN_SERVER_VERSION_TEXT: &str = "2.12";

/// Replicas of every stream and bucket: a Raft quorum of 2 survives the loss of any one node.
pub const REPLICAS: usize = 3;

/// Refuses a server older than [`MIN_SERVER_VERSION`]. `version` as the server reports it
/// (`2.15.1`, `2.12.0-RC.3`); one that cannot be read is refused too.
pub(crate) fn server_version(server: &str, version: &str) -> Result<(), CheckError> {
    let mut parts = version
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u64>);
    let ok = match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= MIN_SERVER_VERSION,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(CheckError::ServerTooOld {
            server: server.to_owned(),
            version: version.to_owned(),
        })
    }
}

/// What a stream must be beyond R3 on file storage.
pub(crate) struct Want<'a> {
    pub what: &'a str,
    /// Subjects it must capture (only the log's are checked).
    pub subjects: &'a [String],
    /// The log relies on `Nats-Msg-Id`, so it needs a window.
    pub dedup: bool,
}

pub(crate) fn stream(config: &Config, want: &Want<'_>) -> Result<(), CheckError> {
    let what = want.what.to_owned();
    if config.num_replicas < REPLICAS {
        return Err(CheckError::TooFewReplicas {
            what,
            replicas: config.num_replicas,
        });
    }
    if config.storage == StorageType::Memory {
        return Err(CheckError::MemoryStorage { what });
    }
    if config.retention != RetentionPolicy::Limits {
        return Err(CheckError::Retention {
            what,
            retention: format!("{:?}", config.retention),
        });
    }
    if config.max_age != Duration::ZERO {
        return Err(CheckError::MaxAge {
            what,
            max_age: config.max_age,
        });
    }
    if want.dedup && config.duplicate_window == Duration::ZERO {
        return Err(CheckError::NoDedupWindow { what });
    }
    let missing: Vec<String> = want
        .subjects
        .iter()
        .filter(|s| !config.subjects.contains(s))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(CheckError::MissingSubjects { what, missing });
    }
    Ok(())
}

/// Checks one node's `/varz`: its version, JetStream on, and fsync before acknowledging
/// (`jetstream.config.sync_always`, which `sync_interval: always` sets).
pub(crate) fn varz(url: &str, varz: &serde_json::Value) -> Result<(), CheckError> {
    let server = varz
        .get("server_name")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_owned();
    let version = varz
        .get("version")
        .and_then(|v| v.as_str())
        .ok_or_else(|| CheckError::Monitor {
            url: url.to_owned(),
            reason: "/varz has no version".to_owned(),
        })?;
    server_version(&server, version)?;
    let Some(config) = varz.get("jetstream").and_then(|j| j.get("config")) else {
        return Err(CheckError::NoJetStream {
            server,
            url: url.to_owned(),
        });
    };
    if config.get("sync_always").and_then(|v| v.as_bool()) != Some(true) {
        return Err(CheckError::NotSyncAlways {
            server,
            url: url.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions() {
        let check = |v: &str, ok: bool| assert_eq!(server_version("n1", v).is_ok(), ok, "{v}");
        check("2.15.1", true);
        check("2.12.0", true);
        check("2.12.0-RC.3", true);
        check("v2.13.2", true);
        check("3.0.0", true);
        check("2.11.9", false);
        check("2.9.10", false);
        check("", false);
        check("two", false);
    }

    fn log_config() -> Config {
        Config {
            name: "mapline-log".into(),
            subjects: vec!["mapline.upd.>".into(), "mapline.cmd.>".into()],
            num_replicas: 3,
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        }
    }

    fn check_stream(change: impl FnOnce(&mut Config)) -> Result<(), CheckError> {
        let mut config = log_config();
        change(&mut config);
        let subjects = ["mapline.upd.>".to_owned(), "mapline.cmd.>".to_owned()];
        stream(
            &config,
            &Want {
                what: "stream mapline-log",
                subjects: &subjects,
                dedup: true,
            },
        )
    }

    #[test]
    fn streams() {
        assert!(check_stream(|_| {}).is_ok());
        assert!(check_stream(|c| c.num_replicas = 5).is_ok());
        assert!(matches!(
            check_stream(|c| c.num_replicas = 1),
            Err(CheckError::TooFewReplicas { replicas: 1, .. })
        ));
        assert!(matches!(
            check_stream(|c| c.storage = StorageType::Memory),
            Err(CheckError::MemoryStorage { .. })
        ));
        assert!(matches!(
            check_stream(|c| c.retention = RetentionPolicy::WorkQueue),
            Err(CheckError::Retention { .. })
        ));
        assert!(matches!(
            check_stream(|c| c.max_age = Duration::from_secs(3600)),
            Err(CheckError::MaxAge { .. })
        ));
        assert!(matches!(
            check_stream(|c| c.duplicate_window = Duration::ZERO),
            Err(CheckError::NoDedupWindow { .. })
        ));
        assert!(matches!(
            check_stream(|c| c.subjects.truncate(1)),
            Err(CheckError::MissingSubjects { missing, .. }) if missing == ["mapline.cmd.>"]
        ));
    }

    #[test]
    fn varz_of_a_node() {
        let check = |json: &str| {
            varz(
                "http://127.0.0.1:8222",
                &serde_json::from_str(json).unwrap(),
            )
        };
        assert!(check(r#"{"server_name":"n1","version":"2.15.1","jetstream":{"config":{"sync_interval":120000000000,"sync_always":true}}}"#).is_ok());
        assert!(matches!(
            check(
                r#"{"server_name":"n1","version":"2.15.1","jetstream":{"config":{"sync_interval":120000000000}}}"#
            ),
            Err(CheckError::NotSyncAlways { .. })
        ));
        assert!(matches!(
            check(r#"{"server_name":"n1","version":"2.15.1","jetstream":{}}"#),
            Err(CheckError::NoJetStream { .. })
        ));
        assert!(matches!(
            check(
                r#"{"server_name":"n1","version":"2.9.10","jetstream":{"config":{"sync_always":true}}}"#
            ),
            Err(CheckError::ServerTooOld { .. })
        ));
        assert!(matches!(check(r#"{}"#), Err(CheckError::Monitor { .. })));
    }
}
