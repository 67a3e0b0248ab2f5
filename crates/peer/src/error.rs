//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the PKI, the join RPC or the peer transport.
///
/// Each variant says what failed, with which input, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// A file of the PKI could not be read or written.
    #[error("{action} {path}: {source}; check that the directory exists and is writable by this user")]
    File {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// A certificate, key or request could not be generated or signed.
    #[error("cannot {what}: {reason}")]
    Crypto {
        /// What was being generated or signed.
        what: &'static str,
        /// The cause, as reported by the certificate library.
        reason: String,
    },

    /// A PEM document or certificate is malformed or does not fit its role.
    #[error("invalid {what}: {reason}")]
    InvalidCert {
        /// Which document ("ca.crt", "certificate signing request", ...).
        what: String,
        /// Why it was refused.
        reason: String,
    },

    /// A node name, cluster name or raft id is not acceptable.
    #[error("invalid identity: {reason}")]
    InvalidIdentity {
        /// Why it was refused.
        reason: String,
    },

    /// A join token could not be parsed.
    #[error("join token: {reason}")]
    InvalidToken {
        /// What is wrong with it.
        reason: String,
    },

    /// A TLS configuration could not be built from the given certificates.
    #[error("cannot build the {what} TLS configuration: {reason}")]
    TlsConfig {
        /// Which configuration (server, client, joining client).
        what: &'static str,
        /// The cause.
        reason: String,
    },

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

    /// The control node refused to let this node join.
    #[error("control node {addr} refused the join: {reason}")]
    JoinRefused {
        /// The server's address.
        addr: String,
        /// The server's reason.
        reason: String,
    },
}

impl PeerError {
    pub(crate) fn crypto(what: &'static str, e: impl std::fmt::Display) -> Self {
        PeerError::Crypto {
            what,
            reason: e.to_string(),
        }
    }

    pub(crate) fn invalid_cert(what: impl Into<String>, reason: impl Into<String>) -> Self {
        PeerError::InvalidCert {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
