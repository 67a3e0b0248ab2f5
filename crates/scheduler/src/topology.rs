//! Constraints that look at the whole cluster, not one node: pod affinity and anti-affinity and
//! topology spread. A *domain* is the set of nodes sharing a value of a label (`topologyKey`);
//! pods are matched by labels within the scheduled pod's namespace.
use std::collections::BTreeMap;

use skiff_api::{Pod, WhenUnsatisfiable, selector_matches};

use crate::filter::{FilterKind, Rejection};
use crate::node_info::{NodeInfo, PodSummary};

/// The node's domain for `key`: the value of that label, if it has it.
pub(crate) fn domain<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a str> {
    node.node.metadata.labels.get(key).map(String::as_str)
}

fn namespace_of(p: &PodSummary) -> &str {
    p.name.split_once('/').map_or("default", |(ns, _)| ns)
}

/// Pods on `node` in namespace `ns` whose labels match `selector`.
fn matching(node: &NodeInfo, ns: &str, selector: &BTreeMap<String, String>) -> usize {
    node.pods
        .iter()
        .filter(|p| namespace_of(p) == ns && selector_matches(selector, &p.labels))
        .count()
}

/// Matching pods per domain of `key`, over the nodes that have the label.
fn per_domain<'a>(
    all: &[&'a NodeInfo],
    key: &str,
    ns: &str,
    selector: &BTreeMap<String, String>,
) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for n in all {
        if let Some(d) = domain(n, key) {
            *counts.entry(d).or_default() += matching(n, ns, selector);
        }
    }
    counts
}

fn selector_text(s: &BTreeMap<String, String>) -> String {
    s.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn reject(filter: FilterKind, reason: String) -> Result<(), Rejection> {
    Err(Rejection { filter, reason })
}

/// Checks the pod's cluster-wide constraints for placing it on `node`, given every candidate node
/// (`all`, including `node`).
///
/// # Errors
/// The first constraint the placement would break.
pub(crate) fn check(pod: &Pod, node: &NodeInfo, all: &[&NodeInfo]) -> Result<(), Rejection> {
    let ns = pod.metadata.namespace_or_default();
    if let Some(a) = &pod.spec.affinity {
        for t in &a.pod_anti_affinity {
            let Some(d) = domain(node, &t.topology_key) else {
                continue;
            };
            let hits = per_domain(all, &t.topology_key, ns, &t.label_selector)
                .get(d)
                .copied()
                .unwrap_or(0);
            if hits > 0 {
                return reject(
                    FilterKind::PodAntiAffinity,
                    format!(
                        "pod anti-affinity: {}={d} already runs {hits} pod(s) matching {} (spec.affinity.podAntiAffinity)",
                        t.topology_key,
                        selector_text(&t.label_selector)
                    ),
                );
            }
        }
        for t in &a.pod_affinity {
            let counts = per_domain(all, &t.topology_key, ns, &t.label_selector);
            // The first of a group that must be together may go anywhere: nothing to join yet.
            let nowhere = counts.values().all(|c| *c == 0);
            if nowhere && selector_matches(&t.label_selector, &pod.metadata.labels) {
                continue;
            }
            let here = domain(node, &t.topology_key).and_then(|d| counts.get(d)).copied();
            if here.unwrap_or(0) == 0 {
                return reject(
                    FilterKind::PodAffinity,
                    format!(
                        "pod affinity: no pod matching {} runs in this node's {} domain{} (spec.affinity.podAffinity)",
                        selector_text(&t.label_selector),
                        t.topology_key,
                        domain(node, &t.topology_key)
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_else(|| " (the node has no such label)".into())
                    ),
                );
            }
        }
    }
    for c in &pod.spec.topology_spread_constraints {
        if c.when_unsatisfiable != WhenUnsatisfiable::DoNotSchedule {
            continue;
        }
        let Some(d) = domain(node, &c.topology_key) else {
            return reject(
                FilterKind::TopologySpread,
                format!(
                    "topology spread: the node has no label {}, which spec.topologySpreadConstraints spreads over",
                    c.topology_key
                ),
            );
        };
        let counts = per_domain(all, &c.topology_key, ns, &c.label_selector);
        let min = counts.values().copied().min().unwrap_or(0);
        let after = counts.get(d).copied().unwrap_or(0) + 1;
        if after - min > c.max_skew as usize {
            return reject(
                FilterKind::TopologySpread,
                format!(
                    "topology spread: {}={d} would hold {after} pods matching {} against {min} in the emptiest domain (maxSkew {})",
                    c.topology_key,
                    selector_text(&c.label_selector),
                    c.max_skew
                ),
            );
        }
    }
    Ok(())
}

/// 0..=100: how evenly placing the pod on `node` keeps its `ScheduleAnyway` spread constraints
/// (100 = the node's domain is among the emptiest); 0 on every node when there are none.
pub(crate) fn spread_score(pod: &Pod, node: &NodeInfo, all: &[&NodeInfo]) -> i64 {
    let ns = pod.metadata.namespace_or_default();
    let soft: Vec<_> = pod
        .spec
        .topology_spread_constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == WhenUnsatisfiable::ScheduleAnyway)
        .collect();
    if soft.is_empty() {
        return 0;
    }
    let mut sum = 0i64;
    for c in &soft {
        let counts = per_domain(all, &c.topology_key, ns, &c.label_selector);
        let (Some(min), Some(max)) = (counts.values().min(), counts.values().max()) else {
            continue;
        };
        let here = domain(node, &c.topology_key).and_then(|d| counts.get(d)).copied();
        sum += match here {
            None => 0,
            Some(_) if max == min => 100,
            Some(h) => ((max - h) * 100 / (max - min)) as i64,
        };
    }
    sum / soft.len() as i64
}

/// 0..=100: the share of the pod's preferred node-affinity weight the node matches; 0 when the
/// pod states no preference (the same on every node, so it changes no decision).
pub(crate) fn preference_score(pod: &Pod, node: &NodeInfo) -> i64 {
    let Some(prefs) = pod
        .spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .map(|n| &n.preferred)
        .filter(|p| !p.is_empty())
    else {
        return 0;
    };
    let total: i64 = prefs.iter().map(|p| i64::from(p.weight.max(0))).sum();
    if total == 0 {
        return 0;
    }
    let labels = &node.node.metadata.labels;
    let matched: i64 = prefs
        .iter()
        .filter(|p| p.preference.matches(labels))
        .map(|p| i64::from(p.weight.max(0)))
        .sum();
    matched * 100 / total
}
