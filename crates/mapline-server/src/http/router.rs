//! The HTTP surface: JSON API, the sync endpoint's checks before the upgrade, health and
//! metrics, and the web client's files. Every error is `{ "error": { "code", "message" } }`.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use mapline_plan::NewPlan;
use mapline_store::{DocKind, DocRef, PlanId, StoreError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::App;
use crate::http::plan_api;
use crate::http::plans;
use crate::http::shares;
use crate::identity::auth::{AuthError, Principal, ReadAccess};
use crate::sync::conn::{self, ConnectionParams};
use crate::sync::writer::now_ms;

/// Largest accepted JSON body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An API error: status, stable machine-readable code, and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn no_such_plan() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "plan_not_found",
            "no plan has this id",
        )
    }

    pub(crate) fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; try again",
        )
    }

    pub(crate) fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the server is recovering from a storage failure; try again shortly",
        )
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Invalid => {
                Self::new(StatusCode::UNAUTHORIZED, "invalid_token", error.to_string())
            }
            AuthError::Revoked => {
                Self::new(StatusCode::UNAUTHORIZED, "share_revoked", error.to_string())
            }
            AuthError::Expired => {
                Self::new(StatusCode::UNAUTHORIZED, "share_expired", error.to_string())
            }
            AuthError::NotSignedIn => {
                Self::new(StatusCode::UNAUTHORIZED, "not_signed_in", error.to_string())
            }
            AuthError::SessionExpired => Self::new(
                StatusCode::UNAUTHORIZED,
                "session_expired",
                error.to_string(),
            ),
            AuthError::SessionRevoked => Self::new(
                StatusCode::UNAUTHORIZED,
                "session_revoked",
                error.to_string(),
            ),
            AuthError::Store(StoreError::Unavailable) => Self::unavailable(),
            AuthError::Store(error) => Self::internal(error),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::PlanExists(id) => Self::new(
                StatusCode::CONFLICT,
                "plan_exists",
                format!("plan {id} already exists"),
            ),
            StoreError::NoSuchPlan(_) => Self::no_such_plan(),
            // A link minting through a parent revoked or expired since its token was checked.
            StoreError::ShareRevoked(_) => Self::from(AuthError::Revoked),
            StoreError::ShareExpired(_) => Self::from(AuthError::Expired),
            StoreError::EmailTaken(email) => Self::new(
                StatusCode::CONFLICT,
                "member_exists",
                format!("a member with the email {email} already exists"),
            ),
            StoreError::NoSuchMember(_) => Self::new(
                StatusCode::NOT_FOUND,
                "member_not_found",
                "no member has this id",
            ),
            StoreError::Unavailable => Self::unavailable(),
            other => Self::internal(other),
        }
    }
}

/// A JSON body whose every rejection is an [`ApiError`]. `LIMIT` is the body limit of the
/// routes that take it, named in the 413's message; a route with a limit other than
/// [`MAX_BODY_BYTES`] also sets it with its own `DefaultBodyLimit` layer (see [`router`]).
pub struct ApiJson<T, const LIMIT: usize = MAX_BODY_BYTES>(pub T);

impl<T: DeserializeOwned, S: Send + Sync, const LIMIT: usize> FromRequest<S> for ApiJson<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // JSON first, then its shape: valid JSON of the wrong shape is always 422, whichever
        // way serde happens to classify the mismatch.
        let Json(value) = Json::<serde_json::Value>::from_request(request, state)
            .await
            .map_err(|rejection| json_rejection(rejection, LIMIT))?;
        serde_json::from_value(value).map(Self).map_err(|error| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("the body does not have the expected fields: {error}"),
            )
        })
    }
}

fn json_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", text)
        }
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", text)
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the body is larger than {limit} bytes ({})",
                human_bytes(limit)
            ),
        ),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", text),
    }
}

