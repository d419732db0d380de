//! Schema version 1 → 2 (`docs/schema.md`): prose strings become `Y.Text`, the seller's
//! judgments of stakeholders move to the internal document, `meta.schemaVersion` becomes 2.
//!
//! The migration is computed from the documents' state alone and written by a fixed Yjs
//! client id, so two nodes migrating the same state write the same bytes (Yjs integrates them
//! once), and a document already at version 2 is left alone.

use std::collections::BTreeMap;

use yrs::updates::decoder::Decode;
use yrs::{
    Any, Doc, Map, MapPrelim, MapRef, Options, Out, ReadTxn, StateVector, TextPrelim, Transact,
    Update, WriteTxn,
};

use crate::raw::Collection;
use crate::schema;

/// The Yjs client id of the server's own schema migrations: above 2^32, so no Yjs client
/// draws it (they use 32-bit ids), and below 2^53, so JavaScript reads it exactly.
pub const MIGRATION_CLIENT: u64 = (1 << 33) + 2;

/// The two updates of one migration: both must be stored together, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// For the plan document (v1 encoding).
    pub plan: Vec<u8>,
    /// For the internal document; `None` when no judgment moves.
    pub internal: Option<Vec<u8>>,
}

/// The document's schema version: `meta.schemaVersion`, or 1 without it.
pub fn schema_version<T: ReadTxn>(txn: &T) -> u32 {
    let version = txn
        .get_map(schema::META)
        .and_then(|meta| meta.get(txn, schema::meta::SCHEMA_VERSION));
    match version {
        Some(Out::Any(Any::Number(n))) => {
            n.as_i64().and_then(|n| u32::try_from(n).ok()).unwrap_or(1)
        }
        _ => 1,
    }
}

/// Whether a plan document is older than the current schema: below version 2 and not empty
/// (a plan's first update is written in the current version).
pub fn needs_migration<T: ReadTxn>(txn: &T) -> bool {
    schema_version(txn) < schema::SCHEMA_VERSION && txn.get_map(schema::META).is_some()
}

/// The migration a plan needs, or `None` if it needs none ([`needs_migration`]).
pub fn migration(plan: &Doc, internal: &Doc) -> Option<Migration> {
    let state = {
        let txn = plan.transact();
        if !needs_migration(&txn) {
            return None;
        }
        txn.encode_state_as_update_v1(&StateVector::default())
    };
    let scratch = copy(&state)?;
    let judgments = {
        let mut txn = scratch.transact_mut();
        let judgments = upgrade_plan(&mut txn);
        let meta = txn.get_or_insert_map(schema::META);
        meta.insert(
            &mut txn,
            schema::meta::SCHEMA_VERSION,
            Any::from(f64::from(schema::SCHEMA_VERSION)),
        );
        judgments
    };
    let plan_update = scratch.transact().encode_diff_v1(&state_vector_of(&state)?);
    let internal_update = (!judgments.is_empty())
        .then(|| move_judgments(internal, &judgments))
        .flatten();
    Some(Migration {
        plan: plan_update,
        internal: internal_update,
    })
}

/// A document of the migration's client holding `state`.
fn copy(state: &[u8]) -> Option<Doc> {
    let doc = Doc::with_options(Options {
        client_id: yrs::block::ClientID::new(MIGRATION_CLIENT),
        skip_gc: false,
        ..Options::default()
    });
    doc.transact_mut()
        .apply_update(Update::decode_v1(state).ok()?)
        .ok()?;
    Some(doc)
}

fn state_vector_of(state: &[u8]) -> Option<StateVector> {
    let doc = Doc::new();
    doc.transact_mut()
        .apply_update(Update::decode_v1(state).ok()?)
        .ok()?;
    let sv = doc.transact().state_vector();
    Some(sv)
}

/// Per stakeholder id, the judgments to move (field → value).
type Judgments = BTreeMap<String, BTreeMap<&'static str, Any>>;

/// Turns prose strings into texts and takes the judgments out of the shared stakeholders, in
/// a fixed order (sorted ids and fields) so the same state always gives the same update.
fn upgrade_plan(txn: &mut yrs::TransactionMut<'_>) -> Judgments {
    for root in [schema::META, schema::SUCCESS] {
        let map = txn.get_or_insert_map(root);
        texts_of(txn, &map, root);
    }
    let mut judgments = Judgments::new();
    for collection in Collection::ALL {
        let root = collection.root();
        let Some(map) = txn.get_map(root) else {
            continue;
        };
        let mut ids: Vec<String> = map.keys(txn).map(str::to_owned).collect();
        ids.sort_unstable();
        for id in ids {
            let Some(Out::YMap(entry)) = map.get(txn, &id) else {
                continue;
            };
            texts_of(txn, &entry, root);
            if collection != Collection::Stakeholders {
                continue;
            }
            for field in schema::SELLER_JUDGMENTS {
                if let Some(Out::Any(any)) = entry.remove(txn, field) {
                    judgments.entry(id.clone()).or_default().insert(field, any);
                }
            }
        }
    }
    judgments
}

/// Replaces every prose field of one map that holds a string with a text of the same string,
/// and gives every absent prose field an empty text (two people's first words in a field that
/// does not exist yet would otherwise compete for its key, and one would be lost).
fn texts_of(txn: &mut yrs::TransactionMut<'_>, map: &MapRef, root: &str) {
    let absent: Vec<&str> = schema::prose_fields(root)
        .filter(|field| map.get(txn, field).is_none())
        .collect();
    for field in absent {
        map.insert(txn, field, TextPrelim::new(""));
    }
    let mut fields: Vec<(String, String)> = map
        .iter(txn)
        .filter(|(field, _)| schema::is_prose(root, field))
        .filter_map(|(field, value)| match value {
            Out::Any(Any::String(text)) => Some((field.to_owned(), text.to_string())),
            _ => None,
        })
        .collect();
    fields.sort_unstable();
    for (field, text) in fields {
        map.insert(txn, field, TextPrelim::new(text));
    }
}

