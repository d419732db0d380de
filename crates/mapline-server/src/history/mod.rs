//! The derived history (change audit and slips) as the store keeps it, and the pieces shared by
//! the live rooms, the catch-up after a crash and `mapline rebuild-history`: all of them turn a
//! stored update plus the document before it into the same [`HistoryEntry`], through the same
//! [`HistoryTracker`], which is why a rebuild reproduces the stored records exactly.

pub mod summaries;
pub mod verify;

use mapline_plan::{ChangeKind as PlanChangeKind, Derivation, HistoryTracker, Plan, project_doc};
use mapline_store::{
    ChangeKind, ChangeRecord, ConflictRecord, DerivedHistory, GENESIS, HistoryEntry, LogBound,
    PlanId, Seq, SlipRecord, Store, StoreError, UpdateRecord, digest,
};
use yrs::updates::decoder::Decode;
use yrs::{Doc, Transact, Update};

/// The running end of a plan's history chain: the SHA-256 of its last entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    head: [u8; 32],
}

impl Chain {
    /// The chain of a plan without history yet.
    pub fn start() -> Self {
        Self { head: GENESIS }
    }

    /// The chain continuing after a stored entry with this digest.
    pub fn after(head: [u8; 32]) -> Self {
        Self { head }
    }

    /// Commits an entry to its update and to the previous entry, and advances the chain.
    fn seal(&mut self, mut entry: HistoryEntry, record: &UpdateRecord) -> HistoryEntry {
        entry.update_sha256 = digest(record);
        entry.prev_sha256 = self.head;
        self.head = digest(&entry);
        entry
    }
}

/// The history entry of one stored update, chained after the plan's previous entry, or `None`
/// if it changed nothing (the chain then stays where it was).
pub fn entry(
    record: &UpdateRecord,
    derivation: Derivation,
    chain: &mut Chain,
) -> Option<HistoryEntry> {
    if derivation.is_empty() {
        return None;
    }
    let unsealed = HistoryEntry {
        author: record.author,
        client_ids: record.client_ids.clone(),
        received_at_ms: record.received_at_ms,
        changes: derivation
            .changes
            .into_iter()
            .map(|c| ChangeRecord {
                entity: c.entity.to_owned(),
                entity_id: c.entity_id,
                field: c.field,
                kind: match c.kind {
                    PlanChangeKind::Created => ChangeKind::Created,
                    PlanChangeKind::Updated => ChangeKind::Updated,
                    PlanChangeKind::Deleted => ChangeKind::Deleted,
                    PlanChangeKind::Conflict => ChangeKind::Conflict,
                },
                old: c.old.map(|v| v.to_string()),
                new: c.new.map(|v| v.to_string()),
                conflict: c.conflict.map(|c| ConflictRecord {
                    kept_client: c.kept_client,
                    lost_client: c.lost_client,
                    lost_here: c.lost_here,
                }),
            })
            .collect(),
        slips: derivation
            .slips
            .into_iter()
            .map(|s| SlipRecord {
                milestone_id: s.milestone_id,
                title: s.title,
                from: s.from,
                to: s.to,
                days: s.days,
                reason: s.reason,
                kept: s.kept,
            })
            .collect(),
        update_sha256: GENESIS,
        prev_sha256: GENESIS,
    };
    Some(chain.seal(unsealed, record))
}

/// Applies one stored update through the tracker and returns its history entry. An update that
/// does not decode or apply is logged and changes nothing — the same way every time.
pub fn apply_stored(
    plan_id: PlanId,
    doc: &Doc,
    tracker: &mut HistoryTracker,
    seq: Seq,
    record: &UpdateRecord,
    chain: &mut Chain,
) -> Option<HistoryEntry> {
    let update = match Update::decode_v1(&record.update) {
        Ok(update) => update,
        Err(error) => {
            tracing::error!(plan_id = %plan_id, seq, %error, "stored update does not decode; skipped");
            return None;
        }
    };
    let (derivation, error) = tracker.apply(doc, update, &record.update);
    if let Some(error) = error {
        tracing::error!(plan_id = %plan_id, seq, %error, "stored update does not apply fully");
    }
    entry(record, derivation, chain)
}

