//! The sending side: one queue, one task and one persistent TLS connection per peer.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protobuf::Message as _;
use raft::eraftpb::Message;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use skiff_pki::identity_from_cert;
use skiff_pki::tls::control_server_name;
use skiff_raft::snapshot::OutgoingSnapshot;

use super::frame::{self, FRAME_MAX_BYTES};
use super::handshake_error;
use crate::PeerError;

/// Tuning of a [`PeerTransport`]. The defaults suit a LAN or a WAN.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Messages queued per peer; when full, new messages to that peer are dropped.
    pub queue_capacity: usize,
    /// Limit for opening a connection (TCP connect, then TLS handshake).
    pub connect_timeout: Duration,
    /// Limit for writing one batch; a stalled peer is disconnected after it.
    pub write_timeout: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            queue_capacity: 4096,
            connect_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

/// Stop adding messages to a batch once it holds this many bytes.
const BATCH_BYTES: usize = FRAME_MAX_BYTES;

/// Sends raft messages to the other control nodes over mutually authenticated TLS.
///
/// [`Transport::send`](skiff_raft::transport::Transport::send) never blocks: each message goes
/// into its peer's bounded queue, or is dropped (raft resends). Each peer has a task on the
/// runtime given at construction that connects lazily, writes everything queued as one batch per
/// write, and reconnects with jittered exponential backoff. A snapshot
/// ([`Transport::send_snapshot`](skiff_raft::transport::Transport::send_snapshot)) streams on a
/// connection of its own, one per peer at a time (see [`crate::transport`]'s snapshot frames).
/// Cloning is cheap; the tasks stop when the last clone is dropped or the peer is removed.
#[derive(Clone)]
pub struct PeerTransport {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Handle,
    shared: Arc<Shared>,
    links: Mutex<HashMap<u64, Link>>,
}

/// What the peer tasks share.
pub(super) struct Shared {
    tls: Arc<ClientConfig>,
    options: TransportOptions,
    dropped: AtomicU64,
    sent: AtomicU64,
    batches: AtomicU64,
    pub(super) snapshots_sent: AtomicU64,
    pub(super) snapshots_failed: AtomicU64,
}

/// Counters of a [`PeerTransport`], for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Messages written to a connection.
    pub sent_messages: u64,
    /// Writes that carried them (one batch per write).
    pub sent_batches: u64,
    /// Messages dropped: queue full, unknown peer, stale while disconnected, or too large.
    pub dropped: u64,
    /// Snapshots streamed to a peer that took them.
    pub snapshots_sent: u64,
    /// Snapshot transfers that failed (unreachable, broken off, refused).
    pub snapshots_failed: u64,
}

struct Link {
    queue: mpsc::Sender<Message>,
    addr: watch::Sender<String>,
    task: JoinHandle<()>,
    /// The snapshot being streamed to the peer, on a connection of its own.
    snapshot: Option<JoinHandle<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
        // An aborted transfer drops its report, which tells raft it failed.
        if let Some(t) = self.snapshot.take() {
            t.abort();
        }
    }
}

impl std::fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTransport")
            .field("peers", &self.peers())
            .finish_non_exhaustive()
    }
}

impl PeerTransport {
    /// A transport with no peers yet, sending with `tls` (from [`skiff_pki::client_config`]) and
    /// running its tasks on `runtime`.
    pub fn new(runtime: Handle, tls: Arc<ClientConfig>) -> Self {
        Self::with_options(runtime, tls, TransportOptions::default())
    }

