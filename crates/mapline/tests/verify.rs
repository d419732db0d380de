//! `mapline verify` on a real data file: clean, then with one record changed on disk at a time
//! (a history entry, an update, a removed update, bytes that no longer decode). Each time the
//! binary must exit 1 and name the table and log position.

use std::path::{Path, PathBuf};
use std::process::Command;

use mapline_plan::edit::{move_due, move_go_live};
use mapline_plan::parse_date;
use mapline_server::{history, plans};
use mapline_store::{Author, HistoryEntry, NewUpdate, PlanId, Side, Store, UpdateRecord};
use redb::{ReadableDatabase as _, TableDefinition};
use yrs::updates::decoder::Decode as _;
use yrs::{ReadTxn as _, Transact as _, Update};

const UPDATES: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("updates");
const HISTORY: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("history");

/// The demo plan plus three moves from the buyer, with its history derived and stored.
/// Returns the file and the plan id; log positions: 1 creation, 2-4 the moves.
fn data_file(dir: &Path) -> (PathBuf, PlanId) {
    let path = dir.join("mapline.redb");
    let store = Store::open(&path).unwrap();
    let (plan, _) = plans::create_demo_plan(&store, 1_700_000_000_000).unwrap();
    let doc = yrs::Doc::with_client_id(77);
    for (_, record) in store.log(plan).unwrap() {
        doc.transact_mut()
            .apply_update(Update::decode_v1(&record.update).unwrap())
            .unwrap();
    }
    let buyer = Author::Share {
        id: PlanId::from_u128(5),
        side: Side::Buyer,
    };
    let mut batch = Vec::new();
    let moves: [&dyn Fn(&mut yrs::TransactionMut); 3] = [
        &|txn| {
            move_due(
                txn,
                "ms-sec-review",
                parse_date("2027-02-18"),
                "DPA redlines",
            )
            .unwrap()
        },
        &|txn| move_due(txn, "ms-roi", parse_date("2027-02-01"), "CFO out a week").unwrap(),
        &|txn| move_go_live(txn, parse_date("2027-04-15").unwrap(), "Board moved"),
    ];
    for (i, write) in moves.iter().enumerate() {
        let before = doc.transact().state_vector();
        write(&mut doc.transact_mut());
        batch.push(NewUpdate {
            plan_id: plan,
            kind: mapline_store::DocKind::Plan,
            record: UpdateRecord {
                author: buyer,
                client_ids: vec![77],
                received_at_ms: 1_700_000_000_000 + i as i64,
                update: doc.transact().encode_diff_v1(&before),
            },
        });
    }
    store.commit_batch(&batch, &[], &[]).unwrap();
    history::rebuild_plan(&store, plan, true).unwrap();
    (path, plan)
}

