//! A small simulator for controller tests: applies ops to a [`Snapshot`] the way the state
//! machine would, and builds ReplicaSets and their pods.
#![allow(dead_code, reason = "each test file uses part of it")]

use serde_json::json;
use skiff_api::{Deployment, Kind, Object, Pod, PodPhase, REVISION_ANNOTATION, ReplicaSet};
use skiff_controllers::{self as reconcile, Ids, Snapshot, TEMPLATE_HASH_LABEL};
use skiff_state::Op;

/// Ids counted from 1: `uid-1`, `s2`, …
pub(crate) struct Counted(pub u32);

impl Ids for Counted {
    fn uid(&mut self) -> String {
        self.0 += 1;
        format!("uid-{}", self.0)
    }
    fn suffix(&mut self) -> String {
        self.0 += 1;
        format!("s{}", self.0)
    }
}

/// The ReplicaSet of `d` for template hash `hash` (uid `rs-<hash>`).
pub(crate) fn rs_for(d: &Deployment, hash: &str, replicas: i64, revision: u64) -> ReplicaSet {
    let mut template = d.spec.template.clone();
    template
        .metadata
        .labels
        .insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut selector = d.spec.selector.match_labels.clone();
    selector.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1",
        "metadata":{"name":format!("{}-{hash}", d.metadata.name),"namespace":"default","uid":format!("rs-{hash}"),
            "generation":1,
            "annotations":{REVISION_ANNOTATION: revision.to_string()},
            "ownerReferences":[{"kind":"Deployment","name":d.metadata.name,"uid":d.metadata.uid,"controller":true}]},
        "spec":{"replicas":replicas,"selector":{"matchLabels":selector},"template":template}}))
    .unwrap()
}

/// A pod of `rs`, running and ready when `ready`, bound to `node`.
pub(crate) fn pod_in(rs: &ReplicaSet, name: &str, ready: bool, node: Option<&str>) -> Pod {
    let mut p: Pod = serde_json::from_value(json!({"apiVersion":"skiff.dev/v1",
        "metadata":{"name":name,"namespace":"default","uid":format!("u-{name}"),
            "labels": rs.spec.template.metadata.labels,
            "ownerReferences":[{"kind":"ReplicaSet","name":rs.metadata.name,"uid":rs.metadata.uid,"controller":true}]},
        "spec": rs.spec.template.spec.clone()}))
    .unwrap();
    p.spec.node_name = node.map(str::to_owned);
    if ready {
        p.status.phase = PodPhase::Running;
        p.status.ready = true;
    }
    p
}

fn replace_in<T>(
    items: &mut [T],
    name: &str,
    meta: impl Fn(&T) -> &skiff_api::ObjectMeta,
    f: impl FnOnce(&mut T),
) {
    // Missing: the state machine would refuse the write (404) and the next pass retries.
    if let Some(item) = items.iter_mut().find(|o| meta(o).name == name) {
        f(item);
    }
}

