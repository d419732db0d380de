//! The seller team: members (name, email, role), their sessions and single-use sign-in links
//! (both keyed by the SHA-256 of their secret: the secrets themselves are never stored), which
//! plans each member owns or is a seller member of, and review marks ("reviewed up to log
//! position N").
//!
//! Every table here is new beside format 4 and created on open, so files written before members
//! existed open unchanged and simply have no members (no format change; docs/storage.md).

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::commands::{Command, Outcome};
use crate::error::{Result, StoreError};
use crate::records::{PlanId, Seq, ShareId, decode, encode};
use crate::store::{BackupError, Store, copy_table};

/// A member's id (UUID v7).
pub type MemberId = Uuid;

/// Member id → [`MemberRecord`].
const MEMBERS: TableDefinition<u128, &[u8]> = TableDefinition::new("members");
/// Lowercased email → member id: one member per email.
const MEMBER_EMAILS: TableDefinition<&str, u128> = TableDefinition::new("member_emails");
/// SHA-256 of a session id → [`SessionRecord`].
const SESSIONS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("sessions");
/// (member, SHA-256 of a session id): a member's sessions, to list and revoke them.
const MEMBER_SESSIONS: TableDefinition<(u128, [u8; 32]), ()> =
    TableDefinition::new("member_sessions");
/// SHA-256 of a sign-in link's token → [`SignInLinkRecord`].
const SIGN_IN_LINKS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("sign_in_links");
/// (plan, member) → [`PlanMemberRecord`].
const PLAN_MEMBERS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("plan_members");
/// (member, plan): the plans a member owns or is a member of.
const MEMBER_PLANS: TableDefinition<(u128, u128), ()> = TableDefinition::new("member_plans");
/// (plan, reviewer: a member id or a share id) → [`ReviewMark`].
const REVIEW_MARKS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("review_marks");
/// (member, SHA-256 of a sign-in link's token): a member's sign-in links, to void them when
/// the member is disabled.
const MEMBER_SIGN_IN_LINKS: TableDefinition<(u128, [u8; 32]), ()> =
    TableDefinition::new("member_sign_in_links");
/// Share id → the member who minted the link (a new table beside `shares`, whose records are
/// serialized positionally and stay as they are).
const SHARE_MINTERS: TableDefinition<u128, u128> = TableDefinition::new("share_minters");

/// What a member may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberRole {
    /// Plans they own or are a seller member of.
    Rep,
    /// Every plan and the pipeline.
    Manager,
    /// Everything a manager may, and the members.
    Admin,
}

impl MemberRole {
    /// `rep`, `manager` or `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rep => "rep",
            Self::Manager => "manager",
            Self::Admin => "admin",
        }
    }

    /// The role named `rep`, `manager` or `admin`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rep" => Some(Self::Rep),
            "manager" => Some(Self::Manager),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Whether this role reads every plan (managers and admins).
    pub fn reads_every_plan(self) -> bool {
        matches!(self, Self::Manager | Self::Admin)
    }
}

/// A person of the seller team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: MemberId,
    /// Lowercased; unique.
    pub email: String,
    pub name: String,
    pub role: MemberRole,
    pub created_at_ms: i64,
    /// A disabled member cannot sign in and their sessions stop working.
    pub disabled_at_ms: Option<i64>,
}

/// How a session was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionVia {
    Oidc,
    Link,
}

/// A signed-in browser. Its id is never stored, only the id's SHA-256 (the table's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub member: MemberId,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub via: SessionVia,
    pub user_agent: Option<String>,
}

impl SessionRecord {
    /// Whether the session may still be used at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms > now_ms
    }
}

/// A single-use sign-in link (`mapline members invite`); stored by its token's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInLinkRecord {
    pub member: MemberId,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
}

/// Why a sign-in link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignInLinkRefusal {
    #[error("this sign-in link is not valid")]
    Invalid,
    #[error("this sign-in link has already been used")]
    Used,
    #[error("this sign-in link has expired")]
    Expired,
    #[error("this member is disabled")]
    Disabled,
}

/// A member's place on a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanMemberRole {
    Owner,
    Seller,
}

/// A member's membership of one plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanMemberRecord {
    pub role: PlanMemberRole,
    pub added_at_ms: i64,
}

/// "Reviewed up to this log position."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewMark {
    pub seq: Seq,
    pub at_ms: i64,
}

