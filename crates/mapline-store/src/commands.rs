//! Every write of *shared* state as a value: a [`Command`] can be encoded, published to a
//! replicated command log, replayed, and applied identically on every node, each into its own
//! redb file (docs/storage.md, *Commands and replicas*).
//!
//! A command carries every argument of its write, times and ids included: applying one reads
//! nothing but the command and the file's shared tables (no clock, no RNG, no node-local table),
//! so every replica that applies the same commands in the same order holds the same shared
//! tables byte for byte, and every rule a write transaction keeps on one node (a sign-in link
//! works once, a revocation takes every descendant along, a plan is created whole) holds on
//! every node by construction. What is node-local (history and snapshots derived from the log,
//! the webhook outbox, clean-shutdown marks, maintenance) is written beside a command in the
//! same transaction ([`Store::execute_with_local`]) or on its own, never as a command.
//!
//! The encoding is one format byte ([`COMMAND_FORMAT`]) and the command in postcard. postcard
//! encodes an enum by its variant's index and a struct by field order, so variants are only
//! ever appended (never reordered or removed) and fields never move; a change that cannot be
//! made so takes a new format byte and a decoder for the old one. A new variant takes a new
//! format byte too: a replica that meets a format it does not read stops (a node must not skip
//! what other versions applied), while bytes of a known format that do not decode are skipped
//! alike by every node.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Result;
use crate::lineage::Revocation;
use crate::members::{
    MemberId, MemberRecord, PlanMemberRecord, ReviewMark, SessionRecord, SignInLinkRecord,
    SignInLinkRefusal,
};
use crate::records::{
    DerivedHistory, DocRef, NewUpdate, PlanId, PlanRecord, Seq, ShareId, ShareRecord, Snapshot,
    UpdateRecord,
};
use crate::store::Store;
use crate::webhooks::WebhookRecord;

/// The format byte in front of every encoded command.
pub const COMMAND_FORMAT: u8 = 1;

/// One write of shared state, with its arguments exactly as the [`Store`] method that makes it
/// takes them. Variants are encoded by index: append new ones last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// [`Store::create_plan_with_internal`] without its creation history (node-local).
    CreatePlan {
        id: PlanId,
        plan: PlanRecord,
        first_update: UpdateRecord,
        internal_first_update: Option<UpdateRecord>,
        shares: Vec<ShareRecord>,
    },
    /// The updates of [`Store::commit_batch`]: each gets the next position of its document's
    /// log. Its snapshots and history are node-local.
    AppendUpdates { updates: Vec<NewUpdate> },
    /// [`Store::insert_share`].
    InsertShare {
        share: ShareRecord,
        parent: Option<ShareId>,
    },
    /// [`Store::revoke_share`].
    RevokeShare {
        plan: PlanId,
        share: ShareId,
        now_ms: i64,
    },
    /// [`Store::record_share_seen`] (committed without an fsync of its own).
    RecordShareSeen { share: ShareId, now_ms: i64 },
    /// [`Store::set_feed_hash`].
    SetFeedHash { share: ShareId, hash: [u8; 32] },
    /// [`Store::set_share_minter`].
    SetShareMinter { share: ShareId, member: MemberId },
    /// [`Store::set_admin_token_hash`].
    SetAdminTokenHash { hash: [u8; 32] },
    /// [`Store::insert_member`].
    InsertMember { member: MemberRecord },
    /// [`Store::insert_sign_in_link`].
    InsertSignInLink {
        token_hash: [u8; 32],
        link: SignInLinkRecord,
    },
    /// [`Store::consume_sign_in_link`].
    ConsumeSignInLink {
        token_hash: [u8; 32],
        session_hash: [u8; 32],
        session: SessionRecord,
        now_ms: i64,
    },
    /// [`Store::insert_session`].
    InsertSession {
        session_hash: [u8; 32],
        session: SessionRecord,
    },
    /// [`Store::revoke_session`].
    RevokeSession { session_hash: [u8; 32], now_ms: i64 },
    /// [`Store::revoke_sessions_of`].
    RevokeSessionsOf { member: MemberId, now_ms: i64 },
    /// [`Store::disable_member`].
    DisableMember { member: MemberId, now_ms: i64 },
    /// [`Store::add_plan_member`].
    AddPlanMember {
        plan: PlanId,
        member: MemberId,
        record: PlanMemberRecord,
    },
    /// [`Store::remove_plan_member`].
    RemovePlanMember { plan: PlanId, member: MemberId },
    /// [`Store::set_review_mark`].
    SetReviewMark {
        plan: PlanId,
        reviewer: Uuid,
        mark: ReviewMark,
    },
    /// [`Store::insert_webhook`].
    InsertWebhook { hook: WebhookRecord },
    /// [`Store::delete_webhook`]. The subscription is shared; dropping its waiting deliveries
    /// from the outbox is node-local (each node drops what its own outbox holds).
    DeleteWebhook { id: Uuid },
}

