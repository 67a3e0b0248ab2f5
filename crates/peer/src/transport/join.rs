//! The join RPC: a node without a certificate asks a control node for one.

use std::fmt;
use std::time::Duration;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use skiff_pki::pki::{cert_hash, parse_cert_pem};
use skiff_pki::tls::{control_server_name, join_client_config_pinned};
use skiff_pki::{JoinToken, identity_from_cert};

use super::frame::{self, FrameType, JOIN_MAX_BYTES, JOIN_RESPONSE_MAX_BYTES};
use super::handshake_error;
use crate::PeerError;

/// How long a joining node waits for each step (connect, handshake, answer).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a joining node sends: the token's secret, who it wants to be, and its CSR.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The secret part of the join token ([`join`] fills it in from the token).
    pub token_secret: String,
    /// The node name asked for.
    pub name: String,
    /// A certificate signing request for the node's key ([`skiff_pki::NodeKey::csr`]).
    pub csr_pem: String,
    /// Where other control nodes reach this node's peer port (`host:port`).
    pub peer_addr: String,
    /// Where clients reach this node's API (`https://host:port`).
    pub api_url: String,
}

impl fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinRequest")
            .field("token_secret", &"<redacted>")
            .field("name", &self.name)
            .field("peer_addr", &self.peer_addr)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// A member of the control plane, as told to a joining node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinMember {
    /// The member's raft id.
    pub raft_id: u64,
    /// The member's node name.
    pub name: String,
    /// Its peer address (`host:port`).
    pub peer_addr: String,
    /// Its API URL.
    pub api_url: String,
}

/// What a control node answers to an accepted join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinResponse {
    /// The raft id assigned to the new node.
    pub raft_id: u64,
    /// The new node's certificate, signed by the cluster CA.
    pub cert_pem: String,
    /// The cluster CA certificate.
    pub ca_pem: String,
    /// The current members of the control plane.
    pub members: Vec<JoinMember>,
    /// Whatever else the admitting node hands to the new one, opaque to this crate (Skiff's
    /// control plane puts the secrets every control member holds there); `null` when nothing.
    #[serde(default)]
    pub handover: serde_json::Value,
}

/// The JSON payload of a `JOIN_RESPONSE` frame.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(crate) enum JoinReply {
    Ok(JoinResponse),
    Err(String),
}

/// Asks the control node at `addr` (`host:port`) to let this node join.
///
/// The server is trusted only if the CA certificate it presents hashes to `token.ca_hash`;
/// otherwise the connection is dropped during the handshake and the secret is never sent.
/// `req.token_secret` is set from `token`. The answer is checked: its CA must be the token's,
/// and its certificate must carry a node identity.
///
/// # Errors
/// [`PeerError::Connect`] / [`PeerError::Timeout`] if the server cannot be reached,
/// [`PeerError::CaMismatch`] if it belongs to another cluster, [`PeerError::Handshake`] for
/// other TLS failures, [`PeerError::JoinRefused`] with the server's reason, and
/// [`PeerError::Protocol`] for a malformed answer.
pub async fn join(addr: &str, token: &JoinToken, mut req: JoinRequest) -> Result<JoinResponse, PeerError> {
    req.token_secret = token.secret.clone();
    let timeout = |what: &'static str| super::timed_out(what, addr, JOIN_TIMEOUT);
    let protocol = |reason: String| PeerError::Protocol {
        addr: addr.to_owned(),
        reason,
    };

    let (config, pin) = join_client_config_pinned(token)?;
    let tcp = super::dial(addr, JOIN_TIMEOUT).await?;
    let handshake = TlsConnector::from(config).connect(control_server_name(), tcp);
    let mut tls = match tokio::time::timeout(JOIN_TIMEOUT, handshake).await {
        Err(_) => return Err(timeout("tls handshake")),
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            return Err(match pin.mismatch() {
                Some(found) => PeerError::CaMismatch {
                    addr: addr.to_owned(),
                    expected: token.ca_hash.clone(),
                    found,
                },
                None => handshake_error(addr, e),
            });
        }
    };

    let body = serde_json::to_vec(&req).map_err(|e| protocol(e.to_string()))?;
    if body.len() > JOIN_MAX_BYTES {
        return Err(protocol(format!(
            "join request of {} bytes exceeds the limit of {JOIN_MAX_BYTES} bytes",
            body.len()
        )));
    }
    let mut out = BytesMut::new();
    frame::put_frame(&mut out, FrameType::JoinRequest, &body);
    let exchange = async {
        tls.write_all(&out).await.map_err(|source| PeerError::Io {
            addr: addr.to_owned(),
            source,
        })?;
        tls.flush().await.map_err(|source| PeerError::Io {
            addr: addr.to_owned(),
            source,
        })?;
        let header = frame::read_header(&mut tls, JOIN_RESPONSE_MAX_BYTES)
            .await
            .map_err(&protocol)?
            .ok_or_else(|| protocol("the server closed the connection without answering".into()))?;
        if header.kind != FrameType::JoinResponse {
            return Err(protocol(format!(
                "expected a join response, got a {:?} frame",
                header.kind
            )));
        }
        frame::read_payload(&mut tls, header).await.map_err(&protocol)
    };
    let payload = tokio::time::timeout(JOIN_TIMEOUT, exchange)
        .await
        .map_err(|_| timeout("waiting for the join answer"))??;
    let reply: JoinReply =
        serde_json::from_slice(&payload).map_err(|e| protocol(format!("malformed join response: {e}")))?;
    let resp = match reply {
        JoinReply::Ok(resp) => resp,
        JoinReply::Err(reason) => {
            return Err(PeerError::JoinRefused {
                addr: addr.to_owned(),
                reason,
            });
        }
    };
    let ca = parse_cert_pem("CA certificate in the join response", &resp.ca_pem)?;
    if cert_hash(&ca) != token.ca_hash {
        return Err(protocol(
            "the join response carries a CA other than the token's".into(),
        ));
    }
    let cert = parse_cert_pem("certificate in the join response", &resp.cert_pem)?;
    identity_from_cert(&cert)?;
    let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
    Ok(resp)
}
