//! Commands: the encoding, and that replicas applying the same commands in order hold the same
//! shared tables whatever each did locally.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::*;

/// Tables written by commands: compared between replicas.
const SHARED_TABLES: &[&str] = &[
    "meta",
    "plans",
    "shares",
    "updates",
    "internal_updates",
    "share_seen",
    "share_parents",
    "share_children",
    "share_feeds",
    "members",
    "member_emails",
    "sessions",
    "member_sessions",
    "sign_in_links",
    "plan_members",
    "member_plans",
    "review_marks",
    "member_sign_in_links",
    "share_minters",
    "webhooks",
];

/// Tables each node derives or keeps for itself (docs/storage.md, *Commands and replicas*).
const NODE_LOCAL_TABLES: &[&str] = &[
    "snapshots",
    "internal_snapshots",
    "history",
    "slip_index",
    "derived_through",
    "plan_summaries",
    "webhook_outbox",
    "webhook_log",
    "webhook_cursor",
    "webhook_overdue",
];

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn hash(n: u8) -> [u8; 32] {
    [n; 32]
}

fn plan(title: &str) -> PlanRecord {
    PlanRecord {
        title: title.into(),
        buyer_org: "Northwind".into(),
        seller_org: "Mapline".into(),
        go_live: "2027-04-01".into(),
        created_at_ms: 10,
    }
}

fn update(byte: u8, author: Author) -> UpdateRecord {
    UpdateRecord {
        author,
        client_ids: vec![u64::from(byte)],
        received_at_ms: 100 + i64::from(byte),
        update: vec![byte; 5],
    }
}

fn share(n: u128, plan: PlanId, side: Side, expires_at_ms: Option<i64>) -> ShareRecord {
    ShareRecord {
        id: id(n),
        plan_id: plan,
        side,
        role: Role::Editor,
        label: format!("link {n}"),
        token_hash: hash(n as u8),
        created_at_ms: 20 + n as i64,
        expires_at_ms,
        revoked_at_ms: None,
    }
}

fn member(n: u128, email: &str, role: MemberRole) -> MemberRecord {
    MemberRecord {
        id: id(n),
        email: email.into(),
        name: format!("Member {n}"),
        role,
        created_at_ms: 30,
        disabled_at_ms: None,
    }
}

fn session(member: u128, via: SessionVia) -> SessionRecord {
    SessionRecord {
        member: id(member),
        created_at_ms: 40,
        expires_at_ms: 10_000,
        revoked_at_ms: None,
        via,
        user_agent: Some("test".into()),
    }
}

fn sign_in_link(member: u128) -> SignInLinkRecord {
    SignInLinkRecord {
        member: id(member),
        created_at_ms: 40,
        expires_at_ms: 5_000,
        used_at_ms: None,
    }
}

fn webhook(n: u128, plan: Option<PlanId>) -> WebhookRecord {
    WebhookRecord {
        id: id(n),
        url: format!("https://hooks.example/{n}"),
        secret: "s3cret".into(),
        plan,
        events: vec!["slip".into()],
        created_at_ms: 50,
    }
}

fn append(updates: &[(PlanId, DocKind, u8)]) -> Command {
    Command::AppendUpdates {
        updates: updates
            .iter()
            .map(|&(plan_id, kind, byte)| NewUpdate {
                plan_id,
                kind,
                record: update(
                    byte,
                    Author::Share {
                        id: id(101),
                        side: Side::Seller,
                    },
                ),
            })
            .collect(),
    }
}

const P1: u128 = 1;
const P2: u128 = 2;
const ADA: u128 = 201;
const BEN: u128 = 202;

