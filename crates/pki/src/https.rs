//! TLS for Skiff's HTTP connections: the control plane's API port and the agents' data planes.
//!
//! | config | presents | verifies the other side with |
//! |---|---|---|
//! | [`api_server_config`] | control node cert + CA | the cluster CA if the client sends a cert (admins use a bearer token instead) |
//! | [`data_plane_server_config`] | agent cert + CA | the cluster CA: a client certificate is required |
//! | [`https_client_config`] | the node's cert | the cluster CA and the role's server name ([`Peer`]) |
//! | [`join_https_client_config`] | nothing | the CA the server sends, if its SHA-256 equals the token's |
//!
//! Clients check the server's *role* (the DNS SAN every certificate of that role carries), never
//! the host name in the URL: nodes are reached by whatever address they advertise, and the
//! cluster CA vouches for the role. All configurations are TLS 1.3 with ALPN `http/1.1`.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

use crate::crypto::{provider, roots};
use crate::identity::{AGENT_SERVER_NAME, CONTROL_SERVER_NAME};
use crate::pki::NodeCert;
use crate::renewable::CertSlot;
use crate::{Identity, JoinToken, PkiError};

/// The ALPN protocol of Skiff's HTTPS connections.
pub const HTTP_ALPN: &[u8] = b"http/1.1";

/// Which kind of server an HTTPS client talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A control node's API port.
    Control,
    /// An agent's data plane.
    Agent,
}

impl Peer {
    fn server_name(self) -> ServerName<'static> {
        let name = match self {
            Peer::Control => CONTROL_SERVER_NAME,
            Peer::Agent => AGENT_SERVER_NAME,
        };
        ServerName::DnsName(
            rustls::pki_types::DnsName::try_from(name)
                .expect("the role server names are valid DNS names")
                .to_owned(),
        )
    }
}

fn cfg_err(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> PkiError {
    move |e| PkiError::TlsConfig {
        what,
        reason: e.to_string(),
    }
}

fn http_server(node: &NodeCert, what: &'static str, require_client: bool) -> Result<ServerConfig, PkiError> {
    http_server_with(node, None, what, require_client)
}

/// A server config presenting `slot`'s certificate when given (renewable), else `node`'s.
fn http_server_with(
    node: &NodeCert,
    slot: Option<&CertSlot>,
    what: &'static str,
    require_client: bool,
) -> Result<ServerConfig, PkiError> {
    let err = cfg_err(what);
    let builder = WebPkiClientVerifier::builder_with_provider(roots(node)?, provider());
    let verifier = if require_client {
        builder.build()
    } else {
        builder.allow_unauthenticated().build()
    }
    .map_err(|e| err(&e))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err(&e))?
        .with_client_cert_verifier(verifier);
    let mut cfg = match slot {
        Some(slot) => builder.with_cert_resolver(Arc::new(slot.clone())),
        None => builder
            .with_single_cert(vec![node.cert_der()?, node.ca_der()?], node.key_der()?)
            .map_err(|e| err(&e))?,
    };
    cfg.alpn_protocols = vec![HTTP_ALPN.to_vec()];
    Ok(cfg)
}

/// The API port of a control node: presents its certificate (and the CA, so joining nodes can
/// pin it); a client certificate is optional and, when sent, verified against the cluster CA.
///
/// # Errors
/// [`PkiError::InvalidCert`] for unusable credentials, [`PkiError::TlsConfig`] if rustls
/// refuses them.
pub fn api_server_config(node: &NodeCert) -> Result<Arc<ServerConfig>, PkiError> {
    http_server(node, "API server", false).map(Arc::new)
}

/// [`api_server_config`] presenting the certificate in `slot` at each handshake (renewable).
///
/// # Errors
/// As [`api_server_config`].
pub fn api_server_config_slot(slot: &CertSlot) -> Result<Arc<ServerConfig>, PkiError> {
    http_server_with(&slot.node(), Some(slot), "API server", false).map(Arc::new)
}

/// An agent's data plane: presents the agent's certificate and requires a client certificate
/// issued by the cluster CA (gateways, control nodes, other agents).
///
/// # Errors
/// As [`api_server_config`].
pub fn data_plane_server_config(node: &NodeCert) -> Result<Arc<ServerConfig>, PkiError> {
    http_server(node, "data plane server", true).map(Arc::new)
}

/// [`data_plane_server_config`] presenting the certificate in `slot` at each handshake, so a
/// renewed certificate is used without restarting the listener.
///
/// # Errors
/// As [`api_server_config`].
pub fn data_plane_server_config_slot(slot: &CertSlot) -> Result<Arc<ServerConfig>, PkiError> {
    http_server_with(&slot.node(), Some(slot), "data plane server", true).map(Arc::new)
}

/// [`https_client_config`] presenting the certificate in `slot` at each handshake.
///
/// # Errors
/// As [`api_server_config`].
pub fn https_client_config_slot(slot: &CertSlot, peer: Peer) -> Result<ClientConfig, PkiError> {
    https_client_with(&slot.node(), Some(slot), peer)
}

/// An HTTPS client that presents `node`'s certificate and accepts only a server certified by
/// the cluster CA for the role `peer`.
///
/// # Errors
/// As [`api_server_config`].
pub fn https_client_config(node: &NodeCert, peer: Peer) -> Result<ClientConfig, PkiError> {
    https_client_with(node, None, peer)
}

