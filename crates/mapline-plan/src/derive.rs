//! What one update changed: the field-level change audit and the slips (moved due dates and
//! go-live), computed from the document before and after it. Deterministic — the same two
//! states always give the same records in the same order — which is what lets the server
//! rebuild the stored history from the log and get identical records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde_json::Value;
use yrs::types::{Event, PathSegment};
use yrs::{DeepObservable, Doc, Map, Out, ReadTxn, Transact, Update};

use crate::conflicts::{LostWrite, MapItems, Place};
use crate::raw::{
    Collection, Fields, RawEntry, RawPlan, read_entry, read_fields, roots_not_maps, to_json,
};
use crate::{parse_date, schema};

/// What happened to an entity or field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// An entry was added to a collection (`new` holds all its fields).
    Created,
    /// A field was set, changed or cleared.
    Updated,
    /// An entry was removed (`old` holds all its fields).
    Deleted,
    /// A plain value was lost to a concurrent write: `old` holds the lost value, `new` the
    /// kept one, [`Change::conflict`] whose each was (see `conflicts.rs`).
    Conflict,
}

/// Whose writes a conflict set against each other: Yjs client ids, which the history's entries
/// map to people (each entry lists the client ids whose insertions its update carried).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub kept_client: u64,
    pub lost_client: u64,
    /// `true`: this update's value was lost (Yjs deleted it as it arrived). `false`: this
    /// update's value replaced one its writer had not seen, which is lost.
    pub lost_here: bool,
}

/// One change of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The root: `meta`, `success`, or a collection name such as `milestones`.
    pub entity: &'static str,
    /// The entry's id within a collection; `None` for `meta` and `success`.
    pub entity_id: Option<String>,
    /// The field; `None` when a whole entry was created or deleted.
    pub field: Option<String>,
    pub kind: ChangeKind,
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// For [`ChangeKind::Conflict`]: whose values met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
}

/// A moved date: a milestone's `due` (`milestone_id` set) or the plan's go-live (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Slip {
    pub milestone_id: Option<String>,
    /// The milestone's title (or the plan's) after the update, for people reading the history.
    pub title: Option<String>,
    /// The date before, as stored (normally `YYYY-MM-DD`).
    pub from: String,
    /// The date after; `None` when the date was cleared.
    pub to: Option<String>,
    /// Days moved, later positive; `None` unless both dates are valid.
    pub days: Option<i64>,
    /// The `slipReason` (or `goLiveSlipReason`; a v1 plan's `goLiveReason`) written by the
    /// same update, if it wrote one.
    pub reason: Option<String>,
    /// `false` for a move that lost to a concurrent write of the same date (on record, but
    /// not the plan's date).
    pub kept: bool,
}

/// Everything one update changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Derivation {
    pub changes: Vec<Change>,
    pub slips: Vec<Slip>,
}

impl Derivation {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.slips.is_empty()
    }
}

/// Which reason fields an update wrote, even with the same text as before: a reason given
/// again for a second move of the same milestone still belongs to that move.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// A v1 plan's move wrote its reason into `goLiveReason`.
    pub go_live_reason: bool,
    pub go_live_slip_reason: bool,
    /// Milestones whose `slipReason` was written.
    pub slip_reasons: BTreeSet<String>,
}

/// Compares the document before and after an update; `written` says which reason fields the
/// update itself wrote (see [`HistoryTracker`], which knows).
pub fn derive(before: &RawPlan, after: &RawPlan, written: &Written) -> Derivation {
    let mut out = Derivation::default();
    diff_fields(
        &mut out.changes,
        schema::META,
        None,
        &before.meta,
        &after.meta,
    );
    if let Some(slip) = go_live_slip(before, after, written) {
        out.slips.push(slip);
    }
    let empty = Default::default();
    for collection in Collection::ALL {
        let old = before.collections.get(&collection).unwrap_or(&empty);
        let new = after.collections.get(&collection).unwrap_or(&empty);
        let entity = collection.root();
        for (id, old_entry, new_entry) in merge_keys(old, new) {
            match (old_entry, new_entry) {
                (Some(RawEntry::Entry(a)), Some(RawEntry::Entry(b))) => {
                    diff_fields(&mut out.changes, entity, Some(id), a, b);
                    if collection == Collection::Milestones
                        && let Some(slip) =
                            milestone_slip(id, a, b, written.slip_reasons.contains(id))
                    {
                        out.slips.push(slip);
                    }
                }
                (old_entry, new_entry) if old_entry == new_entry => {}
                (old_entry, new_entry) => {
                    if let Some(old_entry) = old_entry {
                        out.changes.push(Change {
                            entity,
                            entity_id: Some(id.clone()),
                            field: None,
                            kind: ChangeKind::Deleted,
                            old: Some(entry_json(collection, old_entry)),
                            new: None,
                            conflict: None,
                        });
                    }
                    if let Some(new_entry) = new_entry {
                        out.changes.push(Change {
                            entity,
                            entity_id: Some(id.clone()),
                            field: None,
                            kind: ChangeKind::Created,
                            old: None,
                            new: Some(entry_json(collection, new_entry)),
                            conflict: None,
                        });
                    }
                }
            }
        }
    }
    diff_fields(
        &mut out.changes,
        schema::SUCCESS,
        None,
        &before.success,
        &after.success,
    );
    out
}

