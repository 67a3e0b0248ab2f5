//! The Raft log payload.
use serde::{Deserialize, Serialize};
use skiff_api::{CloudEvent, Kind, Object};

use crate::error::StateError;
use crate::topics::Outcome;

/// The version written into every encoded [`Command`]. A node refuses to apply a command of a newer
/// version than it knows (it must be upgraded first) instead of guessing.
pub const COMMAND_VERSION: u32 = 1;

/// A batch of operations applied all-or-nothing at one point of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Payload version, [`COMMAND_VERSION`].
    pub v: u32,
    /// RFC 3339 time chosen by the proposer; `apply` uses it for timestamps instead of a clock.
    pub now: String,
    /// The operations, applied in order.
    pub ops: Vec<Op>,
}

/// One change to one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// Create an object that must not exist yet.
    Create {
        /// The object; server-owned metadata is filled in.
        object: Object,
        /// The uid to give it (chosen by the proposer).
        uid: String,
    },
    /// Create the object, or replace the spec, labels and annotations of the existing one (keeping its
    /// status). A `resourceVersion` in the object must match the stored one.
    Apply {
        /// The desired object.
        object: Object,
        /// The uid to give it if it is created.
        uid: String,
    },
    /// Replace an existing object's spec, labels and annotations (status is kept).
    Replace {
        /// The object; a `resourceVersion` in it must match the stored one.
        object: Object,
    },
    /// Replace only the status of an existing object.
    UpdateStatus {
        /// The object whose status is taken; a `resourceVersion` in it must match the stored one.
        object: Object,
    },
    /// Delete an object (a namespace takes everything in it along).
    Delete {
        /// Kind.
        kind: Kind,
        /// Namespace (for namespaced kinds).
        namespace: Option<String>,
        /// Name.
        name: String,
        /// Delete only if the stored object has this uid (it was not re-created meanwhile).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
        /// Delete only if the stored object is at this revision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource_version: Option<u64>,
    },
    /// Append an event to a topic (created on first use).
    Publish {
        /// Namespace.
        namespace: String,
        /// Topic.
        topic: String,
        /// The event (its `id` chosen by the proposer when the client gave none).
        event: CloudEvent,
        /// Idempotency key: a second publish with it within a day stores nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Record what became of deliveries to one function's subscription.
    Ack {
        /// Namespace.
        namespace: String,
        /// Topic.
        topic: String,
        /// Subscribing function.
        function: String,
        /// The subscription's new cursor: every event before it is accounted for (by this or an
        /// earlier ack). A lower one than stored is ignored.
        cursor: u64,
        /// Per-event results.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        outcomes: Vec<Outcome>,
    },
    /// Set a key of a key-value store (the store is created by its first write).
    KvSet {
        /// Namespace.
        namespace: String,
        /// Store.
        store: String,
        /// Key.
        key: String,
        /// The value (base64 in the log).
        #[serde(with = "base64_bytes")]
        value: Vec<u8>,
    },
    /// Delete a key of a key-value store (nothing happens when it is not there).
    KvDelete {
        /// Namespace.
        namespace: String,
        /// Store.
        store: String,
        /// Key.
        key: String,
    },
    /// Add `delta` to the decimal integer a key holds (0 when absent); the new value is returned.
    KvIncrement {
        /// Namespace.
        namespace: String,
        /// Store.
        store: String,
        /// Key.
        key: String,
        /// What to add (may be negative).
        delta: i64,
    },
}

impl Command {
    /// A command of the current version.
    pub fn new(now: impl Into<String>, ops: Vec<Op>) -> Self {
        Command {
            v: COMMAND_VERSION,
            now: now.into(),
            ops,
        }
    }

    /// The bytes proposed to Raft.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses proposed bytes.
    ///
    /// # Errors
    /// [`StateError::Decode`] for bytes that are not a command, or of a newer version.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let c: Command = serde_json::from_slice(bytes).map_err(|e| StateError::Decode {
            message: e.to_string(),
        })?;
        if c.v > COMMAND_VERSION {
            return Err(StateError::Decode {
                message: format!(
                    "command version {} is newer than this node understands ({COMMAND_VERSION}): upgrade this node",
                    c.v
                ),
            });
        }
        Ok(c)
    }
}

/// `serde(with)` for byte values as base64 text in commands and exports.
pub(crate) mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `command_decode` fuzz target (its input is kept in
    /// `fuzz/regressions/command_decode/`): serde_json's default float parsing may round a long
    /// number to a neighbouring double, so a command changed through encode/decode, and a
    /// snapshot or backup written from the stored object could hold another value than the
    /// members that applied the entry. The workspace enables serde_json's `float_roundtrip`.
    #[test]
    fn numbers_survive_encode_and_decode() {
        let bytes = br#"{"v":1,"now":"2026-01-01T00:00:00Z","ops":[{"op":"publish","namespace":"shop","topic":"orders","event":{"data":{"n":77777777777777777777777777777777777777777.77777777777777777777777777777777777777777712}}}]}"#;
        let command = Command::decode(bytes).expect("decodes");
        let again = Command::decode(&command.encode()).expect("decodes again");
        assert_eq!(again, command);
        assert_eq!(again.encode(), command.encode());
    }
}
