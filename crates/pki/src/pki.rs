//! The cluster PKI: one CA per cluster, a key pair and a certificate per node.
//!
//! A node generates its own key and sends only a certificate signing request (CSR); the CA signs
//! the request's public key with an identity *the CA* chooses ([`ClusterCa::sign`]). Whatever
//! names the CSR asks for are ignored, so a joining node cannot pick its own role or raft id.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::PkiError;
use crate::identity::{Identity, validate_name};

/// File name of the CA certificate, in both the CA directory and a node's directory.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA private key (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key";
/// File name of a node's certificate.
pub const NODE_CERT_FILE: &str = "node.crt";
/// File name of a node's private key (mode 0600).
pub const NODE_KEY_FILE: &str = "node.key";

/// How long the cluster CA is valid: 10 years.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Tolerated clock skew: certificates are valid from this long before they are issued.
const BACKDATE: Duration = Duration::from_secs(3600);
/// The largest CSR the CA reads.
const MAX_CSR_BYTES: usize = 16 * 1024;

/// When the certificate in `der` was issued (its `notBefore` plus the skew it was backdated
/// by, to the second), or `None` when it does not parse.
pub fn issued_at(der: &[u8]) -> Option<std::time::SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_before = u64::try_from(cert.validity().not_before.timestamp()).ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(not_before) + BACKDATE)
}

/// The hex SHA-256 of a certificate's DER: how a join token names the cluster CA.
pub fn cert_hash(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The cluster's certificate authority: its certificate and private key.
///
/// Created once when the first control node initialises the cluster, kept on the control nodes,
/// and used to sign every node certificate. Cheap to keep; signing costs one ECDSA signature.
pub struct ClusterCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("ca_hash", &self.ca_hash())
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Generates a new CA (ECDSA P-256, valid for [`CA_VALIDITY`]) for the named cluster.
    ///
    /// # Errors
    /// [`PkiError::InvalidIdentity`] for an unusable cluster name (same rules as node names),
    /// [`PkiError::Crypto`] if key generation fails.
    pub fn generate(cluster_name: &str) -> Result<Self, PkiError> {
        validate_name(cluster_name).map_err(|_| PkiError::InvalidIdentity {
            reason: format!("cluster name {cluster_name:?} must be 1-63 lowercase letters, digits and '-'"),
        })?;
        let key = KeyPair::generate().map_err(|e| PkiError::crypto("generate the CA key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, "skiff");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("skiff cluster {cluster_name} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_VALIDITY);
        let cert = params
            .self_signed(&key)
            .map_err(|e| PkiError::crypto("self-sign the CA certificate", e))?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key,
        })
    }

    /// Writes `ca.crt` (0644) and `ca.key` (0600) into `dir` (created with mode 0700 if
    /// missing), each atomically.
    ///
    /// # Errors
    /// [`PkiError::File`] if a file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        create_dir(dir)?;
        write_atomic(&dir.join(CA_CERT_FILE), self.cert_pem.as_bytes(), 0o644)?;
        write_atomic(&dir.join(CA_KEY_FILE), self.key.serialize_pem().as_bytes(), 0o600)
    }

    /// Reads a CA written by [`ClusterCa::save`], checking that the key belongs to the certificate.
    ///
    /// # Errors
    /// [`PkiError::File`] if a file cannot be read, [`PkiError::InvalidCert`] if a file is
    /// malformed, not a CA, or the key does not match.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let cert_pem = read_string(&cert_path)?;
        let key_pem = read_string(&dir.join(CA_KEY_FILE))?;
        let cert_der = parse_cert_pem(&cert_path.display().to_string(), &cert_pem)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| {
            PkiError::invalid_cert(dir.join(CA_KEY_FILE).display().to_string(), e.to_string())
        })?;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| PkiError::invalid_cert(cert_path.display().to_string(), e.to_string()))?;
        if !x509.is_ca() {
            return Err(PkiError::invalid_cert(
                cert_path.display().to_string(),
                "it is not a CA certificate",
            ));
        }
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::invalid_cert(
                dir.join(CA_KEY_FILE).display().to_string(),
                "the key does not belong to the certificate in ca.crt; restore both from the same backup",
            ));
        }
        Ok(ClusterCa {
            cert_pem,
            cert_der,
            key,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Hex SHA-256 of the CA certificate's DER: the value a join token pins.
    pub fn ca_hash(&self) -> String {
        cert_hash(&self.cert_der)
    }

    /// Signs a node's CSR with the given identity, valid from now (minus one hour of skew) for
    /// `validity`.
    ///
    /// The CSR contributes only its public key (its signature is checked, proving the requester
    /// holds the private key); the identity, key usages and names are the CA's.
    ///
    /// # Errors
    /// [`PkiError::InvalidIdentity`] for a bad identity, [`PkiError::InvalidCert`] for a
    /// malformed or badly signed CSR, [`PkiError::Crypto`] if signing fails.
    pub fn sign(&self, csr_pem: &str, identity: &Identity, validity: Duration) -> Result<String, PkiError> {
        identity.validate()?;
        let what = "certificate signing request";
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err(PkiError::invalid_cert(
                what,
                format!("it is {} bytes, more than {MAX_CSR_BYTES}", csr_pem.len()),
            ));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::invalid_cert(what, e.to_string()))?;
        let params = node_params(identity, validity)?;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key)
            .map_err(|e| PkiError::crypto("read the CA certificate", e))?;
        let cert = params
            .signed_by(&csr.public_key, &issuer)
            .map_err(|e| PkiError::crypto("sign the node certificate", e))?;
        Ok(cert.pem())
    }

    /// Generates a key and issues a certificate for a node in one step (for the CA's own node).
    ///
    /// # Errors
    /// As [`ClusterCa::sign`].
    pub fn issue(&self, identity: &Identity, validity: Duration) -> Result<NodeCert, PkiError> {
        let key = NodeKey::generate()?;
        let csr = key.csr(identity)?;
        let cert_pem = self.sign(&csr, identity, validity)?;
        Ok(NodeCert {
            cert_pem,
            key_pem: key.key_pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }
}

fn node_params(identity: &Identity, validity: Duration) -> Result<CertificateParams, PkiError> {
    let ia5 = |s: String| {
        s.try_into()
            .map_err(|e| PkiError::crypto("encode a subject alternative name", e))
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "skiff");
    params
        .distinguished_name
        .push(DnType::CommonName, identity.name.clone());
    params.subject_alt_names = vec![
        SanType::DnsName(ia5(identity.server_name().to_owned())?),
        SanType::URI(ia5(identity.to_uri())?),
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, validity);
    Ok(params)
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    // Positive 128-bit serial (top bit clear), unique with overwhelming probability.
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

/// A node's private key (ECDSA P-256). It never leaves the node.
pub struct NodeKey {
    key: KeyPair,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(..)")
    }
}

impl NodeKey {
    /// Generates a fresh key.
    ///
    /// # Errors
    /// [`PkiError::Crypto`] if the system's randomness fails.
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate().map_err(|e| PkiError::crypto("generate a node key", e))?;
        Ok(NodeKey { key })
    }

    /// Reads a key from PEM (PKCS#8).
    ///
    /// # Errors
    /// [`PkiError::InvalidCert`] if the PEM is not a supported private key.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let key =
            KeyPair::from_pem(pem).map_err(|e| PkiError::invalid_cert("node private key", e.to_string()))?;
        Ok(NodeKey { key })
    }

    /// The key as PEM (PKCS#8). Store it with mode 0600.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A CSR (PEM) asking for `identity`. The CA decides the final identity anyway.
    ///
    /// # Errors
    /// [`PkiError::InvalidIdentity`] for a bad identity, [`PkiError::Crypto`] if signing fails.
    pub fn csr(&self, identity: &Identity) -> Result<String, PkiError> {
        identity.validate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.name.clone());
        let csr = params
            .serialize_request(&self.key)
            .map_err(|e| PkiError::crypto("create a certificate signing request", e))?;
        csr.pem()
            .map_err(|e| PkiError::crypto("encode a certificate signing request", e))
    }
}

