//! Driver configuration.

use std::path::PathBuf;
use std::time::Duration;

use crate::RaftError;

/// How a node runs its raft group.
///
/// [`RaftConfig::default`] is a one-member group (`id = 1`, `voters = [1]`) with a 100 ms tick,
/// which is what `skiff up` runs; clusters set `id` and `voters`. Every node sets
/// [`RaftConfig::snapshot_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// This node's raft id; never 0.
    pub id: u64,
    /// The initial voters, used only when the database is empty (bootstrap), e.g. `[1]`. Empty
    /// for a node that joins an existing group: it stays uninitialised until the leader, after
    /// [`crate::MembershipChange::AddLearner`], sends it a snapshot.
    pub voters: Vec<u64>,
    /// This node's member meta (opaque bytes, see [`crate::Membership::meta`]) recorded when a
    /// one-member group is bootstrapped; ignored otherwise (a joining node's meta comes with
    /// [`crate::MembershipChange::AddLearner`]; bootstrapping several voters records empty meta
    /// for each, so every voter starts from the same state).
    pub meta: Vec<u8>,
    /// Length of one raft tick.
    pub tick: Duration,
    /// Ticks without a leader message before a follower campaigns (randomised up to twice this).
    pub election_tick: usize,
    /// Ticks between leader heartbeats; must be smaller than `election_tick`.
    pub heartbeat_tick: usize,
    /// Most proposals framed into one log entry (one durable commit).
    pub max_batch: usize,
    /// Largest single proposal in bytes; larger ones are refused with [`RaftError::TooLarge`].
    pub max_proposal_bytes: usize,
    /// Take a snapshot (and compact the log) every this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot so slightly lagging followers need no snapshot.
    pub keep_entries: u64,
    /// The directory of this node's snapshot files (its own: e.g. `<data dir>/snapshots`, next
    /// to the redb file), created if missing. Empty in the default: it must be set.
    pub snapshot_dir: PathBuf,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            id: 1,
            voters: vec![1],
            meta: Vec::new(),
            tick: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 2,
            max_batch: 256,
            max_proposal_bytes: 1024 * 1024,
            snapshot_every: 10_000,
            keep_entries: 1_000,
            snapshot_dir: PathBuf::new(),
        }
    }
}

impl RaftConfig {
    /// Checks the values before the driver starts.
    ///
    /// # Errors
    ///
    /// [`RaftError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), RaftError> {
        let bad = |what: &str| Err(RaftError::InvalidConfig(what.to_string()));
        if self.id == 0 {
            return bad("id must not be 0");
        }
        if self.voters.contains(&0) {
            return bad("voters must not contain id 0");
        }
        if self.tick.is_zero() {
            return bad("tick must be longer than zero");
        }
        if self.heartbeat_tick == 0 || self.election_tick <= self.heartbeat_tick {
            return bad("heartbeat_tick must be at least 1 and election_tick larger than it");
        }
        if self.max_batch == 0 {
            return bad("max_batch must be at least 1");
        }
        if self.max_proposal_bytes == 0 || self.max_proposal_bytes > u32::MAX as usize {
            return bad("max_proposal_bytes must be between 1 and 4 GiB");
        }
        if self.snapshot_every == 0 {
            return bad("snapshot_every must be at least 1");
        }
        if self.snapshot_dir.as_os_str().is_empty() {
            return bad(
                "snapshot_dir must be set: a directory of this node's own, e.g. <data dir>/snapshots",
            );
        }
        Ok(())
    }

    /// How many proposals and reads may wait in the driver's queue before callers are made to wait.
    pub(crate) fn queue_capacity(&self) -> usize {
        (self.max_batch * 8).max(1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_with_a_snapshot_dir_and_bad_values_are_named() {
        let ok = RaftConfig {
            snapshot_dir: "snapshots".into(),
            ..RaftConfig::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        assert!(
            matches!(RaftConfig::default().validate(), Err(RaftError::InvalidConfig(m)) if m.contains("snapshot_dir"))
        );
        let c = RaftConfig { id: 0, ..ok.clone() };
        assert!(matches!(c.validate(), Err(RaftError::InvalidConfig(m)) if m.contains("id")));
        let c = RaftConfig {
            election_tick: 2,
            heartbeat_tick: 2,
            ..ok.clone()
        };
        assert!(c.validate().is_err());
        let c = RaftConfig { max_batch: 0, ..ok };
        assert!(c.validate().is_err());
    }
}
