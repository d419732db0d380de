use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::commands::{Command, Outcome};
use crate::error::{OpenError, Result, StoreError};
use crate::lineage::{self, LinkedShare, Revocation, SHARE_CHILDREN, SHARE_PARENTS};
use crate::records::{
    DerivedHistory, DocKind, DocRef, GENESIS, HistoryEntry, NewUpdate, PlanId, PlanRecord, Seq,
    ShareId, ShareRecord, ShareSeen, Snapshot, UpdateRecord, decode, digest_bytes, encode,
};

/// Page cache size unless configured: enough for the hot pages of many active plans.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Version of the on-disk layout (tables and keys) described in docs/storage.md.
pub const STORAGE_FORMAT: u32 = 4;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const PLANS: TableDefinition<u128, &[u8]> = TableDefinition::new("plans");
pub(crate) const PLANS_TABLE: TableDefinition<u128, &[u8]> = PLANS;
const SHARES: TableDefinition<u128, &[u8]> = TableDefinition::new("shares");
pub(crate) const SHARES_TABLE: TableDefinition<u128, &[u8]> = SHARES;
const UPDATES: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("updates");
const SNAPSHOTS: TableDefinition<u128, &[u8]> = TableDefinition::new("snapshots");
const HISTORY: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("history");
pub(crate) const HISTORY_TABLE: TableDefinition<(u128, u64), &[u8]> = HISTORY;
pub(crate) const DERIVED_TABLE: TableDefinition<u128, u64> = DERIVED;
/// Log positions whose history entry holds slips, so slip queries skip everything else.
const SLIP_INDEX: TableDefinition<(u128, u64), ()> = TableDefinition::new("slip_index");
/// Per plan, the last log position whose history has been derived.
const DERIVED: TableDefinition<u128, u64> = TableDefinition::new("derived_through");
/// The seller's internal documents: their logs and snapshots, shaped like `updates` and
/// `snapshots` (no history is derived from them).
const INTERNAL_UPDATES: TableDefinition<(u128, u64), &[u8]> =
    TableDefinition::new("internal_updates");
const INTERNAL_SNAPSHOTS: TableDefinition<u128, &[u8]> = TableDefinition::new("internal_snapshots");

/// The log table of a document kind.
fn log_table(kind: DocKind) -> TableDefinition<'static, (u128, u64), &'static [u8]> {
    match kind {
        DocKind::Plan => UPDATES,
        DocKind::Internal => INTERNAL_UPDATES,
    }
}

/// The snapshot table of a document kind.
fn snapshot_table(kind: DocKind) -> TableDefinition<'static, u128, &'static [u8]> {
    match kind {
        DocKind::Plan => SNAPSHOTS,
        DocKind::Internal => INTERNAL_SNAPSHOTS,
    }
}

/// Per share link, when it was first and last used to open its plan.
const SHARE_SEEN: TableDefinition<u128, &[u8]> = TableDefinition::new("share_seen");

const META_FORMAT: &str = "format_version";
const META_ADMIN_TOKEN: &str = "admin_token_sha256";
const META_CLEAN_SHUTDOWN: &str = "clean_shutdown";
/// A cluster's node: its id, kept so a restarted node knows what it claimed before.
const META_NODE_ID: &str = "node_id";

/// Keys of `meta` that belong to this file alone: not compared between replicas, not copied
/// into a backup (a copy is another file).
fn node_local_meta(key: &str) -> bool {
    key == META_CLEAN_SHUTDOWN || key == META_NODE_ID
}
/// The last command-log position applied (u64 LE; absent: none). Only a replica fed from the
/// command log writes it (see [`Store::execute_at`]).
const META_APPLIED_POSITION: &str = "applied_position";

/// What a room needs to rebuild a plan's document: the newest snapshot and the log after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentLoad {
    pub snapshot: Option<Snapshot>,
    /// Updates after the snapshot, in log order (whole records: updates past
    /// `derived_through` need their author to derive history).
    pub tail: Vec<(Seq, UpdateRecord)>,
    /// The last log position of the plan (0 for an empty log).
    pub last_seq: Seq,
    /// The last log position whose history is stored; updates after it still need deriving.
    /// The snapshot never covers more than this (a newer one is ignored), so the updates to
    /// derive are always in the tail.
    pub derived_through: Seq,
    /// SHA-256 of the last stored history entry ([`GENESIS`] if none): the `prev_sha256` of
    /// the next entry derived.
    pub chain_head: [u8; 32],
}

/// Everything `mapline verify` checks of one plan, read in one transaction. Records that do not
/// decode are `None`; every record comes with the SHA-256 of its stored bytes.
#[derive(Debug, Clone, Default)]
pub struct PlanAudit {
    pub log: Vec<(Seq, Option<UpdateRecord>, [u8; 32])>,
    pub history: Vec<(Seq, Option<HistoryEntry>, [u8; 32])>,
    pub slip_index: Vec<Seq>,
    /// `Some(None)`: a snapshot is stored but does not decode.
    pub snapshot: Option<Option<Snapshot>>,
    pub derived_through: Seq,
    /// The seller's internal document: its log and snapshot.
    pub internal_log: Vec<(Seq, Option<UpdateRecord>, [u8; 32])>,
    pub internal_snapshot: Option<Option<Snapshot>>,
}

/// What a backup copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupStats {
    pub plans: u64,
    pub updates: u64,
    pub history_entries: u64,
    pub bytes: u64,
}

