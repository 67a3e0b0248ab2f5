//! The closed set of kinds (the [`Object`](crate::Object) enum holds one of each).
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Every kind this release knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum Kind {
    /// A namespace (cluster-scoped).
    Namespace,
    /// A worker node (cluster-scoped), registered by its agent.
    Node,
    /// A pod: components co-scheduled on one node.
    Pod,
    /// Keeps a number of pods of one template.
    Deployment,
    /// One revision of a deployment's template and its pods (made by the deployment controller).
    ReplicaSet,
    /// A stable name for the pods a selector matches.
    Service,
    /// The ready addresses of a service's pods (server-owned).
    Endpoints,
    /// Exposes services through the gateway by host and path.
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
    /// A revocable, expiring token agents and gateways join with (cluster-scoped).
    JoinToken,
    /// Something that happened to an object (server-owned).
    Event,
    /// Plain configuration pods read as environment variables.
    ConfigMap,
    /// Sensitive configuration, encrypted at rest.
    Secret,
    /// One pod on every matching node.
    DaemonSet,
    /// Pods that run to completion.
    Job,
    /// Jobs on a schedule.
    CronJob,
    /// A component plus triggers, scaled with its load (to zero when idle).
    Function,
    /// A named set of permissions API tokens are bound to (cluster-scoped).
    Role,
    /// A bearer token for API clients, bound to a role (cluster-scoped).
    ApiToken,
    /// A revoked node identity: its certificates issued until then are refused (cluster-scoped).
    Revocation,
    /// Limits on what one namespace may hold and use.
    ResourceQuota,
}

/// A kind name that is not one of [`Kind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown kind {0:?}: expected one of Namespace, Node, Pod, Deployment, ReplicaSet, Service, Endpoints, HTTPRoute, JoinToken, Event, ConfigMap, Secret, DaemonSet, Job, CronJob, Function, Role, ApiToken, Revocation, ResourceQuota"
)]
pub struct UnknownKind(pub String);

impl Kind {
    /// All kinds, in the order objects of a multi-kind apply are created.
    pub const ALL: [Kind; 20] = [
        Kind::Namespace,
        Kind::ResourceQuota,
        Kind::Role,
        Kind::ApiToken,
        Kind::Revocation,
        Kind::Node,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::Service,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::DaemonSet,
        Kind::CronJob,
        Kind::Job,
        Kind::Function,
        Kind::Pod,
        Kind::Endpoints,
        Kind::HttpRoute,
        Kind::JoinToken,
        Kind::Event,
    ];

    /// The name used in `kind:` fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Service => "Service",
            Kind::Endpoints => "Endpoints",
            Kind::HttpRoute => "HTTPRoute",
            Kind::JoinToken => "JoinToken",
            Kind::Event => "Event",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::Function => "Function",
            Kind::Role => "Role",
            Kind::ApiToken => "ApiToken",
            Kind::Revocation => "Revocation",
            Kind::ResourceQuota => "ResourceQuota",
        }
    }

    /// The lowercase plural used in URLs (`/api/v1/namespaces/{ns}/pods`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::Service => "services",
            Kind::Endpoints => "endpoints",
            Kind::HttpRoute => "httproutes",
            Kind::JoinToken => "jointokens",
            Kind::Event => "events",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
            Kind::DaemonSet => "daemonsets",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
            Kind::Function => "functions",
            Kind::Role => "roles",
            Kind::ApiToken => "apitokens",
            Kind::Revocation => "revocations",
            Kind::ResourceQuota => "resourcequotas",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            Kind::Namespace | Kind::Node | Kind::JoinToken | Kind::Role | Kind::ApiToken | Kind::Revocation
        )
    }

    /// Whether clients may create objects of this kind (others are written by Skiff itself).
    pub fn user_writable(self) -> bool {
        !matches!(self, Kind::Endpoints | Kind::Event | Kind::ReplicaSet)
    }

    /// Parses a plural (`pods`), singular (`pod`), kind name (`Pod`) or short name (`po`, `deploy`,
    /// `svc`, `ep`, `ns`, `no`, `route`, `ev`, `cm`, `fn`), case-insensitively.
    pub fn parse_any(s: &str) -> Result<Kind, UnknownKind> {
        let l = s.to_ascii_lowercase();
        let k = match l.as_str() {
            "namespace" | "namespaces" | "ns" => Kind::Namespace,
            "node" | "nodes" | "no" => Kind::Node,
            "pod" | "pods" | "po" => Kind::Pod,
            "deployment" | "deployments" | "deploy" => Kind::Deployment,
            "replicaset" | "replicasets" | "rs" => Kind::ReplicaSet,
            "service" | "services" | "svc" => Kind::Service,
            "endpoints" | "endpoint" | "ep" => Kind::Endpoints,
            "httproute" | "httproutes" | "route" | "routes" => Kind::HttpRoute,
            "jointoken" | "jointokens" | "token" | "tokens" => Kind::JoinToken,
            "event" | "events" | "ev" => Kind::Event,
            "configmap" | "configmaps" | "cm" => Kind::ConfigMap,
            "secret" | "secrets" => Kind::Secret,
            "daemonset" | "daemonsets" | "ds" => Kind::DaemonSet,
            "job" | "jobs" => Kind::Job,
            "cronjob" | "cronjobs" | "cj" => Kind::CronJob,
            "function" | "functions" | "fn" => Kind::Function,
            "role" | "roles" => Kind::Role,
            "apitoken" | "apitokens" => Kind::ApiToken,
            "revocation" | "revocations" => Kind::Revocation,
            "resourcequota" | "resourcequotas" | "quota" | "quotas" => Kind::ResourceQuota,
            _ => return Err(UnknownKind(s.to_owned())),
        };
        Ok(k)
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
