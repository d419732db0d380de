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
use mapline_plan::Plan;
use mapline_plan::calendar::{CalendarInput, calendar};
use mapline_plan::export::{MovedDate, markdown, milestones_csv};
use mapline_store::{DocRef, PlanId};
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::api::{ApiError, ApiJson, authenticate, authorize_read, require_admin};
use crate::plan_api::{SlipView, Who, all_slips, blocking, history_page, query};
use crate::plans;
use crate::writer::now_ms;

#[derive(Deserialize)]
pub struct CalendarQuery {
    /// The share link's token: calendar apps subscribe to a URL and cannot send headers.
    #[serde(default)]
    token: Option<String>,
    /// Only this person's milestones (a stakeholder id or a name, case-insensitive).
    #[serde(default)]
    owner: Option<String>,
}

/// `GET /api/plans/{id}/calendar.ics?token=…[&owner=…]`: the plan's milestones and go-live as
/// an iCalendar feed. Any link of the plan (or the admin) may read it.
#[utoipa::path(get, path = "/api/plans/{plan_id}/calendar.ics", tag = "exports", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("token" = Option<String>, Query), ("owner" = Option<String>, Query)), responses((status = 200, description = "An iCalendar feed (RFC 5545)", content_type = "text/calendar"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn calendar_feed(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<CalendarQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let principal = authenticate(&app, &headers, params.token.as_deref()).await?;
    let plan_id = authorize_read(&app, &principal, &raw_id).await?;
    let room = app
        .rooms
        .open(DocRef::plan(plan_id))
        .await
        .map_err(ApiError::internal)?;
    let (plan, _) = room.projection();
    let entries = blocking(&app, move |store| store.slip_entries(plan_id)).await?;
    let mut moves = BTreeMap::new();
    let mut go_live_moves = 0;
    for slip in entries.iter().flat_map(|(_, entry)| &entry.slips) {
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

/// The exported plan's format, so an import can tell what it reads.
pub const EXPORT_FORMAT: &str = "mapline.plan.v1";

/// The words for who moved a date, as the exports print them.
fn who_words(who: &Who) -> String {
    match who {
        Who::Share { label, side, .. } => {
            format!("{} ({side})", label.as_deref().unwrap_or("a shared link"))
        }
        Who::Admin => "the admin".to_owned(),
        Who::System => "Mapline".to_owned(),
    }
}

fn moved_dates(slips: &[SlipView]) -> Vec<MovedDate> {
    slips
        .iter()
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

/// The projected plan, its slips and (for JSON) its whole history.
async fn gather(
    app: &Arc<App>,
    headers: &HeaderMap,
    raw_id: &str,
    with_history: bool,
) -> Result<(PlanId, Plan, u64, Vec<SlipView>, Vec<serde_json::Value>), ApiError> {
    let principal = authenticate(app, headers, None).await?;
    let plan_id = authorize_read(app, &principal, raw_id).await?;
    let room = app
        .rooms
        .open(DocRef::plan(plan_id))
        .await
        .map_err(ApiError::internal)?;
    let (plan, seq) = room.projection();
    let (slips, history) = blocking(app, move |store| {
        let slips = all_slips(store, plan_id)?;
        let history = if with_history {
            history_page(store, plan_id, None, usize::MAX)?.0
        } else {
            Vec::new()
        };
        Ok((slips, history))
    })
    .await?;
    Ok((plan_id, plan, seq, slips, history))
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
#[utoipa::path(get, path = "/api/plans/{plan_id}/export.json", tag = "exports", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "The plan with its slips and history", content_type = "application/json"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn export_json(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (plan_id, plan, seq, slips, history) = gather(&app, &headers, &raw_id, true).await?;
    let body = json!({
        "format": EXPORT_FORMAT,
        "id": plan_id,
        "seq": seq,
        "exportedAt": chrono::Utc::now().to_rfc3339(),
        "plan": plan,
        "slips": slips,
        "history": history,
    });
    Ok(download(
        "application/json",
        "mutual-action-plan.json",
        body.to_string(),
    ))
}

/// `GET /api/plans/{id}/export.md`: the one-page plan a champion forwards internally.
#[utoipa::path(get, path = "/api/plans/{plan_id}/export.md", tag = "exports", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "The one-page plan", content_type = "text/markdown"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn export_markdown(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, plan, _, slips, _) = gather(&app, &headers, &raw_id, false).await?;
    Ok(download(
        "text/markdown; charset=utf-8",
        "mutual-action-plan.md",
        markdown(&plan, &moved_dates(&slips)),
    ))
}

/// `GET /api/plans/{id}/export.csv`: the milestones, one row each.
#[utoipa::path(get, path = "/api/plans/{plan_id}/export.csv", tag = "exports", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "The milestones", content_type = "text/csv"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn export_csv(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, plan, _, slips, _) = gather(&app, &headers, &raw_id, false).await?;
    Ok(download(
        "text/csv; charset=utf-8",
        "milestones.csv",
        milestones_csv(&plan, &moved_dates(&slips)),
    ))
}

/// Largest accepted import: an export with a long history is bigger than an API body.
pub const MAX_IMPORT_BYTES: usize = 8 * 1024 * 1024;

/// `POST /api/plans/import` (admin): a new plan from an export's `plan`, with new share links.
/// Entries keep their ids; the new plan's history starts at its import.
#[utoipa::path(post, path = "/api/plans/import", tag = "exports", request_body(content = serde_json::Value, description = "An export (export.json)", content_type = "application/json"), responses((status = 201, description = "`{ id, shares }`: the new plan"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn import_plan(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<ApiJson<serde_json::Value>, ApiError>,
) -> Result<Response, ApiError> {
    require_admin(&authenticate(&app, &headers, None).await?)?;
    let ApiJson(export) = body?;
    if let Some(format) = export.get("format").and_then(serde_json::Value::as_str)
        && format != EXPORT_FORMAT
    {
        return Err(ApiError::invalid(format!(
            "`format` {format:?} is not one this server reads ({EXPORT_FORMAT})"
        )));
    }
    let (new_plan, update) = mapline_plan::export::import(&export, plans::server_client_id())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let id = uuid::Uuid::now_v7();
    let store = app.store.clone();
    let shares = tokio::task::spawn_blocking(move || {
        plans::create_plan(&store, id, &new_plan, update, now_ms())
    })
    .await
    .map_err(ApiError::internal)??;
    tracing::info!(plan_id = %id, "plan imported");
    let public_url = app.config.public_url.as_deref();
    let shares: Vec<_> = shares.iter().map(|s| s.view(public_url)).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "shares": shares })),
    )
        .into_response())
}
