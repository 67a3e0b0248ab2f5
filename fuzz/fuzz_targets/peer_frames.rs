//! The peer port's decoders (`skiff_peer::fuzzing`, which runs the transport's own frame reader,
//! chunk reassembler and protobuf decoding over bytes in memory), and the JSON payloads of the
//! join RPC. Nothing may panic; decoded raft messages framed again as the transport sends them
//! decode to the same messages; a decoded join request or response survives JSON.
//!
//! Raft messages are compared by their fields (the protobuf text form) and encoded size, not with
//! `==` or by their bytes: rust-protobuf keeps unknown fields in a hash map, so their order on the
//! wire varies, and its `==` tells an empty set of them from an absent one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protobuf::Message as _;
use raft::eraftpb::Message;
use skiff_peer::fuzzing::{decode_join_reply, decode_join_request, decode_peer_stream, encode_peer_stream};

fuzz_target!(|data: &[u8]| {
    if let Ok(messages) = decode_peer_stream(data) {
        let encoded = encode_peer_stream(&messages);
        let again = decode_peer_stream(&encoded).expect("re-framed messages decode");
        let fields = |m: &[Message]| {
            m.iter()
                .map(|m| format!("{m:?} ({} bytes)", m.compute_size()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(&again),
            fields(&messages),
            "raft messages changed through encode/decode"
        );
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
