//! Each plan's pipeline summary, kept where its history is stored: the writer's history flush
//! ([`summarize_pending`] for each plan in it), a room's catch-up after a crash, a plan's
//! creation and `rebuild-history`. A plan without one (a file from before summaries, a summary
//! that no longer decodes) gets one computed once: at start-up ([`fill_missing`]) or when it is
//! first listed (`http::pipeline`), and stored.

use std::sync::Arc;

use chrono::NaiveDate;
use mapline_plan::Plan;
use mapline_plan::summary::{
    ActivitySide, HistoryFacts, Observation, PlanSummary, SUMMARY_VERSION, summarize,
};
use mapline_store::{
    Author, DerivedHistory, DocRef, EncodedSummary, HistoryEntry, PlanId, PlanRecord, Seq, Side,
    Store, StoreError,
};

use crate::App;

/// Who stored an entry, as the summary counts activity.
fn side_of(author: Author) -> ActivitySide {
    match author {
        Author::Share {
            side: Side::Buyer, ..
        } => ActivitySide::Buyer,
        Author::Share {
            side: Side::Seller, ..
        } => ActivitySide::Seller,
        Author::Member {
            side: Side::Buyer, ..
        } => ActivitySide::Buyer,
        Author::Member {
            side: Side::Seller, ..
        } => ActivitySide::Seller,
        Author::Admin | Author::System => ActivitySide::Other,
    }
}

/// One stored history entry as the summary takes it in.
pub fn observation(entry: &HistoryEntry) -> Observation {
    Observation {
        at_ms: entry.received_at_ms,
        side: side_of(entry.author),
        // A move that lost to a concurrent one never moved the plan's date.
        slips: entry
            .slips
            .iter()
            .filter(|s| s.kept)
            .map(|s| s.days)
            .collect(),
    }
}

/// The go-live a plan was created with, from its record.
fn first_go_live(record: Option<&PlanRecord>) -> Option<NaiveDate> {
    record.and_then(|r| mapline_plan::parse_date(&r.go_live))
}

/// The summary of a plan whose whole history is `entries` (a plan's creation, a rebuild).
pub fn summary_of_history<'a>(
    plan: &Plan,
    record: Option<&PlanRecord>,
    entries: impl IntoIterator<Item = &'a HistoryEntry>,
    through: Seq,
) -> EncodedSummary {
    let mut facts = HistoryFacts::default();
    for entry in entries {
        facts.observe(&observation(entry));
    }
    EncodedSummary::new(
        SUMMARY_VERSION,
        through,
        &summarize(plan, first_go_live(record), facts),
    )
}

/// The plan's summary once `pending` (history derived but not stored yet) is stored with it:
/// the stored summary advanced by the history stored since and by `pending`'s entries, over
/// `plan()`, the plan as of `pending.through` — projected only when that history touched what a
/// summary reads (or there is no summary yet). Blocks on the store.
pub fn advance(
    store: &Store,
    plan: impl FnOnce() -> Plan,
    pending: &DerivedHistory,
) -> Result<EncodedSummary, StoreError> {
    let state = store.summary_state::<PlanSummary>(pending.plan_id, SUMMARY_VERSION)?;
    let (mut through, previous) = match state.summary {
        Some((through, summary)) => (through, Some(summary)),
        None => (0, None),
    };
    let mut facts = previous
        .as_ref()
        .map(|s| s.facts.clone())
        .unwrap_or_default();
    let mut touched = false;
    let mut observe = |entry: &HistoryEntry, facts: &mut HistoryFacts| {
        facts.observe(&observation(entry));
        touched |= entry
            .changes
            .iter()
            .any(|c| mapline_plan::summary::summary_reads(&c.entity, c.field.as_deref()));
    };
    for (seq, entry) in &state.entries_after {
        observe(entry, &mut facts);
        through = through.max(*seq);
    }
    through = through.max(state.derived_through);
    for (seq, entry) in &pending.entries {
        if *seq > through {
            observe(entry, &mut facts);
        }
    }
    let through = through.max(pending.through);
    let summary = match previous {
        Some(previous) if !touched => PlanSummary { facts, ..previous },
        previous => {
            let first = previous
                .and_then(|s| s.first_go_live)
                .as_deref()
                .and_then(mapline_plan::parse_date)
                .or_else(|| first_go_live(state.record.as_ref()));
            summarize(&plan(), first, facts)
        }
    };
    Ok(EncodedSummary::new(SUMMARY_VERSION, through, &summary))
}

