use uuid::Uuid;

use crate::*;

fn plan_record() -> PlanRecord {
    PlanRecord {
        title: "Rollout".into(),
        buyer_org: "Northwind".into(),
        seller_org: "Mapline".into(),
        go_live: "2027-04-01".into(),
        created_at_ms: 1,
    }
}

fn update(byte: u8) -> UpdateRecord {
    UpdateRecord {
        author: Author::Share {
            id: Uuid::from_u128(9),
            side: Side::Buyer,
        },
        client_ids: vec![u64::from(byte)],
        received_at_ms: i64::from(byte),
        update: vec![byte; 3],
    }
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("nested/folder/mapline.redb")).unwrap();
    (dir, store)
}

fn create(store: &Store, id: u128) -> PlanId {
    let id = Uuid::from_u128(id);
    store
        .create_plan(
            id,
            &plan_record(),
            &update(0),
            &[],
            &DerivedHistory::none(id),
        )
        .unwrap();
    id
}

#[test]
fn open_creates_missing_folders_and_an_empty_store() {
    let (_dir, store) = new_store();
    assert!(store.is_empty().unwrap());
    assert!(store.admin_token_hash().unwrap().is_none());
}

#[test]
fn batch_assigns_consecutive_positions_per_plan() {
    let (_dir, store) = new_store();
    let a = create(&store, 1);
    let b = create(&store, 2);
    let batch = [(a, 1), (b, 2), (a, 3), (a, 4), (b, 5)].map(|(plan_id, byte)| NewUpdate {
        plan_id,
        kind: DocKind::Plan,
        record: update(byte),
    });
    assert_eq!(
        store.commit_batch(&batch, &[], &[]).unwrap(),
        [2, 2, 3, 4, 3]
    );
    let log: Vec<_> = store
        .log(a)
        .unwrap()
        .into_iter()
        .map(|(s, r)| (s, r.update[0]))
        .collect();
    assert_eq!(log, [(1, 0), (2, 1), (3, 3), (4, 4)]);
    let next = store
        .commit_batch(
            &[NewUpdate {
                plan_id: b,
                kind: DocKind::Plan,
                record: update(6),
            }],
            &[],
            &[],
        )
        .unwrap();
    assert_eq!(next, [4]);
}

#[test]
fn load_returns_snapshot_and_only_the_tail_after_it() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let batch: Vec<_> = (1..=4)
        .map(|b| NewUpdate {
            plan_id: plan,
            kind: DocKind::Plan,
            record: update(b),
        })
        .collect();
    store.commit_batch(&batch, &[], &[]).unwrap();
    let snapshot = Snapshot {
        covers_seq: 3,
        taken_at_ms: 5,
        state: vec![7],
    };
    store
        .commit_batch(&[], &[(DocRef::plan(plan), snapshot.clone())], &[])
        .unwrap();
    // An older snapshot never replaces a newer one.
    let stale = Snapshot {
        covers_seq: 2,
        taken_at_ms: 6,
        state: vec![8],
    };
    store
        .commit_batch(&[], &[(DocRef::plan(plan), stale)], &[])
        .unwrap();

    // Until history is derived up to the snapshot, the snapshot is not used: the states the
    // missing history comes from must be replayed.
    let load = store.load_document(DocRef::plan(plan)).unwrap().unwrap();
    assert_eq!(load.snapshot, None);
    assert_eq!(load.tail.len(), 5);
    assert_eq!(load.derived_through, 0);

    store.commit_history(&[derived(plan, &[], 3)]).unwrap();
    let load = store.load_document(DocRef::plan(plan)).unwrap().unwrap();
    assert_eq!(load.snapshot, Some(snapshot));
    let tail: Vec<_> = load
        .tail
        .iter()
        .map(|(s, r)| (*s, r.update.clone()))
        .collect();
    assert_eq!(tail, vec![(4, vec![3; 3]), (5, vec![4; 3])]);
    assert_eq!(load.last_seq, 5);
    assert_eq!(load.derived_through, 3);
    assert!(
        store
            .load_document(DocRef::plan(Uuid::from_u128(77)))
            .unwrap()
            .is_none()
    );
}

#[test]
fn creating_an_existing_plan_is_refused_and_changes_nothing() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let err = store
        .create_plan(
            plan,
            &plan_record(),
            &update(9),
            &[],
            &DerivedHistory::none(plan),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::PlanExists(id) if id == plan));
    assert_eq!(store.log(plan).unwrap().len(), 1);
}

#[test]
fn shares_need_an_existing_plan() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let share = ShareRecord {
        id: Uuid::from_u128(5),
        plan_id: plan,
        side: Side::Seller,
        role: Role::Viewer,
        label: "CFO".into(),
        token_hash: [3; 32],
        created_at_ms: 1,
        expires_at_ms: None,
        revoked_at_ms: None,
    };
    assert_eq!(store.insert_share(&share, None).unwrap(), share);
    assert_eq!(store.share(share.id).unwrap(), Some(share.clone()));
    assert!(matches!(
        store.insert_share(&share, None),
        Err(StoreError::ShareExists(_))
    ));
    let orphan = ShareRecord {
        plan_id: Uuid::from_u128(99),
        ..share
    };
    assert!(matches!(
        store.insert_share(&orphan, None),
        Err(StoreError::NoSuchPlan(_))
    ));
}

#[test]
fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let plan = {
        let store = Store::open(&path).unwrap();
        store.set_admin_token_hash(&[4; 32]).unwrap();
        create(&store, 1)
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.admin_token_hash().unwrap(), Some([4; 32]));
    assert_eq!(store.plans().unwrap(), vec![(plan, plan_record())]);
    assert_eq!(store.log(plan).unwrap()[0].1, update(0));
}

#[test]
fn a_file_of_another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap()
            .insert("format_version", 99u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path).err().expect("format 99 must be refused");
    assert!(matches!(
        err,
        OpenError::FormatVersion {
            found: 99,
            supported: STORAGE_FORMAT
        }
    ));
}

#[test]
fn the_committed_format_1_fixture_still_opens() {
    // tests/fixtures/format-1.redb was written by this version's code (see docs/storage.md);
    // copy it so the test never modifies the committed file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("format-1.redb");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-1.redb"),
        &path,
    )
    .unwrap();
    let store = Store::open(&path).unwrap();
    let plans = store.plans().unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].1.title, "Format 1 fixture");
    let load = store
        .load_document(DocRef::plan(plans[0].0))
        .unwrap()
        .unwrap();
    assert_eq!(load.last_seq, 2);
    assert!(store.admin_token_hash().unwrap().is_some());
    // Opening upgraded it to the current format: its (unchained) history is gone, to be derived
    // again, and the next start treats it like one after a crash so that happens at once.
    assert_eq!(load.derived_through, 0);
    assert_eq!(store.plans_behind().unwrap(), vec![plans[0].0]);
    assert!(!store.take_clean_shutdown().unwrap());
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.plans().unwrap().len(),
        1,
        "opening again changes nothing"
    );
}

