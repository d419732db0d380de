//! The sync endpoint's checks before the WebSocket upgrade (`/sync/{planId}` and its internal
//! document): query, Origin, caller, plan and side, then the socket is handed to
//! [`crate::sync::conn`].

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mapline_store::{DocKind, DocRef};
use serde::Deserialize;

use crate::App;
use crate::http::error::ApiError;
use crate::http::extract::{authenticate, authorize_read, may_see_internal};
use crate::sync::conn::{self, ConnectionParams};

#[derive(Deserialize)]
pub(crate) struct SyncQuery {
    #[serde(default)]
    token: Option<String>,
    /// `1` to receive durability acknowledgements and refusal notices.
    #[serde(default)]
    acks: Option<String>,
}

#[utoipa::path(get, path = "/sync/{plan_id}", tag = "sync", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("token" = Option<String>, Query, description = "The token, for clients that cannot send headers"), ("acks" = Option<String>, Query, description = "`1` for durability acknowledgements")), responses((status = 101, description = "Upgraded to the y-websocket protocol (docs/protocol.md)"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn sync(
    State(app): State<Arc<App>>,
    Path(plan_id): Path<String>,
    query: Result<Query<SyncQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    open_sync(app, plan_id, DocKind::Plan, query, headers, upgrade).await
}

/// `/sync/{planId}/internal`: the seller's internal document. Seller links (editors write,
/// viewers read) and the admin only; a buyer link gets 403 and nothing else.
#[utoipa::path(get, path = "/sync/{plan_id}/internal", tag = "sync", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("token" = Option<String>, Query, description = "A seller link's token")), responses((status = 101, description = "Upgraded: the seller's internal document"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn sync_internal(
    State(app): State<Arc<App>>,
    Path(plan_id): Path<String>,
    query: Result<Query<SyncQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    open_sync(app, plan_id, DocKind::Internal, query, headers, upgrade).await
}

async fn open_sync(
    app: Arc<App>,
    plan_id: String,
    kind: DocKind,
    query: Result<Query<SyncQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
    crate::identity::session::check_upgrade_origin(&app, &headers, query.token.as_deref())?;
    let principal = authenticate(&app, &headers, query.token.as_deref()).await?;
    let plan_id = authorize_read(&app, &principal, &plan_id).await?;
    if kind == DocKind::Internal && !may_see_internal(&principal) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "sellers_only",
            "this document is for the seller's team only",
        ));
    }
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            format!("open this as a WebSocket: {}", e.body_text()),
        )
    })?;
    let params = ConnectionParams {
        doc: DocRef {
            plan: plan_id,
            kind,
        },
        principal,
        wants_acks: query.acks.as_deref() == Some("1"),
    };
    // The socket accepts up to twice the limit and the connection enforces the limit itself on
    // whole messages: a message read completely can be refused with a clean 4413 close, while
    // one cut off mid-frame leaves unread input and the kernel resets the connection.
    let hard_limit = app.config.max_message_bytes.saturating_mul(2);
    let guard = app.connections.token();
    Ok(upgrade
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .read_buffer_size(4 * 1024)
        // Frames go straight to the socket; what waits is bounded by the connection's outbox,
        // so no cap here (one would refuse a large plan's sync step 2 outright).
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            conn::serve(socket, app, params).await;
            drop(guard);
        }))
}
