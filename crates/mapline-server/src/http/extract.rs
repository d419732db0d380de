//! What a handler takes from the request, with every rejection an [`ApiError`]: the caller
//! ([`Caller`], from [`authenticate`]: a token or the session cookie), the caller with the plan
//! in the path it may read ([`PlanReader`], adding [`authorize_read`]), an admin ([`Admin`]),
//! a JSON body within its limit ([`ApiJson`]) and a query string ([`query`]).
//!
//! The extractors run before the handler's body, in the order of its arguments, so a handler
//! takes one only where authenticating first was already its first step: a handler that refuses
//! a bad query or body before it looks at the caller keeps calling the functions itself.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mapline_store::PlanId;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::App;
use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::identity::auth::{Principal, ReadAccess};

/// Largest accepted JSON body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body whose every rejection is an [`ApiError`]. `LIMIT` is the body limit of the
/// routes that take it, named in the 413's message; a route with a limit other than
/// [`MAX_BODY_BYTES`] also sets it with its own `DefaultBodyLimit` layer (see
/// [`crate::http::router::router`]).
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
        let session = crate::identity::auth::cookie_session(headers)
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
            crate::identity::auth::authenticate_session(&app.store, &session, now_ms())
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

/// The caller, authenticated from `Authorization: Bearer` or the session cookie ([`authenticate`]
/// without a query token).
pub(crate) struct Caller(pub Principal);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        authenticate(app, &parts.headers, None).await.map(Self)
    }
}

/// The caller is the admin credential or an admin member ([`require_admin`]).
pub(crate) struct Admin;

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, app).await?;
        require_admin(&principal)?;
        Ok(Self)
    }
}

/// A [`Caller`] and the plan named by the route's `{plan_id}`, which it may read and which
/// exists ([`authorize_read`]).
pub(crate) struct PlanReader {
    pub principal: Principal,
    pub plan_id: PlanId,
}

impl FromRequestParts<Arc<App>> for PlanReader {
    /// The path's own rejection as axum answers it (as a handler's `Path` did), else an
    /// [`ApiError`].
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(raw_id) = params.get("plan_id") else {
            return Err(
                ApiError::internal("a PlanReader on a route without {plan_id}").into_response(),
            );
        };
        let Caller(principal) = Caller::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let plan_id = authorize_read(app, &principal, raw_id)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self { principal, plan_id })
    }
}

/// A query string whose rejection is a 400 `bad_query`.
pub(crate) fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_query", message)
}

pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| bad_query(e.body_text()))
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

/// Whether a principal may open a plan's internal document (sellers, members and the admin).
pub(crate) fn may_see_internal(principal: &Principal) -> bool {
    match principal {
        Principal::Admin | Principal::Member(_) => true,
        Principal::Share(share) => share.side == mapline_store::Side::Seller,
    }
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
}
