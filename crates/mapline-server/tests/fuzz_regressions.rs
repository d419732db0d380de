//! Every input the fuzz targets (fuzz/) ever crashed on, run through the same entry point as a
//! plain test: `fuzz/regressions/<target>/<what it found>`. A file added there is a regression
//! test from then on.

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use mapline_server::fuzzing::{Exchange, exchange};
use mapline_server::protocol;

fn frames(data: &[u8]) -> Vec<Vec<u8>> {
    // As libfuzzer-sys builds a fuzz target's argument from its bytes.
    Vec::<Vec<u8>>::arbitrary_take_rest(Unstructured::new(data)).unwrap_or_default()
}

/// The invariants the sync_messages target checks.
fn check(name: &str, result: &Exchange) {
    for message in result.replies.iter().chain(&result.relayed) {
        match message.first() {
            Some(0 | 1) => assert!(
                protocol::decode(&Bytes::clone(message)).is_ok(),
                "{name}: the server sent a malformed message"
            ),
            Some(100 | 101) => {}
            other => panic!("{name}: unexpected message tag {other:?}"),
        }
    }
}

#[test]
fn every_sync_messages_regression_input_is_handled() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/sync_messages");
    let mut seen = 0;
    for entry in std::fs::read_dir(&folder).expect("the regressions folder") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = exchange(&frames(&std::fs::read(&path).unwrap()));
        check(&name, &result);
        seen += 1;
    }
    assert!(seen >= 2, "the committed regression inputs are there");
}

#[test]
fn an_update_declaring_millions_of_clients_closes_the_connection_with_4422() {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions/sync_messages/update-declaring-millions-of-clients"),
    )
    .unwrap();
    let result = exchange(&frames(&data));
    assert_eq!(result.closed, Some(4422));
    assert_eq!(result.stored, 0);
}
