//! The OpenAPI description of the HTTP API, served at `/api/openapi.json`. It is generated from
//! the route definitions: every route is registered through `utoipa_axum`'s `routes!`, which
//! takes its path and method from the handler's `#[utoipa::path]`, so a route cannot exist
//! without being described (a test checks that no route is registered any other way).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, SecurityRequirement};
use utoipa::{Modify, ToSchema};

/// Every error answer: `{ "error": { "code", "message" } }`.
#[derive(ToSchema)]
#[allow(dead_code)] // Only described, never built: errors are built by `ApiError`.
pub struct ErrorBody {
    error: ErrorDetail,
}

/// A stable machine-readable code and a message for people.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    code: String,
    message: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Mapline",
        description = "Mutual action plans that buyers and sellers edit together. Authenticate with `Authorization: Bearer <token>`: the admin credential or a share link's token. See docs/api.md."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody, ErrorDetail))
)]
pub struct ApiDoc;

/// Declares the bearer scheme and makes it the default requirement.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}