/// `65536` → "64 KiB", `8388608` → "8 MiB" (whole units only; anything else in bytes).
fn human_bytes(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

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
            .routes(routes!(create_plan, crate::http::pipeline::list_plans))
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
            .routes(routes!(backup))
            .routes(routes!(sync))
            .routes(routes!(sync_internal))
            .routes(routes!(
                crate::http::webhooks::create,
                crate::http::webhooks::list
            ))
            .routes(routes!(crate::http::webhooks::delete))
            .routes(routes!(crate::http::webhooks::deliveries_of))
            .routes(routes!(crate::identity::oidc::login))
            .routes(routes!(crate::identity::oidc::callback))
            .routes(routes!(crate::identity::oidc::auth_config))
            .routes(routes!(healthz))
            .routes(routes!(metrics))
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

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "`{ \"status\": \"ok\" }`")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", security(()), responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.metrics.stored_bytes.set(app.store.file_bytes() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolves the caller from `Authorization: Bearer` or, for WebSocket clients that cannot set
/// headers, a `token` query parameter; without either, from the session cookie (a member). A
/// token always wins over the cookie. Cookie-authenticated writes were already checked for
/// CSRF by [`crate::identity::session::csrf_guard`].
pub(crate) async fn authenticate(
    app: &Arc<App>,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Principal, ApiError> {
    let token = bearer(headers).or(query_token).filter(|t| !t.is_empty());
    let Some(token) = token else {
        let session = crate::identity::session::cookie_session(headers)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing_token",
                    "send a token as `Authorization: Bearer <token>`, or sign in",
                )
            })?
            .to_owned();
        let app = app.clone();
        return Ok(tokio::task::spawn_blocking(move || {
            crate::identity::session::authenticate_session(&app.store, &session, now_ms())
        })
        .await
        .map_err(ApiError::internal)??);
    };
    let token = token.to_owned();
    let app = app.clone();
    let principal =
        tokio::task::spawn_blocking(move || app.auth.authenticate(&app.store, &token, now_ms()))
            .await
            .map_err(ApiError::internal)??;
    Ok(principal)
}

/// The admin credential or an admin member.
pub(crate) fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_admin() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_only",
            "this needs the admin credential or an admin member",
        ))
    }
}

/// The admin credential itself (operations such as a backup of the whole file).
pub(crate) fn require_admin_token(principal: &Principal) -> Result<(), ApiError> {
    match principal {
        Principal::Admin => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_only",
            "this needs the admin credential",
        )),
    }
}

/// Checks that the caller may read the plan named in the path, and that it exists.
pub(crate) async fn authorize_read(
    app: &Arc<App>,
    principal: &Principal,
    raw_id: &str,
) -> Result<PlanId, ApiError> {
    let plan_id = parse_plan_id(raw_id)?;
    match principal.read_access() {
        ReadAccess::Every => {}
        ReadAccess::Only(plan) if plan == plan_id => {}
        ReadAccess::Only(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_plan",
                "this link is for another plan",
            ));
        }
        ReadAccess::Membership(member) => {
            // A membership exists only for an existing plan.
            let store = app.store.clone();
            let member_of =
                tokio::task::spawn_blocking(move || store.plan_membership(plan_id, member))
                    .await
                    .map_err(ApiError::internal)??
                    .is_some();
            if !member_of {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "not_a_plan_member",
                    "you are not the owner or a member of this plan; ask its owner to add you",
                ));
            }
            return Ok(plan_id);
        }
    }
    // A share exists only for an existing plan; the others may name any id, so check it.
    if !matches!(principal, Principal::Share(_)) {
        let store = app.store.clone();
        let exists = tokio::task::spawn_blocking(move || store.plan(plan_id))
            .await
            .map_err(ApiError::internal)??
            .is_some();
        if !exists {
            return Err(ApiError::no_such_plan());
        }
    }
    Ok(plan_id)
}

pub(crate) fn parse_plan_id(raw: &str) -> Result<PlanId, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::no_such_plan())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatePlanBody {
    title: String,
    buyer_org: String,
    seller_org: String,
    go_live: String,
    /// An id chosen by the caller (e.g. derived from a CRM deal), making creation idempotent.
    #[serde(default)]
    id: Option<Uuid>,
    /// A built-in template (`GET /api/templates`): its milestones are dated back from go-live.
    #[serde(default)]
    template: Option<String>,
}

