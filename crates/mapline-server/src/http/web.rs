//! The web client's files. With a built client (`web/dist`), every unknown path serves its
//! `index.html` so that `/p/{planId}` links open the app; without one, a short page says how to
//! build it.

use std::path::Path;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};

/// The service answering every path no route claims.
pub fn service(web_root: Option<&Path>) -> Router {
    match web_root.filter(|root| root.join("index.html").is_file()) {
        Some(root) => Router::new().fallback_service(
            ServeDir::new(root).fallback(ServeFile::new(root.join("index.html"))),
        ),
        None => Router::new().fallback(without_client),
    }
}

async fn without_client(uri: Uri) -> Response {
    let path = uri.path();
    if path == "/" || path.starts_with("/p/") {
        no_web_client().await.into_response()
    } else {
        let body = json!({ "error": { "code": "not_found", "message": "nothing is served at this path" } });
        (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
    }
}

/// Used when no web client is built: a page that says so instead of a bare 404.
async fn no_web_client() -> impl IntoResponse {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            crate::http::headers::NO_CLIENT_CSP,
        )],
        Html(include_str!("no-web-client.html")),
    )
}
