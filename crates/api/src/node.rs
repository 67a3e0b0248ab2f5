//! Cluster-scoped kinds: [`Namespace`] and [`Node`].
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};
use crate::quantity::ByteSize;

/// The node label carrying the node's CPU architecture (`amd64`, `arm64`).
pub const ARCH_LABEL: &str = "skiff.dev/arch";

/// A namespace: a scope for names of namespaced objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata (no namespace).
    pub metadata: ObjectMeta,
}

/// A worker node, registered and kept alive by its agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata; labels include [`ARCH_LABEL`].
    pub metadata: ObjectMeta,
    /// Desired state set by operators.
    #[serde(default)]
    pub spec: NodeSpec,
    /// Reported by the node's agent.
    #[serde(default)]
    pub status: NodeStatus,
}

/// What operators set on a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// When true, the scheduler places no new pods here (cordon).
    #[serde(default)]
    pub unschedulable: bool,
}

/// What a node's agent reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeStatus {
    /// Base URL of the node's data plane (`http://127.0.0.1:7071`).
    #[serde(default)]
    pub address: String,
    /// Whether the agent is up and its lease is fresh.
    #[serde(default)]
    pub ready: bool,
    /// What the node can hold.
    #[serde(default)]
    pub capacity: NodeCapacity,
    /// Runtimes this node offers (`wasm`, later `oci`).
    #[serde(default)]
    pub runtimes: Vec<String>,
    /// RFC 3339 time of the agent's last heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    /// Artifacts (sha256 digests) compiled and cached on the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cached_artifacts: Vec<String>,
    /// Free-form facts (`os`, agent version).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub info: BTreeMap<String, String>,
}

/// Schedulable capacity of a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCapacity {
    /// Memory available to guests.
    #[serde(default)]
    pub memory: ByteSize,
    /// Maximum number of pods.
    #[serde(default)]
    pub pods: u32,
}
