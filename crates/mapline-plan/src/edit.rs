//! Schema-conformant edits: the small writer API the server, the tests and the templates use
//! to change a plan document the way a well-behaved client would (a moved date and its reason
//! in one transaction, dependencies as a nested Y.Array of ids).

use chrono::NaiveDate;
use yrs::{Any, Array as _, ArrayPrelim, Map, MapRef, Out, TransactionMut, WriteTxn};

use crate::model::{MilestoneSide, Status};
use crate::raw::Collection;
use crate::{entry_prelim, field_value, format_date, schema, text};

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
        (
            f::TITLE,
            field_value(schema::MILESTONES, f::TITLE, draft.title),
        ),
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
    // The other prose fields as empty texts (see `schema::prose_fields`).
    for field in schema::prose_fields(schema::MILESTONES) {
        if !fields.iter().any(|(name, _)| *name == field) {
            fields.push((field, field_value(schema::MILESTONES, field, "")));
        }
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

/// Moves go-live and records why it moved (`goLiveSlipReason`), in one transaction. Why the
/// date matters (`goLiveReason`) is the buyer's business reason and is never touched by a move.
pub fn move_go_live(txn: &mut TransactionMut, go_live: NaiveDate, reason: &str) {
    let meta = txn.get_or_insert_map(schema::META);
    meta.insert(txn, schema::meta::GO_LIVE, format_date(go_live));
    meta.insert(txn, schema::meta::GO_LIVE_SLIP_REASON, reason);
}

/// Sets a milestone's status.
pub fn set_status(txn: &mut TransactionMut, id: &str, status: Status) -> Result<(), EditError> {
    let entry = milestone(txn, id)?;
    entry.insert(txn, schema::milestone::STATUS, status.as_str());
    Ok(())
}

/// Why a deleted entry cannot be put back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("{collection} already has an entry {id:?}")]
    Exists {
        collection: &'static str,
        id: String,
    },
}

