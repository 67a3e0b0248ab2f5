//! Scorers: how good is each feasible node for this pod? Each scorer returns 0..=100 (higher is
//! better) for one node, given all feasible nodes so it can normalize against them; the pipeline
//! multiplies by the scorer's weight and sums.
use skiff_api::Pod;

use crate::node_info::NodeInfo;

/// A scoring rule and its weight in the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScorerKind {
    /// Fewer pods of the same controller (Deployment) on the node is better: replicas spread out,
    /// so losing one node loses few of them.
    Spread,
    /// More memory left free after placing the pod is better.
    LeastLoaded,
    /// A node that already compiled and cached the pod's artifacts starts it faster.
    ArtifactCached,
}

impl ScorerKind {
    /// Every scorer, in the order they are summed.
    pub const ALL: [ScorerKind; 3] = [
        ScorerKind::Spread,
        ScorerKind::LeastLoaded,
        ScorerKind::ArtifactCached,
    ];

    /// How much this scorer counts in the total. Spreading replicas matters most for availability.
    pub fn weight(self) -> i64 {
        match self {
            ScorerKind::Spread => 2,
            ScorerKind::LeastLoaded => 1,
            ScorerKind::ArtifactCached => 1,
        }
    }
}

/// The largest total a node can get: 100 times the sum of the weights.
pub const MAX_TOTAL: i64 = 100 * (2 + 1 + 1);

/// Scores `node` for `pod` with one scorer, 0..=100. `feasible` holds every node that passed the
/// filters (including `node`).
pub fn score(kind: ScorerKind, pod: &Pod, node: &NodeInfo, feasible: &[&NodeInfo]) -> i64 {
    match kind {
        ScorerKind::Spread => spread(pod, node, feasible),
        ScorerKind::LeastLoaded => least_loaded(pod, node),
        ScorerKind::ArtifactCached => artifact_cached(pod, node),
    }
}

/// The weighted sum of every scorer.
pub fn total(pod: &Pod, node: &NodeInfo, feasible: &[&NodeInfo]) -> i64 {
    ScorerKind::ALL
        .into_iter()
        .map(|k| k.weight() * score(k, pod, node, feasible))
        .sum()
}

/// `100 * (most - here) / most`, where `here` counts the pod's siblings on this node and `most` the
/// largest such count over feasible nodes. A pod with no controller scores 100 everywhere.
fn spread(pod: &Pod, node: &NodeInfo, feasible: &[&NodeInfo]) -> i64 {
    let Some(owner) = pod.metadata.controller().map(|o| o.uid.as_str()) else {
        return 100;
    };
    let most = feasible.iter().map(|n| n.pods_of_owner(owner)).max().unwrap_or(0);
    if most == 0 {
        return 100;
    }
    let here = node.pods_of_owner(owner);
    ratio(most.saturating_sub(here) as u128, most as u128)
}

/// Percentage of the node's memory still free once the pod is placed.
fn least_loaded(pod: &Pod, node: &NodeInfo) -> i64 {
    let capacity = node.memory_capacity().0;
    if capacity == 0 {
        return 0;
    }
    let after = node.memory_free().saturating_sub(pod.spec.memory_request());
    ratio(u128::from(after), u128::from(capacity))
}

/// Percentage of the pod's artifact digests the node has cached (0 for a pod with no digests, the
/// same on every node).
fn artifact_cached(pod: &Pod, node: &NodeInfo) -> i64 {
    let digests: Vec<&str> = pod
        .spec
        .components
        .iter()
        .filter_map(|c| c.wasm.as_ref().and_then(|w| w.digest.as_deref()))
        .collect();
    if digests.is_empty() {
        return 0;
    }
    let cached = &node.node.status.cached_artifacts;
    let hits = digests.iter().filter(|d| cached.iter().any(|c| c == *d)).count();
    ratio(hits as u128, digests.len() as u128)
}

/// `100 * part / whole`, rounded down, for `part <= whole`, `whole > 0`.
fn ratio(part: u128, whole: u128) -> i64 {
    i64::try_from(part.min(whole) * 100 / whole).unwrap_or(100)
}