pub(crate) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(MEMBERS)?;
    txn.open_table(MEMBER_EMAILS)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(MEMBER_SESSIONS)?;
    txn.open_table(SIGN_IN_LINKS)?;
    txn.open_table(PLAN_MEMBERS)?;
    txn.open_table(MEMBER_PLANS)?;
    txn.open_table(REVIEW_MARKS)?;
    txn.open_table(MEMBER_SIGN_IN_LINKS)?;
    txn.open_table(SHARE_MINTERS)?;
    Ok(())
}

pub(crate) fn copy_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), BackupError> {
    copy_table(from, to, MEMBERS)?;
    copy_table(from, to, MEMBER_EMAILS)?;
    copy_table(from, to, SESSIONS)?;
    copy_table(from, to, MEMBER_SESSIONS)?;
    copy_table(from, to, SIGN_IN_LINKS)?;
    copy_table(from, to, PLAN_MEMBERS)?;
    copy_table(from, to, MEMBER_PLANS)?;
    copy_table(from, to, REVIEW_MARKS)?;
    copy_table(from, to, MEMBER_SIGN_IN_LINKS)?;
    copy_table(from, to, SHARE_MINTERS)?;
    Ok(())
}

pub(crate) fn dump_shared_tables(
    txn: &redb::ReadTransaction,
    out: &mut crate::store::Dump,
) -> Result<()> {
    use crate::store::dump_table;
    dump_table(txn, MEMBERS, out)?;
    dump_table(txn, MEMBER_EMAILS, out)?;
    dump_table(txn, SESSIONS, out)?;
    dump_table(txn, MEMBER_SESSIONS, out)?;
    dump_table(txn, SIGN_IN_LINKS, out)?;
    dump_table(txn, PLAN_MEMBERS, out)?;
    dump_table(txn, MEMBER_PLANS, out)?;
    dump_table(txn, REVIEW_MARKS, out)?;
    dump_table(txn, MEMBER_SIGN_IN_LINKS, out)?;
    dump_table(txn, SHARE_MINTERS, out)
}

/// The form an email is stored and looked up in.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn decode_or_corrupt<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<T> {
    decode(bytes).ok_or_else(|| StoreError::Corrupt {
        table,
        key: key.to_string(),
    })
}

fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn member_in(
    members: &impl ReadableTable<u128, &'static [u8]>,
    id: MemberId,
) -> Result<Option<MemberRecord>> {
    members
        .get(id.as_u128())?
        .map(|v| decode_or_corrupt("members", id, v.value()))
        .transpose()
}

impl Store {
    /// Adds a member; the email (stored lowercased) must be new.
    pub fn insert_member(&self, member: &MemberRecord) -> Result<()> {
        self.execute(&Command::InsertMember {
            member: member.clone(),
        })
        .map(Outcome::done)
    }

    pub fn member(&self, id: MemberId) -> Result<Option<MemberRecord>> {
        self.read(|txn| member_in(&txn.open_table(MEMBERS)?, id))
    }

    /// The member with this email (any case).
    pub fn member_by_email(&self, email: &str) -> Result<Option<MemberRecord>> {
        let email = normalize_email(email);
        self.read(|txn| {
            let Some(id) = txn
                .open_table(MEMBER_EMAILS)?
                .get(email.as_str())?
                .map(|v| v.value())
            else {
                return Ok(None);
            };
            member_in(&txn.open_table(MEMBERS)?, Uuid::from_u128(id))
        })
    }