/// Applies stored updates (or a snapshot) to a document in order, without deriving anything.
/// One transaction per update: yrs's cost per update grows with its transaction, so a long log
/// in one transaction is quadratic. An update that does not apply is logged and skipped, never
/// fatal — the same way everywhere a document is rebuilt.
pub fn replay<'a>(plan_id: PlanId, doc: &Doc, updates: impl IntoIterator<Item = (Seq, &'a [u8])>) {
    for (seq, bytes) in updates {
        let applied = Update::decode_v1(bytes)
            .map_err(|e| e.to_string())
            .and_then(|u| {
                doc.transact_mut()
                    .apply_update(u)
                    .map_err(|e| e.to_string())
            });
        if let Err(error) = applied {
            tracing::error!(plan_id = %plan_id, seq, error, "stored update does not apply; skipped");
        }
    }
}

/// Derives a plan's whole history again from its log, from the first update, with the plan's
/// summary as of its end.
pub fn rebuild(store: &Store, plan_id: PlanId) -> Result<DerivedHistory, StoreError> {
    let log = store.log(plan_id)?;
    let record = store.plan(plan_id)?;
    Ok(derive_log_summarized(
        plan_id,
        record.as_ref(),
        log.iter().map(|(seq, record)| (*seq, record)),
    ))
}

/// [`derive_log`], with the summary of the plan the whole log makes (a plan's creation, a
/// rebuild): stored with the history, in its transaction.
pub fn derive_log_summarized<'a>(
    plan_id: PlanId,
    record: Option<&mapline_store::PlanRecord>,
    log: impl IntoIterator<Item = (Seq, &'a UpdateRecord)>,
) -> DerivedHistory {
    let (mut derived, doc) = derive(plan_id, log);
    derived.summary = Some(crate::history::summaries::summary_of_history(
        &project_doc(&doc),
        record,
        derived.entries.iter().map(|(_, e)| e),
        derived.through,
    ));
    derived
}

/// Derives the history of a log from its first update (a new plan's, or a whole plan's).
pub fn derive_log<'a>(
    plan_id: PlanId,
    log: impl IntoIterator<Item = (Seq, &'a UpdateRecord)>,
) -> DerivedHistory {
    derive(plan_id, log).0
}

/// [`derive_log`], and the document the log makes.
fn derive<'a>(
    plan_id: PlanId,
    log: impl IntoIterator<Item = (Seq, &'a UpdateRecord)>,
) -> (DerivedHistory, Doc) {
    let doc = Doc::new();
    let mut tracker = HistoryTracker::attach(&doc);
    let mut chain = Chain::start();
    let mut entries = Vec::new();
    let mut through = 0;
    for (seq, record) in log {
        if let Some(entry) = apply_stored(plan_id, &doc, &mut tracker, seq, record, &mut chain) {
            entries.push((seq, entry));
        }
        through = seq;
    }
    let derived = DerivedHistory {
        plan_id,
        entries,
        through,
        summary: None,
    };
    (derived, doc)
}

/// The plan as it was at a point of its log: the projection and the last position included
/// (`None` if the bound is before the plan's first update).
pub fn plan_at(
    store: &Store,
    plan_id: PlanId,
    bound: LogBound,
) -> Result<Option<(Plan, Seq, i64)>, StoreError> {
    let prefix = store.log_prefix(plan_id, bound)?;
    let Some((last_seq, last)) = prefix.last() else {
        return Ok(None);
    };
    let (last_seq, last_at) = (*last_seq, last.received_at_ms);
    let doc = Doc::new();
    replay(
        plan_id,
        &doc,
        prefix.iter().map(|(seq, r)| (*seq, r.update.as_slice())),
    );
    Ok(Some((project_doc(&doc), last_seq, last_at)))
}

/// The plan's current projection straight from the store (snapshot plus tail), for plans that
/// are not in memory.
pub fn project_stored(store: &Store, plan_id: PlanId) -> Result<Plan, StoreError> {
    let doc = stored_doc(store, mapline_store::DocRef::plan(plan_id))?
        .ok_or(StoreError::NoSuchPlan(plan_id))?;
    Ok(project_doc(&doc))
}

