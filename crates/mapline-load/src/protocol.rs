//! The y-websocket messages a load client sends and reads, encoded and decoded by yrs's own
//! `sync` module (no hand-written lib0). Pure: bytes and documents in, bytes and outcomes out.

use yrs::encoding::read;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, Transact, Update};

/// A message from the server that the client could not use.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("undecodable message: {0}")]
    Decode(#[from] read::Error),
    #[error("update does not apply: {0}")]
    Apply(#[from] yrs::error::UpdateError),
}

/// What one message from the server did to the client's document.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// The server's sync step 1: send `reply` (our sync step 2, what it lacks).
    Step1 { reply: Vec<u8> },
    /// The server's sync step 2 was applied: the client holds the server's state.
    Synced,
    /// A relayed update was applied.
    Update,
    /// Mapline's `durable` message (tag 100, sent with `?acks=1`): the first `count` update
    /// messages (sync step 2 or update) this connection sent are durable.
    Durable { count: u64 },
    /// Awareness, auth or anything else a load client has no use for.
    Other,
}

/// Sync step 1: the client's state vector, sent on connect.
pub fn step1(doc: &Doc) -> Vec<u8> {
    let sv = doc.transact().state_vector();
    Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1()
}

/// An update message (tag 0, 2) carrying one transaction's update.
pub fn update(update: Vec<u8>) -> Vec<u8> {
    Message::Sync(SyncMessage::Update(update)).encode_v1()
}

/// Mapline's `durable` tag (docs/protocol.md, *Mapline's additions*).
const DURABLE: u8 = 100;

/// Reads one message from the server into `doc`.
pub fn handle(doc: &Doc, bytes: &[u8]) -> Result<Received, ProtocolError> {
    // yrs would read a tag it does not know as one byte array; `durable` is a count first.
    if bytes.first() == Some(&DURABLE) {
        let mut cursor = read::Cursor::new(&bytes[1..]);
        return Ok(Received::Durable {
            count: read::Read::read_var(&mut cursor)?,
        });
    }
    match Message::decode_v1(bytes)? {
        Message::Sync(SyncMessage::SyncStep1(sv)) => {
            let diff = doc.transact().encode_state_as_update_v1(&sv);
            Ok(Received::Step1 {
                reply: Message::Sync(SyncMessage::SyncStep2(diff)).encode_v1(),
            })
        }
        Message::Sync(SyncMessage::SyncStep2(u)) => {
            apply(doc, &u)?;
            Ok(Received::Synced)
        }
        Message::Sync(SyncMessage::Update(u)) => {
            apply(doc, &u)?;
            Ok(Received::Update)
        }
        _ => Ok(Received::Other),
    }
}

fn apply(doc: &Doc, update: &[u8]) -> Result<(), ProtocolError> {
    let update = Update::decode_v1(update)?;
    doc.transact_mut().apply_update(update)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Map, Out, StateVector};

    fn doc_with(key: &str, value: f64) -> Doc {
        let doc = Doc::new();
        let map = doc.get_or_insert_map("bench");
        map.insert(&mut doc.transact_mut(), key, value);
        doc
    }

    #[test]
    fn step1_decodes_to_the_documents_state_vector() {
        let doc = doc_with("t0-0", 1.0);
        let bytes = step1(&doc);
        assert_eq!(&bytes[..2], &[0, 0], "y-protocols tags: sync, step 1");
        match Message::decode_v1(&bytes) {
            Ok(Message::Sync(SyncMessage::SyncStep1(sv))) => {
                assert_eq!(sv, doc.transact().state_vector());
            }
            other => panic!("not a sync step 1: {other:?}"),
        }
    }

    #[test]
    fn an_update_message_round_trips_into_another_document() {
        let sender = Doc::new();
        let map = sender.get_or_insert_map("bench");
        let mut txn = sender.transact_mut();
        map.insert(&mut txn, "t3-7", 1234.0);
        let bytes = update(txn.encode_update_v1());
        drop(txn);
        assert_eq!(&bytes[..2], &[0, 2], "y-protocols tags: sync, update");

        let receiver = Doc::new();
        assert_eq!(handle(&receiver, &bytes).ok(), Some(Received::Update));
        let got = receiver
            .get_or_insert_map("bench")
            .get(&receiver.transact(), "t3-7");
        assert_eq!(got, Some(Out::Any(1234.0.into())));
    }

    #[test]
    fn the_servers_step1_is_answered_with_what_it_lacks_and_step2_syncs() {
        let client = doc_with("t1-0", 5.0);
        let server = Doc::new();
        let server_step1 = step1(&server);
        let Ok(Received::Step1 { reply }) = handle(&client, &server_step1) else {
            panic!("step 1 not answered");
        };
        // The reply is a sync step 2 that brings the server up to the client's state.
        assert_eq!(&reply[..2], &[0, 1]);
        assert_eq!(handle(&server, &reply).ok(), Some(Received::Synced));
        assert_eq!(
            server.transact().state_vector(),
            client.transact().state_vector()
        );
    }

    #[test]
    fn awareness_and_garbage_are_told_apart() {
        let doc = Doc::new();
        // Awareness update with no clients: tag 1, then a varUint8Array holding varUint 0.
        assert_eq!(handle(&doc, &[1, 1, 0]).ok(), Some(Received::Other));
        assert!(matches!(handle(&doc, &[0]), Err(ProtocolError::Decode(_))));
        assert!(handle(&doc, &[0, 2, 3, 9, 9, 9]).is_err());
    }

    #[test]
    fn a_durable_ack_gives_its_count_and_a_truncated_one_is_an_error() {
        let doc = Doc::new();
        // tag 100, varUint 300 (0xac 0x02), then the durable state vector (empty: 0).
        assert_eq!(
            handle(&doc, &[100, 0xac, 0x02, 1, 0]).ok(),
            Some(Received::Durable { count: 300 })
        );
        assert_eq!(
            handle(&doc, &[100, 0, 1, 0]).ok(),
            Some(Received::Durable { count: 0 })
        );
        assert!(handle(&doc, &[100]).is_err());
        assert!(handle(&doc, &[100, 0x80]).is_err());
        // Refused (101) is something else a load client does not use.
        assert_eq!(handle(&doc, &[101, 1, b'x']).ok(), Some(Received::Other));
    }

    #[test]
    fn full_state_rebuilds_the_document() {
        let doc = doc_with("t0-1", 2.0);
        let copy = Doc::new();
        let full = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let msg = Message::Sync(SyncMessage::SyncStep2(full)).encode_v1();
        assert_eq!(handle(&copy, &msg).ok(), Some(Received::Synced));
        assert_eq!(
            copy.transact().state_vector(),
            doc.transact().state_vector()
        );
    }
}
