//! The cloneable handle callers use to talk to the driver thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

use crate::snapshot::{IncomingSnapshot, MAX_INCOMING, SnapshotFiles};
use crate::{Membership, MembershipChange, RaftError};

/// Largest encoded raft message [`RaftHandle::step_bytes`] decodes (128 MiB). Snapshots are not
/// bound by it: their data travels beside the message ([`RaftHandle::receive_snapshot`]).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// Most inbound raft messages queued for the driver before [`RaftHandle::step`] drops new ones.
const MAX_QUEUED_STEPS: usize = 4096;

/// A node's place in its raft group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asks for pre-votes before starting a real election.
    PreCandidate,
    /// Campaigns for votes.
    Candidate,
    /// Leads the group: the only role that accepts proposals.
    Leader,
}

impl From<raft::StateRole> for Role {
    fn from(r: raft::StateRole) -> Self {
        match r {
            raft::StateRole::Follower => Role::Follower,
            raft::StateRole::PreCandidate => Role::PreCandidate,
            raft::StateRole::Candidate => Role::Candidate,
            raft::StateRole::Leader => Role::Leader,
        }
    }
}

/// A snapshot of the driver's progress, published after every loop iteration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RaftStatus {
    /// This node's id.
    pub id: u64,
    /// This node's role.
    pub role: Role,
    /// The leader this node knows of.
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The highest index known to be committed.
    pub commit: u64,
    /// The highest index applied to the state machine (and committed to redb).
    pub applied: u64,
    /// The first index still in the log (earlier ones were compacted).
    pub first_index: u64,
    /// The last index in the log.
    pub last_index: u64,
    /// Index of the last snapshot stored (0 if none).
    pub snapshot_index: u64,
    /// The voters of the applied configuration, sorted.
    pub voters: Vec<u64>,
    /// The learners of the applied configuration, sorted.
    pub learners: Vec<u64>,
    /// The meta of every member (voters and learners) of the applied configuration.
    pub members: BTreeMap<u64, Vec<u8>>,
    /// Whether a membership change was proposed and is not applied yet (a new one is refused).
    pub pending_membership_change: bool,
    /// On the leader: the highest log index known to be replicated on each member (learners
    /// included, this node too). Empty on other nodes.
    pub progress: BTreeMap<u64, u64>,
    /// Whether the driver has stopped (every request now fails with [`RaftError::Stopped`]).
    pub stopped: bool,
    /// Why the driver stopped, when an error stopped it (storage, an entry it could not apply).
    pub failure: Option<String>,
}

/// Where the answer to one request goes. It holds the request's queue permit, so a request counts
/// against the queue capacity until it is answered (backpressure covers entries in flight too).
pub(crate) struct Reply<T> {
    tx: oneshot::Sender<Result<T, RaftError>>,
    _permit: OwnedSemaphorePermit,
}

impl<T> Reply<T> {
    /// A reply channel holding `permit`; the receiver gets the answer.
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> (Self, oneshot::Receiver<Result<T, RaftError>>) {
        let (tx, rx) = oneshot::channel();
        (Reply { tx, _permit: permit }, rx)
    }

    /// Answers the request; a caller that gave up (dropped its future) no longer wants it.
    pub(crate) fn send(self, result: Result<T, RaftError>) {
        let _ = self.tx.send(result);
    }
}

/// A request to the driver thread.
pub(crate) enum Cmd<O> {
    Propose {
        data: Vec<u8>,
        reply: Reply<O>,
    },
    ReadIndex {
        reply: Reply<u64>,
    },
    ChangeMembership {
        change: MembershipChange,
        reply: Reply<Membership>,
    },
    Step(Box<Message>),
    Shutdown,
}

