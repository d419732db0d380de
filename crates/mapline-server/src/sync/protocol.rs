//! The y-websocket wire protocol, sans IO: one binary WebSocket message in, a typed [`Incoming`]
//! or a [`ProtocolError`] out; and the encoders for every message the server sends. Message
//! framing and the standard messages come from yrs's `sync` module; Mapline adds two messages
//! (tags 100 and 101, see docs/protocol.md) that are sent only to clients that asked for them.

use bytes::Bytes;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::sync::protocol::{
    MSG_AUTH, MSG_AWARENESS, MSG_QUERY_AWARENESS, MSG_SYNC, MSG_SYNC_STEP_1, MSG_SYNC_STEP_2,
    MSG_SYNC_UPDATE,
};
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
use yrs::{StateVector, Update};

/// Largest awareness message a client may send (all its states together).
pub const MAX_AWARENESS_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest state of one awareness client (its JSON).
pub const MAX_AWARENESS_STATE_BYTES: usize = 16 * 1024;

/// Tag of Mapline's durability acknowledgement (server → client, opt-in with `?acks=1`).
pub const MSG_DURABLE: u8 = 100;
/// Tag of Mapline's refusal notice (server → client, opt-in with `?acks=1`).
pub const MSG_REFUSED: u8 = 101;

/// A decoded client message.
#[derive(Debug)]
pub enum Incoming {
    /// The client's state vector: answer with what it is missing.
    SyncStep1(StateVector),
    /// Document changes (sync step 2 or update); `raw` is the update exactly as sent.
    Update { update: Update, raw: Bytes },
    /// An awareness (presence) update, to apply and relay as it came.
    Awareness(AwarenessUpdate),
    /// The client asks for everyone's awareness state.
    AwarenessQuery,
    /// An auth message; y-websocket clients never send one and the server ignores it.
    Auth,
}

/// Why a client message was refused. Each maps to one close code (see `conn::CloseCode`).
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("unknown message type {0}")]
    UnknownTag(u8),
    #[error("update cannot be decoded: {0}")]
    BadUpdate(String),
    #[error("{0}")]
    TooLarge(String),
}

/// Decodes one client message: exactly one y-protocols message per WebSocket message, as
/// y-websocket sends them; trailing bytes are refused rather than guessed at. The outer framing
/// is read here so that trailing bytes can be seen; the payloads are decoded by yrs.
pub fn decode(frame: &Bytes) -> Result<Incoming, ProtocolError> {
    let malformed = |e: yrs::encoding::read::Error| ProtocolError::Malformed(e.to_string());
    let mut cursor = Cursor::new(frame);
    let tag: u8 = cursor.read_var().map_err(malformed)?;
    let incoming = match tag {
        MSG_SYNC => {
            let kind: u8 = cursor.read_var().map_err(malformed)?;
            let payload = cursor.read_buf().map_err(malformed)?;
            match kind {
                MSG_SYNC_STEP_1 => {
                    counts_fit(payload, 1).map_err(ProtocolError::Malformed)?;
                    let sv = guarded(|| StateVector::decode_v1(payload))
                        .map_err(ProtocolError::Malformed)?
                        .map_err(malformed)?;
                    Incoming::SyncStep1(sv)
                }
                MSG_SYNC_STEP_2 | MSG_SYNC_UPDATE => {
                    counts_fit(payload, 2).map_err(ProtocolError::BadUpdate)?;
                    let update = guarded(|| Update::decode_v1(payload))
                        .map_err(ProtocolError::BadUpdate)?
                        .map_err(|e| ProtocolError::BadUpdate(e.to_string()))?;
                    Incoming::Update {
                        update,
                        raw: frame.slice_ref(payload),
                    }
                }
                other => {
                    return Err(ProtocolError::Malformed(format!(
                        "unknown sync message type {other}"
                    )));
                }
            }
        }
        MSG_AWARENESS => {
            let payload = cursor.read_buf().map_err(malformed)?;
            if payload.len() > MAX_AWARENESS_MESSAGE_BYTES {
                return Err(ProtocolError::TooLarge(format!(
                    "awareness message of {} bytes, over the limit of {MAX_AWARENESS_MESSAGE_BYTES}",
                    payload.len()
                )));
            }
            counts_fit(payload, 1).map_err(ProtocolError::Malformed)?;
            let update = guarded(|| AwarenessUpdate::decode_v1(payload))
                .map_err(ProtocolError::Malformed)?
                .map_err(malformed)?;
            check_awareness_states(&update)?;
            Incoming::Awareness(update)
        }
        MSG_QUERY_AWARENESS => Incoming::AwarenessQuery,
        MSG_AUTH => {
            // Whatever an auth message carries, the server neither needs nor checks it.
            cursor.next = frame.len();
            Incoming::Auth
        }
        other => return Err(ProtocolError::UnknownTag(other)),
    };
    if cursor.has_content() {
        return Err(ProtocolError::Malformed(format!(
            "{} trailing bytes after the message",
            frame.len() - cursor.next
        )));
    }
    Ok(incoming)
}