/// Sets the summary of history about to be stored, from the plan as its room holds it. The
/// history is stored either way: a summary that cannot be computed now is advanced from the
/// stored history next time. History without entries (updates that changed nothing a summary
/// counts) leaves the stored summary alone: nothing in it would change, and not rewriting it
/// keeps the flush's page writes down.
pub(crate) fn summarize_pending(
    store: &Store,
    plan: impl FnOnce() -> Plan,
    pending: &mut DerivedHistory,
) {
    pending.summary = None;
    if pending.entries.is_empty() {
        // (A plan without a summary gets one at start-up or when it is first listed.)
        return;
    }
    match advance(store, plan, pending) {
        Ok(summary) => pending.summary = Some(summary),
        Err(error) => {
            tracing::warn!(plan_id = %pending.plan_id, %error, "cannot advance the plan's summary now");
        }
    }
}

/// Computes and stores the summary of a plan that has none: from its stored history and its
/// projection (the room's when loaded, else the store's). Blocks on the store.
pub(crate) fn fill_one(
    store: &Store,
    plan_id: PlanId,
    loaded: Option<(Plan, Seq)>,
) -> Result<Option<PlanSummary>, StoreError> {
    let state = store.summary_state::<PlanSummary>(plan_id, SUMMARY_VERSION)?;
    if let Some((_, summary)) = state.summary {
        return Ok(Some(summary));
    }
    let Some(record) = state.record else {
        return Ok(None);
    };
    // History entries are stored only up to the derived position; a plan in memory may be
    // ahead of it, and its next history flush advances the summary from there.
    let plan = match loaded {
        Some((plan, _)) => plan,
        None => crate::history::project_stored(store, plan_id)?,
    };
    let mut facts = HistoryFacts::default();
    for (_, entry) in &state.entries_after {
        facts.observe(&observation(entry));
    }
    let summary = summarize(&plan, first_go_live(Some(&record)), facts);
    store.fill_summary(
        plan_id,
        state.derived_through,
        &EncodedSummary::new(SUMMARY_VERSION, state.derived_through, &summary),
    )?;
    Ok(Some(summary))
}