#[test]
fn the_committed_format_2_fixture_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("format-2.redb");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-2.redb"),
        &path,
    )
    .unwrap();
    let store = Store::open(&path).unwrap();
    let plans = store.plans().unwrap();
    assert_eq!(plans[0].1.title, "Format 2 fixture");
    assert_eq!(
        store
            .load_document(DocRef::plan(plans[0].0))
            .unwrap()
            .unwrap()
            .last_seq,
        2
    );
    let shares = store.shares_of(plans[0].0).unwrap();
    let labels: Vec<_> = shares
        .iter()
        .map(|(s, _)| s.record.label.as_str())
        .collect();
    assert_eq!(
        labels,
        ["Fixture link 1", "Fixture link 2", "Fixture link 3"]
    );
    // Upgraded to format 3: the links predate lineage, so none has a parent or a new cap, and
    // each keeps its expiry and revocation exactly.
    assert!(shares.iter().all(|(s, _)| s.parent.is_none()));
    let expiry: Vec<_> = shares
        .iter()
        .map(|(s, _)| (s.record.expires_at_ms, s.record.revoked_at_ms))
        .collect();
    assert_eq!(
        expiry,
        [
            (None, None),
            (Some(4_102_444_800_000), None),
            (None, Some(1_700_000_000_001))
        ]
    );
    let fixture_id = |n: u128| Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0100 + n);
    let token_hash: [u8; 32] = {
        use sha2::Digest as _;
        sha2::Sha256::digest(b"fixture-token-2").into()
    };
    assert_eq!(
        store.share(fixture_id(2)).unwrap().unwrap().token_hash,
        token_hash
    );
    // An old link mints a new one: the child is capped at the old link's expiry; revoking an
    // unrelated old link touches nothing else.
    let child = ShareRecord {
        expires_at_ms: None,
        ..share(50, plans[0].0, 1_800_000_000_000)
    };
    let stored = store.insert_share(&child, Some(fixture_id(2))).unwrap();
    assert_eq!(stored.expires_at_ms, Some(4_102_444_800_000));
    let revoked = store
        .revoke_share(plans[0].0, fixture_id(1), 1_800_000_000_001)
        .unwrap()
        .unwrap();
    assert_eq!(revoked.newly_revoked, [fixture_id(1)]);
    assert_eq!(
        store.share(fixture_id(2)).unwrap().unwrap().revoked_at_ms,
        None
    );
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.share_parent(child.id).unwrap(),
        Some(fixture_id(2)),
        "upgraded once, reopened unchanged"
    );
}

#[test]
fn the_committed_format_3_fixture_opens_with_its_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("format-3.redb");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-3.redb"),
        &path,
    )
    .unwrap();
    let store = Store::open(&path).unwrap();
    let plan = store.plans().unwrap()[0].0;
    let fixture_id = |n: u128| Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0100 + n);
    let parents: Vec<_> = store
        .shares_of(plan)
        .unwrap()
        .iter()
        .map(|(s, _)| s.parent)
        .collect();
    assert_eq!(
        parents,
        [None, None, None, Some(fixture_id(2)), Some(fixture_id(4))]
    );
    let preview: Vec<_> = store
        .revocation_of(plan, fixture_id(2))
        .unwrap()
        .unwrap()
        .iter()
        .map(|s| s.record.id)
        .collect();
    assert_eq!(preview, [fixture_id(2), fixture_id(4), fixture_id(5)]);
    // Feeds came later without a format change: the file opens, its links have none yet.
    let (record, feed) = store.share_with_feed(fixture_id(2)).unwrap().unwrap();
    assert_eq!(record.id, fixture_id(2));
    assert_eq!(feed, None);
    // Format 4 records conflicts in history: the history is dropped, to be derived again at the
    // next start, which treats the file like one after a crash.
    assert_eq!(store.derived_through(plan).unwrap(), 0);
    assert_eq!(store.plans_behind().unwrap(), vec![plan]);
    assert!(!store.take_clean_shutdown().unwrap());
}

#[test]
fn a_feed_hash_is_stored_beside_its_link_and_follows_it_into_a_backup() {
    let (dir, store) = new_store();
    let plan = create(&store, 1);
    store.insert_share(&share(10, plan, 5), None).unwrap();
    let id = Uuid::from_u128(10);
    assert_eq!(store.share_with_feed(id).unwrap().unwrap().1, None);
    store.set_feed_hash(id, &[7; 32]).unwrap();
    store.set_feed_hash(id, &[7; 32]).unwrap();
    let (record, feed) = store.share_with_feed(id).unwrap().unwrap();
    assert_eq!(
        (record, feed),
        (store.share(id).unwrap().unwrap(), Some([7; 32]))
    );
    assert_eq!(store.share_with_feed(Uuid::from_u128(99)).unwrap(), None);
    let dest = dir.path().join("backup.redb");
    store.backup_to(&dest).unwrap();
    let copy = Store::open(&dest).unwrap();
    assert_eq!(copy.share_with_feed(id).unwrap().unwrap().1, Some([7; 32]));
}

#[test]
fn a_plan_loads_with_the_digest_of_its_last_history_entry() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let none = store.load_document(DocRef::plan(plan)).unwrap().unwrap();
    assert_eq!(none.chain_head, GENESIS);
    let entries = [(1, entry(5, 0)), (3, entry(6, 1))];
    store.commit_history(&[derived(plan, &entries, 3)]).unwrap();
    let load = store.load_document(DocRef::plan(plan)).unwrap().unwrap();
    assert_eq!(load.chain_head, digest(&entries[1].1));
    let audit = store.audit(plan).unwrap();
    assert_eq!(
        audit
            .history
            .iter()
            .map(|(seq, _, d)| (*seq, *d))
            .collect::<Vec<_>>(),
        vec![(1, digest(&entries[0].1)), (3, digest(&entries[1].1))]
    );
    assert_eq!(audit.slip_index, vec![3]);
    assert_eq!(audit.log.len(), 1);
    assert_eq!(audit.derived_through, 3);
}

fn entry(at: i64, slips: usize) -> HistoryEntry {
    HistoryEntry {
        author: Author::Admin,
        client_ids: vec![7],
        received_at_ms: at,
        changes: vec![ChangeRecord {
            entity: "milestones".into(),
            entity_id: Some("m1".into()),
            field: Some("due".into()),
            kind: ChangeKind::Updated,
            old: Some("\"2027-01-01\"".into()),
            new: Some("\"2027-01-08\"".into()),
            conflict: None,
        }],
        slips: (0..slips)
            .map(|_| SlipRecord {
                milestone_id: Some("m1".into()),
                title: None,
                from: "2027-01-01".into(),
                to: Some("2027-01-08".into()),
                days: Some(7),
                reason: None,
                kept: true,
            })
            .collect(),
        update_sha256: [at as u8; 32],
        prev_sha256: GENESIS,
    }
}

