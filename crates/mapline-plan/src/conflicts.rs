//! Lost writes of plain values, found from the update itself.
//!
//! A Yjs map keeps one value per key: of two concurrent writes, one wins and the other is
//! deleted as it integrates. Nothing is lost from the log, but a person's value is gone from the
//! plan. Two shapes, both read from the items an update brings (never from timing):
//!
//! - **lost on arrival**: an item of the update that Yjs deleted while integrating it (and that
//!   neither the update itself deleted nor a later item of the same update replaced): the
//!   update's value lost to a value already there;
//! - **overwritten unseen**: an item that became the value although its origin (the value its
//!   writer replaced) is not the value it displaced: the displaced value is lost.
//!
//! The index this needs — which map and key every item sets, and each key's current value — is
//! built from the document's state when tracking starts and kept up to date per update, so a
//! room loaded from a snapshot and a rebuild from the first update find the same conflicts.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use yrs::block::ItemContent;
use yrs::{ID, IdSet, ReadTxn, StateVector, TransactionMut};

use crate::raw::any_to_json;
use crate::walk::{self, ItemIndex, Parent, WalkedItem};

/// The type holding a map item: a root by name, or a nested type by its item's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Owner {
    Root(Arc<str>),
    Item(ID),
}

/// One key of one map, and the item currently holding its value.
#[derive(Debug)]
struct Slot {
    owner: Owner,
    key: Arc<str>,
    winner: Option<ID>,
}

/// Where a lost write was, in plan terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    /// The root: `meta`, `success` or a collection.
    pub root: Arc<str>,
    /// The entry, for a field of a collection's entry (or the entry itself).
    pub entry: Option<Arc<str>>,
    /// The field; `None` when a whole entry of a collection was written.
    pub field: Option<Arc<str>>,
}

/// One lost write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LostWrite {
    pub place: Place,
    /// The update's own value lost (`true`), or an earlier value it overwrote unseen.
    pub lost_here: bool,
    /// The lost item's Yjs client.
    pub lost_client: u64,
    /// The kept item's Yjs client.
    pub kept_client: u64,
    /// For a value lost on arrival: the value, from the update (Yjs drops a deleted value's
    /// content). `None` for an overwritten value (the tracker has it).
    pub lost_value: Option<Value>,
}

/// Which map and key every item of a document sets, and each key's current value.
#[derive(Debug, Default)]
pub(crate) struct MapItems {
    /// Per client, by first clock: each map item's length and slot. An item may span several
    /// clocks (a writer's own overwritten values arrive merged as one deleted item), and an
    /// origin may name any clock inside it.
    slot_of_item: ItemIndex<u32>,
    slots: Vec<Slot>,
    slot_index: HashMap<(Owner, Arc<str>), u32>,
    /// Map items walked but not integrated yet (their update waits for a missing one).
    waiting: Vec<WalkedItem>,
}

/// Most items kept waiting for a missing update; past it the oldest are forgotten (their
/// conflicts then go unrecorded, never misrecorded).
const MAX_WAITING: usize = 10_000;

impl MapItems {
    /// Indexes a document's current state.
    pub fn of_state<T: ReadTxn>(txn: &T) -> Self {
        let mut index = Self::default();
        let state = txn.encode_state_as_update_v1(&StateVector::default());
        let Ok(Some(items)) = walk::items(&state) else {
            return index;
        };
        let deleted = txn.snapshot().delete_set;
        let resolved = index.resolve(items);
        for (item, slot) in resolved {
            index.index(&item, slot);
            let alive =
                !deleted.contains(&item.id) && !matches!(item.content, ItemContent::Deleted(_));
            if alive {
                index.slots[slot as usize].winner = Some(item.id);
            }
        }
        index
    }

