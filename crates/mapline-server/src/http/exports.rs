//! Plans outside the app: the calendar feed a buyer or seller subscribes to, the exports
//! (Markdown to forward, CSV of the milestones, JSON with slips and history) and the import of
//! an exported plan as a new plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use mapline_plan::calendar::{CalendarInput, calendar};
use mapline_plan::export::{MovedDate, markdown, milestones_csv};
use mapline_plan::{Health, Judgments, Plan};
use mapline_store::PlanId;
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::clock::now_ms;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::{
    Admin, ApiJson, PlanReader, authenticate, authorize_read, bearer, query,
};
use crate::http::plan_api::{SlipView, Who, all_slips, current_plan, history_page, plan_health};
use crate::http::plans;
use crate::identity::auth::{self, Principal};

#[derive(Deserialize)]
pub struct CalendarQuery {
    /// The link's calendar-feed token (`calendarUrl` of `/me`), or the admin credential:
    /// calendar apps subscribe to a URL and cannot send headers.
    #[serde(default)]
    token: Option<String>,
    /// Only this person's milestones (a stakeholder id or a name, case-insensitive).
    #[serde(default)]
    owner: Option<String>,
}

/// `GET /api/plans/{id}/calendar.ics?token=…[&owner=…]`: the plan's milestones and go-live as
/// an iCalendar feed. Opened by a link's feed token (`calendarUrl` of `/me`), which opens
/// nothing else, or by the admin credential (automation). A share link's own token is refused
/// with 403 `feed_token_required`: a calendar service keeps the URL, and a share token would
/// let whoever sees it edit the plan.
#[utoipa::path(get, path = "/api/plans/{plan_id}/calendar.ics", tag = "exports", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("token" = Option<String>, Query, description = "A calendar-feed token (`calendarUrl` of `/me`) or the admin credential; share tokens are refused (403 `feed_token_required`)"), ("owner" = Option<String>, Query)), responses((status = 200, description = "An iCalendar feed (RFC 5545)", content_type = "text/calendar"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn calendar_feed(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<CalendarQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let plan_id = authorize_feed(&app, &headers, params.token.as_deref(), &raw_id).await?;
    let (plan, _) = current_plan(&app, plan_id).await?;
    let entries = blocking(&app, move |store| store.slip_entries(plan_id)).await?;
    let mut moves = BTreeMap::new();
    let mut go_live_moves = 0;
    // Moves that held (one that lost to a concurrent move never moved the event).
    for slip in entries
        .iter()
        .flat_map(|(_, entry)| &entry.slips)
        .filter(|slip| slip.kept)
    {
        match &slip.milestone_id {
            Some(id) => *moves.entry(id.clone()).or_insert(0u32) += 1,
            None => go_live_moves += 1,
        }
    }
    let plan_id_text = plan_id.to_string();
    let feed = calendar(
        &plan,
        &CalendarInput {
            plan_id: &plan_id_text,
            moves: &moves,
            go_live_moves,
            now: chrono::Utc::now(),
            owner: params.owner.as_deref(),
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"mutual-action-plan.ics\"",
            ),
        ],
        feed,
    )
        .into_response())
}

/// Who may read the calendar feed of the plan in the path: a feed token of that plan's link
/// (checked against the link: revoked or expired links refuse it), or the admin. A share
/// link's own token is refused even though it could read the plan.
async fn authorize_feed(
    app: &Arc<App>,
    headers: &HeaderMap,
    query_token: Option<&str>,
    raw_id: &str,
) -> Result<PlanId, ApiError> {
    // An operator's own admin credential may look like anything, a feed token included.
    let feed = bearer(headers)
        .or(query_token)
        .filter(|t| auth::is_feed_token(t) && !app.auth.is_admin(t))
        .map(str::to_owned);
    let Some(feed) = feed else {
        return match authenticate(app, headers, query_token).await? {
            Principal::Admin => authorize_read(app, &Principal::Admin, raw_id).await,
            Principal::Share(_) | Principal::Member(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "feed_token_required",
                "a share link's token does not open the calendar feed; subscribe with the \
                 link's calendar address (`calendarUrl` of GET /api/plans/{id}/me, or \
                 \"Subscribe in your calendar\" on the plan page)",
            )),
        };
    };
    let checker = app.clone();
    let share = tokio::task::spawn_blocking(move || {
        checker
            .auth
            .authenticate_feed(&checker.store, &feed, now_ms())
    })
    .await
    .map_err(ApiError::internal)??;
    authorize_read(app, &Principal::Share(share), raw_id).await
}