/// A backup could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists; a backup never overwrites a file")]
    Exists(PathBuf),
    #[error("cannot create the backup file: {0}")]
    Create(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<redb::TransactionError> for BackupError {
    fn from(error: redb::TransactionError) -> Self {
        Self::Store(error.into())
    }
}
impl From<redb::TableError> for BackupError {
    fn from(error: redb::TableError) -> Self {
        Self::Store(error.into())
    }
}
impl From<redb::StorageError> for BackupError {
    fn from(error: redb::StorageError) -> Self {
        Self::Store(error.into())
    }
}
impl From<redb::CommitError> for BackupError {
    fn from(error: redb::CommitError) -> Self {
        Self::Store(error.into())
    }
}

/// Copies every row of one table from a read transaction into a write transaction.
pub(crate) fn copy_table<K, V>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64, BackupError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    for<'a> K::SelfType<'a>: std::borrow::Borrow<K::SelfType<'a>>,
    for<'a> V::SelfType<'a>: std::borrow::Borrow<V::SelfType<'a>>,
{
    let mut out = to.open_table(table)?;
    let mut rows = 0;
    for entry in from.open_table(table)?.iter()? {
        let (key, value) = entry?;
        out.insert(key.value(), value.value())?;
        rows += 1;
    }
    Ok(rows)
}

/// The document's stored updates after log position `after`, in order.
fn log_after(
    txn: &redb::ReadTransaction,
    doc: DocRef,
    after: Seq,
) -> Result<Vec<(Seq, UpdateRecord)>> {
    let plan = doc.plan;
    let log = txn.open_table(log_table(doc.kind))?;
    let mut updates = Vec::new();
    for entry in
        log.range((plan.as_u128(), after.saturating_add(1))..=(plan.as_u128(), Seq::MAX))?
    {
        let (key, value) = entry?;
        let seq = key.value().1;
        updates.push((
            seq,
            decode_or_corrupt("updates", format!("{plan}/{seq}"), value.value())?,
        ));
    }
    Ok(updates)
}

/// Where a prefix of the log ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogBound {
    /// Up to and including this position.
    Seq(Seq),
    /// Every update received at or before this time (ms since the epoch), up to the first one
    /// received later.
    ReceivedBy(i64),
}

/// The Mapline data file. All methods block on disk IO: call them from a dedicated thread or
/// `spawn_blocking`, never from an async task directly.
pub struct Store {
    /// `None` while the file is being reopened after an I/O failure (see [`Store::recover`]).
    /// Every operation holds the read lock for its whole duration, so a reopen waits for them.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    cache_bytes: usize,
    /// When a reopen was last tried by an operation (ms since the epoch).
    last_reopen_ms: AtomicI64,
    /// Plans whose derived history was stored since the webhook worker last asked
    /// ([`Store::plans_with_new_history`]), so it need not scan every plan each time. `None`:
    /// not known (the file was just opened or reopened), and the next ask scans them all.
    history_moved: Mutex<Option<HashSet<u128>>>,
    /// Where this node's shared writes go when the file is a cluster replica
    /// ([`Store::route_commands`]); unset on a single node.
    route: OnceLock<Arc<dyn CommandRoute>>,
}

/// Where a replica's shared writes are decided: the cluster's command log. A store with a
/// route never applies a [`Command`] of its own accord (that would make its file unlike every
/// other replica's); it hands the command to the route, which gets it into the log and returns
/// once this file has applied it there, with the outcome of that apply.
pub trait CommandRoute: Send + Sync {
    fn execute(&self, command: &Command) -> Result<Outcome>;
}

/// The open database, for the duration of one store operation.
pub(crate) struct Open<'a>(RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for Open<'_> {
    type Target = Database;

    fn deref(&self) -> &Database {
        // `Store::db` only hands out a guard over `Some`.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("checked in Store::db"))
    }
}

