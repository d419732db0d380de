//! `mapline verify`: checks that what the store holds is whole and was not quietly rewritten.
//!
//! Per plan, in one read transaction:
//! - the update log numbers 1, 2, 3, … without a gap, and every record and update decodes;
//! - the history chain: every entry commits to the stored bytes of the previous entry and of the
//!   update it came from, so an edited, removed or inserted entry, or an edited update, breaks
//!   it at a named position;
//! - the history equals what the log derives (nothing missing, extra or different up to the
//!   derived position), and the slip index lists exactly the entries with slips;
//! - the snapshot holds the same document as the log up to the position it covers;
//! - the seller's internal document: its log has no gap and its snapshot matches its log.

use std::collections::{BTreeMap, BTreeSet};

use mapline_plan::RawPlan;
use mapline_store::{GENESIS, PlanAudit, PlanId, Seq, Store, StoreError, UpdateRecord};
use serde::Serialize;
use yrs::updates::decoder::Decode as _;
use yrs::{Doc, ReadTxn as _, Transact as _, Update};

use crate::history;

/// One thing found wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The table the bad record is in: `updates`, `history`, `slip_index`, `snapshots`,
    /// `internal_updates` or `internal_snapshots`.
    pub table: &'static str,
    /// The log position, for tables keyed by it.
    pub seq: Option<Seq>,
    /// A stable name for the kind of problem.
    pub kind: &'static str,
    pub detail: String,
}

/// The result for one plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanVerification {
    pub plan_id: PlanId,
    pub updates: usize,
    pub history_entries: usize,
    /// SHA-256 of the last stored history entry's bytes, from the same read as the checks (the
    /// head of the plan's audit export); `None` without history.
    #[serde(skip)]
    pub head: Option<[u8; 32]>,
    pub problems: Vec<Problem>,
}

fn problem(table: &'static str, seq: Option<Seq>, kind: &'static str, detail: String) -> Problem {
    Problem {
        table,
        seq,
        kind,
        detail,
    }
}

fn short(digest: &[u8; 32]) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Verifies one plan. Blocks on the store.
pub fn verify_plan(store: &Store, plan_id: PlanId) -> Result<PlanVerification, StoreError> {
    let audit = store.audit(plan_id)?;
    let mut problems = Vec::new();
    check_log("updates", &audit.log, &mut problems);
    check_chain(&audit, &mut problems);
    check_slip_index(&audit, &mut problems);
    check_derivation(plan_id, &audit, &mut problems);
    check_snapshot(
        plan_id,
        "snapshots",
        &audit.log,
        &audit.snapshot,
        &mut problems,
    );
    check_log("internal_updates", &audit.internal_log, &mut problems);
    check_snapshot(
        plan_id,
        "internal_snapshots",
        &audit.internal_log,
        &audit.internal_snapshot,
        &mut problems,
    );
    Ok(PlanVerification {
        plan_id,
        updates: audit.log.len(),
        history_entries: audit.history.len(),
        head: audit.history.last().map(|(_, _, digest)| *digest),
        problems,
    })
}

type Log = [(Seq, Option<UpdateRecord>, [u8; 32])];

fn check_log(table: &'static str, log: &Log, problems: &mut Vec<Problem>) {
    // Replayed as the server does, so an update that cannot integrate (stored before the server
    // admitted updates first) is named by its position.
    let doc = Doc::new();
    let unlimited = mapline_plan::admission::PlanLimits {
        entries_per_collection: usize::MAX,
        text_chars: usize::MAX,
    };
    let mut admission = mapline_plan::admission::Admission::new(unlimited, false);
    let mut expected = 1;
    for (seq, record, _) in log {
        if *seq != expected {
            problems.push(problem(
                table,
                Some(expected),
                "missing_update",
                format!("the log jumps from {} to {seq}", expected - 1),
            ));
        }
        expected = seq + 1;
        match record {
            None => problems.push(problem(
                table,
                Some(*seq),
                "undecodable",
                "the stored update record cannot be decoded".into(),
            )),
            Some(record) => match Update::decode_v1(&record.update) {
                Err(error) => problems.push(problem(
                    table,
                    Some(*seq),
                    "bad_update",
                    format!("the Yjs update does not decode: {error}"),
                )),
                Ok(update) => {
                    let admitted = admission.admit(&doc.transact(), &record.update);
                    let applied = doc.transact_mut().apply_update(update);
                    admission.settled(doc.transact().store().pending_update().is_some());
                    let refusal = match (admitted, applied) {
                        (Err(refusal), _) => Some(refusal.to_string()),
                        (Ok(()), Err(error)) => Some(error.to_string()),
                        (Ok(()), Ok(())) => None,
                    };
                    if let Some(refusal) = refusal {
                        problems.push(problem(
                            table,
                            Some(*seq),
                            "does_not_integrate",
                            format!("the Yjs update cannot be integrated: {refusal}"),
                        ));
                    }
                }
            },
        }
    }
}