    /// After `txn` applied the update `raw` (before it commits): indexes what it integrated and
    /// returns the writes it made lose. An update that does not decode finds nothing.
    pub fn integrate(&mut self, txn: &TransactionMut<'_>, raw: &[u8]) -> Vec<LostWrite> {
        let Some((items, own_deletes)) = walk::update(raw) else {
            return Vec::new();
        };
        let mut candidates = std::mem::take(&mut self.waiting);
        candidates.extend(items.into_iter().filter(maybe_map_item));
        let inserted = txn.insert_set();
        let (integrated, rest): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .partition(|item| inserted.contains(&item.id));
        if txn.store().pending_update().is_some() {
            self.waiting = rest
                .into_iter()
                .filter(|item| self.slot_at(&item.id).is_none())
                .collect();
            let over = self.waiting.len().saturating_sub(MAX_WAITING);
            self.waiting.drain(..over);
        }
        let resolved = self.resolve(integrated);
        // Per slot (in the order slots first appear), this update's items in clock order.
        let mut by_slot: Vec<(u32, Vec<WalkedItem>)> = Vec::new();
        let mut position: HashMap<u32, usize> = HashMap::new();
        for (item, slot) in resolved {
            self.index(&item, slot);
            let at = *position.entry(slot).or_insert_with(|| {
                by_slot.push((slot, Vec::new()));
                by_slot.len() - 1
            });
            by_slot[at].1.push(item);
        }
        let deleted = txn.delete_set();
        let mut lost = Vec::new();
        for (slot, items) in by_slot {
            self.settle(slot, &items, deleted, &own_deletes, &mut lost);
        }
        lost
    }

    /// Finds the writes one slot lost in this update and moves its winner.
    fn settle(
        &mut self,
        slot: u32,
        items: &[WalkedItem],
        deleted: &IdSet,
        own_deletes: &IdSet,
        lost: &mut Vec<LostWrite>,
    ) {
        let Some(place) = self.place(slot) else {
            // Not a field of the plan (e.g. a value nested deeper): index only.
            if let Some(winner) = items.iter().find(|i| !deleted.contains(&i.id)) {
                self.slots[slot as usize].winner = Some(winner.id);
            }
            return;
        };
        let previous = self.slots[slot as usize].winner;
        // This update's items of the slot, found by any clock they hold.
        let mut here: ItemIndex<usize> = ItemIndex::default();
        for (i, item) in items.iter().enumerate() {
            here.insert(item.id, item.len, i);
        }
        let winner = items.iter().find(|item| !deleted.contains(&item.id));
        if let Some(winner) = winner {
            // The value the winner's writer replaced: its origin, through this update's items
            // (at most one step per item, whatever a hostile encoding says).
            let mut seen = winner.origin;
            for _ in 0..items.len() {
                match seen.and_then(|origin| here.get(&origin)) {
                    Some(&earlier) => seen = items[earlier].origin,
                    None => break,
                }
            }
            if let Some(previous) = previous
                && previous != winner.id
                && seen != Some(previous)
            {
                lost.push(LostWrite {
                    place: place.clone(),
                    lost_here: false,
                    lost_client: previous.client.get(),
                    kept_client: winner.id.client.get(),
                    lost_value: None,
                });
            }
            self.slots[slot as usize].winner = Some(winner.id);
        }
        let kept_client = self.slots[slot as usize]
            .winner
            .map_or(0, |id| id.client.get());
        // Items a later item of this update replaced (its origin): their writer saw them go.
        let mut replaced = vec![false; items.len()];
        for (i, item) in items.iter().enumerate() {
            if let Some(&j) = item.origin.and_then(|origin| here.get(&origin))
                && j != i
            {
                replaced[j] = true;
            }
        }
        for (item, replaced) in items.iter().zip(replaced) {
            if deleted.contains(&item.id) && !own_deletes.contains(&item.id) && !replaced {
                lost.push(LostWrite {
                    place: place.clone(),
                    lost_here: true,
                    lost_client: item.id.client.get(),
                    kept_client,
                    lost_value: Some(value_of(&item.content)),
                });
            }
        }
    }

