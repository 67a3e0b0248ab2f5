//! `skiff-plugin-protocol`: every request and answer an agent and a runtime plugin exchange,
//! deserialized from the same JSON bytes. Nothing may panic, and whatever deserializes survives
//! serialization unchanged (both sides use these types, so what one writes the other must read
//! back as it was).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use skiff_plugin_protocol::{
    ContainerInfo, ContainerSpec, ContainerState, ErrorAnswer, ErrorCode, Handshake, ImageRequest,
    StateAnswer, StopRequest,
};

/// If `data` is a `T`, it must survive JSON.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let json = serde_json::to_vec(&value).expect("a protocol value serializes");
    let again: T = serde_json::from_slice(&json).expect("a serialized protocol value deserializes");
    assert_eq!(
        again,
        value,
        "{} changed through JSON",
        std::any::type_name::<T>()
    );
}

fuzz_target!(|data: &[u8]| {
    // Requests (agent → plugin).
    round_trip::<ContainerSpec>(data);
    round_trip::<ImageRequest>(data);
    round_trip::<StopRequest>(data);
    // Answers (plugin → agent).
    round_trip::<Handshake>(data);
    round_trip::<StateAnswer>(data);
    round_trip::<ContainerInfo>(data);
    round_trip::<Vec<ContainerInfo>>(data);
    round_trip::<ContainerState>(data);
    round_trip::<ErrorAnswer>(data);
    round_trip::<ErrorCode>(data);
});
