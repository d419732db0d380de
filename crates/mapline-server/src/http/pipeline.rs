//! The pipeline: every plan a principal may see, with its health in words, from the summaries
//! stored with the history (`mapline_plan::summary`), never by projecting every plan.
//!
//! A summary is advanced wherever history is stored: the writer's history flush
//! ([`summarize_pending`] for each plan in it), a room's catch-up after a crash, a plan's
//! creation and `rebuild-history`. A plan without one (a file from before summaries, a summary
//! that no longer decodes) gets one computed once: at start-up ([`fill_missing`]) or when it is
//! first listed, and stored.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use mapline_plan::Plan;
use mapline_plan::summary::{
    ActivitySide, HistoryFacts, Observation, PlanSummary, SUMMARY_VERSION, summarize,
};
use mapline_store::{
    Author, DerivedHistory, DocRef, EncodedSummary, HistoryEntry, PlanId, PlanRecord, Seq, Side,
    Store, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::App;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::{authenticate, query};
use crate::http::plan_api::time;
use crate::identity::auth::Principal;

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
fn fill_one(
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

/// Which plans a principal's pipeline lists: the admin token every plan (it owns none, so
/// `mine` lists nothing); a manager or an admin member every plan, or with `mine` the plans they
/// own or are a seller member of (`own`); a rep only those. A share link is refused before this.
pub(crate) fn visible(
    principal: &Principal,
    plan: PlanId,
    mine: bool,
    own: &HashSet<PlanId>,
) -> bool {
    match principal {
        Principal::Admin => !mine,
        Principal::Share(_) => false,
        Principal::Member(m) if m.member.role.reads_every_plan() && !mine => true,
        Principal::Member(_) => own.contains(&plan),
    }
}

/// Who may ask for the pipeline at all: the admin token and members (a rep sees their own
/// plans); never a share link.
fn may_list(principal: &Principal) -> Result<(), ApiError> {
    match principal {
        Principal::Admin | Principal::Member(_) => Ok(()),
        Principal::Share(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "members_only",
            "the pipeline is for the seller team: sign in, or use the admin credential",
        )),
    }
}

/// The query of `GET /api/plans` and `GET /api/plans.csv`.
#[derive(Deserialize)]
pub struct ListQuery {
    /// `YYYY-MM-DD`; the server's date (UTC) if absent.
    today: Option<String>,
    /// `1`: only the caller's own plans.
    mine: Option<String>,
}

/// One row of the pipeline.
struct Row {
    id: PlanId,
    record: PlanRecord,
    summary: PlanSummary,
    owner: Option<OwnerView>,
}

async fn rows(
    app: &Arc<App>,
    headers: &HeaderMap,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<(Vec<Row>, NaiveDate), ApiError> {
    let params = query(params)?;
    let today = match params.today.as_deref() {
        None => Utc::now().date_naive(),
        Some(text) => mapline_plan::parse_date(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("`today` must be YYYY-MM-DD, got {text:?}"),
            )
        })?,
    };
    let mine = match params.mine.as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("`mine` must be 1 or 0, got {other:?}"),
            ));
        }
    };
    let principal = authenticate(app, headers, None).await?;
    may_list(&principal)?;
    let member = principal.member().map(|m| m.member.id);
    let (plans, own, owners) = blocking(app, move |store| {
        let own: HashSet<PlanId> = match member {
            Some(member) => store.plans_of_member(member)?.into_iter().collect(),
            None => HashSet::new(),
        };
        Ok::<_, mapline_store::StoreError>((
            store.plans_with_summaries::<PlanSummary>(SUMMARY_VERSION)?,
            own,
            store.plan_owners()?,
        ))
    })
    .await?;
    let mut out = Vec::with_capacity(plans.len());
    for (id, record, summary) in plans {
        if !visible(&principal, id, mine, &own) {
            continue;
        }
        let summary = match summary {
            Some((_, summary)) => summary,
            None => {
                let loaded = app.rooms.loaded(DocRef::plan(id)).map(|r| r.projection());
                match blocking(app, move |store| fill_one(store, id, loaded)).await? {
                    Some(summary) => summary,
                    // Deleted meanwhile.
                    None => continue,
                }
            }
        };
        let owner = owners.get(&id).map(|m| OwnerView {
            id: m.id.to_string(),
            name: m.name.clone(),
        });
        out.push(Row {
            id,
            record,
            summary,
            owner,
        });
    }
    Ok((out, today))
}

/// A plan's owner as a row shows it.
#[derive(Serialize, Clone)]
struct OwnerView {
    id: String,
    name: String,
}

#[derive(Serialize)]
struct SlipsView {
    buyer: usize,
    seller: usize,
    #[serde(rename = "last14Days")]
    last_14_days: usize,
}

/// The title of a plan whose current title is empty or cleared (as the web client shows it).
pub(crate) const UNTITLED: &str = "Untitled plan";

