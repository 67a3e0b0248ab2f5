//! Cluster-scoped kinds: [`Namespace`] and [`Node`].
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};
use crate::policy::Taint;
use crate::quantity::ByteSize;

/// The node label carrying the node's CPU architecture (`amd64`, `arm64`).
pub const ARCH_LABEL: &str = "skiff.dev/arch";
/// The node label carrying the node's operating system (`linux`, `macos`).
pub const OS_LABEL: &str = "skiff.dev/os";
/// The node label carrying the machine's host name.
pub const HOSTNAME_LABEL: &str = "skiff.dev/hostname";

/// A namespace: a scope for names of namespaced objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata (no namespace).
    pub metadata: ObjectMeta,
}

/// A worker node, registered and kept alive by its agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// When true, the scheduler places no new pods here (cordon).
    #[serde(default)]
    pub unschedulable: bool,
    /// Marks that repel pods which do not tolerate them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

/// What a node's agent reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCapacity {
    /// Memory available to guests.
    #[serde(default)]
    pub memory: ByteSize,
    /// Maximum number of pods.
    #[serde(default)]
    pub pods: u32,
    /// CPU the node offers to pods' requests; 0 (not reported) places no CPU limit.
    #[serde(default, skip_serializing_if = "is_zero_cpu")]
    pub cpu: crate::Millicores,
    /// The most linear memory one wasm instance may have on the node; a pod with a component
    /// asking more is not placed there. 0 (not reported) places no such limit.
    #[serde(default, skip_serializing_if = "is_zero_bytes")]
    pub instance_memory: ByteSize,
}

fn is_zero_bytes(b: &ByteSize) -> bool {
    b.0 == 0
}

fn is_zero_cpu(c: &crate::Millicores) -> bool {
    c.0 == 0
}

/// Annotation under which the control plane keeps a node's [`NodeCondition`]s, as a JSON list.
///
/// The agent owns `status` and rewrites all of it on every heartbeat, so what the control plane
/// decides about a node (it stopped heartbeating, since when, why) lives beside it, where a
/// heartbeat cannot erase it. Read and write it through [`Node::conditions`] and
/// [`Node::set_condition`].
pub const CONDITIONS_ANNOTATION: &str = "skiff.dev/conditions";

/// The condition type saying whether a node can run pods (its agent heartbeats).
pub const READY_CONDITION: &str = "Ready";

/// Whether a condition holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not.
    False,
    /// Nobody knows yet.
    #[default]
    Unknown,
}

/// One observed fact about a node (`Ready`), with why and since when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCondition {
    /// What the condition is about ([`READY_CONDITION`]).
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// Short CamelCase reason (`HeartbeatMissed`, `HeartbeatFresh`).
    #[serde(default)]
    pub reason: String,
    /// What a person should know (`no heartbeat for 12s`).
    #[serde(default)]
    pub message: String,
    /// RFC 3339 time the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Node {
    /// The node's conditions, sorted by type (none when the annotation is absent or unreadable).
    pub fn conditions(&self) -> Vec<NodeCondition> {
        self.metadata
            .annotations
            .get(CONDITIONS_ANNOTATION)
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default()
    }

    /// The condition of this type, if recorded.
    pub fn condition(&self, type_: &str) -> Option<NodeCondition> {
        self.conditions().into_iter().find(|c| c.type_ == type_)
    }

    /// Records `condition`, replacing the one of the same type.
    pub fn set_condition(&mut self, condition: NodeCondition) {
        let mut all = self.conditions();
        all.retain(|c| c.type_ != condition.type_);
        all.push(condition);
        all.sort_by(|a, b| a.type_.cmp(&b.type_));
        if let Ok(json) = serde_json::to_string(&all) {
            self.metadata
                .annotations
                .insert(CONDITIONS_ANNOTATION.to_owned(), json);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_round_trip_through_the_annotation() {
        let mut n = Node::default();
        assert!(n.conditions().is_empty());
        let down = NodeCondition {
            type_: READY_CONDITION.into(),
            status: ConditionStatus::False,
            reason: "HeartbeatMissed".into(),
            message: "no heartbeat for 12s".into(),
            last_transition_time: Some("2026-01-01T00:00:00Z".into()),
        };
        n.set_condition(down.clone());
        assert_eq!(n.condition(READY_CONDITION), Some(down));
        n.set_condition(NodeCondition {
            type_: READY_CONDITION.into(),
            status: ConditionStatus::True,
            ..Default::default()
        });
        assert_eq!(n.conditions().len(), 1);
        assert_eq!(n.conditions()[0].status, ConditionStatus::True);
        let json = &n.metadata.annotations[CONDITIONS_ANNOTATION];
        assert!(json.contains(r#""type":"Ready""#), "{json}");
    }
}