impl Store {
    /// Opens the data file, creating it and its folder if missing, and checks its format; the
    /// page cache holds up to [`DEFAULT_CACHE_BYTES`].
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with a page cache of `cache_bytes`. redb's own default (1 GiB) lets a
    /// busy server's memory grow by every page it writes until that size.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, OpenError> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(OpenError::Folder)?;
        }
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)?;
        let store = Self {
            db: RwLock::new(Some(db)),
            path: path.to_owned(),
            cache_bytes,
            history_moved: Mutex::new(None),
            route: OnceLock::new(),
            last_reopen_ms: AtomicI64::new(0),
        };
        store.ensure_format()?;
        Ok(store)
    }

    pub(crate) fn db(&self) -> Result<Open<'_>> {
        {
            let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
            if guard.is_some() {
                return Ok(Open(guard));
            }
        }
        // A reopen after a failure did not work (the disk was still full). Try again now, at
        // most once a second, so reads come back with the space even if nobody writes.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let last = self.last_reopen_ms.load(Ordering::Relaxed);
        let due = now - last >= 1000
            && self
                .last_reopen_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if due && self.recover().is_err() {
            return Err(StoreError::Unavailable);
        }
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(StoreError::Unavailable);
        }
        Ok(Open(guard))
    }

    /// Closes and reopens the data file. After an I/O failure (a full disk, a failed write) redb
    /// refuses every later operation until the database is reopened; the writer calls this after
    /// a failed commit. Waits for the operations in progress. If reopening fails (the disk is
    /// still full and the file needs its recovery pass), the store stays unavailable and the next
    /// call tries again. Nothing committed is lost either way: redb's commits are atomic.
    pub fn recover(&self) -> Result<(), OpenError> {
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        // Dropping the database closes the file and releases its lock before reopening it.
        drop(slot.take());
        let db = redb::Builder::new()
            .set_cache_size(self.cache_bytes)
            .create(&self.path)?;
        *slot = Some(db);
        self.rescan_history();
        tracing::info!(path = %self.path.display(), "data file reopened");
        Ok(())
    }
    fn ensure_format(&self) -> Result<(), OpenError> {
        let db = self.db()?;
        let txn = db.begin_write().map_err(StoreError::from)?;
        {
            let mut meta = txn.open_table(META).map_err(StoreError::from)?;
            let found = meta
                .get(META_FORMAT)
                .map_err(StoreError::from)?
                .map(|v| read_u32(v.value()));
            match found {
                None => {
                    meta.insert(META_FORMAT, STORAGE_FORMAT.to_le_bytes().as_slice())
                        .map_err(StoreError::from)?;
                }
                Some(Some(STORAGE_FORMAT)) => {}
                Some(Some(found @ 1..=3)) => {
                    // Format 4 records conflicts and lost moves in history entries (and format
                    // 2 chained them). History is derived data: drop it and let every plan
                    // derive it again from its log; format 3's lineage tables (created below)
                    // start empty for older files, whose links simply have no parent.
                    txn.delete_table(HISTORY).map_err(StoreError::from)?;
                    txn.delete_table(SLIP_INDEX).map_err(StoreError::from)?;
                    txn.delete_table(DERIVED).map_err(StoreError::from)?;
                    // As after a crash: the next start derives every plan's history at once.
                    meta.remove(META_CLEAN_SHUTDOWN).map_err(StoreError::from)?;
                    meta.insert(META_FORMAT, STORAGE_FORMAT.to_le_bytes().as_slice())
                        .map_err(StoreError::from)?;
                    tracing::info!(
                        from = found,
                        to = STORAGE_FORMAT,
                        "storage format upgraded; history will be derived again"
                    );
                }
                Some(other) => {
                    return Err(OpenError::FormatVersion {
                        found: other.unwrap_or(0),
                        supported: STORAGE_FORMAT,
                    });
                }
            }
            // Create every table so readers never meet a missing one.
            txn.open_table(PLANS).map_err(StoreError::from)?;
            txn.open_table(SHARES).map_err(StoreError::from)?;
            txn.open_table(UPDATES).map_err(StoreError::from)?;
            txn.open_table(SNAPSHOTS).map_err(StoreError::from)?;
            txn.open_table(HISTORY).map_err(StoreError::from)?;
            txn.open_table(SLIP_INDEX).map_err(StoreError::from)?;
            txn.open_table(DERIVED).map_err(StoreError::from)?;
            txn.open_table(SHARE_SEEN).map_err(StoreError::from)?;
            txn.open_table(INTERNAL_UPDATES).map_err(StoreError::from)?;
            txn.open_table(INTERNAL_SNAPSHOTS)
                .map_err(StoreError::from)?;
            crate::webhooks::create_tables(&txn).map_err(StoreError::from)?;
            lineage::create_tables(&txn).map_err(StoreError::from)?;
            // Not a format change: a file without it opens and simply has no feeds yet.
            crate::feeds::create_tables(&txn).map_err(StoreError::from)?;
            // Nor this: a file from before members opens and simply has none.
            crate::members::create_tables(&txn).map_err(StoreError::from)?;
            // Derived data: a file without it opens and computes summaries as it needs them.
            crate::summaries::create_tables(&txn).map_err(StoreError::from)?;
        }
        txn.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Compacts the data file: rewrites it without the space freed pages left behind (a
    /// redb file never shrinks on its own). Needs the file to itself: run it with the server
    /// stopped. Returns the file's size before and after.
    pub fn compact(&self) -> Result<(u64, u64)> {
        let before = self.file_bytes();
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        let db = slot.as_mut().ok_or(StoreError::Unavailable)?;
        // redb compacts until nothing more moves; each pass returns whether it did anything.
        while db
            .compact()
            .map_err(|e| StoreError::Compaction(e.to_string()))?
        {}
        drop(slot);
        Ok((before, self.file_bytes()))
    }

    /// Runs `read` in one read transaction.
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T>,
    ) -> Result<T> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        read(&txn)
    }

    /// Runs `write` in one durable write transaction and commits it.
    pub(crate) fn write<T>(
        &self,
        write: impl FnOnce(&redb::WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        let db = self.db()?;
        let txn = db.begin_write()?;
        let out = write(&txn)?;
        txn.commit()?;
        Ok(out)
    }

    /// Where the data file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the data file in bytes (for the metrics).
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// SHA-256 of the admin credential, if one was stored.
    pub fn admin_token_hash(&self) -> Result<Option<[u8; 32]>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let meta = txn.open_table(META)?;
        let hash = meta.get(META_ADMIN_TOKEN)?;
        Ok(hash.and_then(|v| v.value().try_into().ok()))
    }

    /// Stores the SHA-256 of the admin credential, replacing any earlier one.
    pub fn set_admin_token_hash(&self, hash: &[u8; 32]) -> Result<()> {
        self.execute(&Command::SetAdminTokenHash { hash: *hash })
            .map(Outcome::done)
    }

    /// The id of the cluster node that uses this file: the one stored, or `generate()`'s,
    /// stored now. Node-local (not in backups, not compared between replicas).
    pub fn node_id_or(&self, generate: impl FnOnce() -> String) -> Result<String> {
        let db = self.db()?;
        let txn = db.begin_write()?;
        let id = {
            let mut meta = txn.open_table(META)?;
            let stored = meta
                .get(META_NODE_ID)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            match stored {
                Some(id) => id,
                None => {
                    let id = generate();
                    meta.insert(META_NODE_ID, id.as_bytes())?;
                    id
                }
            }
        };
        txn.commit()?;
        Ok(id)
    }

    /// Whether the last server to use the file stopped cleanly (everything derived and
    /// stored); clears the mark, so a crash from now on is detected at the next start.
    pub fn take_clean_shutdown(&self) -> Result<bool> {
        let db = self.db()?;
        let txn = db.begin_write()?;
        let clean = {
            let mut meta = txn.open_table(META)?;
            meta.remove(META_CLEAN_SHUTDOWN)?.is_some()
        };
        txn.commit()?;
        Ok(clean)
    }

    /// Marks a clean shutdown: call it last, after every write.
    pub fn mark_clean_shutdown(&self) -> Result<()> {
        let db = self.db()?;
        let txn = db.begin_write()?;
        txn.open_table(META)?
            .insert(META_CLEAN_SHUTDOWN, [1u8].as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Creates a plan with its first update (log position 1), the history derived from it and
    /// its share links, atomically.
    pub fn create_plan(
        &self,
        id: PlanId,
        plan: &PlanRecord,
        first_update: &UpdateRecord,
        shares: &[ShareRecord],
        history: &DerivedHistory,
    ) -> Result<()> {
        self.create_plan_with_internal(id, plan, first_update, None, shares, history)
    }

    /// [`Store::create_plan`], and when given, the first update of the plan's internal document
    /// (its log position 1; the seller's judgments a demo or imported plan starts with), all in
    /// one transaction: a crash leaves both documents or neither.
    pub fn create_plan_with_internal(
        &self,
        id: PlanId,
        plan: &PlanRecord,
        first_update: &UpdateRecord,
        internal_first_update: Option<&UpdateRecord>,
        shares: &[ShareRecord],
        history: &DerivedHistory,
    ) -> Result<()> {
        let command = Command::CreatePlan {
            id,
            plan: plan.clone(),
            first_update: first_update.clone(),
            internal_first_update: internal_first_update.cloned(),
            shares: shares.to_vec(),
        };
        self.execute_with_local(&command, None, &[], std::slice::from_ref(history))
            .map(Outcome::done)
    }

    /// Every plan, oldest first (ids are UUID v7).
    pub fn plans(&self) -> Result<Vec<(PlanId, PlanRecord)>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let plans = txn.open_table(PLANS)?;
        let mut out = Vec::new();
        for entry in plans.iter()? {
            let (key, value) = entry?;
            let id = PlanId::from_u128(key.value());
            out.push((id, decode_or_corrupt("plans", id, value.value())?));
        }
        Ok(out)
    }

    /// One plan's record.
    pub fn plan(&self, id: PlanId) -> Result<Option<PlanRecord>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let plans = txn.open_table(PLANS)?;
        let found = plans.get(id.as_u128())?;
        found
            .map(|v| decode_or_corrupt("plans", id, v.value()))
            .transpose()
    }

    /// Whether the store holds any plan at all.
    pub fn is_empty(&self) -> Result<bool> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        Ok(txn.open_table(PLANS)?.first()?.is_none())
    }

    /// Stores a new share link for an existing plan. A link minted through another link
    /// (`parent`) is bounded by it: its expiry is capped at the parent's (the record as stored is
    /// returned), and it is refused if the parent is not a live link of the same plan — so a
    /// parent revoked or expired since its token was checked cannot pass anything on.
    pub fn insert_share(
        &self,
        share: &ShareRecord,
        parent: Option<ShareId>,
    ) -> Result<ShareRecord> {
        let command = Command::InsertShare {
            share: share.clone(),
            parent,
        };
        self.execute(&command).map(Outcome::share)
    }

    /// One share link.
    pub fn share(&self, id: ShareId) -> Result<Option<ShareRecord>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let shares = txn.open_table(SHARES)?;
        let found = shares.get(id.as_u128())?;
        found
            .map(|v| decode_or_corrupt("shares", id, v.value()))
            .transpose()
    }

    /// Every share link of a plan, oldest first, with the link it was minted through and when it
    /// was last used. Scans the share table (share links number in the hundreds per deployment,
    /// not millions).
    pub fn shares_of(&self, plan: PlanId) -> Result<Vec<(LinkedShare, Option<ShareSeen>)>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let shares = txn.open_table(SHARES)?;
        let seen = txn.open_table(SHARE_SEEN)?;
        let parents = txn.open_table(SHARE_PARENTS)?;
        let mut found = Vec::new();
        for entry in shares.iter()? {
            let (key, value) = entry?;
            let share: ShareRecord = decode_or_corrupt("shares", key.value(), value.value())?;
            if share.plan_id != plan {
                continue;
            }
            let last = seen
                .get(key.value())?
                .map(|v| decode_or_corrupt("share_seen", key.value(), v.value()))
                .transpose()?;
            let parent = lineage::parent_of(&parents, share.id)?;
            found.push((
                LinkedShare {
                    record: share,
                    parent,
                },
                last,
            ));
        }
        // Share ids are UUID v7, so id order is creation order; sort anyway for clarity.
        found.sort_by_key(|(share, _)| (share.record.created_at_ms, share.record.id));
        Ok(found)
    }

    /// Revokes a share link and every link minted through it, transitively, at `now_ms`, in one
    /// write transaction: each descendant's own record is marked, so a token check stays one
    /// read and nothing minted through a revoked link survives a crash. Idempotent: a link
    /// revoked before keeps its first time. `None` when the plan has no such link.
    pub fn revoke_share(
        &self,
        plan: PlanId,
        share: ShareId,
        now_ms: i64,
    ) -> Result<Option<Revocation>> {
        let command = Command::RevokeShare {
            plan,
            share,
            now_ms,
        };
        self.execute(&command).map(Outcome::revocation)
    }

    /// Records that a share link opened its plan at `now_ms`. Not fsynced on its own: it
    /// becomes durable with the next durable commit (a crash may forget the last few visits,
    /// never anything else).
    pub fn record_share_seen(&self, share: ShareId, now_ms: i64) -> Result<()> {
        self.execute(&Command::RecordShareSeen { share, now_ms })
            .map(Outcome::done)
    }

    /// Appends a batch of updates (from any plans), writes snapshots and stores derived history,
    /// in one write transaction: one fsync for the whole batch. Returns each update's log
    /// position, in batch order. A snapshot older than the stored one is skipped. Either
    /// everything is durable or nothing is.
    ///
    /// The updates are the shared part, [`Command::AppendUpdates`]; the snapshots and history are
    /// node-local (derived from the log on each node) and ride in the same transaction through
    /// [`Store::execute_with_local`], so a snapshot is never stored without the history it
    /// covers. A batch without updates is node-local only and builds no command.
    pub fn commit_batch(
        &self,
        updates: &[NewUpdate],
        snapshots: &[(DocRef, Snapshot)],
        history: &[DerivedHistory],
    ) -> Result<Vec<Seq>> {
        if updates.is_empty() {
            self.write_local_only(snapshots, history)?;
            return Ok(Vec::new());
        }
        let command = Command::AppendUpdates {
            updates: updates.to_vec(),
        };
        self.execute_with_local(&command, None, snapshots, history)
            .map(Outcome::appended)
    }

    /// Stores node-local derived data (snapshots, history with summaries) in a transaction of
    /// its own.
    pub(crate) fn write_local_only(
        &self,
        snapshots: &[(DocRef, Snapshot)],
        history: &[DerivedHistory],
    ) -> Result<()> {
        if snapshots.is_empty() && history.is_empty() {
            return Ok(());
        }
        let db = self.db()?;
        let txn = db.begin_write()?;
        write_local(&txn, snapshots, history)?;
        txn.commit()?;
        self.note_history_stored(history);
        Ok(())
    }

    /// Sends every later shared write ([`Store::execute`] and every method built on it, and
    /// [`Store::execute_with_local`] without a position) to `route`: the file becomes a
    /// replica, written only by applying the command log ([`Store::execute_at_with`]). Set
    /// once, before the file is written; a second route is ignored (and `false` returned).
    pub fn route_commands(&self, route: Arc<dyn CommandRoute>) -> bool {
        self.route.set(route).is_ok()
    }

    /// The route shared writes take, on a replica.
    pub(crate) fn route(&self) -> Option<&Arc<dyn CommandRoute>> {
        self.route.get()
    }

    /// Remembers the plans whose history a committed transaction stored, for
    /// [`Store::plans_with_new_history`].
    pub(crate) fn note_history_stored(&self, history: &[DerivedHistory]) {
        if history.is_empty() {
            return;
        }
        let mut moved = self
            .history_moved
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(moved) = moved.as_mut() {
            moved.extend(history.iter().map(|h| h.plan_id.as_u128()));
        }
    }

    /// The plans whose history was stored since the last call (`None`: scan every plan), and
    /// from now on a fresh record.
    pub(crate) fn take_history_stored(&self) -> Option<HashSet<u128>> {
        self.history_moved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(HashSet::new())
    }

    /// Forgets which plans' history moved, so the next [`Store::plans_with_new_history`] scans
    /// every plan: for a caller whose handling of the last answer failed before it advanced the
    /// plans' event cursors.
    pub fn rescan_history(&self) {
        *self
            .history_moved
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    pub fn load_document(&self, doc: DocRef) -> Result<Option<DocumentLoad>> {
        let plan = doc.plan;
        let db = self.db()?;
        let txn = db.begin_read()?;
        if txn.open_table(PLANS)?.get(plan.as_u128())?.is_none() {
            return Ok(None);
        }
        // Nothing is derived from the internal document: it counts as derived throughout.
        let derived_through = match doc.kind {
            DocKind::Plan => txn
                .open_table(DERIVED)?
                .get(plan.as_u128())?
                .map_or(0, |v| v.value()),
            DocKind::Internal => Seq::MAX,
        };
        let snapshot = match txn
            .open_table(snapshot_table(doc.kind))?
            .get(plan.as_u128())?
        {
            Some(v) => Some(decode_or_corrupt::<Snapshot>("snapshots", plan, v.value())?),
            None => None,
        };
        // A snapshot past the derived history (history written before a crash was lost) would
        // hide the states the missing history is derived from: load from the start instead.
        let snapshot = snapshot.filter(|s| s.covers_seq <= derived_through);
        let after = snapshot.as_ref().map_or(0, |s: &Snapshot| s.covers_seq);
        let tail = log_after(&txn, doc, after)?;
        let last_seq = tail.last().map_or(after, |(seq, _)| *seq);
        let chain_head = match doc.kind {
            DocKind::Plan => txn
                .open_table(HISTORY)?
                .range((plan.as_u128(), 0)..=(plan.as_u128(), derived_through))?
                .next_back()
                .transpose()?
                .map_or(GENESIS, |(_, value)| digest_bytes(value.value())),
            DocKind::Internal => GENESIS,
        };
        Ok(Some(DocumentLoad {
            snapshot,
            tail,
            last_seq,
            derived_through: derived_through.min(last_seq),
            chain_head,
        }))
    }

    /// The document's stored updates after log position `after`, in order: what a replica's
    /// room in memory catches up with when it missed an announcement.
    pub fn updates_after(&self, doc: DocRef, after: Seq) -> Result<Vec<(Seq, UpdateRecord)>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        log_after(&txn, doc, after)
    }

    /// Writes a consistent copy of the whole store to a new file at `dest` (which must not
    /// exist), from one read transaction: the server keeps committing meanwhile, and the copy
    /// is the store as of one instant. The clean-shutdown mark is left out, so a server started
    /// on the copy checks for underived history. Blocks; the copy is durable when it returns.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupStats, BackupError> {
        if dest.exists() {
            return Err(BackupError::Exists(dest.to_owned()));
        }
        let db = self.db()?;
        let txn = db.begin_read()?;
        let copy = Database::create(dest).map_err(|e| BackupError::Create(e.to_string()))?;
        let out = copy.begin_write()?;
        let mut stats = BackupStats::default();
        {
            let mut meta = out.open_table(META)?;
            for entry in txn.open_table(META)?.iter()? {
                let (key, value) = entry?;
                if !node_local_meta(key.value()) {
                    meta.insert(key.value(), value.value())?;
                }
            }
        }
        stats.plans = copy_table(&txn, &out, PLANS)?;
        copy_table(&txn, &out, SHARES)?;
        stats.updates = copy_table(&txn, &out, UPDATES)?;
        copy_table(&txn, &out, SNAPSHOTS)?;
        stats.history_entries = copy_table(&txn, &out, HISTORY)?;
        copy_table(&txn, &out, SLIP_INDEX)?;
        copy_table(&txn, &out, DERIVED)?;
        copy_table(&txn, &out, SHARE_SEEN)?;
        copy_table(&txn, &out, INTERNAL_UPDATES)?;
        copy_table(&txn, &out, INTERNAL_SNAPSHOTS)?;
        crate::webhooks::copy_tables(&txn, &out)?;
        lineage::copy_tables(&txn, &out)?;
        crate::feeds::copy_tables(&txn, &out)?;
        crate::members::copy_tables(&txn, &out)?;
        crate::summaries::copy_tables(&txn, &out)?;
        out.commit()?;
        drop(copy);
        stats.bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        Ok(stats)
    }

    /// One plan's log, history, slip index and snapshot as stored, for verification.
    pub fn audit(&self, plan: PlanId) -> Result<PlanAudit> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let range = (plan.as_u128(), 0)..=(plan.as_u128(), Seq::MAX);
        let mut audit = PlanAudit {
            derived_through: txn
                .open_table(DERIVED)?
                .get(plan.as_u128())?
                .map_or(0, |v| v.value()),
            snapshot: txn
                .open_table(SNAPSHOTS)?
                .get(plan.as_u128())?
                .map(|v| decode(v.value())),
            ..PlanAudit::default()
        };
        for entry in txn.open_table(UPDATES)?.range(range.clone())? {
            let (key, value) = entry?;
            let bytes = value.value();
            audit
                .log
                .push((key.value().1, decode(bytes), digest_bytes(bytes)));
        }
        for entry in txn.open_table(HISTORY)?.range(range.clone())? {
            let (key, value) = entry?;
            let bytes = value.value();
            audit
                .history
                .push((key.value().1, decode(bytes), digest_bytes(bytes)));
        }
        for entry in txn.open_table(SLIP_INDEX)?.range(range.clone())? {
            audit.slip_index.push(entry?.0.value().1);
        }
        for entry in txn.open_table(INTERNAL_UPDATES)?.range(range)? {
            let (key, value) = entry?;
            let bytes = value.value();
            audit
                .internal_log
                .push((key.value().1, decode(bytes), digest_bytes(bytes)));
        }
        audit.internal_snapshot = txn
            .open_table(INTERNAL_SNAPSHOTS)?
            .get(plan.as_u128())?
            .map(|v| decode(v.value()));
        Ok(audit)
    }

    /// Stores derived history and advances each plan's derived position. Entries are keyed by
    /// log position, so storing one again writes the same record: derivation is exactly once
    /// however often it runs.
    pub fn commit_history(&self, batch: &[DerivedHistory]) -> Result<()> {
        self.commit_batch(&[], &[], batch).map(|_| ())
    }

    /// Replaces a plan's whole derived history (the rebuild), durably.
    pub fn replace_history(&self, rebuilt: &DerivedHistory) -> Result<()> {
        let plan = rebuilt.plan_id.as_u128();
        let db = self.db()?;
        let txn = db.begin_write()?;
        {
            let range = (plan, 0)..=(plan, Seq::MAX);
            txn.open_table(HISTORY)?
                .retain_in(range.clone(), |_, _| false)?;
            txn.open_table(SLIP_INDEX)?.retain_in(range, |_, _| false)?;
            txn.open_table(DERIVED)?.remove(plan)?;
            crate::summaries::remove_summary(&txn, rebuilt.plan_id)?;
        }
        txn.commit()?;
        // Released first: the lock is not re-entrant once a reopen is waiting.
        drop(db);
        self.commit_history(std::slice::from_ref(rebuilt))
    }

    /// Plans whose log goes past their stored history (history lost in a crash before it was
    /// made durable), to derive again.
    pub fn plans_behind(&self) -> Result<Vec<PlanId>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let plans = txn.open_table(PLANS)?;
        let log = txn.open_table(UPDATES)?;
        let derived = txn.open_table(DERIVED)?;
        let mut behind = Vec::new();
        for entry in plans.iter()? {
            let id = PlanId::from_u128(entry?.0.value());
            let through = derived.get(id.as_u128())?.map_or(0, |v| v.value());
            let last = log
                .range((id.as_u128(), through + 1)..=(id.as_u128(), Seq::MAX))?
                .next()
                .transpose()?;
            if last.is_some() {
                behind.push(id);
            }
        }
        Ok(behind)
    }

    /// Every plan's last log position whose history is stored (plans with none left out), in
    /// one read: what a cluster's node compares with the other nodes.
    pub fn derived_positions(&self) -> Result<Vec<(PlanId, Seq)>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let mut out = Vec::new();
        for entry in txn.open_table(DERIVED)?.iter()? {
            let (plan, through) = entry?;
            out.push((PlanId::from_u128(plan.value()), through.value()));
        }
        Ok(out)
    }

    /// The last log position whose history is stored.
    pub fn derived_through(&self, plan: PlanId) -> Result<Seq> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let derived = txn.open_table(DERIVED)?;
        Ok(derived.get(plan.as_u128())?.map_or(0, |v| v.value()))
    }

    /// The head of the plan's history chain as of log position `at_most`: the digest of the
    /// last stored history entry at or before it ([`crate::GENESIS`] if none). Two nodes that
    /// derived the same history from the same log have the same head at every position, so
    /// comparing heads compares everything before them.
    pub fn history_head(&self, plan: PlanId, at_most: Seq) -> Result<[u8; 32]> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        Ok(txn
            .open_table(HISTORY)?
            .range((plan.as_u128(), 0)..=(plan.as_u128(), at_most))?
            .next_back()
            .transpose()?
            .map_or(GENESIS, |(_, value)| digest_bytes(value.value())))
    }

    /// History entries newest first, before log position `before` (all if `None`), at most
    /// `limit`.
    pub fn history(
        &self,
        plan: PlanId,
        before: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<(Seq, HistoryEntry)>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let history = txn.open_table(HISTORY)?;
        let end = before.map_or(Seq::MAX, |b| b.saturating_sub(1));
        let mut out = Vec::new();
        for entry in history
            .range((plan.as_u128(), 0)..=(plan.as_u128(), end))?
            .rev()
        {
            if out.len() == limit {
                break;
            }
            let (key, value) = entry?;
            let seq = key.value().1;
            out.push((
                seq,
                decode_or_corrupt("history", format!("{plan}/{seq}"), value.value())?,
            ));
        }
        Ok(out)
    }

    /// Every history entry of a plan, oldest first.
    pub fn all_history(&self, plan: PlanId) -> Result<Vec<(Seq, HistoryEntry)>> {
        let mut all = self.history(plan, None, usize::MAX)?;
        all.reverse();
        Ok(all)
    }

    /// The history entries that hold slips, oldest first.
    pub fn slip_entries(&self, plan: PlanId) -> Result<Vec<(Seq, HistoryEntry)>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let index = txn.open_table(SLIP_INDEX)?;
        let history = txn.open_table(HISTORY)?;
        let mut out = Vec::new();
        for key in index.range((plan.as_u128(), 0)..=(plan.as_u128(), Seq::MAX))? {
            let (key, _) = key?;
            let seq = key.value().1;
            let key = format!("{plan}/{seq}");
            let value = history
                .get((plan.as_u128(), seq))?
                .ok_or_else(|| StoreError::Corrupt {
                    table: "slip_index",
                    key: key.clone(),
                })?;
            out.push((seq, decode_or_corrupt("history", key, value.value())?));
        }
        Ok(out)
    }

    /// The start of a plan's log, in order, up to `bound` (for the plan as it was then).
    pub fn log_prefix(&self, plan: PlanId, bound: LogBound) -> Result<Vec<(Seq, UpdateRecord)>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let log = txn.open_table(UPDATES)?;
        let last = match bound {
            LogBound::Seq(seq) => seq,
            LogBound::ReceivedBy(_) => Seq::MAX,
        };
        let mut out = Vec::new();
        for entry in log.range((plan.as_u128(), 0)..=(plan.as_u128(), last))? {
            let (key, value) = entry?;
            let seq = key.value().1;
            let record: UpdateRecord =
                decode_or_corrupt("updates", format!("{plan}/{seq}"), value.value())?;
            if let LogBound::ReceivedBy(at) = bound
                && record.received_at_ms > at
            {
                break;
            }
            out.push((seq, record));
        }
        Ok(out)
    }

    /// The last log position of a plan and when that update arrived.
    pub fn last_update(&self, plan: PlanId) -> Result<Option<(Seq, i64)>> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let log = txn.open_table(UPDATES)?;
        let last = log
            .range((plan.as_u128(), 0)..=(plan.as_u128(), Seq::MAX))?
            .next_back()
            .transpose()?;
        last.map(|(key, value)| {
            let seq = key.value().1;
            let record: UpdateRecord =
                decode_or_corrupt("updates", format!("{plan}/{seq}"), value.value())?;
            Ok((seq, record.received_at_ms))
        })
        .transpose()
    }

    /// A plan's whole update log, in order (for history and tests).
    pub fn log(&self, plan: PlanId) -> Result<Vec<(Seq, UpdateRecord)>> {
        self.log_prefix(plan, LogBound::Seq(Seq::MAX))
    }
}

