//! Raft log storage in redb: the log, hard state, conf state, snapshot and applied index.
//!
//! Tables (in the same file as the state machine's tables):
//!
//! | table | key | value |
//! |---|---|---|
//! | `skiff_raft_log` | entry index (`u64`) | protobuf `Entry` |
//! | `skiff_raft_meta` | `hard_state`, `conf_state` | protobuf `HardState` / `ConfState` |
//! | `skiff_raft_snapshot` | `snapshot` | protobuf `Snapshot` whose data is a [`crate::snapshot::SnapshotDescriptor`]: the state machine's bytes are in a file of the snapshot directory (a table of its own, apart from the metadata above that changes with every commit) |
//! | `skiff_raft_meta` | `truncated` | index and term of the last compacted entry (2 × `u64` LE) |
//! | `skiff_raft_meta` | `applied` | the last applied index (`u64` LE) |
//! | `skiff_raft_meta` | `members` | every member's opaque meta (see [`crate::membership`]'s encoding) |
//!
//! A group is bootstrapped with a snapshot at index 1 (term 1) that holds the initial membership
//! and (in its file) the state machine's initial content, so the log of every group starts at index 2 and a
//! node joining later is always initialised by a snapshot from the leader: it could not learn
//! the bootstrap voters from the log, since they are in no entry.
//!
//! [`RedbStorage`] keeps a copy of the small metadata ([`LogState`]) in memory and reads entries
//! from redb on demand. Every change goes through a `LogWriter` bound to one write transaction;
//! the new [`LogState`] is installed only after that transaction committed, so memory never runs
//! ahead of the file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{RaftState, StorageError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::RaftError;
use crate::membership::{decode_members, encode_members};
use crate::snapshot::{SnapshotData, SnapshotDescriptor, SnapshotId};

pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("skiff_raft_log");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("skiff_raft_meta");

const HARD_STATE: &str = "hard_state";
const CONF_STATE: &str = "conf_state";
const SNAPSHOT: &str = "snapshot";
/// The stored snapshot lives apart from [`META`], whose keys change on every commit.
pub(crate) const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("skiff_raft_snapshot");
const TRUNCATED: &str = "truncated";
const APPLIED: &str = "applied";
const MEMBERS: &str = "members";

/// The raft metadata kept in memory, mirroring what the last committed transaction wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogState {
    /// Term, vote and commit index.
    pub hard_state: HardState,
    /// The current membership.
    pub conf_state: ConfState,
    /// Index of the last entry removed by compaction (0 when nothing was compacted).
    pub truncated_index: u64,
    /// Term of the entry at `truncated_index`.
    pub truncated_term: u64,
    /// Index of the last entry in the log (`truncated_index` when the log is empty).
    pub last_index: u64,
    /// Term of the entry at `last_index`.
    pub last_term: u64,
    /// The last index applied to the state machine.
    pub applied: u64,
    /// Index of the stored snapshot (0 when there is none).
    pub snapshot_index: u64,
    /// The opaque meta of each member, changed together with `conf_state`.
    pub members: BTreeMap<u64, Vec<u8>>,
}

/// raft-rs [`raft::Storage`] over a redb database.
///
/// The driver owns the only instance that is written while it runs. Opening a second instance on
/// the same database is meant for tests and offline tools while the driver is stopped.
pub struct RedbStorage {
    db: Arc<Database>,
    state: LogState,
    /// Set when raft asked for a snapshot newer than the stored one; the driver then makes one.
    snapshot_wanted: AtomicBool,
}

fn other<E: std::error::Error + Send + Sync + 'static>(e: E) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

fn decode<M: protobuf::Message>(bytes: &[u8]) -> Result<M, RaftError> {
    M::parse_from_bytes(bytes).map_err(RaftError::from)
}

fn encode<M: protobuf::Message>(m: &M) -> Result<Vec<u8>, RaftError> {
    m.write_to_bytes().map_err(RaftError::from)
}

fn u64s(bytes: &[u8]) -> Result<(u64, u64), RaftError> {
    let bad = || RaftError::Storage(format!("bad metadata value of {} bytes", bytes.len()));
    let a: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
    let b: [u8; 8] = bytes.get(8..16).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]);
    Ok((u64::from_le_bytes(a), u64::from_le_bytes(b)))
}

