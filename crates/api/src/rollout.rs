//! How a [`Deployment`](crate::Deployment) moves from one template revision to the next:
//! [`DeploymentStrategy`] (RollingUpdate, Recreate, Canary) and the canary's observed state.
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::quantity::DurationValue;

/// A deployment condition (`Progressing`, `Available`): same shape as a node's.
pub type DeploymentCondition = crate::node::NodeCondition;

/// Condition type: the rollout is moving (or finished); false with `ProgressDeadlineExceeded`.
pub const PROGRESSING_CONDITION: &str = "Progressing";
/// Condition type: at least `replicas − maxUnavailable` pods are ready.
pub const AVAILABLE_CONDITION: &str = "Available";
/// Reason of a `Progressing` condition that went without progress past the deadline.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// Reason of a `Progressing` condition once every pod runs the current revision.
pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";

/// How a template change replaces the running pods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStrategy {
    /// `RollingUpdate` (default), `Recreate` or `Canary`.
    #[serde(rename = "type", default)]
    pub type_: StrategyType,
    /// Bounds of a rolling update (and of a canary's final promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
    /// The canary's steps and health analysis (required with `type: Canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
}

impl DeploymentStrategy {
    /// Whether this is the default strategy (left out when serializing).
    pub fn is_default(&self) -> bool {
        *self == DeploymentStrategy::default()
    }

    /// `(maxSurge, maxUnavailable)` in pods for `replicas` pods, as Kubernetes resolves them:
    /// surge rounds up, unavailable rounds down, and both 0 becomes unavailable 1.
    pub fn rolling_bounds(&self, replicas: u64) -> (u64, u64) {
        let r = self.rolling_update.clone().unwrap_or_default();
        let surge = r
            .max_surge
            .unwrap_or(IntOrPercent::Percent(25))
            .resolve(replicas, true);
        let unavailable = r
            .max_unavailable
            .unwrap_or(IntOrPercent::Percent(25))
            .resolve(replicas, false);
        if surge == 0 && unavailable == 0 {
            (0, 1)
        } else {
            (surge, unavailable)
        }
    }
}

/// The strategy types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum StrategyType {
    /// Replace pods a few at a time, never more than `replicas + maxSurge` pods or fewer than
    /// `replicas − maxUnavailable` ready.
    #[default]
    RollingUpdate,
    /// Stop every old pod, then start the new ones (a gap in service).
    Recreate,
    /// Run the new revision beside the old one and shift traffic to it step by step, reverting
    /// on errors.
    Canary,
}

impl fmt::Display for StrategyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StrategyType::RollingUpdate => "RollingUpdate",
            StrategyType::Recreate => "Recreate",
            StrategyType::Canary => "Canary",
        })
    }
}

/// Bounds of a rolling update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdate {
    /// Pods above `replicas` allowed during the update (count or `N%`, default 25%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrPercent>,
    /// Pods below `replicas` that may be unready during the update (count or `N%`, default 25%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
}

/// A pod count: a number, or a percentage of the replicas written `N%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    /// That many pods.
    Int(u64),
    /// That share of the replicas.
    Percent(u64),
}

impl IntOrPercent {
    /// The count for `replicas` pods, a percentage rounded up or down.
    pub fn resolve(self, replicas: u64, round_up: bool) -> u64 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) if round_up => (replicas * p).div_ceil(100),
            IntOrPercent::Percent(p) => replicas * p / 100,
        }
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for IntOrPercent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrPercent::Int(n) => s.serialize_u64(*n),
            IntOrPercent::Percent(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrPercent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        let bad = |s: &str| {
            serde::de::Error::custom(format!(
                "{s:?} is not a pod count: write a whole number (2) or a percentage (25%)"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(IntOrPercent::Int(n)),
            Raw::Text(t) => {
                let s = t.trim();
                match s.strip_suffix('%') {
                    Some(p) => p
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|p| *p <= 100)
                        .map(IntOrPercent::Percent)
                        .ok_or_else(|| bad(&t)),
                    None => s.parse().map(IntOrPercent::Int).map_err(|_| bad(&t)),
                }
            }
        }
    }
}