/// Creates a plan with its first update (and its internal document's, if given) and its share
/// links; refused if the plan exists. Its creation history is node-local, written beside it.
pub(crate) fn create_plan_in(
    txn: &redb::WriteTransaction,
    id: PlanId,
    plan: &PlanRecord,
    first_update: &UpdateRecord,
    internal_first_update: Option<&UpdateRecord>,
    shares: &[ShareRecord],
) -> Result<()> {
    let mut plans = txn.open_table(PLANS)?;
    if plans.get(id.as_u128())?.is_some() {
        return Err(StoreError::PlanExists(id));
    }
    plans.insert(id.as_u128(), encode(plan).as_slice())?;
    txn.open_table(UPDATES)?
        .insert((id.as_u128(), 1), encode(first_update).as_slice())?;
    if let Some(internal) = internal_first_update {
        txn.open_table(INTERNAL_UPDATES)?
            .insert((id.as_u128(), 1), encode(internal).as_slice())?;
    }
    let mut table = txn.open_table(SHARES)?;
    for share in shares {
        table.insert(share.id.as_u128(), encode(share).as_slice())?;
    }
    Ok(())
}

/// Appends updates to their documents' logs; each gets the next position of its document's log
/// as stored (so every replica applying the same commands in the same order numbers them
/// alike). Returns the positions in batch order.
pub(crate) fn append_updates_in(
    txn: &redb::WriteTransaction,
    updates: &[NewUpdate],
) -> Result<Vec<Seq>> {
    let mut seqs = Vec::with_capacity(updates.len());
    let mut logs = [
        txn.open_table(log_table(DocKind::Plan))?,
        txn.open_table(log_table(DocKind::Internal))?,
    ];
    let mut next: Vec<(DocRef, Seq)> = Vec::new();
    for update in updates {
        let doc = DocRef {
            plan: update.plan_id,
            kind: update.kind,
        };
        let log = &mut logs[usize::from(doc.kind == DocKind::Internal)];
        let seq = match next.iter_mut().find(|(d, _)| *d == doc) {
            Some((_, seq)) => {
                *seq += 1;
                *seq
            }
            None => {
                let seq = last_seq(log, doc.plan)? + 1;
                next.push((doc, seq));
                seq
            }
        };
        log.insert((doc.plan.as_u128(), seq), encode(&update.record).as_slice())?;
        seqs.push(seq);
    }
    Ok(seqs)
}

