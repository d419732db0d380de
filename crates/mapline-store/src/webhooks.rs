//! Webhook subscriptions, their outbox and delivery log. The outbox is filled from the stored
//! history (events are derived from history entries after a per-plan cursor, in the same
//! transaction that advances the cursor), so an event is queued exactly once and survives any
//! restart; deliveries leave the outbox only when delivered or given up.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::commands::{Command, Outcome};
use crate::error::Result;
use crate::records::{HistoryEntry, PlanId, Seq, decode, encode};
use crate::store::Store;

const WEBHOOKS: TableDefinition<u128, &[u8]> = TableDefinition::new("webhooks");
/// Deliveries waiting (or retrying), by delivery id (UUID v7: oldest first).
const OUTBOX: TableDefinition<u128, &[u8]> = TableDefinition::new("webhook_outbox");
/// Every attempt, by (webhook, delivery id, attempt).
const DELIVERY_LOG: TableDefinition<(u128, u128, u32), &[u8]> = TableDefinition::new("webhook_log");
/// Per plan, the last history position whose events are queued.
const EVENT_CURSOR: TableDefinition<u128, u64> = TableDefinition::new("webhook_cursor");
/// (plan, milestone) → the due date an overdue event was queued for.
const OVERDUE_SENT: TableDefinition<(u128, &str), &str> = TableDefinition::new("webhook_overdue");

/// A subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub id: Uuid,
    pub url: String,
    /// The HMAC-SHA256 key deliveries are signed with.
    pub secret: String,
    /// Only this plan's events (`None`: every plan).
    pub plan: Option<PlanId>,
    /// Only these events (empty: all).
    pub events: Vec<String>,
    pub created_at_ms: i64,
}

impl WebhookRecord {
    /// Whether an event of this plan goes to this subscription.
    pub fn wants(&self, plan: PlanId, event: &str) -> bool {
        self.plan.is_none_or(|p| p == plan)
            && (self.events.is_empty() || self.events.iter().any(|e| e == event))
    }
}

/// One delivery of one event to one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub webhook: Uuid,
    pub event: String,
    /// The JSON body, exactly as signed and sent.
    pub body: String,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub created_at_ms: i64,
}

/// One attempt in the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub event: String,
    pub at_ms: i64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// `delivered`, `retrying` or `gave_up`.
    pub outcome: String,
}

impl Store {
    pub fn insert_webhook(&self, hook: &WebhookRecord) -> Result<()> {
        self.execute(&Command::InsertWebhook { hook: hook.clone() })
            .map(Outcome::done)
    }