/// Every key of two sorted maps once, with its value on each side.
fn merge_keys<'a, V>(
    old: &'a std::collections::BTreeMap<String, V>,
    new: &'a std::collections::BTreeMap<String, V>,
) -> Vec<(&'a String, Option<&'a V>, Option<&'a V>)> {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|k| (k, old.get(k), new.get(k)))
        .collect()
}

fn diff_fields(
    changes: &mut Vec<Change>,
    entity: &'static str,
    entity_id: Option<&String>,
    old: &Fields,
    new: &Fields,
) {
    for (field, a, b) in merge_keys(old, new) {
        if a != b && !is_judgment(entity, field) {
            let (a, b) = match (a, b) {
                (Some(Value::String(a)), Some(Value::String(b)))
                    if schema::is_prose(entity, field) =>
                {
                    let (a, b) = excerpts(a, b);
                    (Some(Value::String(a)), Some(Value::String(b)))
                }
                (a, b) => (a.cloned(), b.cloned()),
            };
            changes.push(Change {
                entity,
                entity_id: entity_id.cloned(),
                field: Some(field.clone()),
                kind: ChangeKind::Updated,
                old: a,
                new: b,
                conflict: None,
            });
        }
    }
}

/// Texts up to this many characters are recorded whole in a change.
const WHOLE_TEXT_CHARS: usize = 280;
/// Unchanged characters kept on each side of an edit in a longer text's excerpt.
const EXCERPT_CONTEXT_CHARS: usize = 40;