fn https_client_with(node: &NodeCert, slot: Option<&CertSlot>, peer: Peer) -> Result<ClientConfig, PkiError> {
    let err = cfg_err("HTTPS client");
    let inner = WebPkiServerVerifier::builder_with_provider(roots(node)?, provider())
        .build()
        .map_err(|e| err(&e))?;
    let verifier = Arc::new(RoleVerifier {
        inner,
        name: peer.server_name(),
    });
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err(&e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match slot {
        Some(slot) => builder.with_client_cert_resolver(Arc::new(slot.clone())),
        None => builder
            .with_client_auth_cert(vec![node.cert_der()?], node.key_der()?)
            .map_err(|e| err(&e))?,
    };
    cfg.alpn_protocols = vec![HTTP_ALPN.to_vec()];
    Ok(cfg)
}

/// An HTTPS client without a certificate of its own (an admin client using a bearer token) that
/// accepts only a server certified by the CA in `ca_pem` for the role `peer`.
///
/// # Errors
/// [`PkiError::InvalidCert`] if `ca_pem` is not a certificate, [`PkiError::TlsConfig`] if
/// rustls refuses the configuration.
pub fn https_client_config_ca(ca_pem: &str, peer: Peer) -> Result<ClientConfig, PkiError> {
    let err = cfg_err("HTTPS client");
    let ca = crate::pki::parse_cert_pem("CA certificate", ca_pem)?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| PkiError::invalid_cert("CA certificate", e.to_string()))?;
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| err(&e))?;
    let verifier = Arc::new(RoleVerifier {
        inner,
        name: peer.server_name(),
    });
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err(&e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![HTTP_ALPN.to_vec()];
    Ok(cfg)
}

/// An HTTPS client without a certificate that joins with `token`: it accepts the server only
/// if the CA it presents hashes to the token's CA hash and certifies the server as a control
/// node, so the secret goes only to the cluster the token names.
///
/// # Errors
/// [`PkiError::TlsConfig`] if rustls refuses the configuration.
pub fn join_https_client_config(token: &JoinToken) -> Result<(ClientConfig, JoinPin), PkiError> {
    let (cfg, verifier) = crate::tls::join_client_config_with(token)?;
    let mut cfg = Arc::unwrap_or_clone(cfg);
    cfg.alpn_protocols = vec![HTTP_ALPN.to_vec()];
    Ok((cfg, JoinPin(verifier)))
}

/// What the CA pin of a [`join_https_client_config`] saw.
pub use crate::tls::JoinPin;

/// `url` with an `http://` scheme turned into `https://` (a node with a certificate always
/// speaks TLS; Skiff's API port serves both on one port). Other URLs are returned unchanged.
pub fn https_url(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_owned(),
    }
}

/// The identity in the certificate a TLS client presented, if it sent one (the handshake
/// already verified it against the cluster CA).
pub fn client_identity(certs: Option<&[CertificateDer<'_>]>) -> Option<Identity> {
    let first = certs?.first()?;
    crate::identity::identity_from_cert(first.as_ref()).ok()
}

/// When the client certificate was issued (see [`crate::pki::issued_at`]).
pub fn client_issued_at(certs: Option<&[CertificateDer<'_>]>) -> Option<std::time::SystemTime> {
    crate::pki::issued_at(certs?.first()?.as_ref())
}

/// Verifies the server chain against the cluster CA for a fixed role name, whatever host name
/// the URL used.
#[derive(Debug)]
struct RoleVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for RoleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ClusterCa;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn configs_build_and_speak_http11() {
        let ca = ClusterCa::generate("t").unwrap();
        let control = ca.issue(&Identity::control("cp", 1), DAY).unwrap();
        let agent = ca.issue(&Identity::agent("a"), DAY).unwrap();
        assert_eq!(
            api_server_config(&control).unwrap().alpn_protocols,
            vec![HTTP_ALPN.to_vec()]
        );
        data_plane_server_config(&agent).unwrap();
        https_client_config(&agent, Peer::Control).unwrap();
        https_client_config_ca(ca.cert_pem(), Peer::Control).unwrap();
        assert!(https_client_config_ca("not a certificate", Peer::Control).is_err());
        let token = JoinToken::generate(&ca.ca_hash()).unwrap();
        let (cfg, pin) = join_https_client_config(&token).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![HTTP_ALPN.to_vec()]);
        assert_eq!(pin.mismatch(), None);
    }

    #[test]
    fn urls_become_https() {
        assert_eq!(https_url("http://10.0.0.1:7070/x"), "https://10.0.0.1:7070/x");
        assert_eq!(https_url("https://a:1"), "https://a:1");
    }

    #[test]
    fn client_identity_reads_the_first_certificate() {
        let ca = ClusterCa::generate("t").unwrap();
        let agent = ca.issue(&Identity::agent("edge"), DAY).unwrap();
        let der = agent.cert_der().unwrap();
        assert_eq!(client_identity(Some(&[der])), Some(Identity::agent("edge")));
        assert_eq!(client_identity(None), None);
        assert_eq!(client_identity(Some(&[])), None);
    }
}