    /// Every member, oldest first.
    pub fn members(&self) -> Result<Vec<MemberRecord>> {
        self.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(MEMBERS)?.iter()? {
                let (key, value) = entry?;
                out.push(decode_or_corrupt("members", key.value(), value.value())?);
            }
            Ok(out)
        })
    }

    /// Stores a sign-in link for an existing member.
    pub fn insert_sign_in_link(
        &self,
        token_hash: &[u8; 32],
        link: &SignInLinkRecord,
    ) -> Result<()> {
        self.execute(&Command::InsertSignInLink {
            token_hash: *token_hash,
            link: link.clone(),
        })
        .map(Outcome::done)
    }

    /// Uses a sign-in link and starts a session with it, in one write transaction: a link works
    /// once, however many requests race with it. A refused link changes nothing.
    pub fn consume_sign_in_link(
        &self,
        token_hash: &[u8; 32],
        session_hash: &[u8; 32],
        session: &SessionRecord,
        now_ms: i64,
    ) -> Result<Result<MemberRecord, SignInLinkRefusal>> {
        self.execute(&Command::ConsumeSignInLink {
            token_hash: *token_hash,
            session_hash: *session_hash,
            session: session.clone(),
            now_ms,
        })
        .map(Outcome::sign_in)
    }

    /// Starts a session for an existing member.
    pub fn insert_session(&self, session_hash: &[u8; 32], session: &SessionRecord) -> Result<()> {
        self.execute(&Command::InsertSession {
            session_hash: *session_hash,
            session: session.clone(),
        })
        .map(Outcome::done)
    }

    /// A session with its member, read in one transaction (what authenticating a cookie needs).
    pub fn session(
        &self,
        session_hash: &[u8; 32],
    ) -> Result<Option<(SessionRecord, MemberRecord)>> {
        self.read(|txn| {
            let Some(session) = txn
                .open_table(SESSIONS)?
                .get(session_hash)?
                .map(|v| {
                    decode_or_corrupt::<SessionRecord>("sessions", hex(session_hash), v.value())
                })
                .transpose()?
            else {
                return Ok(None);
            };
            let member = member_in(&txn.open_table(MEMBERS)?, session.member)?;
            Ok(member.map(|m| (session, m)))
        })
    }

    /// A member's sessions (revoked and expired ones included), oldest first, with their hashes.
    pub fn sessions_of(&self, member: MemberId) -> Result<Vec<([u8; 32], SessionRecord)>> {
        self.read(|txn| {
            let sessions = txn.open_table(SESSIONS)?;
            let mut out = Vec::new();
            let id = member.as_u128();
            for entry in txn
                .open_table(MEMBER_SESSIONS)?
                .range((id, [0u8; 32])..=(id, [0xff; 32]))?
            {
                let hash = entry?.0.value().1;
                if let Some(value) = sessions.get(hash)? {
                    out.push((
                        hash,
                        decode_or_corrupt("sessions", hex(&hash), value.value())?,
                    ));
                }
            }
            out.sort_by_key(|(_, s): &([u8; 32], SessionRecord)| s.created_at_ms);
            Ok(out)
        })
    }

    /// Revokes one session; false if there is none or it was already revoked.
    pub fn revoke_session(&self, session_hash: &[u8; 32], now_ms: i64) -> Result<bool> {
        self.execute(&Command::RevokeSession {
            session_hash: *session_hash,
            now_ms,
        })
        .map(Outcome::changed)
    }

    /// Revokes every session of a member not yet revoked; returns their hashes (so their open
    /// sockets can be closed).
    pub fn revoke_sessions_of(&self, member: MemberId, now_ms: i64) -> Result<Vec<[u8; 32]>> {
        self.execute(&Command::RevokeSessionsOf { member, now_ms })
            .map(Outcome::sessions_revoked)
    }

    /// Disables a member in one transaction: sets `disabled_at_ms` (kept if already set),
    /// revokes every live session and marks every unused sign-in link used. Returns the member
    /// and the hashes of the sessions it revoked (so their open sockets can be closed).
    pub fn disable_member(
        &self,
        member: MemberId,
        now_ms: i64,
    ) -> Result<(MemberRecord, Vec<[u8; 32]>)> {
        self.execute(&Command::DisableMember { member, now_ms })
            .map(Outcome::disabled)
    }

    /// Removes a member from a plan; false if they were not on it.
    pub fn remove_plan_member(&self, plan: PlanId, member: MemberId) -> Result<bool> {
        self.execute(&Command::RemovePlanMember { plan, member })
            .map(Outcome::changed)
    }

    /// Records the member who minted a share link.
    pub fn set_share_minter(&self, share: ShareId, member: MemberId) -> Result<()> {
        self.execute(&Command::SetShareMinter { share, member })
            .map(Outcome::done)
    }

    /// The members who minted these share links (links minted otherwise are absent).
    pub fn share_minters(
        &self,
        shares: &[ShareId],
    ) -> Result<std::collections::HashMap<ShareId, MemberRecord>> {
        self.read(|txn| {
            let minters = txn.open_table(SHARE_MINTERS)?;
            let members = txn.open_table(MEMBERS)?;
            let mut out = std::collections::HashMap::new();
            for share in shares {
                let Some(member) = minters.get(share.as_u128())?.map(|v| v.value()) else {
                    continue;
                };
                if let Some(record) = member_in(&members, Uuid::from_u128(member))? {
                    out.insert(*share, record);
                }
            }
            Ok(out)
        })
    }

    /// Adds (or re-roles) a member of a plan. Both must exist.
    pub fn add_plan_member(
        &self,
        plan: PlanId,
        member: MemberId,
        record: PlanMemberRecord,
    ) -> Result<()> {
        self.execute(&Command::AddPlanMember {
            plan,
            member,
            record,
        })
        .map(Outcome::done)
    }

    /// A plan's members with their records, in member-id order.
    pub fn plan_members(&self, plan: PlanId) -> Result<Vec<(MemberRecord, PlanMemberRecord)>> {
        self.read(|txn| {
            let members = txn.open_table(MEMBERS)?;
            let id = plan.as_u128();
            let mut out = Vec::new();
            for entry in txn
                .open_table(PLAN_MEMBERS)?
                .range((id, 0)..=(id, u128::MAX))?
            {
                let (key, value) = entry?;
                let member = Uuid::from_u128(key.value().1);
                let record =
                    decode_or_corrupt("plan_members", format!("{plan}/{member}"), value.value())?;
                if let Some(m) = member_in(&members, member)? {
                    out.push((m, record));
                }
            }
            Ok(out)
        })
    }

    /// A member's place on a plan, if any.
    pub fn plan_membership(
        &self,
        plan: PlanId,
        member: MemberId,
    ) -> Result<Option<PlanMemberRecord>> {
        self.read(|txn| {
            txn.open_table(PLAN_MEMBERS)?
                .get((plan.as_u128(), member.as_u128()))?
                .map(|v| decode_or_corrupt("plan_members", format!("{plan}/{member}"), v.value()))
                .transpose()
        })
    }

    /// Every plan's owner, with the member's record, in one read: the pipeline names owners
    /// without a read per plan.
    pub fn plan_owners(&self) -> Result<std::collections::HashMap<PlanId, MemberRecord>> {
        self.read(|txn| {
            let members = txn.open_table(MEMBERS)?;
            let mut out = std::collections::HashMap::new();
            for entry in txn.open_table(PLAN_MEMBERS)?.iter()? {
                let (key, value) = entry?;
                let (plan, member) = key.value();
                let (plan, member) = (Uuid::from_u128(plan), Uuid::from_u128(member));
                let record: PlanMemberRecord =
                    decode_or_corrupt("plan_members", format!("{plan}/{member}"), value.value())?;
                if record.role == PlanMemberRole::Owner
                    && let Some(m) = member_in(&members, member)?
                {
                    out.insert(plan, m);
                }
            }
            Ok(out)
        })
    }

    /// The plans a member owns or is a member of, oldest plan first.
    pub fn plans_of_member(&self, member: MemberId) -> Result<Vec<PlanId>> {
        self.read(|txn| {
            let id = member.as_u128();
            txn.open_table(MEMBER_PLANS)?
                .range((id, 0)..=(id, u128::MAX))?
                .map(|e| Ok(Uuid::from_u128(e?.0.value().1)))
                .collect()
        })
    }

    /// Records "reviewed up to `mark.seq`" for a reviewer (a member id or a share id).
    pub fn set_review_mark(&self, plan: PlanId, reviewer: Uuid, mark: ReviewMark) -> Result<()> {
        self.execute(&Command::SetReviewMark {
            plan,
            reviewer,
            mark,
        })
        .map(Outcome::done)
    }

    /// A reviewer's last review mark on a plan.
    pub fn review_mark(&self, plan: PlanId, reviewer: Uuid) -> Result<Option<ReviewMark>> {
        self.read(|txn| {
            txn.open_table(REVIEW_MARKS)?
                .get((plan.as_u128(), reviewer.as_u128()))?
                .map(|v| decode_or_corrupt("review_marks", format!("{plan}/{reviewer}"), v.value()))
                .transpose()
        })
    }
}

