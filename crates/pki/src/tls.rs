//! TLS configurations for the three kinds of connection to a control member's peer port (the
//! Raft transport itself is `skiff-peer`'s; it only takes these configurations).
//!
//! | config | presents | verifies the other side with |
//! |---|---|---|
//! | [`server_config`] | node cert + CA cert | the cluster CA if the client sends a cert; none required (join) |
//! | [`client_config`] | node cert | the cluster CA, server name [`CONTROL_SERVER_NAME`] |
//! | [`join_client_config`] | nothing | the CA the server sends, if its SHA-256 equals the token's |
//!
//! All three speak TLS 1.3 only, with ALPN [`ALPN_PROTOCOL`], using the `ring` provider.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::crypto::{provider, roots};
use crate::identity::CONTROL_SERVER_NAME;
use crate::pki::{NodeCert, cert_hash};
use crate::renewable::CertSlot;
use crate::{JoinToken, PkiError};

/// The ALPN protocol of the peer wire format (version 1).
pub const ALPN_PROTOCOL: &[u8] = b"skiff-peer/1";

/// The server side of a node: presents the node certificate followed by the CA certificate
/// (so joining nodes can pin the CA), and verifies client certificates against the cluster CA.
/// Clients without a certificate are let through the handshake; the transport then allows them
/// only the join RPC.
///
/// # Errors
/// [`PkiError::InvalidCert`] for unusable credentials, [`PkiError::TlsConfig`] if rustls
/// refuses them.
pub fn server_config(node: &NodeCert) -> Result<Arc<ServerConfig>, PkiError> {
    server_config_with(node, None)
}

/// [`server_config`] presenting the certificate in `slot` at each handshake (renewable).
///
/// # Errors
/// As [`server_config`].
pub fn server_config_slot(slot: &CertSlot) -> Result<Arc<ServerConfig>, PkiError> {
    server_config_with(&slot.node(), Some(slot))
}

fn server_config_with(node: &NodeCert, slot: Option<&CertSlot>) -> Result<Arc<ServerConfig>, PkiError> {
    let what = "server";
    let cfg_err = |e: &dyn std::fmt::Display| PkiError::TlsConfig {
        what,
        reason: e.to_string(),
    };
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(node)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| cfg_err(&e))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| cfg_err(&e))?
        .with_client_cert_verifier(verifier);
    let mut cfg = match slot {
        Some(slot) => builder.with_cert_resolver(Arc::new(slot.clone())),
        None => builder
            .with_single_cert(vec![node.cert_der()?, node.ca_der()?], node.key_der()?)
            .map_err(|e| cfg_err(&e))?,
    };
    cfg.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    Ok(Arc::new(cfg))
}

/// The client side of a node talking to another control node: presents the node certificate
/// and accepts only servers certified by the cluster CA for [`CONTROL_SERVER_NAME`].
///
/// # Errors
/// As [`server_config`].
pub fn client_config(node: &NodeCert) -> Result<Arc<ClientConfig>, PkiError> {
    client_config_with(node, None)
}

/// [`client_config`] presenting the certificate in `slot` at each handshake (renewable).
///
/// # Errors
/// As [`server_config`].
pub fn client_config_slot(slot: &CertSlot) -> Result<Arc<ClientConfig>, PkiError> {
    client_config_with(&slot.node(), Some(slot))
}

fn client_config_with(node: &NodeCert, slot: Option<&CertSlot>) -> Result<Arc<ClientConfig>, PkiError> {
    let what = "client";
    let cfg_err = |e: &dyn std::fmt::Display| PkiError::TlsConfig {
        what,
        reason: e.to_string(),
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| cfg_err(&e))?
        .with_root_certificates(roots(node)?);
    let mut cfg = match slot {
        Some(slot) => builder.with_client_cert_resolver(Arc::new(slot.clone())),
        None => builder
            .with_client_auth_cert(vec![node.cert_der()?], node.key_der()?)
            .map_err(|e| cfg_err(&e))?,
    };
    cfg.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    Ok(Arc::new(cfg))
}

/// The client side of a node that has no certificate yet and joins with `token`: presents no
/// certificate, and accepts a server only if the chain it sends contains a CA certificate whose
/// SHA-256 equals `token.ca_hash` and the server certificate verifies against that CA for
/// [`CONTROL_SERVER_NAME`]. So the token's secret goes only to the cluster the token names.
///
/// # Errors
/// [`PkiError::TlsConfig`] if rustls refuses the configuration.
pub fn join_client_config(token: &JoinToken) -> Result<Arc<ClientConfig>, PkiError> {
    Ok(join_client_config_with(token)?.0)
}

/// [`join_client_config`] and its [`JoinPin`], which tells after a failed handshake whether the
/// server presented another cluster's CA.
///
/// # Errors
/// As [`join_client_config`].
pub fn join_client_config_pinned(token: &JoinToken) -> Result<(Arc<ClientConfig>, JoinPin), PkiError> {
    let (cfg, verifier) = join_client_config_with(token)?;
    Ok((cfg, JoinPin(verifier)))
}

/// What the CA pin of a joining client's configuration ([`join_client_config_pinned`],
/// [`crate::https::join_https_client_config`]) saw.
#[derive(Debug, Clone)]
pub struct JoinPin(pub(crate) Arc<CaPinVerifier>);

impl JoinPin {
    /// The hash of the CA a server presented instead of the token's, if one did (the server
    /// belongs to another cluster, or the token to another one).
    pub fn mismatch(&self) -> Option<String> {
        self.0.mismatch()
    }
}

pub(crate) fn join_client_config_with(
    token: &JoinToken,
) -> Result<(Arc<ClientConfig>, Arc<CaPinVerifier>), PkiError> {
    let provider = provider();
    let verifier = Arc::new(CaPinVerifier {
        ca_hash: token.ca_hash.clone(),
        algorithms: provider.signature_verification_algorithms,
        provider: provider.clone(),
        mismatch: Mutex::new(None),
    });
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| PkiError::TlsConfig {
            what: "joining client",
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    Ok((Arc::new(cfg), verifier))
}

/// Verifies a server chain against the CA it carries, if that CA is the one a join token pins.
#[derive(Debug)]
pub(crate) struct CaPinVerifier {
    ca_hash: String,
    provider: Arc<CryptoProvider>,
    algorithms: WebPkiSupportedAlgorithms,
    /// The hash of the CA the server sent instead, when it did not match.
    mismatch: Mutex<Option<String>>,
}

impl CaPinVerifier {
    /// The CA hash the server presented, if it was not the pinned one.
    pub(crate) fn mismatch(&self) -> Option<String> {
        self.mismatch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ServerCertVerifier for CaPinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The server must be a control node, whatever host name the client dialled.
        let server_name = control_server_name();
        let Some(ca) = intermediates
            .iter()
            .find(|c| cert_hash(c.as_ref()) == self.ca_hash)
        else {
            let found = intermediates
                .last()
                .map(|c| cert_hash(c.as_ref()))
                .unwrap_or_else(|| "none".to_owned());
            *self.mismatch.lock().unwrap_or_else(PoisonError::into_inner) = Some(found);
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], &server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server name every control node's certificate carries, as a TLS client dials it.
pub fn control_server_name() -> ServerName<'static> {
    ServerName::DnsName(
        rustls::pki_types::DnsName::try_from(CONTROL_SERVER_NAME)
            .expect("CONTROL_SERVER_NAME is a valid DNS name")
            .to_owned(),
    )
}
