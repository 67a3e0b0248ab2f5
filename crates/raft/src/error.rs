//! The one error type of the crate.

/// Everything that can go wrong when talking to the raft driver.
///
/// Each variant says what a caller can do about it: retry on the leader, wait, shrink the request,
/// or give up because the node has stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    /// This node is not the leader; send the request to `leader` (if one is known) or retry later.
    #[error("this node is not the raft leader (leader: {leader:?}); retry on the leader")]
    NotLeader {
        /// The node this node believes is the leader, if any.
        leader: Option<u64>,
    },
    /// The driver loop has stopped (shut down, or after a storage error); restart the node.
    #[error("the raft driver has stopped; restart the node")]
    Stopped,
    /// A proposal is larger than `RaftConfig::max_proposal_bytes`; split it or raise the limit.
    #[error(
        "proposal of {size} bytes exceeds the limit of {max} bytes; split it or raise max_proposal_bytes"
    )]
    TooLarge {
        /// Size of the rejected proposal in bytes.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// Reading or writing the redb file failed; the driver stops after such an error.
    #[error("raft storage failed: {0}; check the disk and restart the node")]
    Storage(String),
    /// A committed entry could not be applied on this member (storage failed, or the entry does
    /// not decode); the driver stopped without advancing the applied index.
    #[error(
        "entry {index} could not be applied on this member: {message}; the member stopped so that it cannot diverge from the others: check the disk and restart it"
    )]
    ApplyFailed {
        /// The entry's log index.
        index: u64,
        /// What failed.
        message: String,
    },
    /// The state machine failed to initialise, snapshot or restore; the driver stops.
    #[error("the state machine failed: {0}")]
    StateMachine(String),
    /// Raft dropped the proposal or read before it was committed (for example the leader changed
    /// and the entry was overwritten); it was not applied. Retry it.
    #[error("the proposal or read was dropped by raft (leadership changed); retry it")]
    ProposalDropped,
    /// The proposal's entry was replaced by a snapshot before this node could apply it, so this node
    /// cannot tell whether it was applied; read the state to find out.
    #[error("the proposal's outcome is unknown (a snapshot replaced its entry); read the state to check")]
    OutcomeUnknown,
    /// Too many requests are queued for the driver; back off and retry.
    #[error("the raft driver is overloaded ({queued} queued messages); back off and retry")]
    Overloaded {
        /// How many requests were queued when this one was refused.
        queued: usize,
    },
    /// No leader was elected within the given time.
    #[error("no raft leader was elected within {millis} ms; check that a quorum of voters is up")]
    Timeout {
        /// The time waited, in milliseconds.
        millis: u64,
    },
    /// The configuration given to [`crate::start`] is invalid.
    #[error("invalid raft configuration: {0}")]
    InvalidConfig(String),
    /// A membership change was refused before it was proposed (or raft refused to apply it); the
    /// message says why and what to do. Nothing changed.
    #[error("membership change refused: {0}")]
    MembershipRefused(String),
    /// A snapshot transfer failed or was refused: cut short, damaged on the way (its digest
    /// differs from the one announced), or another transfer is in progress. Its partial file is
    /// removed; the leader sends the snapshot again.
    #[error("snapshot transfer failed: {0}")]
    SnapshotTransfer(String),
    /// An inbound raft message could not be decoded or was too large.
    #[error("invalid raft message: {0}")]
    InvalidMessage(String),
}

impl From<redb::Error> for RaftError {
    fn from(e: redb::Error) -> Self {
        RaftError::Storage(e.to_string())
    }
}

macro_rules! storage_from {
    ($($t:ty),*) => {
        $(impl From<$t> for RaftError {
            fn from(e: $t) -> Self {
                RaftError::Storage(e.to_string())
            }
        })*
    };
}

storage_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    protobuf::ProtobufError
);