/// Adds a member (see [`Store::insert_member`]).
pub(crate) fn insert_member_in(txn: &redb::WriteTransaction, member: &MemberRecord) -> Result<()> {
    let email = normalize_email(&member.email);
    let mut emails = txn.open_table(MEMBER_EMAILS)?;
    if emails.get(email.as_str())?.is_some() {
        return Err(StoreError::EmailTaken(email.clone()));
    }
    emails.insert(email.as_str(), member.id.as_u128())?;
    let record = MemberRecord {
        email: email.clone(),
        ..member.clone()
    };
    txn.open_table(MEMBERS)?
        .insert(member.id.as_u128(), encode(&record).as_slice())?;
    Ok(())
}

/// Stores a sign-in link (see [`Store::insert_sign_in_link`]).
pub(crate) fn insert_sign_in_link_in(
    txn: &redb::WriteTransaction,
    token_hash: &[u8; 32],
    link: &SignInLinkRecord,
) -> Result<()> {
    if member_in(&txn.open_table(MEMBERS)?, link.member)?.is_none() {
        return Err(StoreError::NoSuchMember(link.member));
    }
    txn.open_table(SIGN_IN_LINKS)?
        .insert(token_hash, encode(link).as_slice())?;
    txn.open_table(MEMBER_SIGN_IN_LINKS)?
        .insert((link.member.as_u128(), *token_hash), ())?;
    Ok(())
}

