//! Admission: which connections a listener holds, and which idle one makes room for a new one.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::limits::Limits;
use crate::throttle::Throttle;
use crate::track::{Claim, Shared, Tracked};

/// Longest pause after repeated accept failures.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Holds one listener to its [`Limits`] (cheap to clone).
#[derive(Debug, Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: &'static str,
    limits: Limits,
    table: Mutex<Table>,
    refused: Throttle,
    evicted: Throttle,
    failed: Throttle,
    handshakes: Throttle,
}

/// The held connections, oldest first, and how many each source holds.
#[derive(Debug, Default)]
struct Table {
    next: u64,
    conns: BTreeMap<u64, Entry>,
    sources: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Entry {
    source: IpAddr,
    shared: Arc<Shared>,
}

/// Why a connection could not be admitted.
enum Refusal {
    Source,
    Listener,
}

impl Table {
    fn remove(&mut self, id: u64) -> bool {
        let Some(e) = self.conns.remove(&id) else {
            return false;
        };
        if let Some(n) = self.sources.get_mut(&e.source) {
            *n -= 1;
            if *n == 0 {
                self.sources.remove(&e.source);
            }
        }
        true
    }

    /// Closes the oldest idle connection (of `source` when given); false when none is idle.
    fn evict_idle(&mut self, source: Option<IpAddr>) -> bool {
        let victim = self.conns.iter().find(|(_, e)| {
            source.is_none_or(|s| s == e.source) && e.shared.busy.load(Ordering::Acquire) == 0
        });
        let Some((&id, e)) = victim else {
            return false;
        };
        e.shared.close.notify_one();
        self.remove(id)
    }

    /// The source holding the most connections.
    fn heaviest(&self) -> Option<IpAddr> {
        self.sources.iter().max_by_key(|(_, n)| **n).map(|(s, _)| *s)
    }
}

impl Guard {
    /// A guard for the listener called `name` (used in logs).
    pub fn new(name: &'static str, limits: Limits) -> Self {
        Guard {
            inner: Arc::new(Inner {
                name,
                limits,
                table: Mutex::new(Table::default()),
                refused: Throttle::default(),
                evicted: Throttle::default(),
                failed: Throttle::default(),
                handshakes: Throttle::default(),
            }),
        }
    }

    /// The limits this guard holds to.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.table().conns.len()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `source`, closing an idle one if a cap is reached; `None` when
    /// every connection that would have to make room is serving a request.
    pub fn admit(&self, source: IpAddr) -> Option<Slot> {
        let outcome = {
            let mut t = self.table();
            let from_source = t.sources.get(&source).copied().unwrap_or(0);
            let room = if from_source >= self.inner.limits.max_per_source {
                t.evict_idle(Some(source)).then_some(true).ok_or(Refusal::Source)
            } else if t.conns.len() >= self.inner.limits.max_connections {
                let heaviest = t.heaviest();
                (t.evict_idle(heaviest) || t.evict_idle(None))
                    .then_some(true)
                    .ok_or(Refusal::Listener)
            } else {
                Ok(false)
            };
            room.map(|evicted| {
                let id = t.next;
                t.next += 1;
                let shared = Arc::new(Shared::default());
                t.conns.insert(
                    id,
                    Entry {
                        source,
                        shared: shared.clone(),
                    },
                );
                *t.sources.entry(source).or_default() += 1;
                (
                    evicted,
                    Slot {
                        guard: self.inner.clone(),
                        id,
                        shared,
                    },
                )
            })
        };
        match outcome {
            Ok((evicted, slot)) => {
                if evicted && let Some(n) = self.inner.evicted.note() {
                    tracing::info!(
                        listener = self.inner.name,
                        closed = n,
                        limit = self.inner.limits.max_connections,
                        per_source = self.inner.limits.max_per_source,
                        "connection limit reached: closed the oldest idle connections to admit new ones"
                    );
                }
                Some(slot)
            }
            Err(why) => {
                if let Some(n) = self.inner.refused.note() {
                    let limit = match why {
                        Refusal::Source => "per-source",
                        Refusal::Listener => "listener",
                    };
                    tracing::warn!(
                        listener = self.inner.name,
                        refused = n,
                        %source,
                        limit,
                        "connection refused: every connection is serving a request"
                    );
                }
                None
            }
        }
    }

    /// Accepts the next connection this listener may hold. Refused connections are closed at
    /// once; accept errors (out of descriptors or memory) pause the loop with a doubling delay.
    pub async fn accept(&self, listener: &TcpListener) -> (TcpStream, SocketAddr, Slot) {
        let ((stream, remote), slot) = self.next(|| listener.accept(), |(_, r)| r.ip()).await;
        (stream, remote, slot)
    }

    /// [`accept`](Self::accept) for a Unix socket, whose clients all count as one source.
    pub async fn accept_unix(&self, listener: &UnixListener) -> (UnixStream, Slot) {
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ((stream, _), slot) = self.next(|| listener.accept(), |_| local).await;
        (stream, slot)
    }

    async fn next<T, F>(&self, mut accept: impl FnMut() -> F, source: impl Fn(&T) -> IpAddr) -> (T, Slot)
    where
        F: Future<Output = std::io::Result<T>>,
    {
        let mut failures = 0u32;
        loop {
            match accept().await {
                Ok(conn) => {
                    failures = 0;
                    if let Some(slot) = self.admit(source(&conn)) {
                        return (conn, slot);
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = self.failed(&e, failures);
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Logs an accept failure at a bounded rate and says how long to pause.
    fn failed(&self, error: &std::io::Error, failures: u32) -> Duration {
        let pause = Duration::from_millis(5u64 << failures.min(8)).min(MAX_BACKOFF);
        if let Some(n) = self.inner.failed.note() {
            tracing::warn!(
                listener = self.inner.name,
                %error,
                failures = n,
                pause_ms = pause.as_millis() as u64,
                "accept failed; pausing the listener"
            );
        }
        pause
    }
}

impl Guard {
    /// Logs, at a bounded rate, a client turned away before it was served (a refused TLS
    /// handshake, an unknown client certificate, a malformed first frame): one line per period
    /// with the count, so a flood of bad clients cannot flood the log.
    pub fn rejected(&self, remote: SocketAddr, reason: &dyn std::fmt::Display) {
        if let Some(n) = self.inner.handshakes.note() {
            tracing::info!(
                listener = self.inner.name,
                %remote,
                %reason,
                rejected = n,
                "client rejected"
            );
        }
    }
}

/// One admitted connection's place in its listener. Dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    guard: Arc<Inner>,
    id: u64,
    shared: Arc<Shared>,
}

impl Slot {
    /// Runs the connection `conn` until it ends, or until the guard closes it to make room
    /// (then `None`, and `conn` is dropped, closing the socket).
    pub async fn run<F: Future>(&self, conn: F) -> Option<F::Output> {
        tokio::select! {
            out = conn => Some(out),
            () = self.shared.close.notified() => None,
        }
    }

    /// Marks the connection busy until the returned claim is dropped: for connections that
    /// are not HTTP (a Raft peer stream) once the peer has proved who it is.
    pub fn claim(&self) -> Claim {
        Claim::new(self.shared.clone())
    }

    /// Wraps a hyper service so that the connection counts as busy while a request is in
    /// service (until its response body has been sent or dropped).
    pub fn track<S>(&self, service: S) -> Tracked<S> {
        Tracked::new(service, self.shared.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.guard
            .table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.id);
    }
}
