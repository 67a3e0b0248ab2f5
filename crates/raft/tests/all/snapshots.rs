//! Snapshots streamed as files over the in-memory network: a lagging node catches up through a
//! snapshot far larger than any raft message, a damaged or cut-off transfer is refused, leaves no
//! file behind and is sent again, and snapshot directories keep only what is current.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable};
use skiff_raft::snapshot::CHUNK_BYTES;
use skiff_raft::transport::{MemNetwork, SnapshotFault};
use skiff_raft::{RaftConfig, RaftHandle, Role, StartOptions, start, start_with};

use crate::support::{COUNTERS, Counters, config, counter, eventually, open_db};

const WAIT: Duration = Duration::from_secs(60);

type Handle = RaftHandle<Result<u64, String>>;

/// Three nodes over one in-memory network, snapshotting often.
struct Group {
    _dir: tempfile::TempDir,
    net: MemNetwork,
    nodes: Vec<(Handle, Arc<Database>, Arc<AtomicUsize>, PathBuf)>,
}

impl Group {
    async fn start() -> Group {
        let dir = tempfile::tempdir().unwrap();
        let net = MemNetwork::new();
        let mut nodes = Vec::new();
        for id in 1..=3 {
            let db = open_db(&dir.path().join(format!("node{id}.redb")));
            let cfg = RaftConfig {
                snapshot_every: 20,
                keep_entries: 2,
                ..config(dir.path(), id, &[1, 2, 3])
            };
            let snapshots = cfg.snapshot_dir.clone();
            let sm = Counters {
                background_snapshots: true,
                ..Counters::default()
            };
            let restores = sm.restores.clone();
            let options = StartOptions {
                transport: net.transport(id),
                ..StartOptions::default()
            };
            let handle = start_with(db.clone(), sm, cfg, options).unwrap();
            net.register(id, handle.clone());
            nodes.push((handle, db, restores, snapshots));
        }
        nodes[0].0.wait_leader(WAIT).await.unwrap();
        Group {
            _dir: dir,
            net,
            nodes,
        }
    }

    fn leader(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.0.status().role == Role::Leader)
    }

    /// Cuts off a follower, writes `count` counters with long names (about 420 bytes of
    /// snapshot each) and compacts the leader's log past what the follower has. Returns
    /// (leader, lagging) indexes.
    async fn lag_behind(&self, count: usize) -> (usize, usize) {
        eventually("a leader", WAIT, || self.leader().is_some()).await;
        let leader = self.leader().unwrap();
        let lagging = (leader + 1) % 3;
        let lag_id = lagging as u64 + 1;
        self.net.isolate(lag_id);
        let behind = self.nodes[lagging].0.status().applied;
        let l = &self.nodes[leader].0;
        for batch in (0..count).collect::<Vec<_>>().chunks(500) {
            let writes = batch
                .iter()
                .map(|i| l.propose(format!("{i:0>400}=1").into_bytes()));
            for out in futures::future::join_all(writes).await {
                out.unwrap().unwrap();
            }
        }
        // Small writes until a snapshot covers the bulk and the log is compacted past the
        // lagging node (snapshots are taken in the background, so keep writing meanwhile).
        let bulk = l.status().applied;
        let mut n = 0;
        while l.status().first_index <= behind + 1 || l.status().snapshot_index < bulk {
            l.propose(b"tick=1".to_vec()).await.unwrap().unwrap();
            n += 1;
            assert!(n < 5_000, "the leader never compacted its log: {:?}", l.status());
        }
        (leader, lagging)
    }

    /// Heals the network and waits until node `i` applied what the leader committed.
    async fn catch_up(&self, leader: usize, i: usize) {
        self.net.heal();
        let commit = self.nodes[leader].0.status().commit;
        eventually("the lagging node caught up", WAIT, || {
            self.nodes[i].0.status().applied >= commit
        })
        .await;
    }
}

