//! The pipeline: every plan a principal may see, with its health in words, from the summaries
//! stored with the history (`mapline_plan::summary`, kept by `history::summaries`), never by
//! projecting every plan.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use mapline_plan::summary::{PlanSummary, SUMMARY_VERSION};
use mapline_store::{DocRef, PlanId, PlanRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::App;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::{authenticate, query};
use crate::http::plan_api::time;
use crate::identity::auth::Principal;

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
                match blocking(app, move |store| {
                    crate::history::summaries::fill_one(store, id, loaded)
                })
                .await?
                {
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
