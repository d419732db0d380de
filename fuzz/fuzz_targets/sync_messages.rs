//! The WebSocket message handling: any sequence of binary frames from one connection, through
//! decoding and a plan's room (updates applied as if durable). Whatever comes in, nothing
//! panics, and everything the server sends back or relays is a well-formed message.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mapline_server::fuzzing::exchange;
use mapline_server::protocol;

fuzz_target!(|frames: Vec<Vec<u8>>| {
    let result = exchange(&frames);
    for message in result.replies.iter().chain(&result.relayed) {
        match message.first() {
            // Sync and awareness messages the server writes must decode as such.
            Some(0 | 1) => {
                assert!(
                    protocol::decode(&Bytes::clone(message)).is_ok(),
                    "the server sent a malformed message: {message:?}"
                );
            }
            // Mapline's durability acknowledgement and refusal notice.
            Some(100 | 101) => {}
            other => panic!("unexpected message tag {other:?}"),
        }
    }
});
