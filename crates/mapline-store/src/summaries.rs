//! Each plan's summary: what the pipeline lists, stored so a listing reads one small record per
//! plan instead of projecting every plan.
//!
//! The summary's shape belongs to the server (`mapline_plan::summary::PlanSummary`); this crate
//! stores it as one more record (format byte + postcard) together with the log position it is
//! as of, and hands it back decoded. It is derived data, like history: it is written in the same
//! transaction as the history it was computed with (a [`DerivedHistory`] carries it), a record
//! that no longer decodes reads as missing, and the server computes a missing one again.
//!
//! The record carries the version of the summary's shape and meaning that the server wrote it
//! with (the server's `SUMMARY_VERSION`, passed in: this crate never sees the summary type): a
//! record of another version reads as missing, so a change to how a summary is computed
//! recomputes every stored one instead of listing stale rows. Its own format byte
//! ([`SUMMARY_FORMAT`], not the shared record format byte) keeps records written before the
//! version existed from ever decoding as versioned ones.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::Result;
use crate::records::{DerivedHistory, HistoryEntry, PlanId, PlanRecord, Seq};
use crate::store::{BackupError, Store, copy_table};

/// Plan id → [`Stored`] summary.
pub(crate) const SUMMARIES: TableDefinition<u128, &[u8]> = TableDefinition::new("plan_summaries");

pub(crate) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(SUMMARIES)?;
    Ok(())
}

pub(crate) fn copy_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), BackupError> {
    copy_table(from, to, SUMMARIES)?;
    Ok(())
}

/// The format byte of a summary record: `{ version, through, summary }`. Records of the shared
/// format byte (`1`, `{ through, summary }`, written before summaries had a version) read as
/// missing.
pub(crate) const SUMMARY_FORMAT: u8 = 2;

/// The stored value: the version of the summary's shape, the last log position whose history
/// it includes, and the summary.
#[derive(Serialize, Deserialize)]
struct Stored<T> {
    version: u32,
    through: Seq,
    summary: T,
}

/// A summary ready to store, encoded by [`EncodedSummary::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSummary {
    version: u32,
    through: Seq,
    bytes: Vec<u8>,
}

impl EncodedSummary {
    /// Encodes a summary of shape `version` as of log position `through`.
    pub fn new<T: Serialize>(version: u32, through: Seq, summary: &T) -> Self {
        let mut bytes = vec![SUMMARY_FORMAT];
        // postcard only fails on writer errors or unsupported serde features; a Vec writer
        // with plain structs has neither, so an error here is a bug in the summary type.
        postcard::to_io(
            &Stored {
                version,
                through,
                summary,
            },
            &mut bytes,
        )
        .expect("postcard encodes plain records into a Vec");
        Self {
            version,
            through,
            bytes,
        }
    }

    /// The log position it is as of.
    pub fn through(&self) -> Seq {
        self.through
    }
}

/// The position a stored summary of shape `version` is as of, read without decoding the
/// summary (version and position are the record's first fields); `None` for a record of
/// another version or format, which counts as missing.
fn through_of(bytes: &[u8], version: u32) -> Option<Seq> {
    match bytes.split_first() {
        Some((&SUMMARY_FORMAT, body)) => {
            let (stored, rest) = postcard::take_from_bytes::<u32>(body).ok()?;
            if stored != version {
                return None;
            }
            postcard::take_from_bytes::<Seq>(rest)
                .ok()
                .map(|(through, _)| through)
        }
        _ => None,
    }
}

/// Decodes a stored summary only if the record is of shape `version` and exactly one
/// `Stored<T>`: postcard is not self-describing, so bytes left over mean the summary was
/// written in another shape.
fn decoded<T: DeserializeOwned>(bytes: &[u8], version: u32) -> Option<(Seq, T)> {
    match bytes.split_first() {
        Some((&SUMMARY_FORMAT, body)) => match postcard::take_from_bytes::<Stored<T>>(body) {
            Ok((stored, [])) if stored.version == version => Some((stored.through, stored.summary)),
            _ => None,
        },
        _ => None,
    }
}

