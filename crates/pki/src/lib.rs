//! Skiff's cluster PKI: the CA, node certificates and identities, join tokens, and the TLS
//! configurations every Skiff process uses.
//!
//! Every node of a Skiff cluster — control member, agent, gateway — holds a certificate issued
//! by the cluster's own CA, and every connection between nodes is TLS 1.3 where both sides
//! present one. A new node without a certificate joins with a token (`SKF1<ca hash>::<secret>`)
//! that lets it check it reached the right cluster before it reveals the secret; the cluster then
//! signs the node's key. This crate is all of that except the Raft transport between control
//! members (`skiff-peer`), so workers, gateways and clients link no Raft or protobuf code.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use skiff_pki::https::{self, Peer};
//! use skiff_pki::{ClusterCa, Identity, JoinToken, TOKEN_PREFIX};
//!
//! # fn main() -> Result<(), skiff_pki::PkiError> {
//! // Once per cluster: the CA. Once per node: its certificate, naming its role.
//! let ca = ClusterCa::generate("demo")?;
//! let year = Duration::from_secs(365 * 24 * 3600);
//! let control = ca.issue(&Identity::control("cp-1", 1), year)?;
//! let agent = ca.issue(&Identity::agent("edge-1"), year)?;
//! assert_eq!(agent.identity()?, Identity::agent("edge-1"));
//!
//! // The control member's API port, and an agent calling it with its certificate.
//! let _api = https::api_server_config(&control)?;
//! let _client = https::https_client_config(&agent, Peer::Control)?;
//!
//! // A join token names the cluster by its CA's hash; the secret is checked by the cluster.
//! let token = JoinToken::generate(&ca.ca_hash())?;
//! let text = token.to_string();
//! assert!(text.starts_with(TOKEN_PREFIX));
//! assert_eq!(text.parse::<JoinToken>()?, token);
//! # Ok(()) }
//! ```
//!
//! # Core concepts
//!
//! - [`ClusterCa`]: the cluster's certificate authority (ECDSA P-256, 10 years), created when the
//!   first control node initialises the cluster and saved as `ca.crt` + `ca.key` (0600). Its
//!   [`ca_hash`](ClusterCa::ca_hash) (hex SHA-256 of the certificate) names the cluster.
//! - [`Identity`]: a node's name and [`Role`] (`Control { raft_id }`, `Agent` or `Gateway`). The
//!   CA writes it into the certificate as the URI SAN `skiff://control/<raft_id>/<name>`,
//!   `skiff://agent/<name>` or `skiff://gateway/<name>`, next to the DNS SAN
//!   [`CONTROL_SERVER_NAME`] / [`AGENT_SERVER_NAME`] / [`GATEWAY_SERVER_NAME`] that TLS clients
//!   verify. [`identity_from_cert`] reads it back from a verified certificate.
//! - [`NodeKey`] and [`NodeCert`]: a node makes its own key and a CSR; [`ClusterCa::sign`]
//!   certifies the CSR's public key with an identity the *CA* chooses (the CSR's names are
//!   ignored). `NodeCert` (certificate, key, CA) is saved as `node.crt`, `node.key` (0600),
//!   `ca.crt`.
//! - [`CertSlot`]: the certificate a running node presents, replaced in place when it renews
//!   (the `*_slot` configurations resolve it at every handshake).
//! - [`JoinToken`]: `SKF1<ca hash>::<secret>` ([`TOKEN_PREFIX`]). Parsing and formatting only;
//!   expiry and revocation are the control plane's.
//! - [`https`]: TLS for Skiff's HTTP connections — the control plane's API port, the agents'
//!   data planes, and their clients (which check the server's role, not the URL's host).
//! - [`tls`]: the configurations of a control member's peer port (server, mutual client,
//!   joining client pinned to the token's CA), which `skiff-peer`'s transport takes.
//!
//! # Trust rules
//!
//! 1. A server presents its certificate and the CA certificate; a client certificate, when asked
//!    for or required, must chain to the cluster CA or the handshake fails.
//! 2. A client accepts a server only if the cluster CA certifies it for the role it meant to
//!    reach ([`https::Peer`], [`CONTROL_SERVER_NAME`]), whatever address it dialled.
//! 3. A joining client trusts a server only if the CA certificate it presents hashes to the
//!    token's `ca_hash` and the server certificate verifies against it ([`JoinPin::mismatch`]
//!    says which CA it saw otherwise), so the secret goes only to the cluster the token names.
#![deny(missing_docs)]

mod crypto;
mod error;
pub mod https;
mod identity;
pub mod pki;
mod renewable;
pub mod tls;
mod token;

pub use error::PkiError;
pub use identity::{
    AGENT_SERVER_NAME, CONTROL_SERVER_NAME, GATEWAY_SERVER_NAME, Identity, Role, identity_from_cert,
    validate_name,
};
pub use pki::{ClusterCa, NodeCert, NodeKey};
pub use renewable::CertSlot;
/// The TLS configuration types the constructors return, so callers need no rustls dependency.
pub use rustls::{ClientConfig, ServerConfig};
pub use tls::{
    JoinPin, client_config, client_config_slot, join_client_config, join_client_config_pinned, server_config,
    server_config_slot,
};
pub use token::{JoinToken, TOKEN_PREFIX, secrets_equal};