/// The node-local part of a batch: snapshots (an older one than stored is skipped) and derived
/// history.
pub(crate) fn write_local(
    txn: &redb::WriteTransaction,
    snapshots: &[(DocRef, Snapshot)],
    history: &[DerivedHistory],
) -> Result<()> {
    for (doc, snapshot) in snapshots {
        let mut table = txn.open_table(snapshot_table(doc.kind))?;
        let stored = table
            .get(doc.plan.as_u128())?
            .and_then(|v| decode::<Snapshot>(v.value()))
            .map(|s| s.covers_seq);
        if stored.is_none_or(|covered| covered < snapshot.covers_seq) {
            table.insert(doc.plan.as_u128(), encode(snapshot).as_slice())?;
        }
    }
    write_history(txn, history)
}

/// Stores a new share link (see [`Store::insert_share`]); returns the record as stored.
pub(crate) fn insert_share_in(
    txn: &redb::WriteTransaction,
    share: &ShareRecord,
    parent: Option<ShareId>,
) -> Result<ShareRecord> {
    if txn
        .open_table(PLANS)?
        .get(share.plan_id.as_u128())?
        .is_none()
    {
        return Err(StoreError::NoSuchPlan(share.plan_id));
    }
    let mut shares = txn.open_table(SHARES)?;
    if shares.get(share.id.as_u128())?.is_some() {
        return Err(StoreError::ShareExists(share.id));
    }
    let mut stored = share.clone();
    if let Some(parent) = parent {
        let from = share_in(&shares, parent)?
            .filter(|p| p.plan_id == share.plan_id)
            .ok_or(StoreError::NoSuchShare(parent))?;
        if from.revoked_at_ms.is_some() {
            return Err(StoreError::ShareRevoked(parent));
        }
        if let Some(limit) = from.expires_at_ms {
            if limit <= share.created_at_ms {
                return Err(StoreError::ShareExpired(parent));
            }
            stored.expires_at_ms = Some(stored.expires_at_ms.map_or(limit, |at| at.min(limit)));
        }
        lineage::link(txn, parent, share.id)?;
    }
    shares.insert(share.id.as_u128(), encode(&stored).as_slice())?;
    Ok(stored)
}