/// Every counter in `db`.
fn counters(db: &Database) -> BTreeMap<String, u64> {
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(COUNTERS).unwrap();
    t.iter()
        .unwrap()
        .map(|item| {
            let (k, v) = item.unwrap();
            (k.value().to_owned(), v.value())
        })
        .collect()
}

/// The snapshot files in `dir`, and whether a temporary one is among them.
fn files(dir: &Path) -> (Vec<String>, bool) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let temp = names.iter().any(|n| n.ends_with(".tmp"));
    (names, temp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_catches_up_through_a_snapshot_streamed_in_chunks() {
    let g = Group::start().await;
    let (leader, lagging) = g.lag_behind(12_000).await;
    g.catch_up(leader, lagging).await;
    let (handle, db, restores, dir) = &g.nodes[lagging];
    // One snapshot, or two when the leader took a newer one (in the background) meanwhile.
    assert!(restores.load(Ordering::Relaxed) >= 1, "a snapshot was installed");
    assert_eq!(counter(db, &format!("{:0>400}", 11_999)), 1);
    assert_eq!(counters(db), counters(&g.nodes[leader].1));

    // The snapshot was several MiB, far more than any raft message carried.
    let (names, temp) = files(dir);
    assert!(!temp, "no temporary file stays: {names:?}");
    let snaps: Vec<_> = names.iter().filter(|n| n.ends_with(".snap")).collect();
    assert_eq!(
        snaps.len(),
        1,
        "only the installed snapshot's file stays: {names:?}"
    );
    let size = std::fs::metadata(dir.join(snaps[0])).unwrap().len() as usize;
    assert!(size > 4 * CHUNK_BYTES, "the snapshot is {size} bytes");
    assert!(
        g.net.snapshot_chunks() >= size.div_ceil(CHUNK_BYTES),
        "{} chunks for {size} bytes",
        g.net.snapshot_chunks()
    );
    assert!(
        g.net.largest_message() < CHUNK_BYTES,
        "the largest raft message was {} bytes",
        g.net.largest_message()
    );
    assert!(handle.status().snapshot_index > 0);
    let (names, _) = files(&g.nodes[leader].3);
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".snap")).count(),
        1,
        "the leader keeps only its newest snapshot: {names:?}"
    );
    for n in &g.nodes {
        n.0.shutdown();
    }
}