impl RedbStorage {
    /// Opens the raft tables in `db`, creating and bootstrapping them when the database is new.
    ///
    /// Bootstrap writes a conf state with `voters` as the members (an empty list leaves the node
    /// uninitialised, waiting to be added to an existing group). On later opens `voters` is ignored
    /// and everything is loaded from the file.
    ///
    /// # Errors
    ///
    /// [`RaftError::Storage`] when redb fails or the stored metadata cannot be decoded.
    pub fn open(db: Arc<Database>, voters: &[u64]) -> Result<Self, RaftError> {
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            txn.open_table(LOG)?;
            if meta.get(TRUNCATED)?.is_none() {
                let cs = ConfState {
                    voters: voters.to_vec(),
                    ..Default::default()
                };
                meta.insert(CONF_STATE, encode(&cs)?.as_slice())?;
                meta.insert(HARD_STATE, encode(&HardState::default())?.as_slice())?;
                meta.insert(TRUNCATED, [0u8; 16].as_slice())?;
                meta.insert(APPLIED, 0u64.to_le_bytes().as_slice())?;
            }
        }
        txn.commit()?;
        let state = load(&db)?;
        Ok(RedbStorage {
            db,
            state,
            snapshot_wanted: AtomicBool::new(false),
        })
    }

    /// Whether `db` holds no raft tables yet (a new file, or one only a state machine wrote to).
    ///
    /// # Errors
    ///
    /// [`RaftError::Storage`] when redb fails.
    pub fn is_new(db: &Database) -> Result<bool, RaftError> {
        let txn = db.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        Ok(meta.get(TRUNCATED)?.is_none())
    }

    /// Installs a received snapshot's position and membership (its data a
    /// [`crate::snapshot::SnapshotDescriptor`], or inline data of an older release) in one durable
    /// transaction: the log is reset to its position. Meant for tools and tests; the driver
    /// restores the state machine from the snapshot's file in the same transaction.
    ///
    /// # Errors
    ///
    /// [`RaftError::Storage`] when redb fails; [`RaftError::InvalidMessage`] when the snapshot
    /// data is malformed.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<(), RaftError> {
        let members = match SnapshotData::parse(&snap.data)? {
            SnapshotData::Descriptor(d) => d.members,
            SnapshotData::Inline { members, .. } => members,
        };
        self.write(|w| w.apply_snapshot(snap, members))
    }

    /// The metadata as of the last committed write.
    pub fn state(&self) -> &LogState {
        &self.state
    }

    /// The database this storage lives in.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// The stored snapshot, if one was taken or received.
    ///
    /// # Errors
    ///
    /// [`RaftError::Storage`] when redb fails or the snapshot cannot be decoded.
    pub fn stored_snapshot(&self) -> Result<Option<Snapshot>, RaftError> {
        let txn = self.db.begin_read()?;
        let snaps = match txn.open_table(SNAPSHOTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        snaps.get(SNAPSHOT)?.map(|v| decode(v.value())).transpose()
    }

    /// Appends entries (overwriting any conflicting tail) in one durable transaction.
    ///
    /// # Errors
    ///
    /// [`RaftError::Storage`] when redb fails, the entries leave a gap, or they reach into the
    /// compacted part of the log.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), RaftError> {
        self.write(|w| w.append(entries))
    }

    /// Stores a hard state in one durable transaction.
    ///
    /// # Errors
    ///
    /// [`RaftError::Storage`] when redb fails.
    pub fn set_hard_state(&mut self, hs: HardState) -> Result<(), RaftError> {
        self.write(|w| w.set_hard_state(hs))
    }

    /// Removes the entries up to and including `compact_to` in one durable transaction.
    ///
    /// # Errors
    ///
    /// [`RaftError::Storage`] when redb fails or `compact_to` is past the applied or last index.
    pub fn compact(&mut self, compact_to: u64) -> Result<(), RaftError> {
        self.write(|w| w.compact(compact_to))
    }

    /// Runs `f` on a writer bound to a new durable transaction, commits, and installs the result.
    pub(crate) fn write<R>(
        &mut self,
        f: impl FnOnce(&mut LogWriter<'_>) -> Result<R, RaftError>,
    ) -> Result<R, RaftError> {
        let txn = self.db.begin_write()?;
        let mut w = LogWriter::new(&txn, self.state.clone());
        let out = f(&mut w)?;
        let state = w.into_state();
        txn.commit()?;
        self.install(state);
        Ok(out)
    }

    /// Installs the metadata a committed [`LogWriter`] produced.
    pub(crate) fn install(&mut self, state: LogState) {
        self.state = state;
    }

    /// Whether raft asked for a newer snapshot than the stored one (clears the request).
    pub(crate) fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.swap(false, Ordering::Relaxed)
    }

    fn read_entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>, RaftError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        let mut out = Vec::new();
        let mut size = 0u64;
        for item in log.range(low..high)? {
            let (k, v) = item?;
            let entry: Entry = decode(v.value())?;
            if entry.index != k.value() || entry.index != low + out.len() as u64 {
                return Err(RaftError::Storage(format!(
                    "raft log is not contiguous: expected index {}, found {}",
                    low + out.len() as u64,
                    k.value()
                )));
            }
            size += u64::from(entry.compute_size());
            if !out.is_empty() && max_size.is_some_and(|max| size > max) {
                break;
            }
            out.push(entry);
        }
        if out.is_empty() && low < high {
            return Err(RaftError::Storage(format!("raft log entry {low} is missing")));
        }
        Ok(out)
    }

    fn read_term(&self, idx: u64) -> Result<u64, RaftError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        let v = log
            .get(idx)?
            .ok_or_else(|| RaftError::Storage(format!("raft log entry {idx} is missing")))?;
        Ok(decode::<Entry>(v.value())?.term)
    }
}