fn derived(plan: PlanId, entries: &[(Seq, HistoryEntry)], through: Seq) -> DerivedHistory {
    DerivedHistory {
        plan_id: plan,
        entries: entries.to_vec(),
        through,
        summary: None,
    }
}

/// What a test stores as a summary: the server's own type is opaque to the store.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Summary {
    title: String,
    slips: u32,
}

fn summary(title: &str, slips: u32) -> Summary {
    Summary {
        title: title.into(),
        slips,
    }
}

#[test]
fn a_summary_is_stored_with_the_history_it_was_computed_with() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let other = create(&store, 2);
    let listed = |store: &Store| -> Vec<Option<(Seq, Summary)>> {
        store
            .plans_with_summaries::<Summary>(1)
            .unwrap()
            .into_iter()
            .map(|(_, _, s)| s)
            .collect()
    };
    assert_eq!(listed(&store), [None, None]);
    let mut batch = derived(plan, &[(2, entry(10, 1))], 2);
    batch.summary = Some(EncodedSummary::new(1, 2, &summary("A", 1)));
    store.commit_history(&[batch]).unwrap();
    assert_eq!(listed(&store), [Some((2, summary("A", 1))), None]);

    // The state to advance from: the summary, and history stored after it.
    store
        .commit_history(&[derived(plan, &[(4, entry(20, 1))], 5)])
        .unwrap();
    let state = store.summary_state::<Summary>(plan, 1).unwrap();
    assert_eq!(state.summary, Some((2, summary("A", 1))));
    assert_eq!(state.entries_after, [(4, entry(20, 1))]);
    assert_eq!(state.derived_through, 5);
    let none = store.summary_state::<Summary>(other, 1).unwrap();
    assert!(none.summary.is_none() && none.entries_after.is_empty() && none.record.is_some());

    // A fill never replaces a summary as of the same or a later position.
    assert!(
        !store
            .fill_summary(plan, 2, &EncodedSummary::new(1, 2, &summary("stale", 0)))
            .unwrap()
    );
    assert!(
        store
            .fill_summary(plan, 5, &EncodedSummary::new(1, 5, &summary("B", 2)))
            .unwrap()
    );
    assert!(
        store
            .fill_summary(other, 1, &EncodedSummary::new(1, 1, &summary("C", 0)))
            .unwrap()
    );
    assert!(
        !store
            .fill_summary(
                PlanId::from_u128(99),
                1,
                &EncodedSummary::new(1, 1, &summary("x", 0))
            )
            .unwrap()
    );
    assert_eq!(
        listed(&store),
        [Some((5, summary("B", 2))), Some((1, summary("C", 0)))]
    );

    // A summary of another shape reads as missing (it is computed again).
    assert!(
        store
            .plans_with_summaries::<u8>(1)
            .unwrap()
            .iter()
            .all(|(_, _, s)| s.is_none())
    );

    // A backup carries it; a rebuild replaces it with the rebuilt one's (none here).
    let copy = _dir.path().join("copy.redb");
    store.backup_to(&copy).unwrap();
    let copied = Store::open(&copy).unwrap();
    assert_eq!(
        listed(&copied),
        [Some((5, summary("B", 2))), Some((1, summary("C", 0)))]
    );
    store.replace_history(&derived(plan, &[], 5)).unwrap();
    assert_eq!(listed(&store), [None, Some((1, summary("C", 0)))]);
}

#[test]
fn an_older_summary_never_replaces_a_newer_one() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let with_summary = |through: Seq, title: &str| {
        let mut batch = derived(plan, &[], through);
        batch.summary = Some(EncodedSummary::new(1, through, &summary(title, 0)));
        batch
    };
    let stored = |store: &Store| {
        store
            .summary_state::<Summary>(plan, 1)
            .unwrap()
            .summary
            .map(|(through, s)| (through, s.title))
    };
    store.commit_history(&[with_summary(5, "new")]).unwrap();
    // A flush computed before the newer one but committed after it.
    store.commit_history(&[with_summary(3, "old")]).unwrap();
    assert_eq!(stored(&store), Some((5, "new".into())));
    // The same position replaces it (a rebuild, a recomputation).
    store.commit_history(&[with_summary(5, "again")]).unwrap();
    assert_eq!(stored(&store), Some((5, "again".into())));
    store.commit_history(&[with_summary(6, "later")]).unwrap();
    assert_eq!(stored(&store), Some((6, "later".into())));
}

#[test]
fn a_summary_of_another_version_reads_as_missing_and_is_replaced() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let mut batch = derived(plan, &[], 5);
    batch.summary = Some(EncodedSummary::new(1, 5, &summary("v1", 0)));
    store.commit_history(&[batch]).unwrap();
    let summary_of = |store: &Store, version: u32| {
        store
            .summary_state::<Summary>(plan, version)
            .unwrap()
            .summary
            .map(|(through, s)| (through, s.title))
    };
    assert_eq!(summary_of(&store, 1), Some((5, "v1".into())));
    assert_eq!(summary_of(&store, 2), None);
    assert!(
        store.plans_with_summaries::<Summary>(2).unwrap()[0]
            .2
            .is_none()
    );
    // A version-2 summary replaces it even as of an earlier position: the other version's
    // position means nothing to this one.
    let mut batch = derived(plan, &[], 5);
    batch.summary = Some(EncodedSummary::new(2, 3, &summary("v2", 0)));
    store.commit_history(&[batch]).unwrap();
    assert_eq!(summary_of(&store, 2), Some((3, "v2".into())));
    assert_eq!(summary_of(&store, 1), None);
    // A fill counts the other version as missing too.
    let mut batch = derived(plan, &[], 5);
    batch.summary = Some(EncodedSummary::new(1, 9, &summary("v1 again", 0)));
    store.commit_history(&[batch]).unwrap();
    assert!(
        store
            .fill_summary(plan, 4, &EncodedSummary::new(2, 4, &summary("filled", 0)))
            .unwrap()
    );
    assert_eq!(summary_of(&store, 2), Some((4, "filled".into())));

    // A record written before summaries had a version (the shared format byte,
    // `{ through, summary }`) never decodes as a versioned one, whatever its position.
    store
        .write(|txn| {
            let old = crate::records::encode(&(1u64, summary("unversioned", 0)));
            txn.open_table(crate::summaries::SUMMARIES)?
                .insert(plan.as_u128(), old.as_slice())?;
            Ok(())
        })
        .unwrap();
    assert_eq!(summary_of(&store, 1), None);
    assert_eq!(summary_of(&store, 2), None);
}

