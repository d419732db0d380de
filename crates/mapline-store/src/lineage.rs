//! Share-link lineage: which link a link was minted through. A minted link is bounded by the
//! link it came from: its expiry is at most its parent's, and revoking a link revokes every link
//! minted through it, transitively, in the same write transaction — so checking a token stays
//! one read of its own `shares` record, and a crash can never leave a descendant usable.
//!
//! Lineage lives in two tables beside `shares` rather than in the `ShareRecord` itself, so
//! share records (and every file written before lineage existed) decode exactly as before.
//! Edges are only ever written when a new link is inserted, from an existing link to the new
//! one, so the graph is a forest: no cycles by construction (traversals still keep a visited
//! set, so a damaged file cannot loop them).

use std::collections::HashSet;

use redb::{ReadableTable, TableDefinition};

use crate::error::{Result, StoreError};
use crate::records::{PlanId, ShareId, ShareRecord};
use crate::store::{BackupError, Store, copy_table};

/// A minted link → the link it was minted through.
pub(crate) const SHARE_PARENTS: TableDefinition<u128, u128> = TableDefinition::new("share_parents");
/// (parent, child): the links minted through a link, for the cascade.
pub(crate) const SHARE_CHILDREN: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("share_children");

/// A share link with the link it was minted through (`None` for links minted with the admin
/// credential, a plan's default links, and every link made before lineage was recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedShare {
    pub record: ShareRecord,
    pub parent: Option<ShareId>,
}

/// What a revocation did: the link and its descendants as now stored (the link first, then
/// the tree below it depth first), and which of them it revoked (those not revoked before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub links: Vec<LinkedShare>,
    pub newly_revoked: Vec<ShareId>,
}

pub(crate) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(SHARE_PARENTS)?;
    txn.open_table(SHARE_CHILDREN)?;
    Ok(())
}

pub(crate) fn copy_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), BackupError> {
    copy_table(from, to, SHARE_PARENTS)?;
    copy_table(from, to, SHARE_CHILDREN)?;
    Ok(())
}

pub(crate) fn dump_shared_tables(
    txn: &redb::ReadTransaction,
    out: &mut crate::store::Dump,
) -> Result<()> {
    crate::store::dump_table(txn, SHARE_PARENTS, out)?;
    crate::store::dump_table(txn, SHARE_CHILDREN, out)
}

/// Records that `child` was minted through `parent` (inside the child's insert).
pub(crate) fn link(txn: &redb::WriteTransaction, parent: ShareId, child: ShareId) -> Result<()> {
    txn.open_table(SHARE_PARENTS)?
        .insert(child.as_u128(), parent.as_u128())?;
    txn.open_table(SHARE_CHILDREN)?
        .insert((parent.as_u128(), child.as_u128()), ())?;
    Ok(())
}

/// The link itself and every link minted through it, transitively: depth first, each link
/// before the links minted through it, siblings in id (creation) order.
pub(crate) fn subtree(
    children: &impl ReadableTable<(u128, u128), ()>,
    root: ShareId,
) -> Result<Vec<ShareId>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![root.as_u128()];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        out.push(ShareId::from_u128(id));
        let mut below = Vec::new();
        for entry in children.range((id, 0)..=(id, u128::MAX))? {
            below.push(entry?.0.value().1);
        }
        // Reversed so the stack pops the oldest child first.
        stack.extend(below.into_iter().rev());
    }
    Ok(out)
}

/// The parent of one link.
pub(crate) fn parent_of(
    parents: &impl ReadableTable<u128, u128>,
    share: ShareId,
) -> Result<Option<ShareId>> {
    Ok(parents
        .get(share.as_u128())?
        .map(|v| ShareId::from_u128(v.value())))
}

impl Store {
    /// The link a share link was minted through, if any.
    pub fn share_parent(&self, share: ShareId) -> Result<Option<ShareId>> {
        self.read(|txn| parent_of(&txn.open_table(SHARE_PARENTS)?, share))
    }

    /// What revoking a link of `plan` would revoke: the link and every link minted through it,
    /// transitively (see [`Revocation::links`] for the order). `None` when the plan has no such
    /// link. Links already revoked are listed too (with their revocation time).
    pub fn revocation_of(&self, plan: PlanId, share: ShareId) -> Result<Option<Vec<LinkedShare>>> {
        self.read(|txn| {
            let shares = txn.open_table(crate::store::SHARES_TABLE)?;
            let parents = txn.open_table(SHARE_PARENTS)?;
            let children = txn.open_table(SHARE_CHILDREN)?;
            match crate::store::share_in(&shares, share)? {
                Some(record) if record.plan_id == plan => {}
                _ => return Ok(None),
            }
            let mut out = Vec::new();
            for id in subtree(&children, share)? {
                let record =
                    crate::store::share_in(&shares, id)?.ok_or_else(|| StoreError::Corrupt {
                        table: "share_children",
                        key: id.to_string(),
                    })?;
                out.push(LinkedShare {
                    record,
                    parent: parent_of(&parents, id)?,
                });
            }
            Ok(Some(out))
        })
    }
}
