//! The projection and the derivation over arbitrary update sequences: two clients edit any root,
//! entry and field with any kind of value (garbage included), sometimes send raw bytes as an
//! update, and merge in any order; the server's document takes every update through the
//! history tracker. Nothing panics, the tracker's incremental state always equals a full read
//! of the document, and the plan always projects.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mapline_plan::{HistoryTracker, RawPlan, project, schema};
use yrs::types::ToJson as _;
use yrs::updates::decoder::Decode as _;
use yrs::{
    Any, Array as _, ArrayPrelim, Doc, Map as _, MapPrelim, ReadTxn as _, Transact as _, Update,
    WriteTxn as _,
};

const FIELDS: [&str; 8] = ["title", "due", "status", "dependsOn", "side", "owner", "order", "slipReason"];
const ENTRIES: [&str; 4] = ["ms-a", "ms-b", "st-x", "r-1"];

#[derive(Arbitrary, Debug)]
enum Value {
    Text(String),
    Date(u8, u8),
    Number(f64),
    Bool(bool),
    Null,
    Array(Vec<String>),
    Map,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A client sets a field of an entry (or of meta/success).
    Set { client: bool, root: u8, entry: u8, field: u8, value: Value },
    /// A client deletes an entry or a field.
    Delete { client: bool, root: u8, entry: u8, field: Option<u8> },
    /// A client writes an array where a map belongs (a schema violation).
    RootArray { client: bool, root: u8 },
    /// A client's pending changes reach the server and the other client.
    Send { client: bool },
    /// Raw bytes arrive as an update.
    Raw(Vec<u8>),
}

fn value(v: &Value) -> Any {
    match v {
        Value::Text(s) => Any::from(s.as_str()),
        Value::Date(m, d) => Any::from(format!("2027-{:02}-{:02}", m % 14, d % 33)),
        Value::Number(n) => Any::from(*n),
        Value::Bool(b) => Any::from(*b),
        Value::Null => Any::Null,
        Value::Array(items) => Any::from(items.iter().map(|s| Any::from(s.as_str())).collect::<Vec<_>>()),
        Value::Map => Any::Null,
    }
}

struct Client {
    doc: Doc,
    sent: yrs::StateVector,
}

fuzz_target!(|ops: Vec<Op>| {
    let server = Doc::with_client_id(1);
    let mut tracker = HistoryTracker::attach(&server);
    let mut clients = [2u64, 3].map(|id| Client { doc: Doc::with_client_id(id), sent: yrs::StateVector::default() });
    let apply = |tracker: &mut HistoryTracker, update: Update, raw: &[u8]| {
        let (_derivation, _error) = tracker.apply(&server, update, raw);
        let full = RawPlan::read(&server.transact());
        assert_eq!(tracker.current(), &full, "the tracker's state drifted from the document");
        let _ = project(tracker.current());
    };
    for op in ops.iter().take(64) {
        match op {
            Op::Set { client, root, entry, field, value: v } => {
                let doc = &clients[usize::from(*client)].doc;
                let root_name = schema::ROOTS[usize::from(*root) % schema::ROOTS.len()];
                let field = FIELDS[usize::from(*field) % FIELDS.len()];
                let mut txn = doc.transact_mut();
                let map = txn.get_or_insert_map(root_name);
                if root_name == schema::META || root_name == schema::SUCCESS {
                    map.insert(&mut txn, field, value(v));
                } else {
                    let id = ENTRIES[usize::from(*entry) % ENTRIES.len()];
                    let entry = match map.get(&txn, id) {
                        Some(yrs::Out::YMap(entry)) => entry,
                        _ => map.insert(&mut txn, id, MapPrelim::default()),
                    };
                    match v {
                        Value::Map => {
                            entry.insert(&mut txn, field, MapPrelim::default());
                        }
                        Value::Array(items) if field == "dependsOn" => {
                            let array = entry.insert(&mut txn, field, ArrayPrelim::default());
                            for item in items.iter().take(4) {
                                array.push_back(&mut txn, item.as_str());
                            }
                        }
                        other => {
                            entry.insert(&mut txn, field, value(other));
                        }
                    }
                }
            }
            Op::Delete { client, root, entry, field } => {
                let doc = &clients[usize::from(*client)].doc;
                let root_name = schema::ROOTS[usize::from(*root) % schema::ROOTS.len()];
                let mut txn = doc.transact_mut();
                let map = txn.get_or_insert_map(root_name);
                let id = ENTRIES[usize::from(*entry) % ENTRIES.len()];
                match (field, map.get(&txn, id)) {
                    (Some(f), Some(yrs::Out::YMap(entry))) => {
                        entry.remove(&mut txn, FIELDS[usize::from(*f) % FIELDS.len()]);
                    }
                    _ => {
                        map.remove(&mut txn, id);
                    }
                }
            }
            Op::RootArray { client, root } => {
                let doc = &clients[usize::from(*client)].doc;
                let name = schema::ROOTS[usize::from(*root) % schema::ROOTS.len()];
                // A root can only be one type per document; yrs refuses a second, so only try
                // it on a root this client has never touched.
                if doc.transact().get_map(name).is_none() {
                    let array = doc.get_or_insert_array(name);
                    array.push_back(&mut doc.transact_mut(), "x");
                }
            }
            Op::Send { client } => {
                let i = usize::from(*client);
                let update = {
                    let c = &clients[i];
                    c.doc.transact().encode_diff_v1(&c.sent)
                };
                clients[i].sent = clients[i].doc.transact().state_vector();
                if let Ok(decoded) = Update::decode_v1(&update) {
                    apply(&mut tracker, decoded, &update);
                }
                if let Ok(decoded) = Update::decode_v1(&update) {
                    let _ = clients[1 - i].doc.transact_mut().apply_update(decoded);
                }
            }
            Op::Raw(bytes) => {
                if let Ok(update) = Update::decode_v1(bytes) {
                    apply(&mut tracker, update, bytes);
                }
            }
        }
    }
    // Whatever the server holds still serialises.
    let txn = server.transact();
    for name in schema::ROOTS {
        if let Some(map) = txn.get_map(name) {
            let _ = map.to_json(&txn);
        }
    }
});
