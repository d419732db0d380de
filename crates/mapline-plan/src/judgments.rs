//! The seller's judgments of the buyer's people (`docs/schema.md`, "The internal document"):
//! `power`, `engagement` and private notes per stakeholder, held in the plan's internal document
//! (`stakeholders`, keyed by the plan's stakeholder ids), never in the shared one. Readers here
//! take the internal document; nothing in this module ever reads the plan document, so a buyer's
//! view cannot pick a judgment up by accident.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use yrs::{
    Any, Doc, Map as _, MapPrelim, Options, ReadTxn, StateVector, Transact as _, WriteTxn as _,
};

use crate::model::{Engagement, Power};
use crate::raw::to_json;
use crate::schema::{self, stakeholder as f};

/// The seller's view of one stakeholder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Judgment {
    pub power: Option<Power>,
    pub engagement: Option<Engagement>,
    /// The seller's private notes on the person (`notes` of the internal entry).
    pub private_notes: Option<String>,
}

impl Judgment {
    /// Whether it holds nothing (no entry is worth writing for it).
    pub fn is_empty(&self) -> bool {
        *self == Judgment::default()
    }

    /// Reads a judgment from fields as a plan's JSON or a v1 document names them (`power`,
    /// `engagement`, and `private_notes_field` for the notes). Values outside the enumerations
    /// are dropped: a judgment is advice, and a wrong one is worse than none.
    pub fn from_fields(fields: &serde_json::Map<String, Value>, private_notes_field: &str) -> Self {
        let text = |name: &str| fields.get(name).and_then(Value::as_str);
        Judgment {
            power: text(f::POWER).and_then(Power::parse),
            engagement: text(f::ENGAGEMENT).and_then(Engagement::parse),
            private_notes: text(private_notes_field)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        }
    }
}

/// Every stakeholder's judgment, by stakeholder id.
pub type Judgments = BTreeMap<String, Judgment>;

/// Reads the judgments from an internal document. Total: an entry that is not a map, or a
/// field of the wrong shape, is skipped (the internal document is the seller's own notebook).
pub fn read_judgments<T: ReadTxn>(txn: &T) -> Judgments {
    let Some(root) = txn.get_map(schema::INTERNAL_STAKEHOLDERS) else {
        return Judgments::new();
    };
    root.iter(txn)
        .filter_map(|(id, value)| match to_json(txn, value) {
            Value::Object(fields) => Some((
                id.to_owned(),
                Judgment::from_fields(&fields, f::PRIVATE_NOTES),
            )),
            _ => None,
        })
        .collect()
}

/// Merges judgments into a projected plan's JSON (`plan` of `GET /api/plans/{id}`): every
/// stakeholder gets `power`, `engagement` and `privateNotes` (null when the seller has not
/// judged). Only for principals who may read the internal document.
pub fn merge_judgments(plan: &mut Value, judgments: &Judgments) {
    let Some(stakeholders) = plan
        .get_mut(schema::STAKEHOLDERS)
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let none = Judgment::default();
    for stakeholder in stakeholders {
        let Some(fields) = stakeholder.as_object_mut() else {
            continue;
        };
        let id = fields.get("id").and_then(Value::as_str).unwrap_or_default();
        let judgment = judgments.get(id).unwrap_or(&none);
        fields.insert(
            f::POWER.into(),
            judgment.power.map_or(Value::Null, |p| p.as_str().into()),
        );
        fields.insert(
            f::ENGAGEMENT.into(),
            judgment
                .engagement
                .map_or(Value::Null, |e| e.as_str().into()),
        );
        fields.insert(
            "privateNotes".into(),
            judgment
                .private_notes
                .clone()
                .map_or(Value::Null, Value::String),
        );
    }
}