/// An encoded command could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("the encoded command is empty")]
    Empty,
    #[error("command format {found} is not known; this version reads format {supported}")]
    UnknownFormat { found: u8, supported: u8 },
    #[error("the encoded command does not decode: {0}")]
    Malformed(#[source] postcard::Error),
    #[error("the encoded command has {0} bytes after its end")]
    TrailingBytes(usize),
}

impl Command {
    /// The format byte followed by the command in postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![COMMAND_FORMAT];
        // postcard only fails on writer errors or unsupported serde features; a Vec writer with
        // these plain values has neither, so an error here is a bug in this crate.
        postcard::to_io(self, &mut out).expect("postcard encodes plain values into a Vec");
        out
    }

    /// A command from its encoding: the whole of `bytes`, of a known format.
    pub fn decode(bytes: &[u8]) -> Result<Self, CommandError> {
        let (&format, body) = bytes.split_first().ok_or(CommandError::Empty)?;
        if format != COMMAND_FORMAT {
            return Err(CommandError::UnknownFormat {
                found: format,
                supported: COMMAND_FORMAT,
            });
        }
        let (command, rest) = postcard::take_from_bytes(body).map_err(CommandError::Malformed)?;
        if !rest.is_empty() {
            return Err(CommandError::TrailingBytes(rest.len()));
        }
        Ok(command)
    }

    /// The command's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreatePlan { .. } => "create_plan",
            Self::AppendUpdates { .. } => "append_updates",
            Self::InsertShare { .. } => "insert_share",
            Self::RevokeShare { .. } => "revoke_share",
            Self::RecordShareSeen { .. } => "record_share_seen",
            Self::SetFeedHash { .. } => "set_feed_hash",
            Self::SetShareMinter { .. } => "set_share_minter",
            Self::SetAdminTokenHash { .. } => "set_admin_token_hash",
            Self::InsertMember { .. } => "insert_member",
            Self::InsertSignInLink { .. } => "insert_sign_in_link",
            Self::ConsumeSignInLink { .. } => "consume_sign_in_link",
            Self::InsertSession { .. } => "insert_session",
            Self::RevokeSession { .. } => "revoke_session",
            Self::RevokeSessionsOf { .. } => "revoke_sessions_of",
            Self::DisableMember { .. } => "disable_member",
            Self::AddPlanMember { .. } => "add_plan_member",
            Self::RemovePlanMember { .. } => "remove_plan_member",
            Self::SetReviewMark { .. } => "set_review_mark",
            Self::InsertWebhook { .. } => "insert_webhook",
            Self::DeleteWebhook { .. } => "delete_webhook",
        }
    }

    /// Whether the commit that applies it fsyncs. A link's visit does not: it becomes durable
    /// with the next durable commit (a crash may forget the last visits, never anything else;
    /// a replica that forgets one forgets its log position with it and applies it again).
    pub fn is_durable(&self) -> bool {
        !matches!(self, Self::RecordShareSeen { .. })
    }

    /// Applies the command in `txn`. Reads only the command and the shared tables.
    fn apply(&self, txn: &redb::WriteTransaction) -> Result<Outcome> {
        use crate::{feeds, members, store, webhooks};
        Ok(match self {
            Self::CreatePlan {
                id,
                plan,
                first_update,
                internal_first_update,
                shares,
            } => {
                store::create_plan_in(
                    txn,
                    *id,
                    plan,
                    first_update,
                    internal_first_update.as_ref(),
                    shares,
                )?;
                Outcome::Done
            }
            Self::AppendUpdates { updates } => {
                Outcome::Appended(store::append_updates_in(txn, updates)?)
            }
            Self::InsertShare { share, parent } => {
                Outcome::Share(store::insert_share_in(txn, share, *parent)?)
            }
            Self::RevokeShare {
                plan,
                share,
                now_ms,
            } => Outcome::Revocation(store::revoke_share_in(txn, *plan, *share, *now_ms)?),
            Self::RecordShareSeen { share, now_ms } => {
                store::record_share_seen_in(txn, *share, *now_ms)?;
                Outcome::Done
            }
            Self::SetFeedHash { share, hash } => {
                feeds::set_feed_hash_in(txn, *share, hash)?;
                Outcome::Done
            }
            Self::SetShareMinter { share, member } => {
                members::set_share_minter_in(txn, *share, *member)?;
                Outcome::Done
            }
            Self::SetAdminTokenHash { hash } => {
                store::set_admin_token_hash_in(txn, hash)?;
                Outcome::Done
            }
            Self::InsertMember { member } => {
                members::insert_member_in(txn, member)?;
                Outcome::Done
            }
            Self::InsertSignInLink { token_hash, link } => {
                members::insert_sign_in_link_in(txn, token_hash, link)?;
                Outcome::Done
            }
            Self::ConsumeSignInLink {
                token_hash,
                session_hash,
                session,
                now_ms,
            } => Outcome::SignIn(members::consume_sign_in_link_in(
                txn,
                token_hash,
                session_hash,
                session,
                *now_ms,
            )?),
            Self::InsertSession {
                session_hash,
                session,
            } => {
                members::insert_session_checked_in(txn, session_hash, session)?;
                Outcome::Done
            }
            Self::RevokeSession {
                session_hash,
                now_ms,
            } => Outcome::Changed(members::revoke_session_in(txn, session_hash, *now_ms)?),
            Self::RevokeSessionsOf { member, now_ms } => {
                Outcome::SessionsRevoked(members::revoke_sessions_in(txn, *member, *now_ms)?)
            }
            Self::DisableMember { member, now_ms } => {
                let (member, sessions) = members::disable_member_in(txn, *member, *now_ms)?;
                Outcome::Disabled { member, sessions }
            }
            Self::AddPlanMember {
                plan,
                member,
                record,
            } => {
                members::add_plan_member_in(txn, *plan, *member, *record)?;
                Outcome::Done
            }
            Self::RemovePlanMember { plan, member } => {
                Outcome::Changed(members::remove_plan_member_in(txn, *plan, *member)?)
            }
            Self::SetReviewMark {
                plan,
                reviewer,
                mark,
            } => {
                members::set_review_mark_in(txn, *plan, *reviewer, *mark)?;
                Outcome::Done
            }
            Self::InsertWebhook { hook } => {
                webhooks::insert_webhook_in(txn, hook)?;
                Outcome::Done
            }
            Self::DeleteWebhook { id } => Outcome::Changed(webhooks::delete_webhook_in(txn, *id)?),
        })
    }
}

