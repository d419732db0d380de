//! Calendar-feed credentials: the SHA-256 of each share link's read-only feed token.
//!
//! A feed token is derived from its link's token by the server (so it is the same every time the
//! link holder asks for it) and is only ever stored hashed, like share tokens. The hash lives in
//! its own table beside `shares`, so share records (and every file written before feeds existed)
//! decode exactly as before; a link without a row simply has no feed yet. Revocation and expiry
//! are never stored here: a feed is checked against its link's own `shares` record every time.

use redb::TableDefinition;

use crate::commands::{Command, Outcome};
use crate::error::Result;
use crate::records::{ShareId, ShareRecord};
use crate::store::{BackupError, SHARES_TABLE, Store, copy_table, share_in};

/// Share id → SHA-256 of the link's calendar-feed token.
pub(crate) const SHARE_FEEDS: TableDefinition<u128, [u8; 32]> = TableDefinition::new("share_feeds");

pub(crate) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(SHARE_FEEDS)?;
    Ok(())
}

pub(crate) fn copy_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), BackupError> {
    copy_table(from, to, SHARE_FEEDS)?;
    Ok(())
}

pub(crate) fn dump_shared_tables(
    txn: &redb::ReadTransaction,
    out: &mut crate::store::Dump,
) -> Result<()> {
    crate::store::dump_table(txn, SHARE_FEEDS, out)
}

impl Store {
    /// A share link with the hash of its feed token (`None` when no feed was issued yet), read
    /// in one transaction: what checking a feed token needs.
    pub fn share_with_feed(&self, id: ShareId) -> Result<Option<(ShareRecord, Option<[u8; 32]>)>> {
        self.read(|txn| {
            let Some(share) = share_in(&txn.open_table(SHARES_TABLE)?, id)? else {
                return Ok(None);
            };
            let feed = txn
                .open_table(SHARE_FEEDS)?
                .get(id.as_u128())?
                .map(|v| v.value());
            Ok(Some((share, feed)))
        })
    }

    /// Records the hash of a link's feed token. Writes only when it is missing or different,
    /// so asking for the same feed again costs a read.
    pub fn set_feed_hash(&self, id: ShareId, hash: &[u8; 32]) -> Result<()> {
        let stored = self.read(|txn| {
            Ok(txn
                .open_table(SHARE_FEEDS)?
                .get(id.as_u128())?
                .map(|v| v.value()))
        })?;
        if stored.as_ref() == Some(hash) {
            return Ok(());
        }
        self.execute(&Command::SetFeedHash {
            share: id,
            hash: *hash,
        })
        .map(Outcome::done)
    }
}

/// Records the hash of a link's feed token (the write itself: the command skips no write, so
/// every replica stores the same row whatever it held before).
pub(crate) fn set_feed_hash_in(
    txn: &redb::WriteTransaction,
    id: ShareId,
    hash: &[u8; 32],
) -> Result<()> {
    txn.open_table(SHARE_FEEDS)?.insert(id.as_u128(), hash)?;
    Ok(())
}
