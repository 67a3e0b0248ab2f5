//! [`Pod`]: one or more components co-scheduled on one node.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};
use crate::policy::{DisconnectPolicy, Toleration};
use crate::quantity::{ByteSize, DurationValue};

/// Header the gateway sets on a request it forwards to a worker's data plane: `namespace/name` of the
/// pod that must serve it.
pub const POD_NAME_HEADER: &str = "x-skiff-pod";

/// Header a worker's data plane sets on its 404 when the pod named by [`POD_NAME_HEADER`] does not
/// run there (stopped or moved): the request reached no component, so the gateway may send it
/// to another endpoint.
pub const NO_POD_HEADER: &str = "x-skiff-no-pod";

/// A pod: the unit of scheduling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pod {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: PodSpec,
    /// Observed state, written by the scheduler and the node's agent.
    #[serde(default)]
    pub status: PodStatus,
}

/// Desired state of a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSpec {
    /// The components; at least one, names unique.
    pub components: Vec<Component>,
    /// The node the pod is bound to; set by the scheduler (or by the user to skip scheduling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Labels a node must have to take this pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// What the agent does when a component stops.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// What happens to the pod while its node cannot be reached (default: replaced elsewhere after
    /// the control plane's eviction grace, kept running on the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<DisconnectPolicy>,
    /// Node taints this pod tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node affinity, pod affinity and anti-affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<crate::Affinity>,
    /// Spread matching pods over topology domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<crate::TopologySpreadConstraint>,
}

impl PodSpec {
    /// Sum of the components' memory limits (the pod's scheduling request).
    pub fn memory_request(&self) -> u64 {
        self.components
            .iter()
            .map(|c| c.resources.memory_or_default().0)
            .sum()
    }

    /// The pod's CPU request in millicores: the sum over its components (0 when none asks).
    pub fn cpu_request(&self) -> u64 {
        self.components
            .iter()
            .filter_map(|c| c.resources.cpu)
            .map(|c| c.0)
            .sum()
    }

    /// The disconnection policy, defaults filled in.
    pub fn disconnect_policy(&self) -> DisconnectPolicy {
        self.disconnect.unwrap_or_default()
    }
}

/// What happens when a component of a pod stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum RestartPolicy {
    /// Always restart (the default, and what a Deployment requires).
    #[default]
    Always,
    /// Restart only after a failure.
    OnFailure,
    /// Never restart.
    Never,
}

/// One component of a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Component {
    /// Name, unique within the pod (a DNS label); a function's may be left out (`fn`).
    #[serde(default)]
    pub name: String,
    /// The WebAssembly component to run (exactly one of `wasm` and `oci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<WasmSpec>,
    /// An OCI container to run instead, through the node's `oci` runtime plugin (`skiff-oci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciSpec>,
    /// Environment variables the guest sees through wasi:cli.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Arguments a `world: command` component sees through `wasi:cli/environment` (after its
    /// name); for an `oci` component, the arguments that replace the image's `Cmd`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Configuration the guest reads through `wasi:config/store` (`get`, `get-all`): the same
    /// shape as `env` — a literal `value` or a `valueFrom` ConfigMap / Secret key, read at start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<EnvVar>,
    /// Limits per instance.
    #[serde(default)]
    pub resources: Resources,
    /// What the component may reach outside its sandbox (denied unless granted here).
    #[serde(default, skip_serializing_if = "crate::Capabilities::is_empty")]
    pub capabilities: crate::Capabilities,
    /// Whether the pod may receive traffic: while it fails, `status.ready` is false and
    /// services leave the pod out. Without one, a started pod is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<crate::Probe>,
    /// Whether the component is alive: after `failureThreshold` consecutive failures the agent
    /// restarts the pod (with back-off), or fails it under `restartPolicy: Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<crate::Probe>,
}

/// Where a wasm component comes from and how it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmSpec {
    /// A local file, relative to the manifest. The CLI uploads it at apply time and replaces it by
    /// its `digest`; the server never reads client paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `sha256:<64 hex>` of the component's bytes. Alone: an artifact uploaded to the cluster's
    /// artifact store (`skiff push`). With `url` or `image`: the pin the downloaded bytes must
    /// match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// An `http://` or `https://` URL the node downloads the component from; requires `digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An OCI reference, `registry[:port]/repository[:tag][@sha256:<manifest digest>]`, the node
    /// pulls the component from (the wasm layer of the image manifest). Pinned either by the
    /// `@sha256:` manifest digest or by `digest` (the component's bytes), or both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The world the component targets.
    #[serde(default)]
    pub world: World,
    /// Serve many requests from one instance instead of a fresh instance per request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub instance_reuse: bool,
}

/// An OCI container: the image and how to run it. The container shares the host's network and
/// gets a port of its own, passed as `PORT`; the first component of a pod serves its traffic on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OciSpec {
    /// `registry[:port]/repository[:tag][@sha256:<manifest digest>]`. A registry on loopback is
    /// spoken to over plain HTTP, every other one over HTTPS; every blob is verified by digest.
    pub image: String,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Working directory (default: the image's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Writable tmpfs directories (absolute paths); the rest of the root filesystem is
    /// read-only unless `writableRoot`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Make the root filesystem writable (a private copy of the image).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub writable_root: bool,
}

impl Component {
    /// The runtime the component needs on its node: `wasm` or `oci`.
    pub fn runtime(&self) -> &'static str {
        if self.oci.is_some() { "oci" } else { "wasm" }
    }
}