fn check_chain(audit: &PlanAudit, problems: &mut Vec<Problem>) {
    let log_digests: BTreeMap<Seq, [u8; 32]> = audit
        .log
        .iter()
        .map(|(seq, _, digest)| (*seq, *digest))
        .collect();
    let mut previous: Option<(Seq, [u8; 32])> = None;
    for (seq, entry, digest) in &audit.history {
        if *seq > audit.derived_through {
            problems.push(problem(
                "history",
                Some(*seq),
                "past_derived",
                format!(
                    "an entry after the derived position {}",
                    audit.derived_through
                ),
            ));
        }
        let expected_prev = previous.map_or(GENESIS, |(_, d)| d);
        match entry {
            None => problems.push(problem(
                "history",
                Some(*seq),
                "undecodable",
                "the stored history entry cannot be decoded".into(),
            )),
            Some(entry) => {
                if entry.prev_sha256 != expected_prev {
                    let after = previous.map_or("the start of the chain".to_owned(), |(p, _)| {
                        format!("the entry at {p}")
                    });
                    problems.push(problem(
                        "history",
                        Some(*seq),
                        "chain_broken",
                        format!(
                            "does not follow {after}: it commits to {}…, that entry's hash is {}…",
                            short(&entry.prev_sha256),
                            short(&expected_prev)
                        ),
                    ));
                }
                match log_digests.get(seq) {
                    None => problems.push(problem(
                        "history",
                        Some(*seq),
                        "no_update",
                        "an entry for a log position that holds no update".into(),
                    )),
                    Some(update) if *update != entry.update_sha256 => problems.push(problem(
                        "updates",
                        Some(*seq),
                        "update_changed",
                        format!(
                            "the stored update ({}…) is not the one its history entry committed to ({}…)",
                            short(update),
                            short(&entry.update_sha256)
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
        previous = Some((*seq, *digest));
    }
}

fn check_slip_index(audit: &PlanAudit, problems: &mut Vec<Problem>) {
    let with_slips: BTreeSet<Seq> = audit
        .history
        .iter()
        .filter(|(_, entry, _)| entry.as_ref().is_some_and(|e| !e.slips.is_empty()))
        .map(|(seq, _, _)| *seq)
        .collect();
    let indexed: BTreeSet<Seq> = audit.slip_index.iter().copied().collect();
    for seq in with_slips.difference(&indexed) {
        problems.push(problem(
            "slip_index",
            Some(*seq),
            "slip_not_indexed",
            "an entry with slips is missing from the slip index".into(),
        ));
    }
    for seq in indexed.difference(&with_slips) {
        problems.push(problem(
            "slip_index",
            Some(*seq),
            "slip_index_stale",
            "the slip index names an entry without slips".into(),
        ));
    }
}

fn check_derivation(plan_id: PlanId, audit: &PlanAudit, problems: &mut Vec<Problem>) {
    let log = audit
        .log
        .iter()
        .filter(|(seq, _, _)| *seq <= audit.derived_through)
        .filter_map(|(seq, record, _)| record.as_ref().map(|r| (*seq, r)));
    let derived: BTreeMap<_, _> = history::derive_log(plan_id, log)
        .entries
        .into_iter()
        .collect();
    let stored: BTreeMap<_, _> = audit
        .history
        .iter()
        .filter(|(seq, _, _)| *seq <= audit.derived_through)
        .filter_map(|(seq, entry, _)| entry.as_ref().map(|e| (*seq, e)))
        .collect();
    for (seq, entry) in &derived {
        match stored.get(seq) {
            None if audit.history.iter().any(|(s, _, _)| s == seq) => {} // undecodable: reported
            None => problems.push(problem(
                "history",
                Some(*seq),
                "missing_entry",
                "the log derives an entry here that is not stored".into(),
            )),
            Some(stored) if *stored != entry => problems.push(problem(
                "history",
                Some(*seq),
                "differs_from_log",
                "the stored entry is not what the log derives".into(),
            )),
            Some(_) => {}
        }
    }
    for seq in stored.keys().filter(|seq| !derived.contains_key(seq)) {
        problems.push(problem(
            "history",
            Some(*seq),
            "extra_entry",
            "a stored entry the log does not derive".into(),
        ));
    }
}

fn check_snapshot(
    plan_id: PlanId,
    table: &'static str,
    log: &Log,
    snapshot: &Option<Option<mapline_store::Snapshot>>,
    problems: &mut Vec<Problem>,
) {
    let snapshot = match snapshot {
        None => return,
        Some(None) => {
            problems.push(problem(
                table,
                None,
                "undecodable",
                "the stored snapshot cannot be decoded".into(),
            ));
            return;
        }
        Some(Some(snapshot)) => snapshot,
    };
    let last = log.last().map_or(0, |(seq, _, _)| *seq);
    if snapshot.covers_seq > last {
        problems.push(problem(
            table,
            Some(snapshot.covers_seq),
            "snapshot_ahead",
            format!(
                "the snapshot covers position {} but the log ends at {last}",
                snapshot.covers_seq
            ),
        ));
        return;
    }
    let from_log = Doc::new();
    history::replay(
        plan_id,
        &from_log,
        log.iter()
            .filter(|(seq, _, _)| *seq <= snapshot.covers_seq)
            .filter_map(|(seq, record, _)| record.as_ref().map(|r| (*seq, r.update.as_slice()))),
    );
    let from_snapshot = Doc::new();
    let applied = Update::decode_v1(&snapshot.state)
        .map_err(|e| e.to_string())
        .and_then(|u| {
            from_snapshot
                .transact_mut()
                .apply_update(u)
                .map_err(|e| e.to_string())
        });
    if let Err(error) = applied {
        problems.push(problem(
            table,
            Some(snapshot.covers_seq),
            "bad_snapshot",
            format!("the snapshot's state does not apply: {error}"),
        ));
        return;
    }
    let (a, b) = (from_log.transact(), from_snapshot.transact());
    if a.state_vector() != b.state_vector() || RawPlan::read(&a) != RawPlan::read(&b) {
        problems.push(problem(
            table,
            Some(snapshot.covers_seq),
            "differs_from_log",
            format!(
                "the snapshot is not the document the log holds at position {}",
                snapshot.covers_seq
            ),
        ));
    }
}