/// Revokes a link and its descendants (see [`Store::revoke_share`]).
pub(crate) fn revoke_share_in(
    txn: &redb::WriteTransaction,
    plan: PlanId,
    share: ShareId,
    now_ms: i64,
) -> Result<Option<Revocation>> {
    let mut shares = txn.open_table(SHARES)?;
    let parents = txn.open_table(SHARE_PARENTS)?;
    let children = txn.open_table(SHARE_CHILDREN)?;
    match share_in(&shares, share)? {
        Some(record) if record.plan_id == plan => {}
        _ => return Ok(None),
    }
    let mut revocation = Revocation {
        links: Vec::new(),
        newly_revoked: Vec::new(),
    };
    for id in lineage::subtree(&children, share)? {
        let mut record = share_in(&shares, id)?.ok_or_else(|| StoreError::Corrupt {
            table: "share_children",
            key: id.to_string(),
        })?;
        if record.revoked_at_ms.is_none() {
            record.revoked_at_ms = Some(now_ms);
            shares.insert(id.as_u128(), encode(&record).as_slice())?;
            revocation.newly_revoked.push(id);
        }
        revocation.links.push(LinkedShare {
            record,
            parent: lineage::parent_of(&parents, id)?,
        });
    }
    Ok(Some(revocation))
}