/// A realistic run of a deployment's command log: plans created and edited, links minted
/// through links and revoked with their descendants, members signing in (a link used twice),
/// sessions revoked, a member disabled, and commands the rules refuse along the way.
fn script() -> Vec<Command> {
    let (p1, p2) = (id(P1), id(P2));
    vec![
        Command::SetAdminTokenHash { hash: hash(0xad) },
        Command::CreatePlan {
            id: p1,
            plan: plan("Rollout"),
            first_update: update(1, Author::System),
            internal_first_update: Some(update(2, Author::System)),
            shares: vec![
                share(101, p1, Side::Seller, None),
                share(102, p1, Side::Buyer, Some(9_000)),
            ],
        },
        Command::CreatePlan {
            id: p2,
            plan: plan("Pilot"),
            first_update: update(3, Author::System),
            internal_first_update: None,
            shares: vec![share(103, p2, Side::Seller, None)],
        },
        append(&[
            (p1, DocKind::Plan, 4),
            (p1, DocKind::Internal, 5),
            (p2, DocKind::Plan, 6),
            (p1, DocKind::Plan, 7),
        ]),
        Command::InsertMember {
            member: member(ADA, "Ada@Example.com", MemberRole::Admin),
        },
        Command::InsertMember {
            member: member(BEN, "ben@example.com", MemberRole::Rep),
        },
        // Refused: the email is taken (any case).
        Command::InsertMember {
            member: member(203, "ADA@example.com", MemberRole::Rep),
        },
        Command::AddPlanMember {
            plan: p1,
            member: id(ADA),
            record: PlanMemberRecord {
                role: PlanMemberRole::Owner,
                added_at_ms: 60,
            },
        },
        Command::AddPlanMember {
            plan: p1,
            member: id(BEN),
            record: PlanMemberRecord {
                role: PlanMemberRole::Seller,
                added_at_ms: 61,
            },
        },
        // The owner stays the owner.
        Command::AddPlanMember {
            plan: p1,
            member: id(ADA),
            record: PlanMemberRecord {
                role: PlanMemberRole::Seller,
                added_at_ms: 62,
            },
        },
        Command::InsertShare {
            share: share(104, p1, Side::Buyer, None),
            parent: Some(id(102)),
        },
        Command::SetShareMinter {
            share: id(104),
            member: id(ADA),
        },
        Command::InsertShare {
            share: share(105, p1, Side::Buyer, Some(20_000)),
            parent: Some(id(104)),
        },
        Command::RecordShareSeen {
            share: id(102),
            now_ms: 70,
        },
        Command::RecordShareSeen {
            share: id(102),
            now_ms: 75,
        },
        Command::SetFeedHash {
            share: id(102),
            hash: hash(0xfe),
        },
        Command::InsertSignInLink {
            token_hash: hash(1),
            link: sign_in_link(BEN),
        },
        Command::ConsumeSignInLink {
            token_hash: hash(1),
            session_hash: hash(11),
            session: session(BEN, SessionVia::Link),
            now_ms: 80,
        },
        // The same link again: used.
        Command::ConsumeSignInLink {
            token_hash: hash(1),
            session_hash: hash(12),
            session: session(BEN, SessionVia::Link),
            now_ms: 81,
        },
        Command::InsertSession {
            session_hash: hash(13),
            session: session(BEN, SessionVia::Oidc),
        },
        Command::InsertSession {
            session_hash: hash(14),
            session: session(ADA, SessionVia::Oidc),
        },
        Command::RevokeSession {
            session_hash: hash(11),
            now_ms: 90,
        },
        Command::SetReviewMark {
            plan: p1,
            reviewer: id(ADA),
            mark: ReviewMark { seq: 3, at_ms: 91 },
        },
        append(&[(p1, DocKind::Plan, 8), (p2, DocKind::Internal, 9)]),
        Command::RevokeShare {
            plan: p1,
            share: id(104),
            now_ms: 100,
        },
        // Refused: minted through a revoked link.
        Command::InsertShare {
            share: share(106, p1, Side::Buyer, None),
            parent: Some(id(105)),
        },
        Command::InsertWebhook {
            hook: webhook(301, Some(p1)),
        },
        Command::InsertWebhook {
            hook: webhook(302, None),
        },
        Command::DeleteWebhook { id: id(302) },
        Command::RemovePlanMember {
            plan: p1,
            member: id(BEN),
        },
        Command::InsertSignInLink {
            token_hash: hash(2),
            link: sign_in_link(BEN),
        },
        Command::DisableMember {
            member: id(BEN),
            now_ms: 110,
        },
        // Refused: disabling the member voided the link.
        Command::ConsumeSignInLink {
            token_hash: hash(2),
            session_hash: hash(15),
            session: session(BEN, SessionVia::Link),
            now_ms: 111,
        },
        Command::RevokeSessionsOf {
            member: id(ADA),
            now_ms: 120,
        },
        // Refused: the plan exists.
        Command::CreatePlan {
            id: p1,
            plan: plan("Again"),
            first_update: update(10, Author::System),
            internal_first_update: None,
            shares: Vec::new(),
        },
        append(&[(p1, DocKind::Plan, 11)]),
        Command::RevokeShare {
            plan: p1,
            share: id(101),
            now_ms: 130,
        },
    ]
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("mapline.redb")).unwrap();
    (dir, store)
}