fn load(db: &Database) -> Result<LogState, RaftError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let log = txn.open_table(LOG)?;
    let get = |key: &str| -> Result<Vec<u8>, RaftError> {
        meta.get(key)?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| RaftError::Storage(format!("raft metadata key {key:?} is missing")))
    };
    let (truncated_index, truncated_term) = u64s(&get(TRUNCATED)?)?;
    let (applied, _) = u64s(&get(APPLIED)?)?;
    let (last_index, last_term) = match log.last()? {
        Some((k, v)) => (k.value(), decode::<Entry>(v.value())?.term),
        None => (truncated_index, truncated_term),
    };
    let snapshot_index = match txn.open_table(SNAPSHOTS) {
        Ok(snaps) => match snaps.get(SNAPSHOT)? {
            Some(v) => decode::<Snapshot>(v.value())?.get_metadata().index,
            None => 0,
        },
        Err(redb::TableError::TableDoesNotExist(_)) => 0,
        Err(e) => return Err(e.into()),
    };
    let members = match meta.get(MEMBERS)? {
        Some(v) => {
            decode_members(v.value())
                .map_err(|e| RaftError::Storage(format!("stored member meta is malformed: {e}")))?
                .0
        }
        None => BTreeMap::new(),
    };
    Ok(LogState {
        members,
        hard_state: decode(&get(HARD_STATE)?)?,
        conf_state: decode(&get(CONF_STATE)?)?,
        truncated_index,
        truncated_term,
        last_index,
        last_term,
        applied,
        snapshot_index,
    })
}

impl raft::Storage for RedbStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.state.hard_state.clone(),
            self.state.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: raft::GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.state.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.state.last_index + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if low >= high {
            return Ok(Vec::new());
        }
        self.read_entries(low, high, max_size.into()).map_err(other)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let s = &self.state;
        if idx == s.truncated_index {
            return Ok(s.truncated_term);
        }
        if idx < s.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > s.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if idx == s.last_index {
            return Ok(s.last_term);
        }
        self.read_term(idx).map_err(other)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.state.truncated_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.state.last_index)
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // A node refuses a snapshot whose membership does not include it (a member added after
        // the stored snapshot was taken), so such a request waits for a newer one.
        let includes = |cs: &ConfState| {
            cs.voters
                .iter()
                .chain(&cs.learners)
                .chain(&cs.voters_outgoing)
                .any(|id| *id == to)
        };
        match self.stored_snapshot().map_err(other)? {
            Some(s)
                if s.get_metadata().index >= request_index
                    && s.get_metadata().index > 0
                    && includes(s.get_metadata().get_conf_state()) =>
            {
                Ok(s)
            }
            _ => {
                self.snapshot_wanted.store(true, Ordering::Relaxed);
                Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
            }
        }
    }
}

