//! Operations: health, metrics and the admin's backup of the whole data file.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use uuid::Uuid;

use crate::App;
use crate::http::error::ApiError;
use crate::http::extract::{authenticate, require_admin_token};

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "`{ \"status\": \"ok\" }`"), (status = 503, description = "A cluster's node that cannot take writes now (no quorum of the engine, or its applier stopped): `{ \"status\": \"unavailable\", \"reason\": … }`")))]
pub(crate) async fn healthz(State(app): State<Arc<App>>) -> Response {
    let Some(cluster) = &app.cluster else {
        return Json(json!({ "status": "ok" })).into_response();
    };
    match cluster.health().await {
        Ok(()) => Json(json!({ "status": "ok", "node": cluster.node_id() })).into_response(),
        Err(reason) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "node": cluster.node_id(), "reason": reason })),
        )
            .into_response(),
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations", security(()), responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.metrics.stored_bytes.set(app.store.file_bytes() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

/// `GET /api/admin/backup` (admin): a consistent copy of the whole data file, taken from one read
/// transaction while the server keeps serving. The copy is written next to the data file,
/// unlinked once open, and streamed, so it never lingers on disk.
#[utoipa::path(get, path = "/api/admin/backup", tag = "operations", responses((status = 200, description = "A consistent copy of the data file", content_type = "application/octet-stream"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn backup(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin_token(&authenticate(&app, &headers, None).await?)?;
    let store = app.store.clone();
    let data = store.path().to_owned();
    let name = format!(
        ".{}.backup-{}",
        data.file_name()
            .map_or("mapline".into(), |n| n.to_string_lossy()),
        Uuid::now_v7()
    );
    let temp = data.with_file_name(name);
    let target = temp.clone();
    let stats = tokio::task::spawn_blocking(move || store.backup_to(&target))
        .await
        .map_err(ApiError::internal)?;
    let stats = match stats {
        Ok(stats) => stats,
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            return Err(ApiError::internal(error));
        }
    };
    let file = tokio::fs::File::open(&temp).await;
    // Unlinked now: the open file keeps its data until the stream is done with it.
    let _ = tokio::fs::remove_file(&temp).await;
    let file = file.map_err(ApiError::internal)?;
    tracing::info!(
        plans = stats.plans,
        updates = stats.updates,
        bytes = stats.bytes,
        "backup served"
    );
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, stats.bytes.to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"mapline-backup.redb\"".to_owned(),
            ),
        ],
        body,
    )
        .into_response())
}
