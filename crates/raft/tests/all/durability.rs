//! Restarts, crashes between persist and apply, snapshots and compaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use raft::{GetEntriesContext, Storage, StorageError};
use skiff_raft::snapshot::SnapshotDescriptor;
use skiff_raft::storage::RedbStorage;
use skiff_raft::{RaftConfig, RaftError, StartOptions, start, start_with};

use crate::support::{Counters, applies, config, counter, eventually, open_db};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn restart_keeps_every_acknowledged_proposal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skiff.redb");
    let applied = {
        let db = open_db(&path);
        let node = start(db, Counters::default(), config(dir.path(), 1, &[1])).unwrap();
        node.wait_leader(WAIT).await.unwrap();
        for _ in 0..50 {
            node.propose(b"k=1".to_vec()).await.unwrap().unwrap();
        }
        let applied = node.status().applied;
        node.shutdown();
        applied
    };
    // The driver thread has exited and dropped its handle on the file: reopen it from scratch.
    let db = open_db(&path);
    assert_eq!(counter(&db, "k"), 50);
    let stored = RedbStorage::open(db.clone(), &[1]).unwrap().state().clone();
    assert_eq!(stored.applied, applied, "the applied index survived the restart");
    let node = start(db.clone(), Counters::default(), config(dir.path(), 1, &[1])).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    assert!(node.status().applied >= applied);
    assert_eq!(node.propose(b"k=1".to_vec()).await.unwrap(), Ok(51));
    assert_eq!(applies(&db), 51, "nothing was applied twice");
    node.shutdown();
}

#[tokio::test]
async fn an_entry_persisted_but_not_applied_is_applied_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skiff.redb");
    {
        let db = open_db(&path);
        let crash = Arc::new(AtomicBool::new(false));
        let options = StartOptions {
            crash_before_apply: Some(crash.clone()),
            ..StartOptions::default()
        };
        let node = start_with(
            db.clone(),
            Counters::default(),
            config(dir.path(), 1, &[1]),
            options,
        )
        .unwrap();
        node.wait_leader(WAIT).await.unwrap();
        for _ in 0..5 {
            node.propose(b"c=1".to_vec()).await.unwrap().unwrap();
        }
        crash.store(true, Ordering::SeqCst);
        // The entry is persisted, then the loop "crashes" before applying it.
        assert_eq!(node.propose(b"c=1".to_vec()).await, Err(RaftError::Stopped));
        node.shutdown();
        let state = RedbStorage::open(db.clone(), &[1]).unwrap().state().clone();
        assert!(
            state.last_index > state.applied,
            "the crash left an unapplied entry: {state:?}"
        );
        assert_eq!(counter(&db, "c"), 5);
    }
    for round in 0..2 {
        let db = open_db(&path);
        let node = start(db.clone(), Counters::default(), config(dir.path(), 1, &[1])).unwrap();
        node.wait_leader(WAIT).await.unwrap();
        node.read_index().await.unwrap();
        assert_eq!(
            counter(&db, "c"),
            6,
            "round {round}: the persisted entry is applied exactly once"
        );
        assert_eq!(applies(&db), 6);
        node.shutdown();
    }
}