#[utoipa::path(post, path = "/api/plans", tag = "plans", request_body = CreatePlanBody, responses((status = 201, description = "`{ id, shares }`: the plan's id and a seller and a buyer link"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
async fn create_plan(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<ApiJson<CreatePlanBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let principal = authenticate(&app, &headers, None).await?;
    // The admin credential (automation) or any member, who then owns the plan.
    if matches!(principal, Principal::Share(_)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_only",
            "creating a plan needs the admin credential or a signed-in member",
        ));
    }
    let ApiJson(body) = body?;
    let plan = NewPlan::parse(
        &body.title,
        &body.buyer_org,
        &body.seller_org,
        &body.go_live,
    )
    .and_then(|plan| match body.template.as_deref() {
        Some(template) => plan.with_template(template),
        None => Ok(plan),
    })
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let id = body.id.unwrap_or_else(Uuid::now_v7);
    let first_update = mapline_plan::new_plan_update(&plan, plans::server_client_id());
    let store = app.store.clone();
    let shares = tokio::task::spawn_blocking(move || {
        plans::create_plan(&store, id, &plan, first_update, now_ms())
    })
    .await
    .map_err(ApiError::internal)??;
    if let Some(owner) = principal.member() {
        let owner = owner.member.id;
        crate::http::plan_api::blocking(&app, move |store| {
            store.add_plan_member(
                id,
                owner,
                mapline_store::PlanMemberRecord {
                    role: mapline_store::PlanMemberRole::Owner,
                    added_at_ms: now_ms(),
                },
            )
        })
        .await?;
    }
    tracing::info!(plan_id = %id, owner = ?principal.member().map(|m| m.member.id), "plan created");
    let public_url = app.config.public_url.as_deref();
    let shares: Vec<_> = shares.iter().map(|s| s.view(public_url)).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "shares": shares })),
    ))
}

/// `GET /api/admin/backup` (admin): a consistent copy of the whole data file, taken from one read
/// transaction while the server keeps serving. The copy is written next to the data file,
/// unlinked once open, and streamed, so it never lingers on disk.
#[utoipa::path(get, path = "/api/admin/backup", tag = "operations", responses((status = 200, description = "A consistent copy of the data file", content_type = "application/octet-stream"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
async fn backup(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
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

#[derive(Deserialize)]
struct SyncQuery {
    #[serde(default)]
    token: Option<String>,
    /// `1` to receive durability acknowledgements and refusal notices.
    #[serde(default)]
    acks: Option<String>,
}

#[utoipa::path(get, path = "/sync/{plan_id}", tag = "sync", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("token" = Option<String>, Query, description = "The token, for clients that cannot send headers"), ("acks" = Option<String>, Query, description = "`1` for durability acknowledgements")), responses((status = 101, description = "Upgraded to the y-websocket protocol (docs/protocol.md)"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
async fn sync(
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
async fn sync_internal(
    State(app): State<Arc<App>>,
    Path(plan_id): Path<String>,
    query: Result<Query<SyncQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    open_sync(app, plan_id, DocKind::Internal, query, headers, upgrade).await
}

/// Whether a principal may open a plan's internal document (sellers, members and the admin).
pub(crate) fn may_see_internal(principal: &Principal) -> bool {
    match principal {
        Principal::Admin | Principal::Member(_) => true,
        Principal::Share(share) => share.side == mapline_store::Side::Seller,
    }
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

/// Used when no web client is built: a page that says so instead of a bare 404.
pub(crate) async fn no_web_client() -> impl IntoResponse {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            crate::http::headers::NO_CLIENT_CSP,
        )],
        Html(include_str!("no-web-client.html")),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_limits_are_named_in_whole_units() {
        for (bytes, expected) in [
            (super::MAX_BODY_BYTES, "64 KiB"),
            (crate::http::exports::MAX_IMPORT_BYTES, "8 MiB"),
            (1536, "1536 bytes"),
            (1000, "1000 bytes"),
        ] {
            assert_eq!(super::human_bytes(bytes), expected, "{bytes}");
        }
    }

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
