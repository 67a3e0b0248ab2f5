//! ReplicaSet → Pods: keeps `replicas` pods of the set's template, replaces failed ones after a
//! backoff, and scales down the least valuable pods first.
use skiff_api::{Kind, Object, ObjectMeta, OwnerReference, Pod, PodStatus, ReplicaSet, ReplicaSetStatus};
use skiff_state::Op;

use super::{
    FAILED_POD_BACKOFF, Ids, NODE_LOST, Snapshot, TAINT_EVICTION, delete_op, is_terminal, ns_of, serving_on,
};

/// Whether a failed pod's replacement backoff is over (at once when its node was lost).
pub(super) fn backoff_over(s: &Snapshot, p: &Pod) -> bool {
    if matches!(p.status.reason.as_deref(), Some(NODE_LOST | TAINT_EVICTION)) {
        return true;
    }
    let finished = p
        .status
        .finished_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    match (s.now, finished) {
        (Some(now), Some(t)) => now.duration_since(t).unwrap_or_default() >= FAILED_POD_BACKOFF,
        _ => true,
    }
}

/// The nodes that are not ready: a pod there serves nobody, whatever it last reported (unless its
/// policy keeps it there, see [`serving_on`]).
pub(super) fn serving_fn(s: &Snapshot) -> impl Fn(&Pod) -> bool + '_ {
    let down: std::collections::BTreeSet<&str> = s
        .nodes
        .iter()
        .filter(|n| !n.status.ready)
        .map(|n| n.metadata.name.as_str())
        .collect();
    move |p: &Pod| serving_on(p, !p.spec.node_name.as_deref().is_some_and(|n| down.contains(n)))
}

/// The pods whose controlling owner has this uid, in namespace `ns`.
pub(super) fn owned_by<'a>(s: &'a Snapshot, ns: &str, uid: &str) -> Vec<&'a Pod> {
    s.pods
        .iter()
        .filter(|p| ns_of(&p.metadata) == ns && p.metadata.controller().is_some_and(|o| o.uid == uid))
        .collect()
}

/// The `source.component` of the events the replica set controller records.
pub const REPLICA_SET_CONTROLLER: &str = "replicaset-controller";
/// Event reason: the replica set made a pod.
pub const SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
/// Event reason: the replica set deleted a pod.
pub const SUCCESSFUL_DELETE: &str = "SuccessfulDelete";

/// ReplicaSet → Pods. Returns one command's ops per replica set that needs a change, with a
/// `SuccessfulCreate` / `SuccessfulDelete` event on the replica set naming the pods.
pub fn replica_sets(s: &Snapshot, ids: &mut dyn Ids) -> Vec<Vec<Op>> {
    let serving = serving_fn(s);
    let mut out = Vec::new();
    for rs in &s.replica_sets {
        let Some(uid) = rs.metadata.uid.as_deref() else {
            continue;
        };
        let desired = usize::try_from(rs.spec.replicas.max(0)).unwrap_or(0);
        let owned = owned_by(s, ns_of(&rs.metadata), uid);
        let mut ops = Vec::new();
        // Failed pods are replaced once their backoff is over: deleted, and they stop counting.
        // Until then they hold their slot (unless the set is scaled below them).
        let mut waiting_failed = 0;
        for p in owned.iter().filter(|p| is_terminal(p)) {
            if backoff_over(s, p) || waiting_failed >= desired {
                ops.push(delete_op(Kind::Pod, &p.metadata));
            } else {
                waiting_failed += 1;
            }
        }
        let mut live: Vec<&Pod> = owned.iter().copied().filter(|p| !is_terminal(p)).collect();
        // Least valuable first: unscheduled, then not ready, then newest.
        live.sort_by_key(|p| {
            (
                p.spec.node_name.is_some(),
                serving(p),
                std::cmp::Reverse(p.metadata.resource_version),
            )
        });
        if live.len() + waiting_failed < desired {
            for _ in live.len() + waiting_failed..desired {
                ops.push(Op::Create {
                    object: Object::Pod(new_pod(rs, ids)),
                    uid: ids.uid(),
                });
            }
        } else if live.len() > desired {
            for p in &live[..live.len() - desired] {
                ops.push(delete_op(Kind::Pod, &p.metadata));
            }
        }
        if let Some(now) = s.now {
            let rec = super::Recorder {
                component: REPLICA_SET_CONTROLLER,
                now,
            };
            let mut created = Vec::new();
            let mut deleted = Vec::new();
            for op in &ops {
                match op {
                    Op::Create {
                        object: Object::Pod(p),
                        ..
                    } => created.push(p.metadata.name.clone()),
                    Op::Delete { name, .. } => deleted.push(name.clone()),
                    _ => {}
                }
            }
            for (reason, verb, names) in [
                (SUCCESSFUL_CREATE, "created", created),
                (SUCCESSFUL_DELETE, "deleted", deleted),
            ] {
                if !names.is_empty() {
                    ops.push(rec.record(
                        s,
                        ids,
                        Kind::ReplicaSet,
                        &rs.metadata,
                        skiff_api::EventSeverity::Normal,
                        reason,
                        format!(
                            "{verb} pod{} {}",
                            if names.len() == 1 { "" } else { "s" },
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        let status = ReplicaSetStatus {
            observed_generation: rs.metadata.generation.unwrap_or(0),
            replicas: live.len() as u64,
            ready_replicas: live.iter().filter(|p| serving(p)).count() as u64,
        };
        if status != rs.status {
            let mut next = rs.clone();
            next.status = status;
            next.metadata.resource_version = None;
            ops.push(Op::UpdateStatus {
                object: Object::ReplicaSet(next),
            });
        }
        if !ops.is_empty() {
            out.push(ops);
        }
    }
    out
}

fn new_pod(rs: &ReplicaSet, ids: &mut dyn Ids) -> Pod {
    Pod {
        api_version: Default::default(),
        metadata: ObjectMeta {
            name: format!("{}-{}", rs.metadata.name, ids.suffix()),
            namespace: Some(ns_of(&rs.metadata).to_owned()),
            labels: rs.spec.template.metadata.labels.clone(),
            annotations: rs.spec.template.metadata.annotations.clone(),
            owner_references: vec![OwnerReference {
                kind: Kind::ReplicaSet.as_str().into(),
                name: rs.metadata.name.clone(),
                uid: rs.metadata.uid.clone().unwrap_or_default(),
                controller: true,
            }],
            ..Default::default()
        },
        spec: rs.spec.template.spec.clone(),
        status: PodStatus::default(),
    }
}
