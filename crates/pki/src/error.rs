//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong with the cluster's certificates, keys, identities, join tokens
/// and TLS configurations.
///
/// Each variant says what failed, with which input, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file of the PKI could not be read or written.
    #[error("{action} {path}: {source}; check that the directory exists and is writable by this user")]
    File {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// A certificate, key or request could not be generated or signed.
    #[error("cannot {what}: {reason}")]
    Crypto {
        /// What was being generated or signed.
        what: &'static str,
        /// The cause, as reported by the certificate library.
        reason: String,
    },

    /// A PEM document or certificate is malformed or does not fit its role.
    #[error("invalid {what}: {reason}")]
    InvalidCert {
        /// Which document ("ca.crt", "certificate signing request", ...).
        what: String,
        /// Why it was refused.
        reason: String,
    },

    /// A node name, cluster name or raft id is not acceptable.
    #[error("invalid identity: {reason}")]
    InvalidIdentity {
        /// Why it was refused.
        reason: String,
    },

    /// A join token could not be parsed.
    #[error("join token: {reason}")]
    InvalidToken {
        /// What is wrong with it.
        reason: String,
    },

    /// A TLS configuration could not be built from the given certificates.
    #[error("cannot build the {what} TLS configuration: {reason}")]
    TlsConfig {
        /// Which configuration (server, client, joining client).
        what: &'static str,
        /// The cause.
        reason: String,
    },
}

impl PkiError {
    pub(crate) fn crypto(what: &'static str, e: impl std::fmt::Display) -> Self {
        PkiError::Crypto {
            what,
            reason: e.to_string(),
        }
    }

    pub(crate) fn invalid_cert(what: impl Into<String>, reason: impl Into<String>) -> Self {
        PkiError::InvalidCert {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