#[tokio::test]
async fn entries_committed_but_not_applied_are_applied_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Produce a real log on one file...
    let source = open_db(&dir.path().join("source.redb"));
    let node = start(source.clone(), Counters::default(), config(dir.path(), 1, &[1])).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    for i in 1..=10 {
        node.propose(format!("x={i}").into_bytes())
            .await
            .unwrap()
            .unwrap();
    }
    node.shutdown();
    let src = RedbStorage::open(source.clone(), &[1]).unwrap();
    let s = src.state().clone();
    // The group was bootstrapped with a snapshot at index 1; the log starts after it.
    let bootstrap = src.stored_snapshot().unwrap().expect("the bootstrap snapshot");
    assert_eq!(bootstrap.get_metadata().index, 1);
    assert_eq!(src.first_index().unwrap(), 2);
    let entries = src
        .entries(2, s.last_index + 1, None, GetEntriesContext::empty(false))
        .unwrap();
    // ...and copy it to a fresh file whose machine applied nothing past the bootstrap snapshot:
    // committed up to the end, applied index 1 — the state a crash right after persisting the
    // commit index leaves.
    let path = dir.path().join("target.redb");
    {
        let db = open_db(&path);
        let mut dst = RedbStorage::open(db, &[]).unwrap();
        dst.apply_snapshot(&bootstrap).unwrap();
        dst.append(&entries).unwrap();
        dst.set_hard_state(s.hard_state.clone()).unwrap();
        assert_eq!(
            (dst.state().applied, dst.state().hard_state.commit),
            (1, s.last_index)
        );
    }
    let db = open_db(&path);
    let node = start(db.clone(), Counters::default(), config(dir.path(), 1, &[1])).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    node.read_index().await.unwrap();
    assert_eq!(counter(&db, "x"), 55);
    assert_eq!(applies(&db), 10);
    node.shutdown();
}

#[tokio::test]
async fn snapshots_compact_the_log_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skiff.redb");
    let cfg = RaftConfig {
        snapshot_every: 10,
        keep_entries: 5,
        ..config(dir.path(), 1, &[1])
    };
    let db = open_db(&path);
    let node = start(db.clone(), Counters::default(), cfg.clone()).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    for _ in 0..40 {
        node.propose(b"s=1".to_vec()).await.unwrap().unwrap();
    }
    eventually("a snapshot is taken", WAIT, || node.status().snapshot_index >= 30).await;
    let status = node.status();
    assert!(status.first_index > 1, "the log was compacted: {status:?}");
    assert!(
        status.first_index <= status.snapshot_index + 1 - 5,
        "keep_entries were kept: {status:?}"
    );
    node.shutdown();
    drop(db);

    // The storage answers for the compacted range as raft-rs expects.
    let db = open_db(&path);
    let storage = RedbStorage::open(db.clone(), &[1]).unwrap();
    let first = storage.first_index().unwrap();
    let last = storage.last_index().unwrap();
    assert_eq!(first, status.first_index);
    let compacted = raft::Error::Store(StorageError::Compacted);
    let unavailable = raft::Error::Store(StorageError::Unavailable);
    let ctx = || GetEntriesContext::empty(false);
    assert_eq!(storage.entries(first - 1, last + 1, None, ctx()), Err(compacted));
    assert_eq!(storage.entries(first, last + 2, None, ctx()), Err(unavailable));
    assert_eq!(
        storage.term(first - 2),
        Err(raft::Error::Store(StorageError::Compacted))
    );
    assert_eq!(
        storage.term(last + 1),
        Err(raft::Error::Store(StorageError::Unavailable))
    );
    assert!(
        storage.term(first - 1).unwrap() > 0,
        "the term at the compaction point is kept"
    );
    assert_eq!(
        storage.entries(first, last + 1, None, ctx()).unwrap().len() as u64,
        last - first + 1
    );
    let one = storage.entries(first, last + 1, Some(0), ctx()).unwrap();
    assert_eq!(one.len(), 1, "max_size still returns one entry");
    let snap = storage.snapshot(0, 1).unwrap();
    assert_eq!(snap.get_metadata().index, status.snapshot_index);
    assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1]);
    // The snapshot carries a descriptor; the machine's tables are in its file, the only one left.
    let descriptor = SnapshotDescriptor::decode(&snap.data).unwrap();
    let files: Vec<_> = std::fs::read_dir(&cfg.snapshot_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "superseded snapshot files were removed: {files:?}"
    );
    let content = std::fs::read(&files[0]).unwrap();
    assert_eq!(content.len() as u64, descriptor.size);
    assert!(
        String::from_utf8_lossy(&content).contains("c s "),
        "the snapshot file holds the machine's tables"
    );
    drop(storage);

    let node = start(db.clone(), Counters::default(), cfg).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    assert_eq!(node.propose(b"s=1".to_vec()).await.unwrap(), Ok(41));
    assert_eq!(applies(&db), 41);
    node.shutdown();
}