/// Computes the summaries plans lack (at start-up), one plan at a time off the runtime.
pub(crate) async fn fill_missing(app: Arc<App>) {
    let store = app.store.clone();
    let missing = match tokio::task::spawn_blocking(move || {
        store
            .plans_with_summaries::<PlanSummary>(SUMMARY_VERSION)
            .map(|plans| {
                plans
                    .into_iter()
                    .filter(|(_, _, s)| s.is_none())
                    .map(|(id, _, _)| id)
                    .collect::<Vec<_>>()
            })
    })
    .await
    {
        Ok(Ok(missing)) => missing,
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot list plans without a summary");
            return;
        }
        Err(_) => return,
    };
    if !missing.is_empty() {
        tracing::info!(plans = missing.len(), "computing the summaries plans lack");
    }
    for plan_id in missing {
        let loaded = app
            .rooms
            .loaded(DocRef::plan(plan_id))
            .map(|room| room.projection());
        let store = app.store.clone();
        match tokio::task::spawn_blocking(move || fill_one(&store, plan_id, loaded)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::error!(plan_id = %plan_id, %error, "cannot compute the plan's summary")
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapline_store::{GENESIS, SlipRecord};

    fn slip_entry(side: Side, at: i64, days: i64) -> HistoryEntry {
        HistoryEntry {
            author: Author::Share {
                id: PlanId::from_u128(9),
                side,
            },
            client_ids: vec![3],
            received_at_ms: at,
            changes: vec![],
            slips: vec![SlipRecord {
                milestone_id: Some("ms-kickoff".into()),
                title: None,
                from: "2027-01-01".into(),
                to: Some("2027-01-08".into()),
                days: Some(days),
                reason: None,
                kept: true,
            }],
            update_sha256: GENESIS,
            prev_sha256: GENESIS,
        }
    }

    fn history(plan: PlanId, entries: Vec<(Seq, HistoryEntry)>, through: Seq) -> DerivedHistory {
        DerivedHistory {
            plan_id: plan,
            entries,
            through,
            summary: None,
        }
    }

    fn stored(store: &Store, plan: PlanId) -> (Seq, PlanSummary) {
        store
            .summary_state::<PlanSummary>(plan, SUMMARY_VERSION)
            .unwrap()
            .summary
            .unwrap()
    }

    #[test]
    fn a_summary_advances_past_history_stored_without_it_and_never_counts_an_entry_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.redb")).unwrap();
        let new_plan =
            mapline_plan::NewPlan::parse("Rollout", "Northwind", "Mapline", "2027-04-01")
                .unwrap()
                .with_template("mid-market")
                .unwrap();
        let id = PlanId::from_u128(1);
        let first = mapline_plan::new_plan_update(&new_plan, 5);
        crate::plans::create_plan(&store, id, &new_plan, first, 1_000).unwrap();
        // Created with its summary, as of the creation.
        let (through, created) = stored(&store, id);
        assert_eq!(through, 1);
        assert_eq!(created.title.as_deref(), Some("Rollout"));
        assert_eq!(created.first_go_live.as_deref(), Some("2027-04-01"));
        assert_eq!(created.facts.first_ms, Some(1_000));

        // History stored without a summary (its computation failed): the next one picks it up.
        let seller = slip_entry(Side::Seller, 2_000, 7);
        store
            .commit_history(&[history(id, vec![(2, seller.clone())], 2)])
            .unwrap();
        let plan = crate::history::project_stored(&store, id).unwrap();
        let buyer = slip_entry(Side::Buyer, 3_000, 3);
        // The pending history repeats position 2 (stored already): counted once.
        let mut pending = history(id, vec![(2, seller), (3, buyer)], 4);
        summarize_pending(&store, || plan.clone(), &mut pending);
        store.commit_history(&[pending]).unwrap();
        let (through, advanced) = stored(&store, id);
        assert_eq!(through, 4);
        let sides: Vec<_> = advanced.facts.slips.iter().map(|s| s.side).collect();
        assert_eq!(sides, [ActivitySide::Seller, ActivitySide::Buyer]);
        assert_eq!(advanced.facts.last_buyer_ms, Some(3_000));
        assert_eq!(advanced.facts.last_seller_ms, Some(2_000));
        assert_eq!(advanced.first_go_live, created.first_go_live);

        // A rebuild derives the same facts from the log alone (its own entries here: the
        // log holds only the creation, so its summary has no slips) and replaces the summary.
        crate::history::rebuild_plan(&store, id, true).unwrap();
        let (through, rebuilt) = stored(&store, id);
        assert_eq!((through, rebuilt.facts.slips.len()), (1, 0));
    }

    #[test]
    fn a_plan_without_a_summary_gets_one_from_its_stored_history_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.redb")).unwrap();
        let new_plan =
            mapline_plan::NewPlan::parse("Rollout", "Northwind", "Mapline", "2027-04-01").unwrap();
        let id = PlanId::from_u128(1);
        crate::plans::create_plan(
            &store,
            id,
            &new_plan,
            mapline_plan::new_plan_update(&new_plan, 5),
            1_000,
        )
        .unwrap();
        store
            .commit_history(&[history(id, vec![(2, slip_entry(Side::Buyer, 2_000, 7))], 2)])
            .unwrap();
        // As a file from before summaries: none stored.
        store
            .replace_history(&history(id, store.all_history(id).unwrap(), 2))
            .unwrap();
        assert!(
            store
                .summary_state::<PlanSummary>(id, SUMMARY_VERSION)
                .unwrap()
                .summary
                .is_none()
        );
        let filled = fill_one(&store, id, None).unwrap().unwrap();
        assert_eq!(filled.facts.slips.len(), 1);
        assert_eq!(filled.facts.last_buyer_ms, Some(2_000));
        assert_eq!(stored(&store, id), (2, filled));
        assert!(
            fill_one(&store, PlanId::from_u128(2), None)
                .unwrap()
                .is_none()
        );
    }
}