    /// A slot's place in the plan: a field of `meta`/`success`, an entry of a collection, or a
    /// field of an entry.
    fn place(&self, slot: u32) -> Option<Place> {
        let slot = &self.slots[slot as usize];
        match &slot.owner {
            Owner::Root(root) if is_fields_root(root) => Some(Place {
                root: root.clone(),
                entry: None,
                field: Some(slot.key.clone()),
            }),
            Owner::Root(root) => Some(Place {
                root: root.clone(),
                entry: Some(slot.key.clone()),
                field: None,
            }),
            Owner::Item(entry) => {
                let holder = &self.slots[self.slot_at(entry)? as usize];
                match &holder.owner {
                    Owner::Root(root) if !is_fields_root(root) => Some(Place {
                        root: root.clone(),
                        entry: Some(holder.key.clone()),
                        field: Some(slot.key.clone()),
                    }),
                    _ => None,
                }
            }
        }
    }

    /// The slot of each map item whose slot can be told, in the order given
    /// ([`walk::resolve_inherited`]).
    fn resolve(&mut self, items: Vec<WalkedItem>) -> Vec<(WalkedItem, u32)> {
        let slots =
            walk::resolve_inherited(&items, |item| match (&item.parent, &item.parent_sub) {
                (Parent::Named(root), Some(key)) => {
                    Some(self.slot(Owner::Root(root.clone()), key.clone()))
                }
                (Parent::Item(owner), Some(key)) => {
                    Some(self.slot(Owner::Item(*owner), key.clone()))
                }
                (Parent::Inherited, _) => item.origin.and_then(|origin| self.slot_at(&origin)),
                _ => None,
            });
        items
            .into_iter()
            .zip(slots)
            .filter_map(|(item, slot)| Some((item, slot?)))
            .collect()
    }

    /// Records a map item's slot.
    fn index(&mut self, item: &WalkedItem, slot: u32) {
        self.slot_of_item.insert(item.id, item.len, slot);
    }

    /// The slot of the map item holding `id` (any clock inside it).
    fn slot_at(&self, id: &ID) -> Option<u32> {
        self.slot_of_item.get(id).copied()
    }

    fn slot(&mut self, owner: Owner, key: Arc<str>) -> u32 {
        if let Some(slot) = self.slot_index.get(&(owner.clone(), key.clone())) {
            return *slot;
        }
        let slot = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            owner: owner.clone(),
            key: key.clone(),
            winner: None,
        });
        self.slot_index.insert((owner, key), slot);
        slot
    }
}

/// Roots that hold fields directly rather than entries.
fn is_fields_root(root: &str) -> bool {
    root == crate::schema::META || root == crate::schema::SUCCESS
}

/// Whether an item may set a map key: it names one, or inherits its place from an origin.
fn maybe_map_item(item: &WalkedItem) -> bool {
    item.parent_sub.is_some() || matches!(item.parent, Parent::Inherited)
}