/// Applies ops to the snapshot the way the state machine would (what these tests need).
pub(crate) fn apply(s: &mut Snapshot, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Create { object, uid } | Op::Apply { object, uid } => {
                let mut o = object.clone();
                let m = o.meta_mut();
                if m.uid.is_none() {
                    m.uid = Some(uid.clone());
                }
                m.generation = Some(1);
                match o {
                    Object::Pod(p) => s.pods.push(p),
                    Object::ReplicaSet(r) => s.replica_sets.push(r),
                    Object::Job(j) => s.jobs.push(j),
                    Object::Event(e) => {
                        s.events.retain(|o| o.metadata.name != e.metadata.name);
                        s.events.push(e);
                    }
                    Object::Endpoints(e) => {
                        s.endpoints.retain(|o| o.metadata.name != e.metadata.name);
                        s.endpoints.push(e);
                    }
                    other => panic!("unexpected create in this test: {other:?}"),
                }
            }
            Op::Delete { kind, name, .. } => match kind {
                Kind::Pod => s.pods.retain(|p| &p.metadata.name != name),
                Kind::ReplicaSet => s.replica_sets.retain(|p| &p.metadata.name != name),
                Kind::Job => s.jobs.retain(|p| &p.metadata.name != name),
                other => panic!("unexpected delete of a {other}"),
            },
            Op::Publish { .. }
            | Op::Ack { .. }
            | Op::KvSet { .. }
            | Op::KvDelete { .. }
            | Op::KvIncrement { .. } => panic!("unexpected topic or key-value op in this test: {op:?}"),
            Op::Replace { object } => match object {
                Object::Node(n) => replace_in(
                    &mut s.nodes,
                    &n.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        o.metadata = n.metadata.clone();
                        o.spec = n.spec.clone();
                    },
                ),
                Object::Pod(p) => replace_in(
                    &mut s.pods,
                    &p.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        o.spec = p.spec.clone();
                    },
                ),
                Object::ReplicaSet(r) => replace_in(
                    &mut s.replica_sets,
                    &r.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        if o.spec != r.spec {
                            o.metadata.generation = Some(o.metadata.generation.unwrap_or(0) + 1);
                        }
                        o.metadata.annotations = r.metadata.annotations.clone();
                        o.spec = r.spec.clone();
                    },
                ),
                Object::Deployment(d) => replace_in(
                    &mut s.deployments,
                    &d.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        if o.spec != d.spec {
                            o.metadata.generation = Some(o.metadata.generation.unwrap_or(0) + 1);
                        }
                        o.metadata.annotations = d.metadata.annotations.clone();
                        o.spec = d.spec.clone();
                    },
                ),
                other => panic!("unexpected replace in this test: {other:?}"),
            },
            Op::UpdateStatus { object } => match object {
                Object::Node(n) => replace_in(
                    &mut s.nodes,
                    &n.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        o.status = n.status.clone();
                    },
                ),
                Object::Pod(p) => replace_in(
                    &mut s.pods,
                    &p.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        o.status = p.status.clone();
                    },
                ),
                Object::ReplicaSet(r) => replace_in(
                    &mut s.replica_sets,
                    &r.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        o.status = r.status.clone();
                    },
                ),
                Object::Deployment(d) => replace_in(
                    &mut s.deployments,
                    &d.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        o.status = d.status.clone();
                    },
                ),
                Object::DaemonSet(d) => replace_in(
                    &mut s.daemon_sets,
                    &d.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        o.status = d.status.clone();
                    },
                ),
                Object::Job(d) => replace_in(
                    &mut s.jobs,
                    &d.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        o.status = d.status.clone();
                    },
                ),
                Object::Function(f) => replace_in(
                    &mut s.functions,
                    &f.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        o.status = f.status.clone();
                    },
                ),
                Object::CronJob(d) => replace_in(
                    &mut s.cron_jobs,
                    &d.metadata.name,
                    |o| &o.metadata,
                    |o| {
                        o.status = d.status.clone();
                    },
                ),
                other => panic!("unexpected status update in this test: {other:?}"),
            },
        }
    }
}

/// One pass of the workload controllers (deployments, then replica sets), as the loop runs them
/// on one snapshot; returns the ops applied.
pub(crate) fn workload_pass(s: &mut Snapshot, ids: &mut dyn Ids) -> Vec<Op> {
    let mut ops = reconcile::deployments(s, ids).concat();
    ops.extend(reconcile::replica_sets(s, ids).concat());
    apply(s, &ops);
    ops
}

/// Runs workload passes until they change nothing (at most 20).
pub(crate) fn settle(s: &mut Snapshot, ids: &mut dyn Ids) {
    for _ in 0..20 {
        let ops = workload_pass(s, ids);
        if ops.iter().all(|o| {
            matches!(
                o,
                Op::Apply {
                    object: Object::Event(_),
                    ..
                }
            )
        }) {
            return;
        }
    }
    panic!("the workload controllers did not settle in 20 passes");
}

/// Marks every bound pod ready and running.
pub(crate) fn all_ready(s: &mut Snapshot) {
    for p in &mut s.pods {
        if p.spec.node_name.is_some() {
            p.status.phase = PodPhase::Running;
            p.status.ready = true;
        }
    }
}