/// What a change of a prose field records: both texts when short; otherwise the edited part of
/// each with a little unchanged context, cut ends marked `…`. Text is written as typed (one
/// update per keystroke), so recording a long note whole each time would make its history grow
/// with the square of its length; the whole text at any point is `GET …?at=`.
fn excerpts(old: &str, new: &str) -> (String, String) {
    let a: Vec<char> = old.chars().collect();
    let b: Vec<char> = new.chars().collect();
    if a.len() <= WHOLE_TEXT_CHARS && b.len() <= WHOLE_TEXT_CHARS {
        return (old.to_owned(), new.to_owned());
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(room)
        .take_while(|(x, y)| x == y)
        .count();
    let start = prefix.saturating_sub(EXCERPT_CONTEXT_CHARS);
    let tail = suffix.min(EXCERPT_CONTEXT_CHARS);
    let cut = |text: &[char]| {
        let end = text.len() - suffix + tail;
        let mut out = String::new();
        if start > 0 {
            out.push('…');
        }
        out.extend(&text[start..end]);
        if end < text.len() {
            out.push('…');
        }
        out
    };
    (cut(&a), cut(&b))
}

/// A seller's judgment of a stakeholder (`power`, `engagement`): a v1 plan document held
/// them, and the history a buyer reads must never carry them.
fn is_judgment(entity: &str, field: &str) -> bool {
    entity == schema::STAKEHOLDERS && schema::SELLER_JUDGMENTS.contains(&field)
}

fn entry_json(collection: Collection, entry: &RawEntry) -> Value {
    match entry {
        RawEntry::Entry(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, _)| !is_judgment(collection.root(), k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        RawEntry::NotAMap(value) => value.clone(),
    }
}

/// A date field's stored text: `None` when unset or empty (so setting it is not a slip).
fn date_text(fields: &Fields, field: &str) -> Option<String> {
    match fields.get(field)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn reason(new: &Fields, field: &str, written: bool) -> Option<String> {
    if !written {
        return None;
    }
    match new.get(field)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn slip(
    milestone_id: Option<&String>,
    title: Option<String>,
    from: Option<String>,
    to: Option<String>,
    reason: Option<String>,
) -> Option<Slip> {
    // Setting a first date is not a slip; a change to the same text is no change.
    let from = from?;
    if to.as_ref() == Some(&from) {
        return None;
    }
    let days = match (parse_date(&from), to.as_deref().and_then(parse_date)) {
        (Some(a), Some(b)) => Some((b - a).num_days()),
        _ => None,
    };
    Some(Slip {
        milestone_id: milestone_id.cloned(),
        title,
        from,
        to,
        days,
        reason,
        kept: true,
    })
}

fn text_field(fields: &Fields, field: &str) -> Option<String> {
    match fields.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn milestone_slip(id: &String, old: &Fields, new: &Fields, reason_written: bool) -> Option<Slip> {
    use schema::milestone as f;
    slip(
        Some(id),
        text_field(new, f::TITLE).or_else(|| text_field(old, f::TITLE)),
        date_text(old, f::DUE),
        date_text(new, f::DUE),
        reason(new, f::SLIP_REASON, reason_written),
    )
}

fn go_live_slip(before: &RawPlan, after: &RawPlan, written: &Written) -> Option<Slip> {
    use schema::meta as f;
    slip(
        None,
        text_field(&after.meta, f::TITLE),
        date_text(&before.meta, f::GO_LIVE),
        date_text(&after.meta, f::GO_LIVE),
        reason(
            &after.meta,
            f::GO_LIVE_SLIP_REASON,
            written.go_live_slip_reason,
        )
        .or_else(|| reason(&after.meta, f::GO_LIVE_REASON, written.go_live_reason)),
    )
}

/// What the transactions since the last [`HistoryTracker::apply`] touched, as reported by
/// the document's observers.
#[derive(Debug, Default)]
struct Touched {
    meta: bool,
    success: bool,
    /// A root itself changed (entries added or removed, or content that is not an entry), so
    /// whether a root holds sequence content must be checked again.
    roots: bool,
    /// Per collection and entry id: the fields touched, or `Whole` when the entry itself was
    /// added, replaced or removed.
    entries: BTreeMap<Collection, BTreeMap<String, Touch>>,
    written: Written,
}

/// What of one entry was touched.
#[derive(Debug)]
enum Touch {
    Whole,
    Fields(BTreeSet<String>),
}

impl Touch {
    fn field(&mut self, name: &str) {
        if let Touch::Fields(fields) = self {
            fields.insert(name.to_owned());
        }
    }
}

/// Which root an observer watches.
#[derive(Debug, Clone, Copy)]
enum Root {
    Meta,
    Success,
    Collection(Collection),
}

/// Keeps a document's last read state and, through observers on every root, learns which
/// entries each update touched and which reason fields it wrote. Every applied update yields
/// its [`Derivation`] by reading again only what was touched — so the cost follows the size of
/// the update, not of the plan. The server's rooms and the history rebuild both use it, which
/// is why they agree record for record.
pub struct HistoryTracker {
    current: RawPlan,
    touched: Arc<Mutex<Touched>>,
    /// Which key every map item sets, to find lost writes (`conflicts.rs`).
    map_items: MapItems,
}

/// Key of the observers a tracker registers (one tracker per document).
const OBSERVER_KEY: &str = "mapline-history";

/// What a [`HistoryTracker`] starts from: a document state's plan, read, and its map items,
/// indexed. It depends only on the state, so it can be computed from a replica holding the
/// same state (the same stored updates applied in the same order), e.g. on another thread
/// while the document itself answers its first readers.
pub struct TrackerIndex {
    current: RawPlan,
    map_items: MapItems,
}

impl TrackerIndex {
    /// Reads and indexes a document's current state (the costly part of a tracker's start:
    /// on a plan with a long history, mostly indexing its map items).
    pub fn of<T: ReadTxn>(txn: &T) -> Self {
        Self {
            current: RawPlan::read(txn),
            map_items: MapItems::of_state(txn),
        }
    }
}

impl HistoryTracker {
    /// Starts tracking a document in its current state.
    pub fn attach(doc: &Doc) -> Self {
        let index = TrackerIndex::of(&doc.transact());
        Self::attach_indexed(doc, index)
    }

    /// Starts tracking a document whose current state is the one `index` was computed from.
    /// Given an index of another state, the tracker derives wrong histories: the caller
    /// guarantees that nothing changed the document since (a room loads its document and
    /// applies nothing before its tracker is attached).
    pub fn attach_indexed(doc: &Doc, index: TrackerIndex) -> Self {
        let touched = Arc::new(Mutex::new(Touched::default()));
        let roots = [(schema::META, Root::Meta), (schema::SUCCESS, Root::Success)]
            .into_iter()
            .chain(Collection::ALL.map(|c| (c.root(), Root::Collection(c))));
        for (name, root) in roots {
            let sink = touched.clone();
            doc.get_or_insert_map(name)
                .observe_deep(OBSERVER_KEY, move |txn, events| {
                    let mut touched = sink.lock().unwrap_or_else(PoisonError::into_inner);
                    for event in events.iter() {
                        note(&mut touched, root, txn, event);
                    }
                });
        }
        Self {
            current: index.current,
            map_items: index.map_items,
            touched,
        }
    }

    /// Applies an update (`update`, decoded from `raw`) to the document and returns what it
    /// changed, with the error if yrs refused the update. Even then whatever did apply is
    /// accounted for exactly once.
    pub fn apply(
        &mut self,
        doc: &Doc,
        update: Update,
        raw: &[u8],
    ) -> (Derivation, Option<yrs::error::UpdateError>) {
        let (error, lost) = {
            let mut txn = doc.transact_mut();
            let error = txn.apply_update(update).err();
            (error, self.map_items.integrate(&txn, raw))
        };
        let touched =
            std::mem::take(&mut *self.touched.lock().unwrap_or_else(PoisonError::into_inner));
        let txn = doc.transact();
        // The touched part of the plan, before and after; everything else is unchanged.
        let mut before = RawPlan::default();
        let mut after = RawPlan::default();
        if touched.meta {
            before.meta = self.current.meta.clone();
            after.meta = read_fields(&txn, schema::META);
        }
        if touched.success {
            before.success = self.current.success.clone();
            after.success = read_fields(&txn, schema::SUCCESS);
        }
        // Entries read whole, to move into the kept state once derived.
        let mut wholes: Vec<(Collection, String)> = Vec::new();
        for (collection, ids) in touched.entries {
            let kept = self.current.collections.entry(collection).or_default();
            let old_part = before.collections.entry(collection).or_default();
            let new_part = after.collections.entry(collection).or_default();
            for (id, touch) in ids {
                // Only some fields changed: move those out of the kept entry and patch it.
                if let (Touch::Fields(fields), Some(RawEntry::Entry(kept_fields))) =
                    (&touch, kept.get_mut(&id))
                    && let Some((old, new)) =
                        patch_fields(&txn, collection, &id, fields, kept_fields)
                {
                    old_part.insert(id.clone(), RawEntry::Entry(old));
                    new_part.insert(id, RawEntry::Entry(new));
                    continue;
                }
                // Otherwise the entry moves out whole (no copy) and is read again whole.
                if let Some(entry) = kept.remove(&id) {
                    old_part.insert(id.clone(), entry);
                }
                if let Some(entry) = read_entry(&txn, collection, &id) {
                    new_part.insert(id.clone(), entry);
                    wholes.push((collection, id));
                }
            }
        }
        let mut derivation = derive(&before, &after, &touched.written);

        if touched.meta {
            self.current.meta = after.meta;
        }
        if touched.success {
            self.current.success = after.success;
        }
        for (collection, id) in wholes {
            if let Some(entry) = after
                .collections
                .get_mut(&collection)
                .and_then(|entries| entries.remove(&id))
            {
                self.current
                    .collections
                    .entry(collection)
                    .or_default()
                    .insert(id, entry);
            }
        }
        if touched.roots {
            self.current.roots_not_maps = roots_not_maps(&txn);
        }
        if !lost.is_empty() {
            record_lost(
                &mut derivation,
                &lost,
                &before,
                &self.current,
                &touched.written,
            );
        }
        (derivation, error)
    }

    /// The document as of the last applied update.
    pub fn current(&self) -> &RawPlan {
        &self.current
    }
}

/// A field's value in a (partial) plan: `meta`/`success` fields, an entry's field, or a whole
/// entry.
fn value_at(plan: &RawPlan, place: &Place) -> Option<Value> {
    let root = place.root.as_ref();
    let fields = match (root, &place.entry) {
        (schema::META, None) => &plan.meta,
        (schema::SUCCESS, None) => &plan.success,
        (_, Some(id)) => {
            let collection = Collection::ALL.into_iter().find(|c| c.root() == root)?;
            let entry = plan.collections.get(&collection)?.get(id.as_ref())?;
            match (&place.field, entry) {
                (Some(field), RawEntry::Entry(fields)) => {
                    return fields.get(field.as_ref()).cloned();
                }
                (None, entry) => return Some(entry_json(collection, entry)),
                (Some(_), RawEntry::NotAMap(_)) => return None,
            }
        }
        _ => return None,
    };
    fields.get(place.field.as_deref()?).cloned()
}

/// Adds an update's lost writes to its derivation: one `conflict` change each, and a lost date
/// move as a slip that was not kept.
fn record_lost(
    derivation: &mut Derivation,
    lost: &[LostWrite],
    before: &RawPlan,
    now: &RawPlan,
    written: &Written,
) {
    let entity = |root: &str| {
        Collection::ALL
            .into_iter()
            .map(Collection::root)
            .chain([schema::META, schema::SUCCESS])
            .find(|r| *r == root)
    };
    for write in lost {
        let Some(root) = entity(&write.place.root) else {
            continue;
        };
        if write
            .place
            .field
            .as_deref()
            .is_some_and(|field| is_judgment(root, field))
        {
            continue;
        }
        let kept = value_at(now, &write.place);
        let lost_value = match &write.lost_value {
            Some(value) => Some(value.clone()),
            // Overwritten unseen: the value before this update, unless it had been cleared.
            None => match value_at(before, &write.place) {
                Some(value) => Some(value),
                None => continue,
            },
        };
        derivation.changes.push(Change {
            entity: root,
            entity_id: write.place.entry.as_deref().map(str::to_owned),
            field: write.place.field.as_deref().map(str::to_owned),
            kind: ChangeKind::Conflict,
            old: lost_value.clone(),
            new: kept.clone(),
            conflict: Some(Conflict {
                kept_client: write.kept_client,
                lost_client: write.lost_client,
                lost_here: write.lost_here,
            }),
        });
        if write.lost_here
            && let Some(slip) = lost_move(write, lost, kept, lost_value, now, written)
        {
            derivation.slips.push(slip);
        }
    }
}

/// A date move that lost on arrival, as a slip not kept: from the date the plan keeps to the
/// one the update wanted, with the reason the update gave.
fn lost_move(
    write: &LostWrite,
    lost: &[LostWrite],
    kept: Option<Value>,
    wanted: Option<Value>,
    now: &RawPlan,
    written: &Written,
) -> Option<Slip> {
    let (milestone, reason_field) = match (write.place.root.as_ref(), &write.place.entry) {
        (schema::META, None) if write.place.field.as_deref() == Some(schema::meta::GO_LIVE) => {
            (None, schema::meta::GO_LIVE_SLIP_REASON)
        }
        (schema::MILESTONES, Some(id))
            if write.place.field.as_deref() == Some(schema::milestone::DUE) =>
        {
            (Some(id.to_string()), schema::milestone::SLIP_REASON)
        }
        _ => return None,
    };
    let text = |value: Option<Value>| match value? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    // The reason it wrote: lost with it, or kept if only the date lost.
    let lost_reason = lost.iter().find(|other| {
        other.lost_here
            && other.place.root == write.place.root
            && other.place.entry == write.place.entry
            && other.place.field.as_deref() == Some(reason_field)
            && other.lost_client == write.lost_client
    });
    let reason = match lost_reason {
        Some(other) => text(other.lost_value.clone()),
        None => {
            let place = Place {
                field: Some(reason_field.into()),
                ..write.place.clone()
            };
            let wrote = match &milestone {
                Some(id) => written.slip_reasons.contains(id),
                None => written.go_live_slip_reason,
            };
            wrote.then(|| text(value_at(now, &place))).flatten()
        }
    };
    let title_place = Place {
        field: Some(schema::milestone::TITLE.into()),
        ..write.place.clone()
    };
    let mut slip = slip(
        milestone.as_ref(),
        text(value_at(now, &title_place)),
        text(kept),
        text(wanted),
        reason,
    )?;
    slip.kept = false;
    Some(slip)
}

/// Reads the touched fields of an entry again and patches the kept entry with them. Returns
/// the touched fields before and after (with the milestone's title as context when its due
/// date moved, so the slip can name it), or `None` if the document no longer holds the entry
/// as a map (then it is read whole).
fn patch_fields<T: ReadTxn>(
    txn: &T,
    collection: Collection,
    id: &str,
    fields: &BTreeSet<String>,
    kept: &mut Fields,
) -> Option<(Fields, Fields)> {
    let Out::YMap(entry) = txn.get_map(collection.root())?.get(txn, id)? else {
        return None;
    };
    let mut old = Fields::new();
    let mut new = Fields::new();
    for field in fields {
        if let Some(value) = kept.remove(field) {
            old.insert(field.clone(), value);
        }
        if let Some(value) = entry.get(txn, field) {
            let value = to_json(txn, value);
            new.insert(field.clone(), value.clone());
            kept.insert(field.clone(), value);
        }
    }
    let title = schema::milestone::TITLE;
    if collection == Collection::Milestones
        && fields.contains(schema::milestone::DUE)
        && !fields.contains(title)
        && let Some(value) = kept.get(title)
    {
        old.insert(title.to_owned(), value.clone());
        new.insert(title.to_owned(), value.clone());
    }
    Some((old, new))
}

/// Records what one observed event touched.
fn note(touched: &mut Touched, root: Root, txn: &yrs::TransactionMut, event: &Event) {
    let path = event.path();
    touched.roots |= path.is_empty();
    match root {
        Root::Meta => {
            touched.meta = true;
            if let Event::Map(event) = event
                && path.is_empty()
            {
                let keys = event.keys(txn);
                touched.written.go_live_reason |= keys.contains_key(schema::meta::GO_LIVE_REASON);
                touched.written.go_live_slip_reason |=
                    keys.contains_key(schema::meta::GO_LIVE_SLIP_REASON);
            }
        }
        Root::Success => touched.success = true,
        Root::Collection(collection) => {
            let ids = touched.entries.entry(collection).or_default();
            match (path.front(), path.get(1)) {
                // A field's value inside an entry changed in place (e.g. `dependsOn`).
                (Some(PathSegment::Key(id)), Some(PathSegment::Key(field))) => ids
                    .entry(id.to_string())
                    .or_insert_with(|| Touch::Fields(BTreeSet::new()))
                    .field(field),
                // Fields of an entry were set or removed.
                (Some(PathSegment::Key(id)), None) => {
                    let touch = ids
                        .entry(id.to_string())
                        .or_insert_with(|| Touch::Fields(BTreeSet::new()));
                    match event {
                        Event::Map(event) => {
                            let keys = event.keys(txn);
                            for field in keys.keys() {
                                touch.field(field);
                            }
                            if collection == Collection::Milestones
                                && keys.contains_key(schema::milestone::SLIP_REASON)
                            {
                                touched.written.slip_reasons.insert(id.to_string());
                            }
                        }
                        // An entry that is not a map changed: read it whole.
                        _ => *touch = Touch::Whole,
                    }
                }
                // The collection itself: entries added, replaced or removed.
                (None, _) => {
                    if let Event::Map(event) = event {
                        for id in event.keys(txn).keys() {
                            ids.insert(id.to_string(), Touch::Whole);
                        }
                    }
                }
                // Anything else (array positions inside an entry): read the entry whole.
                (Some(PathSegment::Key(id)), Some(PathSegment::Index(_))) => {
                    ids.insert(id.to_string(), Touch::Whole);
                }
                (Some(PathSegment::Index(_)), _) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::{move_due, move_go_live};
    use crate::testing::{entry, field, milestone, t};
    use serde_json::json;
    use yrs::{ReadTxn, TransactionMut};

    /// A client document and the server's tracked copy: each `edit` is one client transaction,
    /// shipped to the server as one update, and yields what the server derives from it.
    struct Session {
        client: Doc,
        server: Doc,
        tracker: HistoryTracker,
    }

    impl Session {
        fn new() -> Self {
            let server = Doc::with_client_id(99);
            let tracker = HistoryTracker::attach(&server);
            Self {
                client: Doc::with_client_id(5),
                server,
                tracker,
            }
        }

        fn edit(&mut self, write: impl FnOnce(&mut TransactionMut)) -> Derivation {
            let before = self.client.transact().state_vector();
            write(&mut self.client.transact_mut());
            let update = self.client.transact().encode_diff_v1(&before);
            let (derivation, error) =
                self.tracker
                    .apply(&self.server, Update::decode_v1(&update).unwrap(), &update);
            assert!(error.is_none());
            derivation
        }
    }

    use yrs::updates::decoder::Decode;

    fn date(text: &str) -> Option<chrono::NaiveDate> {
        crate::parse_date(text)
    }

    #[test]
    fn moving_a_due_date_with_a_reason_is_one_slip() {
        let mut s = Session::new();
        s.edit(|txn| milestone(txn, "m1", "2027-01-10", &[], vec![]));
        let d = s.edit(|txn| move_due(txn, "m1", date("2027-01-24"), "Legal backlog").unwrap());
        assert_eq!(
            d.slips,
            [Slip {
                milestone_id: Some("m1".into()),
                title: Some("Milestone m1".into()),
                from: "2027-01-10".into(),
                to: Some("2027-01-24".into()),
                days: Some(14),
                reason: Some("Legal backlog".into()),
                kept: true,
            }]
        );
        let fields: Vec<_> = d.changes.iter().map(|c| c.field.as_deref()).collect();
        assert_eq!(fields, [Some("due"), Some("slipReason")]);
        assert_eq!(d.changes[0].old, Some(json!("2027-01-10")));
        assert_eq!(d.changes[0].new, Some(json!("2027-01-24")));
    }

    #[test]
    fn a_reason_given_again_belongs_to_the_second_move_and_an_old_one_does_not() {
        let mut s = Session::new();
        s.edit(|txn| milestone(txn, "m1", "2027-01-10", &[], vec![]));
        s.edit(|txn| move_due(txn, "m1", date("2027-01-12"), "Holidays").unwrap());
        let again = s.edit(|txn| move_due(txn, "m1", date("2027-01-15"), "Holidays").unwrap());
        assert_eq!(again.slips[0].reason.as_deref(), Some("Holidays"));
        assert_eq!(again.slips[0].days, Some(3));
        let silent = s.edit(|txn| field_of(txn, "m1", "due", "2027-01-11"));
        assert_eq!(silent.slips[0].reason, None);
        assert_eq!(silent.slips[0].days, Some(-4));
    }

    fn field_of(txn: &mut TransactionMut, id: &str, name: &str, value: &str) {
        use yrs::{Map, Out, WriteTxn};
        let milestones = txn.get_or_insert_map("milestones");
        let Some(Out::YMap(entry)) = milestones.get(txn, id) else {
            panic!("no milestone {id}")
        };
        entry.insert(txn, name, value);
    }

    #[test]
    fn setting_a_first_date_is_not_a_slip_but_clearing_one_is() {
        let mut s = Session::new();
        s.edit(|txn| entry(txn, "milestones", "m1", vec![("title", t("Kickoff"))]));
        let first = s.edit(|txn| field_of(txn, "m1", "due", "2027-01-10"));
        assert_eq!(first.slips, []);
        assert_eq!(first.changes.len(), 1);
        let cleared =
            s.edit(|txn| move_due(txn, "m1", None, "Date unknown until legal replies").unwrap());
        assert_eq!(cleared.slips.len(), 1);
        assert_eq!(cleared.slips[0].to, None);
        assert_eq!(cleared.slips[0].days, None);
        assert_eq!(cleared.slips[0].from, "2027-01-10");
    }

    #[test]
    fn moving_go_live_is_a_slip_without_a_milestone() {
        let mut s = Session::new();
        s.edit(|txn| field(txn, "meta", "goLive", t("2027-04-01")));
        let d =
            s.edit(|txn| move_go_live(txn, date("2027-03-25").unwrap(), "Board moved the date"));
        assert_eq!(d.slips.len(), 1);
        assert_eq!(d.slips[0].milestone_id, None);
        assert_eq!(d.slips[0].days, Some(-7));
        assert_eq!(d.slips[0].reason.as_deref(), Some("Board moved the date"));
    }

    #[test]
    fn creating_and_deleting_entries_are_changes_not_slips() {
        let mut s = Session::new();
        let created = s.edit(|txn| milestone(txn, "m1", "2027-01-10", &[], vec![]));
        assert_eq!(created.slips, []);
        assert_eq!(created.changes.len(), 1);
        assert_eq!(created.changes[0].kind, ChangeKind::Created);
        assert_eq!(
            created.changes[0].new.as_ref().unwrap()["due"],
            json!("2027-01-10")
        );
        let deleted = s.edit(|txn| {
            use yrs::{Map, WriteTxn};
            let milestones = txn.get_or_insert_map("milestones");
            milestones.remove(txn, "m1");
        });
        assert_eq!(deleted.slips, []);
        assert_eq!(deleted.changes[0].kind, ChangeKind::Deleted);
        assert_eq!(
            deleted.changes[0].old.as_ref().unwrap()["title"],
            json!("Milestone m1")
        );
    }

    #[test]
    fn a_long_text_change_records_the_edited_part_with_context() {
        let long = "a".repeat(300);
        let (old, new) = excerpts(
            &format!("{long}Hello world{long}"),
            &format!("{long}Hello, dear world{long}"),
        );
        // 40 unchanged characters before the first edited one ("Hello" and 35 a), and 40 after
        // the last (" world" and 34 a).
        let (before, after) = ("a".repeat(35), "a".repeat(34));
        assert_eq!(old, format!("…{before}Hello world{after}…"));
        assert_eq!(new, format!("…{before}Hello, dear world{after}…"));
        // Short texts are whole; an edit at the very start keeps no leading mark.
        assert_eq!(
            excerpts("Kick-off", "Kickoff"),
            ("Kick-off".into(), "Kickoff".into())
        );
        let (old, new) = excerpts(&format!("x{long}"), &long);
        assert_eq!(
            (old.chars().next(), new.chars().next()),
            (Some('x'), Some('a'))
        );
        assert!(old.ends_with('…') && new.ends_with('…'));
    }

    #[test]
    fn an_update_that_changes_nothing_derives_nothing() {
        let mut s = Session::new();
        s.edit(|txn| milestone(txn, "m1", "2027-01-10", &[], vec![]));
        let same = s.edit(|txn| field_of(txn, "m1", "due", "2027-01-10"));
        assert!(same.is_empty());
    }

    #[test]
    fn a_garbage_date_moved_to_a_real_one_is_a_slip_without_days() {
        let mut s = Session::new();
        s.edit(|txn| milestone(txn, "m1", "soon", &[], vec![]));
        let d = s.edit(|txn| field_of(txn, "m1", "due", "2027-01-10"));
        assert_eq!(d.slips[0].from, "soon");
        assert_eq!(d.slips[0].days, None);
    }

    #[test]
    fn the_tracker_notices_a_collection_written_as_an_array() {
        let mut s = Session::new();
        s.edit(|txn| milestone(txn, "m1", "2027-01-10", &[], vec![]));
        assert!(s.tracker.current().roots_not_maps.is_empty());
        s.edit(|txn| {
            use yrs::{Array, WriteTxn};
            txn.get_or_insert_array("milestones")
                .push_back(txn, "stray");
        });
        assert_eq!(s.tracker.current().roots_not_maps, ["milestones"]);
        assert_eq!(s.tracker.current(), &RawPlan::read(&s.server.transact()));
    }

    #[test]
    fn the_same_updates_from_scratch_derive_the_same_records() {
        let mut s = Session::new();
        let mut online = Vec::new();
        let mut log = Vec::new();
        let mut edit = |s: &mut Session, write: &dyn Fn(&mut TransactionMut)| {
            let before = s.client.transact().state_vector();
            write(&mut s.client.transact_mut());
            let update = s.client.transact().encode_diff_v1(&before);
            online.push(
                s.tracker
                    .apply(&s.server, Update::decode_v1(&update).unwrap(), &update)
                    .0,
            );
            log.push(update);
        };
        edit(&mut s, &|txn| {
            milestone(txn, "m1", "2027-01-10", &[], vec![])
        });
        edit(&mut s, &|txn| {
            move_due(txn, "m1", date("2027-02-01"), "Security review").unwrap()
        });
        edit(&mut s, &|txn| {
            move_go_live(txn, date("2027-05-01").unwrap(), "Budget")
        });
        let replay = Doc::with_client_id(1);
        let mut tracker = HistoryTracker::attach(&replay);
        let rebuilt: Vec<_> = log
            .iter()
            .map(|u| tracker.apply(&replay, Update::decode_v1(u).unwrap(), u).0)
            .collect();
        assert_eq!(online, rebuilt);
    }
}
