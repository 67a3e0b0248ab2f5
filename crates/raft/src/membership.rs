//! Group membership: the change requests, the applied membership, and how member meta is stored
//! and carried in snapshots.
//!
//! Member meta is opaque bytes per member (Skiff's control plane keeps JSON with the node's name,
//! peer address and API URL there). It lives in the raft tables beside the conf state and changes
//! in the same transaction, and every raft snapshot carries it in its descriptor
//! ([`crate::snapshot::SnapshotDescriptor`]). Releases before streamed snapshots carried it
//! inline with the state machine's bytes; that format is still read:
//!
//! ```text
//! inline data = [magic "SKFS"][version: u8 = 1][members][machine len: u64][machine bytes]
//! members     = [count: u32]{ [id: u64][len: u32][meta bytes; len] } × count
//! ```
//!
//! All integers are little-endian.

use std::collections::BTreeMap;

use crate::RaftError;

/// A requested change of the group's membership, for [`crate::RaftHandle::change_membership`].
///
/// One change is in flight at a time; each is a single raft configuration change (no joint
/// consensus is needed for one node at a time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Adds a node as a learner (receives the log, does not vote). `meta` is opaque bytes stored
    /// with the member (the control plane puts JSON with the node's name, peer address and API
    /// URL there).
    AddLearner {
        /// The new node's raft id; must not be a member yet, and not 0.
        id: u64,
        /// Opaque bytes stored with the member.
        meta: Vec<u8>,
    },
    /// Promotes a learner to voter.
    Promote {
        /// The learner to promote.
        id: u64,
    },
    /// Removes a voter or learner.
    Remove {
        /// The member to remove.
        id: u64,
    },
    /// Replaces the meta stored with an existing member (its role does not change).
    SetMeta {
        /// The member whose meta changes.
        id: u64,
        /// The new opaque bytes.
        meta: Vec<u8>,
    },
}

impl MembershipChange {
    /// The node the change is about.
    pub fn id(&self) -> u64 {
        match self {
            MembershipChange::AddLearner { id, .. }
            | MembershipChange::Promote { id }
            | MembershipChange::Remove { id }
            | MembershipChange::SetMeta { id, .. } => *id,
        }
    }
}

/// The applied membership: voters, learners and each member's meta.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    /// The voting members, sorted.
    pub voters: Vec<u64>,
    /// The learners (replicated to, not voting), sorted.
    pub learners: Vec<u64>,
    /// The meta of every member, voters and learners (empty bytes when none was given).
    pub meta: BTreeMap<u64, Vec<u8>>,
}

impl Membership {
    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: u64) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Builds the membership from a conf state and the stored meta (members without stored meta
    /// get empty bytes; meta of non-members is left out).
    pub(crate) fn from_parts(cs: &raft::eraftpb::ConfState, meta: &BTreeMap<u64, Vec<u8>>) -> Self {
        let mut voters = cs.voters.clone();
        voters.sort_unstable();
        let mut learners = cs.learners.clone();
        learners.sort_unstable();
        let meta = voters
            .iter()
            .chain(&learners)
            .map(|id| (*id, meta.get(id).cloned().unwrap_or_default()))
            .collect();
        Membership {
            voters,
            learners,
            meta,
        }
    }

    /// Checks `change` against this (applied) membership; `Err` carries the refusal message.
    pub(crate) fn check(&self, change: &MembershipChange) -> Result<(), String> {
        let id = change.id();
        let role = if self.voters.contains(&id) {
            "a voter"
        } else if self.learners.contains(&id) {
            "a learner"
        } else {
            "not a member"
        };
        match change {
            MembershipChange::AddLearner { .. } if id == 0 => {
                Err("node id 0 is reserved; pick another id".to_string())
            }
            MembershipChange::AddLearner { .. } if self.contains(id) => Err(format!(
                "node {id} is already {role}; remove it first or pick another id"
            )),
            MembershipChange::Promote { .. } if !self.learners.contains(&id) => Err(format!(
                "node {id} is {role}, not a learner; add it as a learner first"
            )),
            MembershipChange::Remove { .. } | MembershipChange::SetMeta { .. } if !self.contains(id) => {
                Err(format!("node {id} is not a member; see the member list"))
            }
            MembershipChange::Remove { .. } if self.voters == [id] => Err(format!(
                "node {id} is the last voter; removing it would leave the group without a quorum"
            )),
            _ => Ok(()),
        }
    }
}

/// Member meta by raft id.
pub(crate) type MemberMeta = BTreeMap<u64, Vec<u8>>;

const MAGIC: &[u8; 4] = b"SKFS";
const VERSION: u8 = 1;

/// Encodes the member meta map.
pub(crate) fn encode_members(members: &BTreeMap<u64, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for (id, meta) in members {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(meta);
    }
    out
}