/// One of a plan's documents as stored (snapshot plus tail), or `None` if the plan does not
/// exist.
pub fn stored_doc(
    store: &Store,
    doc_ref: mapline_store::DocRef,
) -> Result<Option<Doc>, StoreError> {
    let Some(load) = store.load_document(doc_ref)? else {
        return Ok(None);
    };
    let doc = Doc::new();
    let snapshot = load
        .snapshot
        .iter()
        .map(|s| (s.covers_seq, s.state.as_slice()));
    let tail = load.tail.iter().map(|(seq, r)| (*seq, r.update.as_slice()));
    replay(doc_ref.plan, &doc, snapshot.chain(tail));
    Ok(Some(doc))
}

/// How a plan's stored history compares with the history derived again from its log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildReport {
    pub plan_id: PlanId,
    /// Log positions covered by the stored and by the rebuilt history.
    pub stored_through: Seq,
    pub rebuilt_through: Seq,
    /// History entries the log yields.
    pub entries: usize,
    /// Positions with an entry in the rebuild but none stored (e.g. lost in a crash and not yet
    /// caught up).
    pub missing: Vec<Seq>,
    /// Positions with a stored entry the rebuild does not produce.
    pub extra: Vec<Seq>,
    /// Positions whose stored entry differs from the rebuilt one.
    pub differing: Vec<Seq>,
}

impl RebuildReport {
    /// Whether the stored history is exactly what the log yields.
    pub fn identical(&self) -> bool {
        self.stored_through == self.rebuilt_through
            && self.missing.is_empty()
            && self.extra.is_empty()
            && self.differing.is_empty()
    }
}

