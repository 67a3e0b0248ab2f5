//! Entry points for Skiff's fuzz targets (`fuzz/`, see `docs/fuzzing.md`): the peer port's own
//! decoders, run over bytes in memory. Not part of the crate's API; hidden from its docs.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::transport::frame::{self, Reassembler};
use crate::transport::join::JoinReply;
use crate::{JoinRequest, JoinResponse};

/// The raft messages a control node receives from a peer connection carrying `bytes`, decoded
/// as the peer port decodes them: frames read with its limits, chunked messages reassembled up
/// to [`skiff_raft::MAX_MESSAGE_BYTES`], each message parsed as a protobuf raft `Message`.
///
/// # Errors
/// The reason the peer port would close the connection, at the first frame or message it
/// refuses.
///
/// # Panics
/// Never: reading from memory never waits, so the decoder's future completes when first polled.
pub fn decode_peer_stream(mut bytes: &[u8]) -> Result<Vec<Message>, String> {
    let mut chunks = Reassembler::new(skiff_raft::MAX_MESSAGE_BYTES);
    let mut messages = Vec::new();
    while let Some(encoded) = complete(frame::read_message(
        &mut bytes,
        &mut chunks,
        &mut None,
        |_| Ok(()),
    ))? {
        let msg = Message::parse_from_bytes(&encoded).map_err(|e| format!("malformed raft message: {e}"))?;
        messages.push(msg);
    }
    Ok(messages)
}

/// The bytes a peer connection carries for `messages`, framed as the transport sends them.
/// A message that cannot be encoded is left out, as the transport drops it.
pub fn encode_peer_stream(messages: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for msg in messages {
        if let Ok(encoded) = msg.write_to_bytes() {
            frame::put_message(&mut out, &encoded);
        }
    }
    out.to_vec()
}

/// Decodes the payload of a `JOIN_REQUEST` frame as the peer port does.
///
/// # Errors
/// Why the request is malformed.
pub fn decode_join_request(payload: &[u8]) -> Result<JoinRequest, String> {
    serde_json::from_slice(payload).map_err(|e| format!("malformed join request: {e}"))
}

/// Decodes the payload of a `JOIN_RESPONSE` frame as a joining node does: the response, or the
/// reason the control node refused.
///
/// # Errors
/// Why the response is malformed.
pub fn decode_join_reply(payload: &[u8]) -> Result<Result<JoinResponse, String>, String> {
    match serde_json::from_slice(payload) {
        Ok(JoinReply::Ok(resp)) => Ok(Ok(resp)),
        Ok(JoinReply::Err(reason)) => Ok(Err(reason)),
        Err(e) => Err(format!("malformed join response: {e}")),
    }
}

/// Runs a future that never waits (it reads from memory) to completion.
fn complete<F: Future>(fut: F) -> F::Output {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("a decoder reading from memory never waits"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_round_trips_and_garbage_is_refused() {
        let mut heartbeat = Message::default();
        (heartbeat.from, heartbeat.to, heartbeat.term) = (1, 2, 7);
        let mut append = heartbeat.clone();
        append.mut_entries().push(Default::default());
        append.mut_entries()[0].data = vec![7; 100].into();
        let bytes = encode_peer_stream(&[heartbeat.clone(), append.clone()]);
        assert_eq!(decode_peer_stream(&bytes).unwrap(), vec![heartbeat, append]);
        assert!(decode_peer_stream(&[]).unwrap().is_empty());
        let err = decode_peer_stream(&[16, 0, 0, 0, 2, b'{', b'}']).unwrap_err();
        assert!(
            err.contains("joining is for nodes without a certificate"),
            "{err}"
        );
        let err = decode_peer_stream(&[2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 4, 1]).unwrap_err();
        assert!(err.contains("middle of a chunked message"), "{err}");
        assert_eq!(decode_join_reply(br#"{"err":"no"}"#), Ok(Err("no".to_owned())));
        assert!(decode_join_request(b"{}").is_err());
    }
}
