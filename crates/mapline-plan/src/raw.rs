//! The document as it is, before any interpretation: every root, entry and field as a JSON
//! value. The typed projection and the change audit both start here, so the audit reports what
//! clients actually wrote (garbage included), and the projection decides what it means.

use std::collections::BTreeMap;

use serde_json::Value;
use yrs::{Any, Array, GetString, Map, MapRef, Out, ReadTxn};

use crate::schema;

/// The fields of one map: field name → value.
pub type Fields = BTreeMap<String, Value>;

/// The five collections of the schema, each a Y.Map of entries keyed by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Collection {
    Objectives,
    Stakeholders,
    Milestones,
    Criteria,
    Risks,
}

impl Collection {
    /// Every collection, in the order a reader meets them in the plan.
    pub const ALL: [Collection; 5] = [
        Collection::Objectives,
        Collection::Stakeholders,
        Collection::Milestones,
        Collection::Criteria,
        Collection::Risks,
    ];

    /// The root map's name in the document.
    pub fn root(self) -> &'static str {
        match self {
            Collection::Objectives => schema::OBJECTIVES,
            Collection::Stakeholders => schema::STAKEHOLDERS,
            Collection::Milestones => schema::MILESTONES,
            Collection::Criteria => schema::CRITERIA,
            Collection::Risks => schema::RISKS,
        }
    }
}

/// One value of a collection: normally an entry map, but a client may have written anything.
#[derive(Debug, Clone, PartialEq)]
pub enum RawEntry {
    Entry(Fields),
    /// The id holds something that is not a map (shown as-is, flagged by the projection).
    NotAMap(Value),
}

/// Everything a plan document holds, uninterpreted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawPlan {
    pub meta: Fields,
    pub success: Fields,
    pub collections: BTreeMap<Collection, BTreeMap<String, RawEntry>>,
    /// Roots that hold sequence content (a client used `getArray` where a map belongs): their
    /// content is not readable as the schema says and is reported, not silently dropped.
    pub roots_not_maps: Vec<&'static str>,
}

impl RawPlan {
    /// Reads the whole document.
    pub fn read<T: ReadTxn>(txn: &T) -> Self {
        let mut raw = RawPlan {
            meta: read_fields(txn, schema::META),
            success: read_fields(txn, schema::SUCCESS),
            roots_not_maps: roots_not_maps(txn),
            ..RawPlan::default()
        };
        for collection in Collection::ALL {
            let entries = txn
                .get_map(collection.root())
                .map(|map| {
                    map.iter(txn)
                        .map(|(id, value)| (id.to_owned(), entry(txn, value)))
                        .collect()
                })
                .unwrap_or_default();
            raw.collections.insert(collection, entries);
        }
        raw
    }

    /// One collection's entries (empty if the document never had any).
    pub fn entries(&self, collection: Collection) -> impl Iterator<Item = (&String, &RawEntry)> {
        self.collections.get(&collection).into_iter().flatten()
    }
}

/// The fields of a root that holds fields directly (`meta`, `success`).
pub(crate) fn read_fields<T: ReadTxn>(txn: &T, root: &str) -> Fields {
    txn.get_map(root)
        .map(|map| fields(txn, &map))
        .unwrap_or_default()
}

/// One entry of a collection, if the id is present.
pub(crate) fn read_entry<T: ReadTxn>(
    txn: &T,
    collection: Collection,
    id: &str,
) -> Option<RawEntry> {
    let value = txn.get_map(collection.root())?.get(txn, id)?;
    Some(entry(txn, value))
}

fn entry<T: ReadTxn>(txn: &T, value: Out) -> RawEntry {
    match value {
        Out::YMap(entry) => RawEntry::Entry(fields(txn, &entry)),
        other => RawEntry::NotAMap(to_json(txn, other)),
    }
}

/// Roots that hold sequence content, in schema order.
pub(crate) fn roots_not_maps<T: ReadTxn>(txn: &T) -> Vec<&'static str> {
    schema::ROOTS
        .into_iter()
        .filter(|&name| {
            txn.get_map(name).is_some_and(|map| {
                let branch: &yrs::branch::Branch = map.as_ref();
                branch.block_len > 0
            })
        })
        .collect()
}

fn fields<T: ReadTxn>(txn: &T, map: &MapRef) -> Fields {
    map.iter(txn)
        .map(|(key, value)| (key.to_owned(), to_json(txn, value)))
        .collect()
}

/// A document value as JSON: strings and Y.Text as strings, arrays as arrays, nested maps as
/// objects. Values JSON cannot hold (NaN, binary) become descriptive strings, never errors.
pub fn to_json<T: ReadTxn>(txn: &T, value: Out) -> Value {
    match value {
        Out::Any(any) => any_to_json(&any),
        Out::YText(text) => Value::String(text.get_string(txn)),
        Out::YArray(array) => Value::Array(array.iter(txn).map(|v| to_json(txn, v)).collect()),
        Out::YMap(map) => Value::Object(
            map.iter(txn)
                .map(|(k, v)| (k.to_owned(), to_json(txn, v)))
                .collect(),
        ),
        Out::YXmlElement(_) | Out::YXmlFragment(_) | Out::YXmlText(_) => {
            Value::String("<xml>".into())
        }
        Out::YDoc(_) => Value::String("<subdocument>".into()),
        Out::UndefinedRef(_) => Value::Null,
    }
}

pub(crate) fn any_to_json(any: &Any) -> Value {
    match any {
        Any::String(text) => Value::String(text.to_string()),
        Any::Null | Any::Undefined => Value::Null,
        Any::Bool(value) => Value::Bool(*value),
        // As yrs serialises numbers: whole ones as integers, NaN and infinities as null.
        Any::Number(number) => match number.as_i64() {
            Some(whole) => Value::from(whole),
            None => number
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
        },
        Any::Array(items) => Value::Array(items.iter().map(any_to_json).collect()),
        Any::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), any_to_json(v)))
                .collect(),
        ),
        Any::Buffer(bytes) => Value::String(format!("<binary, {} bytes>", bytes.len())),
    }
}
