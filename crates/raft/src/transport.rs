//! The seam between the driver and the network.
//!
//! The driver hands every message for another node to a [`Transport`], and every snapshot (a
//! descriptor message plus its file) to [`Transport::send_snapshot`]; the receiving side passes
//! what arrives to [`crate::RaftHandle::step`] (or [`crate::RaftHandle::step_bytes`]), and a
//! snapshot's chunks to [`crate::RaftHandle::receive_snapshot`]. Raft tolerates lost,
//! duplicated and reordered messages, so a transport may drop what it cannot deliver; a snapshot
//! transfer always ends with its [`crate::snapshot::SnapshotReport`].
//!
//! [`MemNetwork`] connects nodes in one process, for tests and simulations; it can cut a node off
//! to simulate a partition, and damage or cut off a snapshot transfer.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::RaftError;
use crate::snapshot::{CHUNK_BYTES, IncomingSnapshot, OutgoingSnapshot};

/// Delivers raft messages and snapshots to other nodes.
///
/// Both methods are called on the driver's thread and must not block for long: queue (or hand
/// the work to a task) and return.
pub trait Transport: Send + Sync + 'static {
    /// Sends messages, each to its `to` node; undeliverable messages may be dropped.
    fn send(&self, msgs: Vec<Message>);

    /// Streams a snapshot to its node: the data in chunks of at most
    /// [`crate::snapshot::CHUNK_BYTES`], never reading further ahead than the connection takes
    /// (a slow follower must not make the leader buffer the file), then the message; reports the
    /// outcome with the snapshot's [`crate::snapshot::SnapshotReport`] (dropping it reports a
    /// failure).
    fn send_snapshot(&self, snapshot: OutgoingSnapshot);
}

/// A transport for a one-member group: there is nobody to talk to, so messages are dropped.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTransport;

impl Transport for NoTransport {
    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            tracing::debug!(to = m.to, kind = ?m.get_msg_type(), "no transport; dropping raft message");
        }
    }

    fn send_snapshot(&self, snapshot: OutgoingSnapshot) {
        let (_, _, report) = snapshot.into_parts();
        report.failed("this node has no transport");
    }
}

/// What [`MemNetwork::fail_next_snapshot`] does to the next snapshot transfer to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFault {
    /// Flips one bit of the data on the way (the receiver must refuse it by its digest).
    Corrupt,
    /// Stops after this many bytes, as a connection that breaks.
    CutAfter(u64),
}

type Inbox = Arc<dyn Fn(Message) -> Result<(), RaftError> + Send + Sync>;
type SnapshotInbox = Arc<dyn Fn(Message) -> Result<IncomingSnapshot, RaftError> + Send + Sync>;

#[derive(Default)]
struct Net {
    inboxes: HashMap<u64, (Inbox, SnapshotInbox)>,
    isolated: BTreeSet<u64>,
    faults: HashMap<u64, Vec<SnapshotFault>>,
}

