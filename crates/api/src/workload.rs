//! [`Deployment`]: keeps a number of identical pods running.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};
use crate::pod::PodSpec;

/// Labels as a plain map.
pub type MatchLabels = BTreeMap<String, String>;

/// Keeps `replicas` pods of `template` running, replacing failed ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: DeploymentSpec,
    /// Observed state, written by the deployment controller.
    #[serde(default)]
    pub status: DeploymentStatus,
}

/// Desired state of a deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    /// How many pods to keep (≥ 0; default 1).
    #[serde(default = "one")]
    pub replicas: i64,
    /// Which pods belong to the deployment; must match the template's labels.
    pub selector: LabelSelectorSpec,
    /// The pod to stamp out.
    pub template: PodTemplate,
}

fn one() -> i64 {
    1
}

/// A selector written as `matchLabels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorSpec {
    /// Every label here must be present with this value.
    pub match_labels: MatchLabels,
}

/// A pod template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplate {
    /// Labels and annotations given to each pod.
    #[serde(default)]
    pub metadata: TemplateMeta,
    /// The pod spec.
    pub spec: PodSpec,
}

/// Metadata of a pod template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateMeta {
    /// Labels given to each pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations given to each pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Observed state of a deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStatus {
    /// The `generation` the controller last acted on.
    #[serde(default)]
    pub observed_generation: u64,
    /// Pods that exist and are not terminated.
    #[serde(default)]
    pub replicas: u64,
    /// Pods of the current template.
    #[serde(default)]
    pub updated_replicas: u64,
    /// Pods that are ready.
    #[serde(default)]
    pub ready_replicas: u64,
}