/// Decodes a member meta map, returning it and the bytes after it.
pub(crate) fn decode_members(mut rest: &[u8]) -> Result<(MemberMeta, &[u8]), String> {
    let count = take::<4>(&mut rest)?;
    let count = u32::from_le_bytes(count) as usize;
    if count > rest.len() / 12 {
        return Err(format!(
            "member list claims {count} members in {} bytes",
            rest.len()
        ));
    }
    let mut members = BTreeMap::new();
    for _ in 0..count {
        let id = u64::from_le_bytes(take::<8>(&mut rest)?);
        // The encoder writes ids in increasing order; anything else (a repeated id) would not
        // read back as it was written.
        if let Some((&last, _)) = members.last_key_value()
            && id <= last
        {
            return Err(format!("member {id} follows member {last}: ids must increase"));
        }
        let len = u32::from_le_bytes(take::<4>(&mut rest)?) as usize;
        if len > rest.len() {
            return Err(format!("meta of member {id} runs past the end ({len} bytes)"));
        }
        let (meta, tail) = rest.split_at(len);
        members.insert(id, meta.to_vec());
        rest = tail;
    }
    Ok((members, rest))
}

fn take<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], String> {
    let (head, tail) = rest
        .split_first_chunk::<N>()
        .ok_or_else(|| format!("truncated: {N} more bytes expected"))?;
    *rest = tail;
    Ok(*head)
}

/// Wraps the state machine's snapshot bytes together with the member meta, inline (the format of
/// older releases, which tests send).
#[cfg(test)]
pub(crate) fn wrap_snapshot(members: &BTreeMap<u64, Vec<u8>>, machine: &[u8]) -> Vec<u8> {
    let members = encode_members(members);
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + members.len() + 8 + machine.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&members);
    out.extend_from_slice(&(machine.len() as u64).to_le_bytes());
    out.extend_from_slice(machine);
    out
}

/// Splits inline raft snapshot data (of an older release) into the member meta and the state
/// machine's bytes.
///
/// # Errors
///
/// [`RaftError::Storage`] when the data is not inline snapshot data.
pub(crate) fn unwrap_snapshot(data: &[u8]) -> Result<(MemberMeta, &[u8]), RaftError> {
    let bad = |why: String| RaftError::Storage(format!("raft snapshot data is malformed: {why}"));
    let rest = data
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| bad("it does not start with the snapshot magic".to_string()))?;
    let (&version, rest) = rest.split_first().ok_or_else(|| bad("no version".to_string()))?;
    if version != VERSION {
        return Err(bad(format!("unknown version {version}")));
    }
    let (members, mut rest) = decode_members(rest).map_err(bad)?;
    let len = u64::from_le_bytes(take::<8>(&mut rest).map_err(bad)?);
    if len != rest.len() as u64 {
        return Err(bad(format!(
            "machine data of {} bytes where {len} were announced",
            rest.len()
        )));
    }
    Ok((members, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_wrapping_round_trips_and_rejects_junk() {
        let members = BTreeMap::from([(1, b"{\"name\":\"a\"}".to_vec()), (7, Vec::new())]);
        let data = wrap_snapshot(&members, b"machine");
        let (m, machine) = unwrap_snapshot(&data).unwrap();
        assert_eq!((m, machine), (members.clone(), b"machine".as_slice()));
        assert!(unwrap_snapshot(b"machine").is_err());
        assert!(unwrap_snapshot(&data[..data.len() - 1]).is_err());
        let encoded = encode_members(&members);
        let (m, rest) = decode_members(&encoded).unwrap();
        assert_eq!((m, rest), (members, &[][..]));
        // Found by the snapshot_decode fuzz target: a repeated id decoded (the map kept one), so
        // the data did not read back as it was written.
        let mut twice = 2u32.to_le_bytes().to_vec();
        for _ in 0..2 {
            twice.extend(7u64.to_le_bytes());
            twice.extend(0u32.to_le_bytes());
        }
        assert!(decode_members(&twice).unwrap_err().contains("ids must increase"));
    }

    #[test]
    fn checks_name_the_problem() {
        let cs = raft::eraftpb::ConfState {
            voters: vec![2, 1],
            learners: vec![3],
            ..Default::default()
        };
        let m = Membership::from_parts(&cs, &BTreeMap::from([(1, b"one".to_vec()), (9, vec![])]));
        assert_eq!(m.voters, vec![1, 2]);
        assert_eq!(m.meta.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(m.meta[&1], b"one");
        let refused = |c: MembershipChange| m.check(&c).unwrap_err();
        assert!(refused(MembershipChange::AddLearner { id: 2, meta: vec![] }).contains("already a voter"));
        assert!(refused(MembershipChange::Promote { id: 1 }).contains("not a learner"));
        assert!(refused(MembershipChange::Remove { id: 4 }).contains("not a member"));
        assert!(m.check(&MembershipChange::Promote { id: 3 }).is_ok());
        assert!(m.check(&MembershipChange::Remove { id: 1 }).is_ok());
        let alone = Membership::from_parts(
            &raft::eraftpb::ConfState {
                voters: vec![1],
                ..Default::default()
            },
            &BTreeMap::new(),
        );
        assert!(
            alone
                .check(&MembershipChange::Remove { id: 1 })
                .unwrap_err()
                .contains("last voter")
        );
    }
}
