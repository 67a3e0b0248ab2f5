//! Skiff's cluster PKI and the mutually authenticated transport between control nodes.
//!
//! Every control node of a Skiff cluster holds a certificate issued by the cluster's own CA. The
//! nodes talk to each other over TLS 1.3 where *both* sides present such a certificate: raft
//! messages travel only between nodes the CA vouches for. A new node without a certificate
//! joins with a token (`SKF1<ca hash>::<secret>`) that lets it check it reached the right
//! cluster before it reveals the secret; the cluster then signs the node's key.
//!
//! # Example
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use skiff_peer::{BoxFuture, ClusterCa, Identity, JoinRequest, JoinResponse, PeerHandler, PeerTransport};
//! use skiff_raft::{eraftpb::Message, transport::Transport};
//!
//! struct Inbox(Mutex<Vec<Message>>);
//! impl PeerHandler for Inbox {
//!     fn raft(&self, msg: Message) { self.0.lock().unwrap().push(msg) }
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
//! tokio::spawn(skiff_peer::serve(listener, skiff_peer::server_config(&node2)?, inbox.clone()));
//!
//! // Node 1's raft driver sends through a PeerTransport.
//! let transport = PeerTransport::new(tokio::runtime::Handle::current(), skiff_peer::client_config(&node1)?);
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
//! - [`ClusterCa`]: the cluster's certificate authority (ECDSA P-256, 10 years), created when the
//!   first control node initialises the cluster and saved as `ca.crt` + `ca.key` (0600). Its
//!   [`ca_hash`](ClusterCa::ca_hash) (hex SHA-256 of the certificate) names the cluster.
//! - [`Identity`]: a node's name and [`Role`] (`Control { raft_id }` or `Agent`). The CA writes it
//!   into the certificate as the URI SAN `skiff://control/<raft_id>/<name>` or
//!   `skiff://agent/<name>`, next to the DNS SAN [`CONTROL_SERVER_NAME`] / [`AGENT_SERVER_NAME`]
//!   that TLS clients verify. [`identity_from_cert`] reads it back from a verified certificate.
//! - [`CertSlot`]: the certificate a running agent or gateway presents, replaced in place when
//!   it renews (`https::https_client_config_slot`, `https::data_plane_server_config_slot`
//!   resolve it at every handshake).
//! - [`NodeKey`] and [`NodeCert`]: a node makes its own key and a CSR; [`ClusterCa::sign`]
//!   certifies the CSR's public key with an identity the *CA* chooses (the CSR's names are
//!   ignored). `NodeCert` (certificate, key, CA) is saved as `node.crt`, `node.key` (0600),
//!   `ca.crt`.
//! - [`JoinToken`]: `SKF1<ca hash>::<secret>`. Parsing and formatting only; expiry and revocation
//!   are the control plane's.
//! - [`tls`]: the three rustls configurations (server, mutual client, joining client).
//! - [`PeerTransport`]: implements [`skiff_raft::transport::Transport`]. `send` never blocks: a
//!   bounded queue per peer (full → the message is dropped; raft resends), a task per peer that
//!   connects lazily, writes everything queued as one batch, and reconnects with jittered
//!   exponential backoff (50 ms → 2 s). [`set_peer`](PeerTransport::set_peer) and
//!   [`remove_peer`](PeerTransport::remove_peer) follow membership changes. Cheap to clone.
//! - [`serve`]: the peer port. [`PeerHandler::raft`] receives decoded raft messages,
//!   [`PeerHandler::join`] decides joins. [`join`] is the joining node's side.
//!
//! # Wire format (ALPN `skiff-peer/1`, TLS 1.3)
//!
//! ```text
//! frame = type:u8 len:u32be payload[len]          len <= 4 MiB (FRAME_MAX_BYTES)
//!   1  RAFT           one protobuf raft Message
//!   2  RAFT_CHUNK     total:u64be part            a message > 4 MiB, in order; total <= skiff_raft::MAX_MESSAGE_BYTES
//!  16  JOIN_REQUEST   JSON JoinRequest            <= 64 KiB, the only frame of a certificate-less connection
//!  17  JOIN_RESPONSE  JSON {"ok": JoinResponse} | {"err": "reason"}
//! ```
//! A peer connection carries frames one way (client → server); the server never writes on it.
//! A join connection carries one request and one response.
//!
//! # Trust rules
//!
//! 1. The server presents its certificate and the CA certificate, and asks for a client
//!    certificate; one that the cluster CA did not sign fails the handshake.
//! 2. Raft frames are accepted only from a client whose verified certificate says
//!    `Role::Control`; the header is checked before any payload byte is read, the payload is
//!    decoded only then (bounded), and a message whose `from` is not the certificate's raft id
//!    closes the connection. Agents and certificate-less clients never get a raft frame decoded.
//! 3. A client without a certificate may send exactly one join request.
//! 4. A node connecting to a peer checks that the server's certificate carries the raft id it
//!    meant to reach ([`PeerError::WrongPeer`] otherwise).
//! 5. A joining node trusts a server only if the CA certificate it presents hashes to the
//!    token's `ca_hash` and the server certificate verifies against it
//!    ([`PeerError::CaMismatch`] otherwise, before the secret is sent).
//! 6. Any violation of framing or limits closes the connection with a logged reason.
#![deny(missing_docs)]

mod error;
pub mod https;
mod identity;
pub mod pki;
mod renewable;
pub mod tls;
mod token;
pub mod transport;

pub use error::PeerError;
pub use identity::{
    AGENT_SERVER_NAME, CONTROL_SERVER_NAME, GATEWAY_SERVER_NAME, Identity, Role, identity_from_cert,
    validate_name,
};
pub use pki::{ClusterCa, NodeCert, NodeKey};
pub use renewable::CertSlot;
/// The TLS configuration types the constructors return, so callers need no rustls dependency.
pub use rustls::{ClientConfig, ServerConfig};
pub use tls::{client_config, client_config_slot, join_client_config, server_config, server_config_slot};
pub use token::{JoinToken, TOKEN_PREFIX, secrets_equal};
pub use transport::{
    BoxFuture, JoinMember, JoinRequest, JoinResponse, PeerHandler, PeerTransport, TransportOptions,
    TransportStats, join, serve,
};
