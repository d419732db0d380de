//! Merge without loss, over random offline/online schedules of several clients: every
//! character anyone typed is in the final text, and every write of a plain value that did not
//! survive — lost to a concurrent write, not replaced by someone who had seen it — has exactly
//! one conflict record in the history the server derives.

use std::collections::BTreeMap;

use mapline_plan::{ChangeKind, HistoryTracker};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use yrs::updates::decoder::Decode;
use yrs::{
    Doc, GetString, Map, MapPrelim, Out, ReadTxn, StateVector, Text, TextPrelim, Transact, Update,
};

const CLIENTS: usize = 3;
const PLAIN: [&str; 2] = ["status", "due"];

#[derive(Debug, Clone)]
enum Op {
    /// A client sets a plain field (each write's value is unique).
    Set { client: usize, field: usize },
    /// A client types a character into the note at a position (modulo its length).
    Type { client: usize, at: usize },
    /// A client sends what it has to the server and takes what it lacks.
    Sync { client: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..CLIENTS, 0..PLAIN.len()).prop_map(|(client, field)| Op::Set { client, field }),
        (0..CLIENTS, 0..64usize).prop_map(|(client, at)| Op::Type { client, at }),
        (0..CLIENTS).prop_map(|client| Op::Sync { client }),
    ]
}

/// One plain write: its value, its item's id, and what its writer had seen of each client.
struct Write {
    field: &'static str,
    value: String,
    client: u64,
    clock: u32,
}

struct World {
    server: Doc,
    tracker: HistoryTracker,
    clients: Vec<Doc>,
    /// Conflict records derived by the server: (field, lost value) → how many.
    lost_records: BTreeMap<(String, String), usize>,
    /// Every plain write made, with what its writer had seen when it wrote.
    writes: Vec<(Write, StateVector)>,
    /// The lost writes as the server experiences them, worked out from values and the
    /// writers' state vectors only: (field, lost value) → how many.
    expected: BTreeMap<(String, String), usize>,
}

impl World {
    fn server_value(&self, field: &str) -> Option<String> {
        let txn = self.server.transact();
        let Some(Out::YMap(step)) = txn.get_map("milestones")?.get(&txn, "m1") else {
            return None;
        };
        match step.get(&txn, field) {
            Some(Out::Any(yrs::Any::String(s))) => Some(s.to_string()),
            _ => None,
        }
    }

    /// Whether `writer` had seen `write` when it wrote.
    fn saw(sv: &StateVector, write: &Write) -> bool {
        sv.get(&yrs::block::ClientID::new(write.client)) > write.clock
    }

    fn sync(&mut self, i: usize) {
        let before: Vec<Option<String>> = PLAIN.iter().map(|f| self.server_value(f)).collect();
        let server_had = self.server.transact().state_vector();
        let sv = self.server.transact().state_vector();
        let up = self.clients[i].transact().encode_diff_v1(&sv);
        let (derivation, _) =
            self.tracker
                .apply(&self.server, Update::decode_v1(&up).unwrap(), &up);
        for change in derivation.changes {
            if change.kind == ChangeKind::Conflict {
                let lost = change.old.and_then(|v| v.as_str().map(str::to_owned));
                *self
                    .lost_records
                    .entry((change.field.unwrap_or_default(), lost.unwrap_or_default()))
                    .or_default() += 1;
            }
        }
        let server_has = self.server.transact().state_vector();
        for (f, field) in PLAIN.iter().enumerate() {
            let after = self.server_value(field);
            let arrived: Vec<&(Write, StateVector)> = self
                .writes
                .iter()
                .filter(|(w, _)| {
                    w.field == *field && !Self::saw(&server_had, w) && Self::saw(&server_has, w)
                })
                .collect();
            let winner = self
                .writes
                .iter()
                .find(|(w, _)| Some(&w.value) == after.as_ref());
            for (w, _) in &arrived {
                let superseded = arrived
                    .iter()
                    .any(|(other, sv)| !std::ptr::eq(other, w) && Self::saw(sv, w));
                if Some(&w.value) != after.as_ref() && !superseded {
                    *self
                        .expected
                        .entry((field.to_string(), w.value.clone()))
                        .or_default() += 1;
                }
            }
            if let (Some(old), Some((_, winner_saw))) = (&before[f], winner)
                && Some(old) != after.as_ref()
                && let Some((displaced, _)) = self.writes.iter().find(|(w, _)| &w.value == old)
                && !Self::saw(winner_saw, displaced)
            {
                *self
                    .expected
                    .entry((field.to_string(), old.clone()))
                    .or_default() += 1;
            }
        }
        let sv = self.clients[i].transact().state_vector();
        let down = self.server.transact().encode_diff_v1(&sv);
        self.clients[i]
            .transact_mut()
            .apply_update(Update::decode_v1(&down).unwrap())
            .unwrap();
    }
}

