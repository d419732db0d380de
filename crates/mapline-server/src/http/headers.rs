//! The security headers every answer carries, set in one place (`api::router` applies them):
//!
//! - on every answer: `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` (the
//!   page's token lives in the URL fragment, which is never sent, but nothing else should leak);
//! - on HTML: the page's Content-Security-Policy ([`PAGE_CSP`]), unless the answer set its own;
//! - on every answer of the route table (the JSON API, exports, the calendar feed, the sync
//!   upgrade, `/healthz`, `/metrics`): `Cache-Control: no-store`, since they carry plan data. The
//!   web client's files (hashed assets, `index.html`) are served by the fallback and keep their
//!   ordinary caching.

use axum::Router;
use axum::http::{HeaderValue, Response, header};
use tower_http::set_header::SetResponseHeaderLayer;

/// The plan page's policy. The page loads only its own files: no inline script or style element
/// (Preact's `style={…}` sets properties through the CSSOM, which `style-src` does not cover), the
/// service worker from `/sw.js`, the favicon as a `data:` image, WebSockets to its own host.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; worker-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page shown when the server has no web client: no script, one inline style attribute.
pub const NO_CLIENT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Marks every answer of `routes` as not to be stored by browsers or proxies.
pub fn no_store<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes.layer(SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ))
}

/// Adds the headers every answer carries, and the page's CSP to HTML answers without one.
pub fn security<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            |response: &Response<axum::body::Body>| {
                is_html(response).then(|| HeaderValue::from_static(PAGE_CSP))
            },
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

fn is_html<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/html"))
}