/// Records that a share link opened its plan at `now_ms`.
pub(crate) fn record_share_seen_in(
    txn: &redb::WriteTransaction,
    share: ShareId,
    now_ms: i64,
) -> Result<()> {
    let mut table = txn.open_table(SHARE_SEEN)?;
    let previous: Option<ShareSeen> = table
        .get(share.as_u128())?
        .map(|v| decode_or_corrupt("share_seen", share, v.value()))
        .transpose()?;
    let seen = match previous {
        Some(p) => ShareSeen {
            first_ms: p.first_ms,
            last_ms: now_ms.max(p.last_ms),
            opens: p.opens.saturating_add(1),
        },
        None => ShareSeen {
            first_ms: now_ms,
            last_ms: now_ms,
            opens: 1,
        },
    };
    table.insert(share.as_u128(), encode(&seen).as_slice())?;
    Ok(())
}

/// Stores the SHA-256 of the admin credential.
pub(crate) fn set_admin_token_hash_in(txn: &redb::WriteTransaction, hash: &[u8; 32]) -> Result<()> {
    txn.open_table(META)?
        .insert(META_ADMIN_TOKEN, hash.as_slice())?;
    Ok(())
}

/// The last command-log position applied to this file (0 if none).
pub(crate) fn applied_position_in(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<u64> {
    match meta.get(META_APPLIED_POSITION)? {
        None => Ok(0),
        Some(v) => v
            .value()
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| StoreError::Corrupt {
                table: "meta",
                key: META_APPLIED_POSITION.to_owned(),
            }),
    }
}

