//! The pipeline: filter → score → select, assembled in one place.
use std::collections::BTreeMap;

use skiff_api::{Pod, SchedulingStatus};

use crate::filter::{self, FilterKind};
use crate::node_info::{NodeInfo, PodSummary};
use crate::rng::SplitMix64;
use crate::score;

/// The outcome of scheduling one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The chosen node, or `None` when no node can take the pod.
    pub node: Option<String>,
    /// Node name → why it cannot take the pod.
    pub rejected: BTreeMap<String, String>,
    /// Node name → total score, for every node that passed the filters.
    pub scores: BTreeMap<String, i64>,
    /// One-line summary in the Kubernetes style, e.g.
    /// `0/3 nodes are available: 2 insufficient memory, 1 node selector mismatch`.
    pub message: String,
}

/// Most per-node entries kept in a pod's `status.scheduling` maps: a pod in a 10,000-node cluster
/// must not carry 10,000 reasons (the summary message counts them all).
pub const STATUS_ENTRIES: usize = 20;

impl Decision {
    /// The decision as a pod's `status.scheduling` (result `Scheduled` or `Unschedulable`): the
    /// message, the highest [`STATUS_ENTRIES`] scores and the first [`STATUS_ENTRIES`] rejections
    /// by node name.
    pub fn to_status(&self) -> SchedulingStatus {
        let mut best: Vec<(&String, &i64)> = self.scores.iter().collect();
        best.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        SchedulingStatus {
            result: if self.node.is_some() {
                "Scheduled".into()
            } else {
                "Unschedulable".into()
            },
            message: self.message.clone(),
            rejected: self
                .rejected
                .iter()
                .take(STATUS_ENTRIES)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            scores: best
                .into_iter()
                .take(STATUS_ENTRIES)
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
}

/// Chooses a node for `pod`.
///
/// Deterministic: the same pod, nodes (in any order) and `seed` give the same decision. The seed
/// only breaks ties between nodes with equal scores; pass something that varies per scheduling
/// attempt and travels with the decision (e.g. the revision it was computed at).
pub fn schedule(pod: &Pod, nodes: &[NodeInfo], seed: u64) -> Decision {
    // Stage 0 — order: sort candidates by name, so the input order never changes the answer.
    let mut candidates: Vec<&NodeInfo> = nodes.iter().collect();
    if !candidates.is_sorted_by(|a, b| a.name() <= b.name()) {
        candidates.sort_by(|a, b| a.name().cmp(b.name()));
    }
    let cluster_wide = has_cluster_constraints(pod);

    // Stage 1 — filter: every node either passes every filter or is rejected by the first one it
    // fails, with a reason. Rejections are counted per filter for the summary.
    let mut rejected = BTreeMap::new();
    let mut counts: BTreeMap<FilterKind, usize> = BTreeMap::new();
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    // Large clusters: like kube-scheduler's percentageOfNodesToScore, stop once enough feasible
    // nodes are found, starting at a seeded offset so every node gets its turn.
    let enough = feasible_enough(candidates.len());
    let start = if enough < candidates.len() {
        (seed % candidates.len() as u64) as usize
    } else {
        0
    };
    let mut evaluated = 0usize;
    for i in 0..candidates.len() {
        if feasible.len() >= enough {
            break;
        }
        let node = candidates[(start + i) % candidates.len()];
        evaluated += 1;
        let verdict = filter::check(pod, node).and_then(|()| {
            if cluster_wide {
                crate::topology::check(pod, node, &candidates)
            } else {
                Ok(())
            }
        });
        match verdict {
            Ok(()) => feasible.push(node),
            Err(r) => {
                *counts.entry(r.filter).or_default() += 1;
                rejected.insert(node.name().to_owned(), r.reason);
            }
        }
    }

    // Stage 2 — score: each scorer rates each feasible node 0..=100 (normalized against the other
    // feasible nodes where it compares them); the total is the weighted sum.
    let ctx = score::Context::new(pod, &feasible);
    let scored: Vec<(&NodeInfo, i64)> = feasible.iter().map(|n| (*n, ctx.total(n))).collect();
    let scores: BTreeMap<String, i64> = scored.iter().map(|(n, s)| (n.name().to_owned(), *s)).collect();

    // Stage 3 — select: shuffle with the seed, then take the first node with the highest total, so
    // ties go to a seeded-random node instead of always the alphabetically first one.
    let mut order = scored;
    SplitMix64::new(seed).shuffle(&mut order);
    let best = order.iter().map(|(_, s)| *s).max();
    let chosen = best.and_then(|b| {
        order
            .iter()
            .find(|(_, s)| *s == b)
            .map(|(n, s)| (n.name().to_owned(), *s))
    });

    // Stage 4 — explain: `N/M nodes are available: <counts>` and, when placed, where and why.
    let mut message = if evaluated < nodes.len() {
        format!(
            "{} feasible of {evaluated} nodes evaluated ({} in the cluster; enough found)",
            feasible.len(),
            nodes.len()
        )
    } else {
        format!("{}/{} nodes are available", feasible.len(), nodes.len())
    };
    let mut by_count: Vec<(FilterKind, usize)> = counts.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let parts: Vec<String> = by_count
        .iter()
        .map(|(k, n)| format!("{n} {}", k.summary()))
        .collect();
    if !parts.is_empty() {
        message.push_str(": ");
        message.push_str(&parts.join(", "));
    } else if nodes.is_empty() {
        message.push_str(": no nodes are registered");
    }
    if let Some((name, s)) = &chosen {
        message.push_str(&format!("; chose {name} (score {s} of {})", score::MAX_TOTAL));
    }

    Decision {
        node: chosen.map(|(n, _)| n),
        rejected,
        scores,
        message,
    }
}

/// Whether the pod has constraints that look at other nodes' pods.
fn has_cluster_constraints(pod: &Pod) -> bool {
    !pod.spec.topology_spread_constraints.is_empty()
        || pod
            .spec
            .affinity
            .as_ref()
            .is_some_and(|a| !a.pod_affinity.is_empty() || !a.pod_anti_affinity.is_empty())
}

/// How many feasible nodes are enough to choose from among `n`: all of them up to 100 nodes, then
/// kube-scheduler's adaptive share (50% minus 1% per 125 nodes, at least 5%), at least 100.
pub fn feasible_enough(n: usize) -> usize {
    if n <= 100 {
        return n;
    }
    let pct = 50usize.saturating_sub(n / 125).max(5);
    (n * pct / 100).max(100)
}

/// Schedules `pods` one after the other, counting each placement (memory, pod count, spread)
/// before deciding the next, as if the previous pods were already bound. Returns each pod's name
/// with its decision, in input order. Pod `i` uses a seed derived from `seed` and `i`.
pub fn schedule_batch(pods: &[Pod], nodes: &[NodeInfo], seed: u64) -> Vec<(String, Decision)> {
    schedule_batch_owned(pods, nodes.to_vec(), seed)
}

/// [`schedule_batch`] on node infos the caller no longer needs (no copy of the cluster).
pub fn schedule_batch_owned(pods: &[Pod], mut nodes: Vec<NodeInfo>, seed: u64) -> Vec<(String, Decision)> {
    // Sorted once here, so each `schedule` finds them in order.
    nodes.sort_by(|a, b| a.name().cmp(b.name()));
    let mut seeds = SplitMix64::new(seed);
    pods.iter()
        .map(|pod| {
            let decision = schedule(pod, &nodes, seeds.next_u64());
            if let Some(chosen) = &decision.node
                && let Some(info) = nodes.iter_mut().find(|n| n.name() == chosen)
            {
                info.add_pod(PodSummary::of(pod));
            }
            (pod.metadata.name.clone(), decision)
        })
        .collect()
}
