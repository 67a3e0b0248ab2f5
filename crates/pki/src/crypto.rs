//! The crypto provider every TLS configuration of the cluster uses, and the cluster CA as a root
//! store.
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;

use crate::error::PkiError;
use crate::pki::NodeCert;

/// The crypto provider (ring).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The cluster CA of `node` as the only root.
pub(crate) fn roots(node: &NodeCert) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(node.ca_der()?)
        .map_err(|e| PkiError::invalid_cert("CA certificate", e.to_string()))?;
    Ok(Arc::new(roots))
}