/// The world a wasm component targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// `wasi:http/proxy`: an HTTP handler, one instance per request.
    #[default]
    Http,
    /// `wasi:cli/command`: runs `wasi:cli/run` once, to its exit (Jobs); never an endpoint.
    Command,
    /// `skiff:function/handler`: one event in, an optional payload or an error out (Functions);
    /// a fresh instance per call.
    Function,
}

/// An environment variable: a literal `value`, or a value read from a ConfigMap or Secret when the
/// pod starts (`valueFrom`); not both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Where the value comes from instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// The source of an environment variable's value: exactly one of the two references.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVarSource {
    /// A key of a ConfigMap in the pod's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
    /// A key of a Secret in the pod's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
}

/// A key of a named object in the pod's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRef {
    /// The object's name.
    pub name: String,
    /// The key in its `data`.
    pub key: String,
}

impl PodSpec {
    /// Names of the Secrets the pod's components read (`env[]` or `config[]`
    /// `.valueFrom.secretKeyRef`), sorted and
    /// without repeats.
    pub fn secret_names(&self) -> Vec<&str> {
        self.referenced(|s| s.secret_key_ref.as_ref())
    }

    /// Names of the ConfigMaps the pod's components read (`env[]` or `config[]`
    /// `.valueFrom.configMapKeyRef`),
    /// sorted and without repeats.
    pub fn config_map_names(&self) -> Vec<&str> {
        self.referenced(|s| s.config_map_key_ref.as_ref())
    }

    fn referenced<'a>(&'a self, pick: impl Fn(&'a EnvVarSource) -> Option<&'a KeyRef>) -> Vec<&'a str> {
        let mut names: Vec<&str> = self
            .components
            .iter()
            .flat_map(|c| c.env.iter().chain(c.config.iter()))
            .filter_map(|e| pick(e.value_from.as_ref()?))
            .map(|r| r.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Limits applied to each instance of a component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// Maximum linear memory per instance (default 64Mi); also the pod's scheduling request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Wall-clock deadline per request (default 30s); past it the request gets 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationValue>,
    /// Optional fuel (instruction budget) per instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// CPU the component asks the scheduler for (`250m`, `1`); default none. A placement request
    /// only: instances are bounded by `timeout` and `fuel`, not throttled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<crate::Millicores>,
    /// Requests (or calls) the component takes at once on this pod; one more is answered 429
    /// with `x-skiff-overloaded` instead of queueing. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

impl Resources {
    /// Default memory limit per instance.
    pub const DEFAULT_MEMORY: ByteSize = ByteSize(64 << 20);
    /// Default deadline per request.
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
    /// The longest deadline a request may be given.
    pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

    /// The memory limit, or [`Self::DEFAULT_MEMORY`].
    pub fn memory_or_default(&self) -> ByteSize {
        self.memory.unwrap_or(Self::DEFAULT_MEMORY)
    }

    /// The deadline, or [`Self::DEFAULT_TIMEOUT`].
    pub fn timeout_or_default(&self) -> std::time::Duration {
        self.timeout.map(|d| d.0).unwrap_or(Self::DEFAULT_TIMEOUT)
    }
}

/// Lifecycle phase of a pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum PodPhase {
    /// Accepted, not yet running (unscheduled, or loading on its node).
    #[default]
    Pending,
    /// Bound to a node and serving.
    Running,
    /// All components ended successfully and will not restart.
    Succeeded,
    /// Ended with an error (see `reason` and `message`).
    Failed,
}

/// Observed state of a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodStatus {
    /// Lifecycle phase.
    #[serde(default)]
    pub phase: PodPhase,
    /// Whether the pod should receive traffic.
    #[serde(default)]
    pub ready: bool,
    /// Short CamelCase reason for the phase (`Unschedulable`, `ArtifactNotFound`, `CompileError`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 time the pod started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// RFC 3339 time the pod reached `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// How many times the pod was restarted on its node (`restartCount` on the wire; the older
    /// name `restarts` is accepted).
    #[serde(default, rename = "restartCount", alias = "restarts")]
    pub restarts: u32,
    /// The scheduler's last decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<SchedulingStatus>,
    /// Exit code of a `world: command` component that ran to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Requests answered 429 because the namespace had used its fuel budget on the pod's node
    /// (a ResourceQuota's `fuel.perMinute`), counted by the node since the pod started.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub throttled_requests: u64,
    /// Outbound `wasi:http` requests no grant of `capabilities.outbound` allowed, counted by
    /// the node since the pod started, with the latest one's missing grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_outbound: Option<DeniedOutbound>,
}

/// Outbound requests of a pod that were denied (`status.deniedOutbound`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeniedOutbound {
    /// How many.
    #[serde(default)]
    pub count: u64,
    /// The component that sent the latest.
    #[serde(default)]
    pub component: String,
    /// The grant that would have allowed the latest (`http://host:port`), or why none can.
    #[serde(default)]
    pub missing: String,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// What the scheduler decided for a pod, with a reason for every node it rejected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulingStatus {
    /// `Scheduled` or `Unschedulable`.
    pub result: String,
    /// Summary.
    pub message: String,
    /// Node name → why it could not take the pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rejected: BTreeMap<String, String>,
    /// Node name → score of nodes that could.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scores: BTreeMap<String, i64>,
}
