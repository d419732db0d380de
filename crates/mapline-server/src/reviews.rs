//! Review marks: "I reviewed this plan up to its current log position", so the audit page can
//! show what changed since someone's last review (the weekly deal review starts there).
//!
//! A mark is kept per plan and reviewer: a member by their id, a share link by its id, the
//! admin credential by the nil id. Anyone who may read a plan may mark it: marking changes
//! nothing in the plan.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use mapline_store::ReviewMark;
use serde_json::json;
use uuid::Uuid;

use crate::App;
use crate::api::{ApiError, authenticate, authorize_read};
use crate::auth::Principal;
use crate::plan_api::blocking;
use crate::session::time;
use crate::writer::now_ms;

/// Whose mark a principal reads and writes.
fn reviewer(principal: &Principal) -> Uuid {
    match principal {
        Principal::Admin => Uuid::nil(),
        Principal::Share(share) => share.id,
        Principal::Member(m) => m.member.id,
    }
}

fn mark_json(mark: Option<ReviewMark>) -> serde_json::Value {
    match mark {
        Some(mark) => json!({ "seq": mark.seq, "at": time(mark.at_ms) }),
        None => json!({ "seq": null, "at": null }),
    }
}

/// `POST /api/plans/{id}/reviews`: marks the plan reviewed up to its current log position.
#[utoipa::path(post, path = "/api/plans/{plan_id}/reviews", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "`{ seq, at }`: reviewed up to this log position"), (status = "4XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn mark(
    State(app): State<Arc<App>>,
    Path(plan_id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let principal = authenticate(&app, &headers, None).await?;
    let plan_id = authorize_read(&app, &principal, &plan_id).await?;
    let who = reviewer(&principal);
    let mark = blocking(&app, move |store| {
        let seq = store.last_update(plan_id)?.map_or(0, |(seq, _)| seq);
        let mark = ReviewMark {
            seq,
            at_ms: now_ms(),
        };
        store.set_review_mark(plan_id, who, mark)?;
        Ok(mark)
    })
    .await?;
    tracing::info!(plan_id = %plan_id, reviewer = %who, seq = mark.seq, "review marked");
    Ok(Json(mark_json(Some(mark))))
}

/// `GET /api/plans/{id}/reviews/last`: the caller's last review mark, or `{ "seq": null }`.
#[utoipa::path(get, path = "/api/plans/{plan_id}/reviews/last", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "`{ seq, at }`, or `{ seq: null }` before the first review"), (status = "4XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn last(
    State(app): State<Arc<App>>,
    Path(plan_id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let principal = authenticate(&app, &headers, None).await?;
    let plan_id = authorize_read(&app, &principal, &plan_id).await?;
    let who = reviewer(&principal);
    let mark = blocking(&app, move |store| store.review_mark(plan_id, who)).await?;
    Ok(Json(mark_json(mark)))
}
