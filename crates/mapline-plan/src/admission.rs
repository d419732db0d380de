//! What an update may bring into a plan before it is stored.
//!
//! yrs integrates an update item by item and cannot undo: an item whose parent is not a type
//! (yrs' `InvalidParent`) stops the integration half-way and, once stored, is sent to every
//! client again on each reconnect. And a plan is read whole by every route, so one document
//! holding 100,000 milestones slows every reader. So an update is admitted first: one pass over
//! its encoding, against an index of the document's types — no scratch copy of the document.
//!
//! An update that merely waits for earlier updates (a parent or origin the document has not
//! seen yet: a clock gap) is admitted, as yrs keeps it pending until the rest arrives.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use yrs::block::ItemContent;
use yrs::{Any, ClientID, ID, Map as _, ReadTxn};

use crate::schema;
use crate::walk::{ItemIndex, Parent, WalkedItem};

/// Limits on what one plan can hold. Documented in `docs/api.md`; configurable on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Entries per collection (milestones, stakeholders, criteria, risks, objectives).
    pub entries_per_collection: usize,
    /// Characters in one text value (a title, a note, one inserted run of a text).
    pub text_chars: usize,
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self {
            entries_per_collection: 2_000,
            text_chars: 20_000,
        }
    }
}

/// The collections whose entries are counted against [`PlanLimits::entries_per_collection`].
pub const COLLECTIONS: [&str; 5] = [
    schema::OBJECTIVES,
    schema::STAKEHOLDERS,
    schema::MILESTONES,
    schema::CRITERIA,
    schema::RISKS,
];

/// Why an update was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The update's encoding could not be read.
    #[error("the update cannot be decoded: {0}")]
    Malformed(String),
    /// An item names as its parent an item that is not a type (a map, array or text).
    #[error("item {item} names {parent} as its parent, which is not a map, array or text")]
    InvalidParent { item: String, parent: String },
    /// The update would make a collection hold more entries than the limit.
    #[error("{collection} would hold {count} entries, over the limit of {limit}")]
    TooManyEntries {
        collection: String,
        count: usize,
        limit: usize,
    },
    /// The update writes a seller's judgment (`power`, `engagement`) into a shared
    /// stakeholder: from schema v2 on they live in the internal document, and the plan
    /// document reaches every buyer link.
    #[error(
        "`{field}` is the seller's judgment of a stakeholder: it belongs in the internal document (schema v2), not the shared plan"
    )]
    SellerJudgment { field: String },
    /// A text value longer than the limit.
    #[error("a text of {chars} characters{}, over the limit of {limit}", in_field(.field))]
    TextTooLong {
        /// The map field, when the encoding names it (a replaced value names only its
        /// neighbour).
        field: Option<String>,
        chars: usize,
        limit: usize,
    },
}

fn in_field(field: &Option<String>) -> String {
    field
        .as_ref()
        .map(|name| format!(" in \"{name}\""))
        .unwrap_or_default()
}

impl Refusal {
    /// A limit was exceeded (as opposed to an update that cannot integrate).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Refusal::TooManyEntries { .. } | Refusal::TextTooLong { .. }
        )
    }
}