#[test]
fn history_is_keyed_by_log_position_so_storing_it_again_changes_nothing() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let batch = derived(plan, &[(2, entry(10, 0)), (4, entry(20, 1))], 5);
    store.commit_history(std::slice::from_ref(&batch)).unwrap();
    store.commit_history(&[batch]).unwrap();
    // An older derivation never moves the position back.
    store.commit_history(&[derived(plan, &[], 3)]).unwrap();
    assert_eq!(store.derived_through(plan).unwrap(), 5);
    // All plans' positions in one read say the same; a plan with nothing derived is left out.
    let other = create(&store, 2);
    assert_eq!(store.derived_through(other).unwrap(), 0);
    assert_eq!(store.derived_positions().unwrap(), [(plan, 5)]);
    assert_eq!(
        store.all_history(plan).unwrap(),
        [(2, entry(10, 0)), (4, entry(20, 1))]
    );
    assert_eq!(store.slip_entries(plan).unwrap(), [(4, entry(20, 1))]);
}

#[test]
fn history_pages_newest_first() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let other = create(&store, 2);
    let entries: Vec<_> = (1..=5).map(|s| (s, entry(s as i64, 0))).collect();
    store
        .commit_history(&[derived(plan, &entries, 5), derived(other, &entries, 5)])
        .unwrap();
    let seqs =
        |page: Vec<(Seq, HistoryEntry)>| page.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    assert_eq!(seqs(store.history(plan, None, 2).unwrap()), [5, 4]);
    assert_eq!(seqs(store.history(plan, Some(4), 2).unwrap()), [3, 2]);
    assert_eq!(seqs(store.history(plan, Some(2), 2).unwrap()), [1]);
    assert_eq!(
        seqs(store.history(plan, Some(1), 2).unwrap()),
        Vec::<Seq>::new()
    );
}

#[test]
fn replacing_history_removes_what_the_rebuild_did_not_produce() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    store
        .commit_history(&[derived(plan, &[(2, entry(1, 1)), (3, entry(2, 1))], 3)])
        .unwrap();
    store
        .replace_history(&derived(plan, &[(3, entry(2, 0))], 3))
        .unwrap();
    assert_eq!(store.all_history(plan).unwrap(), [(3, entry(2, 0))]);
    assert_eq!(store.slip_entries(plan).unwrap(), []);
}

#[test]
fn log_prefixes_end_at_a_position_or_a_time() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let batch: Vec<_> = [10u8, 20, 30]
        .map(|b| NewUpdate {
            plan_id: plan,
            kind: DocKind::Plan,
            record: update(b),
        })
        .to_vec();
    store.commit_batch(&batch, &[], &[]).unwrap();
    let seqs = |p: Vec<(Seq, UpdateRecord)>| p.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.log_prefix(plan, LogBound::Seq(2)).unwrap()),
        [1, 2]
    );
    // update(b) arrives at time b; the plan's first update at time 0.
    assert_eq!(
        seqs(store.log_prefix(plan, LogBound::ReceivedBy(25)).unwrap()),
        [1, 2, 3]
    );
    assert_eq!(
        seqs(store.log_prefix(plan, LogBound::ReceivedBy(-1)).unwrap()),
        Vec::<Seq>::new()
    );
    assert_eq!(store.last_update(plan).unwrap(), Some((4, 30)));
}

#[test]
fn the_clean_shutdown_mark_is_seen_once() {
    let (_dir, store) = new_store();
    assert!(
        !store.take_clean_shutdown().unwrap(),
        "a new file was never shut down"
    );
    store.mark_clean_shutdown().unwrap();
    assert!(store.take_clean_shutdown().unwrap());
    assert!(
        !store.take_clean_shutdown().unwrap(),
        "taken: a crash from now on must be noticed"
    );
}

#[test]
fn plans_behind_are_those_whose_log_passes_their_history() {
    let (_dir, store) = new_store();
    let caught_up = create(&store, 1);
    let behind = create(&store, 2);
    store.commit_history(&[derived(caught_up, &[], 1)]).unwrap();
    assert_eq!(store.plans_behind().unwrap(), [behind]);
}

fn share(id: u128, plan: PlanId, created_at_ms: i64) -> ShareRecord {
    ShareRecord {
        id: Uuid::from_u128(id),
        plan_id: plan,
        side: Side::Buyer,
        role: Role::Editor,
        label: format!("person {id}"),
        token_hash: [7; 32],
        created_at_ms,
        expires_at_ms: None,
        revoked_at_ms: None,
    }
}

#[test]
fn shares_are_listed_per_plan_with_when_they_were_last_used() {
    let (dir, store) = new_store();
    let (a, b) = (create(&store, 1), create(&store, 2));
    for record in [share(10, a, 5), share(11, b, 6), share(12, a, 4)] {
        store.insert_share(&record, None).unwrap();
    }
    store.record_share_seen(Uuid::from_u128(10), 100).unwrap();
    store.record_share_seen(Uuid::from_u128(10), 300).unwrap();
    let listed = store.shares_of(a).unwrap();
    let ids: Vec<_> = listed.iter().map(|(s, _)| s.record.id.as_u128()).collect();
    assert_eq!(ids, [12, 10], "only plan a's shares, oldest first");
    assert_eq!(listed[0].1, None, "never opened");
    assert_eq!(
        listed[1].1,
        Some(ShareSeen {
            first_ms: 100,
            last_ms: 300,
            opens: 2
        })
    );
    // A non-durable visit becomes durable with the next durable commit.
    store.revoke_share(b, Uuid::from_u128(11), 400).unwrap();
    drop(store);
    let store = Store::open(&dir.path().join("nested/folder/mapline.redb")).unwrap();
    assert_eq!(store.shares_of(a).unwrap()[1].1.map(|s| s.opens), Some(2));
}

#[test]
fn revoking_keeps_the_first_time_and_needs_the_right_plan() {
    let (_dir, store) = new_store();
    let (a, b) = (create(&store, 1), create(&store, 2));
    store.insert_share(&share(10, a, 5), None).unwrap();
    let id = Uuid::from_u128(10);
    assert_eq!(store.revoke_share(b, id, 50).unwrap(), None, "other plan");
    assert_eq!(store.share(id).unwrap().unwrap().revoked_at_ms, None);
    let revoked = store.revoke_share(a, id, 50).unwrap().unwrap();
    assert_eq!(revoked.links.len(), 1);
    assert_eq!(revoked.links[0].record.revoked_at_ms, Some(50));
    assert_eq!(revoked.newly_revoked, [id]);
    let again = store.revoke_share(a, id, 90).unwrap().unwrap();
    assert_eq!(again.links[0].record.revoked_at_ms, Some(50));
    assert!(again.newly_revoked.is_empty());
    assert_eq!(store.share(id).unwrap().unwrap().revoked_at_ms, Some(50));
    assert_eq!(store.revoke_share(a, Uuid::from_u128(77), 1).unwrap(), None);
}

