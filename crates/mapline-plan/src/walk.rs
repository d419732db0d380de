//! One pass over a v1-encoded update's items, without integrating it: what admission checks and
//! what conflict detection reads (which map key an item sets, and what it replaced). yrs does
//! not expose an update's blocks, so this reads the encoding with yrs' own public decoders.

use std::sync::Arc;

use yrs::block::ItemContent;
use yrs::encoding::read::Read as _;
use yrs::updates::decoder::{Decoder, DecoderV1};
use yrs::{ClientID, ID, IdSet};

/// Where an item's parent is, as its encoding says.
#[derive(Debug)]
pub(crate) enum Parent {
    /// A root type, by name.
    Named(Arc<str>),
    /// The item that holds the parent type.
    Item(ID),
    /// Taken from the item's left or right neighbour.
    Inherited,
}

/// One item of an update, as encoded.
#[derive(Debug)]
pub(crate) struct WalkedItem {
    pub id: ID,
    pub len: u32,
    /// The item this one was inserted after (a map value's previous value).
    pub origin: Option<ID>,
    pub parent: Parent,
    pub parent_sub: Option<Arc<str>>,
    pub content: ItemContent,
}

/// `None` when the clocks overflow (a hostile encoding: yrs would wrap).
pub(crate) fn items(raw: &[u8]) -> Result<Option<Vec<WalkedItem>>, yrs::encoding::read::Error> {
    read_items(&mut DecoderV1::from(raw))
}

/// The items of an update and the deletions it carries; `None` if it does not decode (or its
/// clocks overflow).
pub(crate) fn update(raw: &[u8]) -> Option<(Vec<WalkedItem>, IdSet)> {
    use yrs::updates::decoder::Decode as _;
    let mut decoder = DecoderV1::from(raw);
    let items = read_items(&mut decoder).ok()??;
    let deletes = IdSet::decode(&mut decoder).ok()?;
    Some((items, deletes))
}

fn read_items(
    decoder: &mut DecoderV1<'_>,
) -> Result<Option<Vec<WalkedItem>>, yrs::encoding::read::Error> {
    const HAS_ORIGIN: u8 = 0b1000_0000;
    const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
    const HAS_PARENT_SUB: u8 = 0b0010_0000;
    const GC: u8 = 0;
    const SKIP: u8 = 10;
    let clients: u32 = decoder.read_var()?;
    let mut items = Vec::new();
    for _ in 0..clients {
        let blocks: u32 = decoder.read_var()?;
        let client: ClientID = decoder.read_client()?;
        let mut clock: u32 = decoder.read_var()?;
        for _ in 0..blocks {
            let info = decoder.read_info()?;
            match info & 0b1_1111 {
                GC => {
                    let Some(next) = clock.checked_add(decoder.read_len()?) else {
                        return Ok(None);
                    };
                    clock = next;
                }
                SKIP => {
                    let Some(next) = clock.checked_add(decoder.read_var::<u32>()?) else {
                        return Ok(None);
                    };
                    clock = next;
                }
                _ => {
                    let origin = if info & HAS_ORIGIN != 0 {
                        Some(decoder.read_left_id()?)
                    } else {
                        None
                    };
                    if info & HAS_RIGHT_ORIGIN != 0 {
                        decoder.read_right_id()?;
                    }
                    let own_parent = info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0;
                    let parent = if !own_parent {
                        Parent::Inherited
                    } else if decoder.read_parent_info()? {
                        Parent::Named(decoder.read_string()?.into())
                    } else {
                        Parent::Item(decoder.read_left_id()?)
                    };
                    let parent_sub = if own_parent && info & HAS_PARENT_SUB != 0 {
                        Some(Arc::from(decoder.read_string()?))
                    } else {
                        None
                    };
                    let content = ItemContent::decode(decoder, info)?;
                    let len = content.len_utf16();
                    if len > 0 {
                        items.push(WalkedItem {
                            id: ID::new(client, clock),
                            len,
                            origin,
                            parent,
                            parent_sub,
                            content,
                        });
                    }
                    let Some(next) = clock.checked_add(len) else {
                        return Ok(None);
                    };
                    clock = next;
                }
            }
        }
    }
    Ok(Some(items))
}

/// Values kept per item, found by any clock inside the item: an item can span several clocks
/// (a run of text, or a writer's overwritten values merged into one deleted item), and an
/// origin may name any of them.
#[derive(Debug)]
pub(crate) struct ItemIndex<V> {
    by_client: std::collections::HashMap<ClientID, std::collections::BTreeMap<u32, (u32, V)>>,
}

impl<V> Default for ItemIndex<V> {
    fn default() -> Self {
        Self {
            by_client: std::collections::HashMap::new(),
        }
    }
}

impl<V> ItemIndex<V> {
    /// Records `value` for the item starting at `id` and spanning `len` clocks.
    pub fn insert(&mut self, id: ID, len: u32, value: V) {
        self.by_client
            .entry(id.client)
            .or_default()
            .insert(id.clock, (len, value));
    }

    /// The value of the item holding `id`.
    pub fn get(&self, id: &ID) -> Option<&V> {
        let (start, (len, value)) = self
            .by_client
            .get(&id.client)?
            .range(..=id.clock)
            .next_back()?;
        (id.clock < start.saturating_add(*len)).then_some(value)
    }
}

/// What each item of a batch resolves to, when an item may inherit its value from its origin
/// (a map value replacing another sets the same key; its encoding names only the origin).
/// `seed` gives an item's value when it can be told on its own (it names its parent and key,
/// or its origin is already known); the rest inherit from an origin in the batch as soon as
/// that one is resolved — a worklist, so no ordering of a hostile encoding costs more than
/// n log n.
pub(crate) fn resolve_inherited<V: Clone>(
    items: &[WalkedItem],
    mut seed: impl FnMut(&WalkedItem) -> Option<V>,
) -> Vec<Option<V>> {
    let mut values: Vec<Option<V>> = items.iter().map(&mut seed).collect();
    let mut batch: ItemIndex<()> = ItemIndex::default();
    for item in items {
        batch.insert(item.id, item.len, ());
    }
    // Unresolved items, keyed by the origin they wait for.
    let mut waiting: std::collections::BTreeMap<(ClientID, u32), Vec<usize>> =
        std::collections::BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if values[i].is_none()
            && matches!(item.parent, Parent::Inherited)
            && let Some(origin) = item.origin
            && batch.get(&origin).is_some()
        {
            waiting
                .entry((origin.client, origin.clock))
                .or_default()
                .push(i);
        }
    }
    let mut done: Vec<usize> = (0..items.len()).filter(|i| values[*i].is_some()).collect();
    while let Some(resolved) = done.pop() {
        let item = &items[resolved];
        let end = item.id.clock.saturating_add(item.len);
        let keys: Vec<(ClientID, u32)> = waiting
            .range((item.id.client, item.id.clock)..(item.id.client, end))
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            for next in waiting.remove(&key).unwrap_or_default() {
                if values[next].is_none() {
                    values[next] = values[resolved].clone();
                    done.push(next);
                }
            }
        }
    }
    values
}
