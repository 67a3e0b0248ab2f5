//! [`Deployment`]: keeps a number of identical pods running, rolling from one template revision
//! ([`ReplicaSet`]) to the next by a [`DeploymentStrategy`].
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};
use crate::pod::PodSpec;
use crate::quantity::DurationValue;
use crate::rollout::{CanaryStatus, DeploymentCondition, DeploymentStrategy};

/// Labels as a plain map.
pub type MatchLabels = BTreeMap<String, String>;

/// Keeps `replicas` pods of `template` running, replacing failed ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    /// How many pods to keep (≥ 0; default 1).
    #[serde(default = "one")]
    pub replicas: i64,
    /// Which pods belong to the deployment; must match the template's labels.
    pub selector: LabelSelectorSpec,
    /// The pod to stamp out.
    pub template: PodTemplate,
    /// How a template change replaces the running pods (default: RollingUpdate, 25% surge, 25%
    /// unavailable).
    #[serde(default, skip_serializing_if = "DeploymentStrategy::is_default")]
    pub strategy: DeploymentStrategy,
    /// Stops rollouts: template changes wait until `paused` is false again (`skiff rollout
    /// pause|resume`). A canary sets it at a pause step without a duration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// How many old revisions (scaled-down ReplicaSets) to keep for `rollout undo` (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<u32>,
    /// How long a rollout may go without progress before it is reported failed (condition
    /// `Progressing` false, reason `ProgressDeadlineExceeded`; default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<DurationValue>,
    /// Roll the pods (a new revision, by the strategy) when a ConfigMap or Secret the template
    /// reads changes; otherwise pods keep the values they started with until replaced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollout_on_config_change: bool,
}

/// Default of [`DeploymentSpec::revision_history_limit`].
pub const DEFAULT_REVISION_HISTORY_LIMIT: u32 = 10;
/// Default of [`DeploymentSpec::progress_deadline`].
pub const DEFAULT_PROGRESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// Label carrying the hash of the template a pod (and its ReplicaSet) was made from.
pub const TEMPLATE_HASH_LABEL: &str = "skiff.dev/template-hash";

/// Annotation holding a ReplicaSet's (and the deployment's current) revision number.
pub const REVISION_ANNOTATION: &str = "skiff.dev/revision";
/// Annotation with the reason a revision was made: set it on a Deployment to describe the change
/// (`skiff rollout history` shows it); otherwise the controller writes what changed.
pub const CHANGE_CAUSE_ANNOTATION: &str = "skiff.dev/change-cause";
/// Template annotation carrying a fingerprint of the ConfigMaps and Secrets a deployment with
/// `rolloutOnConfigChange` reads: a change makes a new revision.
pub const CONFIG_HASH_ANNOTATION: &str = "skiff.dev/config-hash";
/// Template annotation `skiff rollout restart` sets to roll every pod.
pub const RESTARTED_AT_ANNOTATION: &str = "skiff.dev/restartedAt";

impl DeploymentSpec {
    /// The history limit, default filled in.
    pub fn history_limit(&self) -> u32 {
        self.revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
    }

    /// The progress deadline, default filled in.
    pub fn progress_deadline(&self) -> std::time::Duration {
        self.progress_deadline.map_or(DEFAULT_PROGRESS_DEADLINE, |d| d.0)
    }
}

fn one() -> i64 {
    1
}

/// A selector written as `matchLabels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorSpec {
    /// Every label here must be present with this value.
    pub match_labels: MatchLabels,
}

/// A pod template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplate {
    /// Labels and annotations given to each pod.
    #[serde(default)]
    pub metadata: TemplateMeta,
    /// The pod spec.
    pub spec: PodSpec,
}

/// Metadata of a pod template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Ready pods of the current template.
    #[serde(default)]
    pub updated_ready_replicas: u64,
    /// The revision of the current template (its ReplicaSet's `skiff.dev/revision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// `Progressing` and `Available`, Kubernetes-style.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<DeploymentCondition>,
    /// When the rollout last made progress (RFC 3339), for the progress deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress: Option<String>,
    /// Where a canary rollout stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
}

/// One revision of a deployment's pod template: keeps `replicas` pods of it. Made and scaled by the
/// deployment controller; named `<deployment>-<template hash>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSet {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata; `skiff.dev/revision` and `skiff.dev/change-cause` annotations.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: ReplicaSetSpec,
    /// Observed state, written by the replica set controller.
    #[serde(default)]
    pub status: ReplicaSetStatus,
}

/// Desired state of a replica set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetSpec {
    /// How many pods to keep.
    #[serde(default)]
    pub replicas: i64,
    /// Which pods belong to it (the template's labels, template hash included).
    pub selector: LabelSelectorSpec,
    /// The pod to stamp out.
    pub template: PodTemplate,
}

/// Observed state of a replica set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetStatus {
    /// The `generation` the controller last acted on.
    #[serde(default)]
    pub observed_generation: u64,
    /// Pods that exist and are not terminated.
    #[serde(default)]
    pub replicas: u64,
    /// Pods that are ready (serving).
    #[serde(default)]
    pub ready_replicas: u64,
}

impl ReplicaSet {
    /// The `skiff.dev/revision` annotation as a number (0 when missing).
    pub fn revision(&self) -> u64 {
        self.metadata
            .annotations
            .get(REVISION_ANNOTATION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    }
}
