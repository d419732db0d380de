//! The HTTP surface: the route table ([`router`]), the API's error type ([`error`]), what
//! handlers take from a request — the caller, the plan it may read, a JSON body ([`extract`]) —
//! the security headers, the failed-token limit, the OpenAPI document, the web client's files,
//! the sync endpoint's checks before the upgrade ([`upgrade`]), and the handlers, one file per
//! family. Handlers depend on `error` and `extract`, never on the router.

pub mod audit;
pub(crate) mod error;
pub mod exports;
pub(crate) mod extract;
pub(crate) mod headers;
pub(crate) mod judgments;
pub(crate) mod limits;
pub(crate) mod openapi;
pub(crate) mod operations;
pub mod pipeline;
pub(crate) mod plan_api;
pub mod plans;
pub(crate) mod restore;
pub(crate) mod reviews;
pub(crate) mod router;
pub(crate) mod shares;
pub(crate) mod upgrade;
pub(crate) mod web;
pub(crate) mod webhooks;
