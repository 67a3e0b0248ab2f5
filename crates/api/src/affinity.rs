//! Placement constraints beyond `nodeSelector`, with Kubernetes' names and meanings: node
//! affinity (required and preferred), pod affinity and anti-affinity, and topology spread.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a pod wants to run, relative to node labels and to other pods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Affinity {
    /// Constraints and preferences on node labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
    /// The pod must run in a topology domain that already holds a matching pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_affinity: Vec<PodAffinityTerm>,
    /// The pod must not run in a topology domain that holds a matching pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_anti_affinity: Vec<PodAffinityTerm>,
}

/// Node-label constraints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAffinity {
    /// The node must match at least one of these terms (none = any node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<NodeSelectorTerm>,
    /// Nodes matching these terms score their weight more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred: Vec<PreferredTerm>,
}

/// Every expression must hold (an empty term matches every node).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorTerm {
    /// Label requirements.
    #[serde(default)]
    pub match_expressions: Vec<LabelRequirement>,
}

/// One label requirement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelRequirement {
    /// The label key.
    pub key: String,
    /// How the label is compared.
    pub operator: LabelOperator,
    /// Values for `In` / `NotIn` (required there, forbidden otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// How a [`LabelRequirement`] compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum LabelOperator {
    /// The label is one of the values.
    #[default]
    In,
    /// The label is absent or none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl LabelRequirement {
    /// Whether `labels` satisfy the requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let have = labels.get(&self.key);
        match self.operator {
            LabelOperator::In => have.is_some_and(|v| self.values.contains(v)),
            LabelOperator::NotIn => have.is_none_or(|v| !self.values.contains(v)),
            LabelOperator::Exists => have.is_some(),
            LabelOperator::DoesNotExist => have.is_none(),
        }
    }
}

impl std::fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.operator {
            LabelOperator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            LabelOperator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            LabelOperator::Exists => write!(f, "{}", self.key),
            LabelOperator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

impl NodeSelectorTerm {
    /// Whether every expression holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_expressions.iter().all(|e| e.matches(labels))
    }
}

impl std::fmt::Display for NodeSelectorTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.match_expressions.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(", "))
    }
}

/// A weighted preference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferredTerm {
    /// 1–100.
    pub weight: i32,
    /// The term a node should match.
    pub preference: NodeSelectorTerm,
}

/// Pods (in the same namespace) matching `labelSelector`, counted per topology domain: the nodes
/// sharing a value of the label `topologyKey` (e.g. `skiff.dev/hostname` for one node, `zone`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodAffinityTerm {
    /// Pods with all these labels match.
    pub label_selector: BTreeMap<String, String>,
    /// The node label that defines a domain.
    pub topology_key: String,
}

/// Keep matching pods evenly spread over the domains of `topologyKey`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySpreadConstraint {
    /// Most matching pods a domain may hold beyond the emptiest one (≥ 1).
    pub max_skew: u32,
    /// The node label that defines a domain; nodes without it are not candidates.
    pub topology_key: String,
    /// What to do when no node keeps the skew.
    #[serde(default)]
    pub when_unsatisfiable: WhenUnsatisfiable,
    /// Pods with all these labels are counted (usually the pod's own app label).
    pub label_selector: BTreeMap<String, String>,
}

/// What a [`TopologySpreadConstraint`] does when it cannot be kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum WhenUnsatisfiable {
    /// The pod stays Pending (a filter).
    #[default]
    DoNotSchedule,
    /// The pod is placed anyway, preferring the emptiest domains (a score).
    ScheduleAnyway,
}

/// Whether `labels` contain every pair of `selector` (an empty selector matches nothing: a
/// constraint that selects every pod is almost always a mistake, and validation refuses it).
pub fn selector_matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operators() {
        let l = labels(&[("zone", "a"), ("gpu", "yes")]);
        let req = |key: &str, operator, values: &[&str]| LabelRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|s| s.to_string()).collect(),
        };
        assert!(req("zone", LabelOperator::In, &["a", "b"]).matches(&l));
        assert!(!req("zone", LabelOperator::In, &["b"]).matches(&l));
        assert!(req("zone", LabelOperator::NotIn, &["b"]).matches(&l));
        assert!(req("rack", LabelOperator::NotIn, &["b"]).matches(&l));
        assert!(req("gpu", LabelOperator::Exists, &[]).matches(&l));
        assert!(req("rack", LabelOperator::DoesNotExist, &[]).matches(&l));
        assert_eq!(
            req("zone", LabelOperator::In, &["a", "b"]).to_string(),
            "zone in (a,b)"
        );
        assert!(selector_matches(
            &labels(&[("app", "x")]),
            &labels(&[("app", "x"), ("v", "1")])
        ));
        assert!(!selector_matches(&labels(&[]), &labels(&[("app", "x")])));
    }
}