/// Uses a sign-in link and starts its session (see [`Store::consume_sign_in_link`]).
pub(crate) fn consume_sign_in_link_in(
    txn: &redb::WriteTransaction,
    token_hash: &[u8; 32],
    session_hash: &[u8; 32],
    session: &SessionRecord,
    now_ms: i64,
) -> Result<Result<MemberRecord, SignInLinkRefusal>> {
    let mut links = txn.open_table(SIGN_IN_LINKS)?;
    let Some(link) = links
        .get(token_hash)?
        .map(|v| decode_or_corrupt::<SignInLinkRecord>("sign_in_links", hex(token_hash), v.value()))
        .transpose()?
    else {
        return Ok(Err(SignInLinkRefusal::Invalid));
    };
    if link.used_at_ms.is_some() {
        return Ok(Err(SignInLinkRefusal::Used));
    }
    if link.expires_at_ms <= now_ms {
        return Ok(Err(SignInLinkRefusal::Expired));
    }
    let Some(member) = member_in(&txn.open_table(MEMBERS)?, link.member)? else {
        return Ok(Err(SignInLinkRefusal::Invalid));
    };
    if member.disabled_at_ms.is_some() {
        return Ok(Err(SignInLinkRefusal::Disabled));
    }
    let used = SignInLinkRecord {
        used_at_ms: Some(now_ms),
        ..link
    };
    links.insert(token_hash, encode(&used).as_slice())?;
    let session = SessionRecord {
        member: member.id,
        ..session.clone()
    };
    insert_session_in(txn, session_hash, &session)?;
    Ok(Ok(member))
}

/// Starts a session for an existing member.
pub(crate) fn insert_session_checked_in(
    txn: &redb::WriteTransaction,
    session_hash: &[u8; 32],
    session: &SessionRecord,
) -> Result<()> {
    if member_in(&txn.open_table(MEMBERS)?, session.member)?.is_none() {
        return Err(StoreError::NoSuchMember(session.member));
    }
    insert_session_in(txn, session_hash, session)
}

/// Revokes one session (see [`Store::revoke_session`]).
pub(crate) fn revoke_session_in(
    txn: &redb::WriteTransaction,
    session_hash: &[u8; 32],
    now_ms: i64,
) -> Result<bool> {
    let mut sessions = txn.open_table(SESSIONS)?;
    let Some(session) = sessions
        .get(session_hash)?
        .map(|v| decode_or_corrupt::<SessionRecord>("sessions", hex(session_hash), v.value()))
        .transpose()?
    else {
        return Ok(false);
    };
    if session.revoked_at_ms.is_some() {
        return Ok(false);
    }
    let revoked = SessionRecord {
        revoked_at_ms: Some(now_ms),
        ..session
    };
    sessions.insert(session_hash, encode(&revoked).as_slice())?;
    Ok(true)
}