#[test]
fn a_backup_is_the_whole_store_as_of_one_instant_and_never_overwrites() {
    let (dir, store) = new_store();
    let plan = create(&store, 1);
    store.insert_share(&share(10, plan, 5), None).unwrap();
    store
        .insert_share(&share(11, plan, 6), Some(Uuid::from_u128(10)))
        .unwrap();
    store
        .commit_history(&[derived(plan, &[(1, entry(5, 1))], 1)])
        .unwrap();
    store.mark_clean_shutdown().unwrap();
    let dest = dir.path().join("backup.redb");
    let stats = store.backup_to(&dest).unwrap();
    assert_eq!(
        (stats.plans, stats.updates, stats.history_entries),
        (1, 1, 1)
    );
    assert!(stats.bytes > 0);
    // Writes after the backup are not in it.
    create(&store, 2);
    assert!(matches!(
        store.backup_to(&dest),
        Err(BackupError::Exists(_))
    ));

    let copy = Store::open(&dest).unwrap();
    assert_eq!(copy.plans().unwrap().len(), 1);
    assert_eq!(copy.log(plan).unwrap(), store.log(plan).unwrap());
    assert_eq!(
        copy.all_history(plan).unwrap(),
        store.all_history(plan).unwrap()
    );
    assert_eq!(
        copy.share(Uuid::from_u128(10)).unwrap(),
        store.share(Uuid::from_u128(10)).unwrap()
    );
    assert_eq!(
        copy.share_parent(Uuid::from_u128(11)).unwrap(),
        Some(Uuid::from_u128(10)),
        "lineage is copied"
    );
    assert_eq!(
        copy.admin_token_hash().unwrap(),
        store.admin_token_hash().unwrap()
    );
    assert!(
        !copy.take_clean_shutdown().unwrap(),
        "a copy is checked like after a crash"
    );
}

#[test]
fn the_internal_document_has_its_own_log_and_snapshot_and_no_history() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let internal = |byte| NewUpdate {
        plan_id: plan,
        kind: DocKind::Internal,
        record: update(byte),
    };
    let plan_update = NewUpdate {
        plan_id: plan,
        kind: DocKind::Plan,
        record: update(9),
    };
    let seqs = store
        .commit_batch(&[internal(1), plan_update, internal(2)], &[], &[])
        .unwrap();
    assert_eq!(seqs, [1, 2, 2], "each document numbers its own log");
    let load = store
        .load_document(DocRef::internal(plan))
        .unwrap()
        .unwrap();
    let tail: Vec<_> = load.tail.iter().map(|(s, r)| (*s, r.update[0])).collect();
    assert_eq!(tail, [(1, 1), (2, 2)]);
    assert_eq!(
        (load.last_seq, load.derived_through),
        (2, 2),
        "nothing to derive"
    );
    assert_eq!(store.log(plan).unwrap().len(), 2, "the plan's log is apart");
    let snapshot = Snapshot {
        covers_seq: 2,
        taken_at_ms: 1,
        state: vec![0, 0],
    };
    store
        .commit_batch(&[], &[(DocRef::internal(plan), snapshot.clone())], &[])
        .unwrap();
    let load = store
        .load_document(DocRef::internal(plan))
        .unwrap()
        .unwrap();
    assert_eq!(load.snapshot, Some(snapshot));
    assert!(load.tail.is_empty());
    assert_eq!(
        store
            .load_document(DocRef::plan(plan))
            .unwrap()
            .unwrap()
            .snapshot,
        None
    );
    assert!(
        store
            .load_document(DocRef::internal(Uuid::from_u128(5)))
            .unwrap()
            .is_none()
    );
    let audit = store.audit(plan).unwrap();
    assert_eq!(audit.internal_log.len(), 2);
    assert!(audit.internal_snapshot.is_some());
}

#[test]
fn reopening_keeps_everything_committed() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    store.recover().unwrap();
    assert_eq!(store.plans().unwrap().len(), 1);
    assert_eq!(store.log(plan).unwrap().len(), 1);
    create(&store, 2);
    store.recover().unwrap();
    assert_eq!(
        store.plans().unwrap().len(),
        2,
        "writes after a reopen are kept too"
    );
}

/// A plan with links minted through one another, as (id, parent) pairs in minting order.
fn tree(store: &Store, plan: PlanId, links: &[(u128, Option<u128>)]) {
    for &(id, parent) in links {
        store
            .insert_share(&share(id, plan, 10), parent.map(Uuid::from_u128))
            .unwrap();
    }
}

fn ids(links: &[LinkedShare]) -> Vec<u128> {
    links.iter().map(|s| s.record.id.as_u128()).collect()
}

#[test]
fn revoking_a_link_revokes_everything_minted_through_it_transitively() {
    let (_dir, store) = new_store();
    let (plan, other) = (create(&store, 1), create(&store, 2));
    // 1 ─┬─ 2 ─┬─ 4 ── 6
    //    │     └─ 5
    //    └─ 3
    // 7 (no parent), and 8 on another plan.
    tree(
        &store,
        plan,
        &[
            (1, None),
            (2, Some(1)),
            (3, Some(1)),
            (4, Some(2)),
            (5, Some(2)),
            (6, Some(4)),
            (7, None),
        ],
    );
    tree(&store, other, &[(8, None)]);
    assert_eq!(
        ids(&store
            .revocation_of(plan, Uuid::from_u128(2))
            .unwrap()
            .unwrap()),
        [2, 4, 6, 5],
        "depth first, each link before the links minted through it"
    );
    assert_eq!(
        ids(&store
            .revocation_of(plan, Uuid::from_u128(1))
            .unwrap()
            .unwrap()),
        [1, 2, 4, 6, 5, 3]
    );
    assert_eq!(
        store.revocation_of(plan, Uuid::from_u128(8)).unwrap(),
        None,
        "another plan's link"
    );
    assert_eq!(
        store.revocation_of(plan, Uuid::from_u128(99)).unwrap(),
        None
    );

    let revoked = store
        .revoke_share(plan, Uuid::from_u128(2), 100)
        .unwrap()
        .unwrap();
    assert_eq!(ids(&revoked.links), [2, 4, 6, 5]);
    assert!(
        revoked
            .links
            .iter()
            .all(|s| s.record.revoked_at_ms == Some(100))
    );
    assert_eq!(
        revoked
            .links
            .iter()
            .map(|s| s.parent.map(|p| p.as_u128()))
            .collect::<Vec<_>>(),
        [Some(1), Some(2), Some(4), Some(2)]
    );
    let state = |id: u128| {
        store
            .share(Uuid::from_u128(id))
            .unwrap()
            .unwrap()
            .revoked_at_ms
    };
    for id in [2, 4, 5, 6] {
        assert_eq!(
            state(id),
            Some(100),
            "link {id} is revoked in its own record"
        );
    }
    for id in [1, 3, 7, 8] {
        assert_eq!(state(id), None, "link {id} is untouched");
    }
    // Revoking the root later keeps the first times and names only what it newly revoked.
    let root = store
        .revoke_share(plan, Uuid::from_u128(1), 200)
        .unwrap()
        .unwrap();
    assert_eq!(ids(&root.links), [1, 2, 4, 6, 5, 3]);
    assert_eq!(
        root.newly_revoked
            .iter()
            .map(|s| s.as_u128())
            .collect::<Vec<_>>(),
        [1, 3]
    );
    assert_eq!(state(4), Some(100));
    assert_eq!(state(3), Some(200));
    assert_eq!(state(7), None);
}

