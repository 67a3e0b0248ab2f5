//! DaemonSet → Pods: one pod of the template on every node that can take it (nodeSelector,
//! required node affinity, tolerated taints, runtime), bound directly to that node. Nodes that
//! join get a pod, nodes that leave or stop matching lose theirs; a template change replaces the
//! pods node by node, at most `maxUnavailable` nodes without a serving pod (or only as pods are
//! deleted, with `OnDelete`). A node that is not ready keeps the pod it has but gets no new one
//! until it is back.
use std::collections::BTreeMap;

use skiff_api::{
    DaemonSet, DaemonSetStatus, DaemonSetStrategyType, EventSeverity, IntOrPercent, Kind, Node, Object,
    ObjectMeta, OwnerReference, Pod, PodStatus,
};
use skiff_scheduler::{FilterKind, NodeInfo};
use skiff_state::Op;

use super::deployments::child_name;
use super::replicasets::{backoff_over, owned_by, serving_fn};
use super::{Ids, Recorder, Snapshot, TEMPLATE_HASH_LABEL, delete_op, is_terminal, ns_of};

/// The `source.component` of the events the daemon set controller records.
pub const DAEMON_SET_CONTROLLER: &str = "daemonset-controller";

/// The filters that decide whether a node should run a daemon pod (capacity is not one of them:
/// a daemon pod belongs on its node whatever else runs there).
const NODE_FILTERS: [FilterKind; 4] = [
    FilterKind::Taint,
    FilterKind::NodeSelector,
    FilterKind::NodeAffinity,
    FilterKind::Runtime,
];

fn pod_for(ds: &DaemonSet, hash: &str, node: &str, ids: &mut dyn Ids) -> Pod {
    let mut labels = ds.spec.template.metadata.labels.clone();
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.to_owned());
    let mut spec = ds.spec.template.spec.clone();
    spec.node_name = Some(node.to_owned());
    Pod {
        api_version: Default::default(),
        metadata: ObjectMeta {
            name: child_name(&ds.metadata.name, &ids.suffix()),
            namespace: Some(ns_of(&ds.metadata).to_owned()),
            labels,
            annotations: ds.spec.template.metadata.annotations.clone(),
            owner_references: vec![OwnerReference {
                kind: Kind::DaemonSet.as_str().into(),
                name: ds.metadata.name.clone(),
                uid: ds.metadata.uid.clone().unwrap_or_default(),
                controller: true,
            }],
            ..Default::default()
        },
        spec,
        status: PodStatus::default(),
    }
}

/// Whether `node` should run a pod of `template_pod`.
fn eligible(template_pod: &Pod, node: &Node) -> bool {
    let info = NodeInfo::new(node.clone());
    NODE_FILTERS
        .iter()
        .all(|f| skiff_scheduler::run_filter(*f, template_pod, &info).is_ok())
}

