//! Schema-conformant edits: the small writer API the server, the tests and the templates use
//! to change a plan document the way a well-behaved client would (a moved date and its reason
//! in one transaction, dependencies as a nested Y.Array of ids).

use chrono::NaiveDate;
use yrs::{Any, ArrayPrelim, Map, MapRef, Out, TransactionMut, WriteTxn};

use crate::model::{MilestoneSide, Status};
use crate::{entry_prelim, format_date, schema, text};

/// A milestone to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilestoneDraft<'a> {
    pub title: &'a str,
    pub workstream: &'a str,
    pub side: MilestoneSide,
    /// A stakeholder id or a person's name.
    pub owner: Option<&'a str>,
    pub due: Option<NaiveDate>,
    pub depends_on: Vec<String>,
    /// Fractional index for display order.
    pub order: Option<String>,
}

/// An edit named something the document does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("no milestone has id {0:?}")]
    NoSuchMilestone(String),
}

/// Adds (or replaces) a milestone entry, status `not_started`.
pub fn add_milestone(txn: &mut TransactionMut, id: &str, draft: &MilestoneDraft<'_>) {
    use schema::milestone as f;
    let mut fields = vec![
        (f::TITLE, text(draft.title)),
        (f::WORKSTREAM, text(draft.workstream)),
        (f::SIDE, text(draft.side.as_str())),
        (f::STATUS, text(Status::NotStarted.as_str())),
        (
            f::DEPENDS_ON,
            yrs::In::Array(ArrayPrelim::from_iter(
                draft.depends_on.iter().map(|d| text(d)),
            )),
        ),
    ];
    if let Some(owner) = draft.owner {
        fields.push((f::OWNER, text(owner)));
    }
    if let Some(due) = draft.due {
        fields.push((f::DUE, text(&format_date(due))));
    }
    if let Some(order) = &draft.order {
        fields.push((f::ORDER, text(order)));
    }
    let milestones = txn.get_or_insert_map(schema::MILESTONES);
    milestones.insert(txn, id, entry_prelim(fields));
}

fn milestone(txn: &mut TransactionMut, id: &str) -> Result<MapRef, EditError> {
    let milestones = txn.get_or_insert_map(schema::MILESTONES);
    match milestones.get(txn, id) {
        Some(Out::YMap(entry)) => Ok(entry),
        _ => Err(EditError::NoSuchMilestone(id.to_owned())),
    }
}

/// Moves (or clears) a milestone's due date and records why, in the same transaction — which
/// is what makes the reason part of the slip.
pub fn move_due(
    txn: &mut TransactionMut,
    id: &str,
    due: Option<NaiveDate>,
    reason: &str,
) -> Result<(), EditError> {
    let entry = milestone(txn, id)?;
    let due = due.map_or(Any::Null, |d| Any::from(format_date(d)));
    entry.insert(txn, schema::milestone::DUE, due);
    entry.insert(txn, schema::milestone::SLIP_REASON, reason);
    Ok(())
}

/// Moves go-live and records why, in one transaction.
pub fn move_go_live(txn: &mut TransactionMut, go_live: NaiveDate, reason: &str) {
    let meta = txn.get_or_insert_map(schema::META);
    meta.insert(txn, schema::meta::GO_LIVE, format_date(go_live));
    meta.insert(txn, schema::meta::GO_LIVE_REASON, reason);
}

/// Sets a milestone's status.
pub fn set_status(txn: &mut TransactionMut, id: &str, status: Status) -> Result<(), EditError> {
    let entry = milestone(txn, id)?;
    entry.insert(txn, schema::milestone::STATUS, status.as_str());
    Ok(())
}