/// A row as the API shows it (the contract's Summary; `createdAt` kept from the earlier
/// listing). Serialized straight from this struct: with 10,000 rows, building a JSON tree
/// first cost as much as everything else.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RowView<'a> {
    id: PlanId,
    title: &'a str,
    buyer_org: &'a str,
    seller_org: &'a str,
    go_live: Option<&'a str>,
    created_at: Option<String>,
    owner: Option<OwnerView>,
    health: &'static str,
    health_words: String,
    overdue: usize,
    at_risk: usize,
    open_steps: usize,
    open_steps_without_buyer_owner: usize,
    go_live_drift_days: Option<i64>,
    slips: SlipsView,
    last_buyer_activity_at: Option<String>,
    last_seller_activity_at: Option<String>,
    buyer_quiet_days: Option<i64>,
}

fn row_view(row: &Row, today: NaiveDate) -> RowView<'_> {
    let view = row.summary.view(today);
    let s = &row.summary;
    RowView {
        id: row.id,
        // The plan's current title, as `GET /api/plans/{id}` shows it: a cleared title is
        // untitled, never the title the plan was created with.
        title: s.title.as_deref().unwrap_or(UNTITLED),
        buyer_org: s.buyer_org.as_deref().unwrap_or(&row.record.buyer_org),
        seller_org: s.seller_org.as_deref().unwrap_or(&row.record.seller_org),
        go_live: s.go_live.as_deref(),
        created_at: time(row.record.created_at_ms),
        owner: row.owner.clone(),
        health: view.health.as_str(),
        health_words: view.health_words,
        overdue: view.overdue,
        at_risk: view.at_risk,
        open_steps: view.open_steps,
        open_steps_without_buyer_owner: view.open_steps_without_buyer_owner,
        go_live_drift_days: view.go_live_drift_days,
        slips: SlipsView {
            buyer: view.slips.buyer,
            seller: view.slips.seller,
            last_14_days: view.slips.last_14_days,
        },
        last_buyer_activity_at: view.last_buyer_activity_ms.and_then(time),
        last_seller_activity_at: view.last_seller_activity_ms.and_then(time),
        buyer_quiet_days: view.buyer_quiet_days,
    }
}

#[derive(Serialize)]
struct Listing<'a> {
    plans: Vec<RowView<'a>>,
}

/// `GET /api/plans`: every plan the caller may see, with its health, from stored summaries.
#[utoipa::path(get, path = "/api/plans", tag = "plans", params(("today" = Option<String>, Query, description = "YYYY-MM-DD"), ("mine" = Option<String>, Query, description = "1: only the caller's own plans")), responses((status = 200, description = "`{ plans }`: every plan the caller may see, with its summary"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn list_plans(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (rows, today) = rows(&app, &headers, params).await?;
    // Evaluating and encoding 10,000 rows is CPU work: off the runtime.
    let body = tokio::task::spawn_blocking(move || {
        let plans = rows.iter().map(|row| row_view(row, today)).collect();
        serde_json::to_vec(&Listing { plans })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// The CSV columns, in order: the JSON fields, `slips` flattened.
const CSV_COLUMNS: &[&str] = &[
    "id",
    "title",
    "buyerOrg",
    "sellerOrg",
    "goLive",
    "owner",
    "health",
    "healthWords",
    "overdue",
    "atRisk",
    "openSteps",
    "openStepsWithoutBuyerOwner",
    "goLiveDriftDays",
    "slipsBuyer",
    "slipsSeller",
    "slipsLast14Days",
    "lastBuyerActivityAt",
    "lastSellerActivityAt",
    "buyerQuietDays",
];

fn csv_cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => mapline_plan::export::csv_text(s),
        other => other.to_string(),
    };
    mapline_plan::export::csv_field(&text)
}

/// The pipeline as CSV (RFC 4180, CRLF line ends, a header row).
fn csv(rows: &[Row], today: NaiveDate) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for row in rows {
        let json = serde_json::to_value(row_view(row, today)).unwrap_or(Value::Null);
        let cells: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|column| {
                let value = match *column {
                    "owner" => json["owner"]["name"].clone(),
                    "slipsBuyer" => json["slips"]["buyer"].clone(),
                    "slipsSeller" => json["slips"]["seller"].clone(),
                    "slipsLast14Days" => json["slips"]["last14Days"].clone(),
                    name => json[name].clone(),
                };
                csv_cell(&value)
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// `GET /api/plans.csv`: the pipeline's rows as CSV.
#[utoipa::path(get, path = "/api/plans.csv", tag = "plans", params(("today" = Option<String>, Query, description = "YYYY-MM-DD"), ("mine" = Option<String>, Query, description = "1: only the caller's own plans")), responses((status = 200, description = "The pipeline, one row per plan", content_type = "text/csv"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn list_plans_csv(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (rows, today) = rows(&app, &headers, params).await?;
    let body = tokio::task::spawn_blocking(move || csv(&rows, today))
        .await
        .map_err(ApiError::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"pipeline.csv\""),
            ),
        ],
        body,
    )
        .into_response())
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
