//! What a raft snapshot's `data` holds: a small descriptor of the file with the machine's bytes.
//!
//! ```text
//! descriptor = [magic "SKFD"][version: u8 = 1][members][size: u64][sha256: 32 bytes]
//! members    = [count: u32]{ [id: u64][len: u32][meta bytes; len] } × count
//! ```
//!
//! Releases before streamed snapshots put the machine's bytes inline instead (magic `SKFS`, see
//! [`crate::membership`]); such data is still read, from a stored snapshot or an older leader.
//! All integers are little-endian.

use std::collections::BTreeMap;

use crate::RaftError;
use crate::membership::{MemberMeta, decode_members, encode_members};

const MAGIC: &[u8; 4] = b"SKFD";
const VERSION: u8 = 1;

/// The descriptor a raft snapshot message carries: the member meta, and the size and sha256 of
/// the snapshot file that holds the state machine's bytes.
///
/// The file itself travels beside the message (see [`crate::transport::Transport::send_snapshot`])
/// and is named after the snapshot's term, index and digest, so a descriptor names exactly one
/// file content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDescriptor {
    /// Every member's opaque meta (see [`crate::Membership::meta`]).
    pub members: BTreeMap<u64, Vec<u8>>,
    /// Bytes in the snapshot file.
    pub size: u64,
    /// The sha256 of the snapshot file.
    pub sha256: [u8; 32],
}

impl SnapshotDescriptor {
    /// The bytes for a raft snapshot's `data`.
    pub fn encode(&self) -> Vec<u8> {
        let members = encode_members(&self.members);
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + members.len() + 8 + 32);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&members);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.sha256);
        out
    }

    /// Reads a descriptor from a raft snapshot's `data`.
    ///
    /// # Errors
    ///
    /// [`RaftError::InvalidMessage`] naming what is malformed (inline snapshot data of an older
    /// release included).
    pub fn decode(data: &[u8]) -> Result<Self, RaftError> {
        match SnapshotData::parse(data)? {
            SnapshotData::Descriptor(d) => Ok(d),
            SnapshotData::Inline { .. } => Err(RaftError::InvalidMessage(
                "the snapshot carries its data inline (an older release sent it), not a descriptor".into(),
            )),
        }
    }

    /// The digest as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A raft snapshot's `data`, in either format.
#[derive(Debug)]
pub(crate) enum SnapshotData<'a> {
    /// The current format: the machine's bytes are in a file.
    Descriptor(SnapshotDescriptor),
    /// The format of older releases: the machine's bytes inline.
    Inline { members: MemberMeta, machine: &'a [u8] },
}

impl<'a> SnapshotData<'a> {
    /// Parses `data` (never panics, never allocates more than `data` holds).
    pub(crate) fn parse(data: &'a [u8]) -> Result<Self, RaftError> {
        let bad = |why: String| RaftError::InvalidMessage(format!("raft snapshot data is malformed: {why}"));
        if data.starts_with(b"SKFS") {
            let (members, machine) = crate::membership::unwrap_snapshot(data)?;
            return Ok(SnapshotData::Inline { members, machine });
        }
        let rest = data
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("it starts with neither the descriptor nor the inline magic".into()))?;
        let (&version, rest) = rest.split_first().ok_or_else(|| bad("no version".into()))?;
        if version != VERSION {
            return Err(bad(format!(
                "descriptor version {version} is unknown (this release reads {VERSION}); upgrade this member"
            )));
        }
        let (members, rest) = decode_members(rest).map_err(bad)?;
        if rest.len() != 8 + 32 {
            return Err(bad(format!(
                "{} bytes follow the member list where 40 belong",
                rest.len()
            )));
        }
        let (size, sha) = rest.split_at(8);
        let size = u64::from_le_bytes(size.try_into().map_err(|_| bad("no size".into()))?);
        let sha256: [u8; 32] = sha.try_into().map_err(|_| bad("no digest".into()))?;
        Ok(SnapshotData::Descriptor(SnapshotDescriptor {
            members,
            size,
            sha256,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip_and_junk_is_refused() {
        let d = SnapshotDescriptor {
            members: BTreeMap::from([(1, b"{\"name\":\"a\"}".to_vec()), (7, Vec::new())]),
            size: 300 << 20,
            sha256: [9; 32],
        };
        let data = d.encode();
        assert_eq!(SnapshotDescriptor::decode(&data).unwrap(), d);
        for cut in 0..data.len() {
            assert!(SnapshotDescriptor::decode(&data[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(SnapshotDescriptor::decode(&longer).is_err());
        let mut newer = data.clone();
        newer[4] = 2;
        let err = SnapshotDescriptor::decode(&newer).unwrap_err().to_string();
        assert!(err.contains("upgrade"), "{err}");
        let inline = crate::membership::wrap_snapshot(&d.members, b"machine");
        assert!(SnapshotDescriptor::decode(&inline).is_err());
        match SnapshotData::parse(&inline).unwrap() {
            SnapshotData::Inline { members, machine } => {
                assert_eq!((members, machine), (d.members.clone(), b"machine".as_slice()));
            }
            SnapshotData::Descriptor(_) => panic!("inline data parsed as a descriptor"),
        }
        assert_eq!(d.sha256_hex(), "09".repeat(32));
    }
}
