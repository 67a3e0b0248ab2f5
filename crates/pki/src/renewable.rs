//! [`CertSlot`]: a node's current certificate, replaceable while TLS configurations use it.
//!
//! Agents and gateways renew their certificates while serving. The rustls configurations they
//! build ([`crate::https::https_client_config_slot`],
//! [`crate::https::data_plane_server_config_slot`]) ask the slot for the certificate at every new
//! handshake, so a renewed certificate is used from the next connection on; connections already
//! open keep going (nothing is dropped).
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::PkiError;
use crate::crypto::provider;
use crate::pki::NodeCert;

/// The certificate a node presents now (cheap to clone: all clones share the slot).
#[derive(Clone)]
pub struct CertSlot {
    current: Arc<RwLock<Current>>,
}

struct Current {
    node: NodeCert,
    /// The certificate alone (what a client presents).
    leaf: Arc<CertifiedKey>,
    /// The certificate and the CA (what a server presents, so joining nodes can pin the CA).
    chain: Arc<CertifiedKey>,
}

impl std::fmt::Debug for CertSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertSlot").finish_non_exhaustive()
    }
}

impl CertSlot {
    /// A slot holding `node`.
    ///
    /// # Errors
    /// [`PkiError::InvalidCert`] when the certificate or key cannot be used.
    pub fn new(node: &NodeCert) -> Result<Self, PkiError> {
        Ok(CertSlot {
            current: Arc::new(RwLock::new(Current::of(node)?)),
        })
    }

    /// Replaces the certificate (new handshakes present `node`).
    ///
    /// # Errors
    /// As [`CertSlot::new`]; the slot keeps its certificate then.
    pub fn replace(&self, node: &NodeCert) -> Result<(), PkiError> {
        let next = Current::of(node)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The credentials in the slot now.
    pub fn node(&self) -> NodeCert {
        self.read().node.clone()
    }

    /// When the current certificate was issued, or `None` when that cannot be read.
    pub fn issued_at(&self) -> Option<SystemTime> {
        crate::pki::issued_at(&self.node().cert_der().ok()?)
    }

    /// When the current certificate should be renewed: two thirds into its life (from its issue
    /// time to its expiry), or now when that cannot be read.
    pub fn renew_at(&self) -> SystemTime {
        let node = self.node();
        let times = node.cert_der().ok().and_then(|der| {
            let issued = crate::pki::issued_at(&der)?;
            let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
            let expires = SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(cert.validity().not_after.timestamp()).ok()?);
            Some((issued, expires))
        });
        match times {
            Some((issued, expires)) => {
                let life = expires.duration_since(issued).unwrap_or_default();
                issued + life * 2 / 3
            }
            None => SystemTime::now(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Current {
    fn of(node: &NodeCert) -> Result<Self, PkiError> {
        let key = provider()
            .key_provider
            .load_private_key(node.key_der()?)
            .map_err(|e| PkiError::invalid_cert("node private key", e.to_string()))?;
        Ok(Current {
            node: node.clone(),
            leaf: Arc::new(CertifiedKey::new(vec![node.cert_der()?], key.clone())),
            chain: Arc::new(CertifiedKey::new(vec![node.cert_der()?, node.ca_der()?], key)),
        })
    }
}

impl ResolvesClientCert for CertSlot {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.read().leaf.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.read().chain.clone())
    }
}