/// The internal document's update taking the judgments (a value already there is kept).
fn move_judgments(internal: &Doc, judgments: &Judgments) -> Option<Vec<u8>> {
    let state = internal
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let scratch = copy(&state)?;
    {
        let mut txn = scratch.transact_mut();
        let people = txn.get_or_insert_map(schema::INTERNAL_STAKEHOLDERS);
        for (id, fields) in judgments {
            let entry = match people.get(&txn, id) {
                Some(Out::YMap(entry)) => entry,
                _ => people.insert(&mut txn, id.as_str(), MapPrelim::default()),
            };
            for (field, value) in fields {
                if entry.get(&txn, field).is_none() {
                    entry.insert(&mut txn, *field, value.clone());
                }
            }
        }
    }
    let update = scratch.transact().encode_diff_v1(&state_vector_of(&state)?);
    Some(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{entry, t};
    use yrs::GetString;

    fn v1_plan() -> Doc {
        let doc = Doc::with_client_id(7);
        let mut txn = doc.transact_mut();
        let meta = txn.get_or_insert_map(schema::META);
        meta.insert(&mut txn, "title", "Acme rollout");
        meta.insert(&mut txn, "goLive", "2027-04-01");
        meta.insert(&mut txn, "objective", "Cut onboarding time");
        entry(
            &mut txn,
            "stakeholders",
            "st-raj",
            vec![
                ("name", t("Raj")),
                ("notes", t("Met at the summit")),
                ("power", t("blocker")),
                ("engagement", t("dark")),
            ],
        );
        entry(
            &mut txn,
            "milestones",
            "m1",
            vec![("title", t("Kickoff")), ("due", t("2027-01-10"))],
        );
        drop(txn);
        doc
    }

    fn apply(doc: &Doc, update: &[u8]) {
        doc.transact_mut()
            .apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
    }

    fn field(doc: &Doc, root: &str, id: Option<&str>, name: &str) -> Option<Out> {
        let txn = doc.transact();
        let map = txn.get_map(root)?;
        match id {
            None => map.get(&txn, name),
            Some(id) => match map.get(&txn, id)? {
                Out::YMap(entry) => entry.get(&txn, name),
                _ => None,
            },
        }
    }

    #[test]
    fn a_v1_plan_gets_texts_version_2_and_its_judgments_move_to_the_internal_document() {
        let plan = v1_plan();
        let internal = Doc::with_client_id(8);
        let migration = migration(&plan, &internal).expect("a v1 plan needs migrating");
        apply(&plan, &migration.plan);
        apply(
            &internal,
            migration.internal.as_ref().expect("judgments move"),
        );
        assert_eq!(schema_version(&plan.transact()), 2);
        let Some(Out::YText(title)) = field(&plan, "meta", None, "title") else {
            panic!("the title is not a text")
        };
        assert_eq!(title.get_string(&plan.transact()), "Acme rollout");
        assert!(matches!(
            field(&plan, "meta", None, "goLive"),
            Some(Out::Any(_))
        ));
        assert!(matches!(
            field(&plan, "stakeholders", Some("st-raj"), "notes"),
            Some(Out::YText(_))
        ));
        assert!(matches!(
            field(&plan, "stakeholders", Some("st-raj"), "name"),
            Some(Out::Any(_))
        ));
        assert!(field(&plan, "stakeholders", Some("st-raj"), "power").is_none());
        assert!(field(&plan, "stakeholders", Some("st-raj"), "engagement").is_none());
        assert_eq!(
            field(&internal, "stakeholders", Some("st-raj"), "power"),
            Some(Out::Any(Any::from("blocker")))
        );
        // Once is enough.
        assert!(super::migration(&plan, &internal).is_none());
    }

    #[test]
    fn two_nodes_migrating_the_same_state_write_the_same_bytes_and_merge_to_one_migration() {
        let a = v1_plan();
        let b = Doc::with_client_id(9);
        apply(
            &b,
            &a.transact()
                .encode_state_as_update_v1(&StateVector::default()),
        );
        let internal = Doc::new();
        let from_a = migration(&a, &internal).unwrap();
        let from_b = migration(&b, &internal).unwrap();
        assert_eq!(from_a, from_b);
        apply(&a, &from_a.plan);
        apply(&a, &from_b.plan);
        let Some(Out::YText(objective)) = field(&a, "meta", None, "objective") else {
            panic!("not a text")
        };
        assert_eq!(objective.get_string(&a.transact()), "Cut onboarding time");
    }

    #[test]
    fn a_judgment_already_in_the_internal_document_is_kept() {
        let plan = v1_plan();
        let internal = Doc::with_client_id(8);
        {
            let mut txn = internal.transact_mut();
            entry(
                &mut txn,
                "stakeholders",
                "st-raj",
                vec![("power", t("decider"))],
            );
        }
        let migration = migration(&plan, &internal).unwrap();
        apply(&internal, migration.internal.as_ref().unwrap());
        assert_eq!(
            field(&internal, "stakeholders", Some("st-raj"), "power"),
            Some(Out::Any(Any::from("decider")))
        );
        assert_eq!(
            field(&internal, "stakeholders", Some("st-raj"), "engagement"),
            Some(Out::Any(Any::from("dark")))
        );
    }

    #[test]
    fn an_empty_document_is_not_migrated() {
        assert!(migration(&Doc::new(), &Doc::new()).is_none());
    }
}
