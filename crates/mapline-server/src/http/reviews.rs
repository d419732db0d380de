//! Review marks: "I reviewed this plan up to its current log position", so the audit page can
//! show what changed since someone's last review (the weekly deal review starts there).
//!
//! A mark is kept per plan and reviewer: a member by their id, a share link by its id, the
//! admin credential by the nil id. Anyone who may read a plan may mark it: marking changes
//! nothing in the plan.
//!
//! A client says how far it showed the reviewer (`{ "seq": N }`): a change relayed while the
//! reviewer was reading must not count as reviewed. The position is clamped to the log's head
//! (a mark never claims changes that do not exist yet); without one, the head is marked.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use mapline_store::{ReviewMark, Seq};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::App;
use crate::clock::now_ms;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::{PlanReader, authenticate, authorize_read};
use crate::identity::auth::Principal;
use crate::identity::session::time;

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

/// The position a mark's body asks for: `None` (the head) for no body, `{}` or
/// `{ "seq": null }`; else a whole number ≥ 0. Anything else is refused.
fn requested_seq(headers: &HeaderMap, body: &[u8]) -> Result<Option<Seq>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the body must be an object: `{ \"seq\": N }` or `{}`",
        ));
    };
    if let Some(key) = fields.keys().find(|k| k.as_str() != "seq") {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("unknown field `{key}`: the body is `{{ \"seq\": N }}` or `{{}}`"),
        ));
    }
    match fields.get("seq") {
        None | Some(Value::Null) => Ok(None),
        Some(seq) => seq.as_u64().map(Some).ok_or_else(|| {
            ApiError::invalid(format!(
                "`seq` must be a whole number of at least 0 (the last change shown), got {seq}"
            ))
        }),
    }
}

/// `POST /api/plans/{id}/reviews`: marks the plan reviewed up to the position the reviewer was
/// shown (`{ "seq": N }`, clamped to the log's head), or up to its current log position.
#[utoipa::path(post, path = "/api/plans/{plan_id}/reviews", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), request_body(content = Option<String>, description = "Optional `{ \"seq\": N }`: the last log position the reviewer was shown (clamped to the head); without it, the head", content_type = "application/json"), responses((status = 200, description = "`{ seq, at }`: reviewed up to this log position"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn mark(
    State(app): State<Arc<App>>,
    Path(plan_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let principal = authenticate(&app, &headers, None).await?;
    let plan_id = authorize_read(&app, &principal, &plan_id).await?;
    let requested = requested_seq(&headers, &body)?;
    let who = reviewer(&principal);
    let mark = blocking(&app, move |store| {
        let head = store.last_update(plan_id)?.map_or(0, |(seq, _)| seq);
        let mark = ReviewMark {
            seq: requested.map_or(head, |seq| seq.min(head)),
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
#[utoipa::path(get, path = "/api/plans/{plan_id}/reviews/last", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "`{ seq, at }`, or `{ seq: null }` before the first review"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn last(
    State(app): State<Arc<App>>,
    PlanReader { principal, plan_id }: PlanReader,
) -> Result<impl IntoResponse, ApiError> {
    let who = reviewer(&principal);
    let mark = blocking(&app, move |store| store.review_mark(plan_id, who)).await?;
    Ok(Json(mark_json(mark)))
}
