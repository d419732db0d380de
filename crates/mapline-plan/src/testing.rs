//! Helpers for this crate's tests: documents built field by field, the way clients write them.

use yrs::{Any, ArrayPrelim, Doc, Map, Transact, TransactionMut, WriteTxn};

use crate::{Plan, entry_prelim, project_doc};

/// A text value.
pub fn t(value: &str) -> yrs::In {
    yrs::In::Any(Any::from(value))
}

/// A nested Y.Array of ids.
pub fn ids(values: &[&str]) -> yrs::In {
    yrs::In::Array(ArrayPrelim::from_iter(values.iter().map(|v| t(v))))
}

/// Writes a whole entry of a collection.
pub fn entry(txn: &mut TransactionMut, root: &str, id: &str, fields: Vec<(&str, yrs::In)>) {
    let map = txn.get_or_insert_map(root);
    map.insert(txn, id, entry_prelim(fields));
}

/// Writes one field of `meta` (or another direct-field root).
pub fn field(txn: &mut TransactionMut, root: &str, name: &str, value: yrs::In) {
    let map = txn.get_or_insert_map(root);
    map.insert(txn, name, value);
}

/// A milestone with the usual fields; `extra` adds or overrides.
pub fn milestone(
    txn: &mut TransactionMut,
    id: &str,
    due: &str,
    depends_on: &[&str],
    extra: Vec<(&str, yrs::In)>,
) {
    let mut fields = vec![
        ("title", t(&format!("Milestone {id}"))),
        ("side", t("joint")),
        ("status", t("not_started")),
        ("due", t(due)),
        ("dependsOn", ids(depends_on)),
    ];
    fields.extend(extra);
    entry(txn, "milestones", id, fields);
}

/// A document written by `write` in one transaction.
pub fn doc_with(write: impl FnOnce(&mut TransactionMut)) -> Doc {
    let doc = Doc::with_client_id(1);
    write(&mut doc.transact_mut());
    doc
}

/// Projects a document written by `write` and hands the plan to `expect`.
pub fn check(write: impl FnOnce(&mut TransactionMut), expect: impl FnOnce(&Plan)) {
    let plan = project_doc(&doc_with(write));
    expect(&plan);
}