#[test]
fn a_minted_link_never_outlives_its_parent() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let with_expiry = |id: u128, expires_at_ms: Option<i64>| ShareRecord {
        expires_at_ms,
        ..share(id, plan, 10)
    };
    store
        .insert_share(&with_expiry(1, Some(1_000)), None)
        .unwrap();
    let check = |id: u128, parent: u128, asked: Option<i64>, stored: Option<i64>| {
        let got = store
            .insert_share(&with_expiry(id, asked), Some(Uuid::from_u128(parent)))
            .unwrap();
        assert_eq!(got.expires_at_ms, stored, "link {id} asked for {asked:?}");
        assert_eq!(
            store.share(got.id).unwrap().unwrap(),
            got,
            "stored as answered"
        );
    };
    check(2, 1, None, Some(1_000));
    check(3, 1, Some(5_000), Some(1_000));
    check(4, 1, Some(500), Some(500));
    check(5, 4, None, Some(500));
    store.insert_share(&with_expiry(6, None), None).unwrap();
    check(7, 6, None, None);
    check(8, 6, Some(700), Some(700));
}

#[test]
fn minting_through_a_revoked_expired_or_foreign_link_is_refused_and_stores_nothing() {
    let (_dir, store) = new_store();
    let (plan, other) = (create(&store, 1), create(&store, 2));
    tree(&store, plan, &[(1, None), (2, None)]);
    tree(&store, other, &[(3, None)]);
    store
        .insert_share(
            &ShareRecord {
                expires_at_ms: Some(10),
                ..share(4, plan, 5)
            },
            None,
        )
        .unwrap();
    store.revoke_share(plan, Uuid::from_u128(2), 50).unwrap();
    let attempt =
        |parent: u128| store.insert_share(&share(9, plan, 10), Some(Uuid::from_u128(parent)));
    assert!(matches!(attempt(2), Err(StoreError::ShareRevoked(_))));
    assert!(
        matches!(attempt(4), Err(StoreError::ShareExpired(_))),
        "expired at 10"
    );
    assert!(
        matches!(attempt(3), Err(StoreError::NoSuchShare(_))),
        "another plan's"
    );
    assert!(matches!(attempt(77), Err(StoreError::NoSuchShare(_))));
    assert_eq!(store.share(Uuid::from_u128(9)).unwrap(), None);
    assert_eq!(store.share_parent(Uuid::from_u128(9)).unwrap(), None);
    // A link's id is never reused, so an edge always points from an older link to a newer
    // one: the lineage cannot form a cycle.
    assert!(matches!(
        store.insert_share(&share(1, plan, 10), Some(Uuid::from_u128(2))),
        Err(StoreError::ShareExists(_))
    ));
    assert!(matches!(
        store.insert_share(&share(1, plan, 10), None),
        Err(StoreError::ShareExists(_))
    ));
    assert_eq!(
        ids(&store
            .revocation_of(plan, Uuid::from_u128(1))
            .unwrap()
            .unwrap()),
        [1]
    );
}

#[test]
fn the_committed_format_4_fixture_opens_without_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("format-4.redb");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-4.redb"),
        &path,
    )
    .unwrap();
    let store = Store::open(&path).unwrap();
    let plan = store.plans().unwrap()[0].0;
    assert_eq!(store.shares_of(plan).unwrap().len(), 5);
    assert_eq!(store.plans().unwrap()[0].1.title, "Format 4 fixture");
}

#[test]
fn a_plan_created_with_an_internal_update_has_both_logs_from_one_transaction() {
    let (_dir, store) = new_store();
    let id = Uuid::from_u128(77);
    store
        .create_plan_with_internal(
            id,
            &plan_record(),
            &update(1),
            Some(&update(2)),
            &[],
            &DerivedHistory::none(id),
        )
        .unwrap();
    let plan = store.load_document(DocRef::plan(id)).unwrap().unwrap();
    let internal = store
        .load_document(DocRef {
            plan: id,
            kind: DocKind::Internal,
        })
        .unwrap()
        .unwrap();
    assert_eq!(plan.tail, [(1, update(1))]);
    assert_eq!(internal.tail, [(1, update(2))]);
    // A plan id taken refuses both: nothing of the second creation is stored.
    assert!(matches!(
        store.create_plan_with_internal(
            id,
            &plan_record(),
            &update(3),
            Some(&update(4)),
            &[],
            &DerivedHistory::none(id),
        ),
        Err(StoreError::PlanExists(_))
    ));
}

fn member(id: u128, email: &str, role: MemberRole) -> MemberRecord {
    MemberRecord {
        id: Uuid::from_u128(id),
        email: email.into(),
        name: format!("Member {id}"),
        role,
        created_at_ms: 1,
        disabled_at_ms: None,
    }
}

fn session(member: u128, expires_at_ms: i64) -> SessionRecord {
    SessionRecord {
        member: Uuid::from_u128(member),
        created_at_ms: 1,
        expires_at_ms,
        revoked_at_ms: None,
        via: SessionVia::Link,
        user_agent: Some("test".into()),
    }
}

#[test]
fn a_member_email_is_stored_lowercased_and_unique() {
    let (_dir, store) = new_store();
    store
        .insert_member(&member(1, " Dana@Example.COM ", MemberRole::Admin))
        .unwrap();
    let found = store.member_by_email("dana@example.com").unwrap().unwrap();
    assert_eq!(found.email, "dana@example.com");
    assert_eq!(found.id, Uuid::from_u128(1));
    assert!(matches!(
        store.insert_member(&member(2, "DANA@example.com", MemberRole::Rep)),
        Err(StoreError::EmailTaken(email)) if email == "dana@example.com"
    ));
    assert_eq!(
        store.members().unwrap().len(),
        1,
        "the refused one left nothing"
    );
    assert_eq!(store.member(Uuid::from_u128(2)).unwrap(), None);
}