/// What the handles and the driver thread share.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) max_proposal_bytes: usize,
    pub(crate) status: watch::Sender<RaftStatus>,
    /// Bounds the proposals and reads waiting in the queue; closed when the driver stops.
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) queued_steps: AtomicUsize,
    pub(crate) thread: Mutex<Option<JoinHandle<()>>>,
    /// The node's snapshot directory, where incoming snapshots are written.
    pub(crate) files: SnapshotFiles,
    /// Bounds the snapshots received at once.
    pub(crate) incoming: Arc<Semaphore>,
}

impl Shared {
    pub(crate) fn new(config: &crate::RaftConfig, files: SnapshotFiles) -> Self {
        Shared {
            id: config.id,
            max_proposal_bytes: config.max_proposal_bytes,
            status: watch::Sender::new(RaftStatus {
                id: config.id,
                ..RaftStatus::default()
            }),
            permits: Arc::new(Semaphore::new(config.queue_capacity())),
            queued_steps: AtomicUsize::new(0),
            thread: Mutex::new(None),
            files,
            incoming: Arc::new(Semaphore::new(MAX_INCOMING)),
        }
    }
}

/// A cloneable handle to a running raft driver.
///
/// Every clone talks to the same driver thread. When the last handle is dropped the driver stops;
/// [`RaftHandle::shutdown`] stops it explicitly and waits for the thread to exit.
pub struct RaftHandle<O> {
    pub(crate) tx: mpsc::Sender<Cmd<O>>,
    pub(crate) shared: Arc<Shared>,
}

impl<O> Clone for RaftHandle<O> {
    fn clone(&self) -> Self {
        RaftHandle {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<O> std::fmt::Debug for RaftHandle<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftHandle").field("id", &self.shared.id).finish()
    }
}

impl<O: Send + 'static> RaftHandle<O> {
    /// Proposes `proposal` and resolves with the state machine's output once it is committed and
    /// applied on this node.
    ///
    /// The driver batches concurrent proposals into one log entry. Waits for queue space when
    /// many requests are queued (backpressure).
    ///
    /// # Errors
    ///
    /// [`RaftError::TooLarge`] before anything is queued; [`RaftError::NotLeader`] on a follower;
    /// [`RaftError::ProposalDropped`] / [`RaftError::OutcomeUnknown`] when leadership changed under
    /// the proposal; [`RaftError::Storage`] / [`RaftError::Stopped`] when the driver stopped.
    pub async fn propose(&self, proposal: Vec<u8>) -> Result<O, RaftError> {
        let max = self.shared.max_proposal_bytes;
        if proposal.len() > max {
            return Err(RaftError::TooLarge {
                size: proposal.len(),
                max,
            });
        }
        let (reply, rx) = self.reply().await?;
        self.tx
            .send(Cmd::Propose {
                data: proposal,
                reply,
            })
            .map_err(|_| RaftError::Stopped)?;
        rx.await.map_err(|_| RaftError::Stopped)?
    }

    /// A linearizable read barrier: resolves with an index once the leader has confirmed it is
    /// still leader and this node has applied everything committed when the call began.
    ///
    /// Reads of the local state machine after this returns observe every write acknowledged
    /// before the call. Runs raft's ReadIndex protocol; on a single node it returns as soon as the
    /// node has committed an entry in its term.
    ///
    /// # Errors
    ///
    /// [`RaftError::NotLeader`] with `leader: None` when no leader is known at the call;
    /// [`RaftError::Stopped`] / [`RaftError::Storage`] when the driver stopped. If the leader is
    /// lost while waiting the read is re-issued, so callers bound the wait with a timeout.
    pub async fn read_index(&self) -> Result<u64, RaftError> {
        let (reply, rx) = self.reply().await?;
        self.tx
            .send(Cmd::ReadIndex { reply })
            .map_err(|_| RaftError::Stopped)?;
        rx.await.map_err(|_| RaftError::Stopped)?
    }

