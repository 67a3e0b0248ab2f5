//! [`Service`], its server-owned [`Endpoints`], and [`HttpRoute`].
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};
use crate::quantity::DurationValue;

/// A stable name for the pods its selector matches, reachable in the cluster as
/// `http://NAME.NAMESPACE.svc` and through the gateway via [`HttpRoute`]s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: ServiceSpec,
}

/// Desired state of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// Pods with all these labels (in the service's namespace) back the service. Must not be empty.
    pub selector: BTreeMap<String, String>,
    /// Ports the service exposes (informational for wasm pods, which are addressed by pod).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
}

/// A port of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// Port name.
    #[serde(default)]
    pub name: String,
    /// Port number (1–65535).
    pub port: i64,
}

/// The addresses backing a service, kept by the endpoints controller (same name as the service).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoints {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// One entry per selected pod that is bound to a node.
    #[serde(default)]
    pub endpoints: Vec<EndpointAddress>,
}

/// One pod behind a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointAddress {
    /// Pod name.
    pub pod: String,
    /// Uid of the pod.
    #[serde(default)]
    pub pod_uid: String,
    /// Node the pod runs on.
    pub node: String,
    /// Data-plane base URL of that node.
    pub address: String,
    /// Whether the pod is ready for traffic.
    pub ready: bool,
    /// Relative share of the service's traffic when it is not even (a canary rollout); endpoints
    /// without one share equally. 0 takes no traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// Routes HTTP requests arriving at the gateway to services, by host and path prefix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: HttpRouteSpec,
}

/// Desired state of an HTTP route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteSpec {
    /// Host names this route answers (without port); empty means any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Rules, matched by longest path prefix.
    pub rules: Vec<RouteRule>,
}

/// One rule of a route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteRule {
    /// Path prefix this rule matches (segment-wise; `/` matches everything). Default `/`.
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// Services that serve matching requests, chosen by weight.
    pub backends: Vec<BackendRef>,
    /// Deadline for the whole request through the gateway (default 30s); past it: 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationValue>,
}

fn default_prefix() -> String {
    "/".into()
}

/// A service a route sends traffic to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendRef {
    /// Service name, in the route's namespace.
    pub service: String,
    /// Relative weight (default 1; 0 takes no traffic).
    #[serde(default = "default_weight")]
    pub weight: i64,
}

fn default_weight() -> i64 {
    1
}