/// A map item's value as JSON; a nested type (a text, a map) as `null`, its content being in
/// other items.
fn value_of(content: &ItemContent) -> Value {
    match content {
        ItemContent::Any(values) => values.last().map_or(Value::Null, any_to_json),
        ItemContent::String(text) => Value::String(text.to_string()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::json;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, Map, Out, ReadTxn, StateVector, Text, Transact, Update, WriteTxn};

    use crate::derive::{ChangeKind, Derivation, HistoryTracker};
    use crate::edit::move_due;
    use crate::testing::milestone;

    /// A server document with its tracker, and clients that sync with it when told.
    struct World {
        server: Doc,
        tracker: HistoryTracker,
        clients: Vec<Doc>,
    }

    impl World {
        fn new(clients: &[u64]) -> Self {
            let server = Doc::with_client_id(1);
            let tracker = HistoryTracker::attach(&server);
            Self {
                server,
                tracker,
                clients: clients.iter().map(|id| Doc::with_client_id(*id)).collect(),
            }
        }

        /// Client `i` sends what the server lacks, then takes what it lacks.
        fn sync(&mut self, i: usize) -> Derivation {
            let server_sv = self.server.transact().state_vector();
            let up = self.clients[i].transact().encode_diff_v1(&server_sv);
            let (derivation, error) =
                self.tracker
                    .apply(&self.server, Update::decode_v1(&up).unwrap(), &up);
            assert!(error.is_none());
            let client_sv = self.clients[i].transact().state_vector();
            let down = self.server.transact().encode_diff_v1(&client_sv);
            self.clients[i]
                .transact_mut()
                .apply_update(Update::decode_v1(&down).unwrap())
                .unwrap();
            derivation
        }

        fn edit(&self, i: usize, write: impl FnOnce(&mut yrs::TransactionMut)) {
            write(&mut self.clients[i].transact_mut());
        }
    }

    fn date(text: &str) -> Option<NaiveDate> {
        crate::parse_date(text)
    }

    fn conflicts(d: &Derivation) -> Vec<&crate::Change> {
        d.changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Conflict)
            .collect()
    }

    #[test]
    fn two_offline_moves_of_one_date_leave_one_conflict_naming_both() {
        let mut w = World::new(&[10, 20]);
        w.edit(0, |txn| milestone(txn, "m1", "2027-03-01", &[], vec![]));
        w.sync(0);
        w.sync(1);
        // Both move the same date while apart; client 20 syncs first.
        w.edit(0, |txn| {
            move_due(txn, "m1", date("2027-03-12"), "Offline: legal").unwrap()
        });
        w.edit(1, |txn| {
            move_due(txn, "m1", date("2027-03-19"), "Board").unwrap()
        });
        let first = w.sync(1);
        assert!(conflicts(&first).is_empty());
        assert_eq!(first.slips[0].to.as_deref(), Some("2027-03-19"));
        let second = w.sync(0);
        // Yjs keeps the higher client's value (20): client 10's move lost as it arrived.
        let found = conflicts(&second);
        let due = found
            .iter()
            .find(|c| c.field.as_deref() == Some("due"))
            .expect("a conflict on due");
        assert_eq!(due.entity_id.as_deref(), Some("m1"));
        assert_eq!(due.old, Some(json!("2027-03-12")));
        assert_eq!(due.new, Some(json!("2027-03-19")));
        let who = due.conflict.unwrap();
        assert_eq!(
            (who.lost_client, who.kept_client, who.lost_here),
            (10, 20, true)
        );
        // The reason lost with it, too.
        assert!(
            found
                .iter()
                .any(|c| c.field.as_deref() == Some("slipReason")
                    && c.old == Some(json!("Offline: legal")))
        );
        let lost_slip = second.slips.iter().find(|s| !s.kept).expect("a lost slip");
        assert_eq!(lost_slip.to.as_deref(), Some("2027-03-12"));
        assert_eq!(lost_slip.from, "2027-03-19");
        assert_eq!(lost_slip.reason.as_deref(), Some("Offline: legal"));
    }

    #[test]
    fn a_value_overwritten_unseen_is_a_conflict_of_the_update_that_won() {
        // Client 20's value arrives first; client 30 (higher id, so it wins) set the same
        // field without having seen it.
        let mut w = World::new(&[10, 20, 30]);
        w.edit(0, |txn| milestone(txn, "m1", "2027-03-01", &[], vec![]));
        w.sync(0);
        w.sync(1);
        w.sync(2);
        w.edit(1, |txn| set_status(txn, "in_progress"));
        w.edit(2, |txn| set_status(txn, "blocked"));
        assert!(conflicts(&w.sync(1)).is_empty());
        let d = w.sync(2);
        let found = conflicts(&d);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].old, Some(json!("in_progress")));
        assert_eq!(found[0].new, Some(json!("blocked")));
        let who = found[0].conflict.unwrap();
        assert_eq!(
            (who.lost_client, who.kept_client, who.lost_here),
            (20, 30, false)
        );
    }

    fn set_status(txn: &mut yrs::TransactionMut, status: &str) {
        let milestones = txn.get_or_insert_map("milestones");
        let Some(Out::YMap(entry)) = milestones.get(txn, "m1") else {
            panic!("no m1")
        };
        entry.insert(txn, "status", status);
    }

    #[test]
    fn sequential_writes_and_a_writers_own_double_set_are_no_conflict() {
        let mut w = World::new(&[10, 20]);
        w.edit(0, |txn| milestone(txn, "m1", "2027-03-01", &[], vec![]));
        w.sync(0);
        w.sync(1);
        w.edit(1, |txn| set_status(txn, "in_progress"));
        w.edit(1, |txn| set_status(txn, "done"));
        assert!(conflicts(&w.sync(1)).is_empty());
        w.sync(0);
        w.edit(0, |txn| set_status(txn, "blocked"));
        assert!(conflicts(&w.sync(0)).is_empty());
    }

    #[test]
    fn a_tracker_started_from_a_snapshot_finds_the_same_conflicts_as_one_from_the_start() {
        let mut w = World::new(&[10, 20]);
        w.edit(0, |txn| milestone(txn, "m1", "2027-03-01", &[], vec![]));
        w.sync(0);
        w.sync(1);
        // A tracker attached now, to a copy of the server's document (a room after a restart).
        let copy = Doc::with_client_id(2);
        let state = w
            .server
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        copy.transact_mut()
            .apply_update(Update::decode_v1(&state).unwrap())
            .unwrap();
        let mut late = HistoryTracker::attach(&copy);
        w.edit(0, |txn| {
            move_due(txn, "m1", date("2027-03-12"), "a").unwrap()
        });
        w.edit(1, |txn| {
            move_due(txn, "m1", date("2027-03-19"), "b").unwrap()
        });
        for i in [1, 0] {
            let sv = w.server.transact().state_vector();
            let up = w.clients[i].transact().encode_diff_v1(&sv);
            let live = w.sync(i);
            let (restarted, _) = late.apply(&copy, Update::decode_v1(&up).unwrap(), &up);
            assert_eq!(live, restarted);
        }
    }

    #[test]
    fn a_late_write_without_origin_that_wins_over_a_chain_records_the_chain_end_lost() {
        let mut w = World::new(&[10, 11, 12]);
        w.edit(0, |txn| milestone(txn, "m1", "2027-03-01", &[], vec![]));
        for i in 0..3 {
            w.sync(i);
        }
        w.edit(1, |txn| set_status(txn, "s0"));
        w.edit(2, |txn| set_status(txn, "s1"));
        w.edit(1, |txn| set_status(txn, "s2"));
        w.edit(1, |txn| set_status(txn, "s3"));
        let first = w.sync(1);
        assert!(conflicts(&first).is_empty(), "{first:?}");
        // Client 12's value wins (the higher client) over the end of 11's chain, which its
        // writer had merged into one deleted item and a live one.
        let second = w.sync(2);
        let found = conflicts(&second);
        assert_eq!(found.len(), 1, "{second:?}");
        assert_eq!(found[0].old, Some(json!("s3")));
        assert_eq!(found[0].new, Some(json!("s1")));
    }

    #[test]
    fn text_typed_apart_merges_and_is_no_conflict() {
        let mut w = World::new(&[10, 20]);
        w.edit(0, |txn| {
            let meta = txn.get_or_insert_map("meta");
            meta.insert(txn, "objective", yrs::TextPrelim::new("Go live"));
        });
        w.sync(0);
        w.sync(1);
        let append = |txn: &mut yrs::TransactionMut, at: u32, what: &str| {
            let meta = txn.get_or_insert_map("meta");
            let Some(Out::YText(text)) = meta.get(txn, "objective") else {
                panic!("no text")
            };
            text.insert(txn, at, what);
        };
        w.edit(0, |txn| append(txn, 7, " by March"));
        w.edit(1, |txn| append(txn, 0, "Must "));
        w.sync(1);
        let d = w.sync(0);
        assert!(conflicts(&d).is_empty());
        let meta = w.server.get_or_insert_map("meta");
        let txn = w.server.transact();
        let Some(Out::YText(text)) = meta.get(&txn, "objective") else {
            panic!("no text")
        };
        assert_eq!(text.get_string(&txn), "Must Go live by March");
        // The change record holds the text before and after.
        let change = d
            .changes
            .iter()
            .find(|c| c.field.as_deref() == Some("objective"));
        assert_eq!(change.unwrap().new, Some(json!("Must Go live by March")));
    }
}
