//! Operations against a cluster (issue 16, docs/cluster.md *Operations*): a cluster's *base*
//! (a verified store file in the object store, from which a replica file starts instead of
//! from log position 1), `mapline migrate` (a single-node file becomes a fresh cluster's
//! base), and `backup` / `verify` / `rebuild-history` with `--cluster`, which materialize the
//! cluster into a local file (base, then the log up to its last sequence at the start) and run
//! the single-node operation on it. Also the guard that keeps admin writes off replica files.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use mapline_cluster::{Cluster, ObjectError};
use mapline_replica::{Replica, ReplicaConfig};
use mapline_store::Store;
use serde::{Deserialize, Serialize};

/// The object (object store) and the KV key naming a cluster's base.
pub const BASE: &str = "base";

pub use crate::cluster_serve::ClusterArgs;

#[derive(Args)]
pub struct MigrateArgs {
    /// The single-node data file to move into the cluster (the server on it stopped).
    #[arg(long, value_name = "FILE")]
    pub from_data: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The KV value `base`: what the object `base` is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BaseInfo {
    /// The last log position the base covers: a replica started from it reads on from the
    /// next one.
    pub position: u64,
    /// Of the object's bytes, hex.
    pub sha256: String,
    pub bytes: u64,
    pub plans: usize,
    /// RFC 3339.
    pub created_at: String,
}

/// One-line log output for the operations (the engine layer's retries included).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAPLINE_LOG")
                .unwrap_or_else(|_| "warn,mapline=info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Connects (waiting at most `--cluster-timeout`) and ensures/checks the streams and buckets.
async fn connect(args: &ClusterArgs) -> anyhow::Result<Cluster> {
    let urls = args.cluster.join(",");
    let cluster = Cluster::connect(args.operation_config()?)
        .await
        .with_context(|| format!("cannot reach the cluster at {urls}"))?;
    cluster
        .ensure()
        .await
        .with_context(|| format!("the cluster at {urls} is not usable"))?;
    Ok(cluster)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a blocking task panicked")?
}

/// The sha256 (hex) and size of a file, read as a stream.
fn sha256_of(path: &Path) -> anyhow::Result<(String, u64)> {
    use sha2::{Digest as _, Sha256};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
    let hex = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, total))
}

/// The cluster's base, if it has one.
pub async fn base_info(cluster: &Cluster) -> anyhow::Result<Option<BaseInfo>> {
    let kv = cluster
        .kv()
        .await
        .context("opening the cluster's KV bucket")?;
    let Some(entry) = kv.get(BASE).await.context("reading the base's record")? else {
        return Ok(None);
    };
    let info = serde_json::from_slice(&entry.value)
        .context("the cluster's KV key `base` is not a base record")?;
    Ok(Some(info))
}

/// Whether `data` is a file a cluster node can start from the base: missing, or holding no
/// plan and no applied log position.
fn needs_base(data: &Path) -> anyhow::Result<bool> {
    if !data.exists() {
        return Ok(true);
    }
    let store = Store::open(data)
        .with_context(|| format!("cannot open {} (is a server using it?)", data.display()))?;
    Ok(store
        .applied_position()
        .context("reading the applied position")?
        == 0
        && store.is_empty().context("reading plans")?)
}

/// When `data` does not exist (or holds nothing and has applied nothing) and the cluster has
/// a base: downloads the base, checks its sha256 and size against the record, verifies it like
/// `backup` verifies a copy, checks it covers the log position the record says, and puts it at
/// `data` (a temp file beside it, renamed). Otherwise changes nothing. A base that fails a
/// check is refused and nothing is written.
pub async fn bootstrap_if_empty(cluster: &Cluster, data: &Path) -> anyhow::Result<()> {
    let path = data.to_owned();
    if !blocking(move || needs_base(&path)).await? {
        tracing::debug!(data = %data.display(), "the data file holds data; not starting it from the base");
        return Ok(());
    }
    let Some(info) = base_info(cluster).await? else {
        tracing::info!(data = %data.display(), "the cluster has no base; the replica starts at log position 1");
        return Ok(());
    };
    if let Some(folder) = data.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    let temp = partial_path(data, "base-download");
    let result = download_base(cluster, &info, &temp).await;
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(error.context(format!(
            "the cluster's base was refused; nothing was written to {}",
            data.display()
        )));
    }
    std::fs::rename(&temp, data)
        .with_context(|| format!("moving the base into {}", data.display()))?;
    tracing::info!(
        data = %data.display(),
        position = info.position,
        plans = info.plans,
        bytes = info.bytes,
        created_at = %info.created_at,
        "started the data file from the cluster's base"
    );
    Ok(())
}

