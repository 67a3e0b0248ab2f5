//! [`JoinToken`]: a revocable, expiring credential that lets a worker or gateway join.
use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};

/// A join token for agents and gateways (cluster-scoped).
///
/// The token a node is given is `SKF1<ca hash>::<id>.<secret>`: the object is named by `<id>`
/// (6 characters of `a-z0-9`) and stores only the SHA-256 of `<secret>` (16 characters of
/// `a-z0-9`), so reading tokens back reveals nothing that lets anyone join. Deleting the object
/// revokes the token; `spec.expires` bounds its life. `skiff token create` makes one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinToken {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata; the name is the token id.
    pub metadata: ObjectMeta,
    /// What the token allows and until when.
    pub spec: JoinTokenSpec,
}

/// The stored part of a join token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinTokenSpec {
    /// Hex SHA-256 of the secret part (64 lowercase hex characters).
    pub secret_hash: String,
    /// When the token stops working (RFC 3339, UTC); absent = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Free text for operators (at most 256 characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The one registered node an agent joining with this token may take over (its old
    /// certificate's identity); absent = the token joins only new names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// Characters of a token id.
pub const TOKEN_ID_LEN: usize = 6;
/// Characters of a token secret.
pub const TOKEN_SECRET_LEN: usize = 16;

/// What an agent or gateway sends to `POST /api/v1/join` (over TLS, after checking the server's
/// CA against the token's CA hash).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeJoinRequest {
    /// The token's secret part (after `::`): `<id>.<secret>`, or the cluster join token's secret.
    pub token: String,
    /// The node name asked for (a DNS label).
    pub name: String,
    /// `agent` or `gateway`.
    pub role: String,
    /// A PEM certificate signing request for the node's key.
    pub csr_pem: String,
}

impl std::fmt::Debug for NodeJoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeJoinRequest")
            .field("token", &"<redacted>")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// What a node sends to `POST /api/v1/renew` (over TLS with its current certificate): a CSR
/// for a new key. The answer is a [`NodeJoinResponse`] with the same identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRenewRequest {
    /// A PEM certificate signing request for the node's new key.
    pub csr_pem: String,
}

/// The control plane's answer to an accepted join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeJoinResponse {
    /// The node's certificate (PEM), signed by the cluster CA with the identity asked for.
    pub cert_pem: String,
    /// The cluster CA certificate (PEM).
    pub ca_pem: String,
}
