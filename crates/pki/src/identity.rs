//! Who a node is: the identity the cluster CA writes into every node certificate.

use std::fmt;

use x509_parser::extensions::GeneralName;

use crate::PkiError;

/// The TLS server name (a DNS SAN) in every control node's certificate; clients verify it.
pub const CONTROL_SERVER_NAME: &str = "control.skiff.internal";
/// The TLS server name (a DNS SAN) in every agent's certificate.
pub const AGENT_SERVER_NAME: &str = "agent.skiff.internal";
/// The TLS server name (a DNS SAN) in every gateway's certificate.
pub const GATEWAY_SERVER_NAME: &str = "gateway.skiff.internal";

const URI_SCHEME: &str = "skiff://";
const MAX_NAME_LEN: usize = 63;

/// What a node may do in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A control node: a member of the raft group with this raft id (never 0).
    Control {
        /// The node's raft id.
        raft_id: u64,
    },
    /// A worker. Agents may not send raft messages.
    Agent,
    /// A standalone gateway: reads routes and endpoints, calls agents' data planes.
    Gateway,
}

/// A node's identity: its name and role, as certified by the cluster CA.
///
/// Written into the certificate as a URI SAN, `skiff://control/<raft_id>/<name>` or
/// `skiff://agent/<name>`. Names are DNS labels: 1–63 characters of `a-z`, `0-9` and `-`,
/// starting and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The node's name, unique in the cluster.
    pub name: String,
    /// The node's role.
    pub role: Role,
}