/// What executing a command returned, comparable across stores.
type Seen = Result<Outcome, String>;

fn run(store: &Store, commands: &[Command], from: u64) -> Vec<Seen> {
    commands
        .iter()
        .zip(from..)
        .map(|(command, position)| {
            store
                .execute_at(command, position)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Node-local writes a replica makes between commands (history and snapshots derived at its
/// own pace, its own webhook outbox, its clean-shutdown marks): none of them may change what a
/// command does to the shared tables.
fn local_work(store: &Store, after_position: u64) {
    let p1 = id(P1);
    match after_position {
        2 => store
            .commit_history(&[DerivedHistory {
                plan_id: p1,
                entries: vec![(1, history_entry(1))],
                through: 1,
                summary: None,
            }])
            .unwrap(),
        4 => {
            let snapshot = Snapshot {
                covers_seq: 3,
                taken_at_ms: 1,
                state: vec![9; 4],
            };
            let history = DerivedHistory {
                plan_id: p1,
                entries: vec![(3, history_entry(3))],
                through: 3,
                summary: None,
            };
            store
                .commit_batch(&[], &[(DocRef::plan(p1), snapshot)], &[history])
                .unwrap();
        }
        10 => store.mark_clean_shutdown().unwrap(),
        28 => {
            let delivery = DeliveryRecord {
                webhook: id(302),
                event: "slip".into(),
                body: "{}".into(),
                attempts: 0,
                next_attempt_ms: 0,
                created_at_ms: 1,
            };
            store
                .queue_deliveries(
                    p1,
                    Some(3),
                    &[("m1".into(), "2027-01-01".into())],
                    &[delivery],
                )
                .unwrap();
        }
        30 => {
            store.take_clean_shutdown().unwrap();
        }
        _ => {}
    }
}

fn history_entry(seq: u8) -> HistoryEntry {
    HistoryEntry {
        author: Author::System,
        client_ids: vec![u64::from(seq)],
        received_at_ms: 100,
        changes: Vec::new(),
        slips: Vec::new(),
        update_sha256: [seq; 32],
        prev_sha256: GENESIS,
    }
}

/// The first command of each variant in [`script`]: one built value per variant.
fn every_variant() -> Vec<Command> {
    let mut all = script();
    let mut seen = BTreeSet::new();
    all.retain(|c| seen.insert(c.name()));
    all
}

/// Each variant's index in the encoding, pinned: a reordering would make every replica read
/// logged commands as other commands. The match is exhaustive, so a new variant does not compile
/// here until it is pinned; pin it last, add it to [`script`] and count it in [`VARIANTS`].
fn pinned_index(command: &Command) -> u8 {
    match command {
        Command::CreatePlan { .. } => 0,
        Command::AppendUpdates { .. } => 1,
        Command::InsertShare { .. } => 2,
        Command::RevokeShare { .. } => 3,
        Command::RecordShareSeen { .. } => 4,
        Command::SetFeedHash { .. } => 5,
        Command::SetShareMinter { .. } => 6,
        Command::SetAdminTokenHash { .. } => 7,
        Command::InsertMember { .. } => 8,
        Command::InsertSignInLink { .. } => 9,
        Command::ConsumeSignInLink { .. } => 10,
        Command::InsertSession { .. } => 11,
        Command::RevokeSession { .. } => 12,
        Command::RevokeSessionsOf { .. } => 13,
        Command::DisableMember { .. } => 14,
        Command::AddPlanMember { .. } => 15,
        Command::RemovePlanMember { .. } => 16,
        Command::SetReviewMark { .. } => 17,
        Command::InsertWebhook { .. } => 18,
        Command::DeleteWebhook { .. } => 19,
    }
}

const VARIANTS: u8 = 20;

#[test]
fn every_variant_round_trips_through_its_encoding_with_a_pinned_index() {
    let all = every_variant();
    let indices: BTreeSet<u8> = all.iter().map(pinned_index).collect();
    assert_eq!(indices, (0..VARIANTS).collect(), "one value per variant");
    for command in &all {
        let bytes = command.encode();
        assert_eq!(bytes[0], COMMAND_FORMAT);
        assert_eq!(bytes[1], pinned_index(command), "{}", command.name());
        assert_eq!(&Command::decode(&bytes).unwrap(), command);
    }
}

#[test]
fn an_unknown_format_or_damaged_bytes_are_typed_errors() {
    let bytes = every_variant()[0].encode();
    assert!(matches!(Command::decode(&[]), Err(CommandError::Empty)));
    let mut other = bytes.clone();
    other[0] = 2;
    assert!(matches!(
        Command::decode(&other),
        Err(CommandError::UnknownFormat {
            found: 2,
            supported: 1
        })
    ));
    for cut in 1..bytes.len() {
        assert!(
            matches!(
                Command::decode(&bytes[..cut]),
                Err(CommandError::Malformed(_))
            ),
            "cut at {cut}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Command::decode(&longer),
        Err(CommandError::TrailingBytes(1))
    ));
    let unknown_variant = [COMMAND_FORMAT, 120];
    assert!(matches!(
        Command::decode(&unknown_variant),
        Err(CommandError::Malformed(_))
    ));
}

#[test]
fn two_replicas_applying_one_log_hold_identical_shared_tables_whatever_they_did_locally() {
    let commands = script();
    let (_a_dir, a) = new_store();
    let (_b_dir, b) = new_store();
    let seen_a = run(&a, &commands, 1);
    // B applies the same log one command at a time, decoded from its encoding as a replica
    // would receive it, with its own local work in between.
    let mut seen_b = Vec::new();
    for (command, position) in commands.iter().zip(1..) {
        let received = Command::decode(&command.encode()).unwrap();
        seen_b.push(b.execute_at(&received, position).map_err(|e| e.to_string()));
        local_work(&b, position);
    }
    assert_eq!(a.dump_shared().unwrap(), b.dump_shared().unwrap());
    assert_eq!(seen_a, seen_b, "the same outcome for every command");
    assert_eq!(a.applied_position().unwrap(), commands.len() as u64);
    assert_eq!(b.applied_position().unwrap(), commands.len() as u64);

    // The run did what it says: refusals refused, the cascade cascaded, the link worked once.
    let refusals: Vec<&str> = seen_a
        .iter()
        .filter_map(|s| s.as_ref().err().map(String::as_str))
        .collect();
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert!(matches!(
        &seen_a[18],
        Ok(Outcome::SignIn(Err(SignInLinkRefusal::Used)))
    ));
    assert!(matches!(
        &seen_a[32],
        Ok(Outcome::SignIn(Err(SignInLinkRefusal::Used)))
    ));
    let Ok(Outcome::Revocation(Some(revocation))) = &seen_a[24] else {
        panic!("{:?}", seen_a[24]);
    };
    assert_eq!(revocation.newly_revoked, vec![id(104), id(105)]);
    assert_eq!(
        a.log(id(P1))
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    // The local work did happen on B only.
    assert_eq!(b.derived_through(id(P1)).unwrap(), 3);
    assert_eq!(a.derived_through(id(P1)).unwrap(), 0);
}

#[test]
fn every_table_is_either_shared_or_node_local() {
    let (_dir, store) = new_store();
    let shared: BTreeSet<&str> = SHARED_TABLES.iter().copied().collect();
    let local: BTreeSet<&str> = NODE_LOCAL_TABLES.iter().copied().collect();
    assert!(shared.is_disjoint(&local));
    let names = store.table_names().unwrap();
    let all: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(all, &shared | &local, "a new table must be classified");
    let dumped: BTreeSet<String> = store.dump_shared().unwrap().into_keys().collect();
    assert_eq!(
        dumped,
        shared
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn replaying_a_prefix_then_the_rest_equals_applying_the_log_once() {
    let commands = script();
    let (_a_dir, once) = new_store();
    run(&once, &commands, 1);
    let (dir, replica) = new_store();
    let cut = 17;
    run(&replica, &commands[..cut], 1);
    // A restart, then a consumer that starts again from the beginning of the log: every
    // position already applied is refused and changes nothing, the rest applies.
    drop(replica);
    let replica = Store::open(&dir.path().join("mapline.redb")).unwrap();
    assert_eq!(replica.applied_position().unwrap(), cut as u64);
    let again = run(&replica, &commands, 1);
    for seen in &again[..cut] {
        assert!(
            seen.as_ref().is_err_and(|e| e.contains("already applied")),
            "{seen:?}"
        );
    }
    assert_eq!(once.dump_shared().unwrap(), replica.dump_shared().unwrap());
}

#[test]
fn a_replayed_position_is_refused_and_changes_nothing() {
    let commands = script();
    let (_dir, store) = new_store();
    run(&store, &commands, 1);
    let before = store.dump_shared().unwrap();
    let last = commands.len() as u64;
    // The command that was at position 18 (a sign-in), again at its own and at an older one.
    for position in [18, 1, last] {
        assert!(matches!(
            store.execute_at(&commands[17], position),
            Err(StoreError::AlreadyApplied { position: p, applied }) if p == position && applied == last
        ));
    }
    // Even a command that would apply cleanly.
    let fresh = Command::SetReviewMark {
        plan: id(P2),
        reviewer: id(ADA),
        mark: ReviewMark { seq: 1, at_ms: 1 },
    };
    assert!(matches!(
        store.execute_at(&fresh, last),
        Err(StoreError::AlreadyApplied { .. })
    ));
    assert_eq!(store.dump_shared().unwrap(), before);
    assert_eq!(store.applied_position().unwrap(), last);
    // The next position applies.
    store.execute_at(&fresh, last + 5).unwrap();
    assert_eq!(store.applied_position().unwrap(), last + 5);
    assert_eq!(
        store.review_mark(id(P2), id(ADA)).unwrap(),
        Some(ReviewMark { seq: 1, at_ms: 1 })
    );
}

#[test]
fn a_base_position_is_set_whatever_was_recorded_and_changes_nothing_else() {
    let commands = script();
    let (_dir, store) = new_store();
    run(&store, &commands, 1);
    // Every shared table but `meta`, which holds the position.
    let tables = |store: &Store| {
        let mut dump = store.dump_shared().unwrap();
        dump.remove("meta");
        dump
    };
    let before = tables(&store);
    // A copy of a cluster's replica becomes a fresh cluster's base: position 0.
    store.set_base_position(0).unwrap();
    assert_eq!(store.applied_position().unwrap(), 0);
    assert!(tables(&store) == before, "only the position changed");
    // The fresh log's position 1 applies.
    let fresh = Command::SetReviewMark {
        plan: id(P2),
        reviewer: id(ADA),
        mark: ReviewMark { seq: 1, at_ms: 1 },
    };
    store.execute_at(&fresh, 1).unwrap();
    assert_eq!(store.applied_position().unwrap(), 1);
}

#[test]
fn a_refused_command_consumes_its_position_and_writes_nothing_else() {
    let (_dir, store) = new_store();
    let commands = script();
    run(&store, &commands[..2], 1);
    let before = store.dump_shared().unwrap();
    let history = DerivedHistory {
        plan_id: id(P1),
        entries: vec![(1, history_entry(1))],
        through: 1,
        summary: None,
    };
    let refused = store.execute_with_local(
        &Command::InsertShare {
            share: share(150, id(P1), Side::Buyer, None),
            parent: Some(id(999)),
        },
        Some(3),
        &[],
        std::slice::from_ref(&history),
    );
    assert!(matches!(refused, Err(StoreError::NoSuchShare(_))));
    assert_eq!(store.applied_position().unwrap(), 3);
    let mut after = store.dump_shared().unwrap();
    let meta_after = after.remove("meta");
    let mut expected = before.clone();
    let meta_before = expected.remove("meta");
    assert_eq!(after, expected, "no shared row but the position");
    assert_ne!(meta_after, meta_before);
    assert_eq!(
        store.derived_through(id(P1)).unwrap(),
        0,
        "nor the local part"
    );
}

#[test]
fn execute_without_a_position_leaves_the_applied_position_alone() {
    let (_dir, store) = new_store();
    for command in &script()[..4] {
        store.execute(command).unwrap();
    }
    assert_eq!(store.applied_position().unwrap(), 0);
    assert_eq!(store.log(id(P1)).unwrap().len(), 3);
}

#[test]
fn a_file_from_before_commands_opens_at_position_zero() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-4.redb");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("format-4.redb");
    std::fs::copy(fixture, &copy).unwrap();
    let store = Store::open(&copy).unwrap();
    assert_eq!(store.applied_position().unwrap(), 0);
}

#[test]
fn deferred_applies_and_a_skipped_position_give_the_replica_an_immediate_one_gets() {
    let commands = script();
    let (_a_dir, immediate) = new_store();
    immediate.skip_at(1, Durability::Immediate).unwrap();
    let expected = run(&immediate, &commands, 2);

    let (dir, deferred) = new_store();
    deferred.skip_at(1, Durability::Deferred).unwrap();
    let seen: Vec<Seen> = commands
        .iter()
        .zip(2..)
        .map(|(command, position)| {
            deferred
                .execute_at_with(command, position, Durability::Deferred)
                .map_err(|e| e.to_string())
        })
        .collect();
    assert_eq!(seen, expected, "the same outcomes, refusals included");
    deferred.sync().unwrap();
    drop(deferred);
    let reopened = Store::open(&dir.path().join("mapline.redb")).unwrap();
    assert_eq!(
        reopened.applied_position().unwrap(),
        commands.len() as u64 + 1
    );
    assert_eq!(
        immediate.dump_shared().unwrap(),
        reopened.dump_shared().unwrap()
    );
    assert_eq!(
        immediate.shared_digest().unwrap(),
        reopened.shared_digest().unwrap()
    );
    assert!(matches!(
        reopened.skip_at(5, Durability::Immediate),
        Err(StoreError::AlreadyApplied { position: 5, .. })
    ));
}

#[test]
fn the_shared_digest_ignores_local_data_and_sees_every_shared_write() {
    let commands = script();
    let (_dir, store) = new_store();
    run(&store, &commands, 1);
    let digest = store.shared_digest().unwrap();
    let local = DerivedHistory {
        plan_id: id(P1),
        entries: vec![(1, history_entry(1))],
        through: 1,
        summary: None,
    };
    store.commit_history(std::slice::from_ref(&local)).unwrap();
    store.take_clean_shutdown().unwrap();
    assert_eq!(store.shared_digest().unwrap(), digest, "node-local writes");
    store
        .skip_at(commands.len() as u64 + 1, Durability::Immediate)
        .unwrap();
    let skipped = store.shared_digest().unwrap();
    assert_ne!(skipped, digest, "the applied position is shared");
    store
        .execute_at(
            &Command::SetReviewMark {
                plan: id(P2),
                reviewer: id(ADA),
                mark: ReviewMark { seq: 1, at_ms: 7 },
            },
            commands.len() as u64 + 2,
        )
        .unwrap();
    assert_ne!(store.shared_digest().unwrap(), skipped);
}
