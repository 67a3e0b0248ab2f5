//! A simulated disk for redb: bytes in memory, and a crash loses every write since the last
//! `sync_data`. It holds the node's snapshot directory too ([`super::files`]).

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{Database, StorageBackend};

use super::files::SimFiles;
use crate::snapshot::SnapshotFiles;

/// How to put a write back when the machine crashes before the next sync.
enum Undo {
    /// Bytes at `offset` before a write.
    Write { offset: usize, old: Vec<u8> },
    /// The length before a `set_len` (or a write past the end), and the bytes it cut off.
    Len { len: usize, tail: Vec<u8> },
}

#[derive(Default)]
struct State {
    data: Vec<u8>,
    /// Changes since the last sync, oldest first.
    undo: Vec<Undo>,
    /// Writes so far (to arm a power loss at a given one).
    writes: u64,
    /// The power goes out at this write: it and everything after it fail.
    fail_at: Option<u64>,
    failed: bool,
}

/// One simulated disk; clones share it. It outlives the [`Database`]s opened on it, as a file
/// outlives the processes that open it.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
    files: SimFiles,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("SimDisk")
            .field("len", &s.data.len())
            .field("unsynced", &s.undo.len())
            .finish()
    }
}

fn power_loss() -> io::Error {
    io::Error::other("simulated power loss")
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The node's snapshot directory on this disk.
    pub(crate) fn snapshot_files(&self) -> SnapshotFiles {
        SnapshotFiles::new(Arc::new(self.files.clone()))
    }

    /// Opens (or creates) a redb database on this disk.
    ///
    /// # Errors
    ///
    /// redb's error when the bytes on the disk cannot be opened.
    pub fn open(&self) -> Result<Database, redb::DatabaseError> {
        Database::builder()
            .set_cache_size(4 * 1024 * 1024)
            .create_with_backend(self.clone())
    }

    /// Makes the `n`-th write from now on (1 = the next) and every operation after it fail, as a
    /// power loss in the middle of whatever redb is doing.
    pub fn fail_after_writes(&self, n: u64) {
        let mut s = self.lock();
        s.fail_at = Some(s.writes + n.max(1));
    }

    /// Cancels a power loss armed by [`SimDisk::fail_after_writes`] that has not happened yet.
    pub fn disarm(&self) {
        self.lock().fail_at = None;
    }

    /// Whether the simulated power is out.
    pub fn failed(&self) -> bool {
        self.lock().failed
    }

    /// Crashes the machine: everything written since the last sync is lost and the power comes
    /// back. Close the database first (drop it); reopen with [`SimDisk::open`].
    pub fn crash(&self) {
        let mut s = self.lock();
        while let Some(undo) = s.undo.pop() {
            match undo {
                Undo::Write { offset, old } => s.data[offset..offset + old.len()].copy_from_slice(&old),
                Undo::Len { len, tail } => {
                    // Undone in reverse, so the data has the length this change set: a grown
                    // file shrinks back, a shrunk one gets its tail back.
                    s.data.truncate(len - tail.len());
                    s.data.extend_from_slice(&tail);
                }
            }
        }
        s.failed = false;
        s.fail_at = None;
        drop(s);
        self.files.crash();
    }

    /// Changes since the last sync (what a crash would lose).
    pub fn unsynced(&self) -> usize {
        self.lock().undo.len()
    }

    fn check(s: &State) -> io::Result<()> {
        if s.failed { Err(power_loss()) } else { Ok(()) }
    }

    fn set_len_locked(s: &mut State, len: usize) {
        let old_len = s.data.len();
        let tail = if len < old_len {
            s.data[len..].to_vec()
        } else {
            Vec::new()
        };
        s.undo.push(Undo::Len { len: old_len, tail });
        s.data.resize(len, 0);
    }
}

impl StorageBackend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        let s = self.lock();
        Self::check(&s)?;
        Ok(s.data.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let s = self.lock();
        Self::check(&s)?;
        let start = usize::try_from(offset).map_err(|_| io::Error::other("offset out of range"))?;
        let src = s
            .data
            .get(start..start + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        Self::check(&s)?;
        let len = usize::try_from(len).map_err(|_| io::Error::other("length out of range"))?;
        Self::set_len_locked(&mut s, len);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.lock();
        Self::check(&s)?;
        s.undo.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        Self::check(&s)?;
        s.writes += 1;
        if s.fail_at.is_some_and(|at| s.writes >= at) {
            s.failed = true;
            return Err(power_loss());
        }
        let start = usize::try_from(offset).map_err(|_| io::Error::other("offset out of range"))?;
        let end = start + data.len();
        if end > s.data.len() {
            Self::set_len_locked(&mut s, end);
        }
        let old = s.data[start..end].to_vec();
        s.undo.push(Undo::Write { offset: start, old });
        s.data[start..end].copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, TableDefinition};

    use super::*;

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn put(db: &Database, k: u64, durable: bool) {
        let mut txn = db.begin_write().unwrap();
        if !durable {
            txn.set_durability(redb::Durability::None).unwrap();
        }
        txn.open_table(T).unwrap().insert(k, k).unwrap();
        txn.commit().unwrap();
    }

    fn keys(db: &Database) -> Vec<u64> {
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        redb::ReadableTable::iter(&t)
            .unwrap()
            .map(|r| r.unwrap().0.value())
            .collect()
    }

    #[test]
    fn a_crash_keeps_synced_commits_and_loses_the_rest() {
        let disk = SimDisk::new();
        let db = disk.open().unwrap();
        put(&db, 1, true);
        put(&db, 2, false);
        // The power goes out before the database could write or sync anything more.
        disk.fail_after_writes(1);
        drop(db);
        disk.crash();
        let db = disk.open().unwrap();
        assert_eq!(keys(&db), vec![1]);
        put(&db, 3, true);
        // Power loss in the middle of the next commit.
        disk.fail_after_writes(1);
        let txn = db.begin_write().unwrap();
        txn.open_table(T).unwrap().insert(4, 4).unwrap();
        assert!(txn.commit().is_err());
        assert!(disk.failed());
        drop(db);
        disk.crash();
        assert_eq!(keys(&disk.open().unwrap()), vec![1, 3]);
    }
}