/// Stages changes to the raft tables inside one write transaction.
///
/// The state machine writes its own tables in the same transaction; [`LogWriter::into_state`] hands
/// back the metadata to install once the transaction has committed.
pub(crate) struct LogWriter<'t> {
    txn: &'t WriteTransaction,
    state: LogState,
}

impl<'t> LogWriter<'t> {
    pub(crate) fn new(txn: &'t WriteTransaction, state: LogState) -> Self {
        LogWriter { txn, state }
    }

    pub(crate) fn state(&self) -> &LogState {
        &self.state
    }

    pub(crate) fn into_state(self) -> LogState {
        self.state
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), RaftError> {
        self.txn.open_table(META)?.insert(key, value)?;
        Ok(())
    }

    /// Appends entries, first removing any existing entries from the first new index on.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<(), RaftError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let s = &mut self.state;
        if first.index <= s.truncated_index {
            return Err(RaftError::Storage(format!(
                "append at index {} would overwrite the compacted log (compacted up to {})",
                first.index, s.truncated_index
            )));
        }
        if first.index > s.last_index + 1 {
            return Err(RaftError::Storage(format!(
                "append at index {} leaves a gap after the last index {}",
                first.index, s.last_index
            )));
        }
        let mut log = self.txn.open_table(LOG)?;
        if first.index <= s.last_index {
            log.retain_in(first.index..=s.last_index, |_, _| false)?;
        }
        for e in entries {
            log.insert(e.index, encode(e)?.as_slice())?;
        }
        s.last_index = last.index;
        s.last_term = last.term;
        Ok(())
    }

    pub(crate) fn set_hard_state(&mut self, hs: HardState) -> Result<(), RaftError> {
        self.put_meta(HARD_STATE, &encode(&hs)?)?;
        self.state.hard_state = hs;
        Ok(())
    }

    /// Moves the commit index forward (never back).
    pub(crate) fn set_commit(&mut self, commit: u64) -> Result<(), RaftError> {
        if commit > self.state.hard_state.commit {
            let mut hs = self.state.hard_state.clone();
            hs.commit = commit;
            self.set_hard_state(hs)?;
        }
        Ok(())
    }

    pub(crate) fn set_conf_state(&mut self, cs: ConfState) -> Result<(), RaftError> {
        self.put_meta(CONF_STATE, &encode(&cs)?)?;
        self.state.conf_state = cs;
        Ok(())
    }

    /// Stores the member meta; only meta of members of `conf_state` is kept.
    pub(crate) fn set_members(&mut self, mut members: BTreeMap<u64, Vec<u8>>) -> Result<(), RaftError> {
        let cs = &self.state.conf_state;
        members.retain(|id, _| cs.voters.contains(id) || cs.learners.contains(id));
        self.put_meta(MEMBERS, &encode_members(&members))?;
        self.state.members = members;
        Ok(())
    }

    /// Bootstraps a new group in this (new) file: a snapshot at index 1, term 1, with
    /// membership `cs`, the member meta, and the file `machine` of `size` bytes (the state
    /// machine's snapshot, whose content the caller has in its tables). Replaces whatever raft
    /// state was staged.
    pub(crate) fn bootstrap(
        &mut self,
        cs: ConfState,
        members: BTreeMap<u64, Vec<u8>>,
        machine: &SnapshotId,
        size: u64,
    ) -> Result<(), RaftError> {
        let descriptor = SnapshotDescriptor {
            members: members.clone(),
            size,
            sha256: machine.sha256,
        };
        let mut snap = Snapshot {
            data: descriptor.encode().into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = 1;
        meta.term = 1;
        meta.set_conf_state(cs);
        self.apply_snapshot(&snap, members)
    }

    /// Records the applied index, and keeps the stored commit index at least as high.
    pub(crate) fn set_applied(&mut self, applied: u64) -> Result<(), RaftError> {
        self.put_meta(APPLIED, &applied.to_le_bytes())?;
        self.state.applied = applied;
        self.set_commit(applied)
    }

    /// Removes entries up to and including `compact_to` (no-op when already compacted).
    pub(crate) fn compact(&mut self, compact_to: u64) -> Result<(), RaftError> {
        let s = &mut self.state;
        if compact_to <= s.truncated_index {
            return Ok(());
        }
        if compact_to > s.applied || compact_to > s.last_index {
            return Err(RaftError::Storage(format!(
                "cannot compact to {compact_to}: applied is {}, last index {}",
                s.applied, s.last_index
            )));
        }
        let mut log = self.txn.open_table(LOG)?;
        let term = match log.get(compact_to)? {
            Some(v) => decode::<Entry>(v.value())?.term,
            None => {
                return Err(RaftError::Storage(format!(
                    "raft log entry {compact_to} is missing"
                )));
            }
        };
        log.retain_in(s.truncated_index + 1..=compact_to, |_, _| false)?;
        s.truncated_index = compact_to;
        s.truncated_term = term;
        let mut v = compact_to.to_le_bytes().to_vec();
        v.extend_from_slice(&term.to_le_bytes());
        drop(log);
        self.put_meta(TRUNCATED, &v)
    }

    /// Stores a snapshot (taken locally or received) so it can be sent to followers.
    pub(crate) fn store_snapshot(&mut self, snap: &Snapshot) -> Result<(), RaftError> {
        self.txn
            .open_table(SNAPSHOTS)?
            .insert(SNAPSHOT, encode(snap)?.as_slice())?;
        self.state.snapshot_index = snap.get_metadata().index;
        Ok(())
    }

    /// Replaces the whole log with a received snapshot's position and stores its membership
    /// (`members` is the meta unwrapped from its data); the caller restores the state machine in
    /// the same transaction.
    pub(crate) fn apply_snapshot(
        &mut self,
        snap: &Snapshot,
        members: BTreeMap<u64, Vec<u8>>,
    ) -> Result<(), RaftError> {
        let meta = snap.get_metadata();
        let (index, term) = (meta.index, meta.term);
        self.txn.open_table(LOG)?.retain(|_, _| false)?;
        let mut v = index.to_le_bytes().to_vec();
        v.extend_from_slice(&term.to_le_bytes());
        self.put_meta(TRUNCATED, &v)?;
        let s = &mut self.state;
        s.truncated_index = index;
        s.truncated_term = term;
        s.last_index = index;
        s.last_term = term;
        let mut hs = self.state.hard_state.clone();
        hs.commit = hs.commit.max(index);
        hs.term = hs.term.max(term);
        self.set_hard_state(hs)?;
        self.set_conf_state(meta.get_conf_state().clone())?;
        self.set_members(members)?;
        self.put_meta(APPLIED, &index.to_le_bytes())?;
        self.state.applied = index;
        self.store_snapshot(snap)
    }
}

