//! The peer port's decoders (`skiff_peer::fuzzing`, which runs the transport's own frame reader,
//! chunk reassembler and protobuf decoding over bytes in memory), and the JSON payloads of the
//! join RPC. Nothing may panic; decoded raft messages framed again as the transport sends them
//! decode to messages with the same wire bytes; a decoded join request or response survives JSON.
//!
//! Raft messages are compared by their encoding, not with `==`: rust-protobuf's equality tells an
//! empty set of unknown fields from an absent one, which the wire does not carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_peer::fuzzing::{decode_join_reply, decode_join_request, decode_peer_stream, encode_peer_stream};

fuzz_target!(|data: &[u8]| {
    if let Ok(messages) = decode_peer_stream(data) {
        let encoded = encode_peer_stream(&messages);
        let again = decode_peer_stream(&encoded).expect("re-framed messages decode");
        assert_eq!(again.len(), messages.len(), "re-framed messages decode to another number of messages");
        assert_eq!(encode_peer_stream(&again), encoded, "raft messages changed through encode/decode");
    }
    if let Ok(req) = decode_join_request(data) {
        let json = serde_json::to_vec(&req).expect("a join request serializes");
        assert_eq!(
            decode_join_request(&json),
            Ok(req),
            "join request changed through JSON"
        );
    }
    if let Ok(Ok(resp)) = decode_join_reply(data) {
        let json =
            serde_json::to_vec(&serde_json::json!({ "ok": resp })).expect("a join response serializes");
        assert_eq!(
            decode_join_reply(&json),
            Ok(Ok(resp)),
            "join response changed through JSON"
        );
    }
});
