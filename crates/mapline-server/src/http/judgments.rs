//! The seller's judgments of the buyer's people in API answers: read from the plan's internal
//! document and merged into the plan's stakeholders for seller links and the admin only. A buyer
//! link's answer is the projection alone, which never holds a judgment (`docs/schema.md`).

use std::sync::Arc;

use mapline_plan::{Judgments, Plan, merge_judgments, read_judgments};
use mapline_store::{DocKind, DocRef, PlanId, Store, StoreError};
use serde_json::Value;

use crate::App;
use crate::http::error::ApiError;
use crate::http::extract::may_see_internal;
use crate::identity::auth::Principal;

/// The judgments as the plan's internal document holds them now (its room, loaded if needed).
pub(crate) async fn current(app: &Arc<App>, plan_id: PlanId) -> Result<Judgments, ApiError> {
    let room = app
        .rooms
        .open(DocRef {
            plan: plan_id,
            kind: DocKind::Internal,
        })
        .await
        .map_err(ApiError::internal)?;
    Ok(room.read(|txn| read_judgments(txn)).0)
}

/// The judgments from the data file (snapshot plus log), for readers without the server.
pub(crate) fn stored(store: &Store, plan_id: PlanId) -> Result<Judgments, StoreError> {
    let internal = DocRef {
        plan: plan_id,
        kind: DocKind::Internal,
    };
    Ok(crate::history::stored_doc(store, internal)?
        .map(|doc| read_judgments(&yrs::Transact::transact(&doc)))
        .unwrap_or_default())
}

/// The projected plan as JSON, with the seller's judgments merged into each stakeholder when
/// `judgments` is given.
pub(crate) fn plan_json(plan: &Plan, judgments: Option<&Judgments>) -> Value {
    let mut value = serde_json::to_value(plan).unwrap_or(Value::Null);
    if let Some(judgments) = judgments {
        merge_judgments(&mut value, judgments);
    }
    value
}

/// The current plan as this principal may read it: with the judgments for seller links and
/// the admin, without them (the keys absent) for buyer links.
pub(crate) async fn plan_for(
    app: &Arc<App>,
    principal: &Principal,
    plan_id: PlanId,
    plan: &Plan,
) -> Result<Value, ApiError> {
    let judgments = if may_see_internal(principal) {
        Some(current(app, plan_id).await?)
    } else {
        None
    };
    Ok(plan_json(plan, judgments.as_ref()))
}