/// Every awareness state must be a JSON object (or `null`, a removal) of bounded size: clients
/// parse what is relayed to them, and one that cannot stops processing the connection.
fn check_awareness_states(update: &AwarenessUpdate) -> Result<(), ProtocolError> {
    for (client, entry) in &update.clients {
        if entry.json.len() > MAX_AWARENESS_STATE_BYTES {
            return Err(ProtocolError::TooLarge(format!(
                "awareness state of client {client} is {} bytes, over the limit of {MAX_AWARENESS_STATE_BYTES}",
                entry.json.len()
            )));
        }
        match serde_json::from_str::<serde_json::Value>(&entry.json) {
            Ok(serde_json::Value::Object(_) | serde_json::Value::Null) => {}
            Ok(_) => {
                return Err(ProtocolError::Malformed(format!(
                    "awareness state of client {client} is not a JSON object"
                )));
            }
            Err(_) => {
                return Err(ProtocolError::Malformed(format!(
                    "awareness state of client {client} is not JSON"
                )));
            }
        }
    }
    Ok(())
}

/// Checks the element counts a payload opens with (its first `counts` varints: an update's
/// client count and its first client's block count; a state vector's or an awareness update's
/// client count) against the bytes that follow: every element takes at least one byte. yrs
/// reserves memory for a declared count before reading the elements, so a few bytes declaring
/// millions would otherwise cost gigabytes of (briefly) reserved memory per message.
fn counts_fit(payload: &[u8], counts: usize) -> Result<(), String> {
    let mut cursor = Cursor::new(payload);
    for _ in 0..counts {
        let Ok(count) = cursor.read_var::<u32>() else {
            // Not even a count: the decoder reports it properly.
            return Ok(());
        };
        let left = payload.len() - cursor.next;
        if count as usize > left {
            return Err(format!("declares {count} elements in {left} bytes"));
        }
        if count == 0 {
            // Nothing follows that the next count would belong to.
            return Ok(());
        }
    }
    Ok(())
}

/// Runs a decoder over untrusted bytes, turning a panic inside it into an error: a hostile frame
/// must cost its sender the connection, never the server.
fn guarded<T>(decode: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .map_err(|_| "decoder panicked".to_owned())
}

/// Yjs client ids whose insertions an update carries.
pub fn client_ids(update: &Update) -> Vec<u64> {
    update
        .state_vector_lower()
        .iter()
        .map(|(client, _)| client.get())
        .collect()
}

fn encode(message: &Message) -> Bytes {
    Bytes::from(message.encode_v1())
}

/// Sync step 1: the server's state vector, so the client sends what the server is missing.
pub fn sync_step1(sv: StateVector) -> Bytes {
    encode(&Message::Sync(SyncMessage::SyncStep1(sv)))
}

