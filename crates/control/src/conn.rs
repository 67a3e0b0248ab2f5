//! What the API knows about the connection a request came on.
use std::net::SocketAddr;

use skiff_pki::Identity;

/// What the API knows about the connection a request came on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conn {
    /// Whether the connection is TLS.
    pub(crate) tls: bool,
    /// The identity in the client certificate (verified against the cluster CA), if any.
    pub(crate) identity: Option<Identity>,
    /// The client's address.
    pub(crate) remote: Option<SocketAddr>,
    /// When the client certificate was issued (checked against revocations).
    pub(crate) issued_at: Option<std::time::SystemTime>,
}
