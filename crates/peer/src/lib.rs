//! The mutually authenticated transport between Skiff's control members: Raft messages and the
//! join RPC over TLS on the peer port.
//!
//! Every control member holds a certificate of the cluster CA (`skiff-pki`). The members talk to
//! each other over TLS 1.3 where *both* sides present such a certificate: raft messages travel
//! only between nodes the CA vouches for. A new member without a certificate joins with a token
//! (`SKF1<ca hash>::<secret>`) that lets it check it reached the right cluster before it reveals
//! the secret; the cluster then signs the node's key. Only the control plane uses this crate;
//! agents, gateways and clients need only `skiff-pki`, and so link no Raft or protobuf code.
//!
//! # Example
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use skiff_peer::{BoxFuture, JoinRequest, JoinResponse, PeerHandler, PeerTransport};
//! use skiff_pki::{ClusterCa, Identity};
//! use skiff_raft::{eraftpb::Message, transport::Transport};
//!
//! struct Inbox(Mutex<Vec<Message>>);
//! impl PeerHandler for Inbox {
//!     fn raft(&self, msg: Message) { self.0.lock().unwrap().push(msg) }
//!     fn snapshot(&self, _msg: Message) -> Result<skiff_raft::snapshot::IncomingSnapshot, String> {
//!         Err("this example takes no snapshots".to_owned()) // a node: RaftHandle::receive_snapshot
//!     }
//!     fn join(&self, _req: JoinRequest) -> BoxFuture<'_, Result<JoinResponse, String>> {
//!         Box::pin(async { Err("this example accepts no new nodes".to_owned()) })
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Once per cluster: the CA. Once per node: its certificate.
//! let ca = ClusterCa::generate("demo")?;
//! let year = Duration::from_secs(365 * 24 * 3600);
//! let node1 = ca.issue(&Identity::control("cp-1", 1), year)?;
//! let node2 = ca.issue(&Identity::control("cp-2", 2), year)?;
//!
//! // Node 2 serves its peer port.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let inbox = Arc::new(Inbox(Mutex::new(Vec::new())));
//! tokio::spawn(skiff_peer::serve(listener, skiff_pki::server_config(&node2)?, inbox.clone()));
//!
//! // Node 1's raft driver sends through a PeerTransport.
//! let transport = PeerTransport::new(tokio::runtime::Handle::current(), skiff_pki::client_config(&node1)?);
//! transport.set_peer(2, addr.to_string());
//! let mut heartbeat = Message::default();
//! (heartbeat.from, heartbeat.to) = (1, 2);
//! transport.send(vec![heartbeat]);
//! # for _ in 0..500 { if !inbox.0.lock().unwrap().is_empty() { break } tokio::time::sleep(Duration::from_millis(10)).await; }
//! # assert_eq!(inbox.0.lock().unwrap()[0].from, 1);
//! # Ok(()) }
//! ```
//!
//! # Core concepts
//!
//! - The certificates, identities, join tokens and TLS configurations are `skiff-pki`'s: the
//!   peer port serves with [`skiff_pki::server_config`] (or its `_slot` form, renewable), members
//!   dial with [`skiff_pki::client_config`], and [`join`] pins the cluster CA with
//!   [`skiff_pki::join_client_config_pinned`].
//! - [`PeerTransport`]: implements [`skiff_raft::transport::Transport`]. `send` never blocks: a
//!   bounded queue per peer (full → the message is dropped; raft resends), a task per peer that
//!   connects lazily, writes everything queued as one batch, and reconnects with jittered
//!   exponential backoff (50 ms → 2 s). [`set_peer`](PeerTransport::set_peer) and
//!   [`remove_peer`](PeerTransport::remove_peer) follow membership changes. Cheap to clone.
//! - Snapshots: [`PeerTransport`] streams each on a connection of its own, the file in chunks of
//!   at most 1 MiB, reading the next only when the connection took the last (a slow follower
//!   makes the leader wait, not buffer), then waits for the receiver's answer and reports it to
//!   raft. The receiver writes the chunks to [`PeerHandler::snapshot`]'s file, which checks the
//!   size and sha256 before the message reaches [`PeerHandler::raft`]. No size limit applies.
//! - [`serve`]: the peer port. [`PeerHandler::raft`] receives decoded raft messages,
//!   [`PeerHandler::snapshot`] snapshot data, [`PeerHandler::join`] decides joins. [`join`] is
//!   the joining node's side.
//!
//! # Wire format (ALPN `skiff-peer/1`, TLS 1.3)
//!
//! ```text
//! frame = type:u8 len:u32be payload[len]          len <= 4 MiB (FRAME_MAX_BYTES)
//!   1  RAFT           one protobuf raft Message
//!   2  RAFT_CHUNK     total:u64be part            a message > 4 MiB, in order; total <= skiff_raft::MAX_MESSAGE_BYTES
//!   3  SNAPSHOT_BEGIN protobuf MsgSnapshot        its descriptor (members, size, sha256); opens a snapshot connection
//!   4  SNAPSHOT_CHUNK bytes of the snapshot file  in order; any number of them
//!   5  SNAPSHOT_END   empty
//!   6  SNAPSHOT_ACK   empty | UTF-8 reason        server → client: taken, or refused and why (<= 64 KiB)
//!  16  JOIN_REQUEST   JSON JoinRequest            <= 64 KiB, the only frame of a certificate-less connection
//!  17  JOIN_RESPONSE  JSON {"ok": JoinResponse} | {"err": "reason"}
//! ```
//! A peer connection carries raft frames one way (client → server); the server never writes on
//! it. A snapshot connection carries one snapshot (`BEGIN`, `CHUNK`…, `END`) and one answer. A
//! join connection carries one request and one response.
//!
//! # Trust rules
//!
//! 1. The server presents its certificate and the CA certificate, and asks for a client
//!    certificate; one that the cluster CA did not sign fails the handshake.
//! 2. Raft and snapshot frames are accepted only from a client whose verified certificate says
//!    `Role::Control`; the header is checked before any payload byte is read, the payload is
//!    decoded only then (bounded), and a message whose `from` is not the certificate's raft id
//!    closes the connection. Agents and certificate-less clients never get a raft frame decoded.
//!    A snapshot's data is checked against the size and sha256 its message announced before the
//!    message reaches raft.
//! 3. A client without a certificate may send exactly one join request.
//! 4. A node connecting to a peer checks that the server's certificate carries the raft id it
//!    meant to reach ([`PeerError::WrongPeer`] otherwise).
//! 5. A joining node trusts a server only if the CA certificate it presents hashes to the
//!    token's `ca_hash` and the server certificate verifies against it
//!    ([`PeerError::CaMismatch`] otherwise, before the secret is sent).
//! 6. Any violation of framing or limits closes the connection with a logged reason.
#![deny(missing_docs)]

mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod transport;

pub use error::PeerError;
pub use transport::{
    BoxFuture, JoinMember, JoinRequest, JoinResponse, PeerHandler, PeerTransport, TransportOptions,
    TransportStats, join, serve,
};
