//! The routes: every handler of the HTTP surface registered in one table, described in the
//! OpenAPI document, behind the security headers, the CSRF guard and the failed-token limit.
//! Every error is `{ "error": { "code", "message" } }` ([`crate::http::error`]).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{any, get};
use axum::{Json, Router};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::App;
use crate::http::error::ApiError;
use crate::http::extract::MAX_BODY_BYTES;
use crate::http::plan_api;
use crate::http::shares;

/// The routes, with the app as state. Every route is registered through `routes!`, so it is
/// described in the OpenAPI document (`/api/openapi.json`); only the catch-alls are not.
pub fn router(app: Arc<App>) -> Router {
    let web = crate::http::web::service(app.config.web_root.as_deref());
    let (import_schemas, import_paths, import_route) = routes!(crate::http::exports::import_plan);
    // The innermost `DefaultBodyLimit` wins: this one, on the import route alone, replaces the
    // router-wide MAX_BODY_BYTES below. The handler's extractor (`ImportJson`) names the same
    // constant in its 413.
    let import_route = import_route.layer(DefaultBodyLimit::max(
        crate::http::exports::MAX_IMPORT_BYTES,
    ));
    let (documented, openapi) =
        OpenApiRouter::<Arc<App>>::with_openapi(crate::http::openapi::ApiDoc::openapi())
            .routes(routes!(
                plan_api::create_plan,
                crate::http::pipeline::list_plans
            ))
            .routes(routes!(crate::http::pipeline::list_plans_csv))
            .routes(routes!(crate::identity::session::get_session))
            .routes(routes!(crate::identity::session::sign_in_with_link))
            .routes(routes!(crate::identity::session::logout))
            .routes(routes!(crate::identity::session::logout_everywhere))
            .routes(routes!(
                crate::identity::members::list,
                crate::identity::members::invite
            ))
            .routes(routes!(
                crate::identity::members::sessions,
                crate::identity::members::revoke_sessions
            ))
            .routes(routes!(crate::identity::members::sign_in_link))
            .routes(routes!(crate::identity::members::disable))
            .routes(routes!(crate::identity::members::remove_plan_member))
            .routes(routes!(
                crate::identity::members::plan_members,
                crate::identity::members::add_plan_member
            ))
            .routes(routes!(crate::http::reviews::mark))
            .routes(routes!(crate::http::reviews::last))
            .routes(routes!(shares::create, shares::list))
            .routes(routes!(shares::revoke))
            .routes(routes!(shares::revocation))
            .routes(routes!(shares::me))
            .routes(routes!(crate::http::exports::calendar_feed))
            .routes(routes!(crate::http::exports::export_json))
            .routes(routes!(crate::http::exports::export_markdown))
            .routes(routes!(crate::http::exports::export_csv))
            .routes((import_schemas, import_paths, import_route))
            .routes(routes!(plan_api::get_plan))
            .routes(routes!(plan_api::get_slips))
            .routes(routes!(plan_api::get_history))
            .routes(routes!(crate::http::restore::get_deleted))
            .routes(routes!(crate::http::restore::restore))
            .routes(routes!(plan_api::get_health))
            .routes(routes!(crate::http::audit::verify))
            .routes(routes!(crate::http::audit::audit_json))
            .routes(routes!(plan_api::list_templates))
            .routes(routes!(crate::http::operations::backup))
            .routes(routes!(crate::http::upgrade::sync))
            .routes(routes!(crate::http::upgrade::sync_internal))
            .routes(routes!(
                crate::http::webhooks::create,
                crate::http::webhooks::list
            ))
            .routes(routes!(crate::http::webhooks::delete))
            .routes(routes!(crate::http::webhooks::deliveries_of))
            .routes(routes!(crate::identity::oidc::login))
            .routes(routes!(crate::identity::oidc::callback))
            .routes(routes!(crate::identity::oidc::auth_config))
            .routes(routes!(crate::http::operations::healthz))
            .routes(routes!(crate::http::operations::metrics))
            .split_for_parts();
    let openapi = Arc::new(openapi);
    let routes = Router::new()
        .merge(documented)
        .route(
            "/api/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        .route("/api/{*rest}", any(api_not_found))
        .method_not_allowed_fallback(method_not_allowed);
    let router = crate::http::headers::no_store(routes)
        .fallback_service(web)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::identity::session::csrf_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::http::limits::limit_failed_tokens,
        ));
    crate::http::headers::security(router).with_state(app)
}

async fn api_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

#[cfg(test)]
mod tests {
    /// Every route of the API is registered through `routes!` (and so described in the OpenAPI
    /// document); the only exceptions are the document itself and the API's catch-all.
    #[test]
    fn every_route_goes_through_the_openapi_router() {
        let source = include_str!("router.rs");
        let body = source
            .split("pub fn router(")
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .expect("the router function");
        let plain: Vec<_> = body
            .match_indices(".route(")
            .map(|(at, _)| body[at..].lines().take(2).collect::<String>())
            .collect();
        assert_eq!(plain.len(), 2, "undescribed routes: {plain:#?}");
        assert!(plain.iter().any(|r| r.contains("\"/api/openapi.json\"")));
        assert!(plain.iter().any(|r| r.contains("\"/api/{*rest}\"")));
        let described = body.matches("routes!(").count();
        assert!(described >= 19, "{described} route groups");
    }
}
