//! The API's one error type: a status, a stable machine-readable code and a message for
//! people, answered as `{ "error": { "code", "message" } }`; and how the errors of the layers
//! below (credentials, the store) map onto it, in one `match` each; and [`blocking`], the store
//! call every handler makes, with its errors mapped.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mapline_store::{Store, StoreError};
use serde_json::json;

use crate::App;
use crate::identity::auth::AuthError;

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

/// Runs a store call off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    Ok(tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(ApiError::internal)??)
}
