//! placeholder
#![deny(missing_docs)]

mod error;
mod identity;
pub mod pki;
pub mod tls;
mod token;
pub mod transport;

pub use error::PeerError;
pub use identity::{
    AGENT_SERVER_NAME, CONTROL_SERVER_NAME, Identity, Role, identity_from_cert, validate_name,
};
pub use pki::{ClusterCa, NodeCert, NodeKey};
pub use tls::{client_config, join_client_config, server_config};
pub use token::{JoinToken, TOKEN_PREFIX, secrets_equal};
pub use transport::{
    BoxFuture, JoinMember, JoinRequest, JoinResponse, PeerHandler, PeerTransport, TransportOptions,
    TransportStats, join, serve,
};