/// Derives a plan's history again from its log and compares it with what is stored; with
/// `write`, replaces the stored history with the rebuilt one.
pub fn rebuild_plan(
    store: &Store,
    plan_id: PlanId,
    write: bool,
) -> Result<RebuildReport, StoreError> {
    let rebuilt = rebuild(store, plan_id)?;
    let stored: std::collections::BTreeMap<Seq, mapline_store::HistoryEntry> =
        store.all_history(plan_id)?.into_iter().collect();
    let mut report = RebuildReport {
        plan_id,
        stored_through: store.derived_through(plan_id)?,
        rebuilt_through: rebuilt.through,
        entries: rebuilt.entries.len(),
        ..RebuildReport::default()
    };
    for (seq, entry) in &rebuilt.entries {
        match stored.get(seq) {
            None => report.missing.push(*seq),
            Some(found) if found != entry => report.differing.push(*seq),
            Some(_) => {}
        }
    }
    let produced: std::collections::BTreeSet<Seq> =
        rebuilt.entries.iter().map(|(s, _)| *s).collect();
    report.extra = stored
        .keys()
        .filter(|s| !produced.contains(s))
        .copied()
        .collect();
    if write {
        store.replace_history(&rebuilt)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::sync::rooms::Rooms;
    use mapline_plan::edit::{MilestoneDraft, add_milestone, move_due, move_go_live};
    use mapline_plan::model::MilestoneSide;
    use mapline_store::{Author, NewUpdate, PlanRecord, Side};
    use std::sync::Arc;
    use yrs::{ReadTxn, TransactionMut};

    fn day(text: &str) -> chrono::NaiveDate {
        mapline_plan::parse_date(text).unwrap()
    }

    /// A store holding a plan whose last three updates were committed but whose history was
    /// never written: the state a crash between the update commit and the derivation leaves.
    fn store_after_crash() -> (tempfile::TempDir, Arc<Store>, PlanId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("m.redb")).unwrap());
        let plan =
            mapline_plan::NewPlan::parse("Rollout", "Northwind", "Mapline", "2027-04-01").unwrap();
        let first = mapline_plan::new_plan_update(&plan, 1);
        let id = PlanId::from_u128(42);
        let record = |author, update: Vec<u8>| UpdateRecord {
            author,
            client_ids: vec![7],
            received_at_ms: 1_000,
            update,
        };
        let record_for_plan = PlanRecord {
            title: "Rollout".into(),
            buyer_org: "Northwind".into(),
            seller_org: "Mapline".into(),
            go_live: "2027-04-01".into(),
            created_at_ms: 0,
        };
        store
            .create_plan(
                id,
                &record_for_plan,
                &record(Author::System, first.clone()),
                &[],
                // No history: the state a crash before any derivation leaves.
                &mapline_store::DerivedHistory::none(id),
            )
            .unwrap();
        let client = yrs::Doc::with_client_id(7);
        client
            .transact_mut()
            .apply_update(Update::decode_v1(&first).unwrap())
            .unwrap();
        let buyer = Author::Share {
            id: PlanId::from_u128(5),
            side: Side::Buyer,
        };
        let edit = |write: &dyn Fn(&mut TransactionMut)| {
            let before = client.transact().state_vector();
            write(&mut client.transact_mut());
            record(buyer, client.transact().encode_diff_v1(&before))
        };
        let updates = vec![
            edit(&|txn| {
                let draft = MilestoneDraft {
                    title: "Security review",
                    workstream: "security_compliance",
                    side: MilestoneSide::Buyer,
                    owner: Some("Lena"),
                    due: Some(day("2027-02-01")),
                    depends_on: vec![],
                    order: None,
                };
                add_milestone(txn, "ms-sec", &draft);
            }),
            edit(&|txn| {
                move_due(txn, "ms-sec", Some(day("2027-02-15")), "Questionnaire late").unwrap()
            }),
            edit(&|txn| move_go_live(txn, day("2027-04-15"), "Board moved it")),
        ];
        let batch: Vec<_> = updates
            .into_iter()
            .map(|record| NewUpdate {
                plan_id: id,
                kind: mapline_store::DocKind::Plan,
                record,
            })
            .collect();
        store.commit_batch(&batch, &[], &[]).unwrap();
        (dir, store, id)
    }

    #[tokio::test]
    async fn history_lost_in_a_crash_is_derived_on_load_exactly_as_a_rebuild_would() {
        let (_dir, store, plan) = store_after_crash();
        let before = rebuild_plan(&store, plan, false).unwrap();
        assert!(!before.identical());
        assert_eq!(before.missing, [1, 2, 3, 4]);
        assert_eq!(store.plans_behind().unwrap(), [plan]);

        let rooms = Rooms::new(
            store.clone(),
            Arc::new(Metrics::default()),
            mapline_plan::admission::PlanLimits::default(),
        );
        let room = rooms.open(mapline_store::DocRef::plan(plan)).await.unwrap();
        let after = rebuild_plan(&store, plan, false).unwrap();
        assert!(after.identical(), "{after:?}");
        assert_eq!(store.plans_behind().unwrap(), Vec::<PlanId>::new());

        let slips: Vec<_> = store
            .slip_entries(plan)
            .unwrap()
            .into_iter()
            .flat_map(|(_, e)| e.slips)
            .collect();
        assert_eq!(slips.len(), 2);
        assert_eq!(slips[0].reason.as_deref(), Some("Questionnaire late"));
        assert_eq!(slips[0].days, Some(14));
        assert_eq!(slips[1].milestone_id, None);
        assert_eq!(slips[1].days, Some(14));
        assert_eq!(room.projection().0.meta.go_live, Some(day("2027-04-15")));
    }

    #[tokio::test]
    async fn the_plan_at_a_log_position_is_the_state_then() {
        let (_dir, store, plan) = store_after_crash();
        let due = |bound| {
            let (plan, seq, _) = plan_at(&store, plan, bound).unwrap().unwrap();
            (plan.milestone("ms-sec").and_then(|m| m.due), seq)
        };
        assert_eq!(due(LogBound::Seq(1)), (None, 1));
        assert_eq!(due(LogBound::Seq(2)), (Some(day("2027-02-01")), 2));
        assert_eq!(due(LogBound::Seq(3)), (Some(day("2027-02-15")), 3));
        assert!(
            plan_at(&store, plan, LogBound::ReceivedBy(999))
                .unwrap()
                .is_none()
        );
    }
}
