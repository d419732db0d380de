//! Plans outside the app: the calendar feed a buyer or seller subscribes to.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use mapline_plan::calendar::{CalendarInput, calendar};
use mapline_store::DocRef;
use serde::Deserialize;

use crate::App;
use crate::api::{ApiError, authenticate, authorize_read};
use crate::plan_api::{blocking, query};

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
