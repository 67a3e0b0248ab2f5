//! The one error type of this crate.

use std::io;

use skiff_pki::PkiError;

/// Everything that can go wrong in the join RPC or the peer transport.
///
/// Each variant says what failed, with which input, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// A certificate, key, token or TLS configuration was unusable (see [`PkiError`]).
    #[error(transparent)]
    Pki(#[from] PkiError),

    /// The TCP connection to a peer could not be opened.
    #[error("cannot connect to peer {addr}: {source}; check the address and that the node is running")]
    Connect {
        /// The peer's address.
        addr: String,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// The peer's certificate was not issued by this cluster's CA.
    #[error(
        "peer {addr} presented a certificate not signed by this cluster's CA; \
         it belongs to another cluster or was issued by a different CA"
    )]
    UntrustedPeer {
        /// The peer's address.
        addr: String,
    },

    /// The server a joining node contacted is not the cluster named by the token.
    #[error(
        "server {addr} belongs to another cluster: its CA hash is {found}, the join token expects \
         {expected}; check the join URL and the token (the token was not sent)"
    )]
    CaMismatch {
        /// The server's address.
        addr: String,
        /// The CA hash in the join token.
        expected: String,
        /// The hash of the CA the server presented (`"none"` when it sent no CA certificate).
        found: String,
    },

    /// The node listening at an address is not the node expected there.
    #[error("peer {addr} is {found}, expected control node {expected}; check the member addresses")]
    WrongPeer {
        /// The peer's address.
        addr: String,
        /// The raft id that was expected.
        expected: u64,
        /// Who answered instead.
        found: String,
    },

    /// The TLS handshake failed for another reason.
    #[error("tls handshake with {addr} failed: {reason}")]
    Handshake {
        /// The peer's address.
        addr: String,
        /// The cause.
        reason: String,
    },

    /// The peer broke the wire protocol (bad frame, limits, unexpected message).
    #[error("protocol violation by {addr}: {reason}")]
    Protocol {
        /// The peer's address.
        addr: String,
        /// What it did.
        reason: String,
    },

    /// An I/O error on an established connection.
    #[error("connection to {addr} failed: {source}")]
    Io {
        /// The peer's address.
        addr: String,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// A step did not finish in time.
    #[error("{what} with {addr} timed out after {secs} s; check that the node is reachable and healthy")]
    Timeout {
        /// What was being done.
        what: &'static str,
        /// The peer's address.
        addr: String,
        /// The limit, in seconds.
        secs: u64,
    },

    /// The peer refused a snapshot this node streamed to it (damaged on the way, its disk
    /// failed, or it receives too many at once); raft sends the snapshot again.
    #[error("peer {addr} refused the snapshot: {reason}")]
    SnapshotRefused {
        /// The peer's address.
        addr: String,
        /// The peer's reason.
        reason: String,
    },

    /// The control node refused to let this node join.
    #[error("control node {addr} refused the join: {reason}")]
    JoinRefused {
        /// The server's address.
        addr: String,
        /// The server's reason.
        reason: String,
    },
}