/// What applying a command returned: what the method that makes the write returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to return.
    Done,
    /// [`Command::AppendUpdates`]: each update's log position, in command order.
    Appended(Vec<Seq>),
    /// [`Command::InsertShare`]: the link as stored (its expiry capped at its parent's).
    Share(ShareRecord),
    /// [`Command::RevokeShare`]: `None` when the plan has no such link.
    Revocation(Option<Revocation>),
    /// [`Command::ConsumeSignInLink`]: the member signed in, or why the link was refused (a
    /// refused link changes nothing).
    SignIn(Result<MemberRecord, SignInLinkRefusal>),
    /// Whether something changed: [`Command::RevokeSession`], [`Command::RemovePlanMember`],
    /// [`Command::DeleteWebhook`].
    Changed(bool),
    /// [`Command::RevokeSessionsOf`]: the hashes of the sessions it revoked.
    SessionsRevoked(Vec<[u8; 32]>),
    /// [`Command::DisableMember`]: the member as stored and the sessions it revoked.
    Disabled {
        member: MemberRecord,
        sessions: Vec<[u8; 32]>,
    },
}

/// The store's wrappers know which outcome their own command yields; another one is a bug in
/// this module, never something from outside the process.
macro_rules! outcome_of {
    ($outcome:expr, $pattern:pat => $value:expr) => {
        match $outcome {
            $pattern => $value,
            other => unreachable!("a command yielded the wrong outcome: {other:?}"),
        }
    };
}