/// A node's credentials: its certificate, its private key and the cluster CA certificate (PEM).
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCert {
    /// The node certificate, signed by the cluster CA.
    pub cert_pem: String,
    /// The node's private key.
    pub key_pem: String,
    /// The cluster CA certificate.
    pub ca_pem: String,
}

impl std::fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCert")
            .field("identity", &self.identity().ok())
            .finish_non_exhaustive()
    }
}

impl NodeCert {
    /// Writes `node.crt`, `node.key` (0600) and `ca.crt` into `dir` (created with mode 0700 if
    /// missing), each atomically.
    ///
    /// # Errors
    /// [`PkiError::File`] if a file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        create_dir(dir)?;
        write_atomic(&dir.join(CA_CERT_FILE), self.ca_pem.as_bytes(), 0o644)?;
        write_atomic(&dir.join(NODE_KEY_FILE), self.key_pem.as_bytes(), 0o600)?;
        write_atomic(&dir.join(NODE_CERT_FILE), self.cert_pem.as_bytes(), 0o644)
    }

    /// Reads credentials written by [`NodeCert::save`] and checks that they parse and that the
    /// key belongs to the certificate.
    ///
    /// # Errors
    /// [`PkiError::File`] if a file cannot be read, [`PkiError::InvalidCert`] if one is
    /// malformed.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let cert = NodeCert {
            cert_pem: read_string(&dir.join(NODE_CERT_FILE))?,
            key_pem: read_string(&dir.join(NODE_KEY_FILE))?,
            ca_pem: read_string(&dir.join(CA_CERT_FILE))?,
        };
        cert.identity()?;
        cert.ca_der()?;
        cert.key_der()?;
        let key = NodeKey::from_pem(&cert.key_pem)?;
        let der = cert.cert_der()?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| PkiError::invalid_cert("node certificate", e.to_string()))?;
        if x509.public_key().subject_public_key.data.as_ref() != key.key.public_key_raw() {
            return Err(PkiError::invalid_cert(
                dir.join(NODE_KEY_FILE).display().to_string(),
                "the key does not belong to the certificate in node.crt; restore both from the \
                 same backup or join again",
            ));
        }
        Ok(cert)
    }

    /// The identity the CA wrote into the certificate.
    ///
    /// # Errors
    /// [`PkiError::InvalidCert`] if the certificate is malformed or has no identity.
    pub fn identity(&self) -> Result<Identity, PkiError> {
        crate::identity::identity_from_cert(&self.cert_der()?)
    }

    /// Hex SHA-256 of the CA certificate.
    ///
    /// # Errors
    /// [`PkiError::InvalidCert`] if the CA certificate is malformed.
    pub fn ca_hash(&self) -> Result<String, PkiError> {
        Ok(cert_hash(&self.ca_der()?))
    }

    pub(crate) fn cert_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        parse_cert_pem("node certificate", &self.cert_pem)
    }

    pub(crate) fn ca_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        parse_cert_pem("CA certificate", &self.ca_pem)
    }

    pub(crate) fn key_der(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| PkiError::invalid_cert("node private key", e.to_string()))
    }
}

