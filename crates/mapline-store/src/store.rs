use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::{OpenError, Result, StoreError};
use crate::records::{
    NewUpdate, PlanId, PlanRecord, Seq, ShareId, ShareRecord, Snapshot, UpdateRecord, decode,
    encode,
};

/// Version of the on-disk layout (tables and keys) described in docs/storage.md.
pub const STORAGE_FORMAT: u32 = 1;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const PLANS: TableDefinition<u128, &[u8]> = TableDefinition::new("plans");
const SHARES: TableDefinition<u128, &[u8]> = TableDefinition::new("shares");
const UPDATES: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("updates");
const SNAPSHOTS: TableDefinition<u128, &[u8]> = TableDefinition::new("snapshots");

const META_FORMAT: &str = "format_version";
const META_ADMIN_TOKEN: &str = "admin_token_sha256";

/// What a room needs to rebuild a plan's document: the newest snapshot and the log after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentLoad {
    pub snapshot: Option<Snapshot>,
    /// Updates after the snapshot, in log order.
    pub tail: Vec<(Seq, Vec<u8>)>,
    /// The last log position of the plan (0 for an empty log).
    pub last_seq: Seq,
}

/// The Mapline data file. All methods block on disk IO: call them from a dedicated thread or
/// `spawn_blocking`, never from an async task directly.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens the data file, creating it and its folder if missing, and checks its format.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(OpenError::Folder)?;
        }
        let db = Database::create(path)?;
        let store = Self {
            db,
            path: path.to_owned(),
        };
        store.ensure_format()?;
        Ok(store)
    }

    fn ensure_format(&self) -> Result<(), OpenError> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
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
        }
        txn.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Size of the data file in bytes (for the metrics).
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// SHA-256 of the admin credential, if one was stored.
    pub fn admin_token_hash(&self) -> Result<Option<[u8; 32]>> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let hash = meta.get(META_ADMIN_TOKEN)?;
        Ok(hash.and_then(|v| v.value().try_into().ok()))
    }

    /// Stores the SHA-256 of the admin credential, replacing any earlier one.
    pub fn set_admin_token_hash(&self, hash: &[u8; 32]) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(META)?
            .insert(META_ADMIN_TOKEN, hash.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Creates a plan with its first update (log position 1) and its share links, atomically.
    pub fn create_plan(
        &self,
        id: PlanId,
        plan: &PlanRecord,
        first_update: &UpdateRecord,
        shares: &[ShareRecord],
    ) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut plans = txn.open_table(PLANS)?;
            if plans.get(id.as_u128())?.is_some() {
                return Err(StoreError::PlanExists(id));
            }
            plans.insert(id.as_u128(), encode(plan).as_slice())?;
            txn.open_table(UPDATES)?
                .insert((id.as_u128(), 1), encode(first_update).as_slice())?;
            let mut table = txn.open_table(SHARES)?;
            for share in shares {
                table.insert(share.id.as_u128(), encode(share).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every plan, oldest first (ids are UUID v7).
    pub fn plans(&self) -> Result<Vec<(PlanId, PlanRecord)>> {
        let txn = self.db.begin_read()?;
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
        let txn = self.db.begin_read()?;
        let plans = txn.open_table(PLANS)?;
        let found = plans.get(id.as_u128())?;
        found
            .map(|v| decode_or_corrupt("plans", id, v.value()))
            .transpose()
    }

    /// Whether the store holds any plan at all.
    pub fn is_empty(&self) -> Result<bool> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(PLANS)?.first()?.is_none())
    }

    /// Stores a new share link for an existing plan.
    pub fn insert_share(&self, share: &ShareRecord) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            if txn
                .open_table(PLANS)?
                .get(share.plan_id.as_u128())?
                .is_none()
            {
                return Err(StoreError::NoSuchPlan(share.plan_id));
            }
            txn.open_table(SHARES)?
                .insert(share.id.as_u128(), encode(share).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// One share link.
    pub fn share(&self, id: ShareId) -> Result<Option<ShareRecord>> {
        let txn = self.db.begin_read()?;
        let shares = txn.open_table(SHARES)?;
        let found = shares.get(id.as_u128())?;
        found
            .map(|v| decode_or_corrupt("shares", id, v.value()))
            .transpose()
    }

    /// Appends a batch of updates (from any plans) and writes snapshots, in one write transaction:
    /// one fsync for the whole batch. Returns each update's log position, in batch order. A
    /// snapshot older than the stored one is skipped. Either everything is durable or nothing is.
    pub fn commit_batch(
        &self,
        updates: &[NewUpdate],
        snapshots: &[(PlanId, Snapshot)],
    ) -> Result<Vec<Seq>> {
        let txn = self.db.begin_write()?;
        let mut seqs = Vec::with_capacity(updates.len());
        {
            let mut log = txn.open_table(UPDATES)?;
            let mut next: Vec<(PlanId, Seq)> = Vec::new();
            for update in updates {
                let plan = update.plan_id;
                let seq = match next.iter_mut().find(|(p, _)| *p == plan) {
                    Some((_, seq)) => {
                        *seq += 1;
                        *seq
                    }
                    None => {
                        let seq = last_seq(&log, plan)? + 1;
                        next.push((plan, seq));
                        seq
                    }
                };
                log.insert((plan.as_u128(), seq), encode(&update.record).as_slice())?;
                seqs.push(seq);
            }
            let mut table = txn.open_table(SNAPSHOTS)?;
            for (plan, snapshot) in snapshots {
                let stored = table
                    .get(plan.as_u128())?
                    .and_then(|v| decode::<Snapshot>(v.value()))
                    .map(|s| s.covers_seq);
                if stored.is_none_or(|covered| covered < snapshot.covers_seq) {
                    table.insert(plan.as_u128(), encode(snapshot).as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(seqs)
    }

    /// The newest snapshot of a plan and the log after it; `None` if the plan does not exist.
    pub fn load_document(&self, plan: PlanId) -> Result<Option<DocumentLoad>> {
        let txn = self.db.begin_read()?;
        if txn.open_table(PLANS)?.get(plan.as_u128())?.is_none() {
            return Ok(None);
        }
        let snapshot = match txn.open_table(SNAPSHOTS)?.get(plan.as_u128())? {
            Some(v) => Some(decode_or_corrupt("snapshots", plan, v.value())?),
            None => None,
        };
        let after = snapshot.as_ref().map_or(0, |s: &Snapshot| s.covers_seq);
        let log = txn.open_table(UPDATES)?;
        let mut tail = Vec::new();
        for entry in log.range((plan.as_u128(), after + 1)..=(plan.as_u128(), Seq::MAX))? {
            let (key, value) = entry?;
            let seq = key.value().1;
            let record: UpdateRecord =
                decode_or_corrupt("updates", format!("{plan}/{seq}"), value.value())?;
            tail.push((seq, record.update));
        }
        let last_seq = tail.last().map_or(after, |(seq, _)| *seq);
        Ok(Some(DocumentLoad {
            snapshot,
            tail,
            last_seq,
        }))
    }

    /// A plan's whole update log, in order (for history and tests).
    pub fn log(&self, plan: PlanId) -> Result<Vec<(Seq, UpdateRecord)>> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(UPDATES)?;
        let mut out = Vec::new();
        for entry in log.range((plan.as_u128(), 0)..=(plan.as_u128(), Seq::MAX))? {
            let (key, value) = entry?;
            let seq = key.value().1;
            out.push((
                seq,
                decode_or_corrupt("updates", format!("{plan}/{seq}"), value.value())?,
            ));
        }
        Ok(out)
    }
}

fn last_seq(log: &redb::Table<(u128, u64), &[u8]>, plan: PlanId) -> Result<Seq> {
    let last = log
        .range((plan.as_u128(), 0)..=(plan.as_u128(), Seq::MAX))?
        .next_back()
        .transpose()?;
    Ok(last.map_or(0, |(key, _)| key.value().1))
}

fn read_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn decode_or_corrupt<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: impl ToString,
    bytes: &[u8],
) -> Result<T> {
    decode(bytes).ok_or_else(|| StoreError::Corrupt {
        table,
        key: key.to_string(),
    })
}