/// Disables a member (see [`Store::disable_member`]).
pub(crate) fn disable_member_in(
    txn: &redb::WriteTransaction,
    member: MemberId,
    now_ms: i64,
) -> Result<(MemberRecord, Vec<[u8; 32]>)> {
    let id = member.as_u128();
    let mut members = txn.open_table(MEMBERS)?;
    let record = member_in(&members, member)?.ok_or(StoreError::NoSuchMember(member))?;
    let record = MemberRecord {
        disabled_at_ms: record.disabled_at_ms.or(Some(now_ms)),
        ..record
    };
    members.insert(id, encode(&record).as_slice())?;
    let link_hashes: Vec<[u8; 32]> = txn
        .open_table(MEMBER_SIGN_IN_LINKS)?
        .range((id, [0u8; 32])..=(id, [0xff; 32]))?
        .map(|e| e.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    let mut links = txn.open_table(SIGN_IN_LINKS)?;
    for hash in link_hashes {
        let Some(link) = links
            .get(hash)?
            .map(|v| decode_or_corrupt::<SignInLinkRecord>("sign_in_links", hex(&hash), v.value()))
            .transpose()?
        else {
            continue;
        };
        if link.used_at_ms.is_none() {
            let used = SignInLinkRecord {
                used_at_ms: Some(now_ms),
                ..link
            };
            links.insert(hash, encode(&used).as_slice())?;
        }
    }
    let revoked = revoke_sessions_in(txn, member, now_ms)?;
    Ok((record, revoked))
}

/// Removes a member from a plan (see [`Store::remove_plan_member`]).
pub(crate) fn remove_plan_member_in(
    txn: &redb::WriteTransaction,
    plan: PlanId,
    member: MemberId,
) -> Result<bool> {
    let removed = txn
        .open_table(PLAN_MEMBERS)?
        .remove((plan.as_u128(), member.as_u128()))?
        .is_some();
    txn.open_table(MEMBER_PLANS)?
        .remove((member.as_u128(), plan.as_u128()))?;
    Ok(removed)
}

/// Records the member who minted a share link.
pub(crate) fn set_share_minter_in(
    txn: &redb::WriteTransaction,
    share: ShareId,
    member: MemberId,
) -> Result<()> {
    txn.open_table(SHARE_MINTERS)?
        .insert(share.as_u128(), member.as_u128())?;
    Ok(())
}

/// Adds (or re-roles) a member of a plan (see [`Store::add_plan_member`]).
pub(crate) fn add_plan_member_in(
    txn: &redb::WriteTransaction,
    plan: PlanId,
    member: MemberId,
    record: PlanMemberRecord,
) -> Result<()> {
    if txn
        .open_table(crate::store::PLANS_TABLE)?
        .get(plan.as_u128())?
        .is_none()
    {
        return Err(StoreError::NoSuchPlan(plan));
    }
    if member_in(&txn.open_table(MEMBERS)?, member)?.is_none() {
        return Err(StoreError::NoSuchMember(member));
    }
    let mut members = txn.open_table(PLAN_MEMBERS)?;
    let key = (plan.as_u128(), member.as_u128());
    // An owner stays the owner when added again as a seller member.
    let existing = members
        .get(key)?
        .and_then(|v| decode::<PlanMemberRecord>(v.value()));
    if existing.is_some_and(|e| e.role == PlanMemberRole::Owner) {
        return Ok(());
    }
    members.insert(key, encode(&record).as_slice())?;
    txn.open_table(MEMBER_PLANS)?
        .insert((member.as_u128(), plan.as_u128()), ())?;
    Ok(())
}

/// Records a review mark.
pub(crate) fn set_review_mark_in(
    txn: &redb::WriteTransaction,
    plan: PlanId,
    reviewer: Uuid,
    mark: ReviewMark,
) -> Result<()> {
    txn.open_table(REVIEW_MARKS)?.insert(
        (plan.as_u128(), reviewer.as_u128()),
        encode(&mark).as_slice(),
    )?;
    Ok(())
}

fn insert_session_in(
    txn: &redb::WriteTransaction,
    session_hash: &[u8; 32],
    session: &SessionRecord,
) -> Result<()> {
    txn.open_table(SESSIONS)?
        .insert(session_hash, encode(session).as_slice())?;
    txn.open_table(MEMBER_SESSIONS)?
        .insert((session.member.as_u128(), *session_hash), ())?;
    Ok(())
}

pub(crate) fn revoke_sessions_in(
    txn: &redb::WriteTransaction,
    member: MemberId,
    now_ms: i64,
) -> Result<Vec<[u8; 32]>> {
    let id = member.as_u128();
    let hashes: Vec<[u8; 32]> = txn
        .open_table(MEMBER_SESSIONS)?
        .range((id, [0u8; 32])..=(id, [0xff; 32]))?
        .map(|e| e.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut revoked = Vec::new();
    for hash in hashes {
        let Some(session) = sessions
            .get(hash)?
            .map(|v| decode_or_corrupt::<SessionRecord>("sessions", hex(&hash), v.value()))
            .transpose()?
        else {
            continue;
        };
        if session.revoked_at_ms.is_some() {
            continue;
        }
        let session = SessionRecord {
            revoked_at_ms: Some(now_ms),
            ..session
        };
        sessions.insert(hash, encode(&session).as_slice())?;
        revoked.push(hash);
    }
    Ok(revoked)
}