    /// Proposes a membership change on the leader and resolves with the new membership once the
    /// change is applied on this node.
    ///
    /// A node joins in two steps: [`MembershipChange::AddLearner`] (it receives the log, through a
    /// snapshot first, without voting), then [`MembershipChange::Promote`] once
    /// [`RaftStatus::progress`] shows it caught up. Changes are checked against the applied
    /// membership before anything is proposed.
    ///
    /// # Errors
    ///
    /// [`RaftError::NotLeader`] on a follower; [`RaftError::MembershipRefused`] when another
    /// change is still pending, the node already is a member (add), is not a learner (promote), is
    /// not a member (remove, set meta), is the last voter (remove), or is the leader itself
    /// (remove: leadership is handed to another voter, retry there); [`RaftError::ProposalDropped`]
    /// / [`RaftError::OutcomeUnknown`] when leadership changed under the proposal;
    /// [`RaftError::Stopped`] / [`RaftError::Storage`] when the driver stopped.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<Membership, RaftError> {
        let (reply, rx) = self.reply().await?;
        self.tx
            .send(Cmd::ChangeMembership { change, reply })
            .map_err(|_| RaftError::Stopped)?;
        rx.await.map_err(|_| RaftError::Stopped)?
    }

    /// The applied membership as of the latest published status.
    pub fn membership(&self) -> Membership {
        let s = self.shared.status.borrow();
        Membership {
            voters: s.voters.clone(),
            learners: s.learners.clone(),
            meta: s.members.clone(),
        }
    }

    /// The driver's latest published status.
    pub fn status(&self) -> RaftStatus {
        self.shared.status.borrow().clone()
    }

    /// Waits until the driver stops; why, when an error stopped it.
    pub async fn stopped(&self) -> Option<String> {
        let mut rx = self.shared.status.subscribe();
        let s = rx.wait_for(|s| s.stopped).await;
        s.ok().and_then(|s| s.failure.clone())
    }

    /// Waits until a leader is known, and returns its id.
    ///
    /// # Errors
    ///
    /// [`RaftError::Timeout`] when none is elected in `timeout`; [`RaftError::Stopped`] when the
    /// driver stopped.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<u64, RaftError> {
        let mut rx = self.shared.status.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            let s = rx.wait_for(|s| s.leader.is_some() || s.stopped).await;
            s.map(|s| if s.stopped { None } else { s.leader })
        })
        .await;
        match waited {
            Err(_) => Err(RaftError::Timeout {
                millis: timeout.as_millis() as u64,
            }),
            Ok(Ok(Some(leader))) => Ok(leader),
            Ok(_) => Err(RaftError::Stopped),
        }
    }

    /// Hands an inbound raft message from a peer to the driver.
    ///
    /// Messages must come only from authenticated members of the group (mTLS in Skiff): raft
    /// trusts what peers say about terms, votes and log contents. Proposals cannot arrive this
    /// way (`MsgPropose` is refused); they enter only through [`RaftHandle::propose`].
    ///
    /// # Errors
    ///
    /// [`RaftError::InvalidMessage`] for a message addressed to another node, from node 0, or of
    /// a local-only type; [`RaftError::Overloaded`] when too many messages are queued (the message
    /// is dropped, which raft tolerates); [`RaftError::Stopped`] when the driver stopped.
    pub fn step(&self, msg: Message) -> Result<(), RaftError> {
        self.check_inbound(&msg)?;
        let queued = self.shared.queued_steps.fetch_add(1, Ordering::Relaxed);
        if queued >= MAX_QUEUED_STEPS {
            self.shared.queued_steps.fetch_sub(1, Ordering::Relaxed);
            return Err(RaftError::Overloaded { queued });
        }
        self.tx.send(Cmd::Step(Box::new(msg))).map_err(|_| {
            self.shared.queued_steps.fetch_sub(1, Ordering::Relaxed);
            RaftError::Stopped
        })
    }

    /// Begins receiving a snapshot from the leader: `msg` is its `MsgSnapshot` (carrying a
    /// [`crate::snapshot::SnapshotDescriptor`]), which arrives before the data. Write the data's
    /// chunks to the returned [`IncomingSnapshot`] as they arrive, then
    /// [`finish`](IncomingSnapshot::finish) it and [`step`](RaftHandle::step) the message it
    /// returns. The same trust rule as for [`RaftHandle::step`] applies.
    ///
    /// # Errors
    ///
    /// [`RaftError::InvalidMessage`] as for [`RaftHandle::step`], or when `msg` is not a
    /// `MsgSnapshot` with a descriptor; [`RaftError::SnapshotTransfer`] when
    /// [`crate::snapshot::MAX_INCOMING`] transfers are in progress already;
    /// [`RaftError::Storage`] when its file cannot be created; [`RaftError::Stopped`] when the
    /// driver stopped.
    pub fn receive_snapshot(&self, msg: Message) -> Result<IncomingSnapshot, RaftError> {
        self.check_inbound(&msg)?;
        if self.shared.status.borrow().stopped {
            return Err(RaftError::Stopped);
        }
        let permit = self.shared.incoming.clone().try_acquire_owned().map_err(|_| {
            RaftError::SnapshotTransfer(format!(
                "{MAX_INCOMING} snapshots are being received already; the leader retries later"
            ))
        })?;
        IncomingSnapshot::begin(&self.shared.files, msg, permit)
    }

    /// The checks of every message from a peer.
    fn check_inbound(&self, msg: &Message) -> Result<(), RaftError> {
        if msg.to != self.shared.id {
            return Err(RaftError::InvalidMessage(format!(
                "message for node {} delivered to node {}",
                msg.to, self.shared.id
            )));
        }
        if msg.from == 0 {
            return Err(RaftError::InvalidMessage("message from node 0".to_string()));
        }
        let kind = msg.get_msg_type();
        let local_only = matches!(
            kind,
            MessageType::MsgHup
                | MessageType::MsgBeat
                | MessageType::MsgUnreachable
                | MessageType::MsgSnapStatus
                | MessageType::MsgCheckQuorum
                | MessageType::MsgPropose
        );
        if local_only {
            return Err(RaftError::InvalidMessage(format!(
                "{kind:?} is not accepted from peers"
            )));
        }
        Ok(())
    }

    /// Decodes a protobuf-encoded raft message (at most [`MAX_MESSAGE_BYTES`]) and steps it.
    ///
    /// Only call this with bytes from an authenticated peer; see [`RaftHandle::step`].
    ///
    /// # Errors
    ///
    /// [`RaftError::InvalidMessage`] when the bytes are too many or do not decode, plus the
    /// errors of [`RaftHandle::step`].
    pub fn step_bytes(&self, bytes: &[u8]) -> Result<(), RaftError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(RaftError::InvalidMessage(format!(
                "message of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes",
                bytes.len()
            )));
        }
        let msg = Message::parse_from_bytes(bytes)
            .map_err(|e| RaftError::InvalidMessage(format!("cannot decode raft message: {e}")))?;
        self.step(msg)
    }

    /// Stops the driver loop and waits for its thread to exit (at most one loop iteration).
    ///
    /// Pending proposals and reads fail with [`RaftError::Stopped`]. Calling it again, or from
    /// clones, is harmless.
    pub fn shutdown(&self) {
        // A send error means the driver already stopped.
        let _ = self.tx.send(Cmd::Shutdown);
        let thread = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            if thread.thread().id() == std::thread::current().id() {
                return;
            }
            if thread.join().is_err() {
                tracing::error!(id = self.shared.id, "the raft driver thread panicked");
            }
        }
    }

    /// Waits for queue space, then makes the reply channel of one request.
    async fn reply<T>(&self) -> Result<(Reply<T>, oneshot::Receiver<Result<T, RaftError>>), RaftError> {
        let permit = self
            .shared
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RaftError::Stopped)?;
        Ok(Reply::new(permit))
    }
}