/// `<data>.<what>-<pid>`: a temp file beside `data` (same file system, so a rename is atomic).
fn partial_path(data: &Path, what: &str) -> PathBuf {
    let mut name = data.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{what}-{}", std::process::id()));
    data.with_file_name(name)
}

async fn download_base(cluster: &Cluster, info: &BaseInfo, temp: &Path) -> anyhow::Result<()> {
    let objects = cluster
        .objects()
        .await
        .context("opening the object store")?;
    let mut file = tokio::fs::File::create(temp)
        .await
        .with_context(|| format!("creating {}", temp.display()))?;
    match objects.get_into(BASE, &mut file).await {
        Ok(_) => {}
        Err(ObjectError::NotFound { .. }) => {
            bail!("the KV key `base` names a base, but the object store has no object `base`")
        }
        Err(e) => return Err(e).context("downloading the base"),
    }
    file.sync_all().await.context("syncing the base to disk")?;
    drop(file);
    let temp = temp.to_owned();
    let info = info.clone();
    blocking(move || {
        let (sha256, bytes) = sha256_of(&temp)?;
        if sha256 != info.sha256 || bytes != info.bytes {
            bail!(
                "the base's sha256 is {sha256} ({bytes} bytes); its record says {} ({} bytes)",
                info.sha256,
                info.bytes
            );
        }
        let store = Store::open(&temp).context("the base is not a Mapline data file")?;
        let position = store
            .applied_position()
            .context("reading the base's position")?;
        if position != info.position {
            bail!(
                "the base covers log position {position}; its record says {}",
                info.position
            );
        }
        let problems = crate::verify_store(&store, false)?;
        if problems > 0 {
            bail!("the base does not verify ({problems} problems)");
        }
        Ok(())
    })
    .await
}

/// `mapline migrate`: `args.from_data` becomes the base (position 0) of a fresh cluster.
pub fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    init_logging();
    if !args.cluster.given() {
        bail!("say which cluster to migrate into: --cluster nats://h1:4222,...");
    }
    let file = &args.from_data;
    if !file.is_file() {
        bail!("no data file at {}", file.display());
    }
    // The consistent copy that is uploaded, beside FILE (it may be large; /tmp may be small).
    let folder = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scratch = tempfile::Builder::new()
        .prefix(".mapline-migrate-")
        .tempdir_in(folder)
        .with_context(|| format!("creating a temp folder in {}", folder.display()))?;
    let copy = scratch.path().join("base.redb");
    let (plans, updates) = prepare_base(file, &copy)?;
    let (sha256, bytes) = sha256_of(&copy)?;
    runtime()?.block_on(async {
        let cluster = connect(&args.cluster).await?;
        refuse_used_cluster(&cluster).await?;
        let objects = cluster
            .objects()
            .await
            .context("opening the object store")?;
        let mut reader = tokio::fs::File::open(&copy)
            .await
            .with_context(|| format!("reading {}", copy.display()))?;
        objects
            .put_reader(BASE, &mut reader)
            .await
            .context("uploading the base")?;
        let info = BaseInfo {
            position: 0,
            sha256: sha256.clone(),
            bytes,
            plans,
            created_at: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let value = serde_json::to_vec(&info)?;
        let kv = cluster.kv().await.context("opening the KV bucket")?;
        kv.create(BASE, value.into()).await.context(
            "recording the base (another migrate may have run at the same time: check with `mapline verify --cluster`)",
        )?;
        tracing::info!(plans, bytes, sha256 = %sha256, "base uploaded");
        anyhow::Ok(())
    })?;
    println!(
        "migrated {} into the cluster (prefix {}): {plans} plans, {updates} updates, {bytes} bytes, as its base at log position 0 (sha256 {sha256})",
        file.display(),
        args.cluster.cluster_prefix
    );
    println!("nodes started with an empty data file now start from it");
    Ok(())
}

/// Copies `file` consistently into `copy`, verifies the copy, and marks it as covering log
/// position 0. Returns (plans, updates).
fn prepare_base(file: &Path, copy: &Path) -> anyhow::Result<(usize, u64)> {
    let store = Store::open(file).with_context(|| {
        format!(
            "{} does not open as a Mapline data file (or a server is using it)",
            file.display()
        )
    })?;
    let stats = store
        .backup_to(copy)
        .with_context(|| format!("copying {}", file.display()))?;
    drop(store);
    let copied = Store::open(copy).context("the copy does not open")?;
    let problems = crate::verify_store(&copied, false)?;
    if problems > 0 {
        bail!(
            "{} does not verify ({problems} problems; see `mapline verify --data {}`); nothing was uploaded",
            file.display(),
            file.display()
        );
    }
    // A copy of a cluster (`backup --cluster`) records that cluster's log position; in the
    // fresh cluster it covers nothing of the log yet.
    copied
        .set_base_position(0)
        .context("marking the copy as a base")?;
    let plans = copied.plans().context("listing the plans")?.len();
    Ok((plans, stats.updates))
}

