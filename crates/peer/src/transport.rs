//! The peer transport: raft messages between control nodes, and the join RPC, on one TLS port.
//!
//! ```text
//!  raft thread ──send()──► per-peer bounded queue ──► peer task ──TLS──► serve() ──► PeerHandler::raft
//!                          (full: drop)               (lazy connect,          (CA-verified control
//!                                                      batch, backoff)         cert, from == raft id)
//!  raft thread ──send_snapshot()──► snapshot task ──TLS, chunks──► serve() ──► PeerHandler::snapshot
//!                                   (one per peer)  ◄── answer ──            (file checked) ─► ::raft
//!  joining node ──join()──TLS (CA pinned by token)──► serve() ──► PeerHandler::join
//! ```

pub(crate) mod frame;
mod inbound;
pub(crate) mod join;
mod outbound;
mod snapshot;

pub use frame::{FRAME_MAX_BYTES, JOIN_MAX_BYTES, JOIN_RESPONSE_MAX_BYTES, SNAPSHOT_ACK_MAX_BYTES};
pub use inbound::{BoxFuture, HANDSHAKE_TIMEOUT, JOIN_HANDLER_TIMEOUT, MAX_CONNECTIONS, PeerHandler, serve};
pub use join::{JOIN_TIMEOUT, JoinMember, JoinRequest, JoinResponse, join};
pub use outbound::{PeerTransport, TransportOptions, TransportStats};
pub use snapshot::{SNAPSHOT_ACK_TIMEOUT, SNAPSHOT_IDLE_TIMEOUT};

/// A `Timeout` error for `what` at `addr` after `limit`.
pub(crate) fn timed_out(what: &'static str, addr: &str, limit: std::time::Duration) -> crate::PeerError {
    crate::PeerError::Timeout {
        what,
        addr: addr.to_owned(),
        secs: limit.as_secs().max(1),
    }
}

/// Opens a TCP connection to `addr` within `limit`, with Nagle off (raft and join frames are
/// small and latency-bound).
pub(crate) async fn dial(
    addr: &str,
    limit: std::time::Duration,
) -> Result<tokio::net::TcpStream, crate::PeerError> {
    let tcp = tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out("connecting", addr, limit))?
        .map_err(|source| crate::PeerError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Turns a failed client handshake into the error that tells the operator what happened.
pub(crate) fn handshake_error(addr: &str, e: std::io::Error) -> crate::PeerError {
    use crate::PeerError;
    use rustls::CertificateError;
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return PeerError::Io {
            addr: addr.to_owned(),
            source: e,
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => PeerError::UntrustedPeer {
            addr: addr.to_owned(),
        },
        rustls::Error::AlertReceived(alert) => PeerError::Handshake {
            addr: addr.to_owned(),
            reason: format!(
                "the peer refused the connection ({alert:?}); this node's certificate is probably \
                 not from the peer's cluster CA"
            ),
        },
        other => PeerError::Handshake {
            addr: addr.to_owned(),
            reason: other.to_string(),
        },
    }
}
