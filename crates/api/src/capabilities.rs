//! [`Capabilities`]: what a component may reach beyond its own sandbox. Everything not granted
//! is denied.
use serde::{Deserialize, Serialize};

/// What a component may reach beyond its own sandbox. Everything not granted is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// Key-value stores of the pod's namespace the component may open through
    /// `wasi:keyvalue/store` (`open(name)`); a store is created by its first write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_value: Vec<String>,
    /// Destinations the component may send `wasi:http` requests to, each
    /// `SCHEME://HOST[:PORT]` ([`OutboundGrant`](crate::OutboundGrant)): `https://api.example.com`,
    /// `http://*.example.com`, `*://web.default.svc`, `http://10.0.0.7:8080`, `http://*:*`. A
    /// request to anything else fails with `HTTP-request-denied`, and the pod's log and an
    /// `OutboundDenied` event name the grant that would allow it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<String>,
}

impl Capabilities {
    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.key_value.is_empty() && self.outbound.is_empty()
    }

    /// The parsed `outbound` grants; ones that do not parse (never in a validated object) are
    /// left out.
    pub fn outbound_grants(&self) -> Vec<crate::OutboundGrant> {
        self.outbound.iter().filter_map(|g| g.parse().ok()).collect()
    }
}