/// The first update of a new plan's internal document holding these judgments (the private
/// notes as `Y.Text`), written by a document with the given Yjs client id; `None` when there is
/// nothing to write.
pub fn judgments_update(judgments: &Judgments, client_id: u64) -> Option<Vec<u8>> {
    let judgments: Vec<_> = judgments.iter().filter(|(_, j)| !j.is_empty()).collect();
    if judgments.is_empty() {
        return None;
    }
    let doc = Doc::with_options(Options {
        client_id: yrs::block::ClientID::new(client_id & crate::JS_SAFE_CLIENT_ID),
        ..Options::default()
    });
    {
        let mut txn = doc.transact_mut();
        let root = txn.get_or_insert_map(schema::INTERNAL_STAKEHOLDERS);
        for (id, judgment) in judgments {
            let entry = root.insert(&mut txn, id.as_str(), MapPrelim::default());
            if let Some(power) = judgment.power {
                entry.insert(&mut txn, f::POWER, Any::from(power.as_str()));
            }
            if let Some(engagement) = judgment.engagement {
                entry.insert(&mut txn, f::ENGAGEMENT, Any::from(engagement.as_str()));
            }
            if let Some(notes) = &judgment.private_notes {
                entry.insert(
                    &mut txn,
                    f::PRIVATE_NOTES,
                    yrs::TextPrelim::new(notes.as_str()),
                );
            }
        }
    }
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    Some(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn judgment(
        power: Option<Power>,
        engagement: Option<Engagement>,
        notes: Option<&str>,
    ) -> Judgment {
        Judgment {
            power,
            engagement,
            private_notes: notes.map(str::to_owned),
        }
    }

    #[test]
    fn judgments_written_for_a_new_plan_read_back_with_notes_as_text() {
        let mut written = Judgments::new();
        written.insert(
            "st-lena".into(),
            judgment(
                Some(Power::Blocker),
                Some(Engagement::Dark),
                Some("Wants SOC 2"),
            ),
        );
        written.insert("st-empty".into(), Judgment::default());
        let update = judgments_update(&written, 9).expect("something to write");
        let doc = crate::tests::apply(&update);
        let txn = doc.transact();
        let read = read_judgments(&txn);
        assert_eq!(read.len(), 1, "empty judgments are not written: {read:?}");
        assert_eq!(read["st-lena"], written["st-lena"]);
        let entry = txn
            .get_map(schema::INTERNAL_STAKEHOLDERS)
            .and_then(|m| m.get(&txn, "st-lena"));
        let Some(yrs::Out::YMap(entry)) = entry else {
            panic!("an entry map")
        };
        assert!(matches!(entry.get(&txn, "notes"), Some(yrs::Out::YText(_))));
        assert!(judgments_update(&Judgments::new(), 9).is_none());
    }

    #[test]
    fn values_outside_the_enumerations_and_wrong_shapes_are_dropped() {
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            let root = txn.get_or_insert_map(schema::INTERNAL_STAKEHOLDERS);
            let entry = root.insert(&mut txn, "st-a", MapPrelim::default());
            entry.insert(&mut txn, "power", "tyrant");
            entry.insert(&mut txn, "engagement", "engaged");
            root.insert(&mut txn, "st-b", "not a map");
        }
        let read = read_judgments(&doc.transact());
        assert_eq!(read.len(), 1);
        assert_eq!(
            read["st-a"],
            judgment(None, Some(Engagement::Engaged), None)
        );
    }

    #[test]
    fn merging_gives_every_stakeholder_the_three_keys() {
        let mut plan =
            json!({ "stakeholders": [{ "id": "st-a", "name": "Ann" }, { "id": "st-b" }] });
        let mut judgments = Judgments::new();
        judgments.insert(
            "st-a".into(),
            judgment(Some(Power::Decider), None, Some("x")),
        );
        merge_judgments(&mut plan, &judgments);
        assert_eq!(
            plan["stakeholders"][0],
            json!({ "id": "st-a", "name": "Ann", "power": "decider", "engagement": null, "privateNotes": "x" })
        );
        assert_eq!(
            plan["stakeholders"][1],
            json!({ "id": "st-b", "power": null, "engagement": null, "privateNotes": null })
        );
    }
}