/// An in-process network joining several drivers; messages are delivered directly, snapshots
/// in [`CHUNK_BYTES`] chunks on a thread per transfer.
#[derive(Default, Clone)]
pub struct MemNetwork {
    net: Arc<Mutex<Net>>,
    largest: Arc<AtomicUsize>,
    chunks: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

impl MemNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `handle` reachable as node `id`.
    ///
    /// The network keeps a clone of the handle, so the node runs until it is
    /// [unregistered](MemNetwork::unregister) or [shut down](crate::RaftHandle::shutdown).
    pub fn register<O: Send + 'static>(&self, id: u64, handle: crate::RaftHandle<O>) {
        let steps = handle.clone();
        let inbox: Inbox = Arc::new(move |m| steps.step(m));
        let snapshots: SnapshotInbox = Arc::new(move |m| handle.receive_snapshot(m));
        self.lock().inboxes.insert(id, (inbox, snapshots));
    }

    /// Removes node `id`; messages to it are dropped from now on.
    pub fn unregister(&self, id: u64) {
        self.lock().inboxes.remove(&id);
    }

    /// Cuts node `id` off: nothing it sends or is sent arrives until [`MemNetwork::heal`].
    pub fn isolate(&self, id: u64) {
        self.lock().isolated.insert(id);
    }

    /// Reconnects every isolated node.
    pub fn heal(&self) {
        self.lock().isolated.clear();
    }

    /// Makes the next snapshot transfer to node `to` suffer `fault` (faults queue up, one per
    /// transfer).
    pub fn fail_next_snapshot(&self, to: u64, fault: SnapshotFault) {
        self.lock().faults.entry(to).or_default().push(fault);
    }

    /// The largest encoded raft message delivered so far, in bytes.
    pub fn largest_message(&self) -> usize {
        self.largest.load(Ordering::Relaxed)
    }

    /// Snapshot chunks delivered so far.
    pub fn snapshot_chunks(&self) -> usize {
        self.chunks.load(Ordering::Relaxed)
    }

    /// Snapshot transfers that failed so far (refused, cut off, or the node unreachable).
    pub fn failed_snapshots(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// The transport that node `from` sends through.
    pub fn transport(&self, from: u64) -> Arc<dyn Transport> {
        Arc::new(MemTransport {
            from,
            network: self.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Net> {
        // The map stays consistent even if a holder panicked: every update is a single insert/remove.
        self.net.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Node `to`'s inboxes, unless `from` or `to` is cut off.
    fn route(&self, from: u64, to: u64) -> Option<(Inbox, SnapshotInbox)> {
        let net = self.lock();
        if net.isolated.contains(&from) || net.isolated.contains(&to) {
            return None;
        }
        net.inboxes.get(&to).cloned()
    }

    fn deliver(&self, inbox: &Inbox, m: Message) -> Result<(), RaftError> {
        self.largest
            .fetch_max(m.compute_size() as usize, Ordering::Relaxed);
        inbox(m)
    }
}

struct MemTransport {
    from: u64,
    network: MemNetwork,
}

impl Transport for MemTransport {
    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            // Deliver outside the lock: the inbox only enqueues for the receiving driver.
            if let Some((inbox, _)) = self.network.route(self.from, m.to) {
                let to = m.to;
                // A stopped or overloaded node loses the message, as a real network would.
                if let Err(e) = self.network.deliver(&inbox, m) {
                    tracing::debug!(to, error = %e, "in-memory network dropped a message");
                }
            }
        }
    }

    fn send_snapshot(&self, snapshot: OutgoingSnapshot) {
        let Some((inbox, snapshots)) = self.network.route(self.from, snapshot.to()) else {
            self.network.failed.fetch_add(1, Ordering::Relaxed);
            let (_, _, report) = snapshot.into_parts();
            report.failed("the node is unreachable");
            return;
        };
        let fault = {
            let mut net = self.network.lock();
            let queue = net.faults.entry(snapshot.to()).or_default();
            (!queue.is_empty()).then(|| queue.remove(0))
        };
        let network = self.network.clone();
        // A thread per transfer: the driver's thread never waits for the copy.
        let spawned = std::thread::Builder::new()
            .name(format!("skiff-mem-snapshot-{}", snapshot.to()))
            .spawn(move || {
                let (message, data, report) = snapshot.into_parts();
                match copy(&network, &inbox, &snapshots, message, data, fault) {
                    Ok(()) => report.finished(),
                    Err(why) => {
                        network.failed.fetch_add(1, Ordering::Relaxed);
                        report.failed(why);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a snapshot transfer thread");
        }
    }
}

/// Streams one snapshot into the receiving node, chunk by chunk, then steps its message.
fn copy(
    network: &MemNetwork,
    inbox: &Inbox,
    snapshots: &SnapshotInbox,
    message: Message,
    mut data: Box<dyn Read + Send>,
    fault: Option<SnapshotFault>,
) -> Result<(), String> {
    let mut incoming = snapshots(message).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut sent = 0u64;
    loop {
        let n = data
            .read(&mut buf)
            .map_err(|e| format!("reading the snapshot: {e}"))?;
        if n == 0 {
            break;
        }
        let mut chunk = &mut buf[..n];
        if let Some(SnapshotFault::CutAfter(limit)) = fault {
            let left = limit.saturating_sub(sent);
            if left < n as u64 {
                chunk = &mut chunk[..left as usize];
                incoming.write(chunk).map_err(|e| e.to_string())?;
                // Dropping `incoming` removes its partial file, as a broken connection does.
                return Err(format!("the connection broke after {limit} bytes"));
            }
        }
        if fault == Some(SnapshotFault::Corrupt) && sent == 0 {
            chunk[n / 2] ^= 1;
        }
        incoming.write(chunk).map_err(|e| e.to_string())?;
        network.chunks.fetch_add(1, Ordering::Relaxed);
        sent += n as u64;
    }
    let message = incoming.finish().map_err(|e| e.to_string())?;
    network.deliver(inbox, message).map_err(|e| e.to_string())
}