/// A cluster whose log holds anything, or that has a base, is in use: migrating into it would
/// mix two histories.
async fn refuse_used_cluster(cluster: &Cluster) -> anyhow::Result<()> {
    let last = cluster
        .log_last_sequence()
        .await
        .context("reading the log")?;
    if last > 0 {
        bail!(
            "the cluster is already in use: its log {} holds entries up to position {last}; migrate only into a fresh cluster (or use another --cluster-prefix)",
            cluster.names().stream
        );
    }
    if let Some(info) = base_info(cluster).await? {
        bail!(
            "the cluster is already in use: it has a base ({} plans, created {}); migrate only into a fresh cluster (or use another --cluster-prefix)",
            info.plans,
            info.created_at
        );
    }
    Ok(())
}

/// Makes `data` hold the cluster's state as of now: the base if `data` is empty, then the log
/// through its last sequence at the start. Returns that position.
async fn materialize(cluster: &Cluster, data: &Path) -> anyhow::Result<u64> {
    let last = cluster
        .log_last_sequence()
        .await
        .context("reading the log's last position")?;
    bootstrap_if_empty(cluster, data).await?;
    let path = data.to_owned();
    let store = Arc::new(
        blocking(move || Store::open(&path).with_context(|| format!("opening {}", path.display())))
            .await?,
    );
    let node = format!("ops-{}", uuid::Uuid::now_v7());
    let replica = Replica::start(cluster.clone(), store, ReplicaConfig::new(node))
        .await
        .context("starting to apply the log")?;
    let caught_up = replica.caught_up_to(last).await;
    let stopped = replica.stop().await;
    caught_up.context("applying the log")?;
    stopped.context("applying the log")?;
    let stats = replica.stats();
    tracing::info!(
        position = last,
        applied = stats.applied,
        refused = stats.refused,
        unreadable = stats.unreadable,
        "applied the cluster's log"
    );
    Ok(last)
}

/// `mapline backup --cluster URLS FILE`.
pub fn backup(args: &ClusterArgs, out: &Path) -> anyhow::Result<()> {
    init_logging();
    if out.exists() {
        bail!(
            "{} already exists; a backup never overwrites a file",
            out.display()
        );
    }
    let work = partial_path(out, "materializing");
    let result = runtime()?.block_on(async {
        let cluster = connect(args).await?;
        materialize(&cluster, &work).await
    });
    let written = result.and_then(|position| {
        let store = Store::open(&work).context("opening the materialized file")?;
        store
            .backup_to(out)
            .with_context(|| format!("writing {}", out.display()))?;
        Ok(position)
    });
    let _ = std::fs::remove_file(&work);
    let position = written?;
    let copy =
        Store::open(out).with_context(|| format!("the backup {} does not open", out.display()))?;
    let problems = crate::verify_store(&copy, false)?;
    if problems > 0 {
        bail!(
            "the backup {} does not verify ({problems} problems)",
            out.display()
        );
    }
    println!(
        "backup of the cluster through log position {position} written to {}",
        out.display()
    );
    Ok(())
}