/// Writes the summaries a batch of derived history carries (inside its transaction), except
/// where the stored summary (of the same version) is as of a later position: two flushes or a
/// catch-up and a flush computed in either order never move a plan's summary back.
pub(crate) fn write_summaries(
    txn: &redb::WriteTransaction,
    batch: &[DerivedHistory],
) -> Result<()> {
    if batch.iter().all(|h| h.summary.is_none()) {
        return Ok(());
    }
    let mut table = txn.open_table(SUMMARIES)?;
    for item in batch {
        if let Some(summary) = &item.summary {
            let key = item.plan_id.as_u128();
            let newer = table
                .get(key)?
                .and_then(|v| through_of(v.value(), summary.version))
                .is_some_and(|stored| stored > summary.through);
            if newer {
                tracing::debug!(
                    plan_id = %item.plan_id,
                    through = summary.through,
                    "a newer summary is stored; keeping it"
                );
                continue;
            }
            table.insert(key, summary.bytes.as_slice())?;
        }
    }
    Ok(())
}

pub(crate) fn remove_summary(txn: &redb::WriteTransaction, plan: PlanId) -> Result<()> {
    txn.open_table(SUMMARIES)?.remove(plan.as_u128())?;
    Ok(())
}

/// A plan, its record and its stored summary with the position it is as of.
pub type PlanWithSummary<T> = (PlanId, PlanRecord, Option<(Seq, T)>);

/// A plan's stored summary, what it is as of, and the history stored after that.
pub struct SummaryState<T> {
    pub summary: Option<(Seq, T)>,
    /// History entries after the summary's position (all of them without a summary).
    pub entries_after: Vec<(Seq, HistoryEntry)>,
    /// The plan's derived-through position.
    pub derived_through: Seq,
    pub record: Option<PlanRecord>,
}

impl Store {
    /// Every plan with its stored summary (`None` when missing, of another `version` or no
    /// longer decodable), in one read transaction, oldest plan first.
    pub fn plans_with_summaries<T: DeserializeOwned>(
        &self,
        version: u32,
    ) -> Result<Vec<PlanWithSummary<T>>> {
        self.read(|txn| {
            let plans = txn.open_table(crate::store::PLANS_TABLE)?;
            let summaries = txn.open_table(SUMMARIES)?;
            let mut out = Vec::new();
            for entry in plans.iter()? {
                let (key, value) = entry?;
                let id = PlanId::from_u128(key.value());
                let record = crate::store::decode_or_corrupt("plans", id, value.value())?;
                let summary = summaries
                    .get(key.value())?
                    .and_then(|v| decoded(v.value(), version));
                out.push((id, record, summary));
            }
            Ok(out)
        })
    }

    /// A plan's stored summary of shape `version` and the history it does not include yet,
    /// read together: what advancing the summary needs.
    pub fn summary_state<T: DeserializeOwned>(
        &self,
        plan: PlanId,
        version: u32,
    ) -> Result<SummaryState<T>> {
        self.read(|txn| {
            let key = plan.as_u128();
            let summary: Option<(Seq, T)> = txn
                .open_table(SUMMARIES)?
                .get(key)?
                .and_then(|v| decoded(v.value(), version));
            let after = summary.as_ref().map_or(0, |(through, _)| *through);
            let history = txn.open_table(crate::store::HISTORY_TABLE)?;
            let mut entries_after = Vec::new();
            for entry in history.range((key, after.saturating_add(1))..=(key, Seq::MAX))? {
                let (k, v) = entry?;
                let seq = k.value().1;
                entries_after.push((
                    seq,
                    crate::store::decode_or_corrupt("history", format!("{plan}/{seq}"), v.value())?,
                ));
            }
            let derived_through = txn
                .open_table(crate::store::DERIVED_TABLE)?
                .get(key)?
                .map_or(0, |v| v.value());
            let record = txn
                .open_table(crate::store::PLANS_TABLE)?
                .get(key)?
                .map(|v| crate::store::decode_or_corrupt("plans", plan, v.value()))
                .transpose()?;
            Ok(SummaryState {
                summary,
                entries_after,
                derived_through,
                record,
            })
        })
    }

    /// Stores a summary computed outside the history's flow (a plan without one), unless the
    /// plan meanwhile got one as of the same or a later position. Returns whether it was stored.
    pub fn fill_summary(
        &self,
        plan: PlanId,
        through: Seq,
        summary: &EncodedSummary,
    ) -> Result<bool> {
        self.write(|txn| {
            let mut table = txn.open_table(SUMMARIES)?;
            let newer = table
                .get(plan.as_u128())?
                .and_then(|v| through_of(v.value(), summary.version))
                .is_some_and(|stored| stored >= through);
            if newer
                || txn
                    .open_table(crate::store::PLANS_TABLE)?
                    .get(plan.as_u128())?
                    .is_none()
            {
                return Ok(false);
            }
            table.insert(plan.as_u128(), summary.bytes.as_slice())?;
            Ok(true)
        })
    }
}