/// The longest string anywhere in a value (nested maps and arrays included, keys too).
fn longest_text(value: &Any) -> usize {
    match value {
        Any::String(text) => text.chars().count(),
        Any::Array(values) => values.iter().map(longest_text).max().unwrap_or(0),
        Any::Map(entries) => entries
            .iter()
            .map(|(key, value)| key.chars().count().max(longest_text(value)))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

/// The items of a v1-encoded update, in encoding order (GC and skip ranges left out).
fn walk(raw: &[u8]) -> Result<Vec<WalkedItem>, Refusal> {
    crate::walk::items(raw)
        .map_err(|error| Refusal::Malformed(error.to_string()))?
        .ok_or_else(|| Refusal::Malformed("clocks beyond 2^32".into()))
}

/// Refuses a seller's judgment written into a shared stakeholder entry, as a first value of
/// the field or as a later one (whose encoding names only the value it replaces).
fn check_judgments(items: &[WalkedItem], keys: &Keys) -> Result<(), Refusal> {
    for (item, judgment) in items.iter().zip(&keys.judgments) {
        if *judgment == Some(true) {
            let field = match &item.parent_sub {
                Some(field) => field.to_string(),
                None => "power or engagement".to_owned(),
            };
            return Err(Refusal::SellerJudgment { field });
        }
    }
    Ok(())
}

/// The admission state of one document: which of its items are types, and what was admitted
/// but is not in the document yet (updates on their way to the disk).
pub struct Admission {
    limits: PlanLimits,
    /// Whether the document is a plan (collections counted) or another document.
    count_entries: bool,
    /// Every item ever seen holding a type (a map, array or text): the parents an item may name.
    types: HashSet<ID>,
    /// Per client, the clock past everything admitted: below it, an item is known.
    admitted_clock: HashMap<ClientID, u32>,
    /// Per client, the clock below which everything is in the document or admitted, with no
    /// gap ([`Admission::in_flight_clock`]).
    in_flight_clock: HashMap<ClientID, u32>,
    /// New entry keys admitted per collection and not yet in the document.
    admitted_keys: HashMap<&'static str, HashSet<Arc<str>>>,
    /// Items named as a parent before the server saw them (by their own client, which skipped
    /// them): whoever supplies one later must supply a type, or the admitted child would stop
    /// yrs half-way once both are in the document.
    expected_types: HashMap<ClientID, std::collections::BTreeSet<u32>>,
    /// Every item ever seen directly in a collection (an entry, or an entry's later value), with
    /// its key: a value set after it (its origin) sets the same key again.
    collection_items: ItemIndex<(&'static str, Arc<str>)>,
    /// Every item ever seen setting a field of a stakeholder entry: whether the field is a
    /// seller's judgment (a later value of the same field names it as its origin).
    stakeholder_fields: ItemIndex<bool>,
}

/// What the items of one update set, resolved through their origins ([`Admission::keys_of`]).
struct Keys {
    /// Per item: the collection entry it sets, if it sits directly in a collection.
    entries: Vec<Option<(&'static str, Arc<str>)>>,
    /// Per item: whether it sets a seller's judgment, if it sets a stakeholder's field.
    judgments: Vec<Option<bool>>,
}

impl Admission {
    /// An empty index; feed it the stored updates with [`Admission::note_stored`].
    pub fn new(limits: PlanLimits, count_entries: bool) -> Self {
        Self {
            limits,
            count_entries,
            types: HashSet::new(),
            admitted_clock: HashMap::new(),
            in_flight_clock: HashMap::new(),
            admitted_keys: HashMap::new(),
            expected_types: HashMap::new(),
            collection_items: ItemIndex::default(),
            stakeholder_fields: ItemIndex::default(),
        }
    }

    /// Indexes the types of an update (or snapshot) already in the document. A stored update
    /// that does not decode is skipped: loading never fails on it.
    pub fn note_stored(&mut self, raw: &[u8]) {
        if let Ok(items) = walk(raw) {
            let keys = self.keys_of(&items);
            self.note_types(&items, keys);
        }
    }

    fn note_types(&mut self, items: &[WalkedItem], keys: Keys) {
        for ((item, entry), judgment) in items.iter().zip(keys.entries).zip(keys.judgments) {
            if matches!(item.content, ItemContent::Type(_)) {
                self.types.insert(item.id);
            }
            if let Some(entry) = entry {
                self.collection_items.insert(item.id, item.len, entry);
            }
            if let Some(judgment) = judgment {
                self.stakeholder_fields.insert(item.id, item.len, judgment);
            }
        }
    }

    /// Which collection entry, and which stakeholder field, each item of an update sets: named
    /// by its parent and key, or inherited from the value it replaces (in the document or
    /// earlier in this update, in any order the encoding puts them).
    fn keys_of(&self, items: &[WalkedItem]) -> Keys {
        let entries =
            crate::walk::resolve_inherited(items, |item| match (&item.parent, &item.parent_sub) {
                (Parent::Named(root), Some(key)) => COLLECTIONS
                    .iter()
                    .find(|collection| **collection == root.as_ref())
                    .map(|collection| (*collection, key.clone())),
                (Parent::Inherited, _) => item
                    .origin
                    .and_then(|origin| self.collection_items.get(&origin).cloned()),
                _ => None,
            });
        // Stakeholder entries this update brings (their fields name them as their parent).
        let mut people: ItemIndex<()> = ItemIndex::default();
        for (item, entry) in items.iter().zip(&entries) {
            if entry
                .as_ref()
                .is_some_and(|(collection, _)| *collection == schema::STAKEHOLDERS)
            {
                people.insert(item.id, item.len, ());
            }
        }
        let judgments =
            crate::walk::resolve_inherited(items, |item| match (&item.parent, &item.parent_sub) {
                (Parent::Item(entry), Some(field)) => {
                    let of_person = people.get(entry).is_some()
                        || self
                            .collection_items
                            .get(entry)
                            .is_some_and(|(collection, _)| *collection == schema::STAKEHOLDERS);
                    of_person.then(|| schema::SELLER_JUDGMENTS.contains(&field.as_ref()))
                }
                (Parent::Inherited, _) => item
                    .origin
                    .and_then(|origin| self.stakeholder_fields.get(&origin).copied()),
                _ => None,
            });
        Keys { entries, judgments }
    }

    /// The clock below which everything of `client` is in the document or admitted and on its
    /// way there, with no gap (0 if nothing is in flight): an update repeating only such items
    /// changes nothing. An update that skipped clocks (waiting for missing ones) does not move
    /// it, so the update filling the gap is never taken for an echo.
    pub fn in_flight_clock(&self, client: ClientID) -> u32 {
        self.in_flight_clock.get(&client).copied().unwrap_or(0)
    }

    /// Forgets what is in flight (its commit failed): senders resend it, and the resend must be
    /// stored.
    pub fn forget_in_flight(&mut self) {
        self.in_flight_clock.clear();
    }

    /// Everything admitted is in the document now (no write in flight). `pending` says whether
    /// the document still holds updates waiting for missing ones: what they add is not in the
    /// document yet, so it stays counted.
    pub fn settled(&mut self, pending: bool) {
        if !pending {
            self.admitted_clock.clear();
            self.in_flight_clock.clear();
            self.admitted_keys.clear();
        }
    }

    /// Decides whether `raw` (a v1 update) may be stored on top of the document `txn` reads,
    /// and if so records what it adds.
    pub fn admit<T: ReadTxn>(&mut self, txn: &T, raw: &[u8]) -> Result<(), Refusal> {
        let items = walk(raw)?;
        self.check_expected(&items)?;
        let unseen_parents = self.check_parents(txn, &items)?;
        self.check_texts(&items)?;
        let keys = self.keys_of(&items);
        if self.count_entries {
            check_judgments(&items, &keys)?;
        }
        let new_keys = if self.count_entries {
            self.check_entries(txn, &items, &keys)?
        } else {
            Vec::new()
        };
        self.note_types(&items, keys);
        let document = txn.state_vector();
        for item in &items {
            let contiguous = self.in_flight_clock.entry(item.id.client).or_insert(0);
            let below = (*contiguous).max(document.get(&item.id.client));
            if item.id.clock <= below {
                *contiguous = below.max(item.id.clock.saturating_add(item.len));
            }
        }
        for item in &items {
            let end = item.id.clock.saturating_add(item.len);
            let known = self.admitted_clock.entry(item.id.client).or_insert(0);
            *known = (*known).max(end);
        }
        for (collection, key) in new_keys {
            self.admitted_keys
                .entry(collection)
                .or_default()
                .insert(key);
        }
        for item in items
            .iter()
            .filter(|i| matches!(i.content, ItemContent::Type(_)))
        {
            if let Some(clocks) = self.expected_types.get_mut(&item.id.client) {
                clocks.remove(&item.id.clock);
            }
        }
        for parent in unseen_parents {
            self.expected_types
                .entry(parent.client)
                .or_default()
                .insert(parent.clock);
        }
        Ok(())
    }

    /// Records an update the server wrote itself (a schema migration) without checking it: it
    /// is built from the document by the server, and a plan over a limit lowered since must
    /// still be migratable.
    pub fn admit_trusted(&mut self, raw: &[u8]) {
        let Ok(items) = walk(raw) else { return };
        let keys = self.keys_of(&items);
        self.note_types(&items, keys);
        for item in &items {
            let end = item.id.clock.saturating_add(item.len);
            let known = self.admitted_clock.entry(item.id.client).or_insert(0);
            *known = (*known).max(end);
        }
    }

    /// Refuses an update that supplies, as anything but a type, an item an admitted update
    /// named as its parent before it was seen.
    fn check_expected(&self, items: &[WalkedItem]) -> Result<(), Refusal> {
        for item in items {
            let Some(clocks) = self.expected_types.get(&item.id.client) else {
                continue;
            };
            let end = item.id.clock.saturating_add(item.len);
            let Some(expected) = clocks.range(item.id.clock..end).next() else {
                continue;
            };
            if !matches!(item.content, ItemContent::Type(_)) {
                return Err(Refusal::InvalidParent {
                    item: format!("{}:{}", item.id.client, item.id.clock),
                    parent: format!("{}:{}", item.id.client, expected),
                });
            }
        }
        Ok(())
    }

    /// Returns the parents the server has not seen yet (admitted: the update waits for them).
    fn check_parents<T: ReadTxn>(&self, txn: &T, items: &[WalkedItem]) -> Result<Vec<ID>, Refusal> {
        // Per client, the clock ranges this update holds (in clock order, as encoded).
        let mut own_ranges: HashMap<ClientID, Vec<(u32, u32)>> = HashMap::new();
        let mut own_types = HashSet::new();
        for item in items {
            own_ranges
                .entry(item.id.client)
                .or_default()
                .push((item.id.clock, item.id.clock + item.len));
            if matches!(item.content, ItemContent::Type(_)) {
                own_types.insert(item.id);
            }
        }
        for ranges in own_ranges.values_mut() {
            ranges.sort_unstable();
        }
        let in_update = |id: &ID| {
            own_ranges.get(&id.client).is_some_and(|ranges| {
                let after = ranges.partition_point(|(start, _)| *start <= id.clock);
                after > 0 && id.clock < ranges[after - 1].1
            })
        };
        // Read only when an item names its parent by id (most updates name none).
        let mut document_clocks = None;
        let mut deleted = None;
        let mut unseen = Vec::new();
        for item in items {
            let Parent::Item(parent) = &item.parent else {
                continue;
            };
            if own_types.contains(parent) || self.types.contains(parent) {
                continue;
            }
            let own = in_update(parent);
            let known_below = document_clocks
                .get_or_insert_with(|| txn.state_vector())
                .get(&parent.client)
                .max(
                    self.admitted_clock
                        .get(&parent.client)
                        .copied()
                        .unwrap_or(0),
                );
            if !own && parent.clock >= known_below {
                // Not seen yet: the update waits for it, as yrs keeps it pending. A client only
                // ever names items it has; an item of its own it skipped sending will come from
                // it (and must then be a type), but another client's item that the server never
                // relayed cannot be one a real client holds.
                if parent.client == item.id.client && parent.clock < item.id.clock {
                    unseen.push(*parent);
                    continue;
                }
                return Err(Refusal::InvalidParent {
                    item: format!("{}:{}", item.id.client, item.id.clock),
                    parent: format!("{}:{}", parent.client, parent.clock),
                });
            }
            // A deleted type's content is gone from the document (and from a snapshot), so it
            // is not in the index; yrs integrates children of a deleted parent as deleted.
            let deleted = deleted.get_or_insert_with(|| txn.snapshot().delete_set);
            if !own && deleted.contains(parent) {
                continue;
            }
            return Err(Refusal::InvalidParent {
                item: format!("{}:{}", item.id.client, item.id.clock),
                parent: format!("{}:{}", parent.client, parent.clock),
            });
        }
        Ok(unseen)
    }

    fn check_texts(&self, items: &[WalkedItem]) -> Result<(), Refusal> {
        let limit = self.limits.text_chars;
        for item in items {
            let chars = match &item.content {
                ItemContent::String(text) => text.as_str().chars().count(),
                ItemContent::Any(values) => values.iter().map(longest_text).max().unwrap_or(0),
                ItemContent::JSON(values) => values
                    .iter()
                    .map(|text| text.chars().count())
                    .max()
                    .unwrap_or(0),
                ItemContent::Embed(value) => longest_text(value),
                _ => 0,
            };
            if chars > limit {
                return Err(Refusal::TextTooLong {
                    field: item.parent_sub.as_deref().map(str::to_owned),
                    chars,
                    limit,
                });
            }
        }
        Ok(())
    }

    /// Counts the entries the update adds to each collection; returns the new keys.
    fn check_entries<T: ReadTxn>(
        &self,
        txn: &T,
        items: &[WalkedItem],
        keys: &Keys,
    ) -> Result<Vec<(&'static str, Arc<str>)>, Refusal> {
        let mut new_keys = Vec::new();
        for collection in COLLECTIONS {
            let map = txn.get_map(collection);
            let in_doc = |key: &str| map.as_ref().is_some_and(|m| m.contains_key(txn, key));
            let mut adding: HashSet<Arc<str>> = HashSet::new();
            for (of, key) in keys.entries.iter().take(items.len()).flatten() {
                if *of == collection && !in_doc(key) {
                    adding.insert(key.clone());
                }
            }
            if adding.is_empty() {
                continue;
            }
            let admitted = self.admitted_keys.get(collection);
            let in_flight = admitted.map_or(0, |keys| {
                keys.iter()
                    .filter(|key| !in_doc(key) && !adding.contains(*key))
                    .count()
            });
            let count = map.as_ref().map_or(0, |m| m.len(txn) as usize) + in_flight + adding.len();
            if count > self.limits.entries_per_collection {
                return Err(Refusal::TooManyEntries {
                    collection: collection.to_owned(),
                    count,
                    limit: self.limits.entries_per_collection,
                });
            }
            new_keys.extend(adding.into_iter().map(|key| (collection, key)));
        }
        Ok(new_keys)
    }
}

/// A well-formed update whose one item (client `client`, clock 0, a map entry `x`) names
/// `parent` as its parent: what a hostile client sends to poison a plan. For tests.
#[doc(hidden)]
pub fn update_with_parent(client: u64, parent: ID) -> Vec<u8> {
    use yrs::encoding::write::Write as _;
    use yrs::updates::encoder::{Encode as _, Encoder as _, EncoderV1};
    let mut encoder = EncoderV1::new();
    encoder.write_var(1u32); // one client
    encoder.write_var(1u32); // one block
    encoder.write_client(ClientID::new(client));
    encoder.write_var(0u32); // clock
    encoder.write_info(0b0010_1000); // has a parent sub; content: Any (8)
    encoder.write_parent_info(false); // the parent is named by an item id
    encoder.write_left_id(&parent);
    encoder.write_string("x");
    encoder.write_len(1);
    encoder.write_any(&Any::from("poison"));
    yrs::IdSet::new().encode(&mut encoder);
    encoder.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, MapPrelim, StateVector, Text, Transact, Update};

    fn state(doc: &Doc) -> Vec<u8> {
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    fn diff(doc: &Doc, since: &StateVector) -> Vec<u8> {
        doc.transact().encode_state_as_update_v1(since)
    }

    fn apply(doc: &Doc, raw: &[u8]) {
        doc.transact_mut()
            .apply_update(Update::decode_v1(raw).unwrap())
            .unwrap();
    }

    fn server_with(raw: &[u8]) -> (Doc, Admission) {
        let doc = Doc::new();
        let mut admission = Admission::new(PlanLimits::default(), true);
        apply(&doc, raw);
        admission.note_stored(raw);
        (doc, admission)
    }

    fn add_milestone(doc: &Doc, id: &str, title: &str) {
        let milestones = doc.get_or_insert_map(schema::MILESTONES);
        let mut txn = doc.transact_mut();
        milestones.insert(&mut txn, id, MapPrelim::from([("title", title)]));
    }

    #[test]
    fn ordinary_edits_are_admitted_including_fields_of_types_created_earlier() {
        let client = Doc::with_client_id(7);
        add_milestone(&client, "m1", "Kick-off");
        let (server, mut admission) = server_with(&state(&client));
        let before = client.transact().state_vector();
        let milestones = client.get_or_insert_map(schema::MILESTONES);
        {
            let mut txn = client.transact_mut();
            let Some(yrs::Out::YMap(m1)) = milestones.get(&txn, "m1") else {
                panic!("m1 is a map")
            };
            m1.insert(&mut txn, "due", "2027-03-01");
        }
        let update = diff(&client, &before);
        assert_eq!(admission.admit(&server.transact(), &update), Ok(()));
    }

    #[test]
    fn a_sellers_judgment_in_a_shared_stakeholder_is_refused_new_or_existing() {
        let client = Doc::with_client_id(7);
        let people = client.get_or_insert_map(schema::STAKEHOLDERS);
        people.insert(
            &mut client.transact_mut(),
            "st-1",
            MapPrelim::from([("name", "Raj")]),
        );
        let (server, mut admission) = server_with(&state(&client));
        // Set on an existing person.
        let before = client.transact().state_vector();
        {
            let mut txn = client.transact_mut();
            let Some(yrs::Out::YMap(raj)) = people.get(&txn, "st-1") else {
                panic!("st-1 is a map")
            };
            raj.insert(&mut txn, "power", "blocker");
        }
        let refused = admission.admit(&server.transact(), &diff(&client, &before));
        assert!(
            matches!(refused, Err(Refusal::SellerJudgment { ref field }) if field == "power"),
            "{refused:?}"
        );
        // A new person carrying one.
        let other = Doc::with_client_id(8);
        other.get_or_insert_map(schema::STAKEHOLDERS).insert(
            &mut other.transact_mut(),
            "st-2",
            MapPrelim::from([("name", "Ana"), ("engagement", "dark")]),
        );
        let refused = admission.admit(&server.transact(), &state(&other));
        assert!(
            matches!(refused, Err(Refusal::SellerJudgment { .. })),
            "{refused:?}"
        );
        // A later value of a judgment (its encoding names only the value it replaces): a client
        // that held the v1 value sets it again after the judgment was moved out.
        let stale = Doc::with_client_id(11);
        apply(&stale, &state(&client));
        // (Stored as a v1 document held it, then moved out as the migration does.)
        for write in [Some("blocker"), None] {
            let mut txn = client.transact_mut();
            let Some(yrs::Out::YMap(raj)) = people.get(&txn, "st-1") else {
                panic!("st-1 is a map")
            };
            match write {
                Some(power) => {
                    raj.insert(&mut txn, "power", power);
                }
                None => {
                    raj.remove(&mut txn, "power");
                }
            }
        }
        let (server, mut admission) = server_with(&state(&client));
        apply(&stale, &state(&client));
        let before = stale.transact().state_vector();
        {
            let people = stale.get_or_insert_map(schema::STAKEHOLDERS);
            let mut txn = stale.transact_mut();
            let Some(yrs::Out::YMap(raj)) = people.get(&txn, "st-1") else {
                panic!("st-1 is a map")
            };
            raj.insert(&mut txn, "power", "influencer");
        }
        let again = diff(&stale, &before);
        let refused = admission.admit(&server.transact(), &again);
        assert!(
            matches!(refused, Err(Refusal::SellerJudgment { .. })),
            "{refused:?}"
        );
        // The same field names elsewhere are no judgment.
        let fresh = Doc::with_client_id(9);
        add_milestone(&fresh, "m1", "Kick-off");
        let (server, mut admission) = server_with(&state(&fresh));
        let milestones = fresh.get_or_insert_map(schema::MILESTONES);
        let before = fresh.transact().state_vector();
        {
            let mut txn = fresh.transact_mut();
            let Some(yrs::Out::YMap(m1)) = milestones.get(&txn, "m1") else {
                panic!("m1 is a map")
            };
            m1.insert(&mut txn, "power", "not a judgment here");
        }
        assert_eq!(
            admission.admit(&server.transact(), &diff(&fresh, &before)),
            Ok(())
        );
    }

    #[test]
    fn what_is_in_flight_counts_as_known_only_without_a_gap() {
        let client = Doc::with_client_id(7);
        add_milestone(&client, "m1", "Kick-off");
        let (server, mut admission) = server_with(&state(&client));
        let first = client.transact().state_vector();
        add_milestone(&client, "m2", "Scope");
        let second = client.transact().state_vector();
        add_milestone(&client, "m3", "Sign");
        // Everything since `first` (it fills the gap), and only the last milestone.
        let gap_filler = diff(&client, &first);
        let after_gap = diff(&client, &second);
        let id = ClientID::new(7);
        // The later update arrives first: it waits for the gap and moves nothing.
        admission.admit(&server.transact(), &after_gap).unwrap();
        assert_eq!(admission.in_flight_clock(id), 0);
        admission.admit(&server.transact(), &gap_filler).unwrap();
        let end = client.transact().state_vector().get(&id);
        assert_eq!(admission.in_flight_clock(id), end);
        // A failed commit forgets it: the resend is stored.
        admission.forget_in_flight();
        assert_eq!(admission.in_flight_clock(id), 0);
    }

    #[test]
    fn an_item_whose_parent_is_not_a_type_is_refused() {
        let client = Doc::with_client_id(7);
        client
            .get_or_insert_map(schema::META)
            .insert(&mut client.transact_mut(), "title", "Plan");
        let (server, mut admission) = server_with(&state(&client));
        // Client 9 writes a map entry "into" the title string (7:0), as a hostile client can.
        let raw = update_with_parent(9, ID::new(ClientID::new(7), 0));
        assert!(Update::decode_v1(&raw).is_ok(), "well-formed encoding");
        let refused = admission.admit(&server.transact(), &raw);
        assert!(
            matches!(refused, Err(Refusal::InvalidParent { ref parent, .. }) if parent == "7:0"),
            "{refused:?}"
        );
        // And yrs would indeed have failed on it.
        assert!(
            server
                .transact_mut()
                .apply_update(Update::decode_v1(&raw).unwrap())
                .is_err()
        );
    }

    #[test]
    fn a_parent_not_seen_yet_waits_as_yrs_would() {
        let client = Doc::with_client_id(7);
        let before_any = client.transact().state_vector();
        add_milestone(&client, "m1", "Kick-off");
        let created = diff(&client, &before_any);
        let after_create = client.transact().state_vector();
        let milestones = client.get_or_insert_map(schema::MILESTONES);
        {
            let mut txn = client.transact_mut();
            let Some(yrs::Out::YMap(m1)) = milestones.get(&txn, "m1") else {
                panic!("m1 is a map")
            };
            m1.insert(&mut txn, "due", "2027-03-01");
        }
        let field = diff(&client, &after_create);
        let (server, mut admission) = server_with(&state(&Doc::new()));
        // The field arrives before the entry it belongs to: admitted (pending), then the entry.
        assert_eq!(admission.admit(&server.transact(), &field), Ok(()));
        assert_eq!(admission.admit(&server.transact(), &created), Ok(()));
    }

    #[test]
    fn an_offline_edit_inside_an_entry_deleted_meanwhile_is_admitted() {
        let seller = Doc::with_client_id(1);
        add_milestone(&seller, "m1", "Kick-off");
        let buyer = Doc::with_client_id(2);
        apply(&buyer, &state(&seller));
        let buyer_before = buyer.transact().state_vector();
        {
            let milestones = buyer.get_or_insert_map(schema::MILESTONES);
            let mut txn = buyer.transact_mut();
            let Some(yrs::Out::YMap(m1)) = milestones.get(&txn, "m1") else {
                panic!("m1 is a map")
            };
            m1.insert(&mut txn, "notes", "offline note");
        }
        let offline = diff(&buyer, &buyer_before);
        seller
            .get_or_insert_map(schema::MILESTONES)
            .remove(&mut seller.transact_mut(), "m1");
        // The server restarted from a snapshot: the deleted map's content is gone.
        let (server, mut admission) = server_with(&state(&seller));
        assert_eq!(admission.admit(&server.transact(), &offline), Ok(()));
    }

    #[test]
    fn entries_over_the_limit_are_refused_counting_what_is_in_flight() {
        let limits = PlanLimits {
            entries_per_collection: 3,
            text_chars: 100,
        };
        let client = Doc::with_client_id(7);
        add_milestone(&client, "m1", "One");
        let server = Doc::new();
        apply(&server, &state(&client));
        let mut admission = Admission::new(limits, true);
        admission.note_stored(&state(&client));
        let next = |id: &str| {
            let before = client.transact().state_vector();
            add_milestone(&client, id, "More");
            diff(&client, &before)
        };
        let (m2, m3, m4) = (next("m2"), next("m3"), next("m4"));
        assert_eq!(admission.admit(&server.transact(), &m2), Ok(()));
        assert_eq!(admission.admit(&server.transact(), &m3), Ok(()));
        // m2 and m3 are in flight (not in the document yet): m4 would make four.
        let refused = admission.admit(&server.transact(), &m4);
        assert!(
            matches!(
                refused,
                Err(Refusal::TooManyEntries {
                    count: 4,
                    limit: 3,
                    ..
                })
            ),
            "{refused:?}"
        );
        apply(&server, &m2);
        apply(&server, &m3);
        admission.settled(false);
        assert!(admission.admit(&server.transact(), &m4).is_err());
        // Editing an existing entry never counts as adding one.
        let before = client.transact().state_vector();
        add_milestone(&client, "m1", "Renamed");
        let rename = diff(&client, &before);
        assert_eq!(admission.admit(&server.transact(), &rename), Ok(()));
    }

    #[test]
    fn text_over_the_limit_is_refused_in_maps_and_texts() {
        let limits = PlanLimits {
            entries_per_collection: 10,
            text_chars: 5,
        };
        let client = Doc::with_client_id(7);
        let server = Doc::new();
        let mut admission = Admission::new(limits, true);
        client
            .get_or_insert_map(schema::META)
            .insert(&mut client.transact_mut(), "title", "ümlau");
        assert_eq!(admission.admit(&server.transact(), &state(&client)), Ok(()));
        let before = client.transact().state_vector();
        client.get_or_insert_map(schema::META).insert(
            &mut client.transact_mut(),
            "title",
            "too long",
        );
        let refused = admission.admit(&server.transact(), &diff(&client, &before));
        assert!(
            matches!(
                refused,
                Err(Refusal::TextTooLong {
                    chars: 8,
                    limit: 5,
                    ..
                })
            ),
            "{refused:?}"
        );
        let text_doc = Doc::with_client_id(8);
        let text = text_doc.get_or_insert_text("notes");
        text.insert(&mut text_doc.transact_mut(), 0, "123456");
        let refused = admission.admit(&server.transact(), &state(&text_doc));
        assert_eq!(
            refused.map_err(|e| e.to_string()),
            Err("a text of 6 characters, over the limit of 5".to_owned())
        );
    }

    #[test]
    fn a_parent_named_before_it_is_sent_must_arrive_as_a_type() {
        // The hostile sequence: client 9 first sends 9:1 naming 9:0 as its parent (unseen: it
        // waits), then supplies 9:0 as a string. The second update is refused.
        let server = Doc::new();
        let mut admission = Admission::new(PlanLimits::default(), true);
        let mut child = update_with_parent(9, ID::new(ClientID::new(9), 0));
        child[3] = 1; // the child's clock: 1 (the parent, 9:0, is not in the update)
        assert_eq!(admission.admit(&server.transact(), &child), Ok(()));
        // Then 9:0 itself, a string in the root map "meta".
        let text = {
            use yrs::encoding::write::Write as _;
            use yrs::updates::encoder::{Encode as _, Encoder as _, EncoderV1};
            let mut encoder = EncoderV1::new();
            encoder.write_var(1u32);
            encoder.write_var(1u32);
            encoder.write_client(ClientID::new(9));
            encoder.write_var(0u32);
            encoder.write_info(0b0010_1000);
            encoder.write_parent_info(true);
            encoder.write_string("meta");
            encoder.write_string("title");
            encoder.write_len(1);
            encoder.write_any(&Any::from("not a type"));
            yrs::IdSet::new().encode(&mut encoder);
            encoder.to_vec()
        };
        let refused = admission.admit(&server.transact(), &text);
        assert!(
            matches!(refused, Err(Refusal::InvalidParent { ref parent, .. }) if parent == "9:0"),
            "{refused:?}"
        );
    }

    #[test]
    fn an_unseen_parent_of_another_client_is_refused() {
        // A real client only names items it holds, and it holds another client's items only
        // from the server: naming one the server never saw is the trap set for that client.
        let server = Doc::new();
        let mut admission = Admission::new(PlanLimits::default(), true);
        let trap = update_with_parent(9, ID::new(ClientID::new(7), 3));
        assert!(matches!(
            admission.admit(&server.transact(), &trap),
            Err(Refusal::InvalidParent { .. })
        ));
    }

    #[test]
    fn setting_a_deleted_entry_again_counts_as_adding_one() {
        let limits = PlanLimits {
            entries_per_collection: 2,
            text_chars: 100,
        };
        let client = Doc::with_client_id(7);
        add_milestone(&client, "m1", "One");
        add_milestone(&client, "m2", "Two");
        client
            .get_or_insert_map(schema::MILESTONES)
            .remove(&mut client.transact_mut(), "m1");
        let server = Doc::new();
        apply(&server, &state(&client));
        let mut admission = Admission::new(limits, true);
        admission.note_stored(&state(&client));
        let before = client.transact().state_vector();
        add_milestone(&client, "m3", "Three");
        let m3 = diff(&client, &before);
        assert_eq!(admission.admit(&server.transact(), &m3), Ok(()));
        apply(&server, &m3);
        admission.settled(false);
        // m1 again: its new value follows the deleted one (an origin, no key in the encoding).
        let before = client.transact().state_vector();
        add_milestone(&client, "m1", "One again");
        let again = diff(&client, &before);
        let refused = admission.admit(&server.transact(), &again);
        assert!(
            matches!(refused, Err(Refusal::TooManyEntries { count: 3, .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn clocks_past_u32_are_malformed() {
        use yrs::encoding::write::Write as _;
        use yrs::updates::encoder::{Encode as _, Encoder as _, EncoderV1};
        let mut encoder = EncoderV1::new();
        encoder.write_var(1u32);
        encoder.write_var(2u32);
        encoder.write_client(ClientID::new(9));
        encoder.write_var(u32::MAX - 1);
        encoder.write_info(10); // skip
        encoder.write_var(5u32);
        encoder.write_info(10);
        encoder.write_var(5u32);
        yrs::IdSet::new().encode(&mut encoder);
        let mut admission = Admission::new(PlanLimits::default(), true);
        assert!(matches!(
            admission.admit(&Doc::new().transact(), &encoder.to_vec()),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn long_text_nested_in_a_value_is_refused() {
        let limits = PlanLimits {
            entries_per_collection: 10,
            text_chars: 5,
        };
        let client = Doc::with_client_id(7);
        let nested = Any::from(std::collections::HashMap::from([(
            "inner".to_owned(),
            Any::from(vec![Any::from("123456")]),
        )]));
        client
            .get_or_insert_map(schema::META)
            .insert(&mut client.transact_mut(), "x", nested);
        let mut admission = Admission::new(limits, true);
        assert!(matches!(
            admission.admit(&Doc::new().transact(), &state(&client)),
            Err(Refusal::TextTooLong { chars: 6, .. })
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let mut admission = Admission::new(PlanLimits::default(), true);
        let server = Doc::new();
        for raw in [&[][..], &[1], &[1, 1, 5, 0, 7], &[255, 255, 255, 255, 15]] {
            assert!(matches!(
                admission.admit(&server.transact(), raw),
                Err(Refusal::Malformed(_))
            ));
        }
    }
}