/// `mapline verify --cluster URLS`: materializes into a temp folder and verifies that.
pub fn verify(args: &ClusterArgs, json: bool) -> anyhow::Result<std::process::ExitCode> {
    init_logging();
    let scratch = tempfile::Builder::new()
        .prefix("mapline-verify-")
        .tempdir()
        .context("creating a temp folder")?;
    let data = scratch.path().join("cluster.redb");
    let position = runtime()?.block_on(async {
        let cluster = connect(args).await?;
        materialize(&cluster, &data).await
    })?;
    let store = Store::open(&data).context("opening the materialized file")?;
    eprintln!("the cluster through log position {position}:");
    let problems = crate::verify_store(&store, json)?;
    Ok(if problems == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

/// `mapline rebuild-history --cluster URLS --data NEWFILE`: materializes into NEWFILE (which
/// must not exist), then rebuilds (or checks) history there.
pub fn materialize_new(args: &ClusterArgs, data: &Path) -> anyhow::Result<()> {
    init_logging();
    if data.exists() {
        bail!(
            "{} already exists; with --cluster, --data names a new file to materialize the cluster into",
            data.display()
        );
    }
    let position = runtime()?.block_on(async {
        let cluster = connect(args).await?;
        materialize(&cluster, data).await
    });
    match position {
        Ok(position) => {
            eprintln!(
                "materialized the cluster through log position {position} into {}",
                data.display()
            );
            Ok(())
        }
        Err(error) => {
            let _ = std::fs::remove_file(data);
            Err(error)
        }
    }
}

/// Refuses an admin command that would write to `data` when it is a cluster replica: a local
/// write would make it unlike every other node, and the log would never carry it.
pub fn refuse_replica_writes(data: &Path) -> anyhow::Result<()> {
    if !data.exists() {
        return Ok(());
    }
    let store = crate::open_existing(data)?;
    let position = store
        .applied_position()
        .context("reading the applied log position")?;
    if position > 0 {
        bail!(
            "{}: this file is a cluster replica (it applied the cluster's log through position {position}); use --server against a node",
            data.display()
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "../../mapline-cluster/tests/common/mod.rs"]
mod harness;

#[cfg(test)]
mod tests {
    use super::*;
    use harness::{NatsCluster, ONE_AT_A_TIME};

    fn single_node_file(path: &Path) -> Vec<mapline_store::PlanId> {
        let store = Store::open(path).expect("a store");
        let mut ids = Vec::new();
        for i in 0..2 {
            let (id, _) = mapline_server::plans::create_demo_plan(&store, 1_700_000_000_000 + i)
                .expect("a demo plan");
            ids.push(id);
        }
        ids.sort();
        ids
    }

    fn plan_ids(path: &Path) -> Vec<mapline_store::PlanId> {
        let store = Store::open(path).expect("opens");
        let mut ids: Vec<_> = store
            .plans()
            .expect("plans")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids
    }

    async fn upload(cluster: &Cluster, file: &Path, dir: &Path) -> BaseInfo {
        let copy = dir.join("copy.redb");
        let (plans, _) = prepare_base(file, &copy).expect("a base");
        let (sha256, bytes) = sha256_of(&copy).expect("hashed");
        let mut reader = tokio::fs::File::open(&copy).await.expect("copy");
        let objects = cluster.objects().await.expect("objects");
        objects.put_reader(BASE, &mut reader).await.expect("put");
        let info = BaseInfo {
            position: 0,
            sha256,
            bytes,
            plans,
            created_at: "2026-11-27T00:00:00Z".into(),
        };
        let kv = cluster.kv().await.expect("kv");
        kv.create(BASE, serde_json::to_vec(&info).expect("json").into())
            .await
            .expect("recorded");
        info
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bootstrap_if_empty_puts_the_base_in_place_and_refuses_a_tampered_one() {
        let _one = ONE_AT_A_TIME.lock().await;
        let nats = NatsCluster::start().await;
        let cluster = nats.connect(0).await;
        cluster.ensure().await.expect("ensured");
        let dir = tempfile::tempdir().expect("temp dir");

        // No base yet: nothing is written.
        let none = dir.path().join("none.redb");
        bootstrap_if_empty(&cluster, &none).await.expect("no base");
        assert!(!none.exists(), "no base, no file");

        let single = dir.path().join("single.redb");
        let ids = single_node_file(&single);
        let info = upload(&cluster, &single, dir.path()).await;
        assert_eq!(info.plans, 2);

        // A missing file starts from the base: the same plans, at log position 0.
        let node = dir.path().join("node").join("replica.redb");
        bootstrap_if_empty(&cluster, &node)
            .await
            .expect("bootstrapped");
        assert_eq!(plan_ids(&node), ids);
        assert_eq!(
            Store::open(&node)
                .expect("opens")
                .applied_position()
                .expect("position"),
            0
        );
        // No temp file is left beside it.
        let left: Vec<_> = std::fs::read_dir(node.parent().expect("folder"))
            .expect("listing")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("replica.redb")]);

        // A file that holds plans is left alone (one plan, not the base's two).
        let own = dir.path().join("own.redb");
        let own_ids = {
            let store = Store::open(&own).expect("a store");
            let (id, _) = mapline_server::plans::create_demo_plan(&store, 1).expect("a plan");
            vec![id]
        };
        bootstrap_if_empty(&cluster, &own)
            .await
            .expect("left alone");
        assert_eq!(plan_ids(&own), own_ids);

        // An empty file (created, nothing in it) starts from the base too.
        let empty = dir.path().join("empty.redb");
        drop(Store::open(&empty).expect("created"));
        bootstrap_if_empty(&cluster, &empty)
            .await
            .expect("bootstrapped");
        assert_eq!(plan_ids(&empty), ids);

        // A base whose bytes no longer match the record (another good data file): refused,
        // nothing written.
        let objects = cluster.objects().await.expect("objects");
        let other = std::fs::read(&own).expect("read");
        objects.put(BASE, &other).await.expect("replaced");
        let refused = dir.path().join("refused.redb");
        let error = bootstrap_if_empty(&cluster, &refused)
            .await
            .expect_err("a tampered base is refused");
        let text = format!("{error:#}");
        assert!(text.contains("sha256"), "{text}");
        assert!(text.contains("nothing was written"), "{text}");
        assert!(!refused.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("listing")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("refused"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