async fn refused_then_sent_again(fault: SnapshotFault) {
    let g = Group::start().await;
    let (leader, lagging) = g.lag_behind(6_000).await;
    g.net.fail_next_snapshot(lagging as u64 + 1, fault);
    g.catch_up(leader, lagging).await;
    assert!(
        g.net.failed_snapshots() >= 1,
        "the {fault:?} transfer failed first"
    );
    let (_, db, restores, dir) = &g.nodes[lagging];
    assert!(restores.load(Ordering::Relaxed) >= 1, "a snapshot was installed");
    // The damaged or partial data never reached the machine: its tables are the leader's.
    assert_eq!(counters(db), counters(&g.nodes[leader].1));
    let (names, temp) = files(dir);
    assert!(!temp, "the failed transfer left no partial file: {names:?}");
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".snap")).count(),
        1,
        "{names:?}"
    );
    for n in &g.nodes {
        n.0.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_refused_by_its_digest_and_sent_again() {
    refused_then_sent_again(SnapshotFault::Corrupt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_transfer_leaves_nothing_behind_and_is_sent_again() {
    refused_then_sent_again(SnapshotFault::CutAfter(CHUNK_BYTES as u64 / 2 * 3)).await;
}

/// Raft snapshot data as releases before snapshot files wrote it: the machine's bytes inline
/// (`SKFS`, version 1, the members, the length, the bytes).
fn inline(members: &[u64], machine: &[u8]) -> Vec<u8> {
    let mut out = b"SKFS\x01".to_vec();
    out.extend((members.len() as u32).to_le_bytes());
    for id in members {
        out.extend(id.to_le_bytes());
        out.extend(0u32.to_le_bytes());
    }
    out.extend((machine.len() as u64).to_le_bytes());
    out.extend(machine);
    out
}

#[tokio::test]
async fn inline_snapshots_of_older_releases_are_installed_and_moved_into_files() {
    use raft::eraftpb::{Message, MessageType};
    use skiff_raft::snapshot::SnapshotDescriptor;
    use skiff_raft::storage::RedbStorage;

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1, &[]);
    let path = dir.path().join("node.redb");
    let machine = b"c a 7\na n 3\n";
    let mut msg = Message::default();
    msg.set_msg_type(MessageType::MsgSnapshot);
    (msg.from, msg.to, msg.term) = (9, 1, 2);
    let snap = msg.mut_snapshot();
    snap.data = inline(&[1, 9], machine).into();
    (snap.mut_metadata().index, snap.mut_metadata().term) = (5, 2);
    snap.mut_metadata().mut_conf_state().voters = vec![1, 9];

    // An older leader sends the state inline: installed, and kept as a file to send on.
    let db = open_db(&path);
    let node = start(db.clone(), Counters::default(), cfg.clone()).unwrap();
    node.step(msg.clone()).unwrap();
    eventually("the inline snapshot is installed", WAIT, || {
        node.status().applied == 5
    })
    .await;
    assert_eq!(counter(&db, "a"), 7);
    node.shutdown();
    let content = |dir: &Path| {
        let (names, temp) = files(dir);
        assert!(!temp && names.len() == 1, "{names:?}");
        std::fs::read(dir.join(&names[0])).unwrap()
    };
    assert_eq!(content(&cfg.snapshot_dir), machine);

    // A file whose stored snapshot is still inline (written by an older release) is moved into
    // the snapshot directory at start.
    std::fs::remove_dir_all(&cfg.snapshot_dir).unwrap();
    let mut storage = RedbStorage::open(db.clone(), &[]).unwrap();
    storage.apply_snapshot(msg.get_snapshot()).unwrap();
    drop(storage);
    let node = start(db.clone(), Counters::default(), cfg.clone()).unwrap();
    node.shutdown();
    assert_eq!(content(&cfg.snapshot_dir), machine);
    let stored = RedbStorage::open(db.clone(), &[])
        .unwrap()
        .stored_snapshot()
        .unwrap()
        .unwrap();
    let descriptor = SnapshotDescriptor::decode(&stored.data).unwrap();
    assert_eq!(descriptor.size, machine.len() as u64);
    assert_eq!(descriptor.members.keys().copied().collect::<Vec<_>>(), vec![1, 9]);
    assert_eq!(counter(&db, "a"), 7);
}

#[tokio::test]
async fn stray_and_superseded_files_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RaftConfig {
        snapshot_every: 5,
        keep_entries: 1,
        ..config(dir.path(), 1, &[1])
    };
    let db = open_db(&dir.path().join("node.redb"));
    let node = start(db.clone(), Counters::default(), cfg.clone()).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    for _ in 0..12 {
        node.propose(b"a=1".to_vec()).await.unwrap().unwrap();
    }
    eventually("a snapshot", WAIT, || node.status().snapshot_index >= 10).await;
    node.shutdown();
    // A crash while writing or receiving leaves temporary files; an older snapshot may be left
    // by a crash before it was removed.
    let stray = ["local-7.tmp", "incoming-9.tmp", "1-2-00aa00aa00aa00aa.snap"];
    for name in stray {
        std::fs::write(cfg.snapshot_dir.join(name), b"partial").unwrap();
    }
    let node = start(db.clone(), Counters::default(), cfg.clone()).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    let (names, temp) = files(&cfg.snapshot_dir);
    assert!(!temp && names.len() == 1, "{names:?}");
    assert_eq!(counter(&db, "a"), 12);
    node.shutdown();
}
