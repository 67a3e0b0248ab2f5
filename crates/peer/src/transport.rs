//! The peer transport: raft messages between control nodes, and the join RPC, on one TLS port.
//!
//! ```text
//!  raft thread ──send()──► per-peer bounded queue ──► peer task ──TLS──► serve() ──► PeerHandler::raft
//!                          (full: drop)               (lazy connect,          (CA-verified control
//!                                                      batch, backoff)         cert, from == raft id)
//!  joining node ──join()──TLS (CA pinned by token)──► serve() ──► PeerHandler::join
//! ```

mod frame;
mod inbound;
mod join;
mod outbound;

pub use frame::{FRAME_MAX_BYTES, JOIN_MAX_BYTES, JOIN_RESPONSE_MAX_BYTES};
pub use inbound::{BoxFuture, HANDSHAKE_TIMEOUT, JOIN_HANDLER_TIMEOUT, MAX_CONNECTIONS, PeerHandler, serve};
pub use join::{JOIN_TIMEOUT, JoinMember, JoinRequest, JoinResponse, join};
pub use outbound::{PeerTransport, TransportOptions, TransportStats};