/// Records `position` as the last command-log position applied, after checking it is past the
/// recorded one (a replayed command is refused, never applied twice).
pub(crate) fn advance_position_in(txn: &redb::WriteTransaction, position: u64) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    let applied = applied_position_in(&meta)?;
    if position <= applied {
        return Err(StoreError::AlreadyApplied { position, applied });
    }
    meta.insert(META_APPLIED_POSITION, position.to_le_bytes().as_slice())?;
    Ok(())
}

/// Records `position` as the last command-log position applied, unconditionally (a base).
pub(crate) fn set_position_in(txn: &redb::WriteTransaction, position: u64) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    meta.insert(META_APPLIED_POSITION, position.to_le_bytes().as_slice())?;
    Ok(())
}

/// Reads the applied command-log position in a read transaction.
pub(crate) fn applied_position_read(txn: &redb::ReadTransaction) -> Result<u64> {
    applied_position_in(&txn.open_table(META)?)
}

/// Every row of a table as raw key and value bytes (replicas are compared with it).
pub(crate) type Dump = std::collections::BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

pub(crate) fn dump_table<K, V>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
    out: &mut Dump,
) -> Result<()>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    use redb::TableHandle as _;
    let mut rows = Vec::new();
    for entry in txn.open_table(table)?.iter()? {
        let (key, value) = entry?;
        rows.push((
            K::as_bytes(&key.value()).as_ref().to_vec(),
            V::as_bytes(&value.value()).as_ref().to_vec(),
        ));
    }
    out.insert(table.name().to_owned(), rows);
    Ok(())
}

impl Store {
    /// The shared tables (what the command log writes) as raw bytes: two replicas that applied
    /// the same commands have equal dumps. `meta` without the node-local clean-shutdown mark.
    pub(crate) fn dump_shared(&self) -> Result<Dump> {
        self.read(|txn| {
            let mut out = Dump::new();
            let mut meta = Vec::new();
            for entry in txn.open_table(META)?.iter()? {
                let (key, value) = entry?;
                if !node_local_meta(key.value()) {
                    meta.push((key.value().as_bytes().to_vec(), value.value().to_vec()));
                }
            }
            out.insert("meta".to_owned(), meta);
            dump_table(txn, PLANS, &mut out)?;
            dump_table(txn, SHARES, &mut out)?;
            dump_table(txn, UPDATES, &mut out)?;
            dump_table(txn, INTERNAL_UPDATES, &mut out)?;
            dump_table(txn, SHARE_SEEN, &mut out)?;
            lineage::dump_shared_tables(txn, &mut out)?;
            crate::feeds::dump_shared_tables(txn, &mut out)?;
            crate::members::dump_shared_tables(txn, &mut out)?;
            crate::webhooks::dump_shared_tables(txn, &mut out)?;
            Ok(out)
        })
    }

    /// A digest of every shared table (what the command log writes, `meta`'s applied log
    /// position included; docs/storage.md, *Commands and replicas*): two replicas that applied
    /// the same log through the same position have equal digests, whatever node-local data
    /// (history, snapshots, outbox, shutdown marks) each holds. SHA-256 over each table's name
    /// and rows, every part length-prefixed, tables in name order. Reads the whole of the
    /// shared tables: for tests and operators' checks, not for a hot path.
    pub fn shared_digest(&self) -> Result<[u8; 32]> {
        use sha2::{Digest as _, Sha256};
        let dump = self.dump_shared()?;
        let mut hash = Sha256::new();
        let mut part = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        for (table, rows) in &dump {
            part(table.as_bytes());
            part(&(rows.len() as u64).to_le_bytes());
            for (key, value) in rows {
                part(key);
                part(value);
            }
        }
        Ok(hash.finalize().into())
    }

    /// The names of every table in the file.
    #[cfg(test)]
    pub(crate) fn table_names(&self) -> Result<Vec<String>> {
        use redb::{MultimapTableHandle as _, TableHandle as _};
        self.read(|txn| {
            Ok(txn
                .list_tables()?
                .map(|t| t.name().to_owned())
                .chain(txn.list_multimap_tables()?.map(|t| t.name().to_owned()))
                .collect())
        })
    }
}

fn write_history(txn: &redb::WriteTransaction, batch: &[DerivedHistory]) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut history = txn.open_table(HISTORY)?;
    let mut index = txn.open_table(SLIP_INDEX)?;
    let mut derived = txn.open_table(DERIVED)?;
    for item in batch {
        let plan = item.plan_id.as_u128();
        for (seq, entry) in &item.entries {
            history.insert((plan, *seq), encode(entry).as_slice())?;
            if !entry.slips.is_empty() {
                index.insert((plan, *seq), ())?;
            }
        }
        let stored = derived.get(plan)?.map_or(0, |v| v.value());
        if item.through > stored {
            derived.insert(plan, item.through)?;
        }
    }
    crate::summaries::write_summaries(txn, batch)
}

fn last_seq(log: &redb::Table<(u128, u64), &[u8]>, plan: PlanId) -> Result<Seq> {
    let last = log
        .range((plan.as_u128(), 0)..=(plan.as_u128(), Seq::MAX))?
        .next_back()
        .transpose()?;
    Ok(last.map_or(0, |(key, _)| key.value().1))
}

/// One share record from an open `shares` table.
pub(crate) fn share_in(
    shares: &impl ReadableTable<u128, &'static [u8]>,
    id: ShareId,
) -> Result<Option<ShareRecord>> {
    shares
        .get(id.as_u128())?
        .map(|v| decode_or_corrupt("shares", id, v.value()))
        .transpose()
}

fn read_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

pub(crate) fn decode_or_corrupt<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: impl ToString,
    bytes: &[u8],
) -> Result<T> {
    decode(bytes).ok_or_else(|| StoreError::Corrupt {
        table,
        key: key.to_string(),
    })
}