impl Outcome {
    pub(crate) fn done(self) {
        outcome_of!(self, Self::Done => ())
    }

    pub(crate) fn appended(self) -> Vec<Seq> {
        outcome_of!(self, Self::Appended(seqs) => seqs)
    }

    pub(crate) fn share(self) -> ShareRecord {
        outcome_of!(self, Self::Share(share) => share)
    }

    pub(crate) fn revocation(self) -> Option<Revocation> {
        outcome_of!(self, Self::Revocation(revocation) => revocation)
    }

    pub(crate) fn sign_in(self) -> Result<MemberRecord, SignInLinkRefusal> {
        outcome_of!(self, Self::SignIn(signed_in) => signed_in)
    }

    pub(crate) fn changed(self) -> bool {
        outcome_of!(self, Self::Changed(changed) => changed)
    }

    pub(crate) fn sessions_revoked(self) -> Vec<[u8; 32]> {
        outcome_of!(self, Self::SessionsRevoked(sessions) => sessions)
    }

    pub(crate) fn disabled(self) -> (MemberRecord, Vec<[u8; 32]>) {
        outcome_of!(self, Self::Disabled { member, sessions } => (member, sessions))
    }
}

/// How a replica commits what it applies from the log ([`Store::execute_at_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The commit fsyncs before it returns (what [`Store::execute_at`] does).
    Immediate,
    /// The commit does not fsync: it is visible to readers at once, and durable with the next
    /// durable commit of this file (any `Immediate` apply, or [`Store::sync`]). A crash of the
    /// process or the machine before that loses these commits *and their log positions
    /// together*, so the replica resumes from the last durable position and applies them
    /// again: the command log is the record, not the replica.
    Deferred,
}

impl Store {
    /// Applies one command in one write transaction (a single node: no log position).
    /// On a replica (a route is set) the command goes to the route instead.
    pub fn execute(&self, command: &Command) -> Result<Outcome> {
        if let Some(route) = self.route() {
            return route.execute(command);
        }
        self.execute_in(command, None, Durability::Immediate, &[], &[])
    }

    /// Whether shared writes go to a route ([`Store::route_commands`]).
    pub fn is_replica(&self) -> bool {
        self.route().is_some()
    }

    /// Applies the command at command-log `position` and records the position in the same
    /// transaction (a replica fed from the log). A position at or below
    /// [`Store::applied_position`] is refused with [`crate::StoreError::AlreadyApplied`] and changes
    /// nothing, so a command replayed after a restart is never applied twice. A command the
    /// store's rules refuse (a plan that exists, a revoked parent…) is refused alike on every
    /// replica: its position is recorded on its own and the error returned.
    pub fn execute_at(&self, command: &Command, position: u64) -> Result<Outcome> {
        self.execute_at_with(command, position, Durability::Immediate)
    }

    /// [`Store::execute_at`], committed with the given [`Durability`] (a refused command's
    /// position alike). A command that never fsyncs ([`Command::RecordShareSeen`]) stays so.
    pub fn execute_at_with(
        &self,
        command: &Command,
        position: u64,
        durability: Durability,
    ) -> Result<Outcome> {
        self.execute_in(command, Some(position), durability, &[], &[])
    }

    /// Records command-log `position` as applied without applying anything: what a replica
    /// does with a log entry that is not a command it can read (every replica skips it alike,
    /// so they stay equal). A position at or below [`Store::applied_position`] is refused with
    /// [`crate::StoreError::AlreadyApplied`].
    pub fn skip_at(&self, position: u64, durability: Durability) -> Result<()> {
        let db = self.db()?;
        let mut txn = db.begin_write()?;
        set_durability(&mut txn, durability);
        crate::store::advance_position_in(&txn, position)?;
        txn.commit()?;
        Ok(())
    }

