//! Writes `tests/fixtures/format-<STORAGE_FORMAT>.redb`, the file the compatibility test opens.
//! Run once when a new storage format is introduced, and commit the file:
//! `cargo run -p mapline-store --example write_format_fixture`

use mapline_store::{
    Author, NewUpdate, PlanRecord, Role, STORAGE_FORMAT, ShareRecord, Side, Snapshot, Store,
    UpdateRecord,
};
use uuid::Uuid;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/format-{STORAGE_FORMAT}.redb"));
    let _ = std::fs::remove_file(&path);
    let store = Store::open(&path)?;
    store.set_admin_token_hash(&[1; 32])?;
    let plan = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    let record = |update: Vec<u8>| UpdateRecord {
        author: Author::System,
        client_ids: vec![1],
        received_at_ms: 1_700_000_000_000,
        update,
    };
    let plan_record = PlanRecord {
        title: format!("Format {STORAGE_FORMAT} fixture"),
        buyer_org: "Buyer".into(),
        seller_org: "Seller".into(),
        go_live: "2027-04-01".into(),
        created_at_ms: 1_700_000_000_000,
    };
    // The empty Yjs update: both counts zero.
    store.create_plan(
        plan,
        &plan_record,
        &record(vec![0, 0]),
        &[],
        &mapline_store::DerivedHistory::none(plan),
    )?;
    store.commit_batch(
        &[NewUpdate {
            plan_id: plan,
            kind: mapline_store::DocKind::Plan,
            record: record(vec![0, 0]),
        }],
        &[(
            mapline_store::DocRef::plan(plan),
            Snapshot {
                covers_seq: 1,
                taken_at_ms: 1,
                state: vec![0, 0],
            },
        )],
        &[],
    )?;
    // Share links: one plain, one with an expiry far ahead, one revoked (format 2 on), and
    // (format 3 on) link 4 minted through link 2 and link 5 through link 4. Token hashes are
    // SHA-256 of `fixture-token-<n>` so a test can check them.
    let share = |n: u128, side, role, expires_at_ms, revoked_at_ms| ShareRecord {
        id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0100 + n),
        plan_id: plan,
        side,
        role,
        label: format!("Fixture link {n}"),
        token_hash: sha256(&format!("fixture-token-{n}")),
        created_at_ms: 1_700_000_000_000,
        expires_at_ms,
        revoked_at_ms,
    };
    store.insert_share(&share(1, Side::Seller, Role::Editor, None, None), None)?;
    store.insert_share(
        &share(2, Side::Buyer, Role::Editor, Some(4_102_444_800_000), None),
        None,
    )?;
    store.insert_share(
        &share(3, Side::Buyer, Role::Viewer, None, Some(1_700_000_000_001)),
        None,
    )?;
    let id = |n: u128| Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0100 + n);
    store.insert_share(
        &share(4, Side::Buyer, Role::Editor, None, None),
        Some(id(2)),
    )?;
    store.insert_share(
        &share(5, Side::Buyer, Role::Viewer, None, None),
        Some(id(4)),
    )?;
    println!("wrote {}", path.display());
    Ok(())
}

fn sha256(text: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes()).into()
}