impl Identity {
    /// The role as a word: `control`, `agent` or `gateway` (revocations are named by it).
    pub fn kind(&self) -> &'static str {
        match self.role {
            Role::Control { .. } => "control",
            Role::Agent => "agent",
            Role::Gateway => "gateway",
        }
    }

    /// A control node's identity.
    pub fn control(name: impl Into<String>, raft_id: u64) -> Self {
        Identity {
            name: name.into(),
            role: Role::Control { raft_id },
        }
    }

    /// An agent's identity.
    pub fn agent(name: impl Into<String>) -> Self {
        Identity {
            name: name.into(),
            role: Role::Agent,
        }
    }

    /// A gateway's identity.
    pub fn gateway(name: impl Into<String>) -> Self {
        Identity {
            name: name.into(),
            role: Role::Gateway,
        }
    }

    /// The raft id of a control node, `None` for agents and gateways.
    pub fn raft_id(&self) -> Option<u64> {
        match self.role {
            Role::Control { raft_id } => Some(raft_id),
            Role::Agent | Role::Gateway => None,
        }
    }

    /// Checks the name and raft id.
    ///
    /// # Errors
    /// [`PkiError::InvalidIdentity`] saying what is wrong.
    pub fn validate(&self) -> Result<(), PkiError> {
        validate_name(&self.name)?;
        if self.role == (Role::Control { raft_id: 0 }) {
            return Err(PkiError::InvalidIdentity {
                reason: format!("control node {:?} has raft id 0; raft ids start at 1", self.name),
            });
        }
        Ok(())
    }

    /// The URI SAN that encodes this identity.
    pub fn to_uri(&self) -> String {
        match self.role {
            Role::Control { raft_id } => format!("{URI_SCHEME}control/{raft_id}/{}", self.name),
            Role::Agent => format!("{URI_SCHEME}agent/{}", self.name),
            Role::Gateway => format!("{URI_SCHEME}gateway/{}", self.name),
        }
    }

    /// Parses a URI SAN written by [`Identity::to_uri`].
    ///
    /// # Errors
    /// [`PkiError::InvalidIdentity`] for anything else.
    pub fn from_uri(uri: &str) -> Result<Self, PkiError> {
        let bad = |why: &str| PkiError::InvalidIdentity {
            reason: format!("{uri:?} is not a skiff node identity: {why}"),
        };
        let rest = uri
            .strip_prefix(URI_SCHEME)
            .ok_or_else(|| bad("expected the scheme skiff://"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let id = match parts.as_slice() {
            ["control", raft_id, name] => {
                let raft_id: u64 = raft_id.parse().map_err(|_| bad("the raft id is not a number"))?;
                Identity::control(*name, raft_id)
            }
            ["agent", name] => Identity::agent(*name),
            ["gateway", name] => Identity::gateway(*name),
            _ => {
                return Err(bad(
                    "expected control/<raft id>/<name>, agent/<name> or gateway/<name>",
                ));
            }
        };
        id.validate()?;
        Ok(id)
    }

    /// The DNS SAN (TLS server name) of certificates with this identity's role.
    pub fn server_name(&self) -> &'static str {
        match self.role {
            Role::Control { .. } => CONTROL_SERVER_NAME,
            Role::Agent => AGENT_SERVER_NAME,
            Role::Gateway => GATEWAY_SERVER_NAME,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.role {
            Role::Control { raft_id } => write!(f, "control node {} (raft id {raft_id})", self.name),
            Role::Agent => write!(f, "agent {}", self.name),
            Role::Gateway => write!(f, "gateway {}", self.name),
        }
    }
}

/// Checks that `name` is a DNS label (1–63 of `a-z0-9-`, not starting or ending with `-`).
///
/// # Errors
/// [`PkiError::InvalidIdentity`] saying what is wrong.
pub fn validate_name(name: &str) -> Result<(), PkiError> {
    let bad = |why: &str| PkiError::InvalidIdentity {
        reason: format!("node name {name:?} {why}; use 1-63 lowercase letters, digits and '-'"),
    };
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("is longer than 63 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("has characters other than a-z, 0-9 and '-'"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(bad("starts or ends with '-'"));
    }
    Ok(())
}

/// Reads the identity from an end-entity certificate (DER).
///
/// Only meaningful for a certificate that was verified against the cluster CA: the CA is what
/// makes the identity in it true. The certificate must carry exactly one `skiff://` URI SAN.
///
/// # Errors
/// [`PkiError::InvalidCert`] if the certificate cannot be parsed or carries no (or several)
/// identities, [`PkiError::InvalidIdentity`] if the identity is malformed.
pub fn identity_from_cert(der: &[u8]) -> Result<Identity, PkiError> {
    let what = "node certificate";
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::invalid_cert(what, e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::invalid_cert(what, e.to_string()))?
        .ok_or_else(|| PkiError::invalid_cert(what, "it has no subject alternative names"))?;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) if u.starts_with(URI_SCHEME) => Some(*u),
        _ => None,
    });
    let uri = uris
        .next()
        .ok_or_else(|| PkiError::invalid_cert(what, "it carries no skiff:// node identity"))?;
    if uris.next().is_some() {
        return Err(PkiError::invalid_cert(
            what,
            "it carries more than one skiff:// node identity",
        ));
    }
    Identity::from_uri(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_round_trip() {
        for id in [
            Identity::control("cp-1", 7),
            Identity::agent("edge-42"),
            Identity::gateway("gw-1"),
        ] {
            assert_eq!(Identity::from_uri(&id.to_uri()).unwrap(), id);
        }
        assert_eq!(Identity::control("a", 3).to_uri(), "skiff://control/3/a");
        assert_eq!(Identity::agent("b").to_uri(), "skiff://agent/b");
    }

    #[test]
    fn bad_identities_are_refused() {
        for uri in [
            "https://control/1/a",
            "skiff://control/x/a",
            "skiff://control/0/a",
            "skiff://control/1/A",
            "skiff://control/1/a/b",
            "skiff://agent/",
            "skiff://agent/-a",
            "skiff://worker/a",
        ] {
            assert!(Identity::from_uri(uri).is_err(), "{uri} accepted");
        }
        let long = "a".repeat(64);
        assert!(validate_name(&long).is_err());
        assert!(validate_name(&"a".repeat(63)).is_ok());
    }
}