    /// Makes every [`Durability::Deferred`] commit before it durable: one empty durable commit
    /// (one fsync).
    pub fn sync(&self) -> Result<()> {
        let db = self.db()?;
        db.begin_write()?.commit()?;
        Ok(())
    }

    /// [`Store::execute`] or (with a position) [`Store::execute_at`], and in the same
    /// transaction the node-local data derived from the log that this node stores with it:
    /// snapshots (an older one than stored is skipped) and derived history (with its summary).
    ///
    /// Why one call and not two: ARCHITECTURE.md's invariant that a snapshot never runs ahead
    /// of the stored history, and a plan's creation history being stored with the plan, hold
    /// only if they share the command's transaction. The local part is not in the command
    /// because it is not shared: each node derives it from the log itself (and may write it
    /// later, with another batch), and it is not part of what replicas compare. The local part
    /// is written only if the command applies: a refused command writes none of it.
    pub fn execute_with_local(
        &self,
        command: &Command,
        position: Option<u64>,
        snapshots: &[(DocRef, Snapshot)],
        history: &[DerivedHistory],
    ) -> Result<Outcome> {
        if position.is_none()
            && let Some(route) = self.route()
        {
            // The shared part through the log; the local part after it is applied here, in a
            // transaction of its own (a crash between the two loses only derived data, which
            // the next load derives again).
            let outcome = route.execute(command)?;
            if let Err(error) = self.write_local_only(snapshots, history) {
                // The write is committed in the cluster; only derived data was not stored here,
                // and the next load of the plan derives it again.
                tracing::warn!(command = command.name(), %error, "derived data of a routed write not stored; derived again at the next load");
            }
            return Ok(outcome);
        }
        self.execute_in(command, position, Durability::Immediate, snapshots, history)
    }

    fn execute_in(
        &self,
        command: &Command,
        position: Option<u64>,
        durability: Durability,
        snapshots: &[(DocRef, Snapshot)],
        history: &[DerivedHistory],
    ) -> Result<Outcome> {
        let durability = if command.is_durable() {
            durability
        } else {
            Durability::Deferred
        };
        let db = self.db()?;
        let mut txn = db.begin_write()?;
        set_durability(&mut txn, durability);
        if let Some(position) = position {
            crate::store::advance_position_in(&txn, position)?;
        }
        match command.apply(&txn) {
            Ok(outcome) => {
                crate::store::write_local(&txn, snapshots, history)?;
                txn.commit()?;
                self.note_history_stored(history);
                Ok(outcome)
            }
            Err(refused) if position.is_some() && refused.is_refusal() => {
                // Dropping the transaction undoes whatever the command wrote before it was
                // refused; the position alone is recorded, so the log moves on past it.
                drop(txn);
                let mut txn = db.begin_write()?;
                set_durability(&mut txn, durability);
                if let Some(position) = position {
                    crate::store::advance_position_in(&txn, position)?;
                }
                txn.commit()?;
                tracing::debug!(
                    command = command.name(),
                    position,
                    error = %refused,
                    "command refused at its log position"
                );
                Err(refused)
            }
            Err(error) => Err(error),
        }
    }

    /// The last command-log position applied to this file ([`Store::execute_at`]); 0 if none
    /// (a single node's file, or a replica that has applied nothing yet).
    pub fn applied_position(&self) -> Result<u64> {
        self.read(crate::store::applied_position_read)
    }

    /// Records `position` as the applied command-log position, whatever was recorded before:
    /// for a copy of a store that becomes a cluster's *base* (docs/cluster.md, *Operations*),
    /// which covers the log through `position` and whose replicas read on from `position + 1`.
    /// Never for a file a replica is applying to. Durable when it returns.
    pub fn set_base_position(&self, position: u64) -> Result<()> {
        let db = self.db()?;
        let txn = db.begin_write()?;
        crate::store::set_position_in(&txn, position)?;
        txn.commit()?;
        Ok(())
    }
}

fn set_durability(txn: &mut redb::WriteTransaction, durability: Durability) {
    if durability == Durability::Deferred {
        // Only fails for multi-process databases or persistent savepoints; neither is used.
        let _ = txn.set_durability(redb::Durability::None);
    }
}
