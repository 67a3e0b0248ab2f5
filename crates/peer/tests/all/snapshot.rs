//! Snapshots over the peer port: real raft nodes on redb files, real TLS on 127.0.0.1. A member
//! that starts far behind catches up through a snapshot many frames long; a snapshot damaged or
//! cut off on the way is refused, leaves no file, and never reaches raft.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};
use skiff_peer::{BoxFuture, JoinRequest, JoinResponse, PeerHandler, PeerTransport, TransportOptions};
use skiff_pki::{ClusterCa, NodeCert};
use skiff_raft::snapshot::{IncomingSnapshot, SnapshotDescriptor};
use skiff_raft::{RaftConfig, RaftHandle, StartOptions, StateMachine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{control, raw_connect, wait_until};

const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");

/// A machine of named blobs: a proposal is `name\0bytes`; its snapshot is every blob as
/// `[name len u32][name][len u32][bytes]`.
struct Blobs;

impl StateMachine for Blobs {
    type Output = ();

    fn init(&mut self, txn: &redb::WriteTransaction) -> Result<(), String> {
        txn.open_table(BLOBS).map(|_| ()).map_err(|e| e.to_string())
    }

    fn apply(
        &mut self,
        txn: &redb::WriteTransaction,
        _index: u64,
        p: &[u8],
    ) -> Result<(), skiff_raft::Fatal> {
        let fatal = |e: &dyn std::fmt::Display| skiff_raft::Fatal(e.to_string());
        let at = p.iter().position(|b| *b == 0).ok_or_else(|| fatal(&"no name"))?;
        let name = std::str::from_utf8(&p[..at]).map_err(|e| fatal(&e))?;
        let mut t = txn.open_table(BLOBS).map_err(|e| fatal(&e))?;
        t.insert(name, &p[at + 1..]).map_err(|e| fatal(&e))?;
        Ok(())
    }

    fn committed(&mut self) {}

    fn snapshot(&self, txn: &redb::ReadTransaction, out: &mut dyn Write) -> Result<(), String> {
        let t = txn.open_table(BLOBS).map_err(|e| e.to_string())?;
        for item in t.iter().map_err(|e| e.to_string())? {
            let (k, v) = item.map_err(|e| e.to_string())?;
            for part in [k.value().as_bytes(), v.value()] {
                out.write_all(&(part.len() as u32).to_le_bytes())
                    .and_then(|()| out.write_all(part))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn restore(&mut self, txn: &redb::WriteTransaction, data: &mut dyn Read) -> Result<(), String> {
        let mut all = Vec::new();
        data.read_to_end(&mut all).map_err(|e| e.to_string())?;
        let mut t = txn.open_table(BLOBS).map_err(|e| e.to_string())?;
        t.retain(|_, _| false).map_err(|e| e.to_string())?;
        fn take<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or("truncated")?;
            let len = u32::from_le_bytes(*len) as usize;
            let part = tail.get(..len).ok_or("truncated")?;
            *rest = &tail[len..];
            Ok(part)
        }
        let mut rest = all.as_slice();
        while !rest.is_empty() {
            let name = std::str::from_utf8(take(&mut rest)?).map_err(|e| e.to_string())?;
            let value = take(&mut rest)?;
            t.insert(name, value).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Every blob in `db`.
fn blobs(db: &redb::Database) -> BTreeMap<String, Vec<u8>> {
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(BLOBS).unwrap();
    t.iter()
        .unwrap()
        .map(|i| {
            let (k, v) = i.unwrap();
            (k.value().to_owned(), v.value().to_vec())
        })
        .collect()
}

/// Steps what arrives into a raft node.
struct ToRaft(RaftHandle<()>);

impl PeerHandler for ToRaft {
    fn raft(&self, msg: Message) {
        let _ = self.0.step(msg);
    }

    fn snapshot(&self, msg: Message) -> Result<IncomingSnapshot, String> {
        self.0.receive_snapshot(msg).map_err(|e| e.to_string())
    }

    fn join(&self, _req: JoinRequest) -> BoxFuture<'_, Result<JoinResponse, String>> {
        Box::pin(async { Err("no joins here".to_owned()) })
    }
}

/// One raft node serving its peer port.
struct Node {
    handle: RaftHandle<()>,
    db: Arc<redb::Database>,
    transport: PeerTransport,
    snapshots: PathBuf,
}

async fn node(dir: &Path, cert: &NodeCert, id: u64, voters: &[u64]) -> (Node, SocketAddr) {
    let db = Arc::new(redb::Database::create(dir.join(format!("node{id}.redb"))).unwrap());
    let snapshots = dir.join(format!("snapshots-{id}"));
    let transport = PeerTransport::with_options(
        tokio::runtime::Handle::current(),
        skiff_pki::client_config(cert).unwrap(),
        TransportOptions {
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..TransportOptions::default()
        },
    );
    let cfg = RaftConfig {
        id,
        voters: voters.to_vec(),
        tick: Duration::from_millis(10),
        snapshot_every: 5,
        keep_entries: 0,
        max_proposal_bytes: 2 << 20,
        snapshot_dir: snapshots.clone(),
        ..RaftConfig::default()
    };
    let options = StartOptions {
        transport: Arc::new(transport.clone()),
        ..StartOptions::default()
    };
    let handle = skiff_raft::start_with(db.clone(), Blobs, cfg, options).unwrap();
    let (addr, _task) = crate::support::start(cert, Arc::new(ToRaft(handle.clone())), None).await;
    (
        Node {
            handle,
            db,
            transport,
            snapshots,
        },
        addr,
    )
}

/// The snapshot files in `dir`.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_far_behind_catches_up_through_a_snapshot_many_frames_long() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::generate("test").unwrap();
    let certs: Vec<NodeCert> = (1..=3).map(|id| control(&ca, id)).collect();
    let voters = [1, 2, 3];
    let (n1, a1) = node(dir.path(), &certs[0], 1, &voters).await;
    let (n2, a2) = node(dir.path(), &certs[1], 2, &voters).await;
    n1.transport.set_peer(2, a2.to_string());
    n2.transport.set_peer(1, a1.to_string());
    let leader = n1.handle.wait_leader(Duration::from_secs(20)).await.unwrap();
    let l = if leader == 1 { &n1 } else { &n2 };
    // 16 MiB of blobs: four times a frame's limit.
    for i in 0..16u8 {
        let mut p = format!("blob-{i:02}\0").into_bytes();
        p.extend((0..1 << 20).map(|j: u32| (j as u8) ^ i));
        l.handle.propose(p).await.unwrap();
    }
    wait_until(20, "the leader compacted its log", || {
        l.handle.status().first_index > 2 && l.handle.status().snapshot_index >= 16
    })
    .await;

    // Node 3 starts with nothing but the bootstrap snapshot: only a snapshot brings it up.
    let (n3, a3) = node(dir.path(), &certs[2], 3, &voters).await;
    for (n, addrs) in [
        (&n1, [(2, a2), (3, a3)]),
        (&n2, [(1, a1), (3, a3)]),
        (&n3, [(1, a1), (2, a2)]),
    ] {
        for (id, a) in addrs {
            n.transport.set_peer(id, a.to_string());
        }
    }
    let commit = l.handle.status().commit;
    wait_until(30, "node 3 caught up", || n3.handle.status().applied >= commit).await;
    assert_eq!(blobs(&n3.db), blobs(&l.db));
    assert_eq!(blobs(&n3.db).len(), 16);
    assert!(
        l.transport.stats().snapshots_sent >= 1,
        "{:?}",
        l.transport.stats()
    );
    let names = files(&n3.snapshots);
    assert_eq!(names.len(), 1, "only the installed snapshot stays: {names:?}");
    let size = std::fs::metadata(n3.snapshots.join(&names[0])).unwrap().len();
    assert!(
        size > 3 * skiff_peer::transport::FRAME_MAX_BYTES as u64,
        "{size} bytes"
    );
    for n in [&n1, &n2, &n3] {
        n.handle.shutdown();
    }
}

/// A snapshot at index 10 of term 5 from node 1 to node 2, describing `data`.
fn snapshot_message(data: &[u8]) -> Vec<u8> {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    (m.from, m.to, m.term) = (1, 2, 5);
    let descriptor = SnapshotDescriptor {
        members: BTreeMap::from([(1, Vec::new()), (2, Vec::new())]),
        size: data.len() as u64,
        sha256: Sha256::digest(data).into(),
    };
    let snap = m.mut_snapshot();
    snap.data = descriptor.encode().into();
    snap.mut_metadata().index = 10;
    snap.mut_metadata().term = 5;
    snap.mut_metadata().mut_conf_state().voters = vec![1, 2];
    m.write_to_bytes().unwrap()
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend((payload.len() as u32).to_be_bytes());
    f.extend(payload);
    f
}

/// Reads the answer to a snapshot transfer: the refusal's reason, empty when taken.
async fn answer<S: tokio::io::AsyncRead + Unpin>(conn: &mut S) -> String {
    let mut head = [0u8; 5];
    conn.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], 6, "a SNAPSHOT_ACK frame");
    let mut reason = vec![0u8; u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize];
    conn.read_exact(&mut reason).await.unwrap();
    String::from_utf8(reason).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_cut_off_snapshot_is_refused_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::generate("test").unwrap();
    // Node 2 of a group of two whose node 1 is this test, speaking the wire format itself.
    let (n2, addr) = node(dir.path(), &control(&ca, 2), 2, &[1, 2]).await;
    let as_node1 = skiff_pki::client_config(&control(&ca, 1)).unwrap();
    let mut data = Vec::new();
    for (name, len) in [("a", 3usize << 20), ("b", 10)] {
        data.extend((name.len() as u32).to_le_bytes());
        data.extend(name.as_bytes());
        data.extend((len as u32).to_le_bytes());
        data.extend((0..len).map(|i| i as u8));
    }
    let begin = frame(3, &snapshot_message(&data));
    let bootstrap = files(&n2.snapshots);

    // One bit flipped on the way: refused by its digest, nothing stays, raft never hears of it.
    let mut conn = raw_connect(addr, as_node1.clone()).await;
    conn.write_all(&begin).await.unwrap();
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        let mut chunk = chunk.to_vec();
        if i == 1 {
            chunk[7] ^= 0x20;
        }
        conn.write_all(&frame(4, &chunk)).await.unwrap();
    }
    conn.write_all(&frame(5, &[])).await.unwrap();
    let reason = answer(&mut conn).await;
    assert!(
        reason.contains("hashes to") && reason.contains("refused"),
        "{reason}"
    );
    assert_eq!(files(&n2.snapshots), bootstrap);
    assert_eq!(n2.handle.status().applied, 1);

    // Cut off after a chunk: the partial file goes with the connection.
    let mut conn = raw_connect(addr, as_node1.clone()).await;
    conn.write_all(&begin).await.unwrap();
    conn.write_all(&frame(4, &data[..1 << 20])).await.unwrap();
    conn.flush().await.unwrap();
    wait_until(10, "the partial file is written", || {
        files(&n2.snapshots).len() > bootstrap.len()
    })
    .await;
    drop(conn);
    wait_until(10, "the partial file is removed", || {
        files(&n2.snapshots) == bootstrap
    })
    .await;

    // A snapshot frame among raft messages closes the connection.
    let mut conn = raw_connect(addr, as_node1.clone()).await;
    let mut hb = crate::support::msg(1, 2, 5);
    hb.set_msg_type(MessageType::MsgHeartbeat);
    let mut bytes = crate::support::raft_frame(&hb);
    bytes.extend(frame(4, b"stray"));
    assert!(crate::support::server_closes(&mut conn, &bytes).await);

    // Intact: taken, and raft installs it.
    let mut conn = raw_connect(addr, as_node1).await;
    conn.write_all(&begin).await.unwrap();
    for chunk in data.chunks(1 << 20) {
        conn.write_all(&frame(4, chunk)).await.unwrap();
    }
    conn.write_all(&frame(5, &[])).await.unwrap();
    assert_eq!(answer(&mut conn).await, "");
    wait_until(10, "the snapshot is installed", || {
        n2.handle.status().applied == 10
    })
    .await;
    assert_eq!(blobs(&n2.db)["b"], (0..10).collect::<Vec<u8>>());
    let names = files(&n2.snapshots);
    assert_eq!(names.len(), 1, "the bootstrap snapshot was superseded: {names:?}");
    assert!(names[0].starts_with("5-10-"), "{names:?}");
    n2.handle.shutdown();
}