#[test]
fn a_sign_in_link_works_once_and_starts_a_session_in_the_same_transaction() {
    let (_dir, store) = new_store();
    store
        .insert_member(&member(1, "rep@example.com", MemberRole::Rep))
        .unwrap();
    let link = SignInLinkRecord {
        member: Uuid::from_u128(1),
        created_at_ms: 0,
        expires_at_ms: 1_000,
        used_at_ms: None,
    };
    store.insert_sign_in_link(&[7; 32], &link).unwrap();
    let consume = |session_hash: [u8; 32], now| {
        store
            .consume_sign_in_link(&[7; 32], &session_hash, &session(1, 10_000), now)
            .unwrap()
    };
    assert_eq!(consume([1; 32], 500).unwrap().id, Uuid::from_u128(1));
    assert_eq!(consume([2; 32], 600), Err(SignInLinkRefusal::Used));
    assert!(store.session(&[1; 32]).unwrap().is_some());
    assert!(
        store.session(&[2; 32]).unwrap().is_none(),
        "a refused link starts nothing"
    );
    assert_eq!(
        store
            .consume_sign_in_link(&[8; 32], &[3; 32], &session(1, 10_000), 0)
            .unwrap(),
        Err(SignInLinkRefusal::Invalid)
    );
    store.insert_sign_in_link(&[9; 32], &link).unwrap();
    assert_eq!(
        store
            .consume_sign_in_link(&[9; 32], &[4; 32], &session(1, 10_000), 1_000)
            .unwrap(),
        Err(SignInLinkRefusal::Expired)
    );
    assert!(matches!(
        store.insert_sign_in_link(
            &[5; 32],
            &SignInLinkRecord {
                member: Uuid::from_u128(99),
                ..link
            }
        ),
        Err(StoreError::NoSuchMember(_))
    ));
}

#[test]
fn sessions_are_listed_per_member_and_revoked_one_or_all() {
    let (_dir, store) = new_store();
    store
        .insert_member(&member(1, "a@example.com", MemberRole::Rep))
        .unwrap();
    store
        .insert_member(&member(2, "b@example.com", MemberRole::Rep))
        .unwrap();
    store.insert_session(&[1; 32], &session(1, 100)).unwrap();
    store.insert_session(&[2; 32], &session(1, 100)).unwrap();
    store.insert_session(&[3; 32], &session(2, 100)).unwrap();
    assert_eq!(store.sessions_of(Uuid::from_u128(1)).unwrap().len(), 2);
    assert!(store.revoke_session(&[1; 32], 5).unwrap());
    assert!(
        !store.revoke_session(&[1; 32], 6).unwrap(),
        "already revoked"
    );
    let (revoked, _) = store.session(&[1; 32]).unwrap().unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(5));
    assert!(!revoked.is_live(0));
    assert_eq!(
        store.revoke_sessions_of(Uuid::from_u128(1), 7).unwrap(),
        vec![[2; 32]]
    );
    let (other, _) = store.session(&[3; 32]).unwrap().unwrap();
    assert!(other.is_live(50), "another member's session is untouched");
    assert!(!other.is_live(100), "expired at its time");
    assert!(matches!(
        store.insert_session(&[4; 32], &session(9, 100)),
        Err(StoreError::NoSuchMember(_))
    ));
}

#[test]
fn plan_members_are_indexed_both_ways_and_an_owner_stays_owner() {
    let (_dir, store) = new_store();
    let plan = create(&store, 1);
    let other = create(&store, 2);
    store
        .insert_member(&member(10, "owner@example.com", MemberRole::Rep))
        .unwrap();
    store
        .insert_member(&member(11, "helper@example.com", MemberRole::Rep))
        .unwrap();
    let (owner, helper) = (Uuid::from_u128(10), Uuid::from_u128(11));
    let at = |role| PlanMemberRecord {
        role,
        added_at_ms: 3,
    };
    store
        .add_plan_member(plan, owner, at(PlanMemberRole::Owner))
        .unwrap();
    store
        .add_plan_member(plan, owner, at(PlanMemberRole::Seller))
        .unwrap();
    store
        .add_plan_member(plan, helper, at(PlanMemberRole::Seller))
        .unwrap();
    store
        .add_plan_member(other, helper, at(PlanMemberRole::Owner))
        .unwrap();
    assert_eq!(
        store.plan_membership(plan, owner).unwrap().unwrap().role,
        PlanMemberRole::Owner
    );
    assert_eq!(store.plan_members(plan).unwrap().len(), 2);
    assert_eq!(store.plans_of_member(owner).unwrap(), vec![plan]);
    assert_eq!(store.plans_of_member(helper).unwrap(), vec![plan, other]);
    assert_eq!(store.plan_membership(other, owner).unwrap(), None);
    assert!(matches!(
        store.add_plan_member(Uuid::from_u128(77), owner, at(PlanMemberRole::Seller)),
        Err(StoreError::NoSuchPlan(_))
    ));
    assert!(matches!(
        store.add_plan_member(plan, Uuid::from_u128(78), at(PlanMemberRole::Seller)),
        Err(StoreError::NoSuchMember(_))
    ));
}

#[test]
fn review_marks_are_kept_per_plan_and_reviewer_and_follow_into_a_backup() {
    let (dir, store) = new_store();
    let plan = create(&store, 1);
    let (a, b) = (Uuid::from_u128(5), Uuid::from_u128(6));
    assert_eq!(store.review_mark(plan, a).unwrap(), None);
    store
        .set_review_mark(plan, a, ReviewMark { seq: 3, at_ms: 30 })
        .unwrap();
    store
        .set_review_mark(plan, a, ReviewMark { seq: 4, at_ms: 40 })
        .unwrap();
    assert_eq!(
        store.review_mark(plan, a).unwrap(),
        Some(ReviewMark { seq: 4, at_ms: 40 })
    );
    assert_eq!(store.review_mark(plan, b).unwrap(), None);
    store
        .insert_member(&member(1, "m@example.com", MemberRole::Manager))
        .unwrap();
    let copy = dir.path().join("copy.redb");
    store.backup_to(&copy).unwrap();
    let copied = Store::open(&copy).unwrap();
    assert_eq!(copied.review_mark(plan, a).unwrap().unwrap().seq, 4);
    assert!(copied.member_by_email("m@example.com").unwrap().is_some());
}

#[test]
fn a_member_author_is_appended_so_older_authors_decode_as_before() {
    use crate::records::{decode, encode};
    // Bytes of records written before members existed: variant indexes 0, 1 and 2.
    for (author, bytes) in [(Author::System, vec![1u8, 0]), (Author::Admin, vec![1, 1])] {
        assert_eq!(encode(&author), bytes);
        assert_eq!(decode::<Author>(&bytes), Some(author));
    }
    let share = Author::Share {
        id: Uuid::from_u128(1),
        side: Side::Seller,
    };
    assert_eq!(encode(&share)[1], 2);
    assert_eq!(decode::<Author>(&encode(&share)), Some(share));
    let member = Author::Member {
        id: Uuid::from_u128(2),
        side: Side::Seller,
    };
    assert_eq!(encode(&member)[1], 3, "the new variant comes last");
    assert_eq!(decode::<Author>(&encode(&member)), Some(member));
}