    pub fn webhooks(&self) -> Result<Vec<WebhookRecord>> {
        self.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(WEBHOOKS)?.iter()? {
                if let Some(hook) = decode(entry?.1.value()) {
                    out.push(hook);
                }
            }
            Ok(out)
        })
    }

    /// Removes a subscription and its waiting deliveries; false if there was none.
    pub fn delete_webhook(&self, id: Uuid) -> Result<bool> {
        self.execute(&Command::DeleteWebhook { id })
            .map(Outcome::changed)
    }

    /// Plans whose derived history has moved past their event cursor, with how far it is
    /// derived. Only the plans whose history was stored since the last call are looked at (every
    /// plan after the file is opened or [`Store::rescan_history`]), so a node with 10,000 quiet
    /// plans does not read them all each time the worker looks.
    pub fn plans_with_new_history(&self) -> Result<Vec<(PlanId, Seq)>> {
        let moved = self.take_history_stored();
        let found = self.read(|txn| {
            let cursors = txn.open_table(EVENT_CURSOR)?;
            let derived = txn.open_table(crate::store::DERIVED_TABLE)?;
            let mut out = Vec::new();
            let mut consider = |plan: u128, through: Seq| -> Result<()> {
                let cursor = cursors.get(plan)?.map_or(0, |v| v.value());
                if through > cursor {
                    out.push((PlanId::from_u128(plan), through));
                }
                Ok(())
            };
            match &moved {
                None => {
                    for entry in derived.iter()? {
                        let (plan, through) = entry?;
                        consider(plan.value(), through.value())?;
                    }
                }
                Some(moved) => {
                    let mut moved: Vec<u128> = moved.iter().copied().collect();
                    moved.sort_unstable();
                    for plan in moved {
                        if let Some(through) = derived.get(plan)? {
                            consider(plan, through.value())?;
                        }
                    }
                }
            }
            Ok(out)
        });
        if found.is_err() {
            self.rescan_history();
        }
        found
    }

    /// The history entries after a plan's event cursor, and how far the plan's history is
    /// derived (the cursor's next value: updates without entries move it too).
    pub fn history_after_cursor(&self, plan: PlanId) -> Result<(Seq, Vec<(Seq, HistoryEntry)>)> {
        self.read(|txn| {
            let cursor = txn
                .open_table(EVENT_CURSOR)?
                .get(plan.as_u128())?
                .map_or(0, |v| v.value());
            let through = txn
                .open_table(crate::store::DERIVED_TABLE)?
                .get(plan.as_u128())?
                .map_or(0, |v| v.value());
            let mut entries = Vec::new();
            if through > cursor {
                let range = (plan.as_u128(), cursor + 1)..=(plan.as_u128(), through);
                for entry in txn.open_table(crate::store::HISTORY_TABLE)?.range(range)? {
                    let (key, value) = entry?;
                    if let Some(e) = decode(value.value()) {
                        entries.push((key.value().1, e));
                    }
                }
            }
            Ok((through.max(cursor), entries))
        })
    }

    /// Queues deliveries and advances the plan's cursor (and the overdue marks) in one
    /// transaction, so each event is queued exactly once.
    pub fn queue_deliveries(
        &self,
        plan: PlanId,
        cursor: Option<Seq>,
        overdue: &[(String, String)],
        deliveries: &[DeliveryRecord],
    ) -> Result<()> {
        self.write(|txn| {
            let mut outbox = txn.open_table(OUTBOX)?;
            for delivery in deliveries {
                outbox.insert(Uuid::now_v7().as_u128(), encode(delivery).as_slice())?;
            }
            if let Some(cursor) = cursor {
                txn.open_table(EVENT_CURSOR)?
                    .insert(plan.as_u128(), cursor)?;
            }
            let mut sent = txn.open_table(OVERDUE_SENT)?;
            for (milestone, due) in overdue {
                sent.insert((plan.as_u128(), milestone.as_str()), due.as_str())?;
            }
            Ok(())
        })
    }

    /// Advances several plans' cursors and queues their deliveries in one transaction (one
    /// fsync per worker tick, whatever the number of active plans). With nothing to deliver,
    /// only cursors move, and that commit is not fsynced on its own: losing it in a crash would
    /// only make the worker look at the same history again, with nobody to deliver it to.
    pub fn queue_history_batch(&self, batch: &[(PlanId, Seq, Vec<DeliveryRecord>)]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let quiet = batch.iter().all(|(_, _, d)| d.is_empty());
        let db = self.db()?;
        let mut txn = db.begin_write()?;
        if quiet {
            // Only fails for multi-process databases or persistent savepoints; neither is used.
            let _ = txn.set_durability(redb::Durability::None);
        }
        {
            let mut outbox = txn.open_table(OUTBOX)?;
            let mut cursors = txn.open_table(EVENT_CURSOR)?;
            for (plan, cursor, deliveries) in batch {
                for delivery in deliveries {
                    outbox.insert(Uuid::now_v7().as_u128(), encode(delivery).as_slice())?;
                }
                cursors.insert(plan.as_u128(), *cursor)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The due date an overdue event was last queued for, per milestone of a plan.
    pub fn overdue_sent(&self, plan: PlanId) -> Result<Vec<(String, String)>> {
        self.read(|txn| {
            let mut out = Vec::new();
            let table = txn.open_table(OVERDUE_SENT)?;
            for entry in table.range((plan.as_u128(), "")..)? {
                let (key, value) = entry?;
                if key.value().0 != plan.as_u128() {
                    break;
                }
                out.push((key.value().1.to_owned(), value.value().to_owned()));
            }
            Ok(out)
        })
    }

    /// Deliveries whose next attempt is due, oldest first.
    pub fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<(u128, DeliveryRecord)>> {
        self.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(OUTBOX)?.iter()? {
                let (key, value) = entry?;
                if let Some(d) = decode::<DeliveryRecord>(value.value())
                    && d.next_attempt_ms <= now_ms
                {
                    out.push((key.value(), d));
                    if out.len() == limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    /// Records an attempt: a delivery that is done (delivered or given up) leaves the outbox,
    /// one to retry is stored with its next attempt.
    pub fn record_attempt(
        &self,
        id: u128,
        delivery: &DeliveryRecord,
        attempt: &AttemptRecord,
        retry: bool,
    ) -> Result<()> {
        self.write(|txn| {
            let mut outbox = txn.open_table(OUTBOX)?;
            if retry {
                outbox.insert(id, encode(delivery).as_slice())?;
            } else {
                outbox.remove(id)?;
            }
            txn.open_table(DELIVERY_LOG)?.insert(
                (delivery.webhook.as_u128(), id, delivery.attempts),
                encode(attempt).as_slice(),
            )?;
            Ok(())
        })
    }

    /// A subscription's delivery log, oldest first: (delivery id, attempt number, attempt).
    pub fn delivery_log(&self, webhook: Uuid) -> Result<Vec<(Uuid, u32, AttemptRecord)>> {
        self.read(|txn| {
            let hook = webhook.as_u128();
            let mut out = Vec::new();
            for entry in txn
                .open_table(DELIVERY_LOG)?
                .range((hook, 0, 0)..=(hook, u128::MAX, u32::MAX))?
            {
                let (key, value) = entry?;
                if let Some(a) = decode(value.value()) {
                    let (_, id, n) = key.value();
                    out.push((Uuid::from_u128(id), n, a));
                }
            }
            Ok(out)
        })
    }

    /// Deliveries still waiting (all subscriptions).
    pub fn outbox_len(&self) -> Result<u64> {
        self.read(|txn| Ok(txn.open_table(OUTBOX)?.len()?))
    }
}

/// Stores a subscription (replacing one of the same id).
pub(crate) fn insert_webhook_in(txn: &redb::WriteTransaction, hook: &WebhookRecord) -> Result<()> {
    txn.open_table(WEBHOOKS)?
        .insert(hook.id.as_u128(), encode(hook).as_slice())?;
    Ok(())
}

/// Removes a subscription (shared) and its waiting deliveries from this node's outbox
/// (node-local: each node drops what it holds); false if there was no subscription.
pub(crate) fn delete_webhook_in(txn: &redb::WriteTransaction, id: Uuid) -> Result<bool> {
    let existed = txn.open_table(WEBHOOKS)?.remove(id.as_u128())?.is_some();
    let mut outbox = txn.open_table(OUTBOX)?;
    let doomed: Vec<u128> = outbox
        .iter()?
        .filter_map(|e| e.ok())
        .filter(|(_, v)| decode::<DeliveryRecord>(v.value()).is_some_and(|d| d.webhook == id))
        .map(|(k, _)| k.value())
        .collect();
    for key in doomed {
        outbox.remove(key)?;
    }
    Ok(existed)
}

/// The subscriptions are shared; the outbox, the delivery log, the cursors and the overdue
/// marks are node-local (derived from history, or this node's own deliveries).
pub(crate) fn dump_shared_tables(
    txn: &redb::ReadTransaction,
    out: &mut crate::store::Dump,
) -> Result<()> {
    crate::store::dump_table(txn, WEBHOOKS, out)
}

/// Creates the tables at open, so readers never meet a missing one.
pub(crate) fn create_tables(
    txn: &redb::WriteTransaction,
) -> std::result::Result<(), redb::TableError> {
    txn.open_table(WEBHOOKS)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(DELIVERY_LOG)?;
    txn.open_table(EVENT_CURSOR)?;
    txn.open_table(OVERDUE_SENT)?;
    Ok(())
}

/// Copies the webhook tables into a backup.
pub(crate) fn copy_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> std::result::Result<(), crate::store::BackupError> {
    crate::store::copy_table(from, to, WEBHOOKS)?;
    crate::store::copy_table(from, to, OUTBOX)?;
    crate::store::copy_table(from, to, DELIVERY_LOG)?;
    crate::store::copy_table(from, to, EVENT_CURSOR)?;
    crate::store::copy_table(from, to, OVERDUE_SENT)?;
    Ok(())
}
