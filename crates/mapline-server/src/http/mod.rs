//! The HTTP surface: the router and the sync endpoint's checks before the upgrade
//! ([`router`]), the security headers, the failed-token limit, the OpenAPI document and the web
//! client's files, and the handlers of the JSON API, one file per family.

pub mod audit;
pub mod exports;
pub(crate) mod headers;
pub(crate) mod judgments;
pub(crate) mod limits;
pub(crate) mod openapi;
pub mod pipeline;
pub(crate) mod plan_api;
pub mod plans;
pub(crate) mod restore;
pub(crate) mod reviews;
pub(crate) mod router;
pub(crate) mod shares;
pub(crate) mod web;
pub(crate) mod webhooks;