fn entry<T: ReadTxn>(txn: &T, doc_map: &yrs::MapRef) -> yrs::MapRef {
    match doc_map.get(txn, "m1") {
        Some(Out::YMap(entry)) => entry,
        _ => panic!("no m1"),
    }
}

fn run(ops: Vec<Op>) {
    let server = Doc::with_client_id(1);
    let tracker = HistoryTracker::attach(&server);
    let mut world = World {
        server,
        tracker,
        clients: (0..CLIENTS)
            .map(|i| Doc::with_client_id(10 + i as u64))
            .collect(),
        lost_records: BTreeMap::new(),
        writes: Vec::new(),
        expected: BTreeMap::new(),
    };
    // Client 0 creates the step; everyone starts from it.
    {
        let milestones = world.clients[0].get_or_insert_map("milestones");
        let mut txn = world.clients[0].transact_mut();
        let step = milestones.insert(&mut txn, "m1", MapPrelim::default());
        step.insert(&mut txn, "notes", TextPrelim::new(""));
    }
    for i in 0..CLIENTS {
        world.sync(i);
    }
    let mut typed = Vec::new();
    for (n, op) in ops.into_iter().enumerate() {
        match op {
            Op::Set { client, field } => {
                let doc = &world.clients[client];
                let field = PLAIN[field];
                let value = format!("{field}-{n}");
                let sv = doc.transact().state_vector();
                let id = 10 + client as u64;
                let milestones = doc.get_or_insert_map("milestones");
                let mut txn = doc.transact_mut();
                entry(&txn, &milestones).insert(&mut txn, field, value.as_str());
                drop(txn);
                let write = Write {
                    field,
                    value,
                    client: id,
                    clock: sv.get(&yrs::block::ClientID::new(id)),
                };
                world.writes.push((write, sv));
            }
            Op::Type { client, at } => {
                let doc = &world.clients[client];
                let milestones = doc.get_or_insert_map("milestones");
                let mut txn = doc.transact_mut();
                let Some(Out::YText(notes)) = entry(&txn, &milestones).get(&txn, "notes") else {
                    panic!("no notes")
                };
                let len = notes.len(&txn);
                let ch = char::from(b'a' + (n % 26) as u8).to_string();
                notes.insert(&mut txn, at as u32 % (len + 1), &ch);
                typed.push(ch);
            }
            Op::Sync { client } => world.sync(client),
        }
    }
    for _ in 0..2 {
        for i in 0..CLIENTS {
            world.sync(i);
        }
    }
    let txn = world.server.transact();
    let milestones = txn.get_map("milestones").unwrap();
    let step = entry(&txn, &milestones);
    // Every character typed is in the note (nobody deleted any).
    let Some(Out::YText(notes)) = step.get(&txn, "notes") else {
        panic!("no notes")
    };
    let mut final_chars: Vec<char> = notes.get_string(&txn).chars().collect();
    let mut typed_chars: Vec<char> = typed.concat().chars().collect();
    final_chars.sort_unstable();
    typed_chars.sort_unstable();
    assert_eq!(final_chars, typed_chars);
    // Each write that lost has exactly one record; no other write has any.
    let expected = world.expected.clone();
    drop(txn);
    assert_eq!(world.lost_records, expected);
}

proptest! {
    #![proptest_config(Config {
        cases: 300,
        rng_seed: RngSeed::Fixed(12),
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn every_lost_plain_write_has_exactly_one_conflict_record_and_no_typed_character_is_lost(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        run(ops);
    }
}