/// The exported plan's format, so an import can tell what it reads. v2: the plan is schema
/// v2's projection (`meta.schemaVersion`, `meta.goLiveSlipReason`), and its stakeholders carry
/// the seller's judgments only in a seller's (or the admin's) export.
pub const EXPORT_FORMAT: &str = "mapline.plan.v2";

/// The export formats an import reads: v1 (a v1 export's judgments were shared stakeholder
/// fields; they go to the internal document like a v2 seller export's) and v2.
pub const IMPORT_FORMATS: [&str; 2] = ["mapline.plan.v1", EXPORT_FORMAT];

/// The words for who moved a date, as the exports print them.
fn who_words(who: &Who) -> String {
    match who {
        Who::Share { label, side, .. } => {
            format!("{} ({side})", label.as_deref().unwrap_or("a shared link"))
        }
        Who::Member { name, side, .. } => {
            format!("{} ({side})", name.as_deref().unwrap_or("a team member"))
        }
        Who::Admin => "the admin".to_owned(),
        Who::System => "Mapline".to_owned(),
    }
}

/// The date changes the one-pager and the CSV count: the moves that held.
fn moved_dates(slips: &[SlipView]) -> Vec<MovedDate> {
    slips
        .iter()
        .filter(|s| s.kept)
        .map(|s| MovedDate {
            subject: s
                .milestone_id
                .as_ref()
                .map(|id| s.title.clone().unwrap_or_else(|| id.clone())),
            milestone_id: s.milestone_id.clone(),
            from: s.from.clone(),
            to: s.to.clone(),
            days: s.days,
            reason: s.reason.clone(),
            who: who_words(&s.who),
            on: s
                .at
                .as_deref()
                .map(|t| t.chars().take(10).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// What an export is rendered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The plan with its slips and whole history (`mapline.plan.v1`), which import takes back.
    Json,
    /// The one-page plan to forward.
    Markdown,
    /// The milestones.
    Csv,
}

/// Renders an export. `judgments` are merged into the JSON export's stakeholders (seller links
/// and the admin); the Markdown and CSV exports never carry a judgment, whoever asks.
#[allow(clippy::too_many_arguments)]
fn render(
    format: ExportFormat,
    plan_id: PlanId,
    plan: &Plan,
    judgments: Option<&Judgments>,
    seq: u64,
    slips: &[SlipView],
    history: Vec<serde_json::Value>,
    health: Option<&Health>,
) -> String {
    match format {
        ExportFormat::Json => json!({
            "format": EXPORT_FORMAT,
            "id": plan_id,
            "seq": seq,
            "exportedAt": chrono::Utc::now().to_rfc3339(),
            "plan": crate::http::judgments::plan_json(plan, judgments),
            "slips": slips,
            "history": history,
        })
        .to_string(),
        ExportFormat::Markdown => markdown(plan, &moved_dates(slips), health),
        ExportFormat::Csv => milestones_csv(plan, &moved_dates(slips)),
    }
}

/// An export of a plan read from the data file (the CLI, with the server stopped). Blocks.
pub fn export_stored(
    store: &mapline_store::Store,
    plan_id: PlanId,
    format: ExportFormat,
) -> Result<String, mapline_store::StoreError> {
    let plan = crate::history::project_stored(store, plan_id)?;
    let seq = store.last_update(plan_id)?.map_or(0, |(seq, _)| seq);
    let slips = all_slips(store, plan_id, true)?;
    let history = if format == ExportFormat::Json {
        history_page(store, plan_id, None, usize::MAX, true)?.0
    } else {
        Vec::new()
    };
    let health = if format == ExportFormat::Markdown {
        export_health(store, plan_id, &plan)?
    } else {
        None
    };
    // Read from the data file: the operator's export, with the seller's judgments.
    let judgments = crate::http::judgments::stored(store, plan_id)?;
    Ok(render(
        format,
        plan_id,
        &plan,
        Some(&judgments),
        seq,
        &slips,
        history,
        health.as_ref(),
    ))
}

/// The plan's health today, as the one-pager states it (`None` for a plan the store no longer
/// holds a record of).
fn export_health(
    store: &mapline_store::Store,
    plan_id: PlanId,
    plan: &Plan,
) -> Result<Option<Health>, mapline_store::StoreError> {
    let Some(record) = store.plan(plan_id)? else {
        return Ok(None);
    };
    plan_health(
        store,
        plan_id,
        &record,
        plan,
        chrono::Utc::now().date_naive(),
    )
    .map(Some)
}

/// Why an export could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error("{0}")]
    Invalid(String),
    /// The plan holds more than a plan may (entries per collection, text length).
    #[error("the plan is over a limit: {0}")]
    OverLimit(mapline_plan::admission::Refusal),
    #[error(transparent)]
    Store(#[from] mapline_store::StoreError),
}

/// Creates a new plan from an export (`export.json`), with a seller and a buyer link. Shared
/// by `POST /api/plans/import` and the CLI. Blocks.
pub fn import_into(
    store: &mapline_store::Store,
    export: &serde_json::Value,
    limits: mapline_plan::admission::PlanLimits,
    now_ms: i64,
) -> Result<(PlanId, Vec<plans::IssuedShare>), ImportFailure> {
    if let Some(format) = export.get("format").and_then(serde_json::Value::as_str)
        && !IMPORT_FORMATS.contains(&format)
    {
        return Err(ImportFailure::Invalid(format!(
            "`format` {format:?} is not one this server reads ({})",
            IMPORT_FORMATS.join(", ")
        )));
    }
    let (new_plan, updates) = mapline_plan::export::import(export, plans::server_client_id())
        .map_err(|e| ImportFailure::Invalid(e.to_string()))?;
    // The same admission a live update passes, so an import cannot hold what an edit could not.
    let admit = |update: &[u8], plan_document: bool| {
        mapline_plan::admission::Admission::new(limits, plan_document)
            .admit(&yrs::Transact::transact(&yrs::Doc::new()), update)
            .map_err(|refusal| {
                if refusal.is_limit() {
                    ImportFailure::OverLimit(refusal)
                } else {
                    ImportFailure::Invalid(refusal.to_string())
                }
            })
    };
    admit(&updates.plan, true)?;
    if let Some(internal) = &updates.internal {
        admit(internal, false)?;
    }
    let id = uuid::Uuid::now_v7();
    let shares = plans::create_plan(store, id, &new_plan, updates, now_ms)?;
    Ok((id, shares))
}

/// What an export is made of: the projected plan, its log position, its slips, (for JSON) its
/// whole history, and the seller's judgments when the caller may read them (JSON only).
struct Gathered {
    plan_id: PlanId,
    plan: Plan,
    seq: u64,
    slips: Vec<SlipView>,
    history: Vec<serde_json::Value>,
    judgments: Option<Judgments>,
}

/// The projected plan, its slips and (for JSON) its whole history and, for a seller link or
/// the admin, the judgments.
async fn gather(
    app: &Arc<App>,
    PlanReader { principal, plan_id }: PlanReader,
    with_history: bool,
) -> Result<Gathered, ApiError> {
    let (plan, seq) = current_plan(app, plan_id).await?;
    let judgments = if with_history && crate::http::extract::may_see_internal(&principal) {
        Some(crate::http::judgments::current(app, plan_id).await?)
    } else {
        None
    };
    let member_emails = crate::http::plan_api::shows_member_emails(&principal);
    let (slips, history) = blocking(app, move |store| {
        let slips = all_slips(store, plan_id, member_emails)?;
        let history = if with_history {
            history_page(store, plan_id, None, usize::MAX, member_emails)?.0
        } else {
            Vec::new()
        };
        Ok((slips, history))
    })
    .await?;
    Ok(Gathered {
        plan_id,
        plan,
        seq,
        slips,
        history,
        judgments,
    })
}

fn download(content_type: &'static str, name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/plans/{id}/export.json`: the projected plan with its slips and whole history;
/// `POST /api/plans/import` takes it back.
#[utoipa::path(get, path = "/api/plans/{plan_id}/export.json", tag = "exports", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "The plan with its slips and history", content_type = "application/json"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn export_json(
    State(app): State<Arc<App>>,
    reader: PlanReader,
) -> Result<Response, ApiError> {
    let g = gather(&app, reader, true).await?;
    let body = render(
        ExportFormat::Json,
        g.plan_id,
        &g.plan,
        g.judgments.as_ref(),
        g.seq,
        &g.slips,
        g.history,
        None,
    );
    Ok(download(
        "application/json",
        "mutual-action-plan.json",
        body,
    ))
}

/// `GET /api/plans/{id}/export.md`: the one-page plan a champion forwards internally.
#[utoipa::path(get, path = "/api/plans/{plan_id}/export.md", tag = "exports", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "The one-page plan", content_type = "text/markdown"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn export_markdown(
    State(app): State<Arc<App>>,
    reader: PlanReader,
) -> Result<Response, ApiError> {
    let g = gather(&app, reader, false).await?;
    let plan_id = g.plan_id;
    let health = blocking(&app, {
        let plan = g.plan.clone();
        move |store| export_health(store, plan_id, &plan)
    })
    .await?;
    let body = render(
        ExportFormat::Markdown,
        plan_id,
        &g.plan,
        None,
        g.seq,
        &g.slips,
        Vec::new(),
        health.as_ref(),
    );
    Ok(download(
        "text/markdown; charset=utf-8",
        "mutual-action-plan.md",
        body,
    ))
}

/// `GET /api/plans/{id}/export.csv`: the milestones, one row each.
#[utoipa::path(get, path = "/api/plans/{plan_id}/export.csv", tag = "exports", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "The milestones", content_type = "text/csv"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn export_csv(
    State(app): State<Arc<App>>,
    reader: PlanReader,
) -> Result<Response, ApiError> {
    let g = gather(&app, reader, false).await?;
    let body = render(
        ExportFormat::Csv,
        g.plan_id,
        &g.plan,
        None,
        g.seq,
        &g.slips,
        Vec::new(),
        None,
    );
    Ok(download("text/csv; charset=utf-8", "milestones.csv", body))
}

/// Largest accepted import: an export with a long history is bigger than an API body.
pub const MAX_IMPORT_BYTES: usize = 8 * 1024 * 1024;

/// The import's body: JSON up to [`MAX_IMPORT_BYTES`], the limit its 413 names.
type ImportJson<T> = ApiJson<T, MAX_IMPORT_BYTES>;

/// `POST /api/plans/import` (admin): a new plan from an export's `plan`, with new share links.
/// Entries keep their ids; the new plan's history starts at its import.
#[utoipa::path(post, path = "/api/plans/import", tag = "exports", request_body(content = serde_json::Value, description = "An export (export.json)", content_type = "application/json"), responses((status = 201, description = "`{ id, shares }`: the new plan"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn import_plan(
    State(app): State<Arc<App>>,
    _admin: Admin,
    body: Result<ImportJson<serde_json::Value>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(export) = body?;
    let store = app.store.clone();
    let limits = app.config.plan_limits;
    let (id, shares) =
        tokio::task::spawn_blocking(move || import_into(&store, &export, limits, now_ms()))
            .await
            .map_err(ApiError::internal)?
            .map_err(|failure| match failure {
                ImportFailure::Invalid(message) => ApiError::invalid(message),
                ImportFailure::OverLimit(refusal) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "over_limit",
                    refusal.to_string(),
                ),
                ImportFailure::Store(error) => error.into(),
            })?;
    tracing::info!(plan_id = %id, "plan imported");
    let public_url = app.config.public_url.as_deref();
    let shares: Vec<_> = shares.iter().map(|s| s.view(public_url)).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "shares": shares })),
    )
        .into_response())
}
