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

impl Decision {
    /// The decision as a pod's `status.scheduling` (result `Scheduled` or `Unschedulable`).
    pub fn to_status(&self) -> SchedulingStatus {
        SchedulingStatus {
            result: if self.node.is_some() {
                "Scheduled".into()
            } else {
                "Unschedulable".into()
            },
            message: self.message.clone(),
            rejected: self.rejected.clone(),
            scores: self.scores.clone(),
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
    candidates.sort_by(|a, b| a.name().cmp(b.name()));

    // Stage 1 — filter: every node either passes every filter or is rejected by the first one it
    // fails, with a reason. Rejections are counted per filter for the summary.
    let mut rejected = BTreeMap::new();
    let mut counts: BTreeMap<FilterKind, usize> = BTreeMap::new();
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let all = candidates.clone();
    for node in candidates {
        match filter::check(pod, node).and_then(|()| crate::topology::check(pod, node, &all)) {
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
    let mut message = format!("{}/{} nodes are available", feasible.len(), nodes.len());
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

/// Schedules `pods` one after the other, counting each placement (memory, pod count, spread)
/// before deciding the next, as if the previous pods were already bound. Returns each pod's name
/// with its decision, in input order. Pod `i` uses a seed derived from `seed` and `i`.
pub fn schedule_batch(pods: &[Pod], nodes: &[NodeInfo], seed: u64) -> Vec<(String, Decision)> {
    let mut nodes = nodes.to_vec();
    let mut seeds = SplitMix64::new(seed);
    pods.iter()
        .map(|pod| {
            let decision = schedule(pod, &nodes, seeds.next_u64());
            if let Some(chosen) = &decision.node
                && let Some(info) = nodes.iter_mut().find(|n| n.name() == chosen)
            {
                info.pods.push(PodSummary::of(pod));
            }
            (pod.metadata.name.clone(), decision)
        })
        .collect()
}