    /// As [`PeerTransport::new`], with explicit tuning.
    pub fn with_options(runtime: Handle, tls: Arc<ClientConfig>, options: TransportOptions) -> Self {
        PeerTransport {
            inner: Arc::new(Inner {
                runtime,
                shared: Arc::new(Shared {
                    tls,
                    options,
                    dropped: AtomicU64::new(0),
                    sent: AtomicU64::new(0),
                    batches: AtomicU64::new(0),
                    snapshots_sent: AtomicU64::new(0),
                    snapshots_failed: AtomicU64::new(0),
                }),
                links: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Adds peer `id` at `addr` (`host:port`), or moves it there: an open connection to an old
    /// address is closed and the next message connects to the new one.
    pub fn set_peer(&self, id: u64, addr: impl Into<String>) {
        let addr = addr.into();
        let mut links = self.links();
        if let Some(link) = links.get(&id) {
            link.addr.send_if_modified(|old| {
                let changed = *old != addr;
                *old = addr.clone();
                changed
            });
            return;
        }
        let (queue, rx) = mpsc::channel(self.inner.shared.options.queue_capacity.max(1));
        let (addr_tx, addr_rx) = watch::channel(addr);
        let task = self
            .inner
            .runtime
            .spawn(run_link(id, rx, addr_rx, self.inner.shared.clone()));
        links.insert(
            id,
            Link {
                queue,
                addr: addr_tx,
                task,
                snapshot: None,
            },
        );
    }

    /// Forgets peer `id`: its connection is closed and queued messages are dropped.
    pub fn remove_peer(&self, id: u64) {
        self.links().remove(&id);
    }

    /// The peers and their addresses.
    pub fn peers(&self) -> BTreeMap<u64, String> {
        self.links()
            .iter()
            .map(|(id, l)| (*id, l.addr.borrow().clone()))
            .collect()
    }

    /// The counters so far.
    pub fn stats(&self) -> TransportStats {
        let s = &self.inner.shared;
        TransportStats {
            sent_messages: s.sent.load(Ordering::Relaxed),
            sent_batches: s.batches.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            snapshots_sent: s.snapshots_sent.load(Ordering::Relaxed),
            snapshots_failed: s.snapshots_failed.load(Ordering::Relaxed),
        }
    }

    fn links(&self) -> MutexGuard<'_, HashMap<u64, Link>> {
        self.inner.links.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl skiff_raft::transport::Transport for PeerTransport {
    fn send(&self, msgs: Vec<Message>) {
        let links = self.links();
        for msg in msgs {
            let to = msg.to;
            let Some(link) = links.get(&to) else {
                self.inner.shared.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(to, kind = ?msg.get_msg_type(), "no address for peer; dropping raft message");
                continue;
            };
            if let Err(e) = link.queue.try_send(msg) {
                self.inner.shared.dropped.fetch_add(1, Ordering::Relaxed);
                let kind = match &e {
                    mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => {
                        m.get_msg_type()
                    }
                };
                tracing::debug!(to, ?kind, "peer queue full; dropping raft message");
            }
        }
    }

    fn send_snapshot(&self, snapshot: OutgoingSnapshot) {
        let to = snapshot.to();
        let mut links = self.links();
        let Some(link) = links.get_mut(&to) else {
            self.inner.shared.snapshots_failed.fetch_add(1, Ordering::Relaxed);
            let (_, _, report) = snapshot.into_parts();
            report.failed(format!("no address for peer {to}"));
            return;
        };
        let addr = link.addr.borrow().clone();
        let task = self.inner.runtime.spawn(super::snapshot::send(
            to,
            addr,
            snapshot,
            self.inner.shared.clone(),
        ));
        // One transfer per peer: raft asks for a new one only after the last one ended, so one
        // still running is stale (it reports its failure as it is aborted).
        if let Some(old) = link.snapshot.replace(task) {
            old.abort();
        }
    }
}

/// Jittered exponential backoff.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max, next: min }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    /// A delay between half and all of the current step; the step then doubles up to `max`.
    fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// The task behind one peer: connect on demand, send batches, reconnect with backoff.
async fn run_link(
    id: u64,
    mut queue: mpsc::Receiver<Message>,
    mut addr: watch::Receiver<String>,
    shared: Arc<Shared>,
) {
    let opts = &shared.options;
    let mut backoff = Backoff::new(opts.backoff_min, opts.backoff_max);
    let mut failures = 0u32;
    loop {
        // Lazy: connect only when there is something to send.
        let Some(first) = queue.recv().await else {
            return;
        };
        let target = addr.borrow_and_update().clone();
        let result = match connect(id, &target, &shared).await {
            Ok(stream) => {
                if failures > 0 {
                    tracing::info!(peer = id, addr = %target, "reconnected to peer");
                }
                failures = 0;
                let since = Instant::now();
                let flow = run_connection(id, &target, stream, first, &mut queue, &mut addr, &shared).await;
                match flow {
                    ControlFlow::Break(()) => return,
                    // A connection that stayed up a while ends without penalty.
                    ControlFlow::Continue(()) if since.elapsed() >= opts.backoff_max => {
                        backoff.reset();
                        continue;
                    }
                    ControlFlow::Continue(()) => Ok(()),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // The message that asked for the connection is lost with it.
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            failures = failures.saturating_add(1);
            if failures == 1 {
                tracing::warn!(peer = id, error = %e, "cannot reach peer; retrying with backoff");
            } else {
                tracing::debug!(peer = id, error = %e, failures, "cannot reach peer");
            }
        }
        // Wait before the next attempt; an address change cuts the wait short.
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            changed = addr.changed() => if changed.is_err() { return },
        }
        // What was queued meanwhile is stale; raft sends fresh messages.
        let mut stale = 0u64;
        while queue.try_recv().is_ok() {
            stale += 1;
        }
        if stale > 0 {
            shared.dropped.fetch_add(stale, Ordering::Relaxed);
            tracing::debug!(
                peer = id,
                stale,
                "dropped raft messages queued while disconnected"
            );
        }
    }
}

/// Opens a TLS connection to peer `id` at `addr`, checking that the server is that node.
pub(super) async fn connect(id: u64, addr: &str, shared: &Shared) -> Result<TlsStream<TcpStream>, PeerError> {
    let limit = shared.options.connect_timeout;
    let tcp = super::dial(addr, limit).await?;
    let handshake = TlsConnector::from(shared.tls.clone()).connect(control_server_name(), tcp);
    let stream = tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| super::timed_out("tls handshake", addr, limit))?
        .map_err(|e| handshake_error(addr, e))?;
    // The CA vouches for the server; make sure it is the node we meant to reach.
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| PeerError::Handshake {
            addr: addr.to_owned(),
            reason: "the server sent no certificate".into(),
        })?;
    let identity = identity_from_cert(leaf.as_ref())?;
    if identity.raft_id() != Some(id) {
        return Err(PeerError::WrongPeer {
            addr: addr.to_owned(),
            expected: id,
            found: identity.to_string(),
        });
    }
    Ok(stream)
}

/// Sends batches until the connection fails (`Continue`) or the peer is removed (`Break`).
async fn run_connection(
    id: u64,
    target: &str,
    stream: TlsStream<TcpStream>,
    first: Message,
    queue: &mut mpsc::Receiver<Message>,
    addr: &mut watch::Receiver<String>,
    shared: &Shared,
) -> ControlFlow<()> {
    let opts = &shared.options;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut next = Some(first);
    let mut batch = BytesMut::new();
    let mut probe = [0u8; 64];
    loop {
        let msg = match next.take() {
            Some(m) => m,
            None => tokio::select! {
                m = queue.recv() => match m {
                    Some(m) => m,
                    None => return ControlFlow::Break(()),
                },
                // The server never writes on a raft connection: anything here means it closed.
                r = reader.read(&mut probe) => {
                    match r {
                        Ok(0) => tracing::info!(peer = id, addr = %target, "peer closed the connection"),
                        Ok(_) => tracing::warn!(peer = id, addr = %target, "peer sent unexpected data; reconnecting"),
                        Err(e) => tracing::info!(peer = id, addr = %target, error = %e, "peer connection failed"),
                    }
                    return ControlFlow::Continue(());
                }
                changed = addr.changed() => {
                    if changed.is_err() {
                        return ControlFlow::Break(());
                    }
                    tracing::info!(peer = id, old = %target, new = %*addr.borrow(), "peer moved; reconnecting");
                    return ControlFlow::Continue(());
                }
            },
        };
        let mut count = usize::from(encode(id, &msg, &mut batch, shared));
        while batch.len() < BATCH_BYTES {
            match queue.try_recv() {
                Ok(m) => count += usize::from(encode(id, &m, &mut batch, shared)),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let write = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        };
        match tokio::time::timeout(opts.write_timeout, write).await {
            Ok(Ok(())) => {
                shared.sent.fetch_add(count as u64, Ordering::Relaxed);
                shared.batches.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(peer = id, count, bytes = batch.len(), "sent raft batch");
                batch.clear();
            }
            Ok(Err(e)) => {
                tracing::info!(peer = id, addr = %target, error = %e, "writing to peer failed; reconnecting");
                return ControlFlow::Continue(());
            }
            Err(_) => {
                tracing::warn!(peer = id, addr = %target, "writing to peer timed out; reconnecting");
                return ControlFlow::Continue(());
            }
        }
    }
}

/// Appends `msg` to the batch; `false` if it had to be dropped.
fn encode(id: u64, msg: &Message, out: &mut BytesMut, shared: &Shared) -> bool {
    match msg.write_to_bytes() {
        Ok(bytes) if bytes.len() <= skiff_raft::MAX_MESSAGE_BYTES => {
            frame::put_message(out, &bytes);
            return true;
        }
        Ok(bytes) => tracing::warn!(
            peer = id,
            bytes = bytes.len(),
            limit = skiff_raft::MAX_MESSAGE_BYTES,
            "raft message too large to send; dropped"
        ),
        Err(e) => tracing::warn!(peer = id, error = %e, "cannot encode raft message; dropped"),
    }
    shared.dropped.fetch_add(1, Ordering::Relaxed);
    false
}