/// A canary rollout: steps run in order; the analysis runs throughout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStrategy {
    /// `{weight: N}` sends N% of the traffic to the new revision (scaling it to N% of the
    /// replicas, at least one pod) once its pods are ready; `{pause: {duration: 30s}}` waits and then
    /// moves on if the new revision is healthy; `{pause: {}}` waits for `skiff rollout resume`.
    /// After the last step the new revision is promoted to every replica.
    pub steps: Vec<CanaryStep>,
    /// When the new revision counts as failing (then the deployment reverts to the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysis>,
}

/// One canary step: exactly one of `weight` and `pause`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStep {
    /// Percentage of the traffic (0–100) for the new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Wait: for `duration`, or until resumed when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<CanaryPause>,
}

/// A canary pause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryPause {
    /// How long; none waits for `skiff rollout resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationValue>,
}

/// The canary's health rule: the new revision's pods answer requests with 5xx at most this often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryAnalysis {
    /// Highest acceptable share of 5xx answers, in percent (default 5).
    #[serde(default = "five")]
    pub max_error_percent: f64,
    /// Requests the new revision must have answered before its error rate counts (default 20).
    #[serde(default = "twenty")]
    pub min_requests: u64,
}

impl Default for CanaryAnalysis {
    fn default() -> Self {
        CanaryAnalysis {
            max_error_percent: five(),
            min_requests: twenty(),
        }
    }
}

fn five() -> f64 {
    5.0
}

fn twenty() -> u64 {
    20
}

/// Where a canary rollout stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CanaryPhase {
    /// Working through the steps.
    #[default]
    Progressing,
    /// At a pause step without a duration: waiting for `skiff rollout resume`.
    Paused,
    /// Past the last step: the new revision is scaled to every replica, then takes all traffic.
    Promoting,
    /// Done: the new revision is the stable one.
    Promoted,
    /// The new revision failed its analysis; the deployment went back to the stable revision.
    Reverted,
}

impl fmt::Display for CanaryPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CanaryPhase::Progressing => "Progressing",
            CanaryPhase::Paused => "Paused",
            CanaryPhase::Promoting => "Promoting",
            CanaryPhase::Promoted => "Promoted",
            CanaryPhase::Reverted => "Reverted",
        })
    }
}

/// Observed state of a canary rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStatus {
    /// Template hash of the new (canary) revision.
    pub canary_hash: String,
    /// Template hash of the stable revision (empty when there is none).
    #[serde(default)]
    pub stable_hash: String,
    /// Index of the current step (`steps.len()` once promoting).
    pub step: u32,
    /// Traffic share of the new revision now, in percent.
    pub weight: u32,
    /// Phase.
    pub phase: CanaryPhase,
    /// When the current step started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started: Option<String>,
    /// Requests the new revision's pods answered (as last measured).
    #[serde(default)]
    pub requests: u64,
    /// Of those, answers with a 5xx status.
    #[serde(default)]
    pub errors: u64,
    /// What happened last (a revert says why).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_percent_parses_and_resolves() {
        let v: IntOrPercent = serde_json::from_str("\"25%\"").unwrap();
        assert_eq!(v, IntOrPercent::Percent(25));
        assert_eq!(v.resolve(10, true), 3);
        assert_eq!(v.resolve(10, false), 2);
        let v: IntOrPercent = serde_json::from_str("2").unwrap();
        assert_eq!(v.resolve(10, true), 2);
        assert_eq!(
            serde_json::to_string(&IntOrPercent::Percent(50)).unwrap(),
            "\"50%\""
        );
        let e = serde_json::from_str::<IntOrPercent>("\"150%\"").unwrap_err();
        assert!(e.to_string().contains("percentage"), "{e}");
        assert!(serde_json::from_str::<IntOrPercent>("\"x\"").is_err());
    }

    #[test]
    fn rolling_bounds_follow_kubernetes_rounding() {
        let s = DeploymentStrategy::default();
        assert_eq!(s.rolling_bounds(4), (1, 1));
        assert_eq!(s.rolling_bounds(1), (1, 0));
        let s = DeploymentStrategy {
            rolling_update: Some(RollingUpdate {
                max_surge: Some(IntOrPercent::Int(0)),
                max_unavailable: Some(IntOrPercent::Percent(10)),
            }),
            ..Default::default()
        };
        assert_eq!(s.rolling_bounds(3), (0, 1), "both zero: one may be unavailable");
    }
}