#[cfg(test)]
mod tests {
    use raft::Storage as _;

    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 100].into(),
            ..Default::default()
        }
    }

    fn ctx() -> raft::GetEntriesContext {
        raft::GetEntriesContext::empty(false)
    }

    fn fresh() -> (tempfile::TempDir, RedbStorage) {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("log.redb")).unwrap());
        (dir, RedbStorage::open(db, &[1, 2, 3]).unwrap())
    }

    #[test]
    fn bootstrap_writes_the_initial_membership_once() {
        let (_dir, s) = fresh();
        let init = s.initial_state().unwrap();
        assert_eq!(init.conf_state.voters, vec![1, 2, 3]);
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
        assert_eq!(s.term(0), Ok(0));
        let again = RedbStorage::open(s.db().clone(), &[9]).unwrap();
        assert_eq!(
            again.state().conf_state.voters,
            vec![1, 2, 3],
            "voters are used only at bootstrap"
        );
    }

    #[test]
    fn append_overwrites_a_conflicting_tail_and_refuses_gaps() {
        let (_dir, mut s) = fresh();
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)])
            .unwrap();
        s.append(&[entry(3, 2)]).unwrap();
        assert_eq!(s.last_index().unwrap(), 3);
        assert_eq!((s.term(2), s.term(3)), (Ok(1), Ok(2)));
        assert_eq!(
            s.entries(4, 5, None, ctx()),
            Err(raft::Error::Store(StorageError::Unavailable))
        );
        assert!(matches!(s.append(&[entry(5, 2)]), Err(RaftError::Storage(_))));
        let reopened = RedbStorage::open(s.db().clone(), &[]).unwrap();
        assert_eq!(reopened.state(), s.state());
    }

    #[test]
    fn entries_respect_max_size_but_return_at_least_one() {
        let (_dir, mut s) = fresh();
        s.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        let one = u64::from(entry(1, 1).compute_size());
        assert_eq!(s.entries(1, 11, None, ctx()).unwrap().len(), 10);
        assert_eq!(s.entries(1, 11, Some(0), ctx()).unwrap().len(), 1);
        assert_eq!(s.entries(1, 11, Some(one * 3), ctx()).unwrap().len(), 3);
        assert_eq!(s.entries(1, 11, Some(one * 3 + 1), ctx()).unwrap().len(), 3);
        assert_eq!(
            s.entries(4, 6, None, ctx())
                .unwrap()
                .iter()
                .map(|e| e.index)
                .collect::<Vec<_>>(),
            vec![4, 5]
        );
    }

    #[test]
    fn compaction_answers_compacted_and_keeps_the_boundary_term() {
        let (_dir, mut s) = fresh();
        s.append(
            &(1..=10)
                .map(|i| entry(i, if i < 5 { 1 } else { 2 }))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(
            matches!(s.compact(5), Err(RaftError::Storage(_))),
            "cannot compact past applied"
        );
        s.write(|w| w.set_applied(8)).unwrap();
        s.compact(5).unwrap();
        let compacted = raft::Error::Store(StorageError::Compacted);
        assert_eq!(s.first_index().unwrap(), 6);
        assert_eq!(s.term(5), Ok(2));
        assert_eq!(s.term(4), Err(raft::Error::Store(StorageError::Compacted)));
        assert_eq!(s.entries(5, 7, None, ctx()), Err(compacted));
        assert_eq!(s.entries(6, 11, None, ctx()).unwrap().len(), 5);
        assert!(matches!(s.append(&[entry(5, 3)]), Err(RaftError::Storage(_))));
        s.compact(3).unwrap();
        assert_eq!(
            s.first_index().unwrap(),
            6,
            "compacting to an older index changes nothing"
        );
        let reopened = RedbStorage::open(s.db().clone(), &[]).unwrap();
        assert_eq!(reopened.state(), s.state());
        assert_eq!(
            reopened.state().hard_state.commit,
            8,
            "commit is kept at least at applied"
        );
    }

    #[test]
    fn snapshots_replace_the_log_and_are_served() {
        let (_dir, mut s) = fresh();
        assert_eq!(
            s.snapshot(0, 2),
            Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
        );
        assert!(s.take_snapshot_wanted());
        s.append(&(1..=3).map(|i| entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        let members = BTreeMap::from([(1, b"one".to_vec()), (2, Vec::new()), (5, b"gone".to_vec())]);
        let descriptor = SnapshotDescriptor {
            members,
            size: 5,
            sha256: [1; 32],
        };
        let mut snap = Snapshot {
            data: descriptor.encode().into(),
            ..Default::default()
        };
        snap.mut_metadata().index = 20;
        snap.mut_metadata().term = 4;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2];
        s.apply_snapshot(&snap).unwrap();
        assert_eq!(
            s.state().members.keys().copied().collect::<Vec<_>>(),
            vec![1, 2],
            "meta of non-members is dropped"
        );
        let st = s.state().clone();
        assert_eq!(
            (
                st.truncated_index,
                st.last_index,
                st.applied,
                st.hard_state.commit
            ),
            (20, 20, 20, 20)
        );
        assert_eq!(s.term(20), Ok(4));
        assert_eq!(s.first_index().unwrap(), 21);
        assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1, 2]);
        assert_eq!(s.snapshot(20, 2).unwrap(), snap);
        assert!(
            s.snapshot(21, 2).is_err(),
            "a request past the stored snapshot waits for a new one"
        );
        s.append(&[entry(21, 4)]).unwrap();
        assert_eq!(s.last_index().unwrap(), 21);
        let reopened = RedbStorage::open(s.db().clone(), &[]).unwrap();
        assert_eq!(reopened.state(), s.state(), "members survive reopening");
    }
}