fn verify(path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mapline"))
        .args(["verify", "--data"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Runs verify on a tampered file: it must exit 1 and print every expected line part.
fn assert_named(path: &Path, expected: &[String]) {
    let (code, output) = verify(path);
    assert_eq!(code, 1, "{output}");
    for line in expected {
        assert!(
            output.contains(line.as_str()),
            "missing {line:?} in:\n{output}"
        );
    }
}

/// Rewrites one stored value in place, with the server's own encoding (format byte + postcard).
fn rewrite<T: serde::Serialize + serde::de::DeserializeOwned>(
    path: &Path,
    table: TableDefinition<(u128, u64), &[u8]>,
    key: (PlanId, u64),
    change: impl FnOnce(&mut T),
) {
    let db = redb::Database::open(path).unwrap();
    let key = (key.0.as_u128(), key.1);
    let mut value: T = {
        let txn = db.begin_read().unwrap();
        let bytes = txn
            .open_table(table)
            .unwrap()
            .get(key)
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        postcard::from_bytes(&bytes[1..]).unwrap()
    };
    change(&mut value);
    let mut bytes = vec![1];
    bytes.extend(postcard::to_allocvec(&value).unwrap());
    let txn = db.begin_write().unwrap();
    txn.open_table(table)
        .unwrap()
        .insert(key, bytes.as_slice())
        .unwrap();
    txn.commit().unwrap();
}

fn fresh(dir: &tempfile::TempDir, name: &str, original: &Path) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::copy(original, &path).unwrap();
    path
}

#[test]
fn verify_passes_a_sound_file_and_names_every_tampered_record() {
    let dir = tempfile::tempdir().unwrap();
    let (original, plan) = data_file(dir.path());
    let (code, output) = verify(&original);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("1 plans, 4 updates, 4 history entries: no problem found"),
        "{output}"
    );

    // A slip's reason rewritten in the history: the entry no longer matches the log, and the
    // next entry's link to it breaks.
    let path = fresh(&dir, "reason.redb", &original);
    rewrite::<HistoryEntry>(&path, HISTORY, (plan, 2), |entry| {
        entry.slips[0].reason = Some("Buyer was slow".into());
    });
    assert_named(
        &path,
        &[
            format!(
                "{plan}: history at 2: the stored entry is not what the log derives (differs_from_log)"
            ),
            format!("{plan}: history at 3: does not follow the entry at 2"),
        ],
    );

    // The author of an update rewritten in the log: the update is not the one its history
    // entry committed to.
    let path = fresh(&dir, "author.redb", &original);
    rewrite::<UpdateRecord>(&path, UPDATES, (plan, 3), |record| {
        record.author = Author::Admin
    });
    assert_named(
        &path,
        &[
            format!("{plan}: updates at 3: the stored update"),
            "(update_changed)".to_owned(),
        ],
    );

    // An update removed from the log.
    let path = fresh(&dir, "removed.redb", &original);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(UPDATES)
            .unwrap()
            .remove((plan.as_u128(), 2))
            .unwrap();
        txn.commit().unwrap();
    }
    assert_named(
        &path,
        &[
            format!("{plan}: updates at 2: the log jumps from 1 to 3 (missing_update)"),
            format!(
                "{plan}: history at 2: an entry for a log position that holds no update (no_update)"
            ),
        ],
    );

    // Bytes that no longer decode.
    let path = fresh(&dir, "garbage.redb", &original);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(HISTORY)
            .unwrap()
            .insert((plan.as_u128(), 4), [1u8, 255, 255].as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    assert_named(
        &path,
        &[format!(
            "{plan}: history at 4: the stored history entry cannot be decoded (undecodable)"
        )],
    );

    // A snapshot that does not hold what the log holds at the position it claims to cover.
    let path = fresh(&dir, "snapshot.redb", &original);
    {
        let store = Store::open(&path).unwrap();
        let wrong = mapline_store::Snapshot {
            covers_seq: 4,
            taken_at_ms: 1,
            state: store.log(plan).unwrap()[0].1.update.clone(),
        };
        store
            .commit_batch(&[], &[(mapline_store::DocRef::plan(plan), wrong)], &[])
            .unwrap();
    }
    assert_named(
        &path,
        &[format!(
            "{plan}: snapshots at 4: the snapshot is not the document the log holds at position 4 (differs_from_log)"
        )],
    );

    // An update stored before updates were admitted first, whose item names a date (a string
    // the buyer's client 77 wrote at position 2) as its parent: it cannot be integrated.
    let path = fresh(&dir, "poisoned.redb", &original);
    {
        let store = Store::open(&path).unwrap();
        let poisoned = mapline_plan::admission::update_with_parent(
            99,
            yrs::ID::new(yrs::ClientID::new(77), 0),
        );
        let record = UpdateRecord {
            author: Author::Admin,
            client_ids: vec![99],
            received_at_ms: 1_700_000_000_100,
            update: poisoned,
        };
        store
            .commit_batch(
                &[NewUpdate {
                    plan_id: plan,
                    kind: mapline_store::DocKind::Plan,
                    record,
                }],
                &[],
                &[],
            )
            .unwrap();
        history::rebuild_plan(&store, plan, true).unwrap();
    }
    assert_named(
        &path,
        &[
            format!("{plan}: updates at 5: the Yjs update cannot be integrated"),
            "(does_not_integrate)".to_owned(),
        ],
    );

    // The original is untouched by all of this.
    assert_eq!(verify(&original).0, 0);
}