/// Sync step 2: what the client is missing.
pub fn sync_step2(update: Vec<u8>) -> Bytes {
    encode(&Message::Sync(SyncMessage::SyncStep2(update)))
}

/// A durable update, relayed to the other clients.
pub fn update(raw: &[u8]) -> Bytes {
    // Written directly: this runs once per durable update, on the hot path.
    let mut encoder = EncoderV1::new();
    encoder.write_var(MSG_SYNC);
    encoder.write_var(MSG_SYNC_UPDATE);
    encoder.write_buf(raw);
    Bytes::from(encoder.to_vec())
}

/// An awareness message.
pub fn awareness(update: AwarenessUpdate) -> Bytes {
    encode(&Message::Awareness(update))
}

/// Durability acknowledgement: `durable` update messages from this connection are now durable
/// (counted from the connection's start), and `sv` is the durable state vector of the plan.
pub fn durable_ack(durable: u64, sv: &StateVector) -> Bytes {
    let mut encoder = EncoderV1::new();
    encoder.write_var(MSG_DURABLE);
    encoder.write_var(durable);
    encoder.write_buf(sv.encode_v1());
    Bytes::from(encoder.to_vec())
}

/// Refusal notice: the connection's last update was not applied, and why.
pub fn refused(reason: &str) -> Bytes {
    let mut encoder = EncoderV1::new();
    encoder.write_var(MSG_REFUSED);
    encoder.write_string(reason);
    Bytes::from(encoder.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, Map, ReadTxn, Transact};

    fn some_update() -> Vec<u8> {
        let doc = Doc::new();
        let meta = doc.get_or_insert_map("meta");
        meta.insert(&mut doc.transact_mut(), "title", "Plan");
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    fn check(frame: &[u8], expected: &str) {
        let got = match decode(&Bytes::copy_from_slice(frame)) {
            Ok(Incoming::SyncStep1(_)) => "step1".to_owned(),
            Ok(Incoming::Update { .. }) => "update".to_owned(),
            Ok(Incoming::Awareness(_)) => "awareness".to_owned(),
            Ok(Incoming::AwarenessQuery) => "query".to_owned(),
            Ok(Incoming::Auth) => "auth".to_owned(),
            Err(ProtocolError::Malformed(_)) => "malformed".to_owned(),
            Err(ProtocolError::UnknownTag(t)) => format!("unknown {t}"),
            Err(ProtocolError::BadUpdate(_)) => "bad update".to_owned(),
            Err(ProtocolError::TooLarge(_)) => "too large".to_owned(),
        };
        assert_eq!(got, expected, "frame {frame:?}");
    }

    #[test]
    fn each_message_kind_decodes_or_is_refused_with_its_reason() {
        let update = some_update();
        let mut step2 = vec![0, 1];
        step2.push(update.len() as u8);
        step2.extend_from_slice(&update);
        let mut upd = step2.clone();
        upd[1] = 2;

        check(&sync_step1(StateVector::default()), "step1");
        check(&step2, "update");
        check(&upd, "update");
        check(&[3], "query");
        check(&[1, 1, 0], "awareness");
        check(&[], "malformed");
        check(&[0], "malformed");
        check(&[0, 9, 0], "malformed"); // unknown sync sub-type
        check(&[0, 0, 0xff, 0xff, 0xff], "malformed"); // truncated varint
        check(&[0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f], "malformed"); // huge length prefix
        check(&[0, 2, 3, 9, 9, 9], "bad update");
        check(&[7, 0], "unknown 7");
        check(&[3, 0], "malformed"); // trailing byte
    }

    fn awareness_frame(json: &str) -> Vec<u8> {
        let update = AwarenessUpdate {
            clients: std::collections::HashMap::from([(
                yrs::block::ClientID::new(5),
                yrs::sync::awareness::AwarenessUpdateEntry {
                    clock: 1,
                    json: json.into(),
                },
            )]),
        };
        awareness(update).to_vec()
    }

    #[test]
    fn awareness_states_must_be_bounded_json_objects_or_removals() {
        check(&awareness_frame(r#"{"user":{"name":"Ana"}}"#), "awareness");
        check(&awareness_frame("null"), "awareness");
        check(&awareness_frame("{not json"), "malformed");
        check(&awareness_frame("[1,2]"), "malformed");
        check(&awareness_frame("\"text\""), "malformed");
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_AWARENESS_STATE_BYTES));
        check(&awareness_frame(&big), "too large");
        let mut clients = std::collections::HashMap::new();
        for client in 0..8 {
            clients.insert(
                yrs::block::ClientID::new(client),
                yrs::sync::awareness::AwarenessUpdateEntry {
                    clock: 1,
                    json: format!(r#"{{"pad":"{}"}}"#, "x".repeat(10_000)).into(),
                },
            );
        }
        check(&awareness(AwarenessUpdate { clients }), "too large");
    }

    #[test]
    fn counts_larger_than_the_bytes_that_follow_are_refused_before_any_reservation() {
        // Found by the sync_messages fuzz target: a few bytes declaring ~2^28 clients made yrs
        // reserve gigabytes before failing to read them.
        let huge = [0xff, 0xff, 0xff, 0xff, 0x01]; // varint 0x1fffffff
        let frame = |tag: &[u8], payload: &[u8]| {
            let mut f = tag.to_vec();
            f.push(payload.len() as u8);
            f.extend_from_slice(payload);
            f
        };
        let update = |clients: &[u8], rest: &[u8]| [clients, rest].concat();
        let cases = [
            (
                frame(&[0, 2], &update(&huge, &[1, 2, 3])),
                "update claiming millions of clients",
            ),
            (
                frame(&[0, 1], &update(&[1], &update(&huge, &[5, 0]))),
                "first client claiming millions of blocks",
            ),
        ];
        for (bytes, name) in cases {
            match decode(&Bytes::from(bytes)) {
                Err(ProtocolError::BadUpdate(reason)) => {
                    assert!(reason.contains("declares"), "{name}: {reason}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        for tag in [[0u8, 0].as_slice(), &[1]] {
            match decode(&Bytes::from(frame(tag, &update(&huge, &[1, 2])))) {
                Err(ProtocolError::Malformed(reason)) => {
                    assert!(reason.contains("declares"), "{reason}")
                }
                other => panic!("tag {tag:?}: {other:?}"),
            }
        }
        // The same shapes with honest counts still decode.
        check(&frame(&[0, 0], &[1, 5, 1]), "step1");
        check(&[1, 1, 0], "awareness");
    }

    #[test]
    fn client_ids_name_the_authors_of_insertions() {
        let doc = Doc::with_client_id(4242);
        doc.get_or_insert_map("meta")
            .insert(&mut doc.transact_mut(), "a", "b");
        let raw = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let update = Update::decode_v1(&raw).unwrap();
        assert_eq!(client_ids(&update), [4242]);
        assert!(!update.is_empty());
        assert!(Update::decode_v1(&[0, 0]).unwrap().is_empty());
    }

    #[test]
    fn relayed_updates_are_encoded_as_yrs_encodes_them() {
        let raw = some_update();
        let expected = Message::Sync(SyncMessage::Update(raw.clone())).encode_v1();
        assert_eq!(update(&raw).as_ref(), expected.as_slice());
    }

    #[test]
    fn durable_ack_round_trips_its_fields() {
        let mut sv = StateVector::default();
        sv.set_max(yrs::block::ClientID::new(5), 17);
        let frame = durable_ack(3, &sv);
        let mut decoder = yrs::updates::decoder::DecoderV1::new(Cursor::new(&frame));
        assert_eq!(decoder.read_var::<u8>().unwrap(), MSG_DURABLE);
        assert_eq!(decoder.read_var::<u64>().unwrap(), 3);
        let decoded = StateVector::decode_v1(decoder.read_buf().unwrap()).unwrap();
        assert_eq!(decoded, sv);
    }
}