#[test]
fn a_file_from_before_members_opens_with_no_members_and_takes_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("format-4.redb");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-4.redb"),
        &path,
    )
    .unwrap();
    let store = Store::open(&path).unwrap();
    let plan = store.plans().unwrap()[0].0;
    assert!(store.members().unwrap().is_empty());
    assert!(store.plan_members(plan).unwrap().is_empty());
    // Its log (authors of the older variants) still decodes.
    assert!(!store.log(plan).unwrap().is_empty());
    store
        .insert_member(&member(1, "new@example.com", MemberRole::Rep))
        .unwrap();
    store
        .add_plan_member(
            plan,
            Uuid::from_u128(1),
            PlanMemberRecord {
                role: PlanMemberRole::Owner,
                added_at_ms: 1,
            },
        )
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.plans_of_member(Uuid::from_u128(1)).unwrap(),
        vec![plan]
    );
}

#[test]
fn disabling_a_member_revokes_their_sessions_and_voids_their_unused_sign_in_links() {
    let (_dir, store) = new_store();
    store
        .insert_member(&member(1, "rep@example.com", MemberRole::Rep))
        .unwrap();
    store
        .insert_member(&member(2, "other@example.com", MemberRole::Rep))
        .unwrap();
    let link = |member: u128| SignInLinkRecord {
        member: Uuid::from_u128(member),
        created_at_ms: 0,
        expires_at_ms: 10_000,
        used_at_ms: None,
    };
    store.insert_sign_in_link(&[7; 32], &link(1)).unwrap();
    store.insert_sign_in_link(&[8; 32], &link(2)).unwrap();
    store.insert_session(&[1; 32], &session(1, 10_000)).unwrap();
    store.insert_session(&[2; 32], &session(2, 10_000)).unwrap();

    let (disabled, revoked) = store.disable_member(Uuid::from_u128(1), 50).unwrap();
    assert_eq!(disabled.disabled_at_ms, Some(50));
    assert_eq!(revoked, vec![[1; 32]]);
    let stored = store.member(Uuid::from_u128(1)).unwrap().unwrap();
    assert_eq!(stored.disabled_at_ms, Some(50));
    assert!(!store.session(&[1; 32]).unwrap().unwrap().0.is_live(60));
    assert_eq!(
        store
            .consume_sign_in_link(&[7; 32], &[3; 32], &session(1, 10_000), 60)
            .unwrap(),
        Err(SignInLinkRefusal::Used),
        "the pending link was voided"
    );
    // The other member is untouched.
    assert!(store.session(&[2; 32]).unwrap().unwrap().0.is_live(60));
    assert!(
        store
            .consume_sign_in_link(&[8; 32], &[4; 32], &session(2, 10_000), 60)
            .unwrap()
            .is_ok()
    );
    // Disabling again keeps the first time and revokes nothing more.
    let (again, revoked) = store.disable_member(Uuid::from_u128(1), 90).unwrap();
    assert_eq!(again.disabled_at_ms, Some(50));
    assert!(revoked.is_empty());
    assert!(matches!(
        store.disable_member(Uuid::from_u128(99), 90),
        Err(StoreError::NoSuchMember(_))
    ));
}

#[test]
fn a_plan_member_is_removed_both_ways_and_share_minters_are_kept_aside() {
    let (_dir, store) = new_store();
    let plan = create(&store, 10);
    store
        .insert_member(&member(1, "rep@example.com", MemberRole::Rep))
        .unwrap();
    store
        .add_plan_member(
            plan,
            Uuid::from_u128(1),
            PlanMemberRecord {
                role: PlanMemberRole::Seller,
                added_at_ms: 1,
            },
        )
        .unwrap();
    assert!(store.remove_plan_member(plan, Uuid::from_u128(1)).unwrap());
    assert!(!store.remove_plan_member(plan, Uuid::from_u128(1)).unwrap());
    assert!(store.plan_members(plan).unwrap().is_empty());
    assert!(
        store
            .plans_of_member(Uuid::from_u128(1))
            .unwrap()
            .is_empty()
    );

    store
        .set_share_minter(Uuid::from_u128(77), Uuid::from_u128(1))
        .unwrap();
    let minters = store
        .share_minters(&[Uuid::from_u128(77), Uuid::from_u128(78)])
        .unwrap();
    assert_eq!(minters.len(), 1);
    assert_eq!(minters[&Uuid::from_u128(77)].email, "rep@example.com");
}

/// The webhook worker's question, "which plans have history past their event cursor?", answered
/// from the plans whose history was stored since it last asked — and from every plan after the
/// file is opened, reopened or a rescan is asked for — gives what a scan of every plan gives.
#[test]
fn plans_with_new_history_sees_every_path_that_stores_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mapline.redb");
    let (a, b, c) = {
        let store = Store::open(&path).unwrap();
        let (a, b, c) = (create(&store, 1), create(&store, 2), create(&store, 3));
        store
            .commit_history(&[derived(a, &[(1, entry(1, 0))], 1)])
            .unwrap();
        store
            .commit_history(&[derived(b, &[(1, entry(2, 0))], 1)])
            .unwrap();
        (a, b, c)
    };
    // Opened again: nothing is remembered, so every plan is looked at.
    let store = Store::open(&path).unwrap();
    let seen = store.plans_with_new_history().unwrap();
    assert_eq!(seen, vec![(a, 1), (b, 1)]);
    let queue = |seen: &[(PlanId, Seq)]| {
        let batch: Vec<_> = seen.iter().map(|(p, s)| (*p, *s, Vec::new())).collect();
        store.queue_history_batch(&batch).unwrap();
    };
    queue(&seen);
    assert_eq!(store.plans_with_new_history().unwrap(), vec![]);

    // History stored by a batch with updates, by a batch without, and with a new plan.
    let appended = NewUpdate {
        plan_id: c,
        kind: DocKind::Plan,
        record: update(9),
    };
    store
        .commit_batch(&[appended], &[], &[derived(c, &[(2, entry(3, 1))], 2)])
        .unwrap();
    store
        .commit_history(&[derived(a, &[(2, entry(4, 0))], 2)])
        .unwrap();
    let d = Uuid::from_u128(4);
    store
        .create_plan(
            d,
            &plan_record(),
            &update(0),
            &[],
            &derived(d, &[(1, entry(5, 0))], 1),
        )
        .unwrap();
    let seen = store.plans_with_new_history().unwrap();
    assert_eq!(seen, vec![(a, 2), (c, 2), (d, 1)]);

    // The worker failed before queueing them: a rescan finds them again, and b stays quiet.
    store.rescan_history();
    assert_eq!(store.plans_with_new_history().unwrap(), seen);
    queue(&seen);
    assert_eq!(store.plans_with_new_history().unwrap(), vec![]);

    // A rebuilt history counts too.
    store
        .replace_history(&derived(b, &[(1, entry(6, 0))], 2))
        .unwrap();
    assert_eq!(store.plans_with_new_history().unwrap(), vec![(b, 2)]);
}
