//! Each plan's summary: what the pipeline lists, stored so a listing reads one small record per
//! plan instead of projecting every plan.
//!
//! The summary's shape belongs to the server (`mapline_plan::summary::PlanSummary`); this crate
//! stores it as one more record (format byte + postcard) together with the log position it is
//! as of, and hands it back decoded. It is derived data, like history: it is written in the same
//! transaction as the history it was computed with (a [`DerivedHistory`] carries it), a record
//! that no longer decodes reads as missing, and the server computes a missing one again.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::Result;
use crate::records::{DerivedHistory, HistoryEntry, PlanId, PlanRecord, Seq, encode};
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

/// The stored value: the summary and the last log position whose history it includes.
#[derive(Serialize, Deserialize)]
struct Stored<T> {
    through: Seq,
    summary: T,
}

/// A summary ready to store, encoded by [`EncodedSummary::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSummary(Vec<u8>);

impl EncodedSummary {
    /// Encodes a summary as of log position `through`.
    pub fn new<T: Serialize>(through: Seq, summary: &T) -> Self {
        Self(encode(&Stored { through, summary }))
    }
}

/// The position a stored summary is as of, read without decoding the summary (it is the
/// record's first field).
fn through_of(bytes: &[u8]) -> Option<Seq> {
    match bytes.split_first() {
        Some((&crate::records::RECORD_FORMAT, body)) => postcard::take_from_bytes::<Seq>(body)
            .ok()
            .map(|(through, _)| through),
        _ => None,
    }
}

/// Decodes a stored summary only if the record is exactly one `Stored<T>`: postcard is not
/// self-describing, so bytes left over mean the summary was written in another shape.
fn decoded<T: DeserializeOwned>(bytes: &[u8]) -> Option<(Seq, T)> {
    match bytes.split_first() {
        Some((&crate::records::RECORD_FORMAT, body)) => {
            match postcard::take_from_bytes::<Stored<T>>(body) {
                Ok((stored, [])) => Some((stored.through, stored.summary)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Writes the summaries a batch of derived history carries (inside its transaction).
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
            table.insert(item.plan_id.as_u128(), summary.0.as_slice())?;
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
    /// Every plan with its stored summary (`None` when missing or no longer decodable), in
    /// one read transaction, oldest plan first.
    pub fn plans_with_summaries<T: DeserializeOwned>(&self) -> Result<Vec<PlanWithSummary<T>>> {
        self.read(|txn| {
            let plans = txn.open_table(crate::store::PLANS_TABLE)?;
            let summaries = txn.open_table(SUMMARIES)?;
            let mut out = Vec::new();
            for entry in plans.iter()? {
                let (key, value) = entry?;
                let id = PlanId::from_u128(key.value());
                let record = crate::store::decode_or_corrupt("plans", id, value.value())?;
                let summary = summaries.get(key.value())?.and_then(|v| decoded(v.value()));
                out.push((id, record, summary));
            }
            Ok(out)
        })
    }

    /// A plan's stored summary and the history it does not include yet, read together: what
    /// advancing the summary needs.
    pub fn summary_state<T: DeserializeOwned>(&self, plan: PlanId) -> Result<SummaryState<T>> {
        self.read(|txn| {
            let key = plan.as_u128();
            let summary: Option<(Seq, T)> = txn
                .open_table(SUMMARIES)?
                .get(key)?
                .and_then(|v| decoded(v.value()));
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
                .and_then(|v| through_of(v.value()))
                .is_some_and(|stored| stored >= through);
            if newer
                || txn
                    .open_table(crate::store::PLANS_TABLE)?
                    .get(plan.as_u128())?
                    .is_none()
            {
                return Ok(false);
            }
            table.insert(plan.as_u128(), summary.0.as_slice())?;
            Ok(true)
        })
    }
}
