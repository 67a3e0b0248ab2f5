//! The seam between the driver and the network.
//!
//! The driver hands every message for another node to a [`Transport`]; the receiving side passes
//! what arrives to [`crate::RaftHandle::step`] (or [`crate::RaftHandle::step_bytes`]). Raft tolerates
//! lost, duplicated and reordered messages, so a transport may drop what it cannot deliver.
//!
//! [`MemNetwork`] connects nodes in one process, for tests and simulations; it can cut a node off
//! to simulate a partition.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use raft::eraftpb::Message;

/// Delivers raft messages to other nodes.
///
/// `send` is called on the driver's thread and must not block for long: queue and return.
pub trait Transport: Send + Sync + 'static {
    /// Sends messages, each to its `to` node; undeliverable messages may be dropped.
    fn send(&self, msgs: Vec<Message>);
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
}

type Inbox = Arc<dyn Fn(Message) + Send + Sync>;

#[derive(Default)]
struct Net {
    inboxes: HashMap<u64, Inbox>,
    isolated: BTreeSet<u64>,
}

/// An in-process network joining several drivers; messages are delivered directly.
#[derive(Default, Clone)]
pub struct MemNetwork {
    net: Arc<Mutex<Net>>,
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
        let inbox: Inbox = Arc::new(move |m| {
            // A stopped or overloaded node loses the message, as a real network would.
            if let Err(e) = handle.step(m) {
                tracing::debug!(to = id, error = %e, "in-memory network dropped a message");
            }
        });
        self.lock().inboxes.insert(id, inbox);
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
}

struct MemTransport {
    from: u64,
    network: MemNetwork,
}

impl Transport for MemTransport {
    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            let inbox = {
                let net = self.network.lock();
                if net.isolated.contains(&self.from) || net.isolated.contains(&m.to) {
                    continue;
                }
                net.inboxes.get(&m.to).cloned()
            };
            // Deliver outside the lock: the inbox only enqueues for the receiving driver.
            if let Some(inbox) = inbox {
                inbox(m);
            }
        }
    }
}