/// DaemonSet → Pods. One command's ops per daemon set that needs a change.
pub fn daemon_sets(s: &Snapshot, ids: &mut dyn Ids) -> Vec<Vec<Op>> {
    let serving = serving_fn(s);
    let mut out = Vec::new();
    for ds in &s.daemon_sets {
        let Some(uid) = ds.metadata.uid.as_deref() else {
            continue;
        };
        let hash = super::hash_of(&ds.spec.template);
        let template_pod = Pod {
            spec: ds.spec.template.spec.clone(),
            ..Default::default()
        };
        let nodes: Vec<&Node> = s.nodes.iter().filter(|n| eligible(&template_pod, n)).collect();
        let mut ops = Vec::new();
        let owned = owned_by(s, ns_of(&ds.metadata), uid);
        // Failed pods go after their backoff and are made again.
        let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
        for p in &owned {
            if is_terminal(p) {
                if backoff_over(s, p) {
                    ops.push(delete_op(Kind::Pod, &p.metadata));
                } else if let Some(n) = p.spec.node_name.as_deref() {
                    by_node.entry(n).or_default().push(p);
                }
                continue;
            }
            match p.spec.node_name.as_deref() {
                Some(n) if nodes.iter().any(|x| x.metadata.name == n) => {
                    by_node.entry(n).or_default().push(p)
                }
                // Its node left, or no longer matches.
                _ => ops.push(delete_op(Kind::Pod, &p.metadata)),
            }
        }
        let current = |p: &Pod| p.metadata.labels.get(TEMPLATE_HASH_LABEL) == Some(&hash);
        let mut created = Vec::new();
        for n in &nodes {
            let name = n.metadata.name.as_str();
            let pods = by_node.entry(name).or_default();
            // A node that is not ready gets its pod when it is back: one made now would be
            // evicted (NodeLost) by the node controller, deleted and made again every pass.
            if pods.is_empty() && !n.status.ready {
                continue;
            }
            if pods.is_empty() {
                let pod = pod_for(ds, &hash, name, ids);
                created.push(format!("{} on {name}", pod.metadata.name));
                ops.push(Op::Create {
                    object: Object::Pod(pod),
                    uid: ids.uid(),
                });
                continue;
            }
            // Extra pods on one node: keep the best (current template, serving).
            pods.sort_by_key(|p| std::cmp::Reverse((current(p), serving(p), !is_terminal(p))));
            for extra in &pods[1..] {
                ops.push(delete_op(Kind::Pod, &extra.metadata));
            }
        }
        // Rolling update: old-template pods go while few enough nodes lack a serving pod.
        let desired = nodes.len() as u64;
        let unavailable_now = nodes
            .iter()
            .filter(|n| {
                by_node
                    .get(n.metadata.name.as_str())
                    .and_then(|v| v.first())
                    .is_none_or(|p| !serving(p))
            })
            .count() as u64;
        if ds.spec.update_strategy.type_ == DaemonSetStrategyType::RollingUpdate {
            let max_unavailable = ds
                .spec
                .update_strategy
                .rolling_update
                .as_ref()
                .and_then(|r| r.max_unavailable)
                .unwrap_or(IntOrPercent::Int(1))
                .resolve(desired, false)
                .max(1);
            let mut budget = max_unavailable.saturating_sub(unavailable_now);
            let mut old: Vec<&Pod> = nodes
                .iter()
                .filter_map(|n| by_node.get(n.metadata.name.as_str())?.first().copied())
                .filter(|p| !current(p))
                .collect();
            // Pods that do not serve anyway first: replacing them costs no availability.
            old.sort_by_key(|p| serving(p));
            for p in old {
                if !serving(p) {
                    ops.push(delete_op(Kind::Pod, &p.metadata));
                } else if budget > 0 {
                    budget -= 1;
                    ops.push(delete_op(Kind::Pod, &p.metadata));
                }
            }
        }
        if let (Some(now), false) = (s.now, created.is_empty()) {
            let rec = Recorder {
                component: DAEMON_SET_CONTROLLER,
                now,
            };
            ops.push(rec.record(
                s,
                ids,
                Kind::DaemonSet,
                &ds.metadata,
                EventSeverity::Normal,
                super::SUCCESSFUL_CREATE,
                format!(
                    "created pod{} {}",
                    if created.len() == 1 { "" } else { "s" },
                    created.join(", ")
                ),
            ));
        }
        let first = |n: &&Node| {
            by_node
                .get(n.metadata.name.as_str())
                .and_then(|v| v.first().copied())
        };
        let status = DaemonSetStatus {
            desired_number_scheduled: desired,
            current_number_scheduled: nodes.iter().filter(|n| first(n).is_some()).count() as u64,
            number_ready: nodes.iter().filter(|n| first(n).is_some_and(&serving)).count() as u64,
            updated_number_scheduled: nodes.iter().filter(|n| first(n).is_some_and(current)).count() as u64,
            observed_generation: ds.metadata.generation.unwrap_or(0),
        };
        if status != ds.status {
            let mut next = ds.clone();
            next.status = status;
            next.metadata.resource_version = None;
            ops.push(Op::UpdateStatus {
                object: Object::DaemonSet(next),
            });
        }
        if !ops.is_empty() {
            out.push(ops);
        }
    }
    out
}
