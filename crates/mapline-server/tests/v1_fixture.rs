//! Writes `tests/fixtures/v1-plan.redb`: a data file holding one plan whose document is in
//! schema version 1, as a v1 client wrote it (prose as plain strings, the seller's judgments in
//! the shared stakeholders, no `schemaVersion`). The black-box test `tests/js/schema-v2.test.js`
//! starts the server on a copy and checks the migration. Run by hand when the fixture must be
//! made again: `cargo test -p mapline-server --test v1_fixture -- --ignored`.

use mapline_store::{Author, PlanId, PlanRecord, Store, UpdateRecord};
use yrs::{Any, Array, ArrayPrelim, Doc, Map, MapPrelim, ReadTxn, StateVector, Transact, WriteTxn};

/// The fixture plan's id (the tests name it).
const PLAN: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0001;

fn v1_document() -> Vec<u8> {
    let doc = Doc::with_client_id(1_234_567);
    {
        let mut txn = doc.transact_mut();
        let meta = txn.get_or_insert_map("meta");
        for (field, value) in [
            ("title", "Northwind rollout (v1)"),
            ("buyerOrg", "Northwind"),
            ("sellerOrg", "Mapline Inc"),
            ("goLive", "2027-04-01"),
            ("goLiveReason", "Fiscal year starts in April"),
            ("costOfInaction", "Another quarter of manual onboarding"),
            ("objective", "Cut onboarding from 30 to 5 days"),
        ] {
            meta.insert(&mut txn, field, value);
        }
        let success = txn.get_or_insert_map("success");
        success.insert(&mut txn, "definition", "Five-day onboarding");
        success.insert(&mut txn, "metrics", "Days to first value");
        let people = txn.get_or_insert_map("stakeholders");
        for (id, name, side, power, engagement) in [
            ("st-v1-cfo", "Casey Fromm", "buyer", "blocker", "dark"),
            ("st-v1-champ", "Dana Chu", "buyer", "influencer", "engaged"),
        ] {
            let entry = people.insert(&mut txn, id, MapPrelim::default());
            for (field, value) in [
                ("name", name),
                ("title", "VP"),
                ("side", side),
                ("role", "other"),
                ("notes", "Met at the summit"),
                ("power", power),
                ("engagement", engagement),
                ("order", "a0"),
            ] {
                entry.insert(&mut txn, field, value);
            }
        }
        let steps = txn.get_or_insert_map("milestones");
        for (id, title, due, after) in [
            ("ms-v1-security", "Security review", "2027-02-01", None),
            (
                "ms-v1-sign",
                "Contract signed",
                "2027-03-01",
                Some("ms-v1-security"),
            ),
        ] {
            let entry = steps.insert(&mut txn, id, MapPrelim::default());
            for (field, value) in [
                ("title", title),
                ("workstream", "legal"),
                ("side", "joint"),
                ("due", due),
                ("status", "not_started"),
                ("notes", "Owner to confirm"),
                ("order", "a0"),
            ] {
                entry.insert(&mut txn, field, value);
            }
            let depends = entry.insert(&mut txn, "dependsOn", ArrayPrelim::default());
            if let Some(after) = after {
                depends.push_back(&mut txn, Any::from(after));
            }
        }
    }
    let txn = doc.transact();
    txn.encode_state_as_update_v1(&StateVector::default())
}

#[test]
#[ignore = "writes the committed fixture; run by hand"]
fn write_v1_fixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/v1-plan.redb"
    );
    let _ = std::fs::remove_file(path);
    let store = Store::open(std::path::Path::new(path)).unwrap();
    let id = PlanId::from_u128(PLAN);
    let first = UpdateRecord {
        author: Author::System,
        client_ids: vec![1_234_567],
        received_at_ms: 1_800_000_000_000,
        update: v1_document(),
    };
    let history = mapline_server::history::derive_log(id, [(1, &first)]);
    let record = PlanRecord {
        title: "Northwind rollout (v1)".into(),
        buyer_org: "Northwind".into(),
        seller_org: "Mapline Inc".into(),
        go_live: "2027-04-01".into(),
        created_at_ms: 1_800_000_000_000,
    };
    store
        .create_plan(id, &record, &first, &[], &history)
        .unwrap();
    store.mark_clean_shutdown().unwrap();
    drop(store);
}