/// Parses exactly one PEM certificate; `what` names it in the error.
///
/// # Errors
/// [`PkiError::InvalidCert`] when `pem` holds no certificate.
pub fn parse_cert_pem(what: &str, pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::invalid_cert(what, format!("not a PEM certificate: {e}")))
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::File {
            action: "creating directory",
            path: dir.to_owned(),
            source,
        })
}

fn read_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::File {
        action: "reading",
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory, created with `mode`,
/// synced, then renamed over `path`; the directory is synced too. Readers see the old file or
/// the new one, never a part.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let file_err = |source| PkiError::File {
        action: "writing",
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` applies only when the file is created; a leftover temp file keeps its own.
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(file_err)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn ca_signs_with_its_own_identity_not_the_csrs() {
        let ca = ClusterCa::generate("prod").unwrap();
        let key = NodeKey::generate().unwrap();
        // The node asks to be control node 1; the CA makes it an agent.
        let csr = key.csr(&Identity::control("n1", 1)).unwrap();
        let cert = ca.sign(&csr, &Identity::agent("n1"), DAY).unwrap();
        let nc = NodeCert {
            cert_pem: cert,
            key_pem: key.key_pem(),
            ca_pem: ca.cert_pem().to_owned(),
        };
        assert_eq!(nc.identity().unwrap(), Identity::agent("n1"));
        assert_eq!(nc.ca_hash().unwrap(), ca.ca_hash());
        assert_eq!(ca.ca_hash().len(), 64);
    }

    #[test]
    fn save_and_load_keep_everything_and_protect_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("prod").unwrap();
        ca.save(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = ClusterCa::load(dir.path()).unwrap();
        assert_eq!(loaded.ca_hash(), ca.ca_hash());

        let node = loaded.issue(&Identity::control("cp-1", 1), DAY).unwrap();
        node.save(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(NODE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = NodeCert::load(dir.path()).unwrap();
        assert_eq!(back, node);
        assert_eq!(back.identity().unwrap(), Identity::control("cp-1", 1));
    }

    #[test]
    fn load_refuses_a_key_from_another_ca() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        ClusterCa::generate("a").unwrap().save(dir.path()).unwrap();
        ClusterCa::generate("b").unwrap().save(other.path()).unwrap();
        fs::copy(other.path().join(CA_KEY_FILE), dir.path().join(CA_KEY_FILE)).unwrap();
        let err = ClusterCa::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn a_tampered_csr_is_refused() {
        let ca = ClusterCa::generate("prod").unwrap();
        let csr = NodeKey::generate().unwrap().csr(&Identity::agent("x")).unwrap();
        let mut der = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
        // Flip a bit in the signature (the end of the DER).
        let last = der.len() - 3;
        der[last] ^= 1;
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64(&der)
        );
        let err = ca
            .sign(&tampered, &Identity::agent("x"), DAY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Invalid CSR signature"), "{err}");
    }

    fn base64(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn load_refuses_a_node_key_that_is_not_the_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("prod").unwrap();
        let mut node = ca.issue(&Identity::agent("a"), DAY).unwrap();
        node.key_pem = NodeKey::generate().unwrap().key_pem();
        node.save(&dir.path().join("sub")).unwrap();
        let err = NodeCert::load(&dir.path().join("sub")).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn garbage_csr_is_refused() {
        let ca = ClusterCa::generate("prod").unwrap();
        let err = ca
            .sign("not a csr", &Identity::agent("x"), DAY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("certificate signing request"), "{err}");
        assert!(ca.sign("x", &Identity::control("x", 0), DAY).is_err());
    }
}