/// Puts a deleted entry back with its last fields (`fields`, as the history recorded them) and,
/// for a milestone, its id back into the `dependsOn` of each of `dependents` that still exists
/// (and does not name it already). Prose fields are written as `Y.Text` and `dependsOn` as a
/// `Y.Array`, as a v2 writer does; a stakeholder's seller judgments are never written to the
/// plan document (they belong to the internal one). One transaction: the caller's.
pub fn restore_entry(
    txn: &mut TransactionMut,
    collection: Collection,
    id: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
    dependents: &[String],
) -> Result<(), RestoreError> {
    use serde_json::Value;
    let root = collection.root();
    let entries = txn.get_or_insert_map(root);
    if entries.get(txn, id).is_some() {
        return Err(RestoreError::Exists {
            collection: root,
            id: id.to_owned(),
        });
    }
    let mut prelim = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        if collection == Collection::Stakeholders
            && schema::SELLER_JUDGMENTS.contains(&name.as_str())
        {
            continue;
        }
        let value = match value {
            Value::Null => continue,
            Value::String(s) => field_value(root, name, s),
            Value::Array(items)
                if collection == Collection::Milestones
                    && name == schema::milestone::DEPENDS_ON =>
            {
                yrs::In::Array(ArrayPrelim::from_iter(
                    items.iter().filter_map(Value::as_str).map(text),
                ))
            }
            other => yrs::In::Any(json_to_any(other)),
        };
        prelim.push((name.as_str(), value));
    }
    for field in schema::prose_fields(root) {
        if !prelim.iter().any(|(name, _)| *name == field) {
            prelim.push((field, field_value(root, field, "")));
        }
    }
    entries.insert(txn, id, entry_prelim(prelim));
    if collection == Collection::Milestones {
        for dependent in dependents.iter().filter(|d| d.as_str() != id) {
            let Ok(entry) = milestone(txn, dependent) else {
                continue;
            };
            match entry.get(txn, schema::milestone::DEPENDS_ON) {
                Some(Out::YArray(deps)) => {
                    let named = deps
                        .iter(txn)
                        .any(|d| matches!(&d, Out::Any(Any::String(s)) if &**s == id));
                    if !named {
                        deps.push_back(txn, id);
                    }
                }
                None | Some(Out::Any(Any::Null)) => {
                    entry.insert(
                        txn,
                        schema::milestone::DEPENDS_ON,
                        ArrayPrelim::from_iter([text(id)]),
                    );
                }
                // Something else a client wrote: left as it is (the projection reports it).
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// A JSON value as a plain Yjs value (numbers that are whole stay integers).
fn json_to_any(value: &serde_json::Value) -> Any {
    use serde_json::Value;
    match value {
        Value::Null => Any::Null,
        Value::Bool(b) => Any::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(whole) => Any::from(whole),
            None => Any::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Any::from(s.as_str()),
        Value::Array(items) => Any::from(items.iter().map(json_to_any).collect::<Vec<_>>()),
        Value::Object(fields) => Any::from(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), json_to_any(v)))
                .collect::<std::collections::HashMap<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{doc_with, milestone as add};
    use serde_json::json;
    use yrs::{ReadTxn as _, Transact as _};

    fn restore(
        doc: &yrs::Doc,
        id: &str,
        fields: serde_json::Value,
        dependents: &[&str],
    ) -> Result<(), RestoreError> {
        let dependents: Vec<String> = dependents.iter().map(|d| (*d).to_owned()).collect();
        let fields = fields.as_object().cloned().unwrap_or_default();
        restore_entry(
            &mut doc.transact_mut(),
            Collection::Milestones,
            id,
            &fields,
            &dependents,
        )
    }

    #[test]
    fn a_restored_milestone_is_back_with_its_fields_and_its_dependents() {
        let doc = doc_with(|txn| {
            add(txn, "m1", "2027-01-10", &[], vec![]);
            add(txn, "m3", "2027-03-10", &[], vec![]);
        });
        let fields = json!({ "title": "Security review", "due": "2027-02-01", "status": "blocked",
            "dependsOn": ["m1"], "notes": "DPA first", "order": "a1" });
        restore(&doc, "m2", fields.clone(), &["m3", "gone"]).unwrap();
        let plan = crate::project_doc(&doc);
        let m2 = plan.milestone("m2").unwrap();
        assert_eq!(m2.title.as_deref(), Some("Security review"));
        assert_eq!(m2.notes.as_deref(), Some("DPA first"));
        assert_eq!(m2.depends_on, ["m1"]);
        assert_eq!(plan.milestone("m3").unwrap().depends_on, ["m2"]);
        assert_eq!(plan.issues, []);
        let txn = doc.transact();
        let entry = txn
            .get_map(schema::MILESTONES)
            .and_then(|m| m.get(&txn, "m2"));
        let Some(Out::YMap(entry)) = entry else {
            panic!("an entry")
        };
        assert!(matches!(entry.get(&txn, "title"), Some(Out::YText(_))));
        assert!(matches!(
            entry.get(&txn, "due"),
            Some(Out::Any(Any::String(_)))
        ));
        drop(txn);
        assert_eq!(
            restore(&doc, "m2", fields, &[]),
            Err(RestoreError::Exists {
                collection: "milestones",
                id: "m2".into()
            })
        );
    }

    #[test]
    fn a_dependent_that_names_it_already_is_left_alone() {
        let doc = doc_with(|txn| add(txn, "m3", "2027-03-10", &["m2"], vec![]));
        restore(&doc, "m2", json!({ "title": "x" }), &["m3"]).unwrap();
        assert_eq!(
            crate::project_doc(&doc).milestone("m3").unwrap().depends_on,
            ["m2"]
        );
    }

    #[test]
    fn a_restored_stakeholder_never_brings_judgments_into_the_plan_document() {
        let doc = yrs::Doc::new();
        let fields =
            json!({ "name": "Ann", "title": "CFO", "power": "blocker", "engagement": "dark" });
        restore_entry(
            &mut doc.transact_mut(),
            Collection::Stakeholders,
            "st-a",
            fields.as_object().unwrap(),
            &[],
        )
        .unwrap();
        let raw = crate::RawPlan::read(&doc.transact());
        let Some((_, crate::raw::RawEntry::Entry(fields))) =
            raw.entries(Collection::Stakeholders).next()
        else {
            panic!("an entry")
        };
        // (`notes` is there as an empty text, as every prose field of a new entry.)
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["name", "notes", "title"]
        );
    }
}
