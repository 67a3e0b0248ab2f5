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
    /// The node matches more of the pod's preferred node-affinity weight.
    NodePreference,
    /// The node's domain holds fewer pods of the pod's `ScheduleAnyway` spread constraints.
    TopologySpread,
}

impl ScorerKind {
    /// Every scorer, in the order they are summed.
    pub const ALL: [ScorerKind; 5] = [
        ScorerKind::Spread,
        ScorerKind::LeastLoaded,
        ScorerKind::ArtifactCached,
        ScorerKind::NodePreference,
        ScorerKind::TopologySpread,
    ];

    /// How much this scorer counts in the total. Spreading replicas matters most for availability.
    pub fn weight(self) -> i64 {
        match self {
            ScorerKind::Spread => 2,
            ScorerKind::LeastLoaded => 1,
            ScorerKind::ArtifactCached => 1,
            ScorerKind::NodePreference => 1,
            ScorerKind::TopologySpread => 1,
        }
    }
}

/// The largest total a node can get: 100 times the sum of the weights.
pub const MAX_TOTAL: i64 = 100 * (2 + 1 + 1 + 1 + 1);

/// What the scorers need to know about the pod and the feasible nodes, computed once per pod so
/// scoring N nodes costs O(N) rather than O(N²).
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pod: &'a Pod,
    feasible: Vec<&'a NodeInfo>,
    owner: Option<&'a str>,
    most_siblings: usize,
    request: u64,
    digests: Vec<&'a str>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(pod: &'a Pod, feasible: &[&'a NodeInfo]) -> Self {
        let owner = pod.metadata.controller().map(|o| o.uid.as_str());
        let most_siblings = owner
            .and_then(|o| feasible.iter().map(|n| n.pods_of_owner(o)).max())
            .unwrap_or(0);
        Context {
            pod,
            feasible: feasible.to_vec(),
            owner,
            most_siblings,
            request: pod.spec.memory_request(),
            digests: pod
                .spec
                .components
                .iter()
                .filter_map(|c| c.wasm.as_ref().and_then(|w| w.digest.as_deref()))
                .collect(),
        }
    }

    pub(crate) fn score(&self, kind: ScorerKind, node: &NodeInfo) -> i64 {
        match kind {
            ScorerKind::Spread => self.spread(node),
            ScorerKind::LeastLoaded => self.least_loaded(node),
            ScorerKind::ArtifactCached => self.artifact_cached(node),
            ScorerKind::NodePreference => crate::topology::preference_score(self.pod, node),
            ScorerKind::TopologySpread => crate::topology::spread_score(self.pod, node, &self.feasible),
        }
    }

    pub(crate) fn total(&self, node: &NodeInfo) -> i64 {
        ScorerKind::ALL
            .into_iter()
            .map(|k| k.weight() * self.score(k, node))
            .sum()
    }

    /// `100 * (most - here) / most`, where `here` counts the pod's siblings on this node and
    /// `most` the largest such count over feasible nodes. A pod with no controller, or whose
    /// siblings are nowhere yet, scores 100 everywhere.
    fn spread(&self, node: &NodeInfo) -> i64 {
        match self.owner {
            Some(owner) if self.most_siblings > 0 => {
                let here = node.pods_of_owner(owner);
                ratio(
                    self.most_siblings.saturating_sub(here) as u128,
                    self.most_siblings as u128,
                )
            }
            _ => 100,
        }
    }

    /// Percentage of the node's memory still free once the pod is placed.
    fn least_loaded(&self, node: &NodeInfo) -> i64 {
        let capacity = node.memory_capacity().0;
        if capacity == 0 {
            return 0;
        }
        let after = node.memory_free().saturating_sub(self.request);
        ratio(u128::from(after), u128::from(capacity))
    }

    /// Percentage of the pod's artifact digests the node has cached (0 for a pod with no
    /// digests, the same on every node).
    fn artifact_cached(&self, node: &NodeInfo) -> i64 {
        if self.digests.is_empty() {
            return 0;
        }
        let cached = &node.node.status.cached_artifacts;
        let hits = self
            .digests
            .iter()
            .filter(|d| cached.iter().any(|c| c == *d))
            .count();
        ratio(hits as u128, self.digests.len() as u128)
    }
}

/// Scores `node` for `pod` with one scorer, 0..=100. `feasible` holds every node that passed the
/// filters (including `node`); spread is relative to them.
pub fn score(kind: ScorerKind, pod: &Pod, node: &NodeInfo, feasible: &[&NodeInfo]) -> i64 {
    Context::new(pod, feasible).score(kind, node)
}

/// The weighted sum of every scorer, as [`schedule`](crate::schedule) computes it.
pub fn total(pod: &Pod, node: &NodeInfo, feasible: &[&NodeInfo]) -> i64 {
    Context::new(pod, feasible).total(node)
}

/// `100 * part / whole`, rounded down, for `part <= whole`, `whole > 0`.
fn ratio(part: u128, whole: u128) -> i64 {
    i64::try_from(part.min(whole) * 100 / whole).unwrap_or(100)
}
