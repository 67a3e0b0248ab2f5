//! Controllers as pure functions: a [`Snapshot`] of the state in, the [`Op`]s that move it toward
//! the desired state out. The loop in `controllers.rs` reads, calls these, and proposes; tests call
//! them directly and assert the exact ops.
//!
//! | controller | reads | writes |
//! |---|---|---|
//! | [`deployments`] | Deployments, Pods | Pods (create, delete), Deployment status |
//! | [`schedule`] | Pods without a node, Nodes | Pod `spec.nodeName`, Pod scheduling status, Events |
//! | [`endpoints`] | Services, Pods, Nodes | Endpoints |
//! | [`garbage`] | owner references | deletes orphans |
//! | [`expire_events`] | Events | deletes events older than [`EVENT_TTL`] |
//! | [`node_health`] | Node heartbeats | Node `ready`, `Ready` condition, Events |
//! | [`evict_pods`] | Node heartbeats and taints, Pods | Pods failed with [`NODE_LOST`] / [`TAINT_EVICTION`] |
mod events;
mod nodes;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use skiff_api::{
    Deployment, DeploymentStatus, DisconnectDelay, EndpointAddress, Endpoints, Event, EventSeverity, Kind,
    Node, Object, ObjectMeta, OwnerReference, Pod, PodPhase, PodStatus, Service, map_matches,
};
use skiff_state::Op;

pub use events::{
    EVENT_TTL, FAILED_SCHEDULING, NODE_NOT_READY, NODE_READY, POD_EVICTED, Recorder, SCHEDULED, event_name,
    expire_events,
};
use nodes::rfc3339;
pub use nodes::{
    HEARTBEAT_FRESH, HEARTBEAT_MISSED, HeartbeatClock, NODE_CONTROLLER, NODE_LOST, TAINT_EVICTION,
    evict_pods, eviction_reason, node_health,
};

/// How long a failed pod of a deployment stays (and holds its slot) before it is replaced, so a pod
/// that cannot start does not spin. Pods failed with [`NODE_LOST`] are replaced at once.
pub const FAILED_POD_BACKOFF: Duration = Duration::from_secs(10);

/// Label carrying the hash of the template a pod was made from.
pub const TEMPLATE_HASH_LABEL: &str = "skiff.dev/template-hash";

/// What the controllers see: every object of the kinds they manage, and the time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Current time (controllers may read clocks; the state machine may not).
    pub now: Option<SystemTime>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// Deployments.
    pub deployments: Vec<Deployment>,
    /// Services.
    pub services: Vec<Service>,
    /// Endpoints.
    pub endpoints: Vec<Endpoints>,
    /// Events (to count repeats and expire old ones).
    pub events: Vec<Event>,
    /// When the leader saw each node's heartbeat change (empty: ages come from the timestamps).
    pub heartbeats: HeartbeatClock,
}

impl Snapshot {
    /// Sorts objects into the snapshot by kind.
    pub fn from_objects(now: SystemTime, objects: impl IntoIterator<Item = Object>) -> Self {
        let mut s = Snapshot {
            now: Some(now),
            ..Default::default()
        };
        for o in objects {
            match o {
                Object::Node(n) => s.nodes.push(n),
                Object::Pod(p) => s.pods.push(p),
                Object::Deployment(d) => s.deployments.push(d),
                Object::Service(v) => s.services.push(v),
                Object::Endpoints(e) => s.endpoints.push(e),
                Object::Event(e) => s.events.push(e),
                Object::Namespace(_)
                | Object::HttpRoute(_)
                | Object::JoinToken(_)
                | Object::ConfigMap(_)
                | Object::Secret(_) => {}
            }
        }
        s
    }
}

/// Where controllers get fresh uids and name suffixes (random in production, counted in tests).
pub trait Ids {
    /// A new uid.
    fn uid(&mut self) -> String;
    /// A new 5-character name suffix.
    fn suffix(&mut self) -> String;
}

/// Random ids.
#[derive(Debug, Default)]
pub struct RandomIds;

impl Ids for RandomIds {
    fn uid(&mut self) -> String {
        crate::ids::uid()
    }
    fn suffix(&mut self) -> String {
        crate::ids::name_suffix()
    }
}

/// Whether the pod counts as serving: it reported ready and its node is ready, or its node is not
/// ready but the pod is kept there (`disconnect.replaceAfter: never`) and assumed still running.
fn serving_on(p: &Pod, node_ready: bool) -> bool {
    p.status.ready
        && p.status.phase == PodPhase::Running
        && (node_ready || p.spec.disconnect_policy().replace_after == Some(DisconnectDelay::Never))
}

fn is_terminal(p: &Pod) -> bool {
    matches!(p.status.phase, PodPhase::Failed | PodPhase::Succeeded)
}

fn ns_of(m: &ObjectMeta) -> &str {
    m.namespace_or_default()
}

/// A short stable hash of a deployment's pod template.
pub fn template_hash(d: &Deployment) -> String {
    let json = serde_json::to_vec(&d.spec.template).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..5])
}

fn delete_op(kind: Kind, m: &ObjectMeta) -> Op {
    Op::Delete {
        kind,
        namespace: kind.namespaced().then(|| ns_of(m).to_owned()),
        name: m.name.clone(),
        uid: m.uid.clone(),
        resource_version: None,
    }
}

/// Deployment → Pods: keeps `replicas` pods of the current template, replaces failed ones, and
/// retires pods of older templates only as pods of the new one become ready (no gap in service).
/// Returns one command's ops per deployment that needs a change.
pub fn deployments(s: &Snapshot, ids: &mut dyn Ids) -> Vec<Vec<Op>> {
    // A pod on a node that is not ready serves nobody, whatever it last reported (unless its
    // policy keeps it there: then it is assumed to run on).
    let down: BTreeSet<&str> = s
        .nodes
        .iter()
        .filter(|n| !n.status.ready)
        .map(|n| n.metadata.name.as_str())
        .collect();
    let serving = |p: &Pod| serving_on(p, !p.spec.node_name.as_deref().is_some_and(|n| down.contains(n)));
    let mut out = Vec::new();
    for d in &s.deployments {
        let Some(uid) = d.metadata.uid.as_deref() else {
            continue;
        };
        let ns = ns_of(&d.metadata);
        let hash = template_hash(d);
        let desired = usize::try_from(d.spec.replicas.max(0)).unwrap_or(0);
        let owned: Vec<&Pod> = s
            .pods
            .iter()
            .filter(|p| ns_of(&p.metadata) == ns && p.metadata.controller().is_some_and(|o| o.uid == uid))
            .collect();
        let mut ops = Vec::new();
        // Failed pods are replaced once their backoff is over (at once when their node was lost):
        // deleted, and they stop counting. Until then they hold their slot.
        let backoff_over = |p: &Pod| {
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
        };
        let mut waiting_failed = 0;
        for p in owned.iter().filter(|p| is_terminal(p)) {
            if backoff_over(p) {
                ops.push(delete_op(Kind::Pod, &p.metadata));
            } else {
                waiting_failed += 1;
            }
        }
        let live: Vec<&Pod> = owned.iter().copied().filter(|p| !is_terminal(p)).collect();
        let (mut current, mut old): (Vec<&Pod>, Vec<&Pod>) = live
            .iter()
            .partition(|p| p.metadata.labels.get(TEMPLATE_HASH_LABEL) == Some(&hash));
        // Least valuable first: unscheduled, then not ready, then newest.
        let rank = |p: &&Pod| {
            (
                p.spec.node_name.is_some(),
                serving(p),
                std::cmp::Reverse(p.metadata.resource_version),
            )
        };
        current.sort_by_key(rank);
        old.sort_by_key(rank);
        if current.len() + waiting_failed < desired {
            for _ in current.len() + waiting_failed..desired {
                ops.push(Op::Create {
                    object: Object::Pod(new_pod(d, &hash, ids)),
                    uid: ids.uid(),
                });
            }
        } else if current.len() > desired {
            for p in &current[..current.len() - desired] {
                ops.push(delete_op(Kind::Pod, &p.metadata));
            }
        }
        // Old-template pods go as new ones become ready.
        let ready_current = current.iter().filter(|p| serving(p)).count().min(desired);
        let keep_old = desired.saturating_sub(ready_current);
        if old.len() > keep_old {
            for p in &old[..old.len() - keep_old] {
                ops.push(delete_op(Kind::Pod, &p.metadata));
            }
        }
        let status = DeploymentStatus {
            observed_generation: d.metadata.generation.unwrap_or(0),
            replicas: live.len() as u64,
            updated_replicas: current.len() as u64,
            ready_replicas: live.iter().filter(|p| serving(p)).count() as u64,
        };
        if status != d.status {
            let mut next = d.clone();
            next.status = status;
            next.metadata.resource_version = None;
            ops.push(Op::UpdateStatus {
                object: Object::Deployment(next),
            });
        }
        if !ops.is_empty() {
            out.push(ops);
        }
    }
    out
}

fn new_pod(d: &Deployment, hash: &str, ids: &mut dyn Ids) -> Pod {
    let mut labels = d.spec.template.metadata.labels.clone();
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.to_owned());
    Pod {
        api_version: Default::default(),
        metadata: ObjectMeta {
            name: format!("{}-{}", d.metadata.name, ids.suffix()),
            namespace: Some(ns_of(&d.metadata).to_owned()),
            labels,
            annotations: d.spec.template.metadata.annotations.clone(),
            owner_references: vec![OwnerReference {
                kind: "Deployment".into(),
                name: d.metadata.name.clone(),
                uid: d.metadata.uid.clone().unwrap_or_default(),
                controller: true,
            }],
            ..Default::default()
        },
        spec: d.spec.template.spec.clone(),
        status: PodStatus::default(),
    }
}

/// Service → Endpoints: the pods the selector matches that are bound to a node, with the node's
/// data-plane address; `ready` only when the pod is ready and its node is too, or, on a node that
/// is not ready, when the pod's `disconnect.replaceAfter` is `never` (the gateway keeps routing to it
/// and retries a bodyless request on another endpoint when the connection fails).
pub fn endpoints(s: &Snapshot) -> Vec<Op> {
    let nodes: BTreeMap<&str, &Node> = s.nodes.iter().map(|n| (n.metadata.name.as_str(), n)).collect();
    let existing: BTreeMap<(&str, &str), &Endpoints> = s
        .endpoints
        .iter()
        .map(|e| ((ns_of(&e.metadata), e.metadata.name.as_str()), e))
        .collect();
    let mut ops = Vec::new();
    for svc in &s.services {
        let ns = ns_of(&svc.metadata);
        let mut addrs: Vec<EndpointAddress> = s
            .pods
            .iter()
            .filter(|p| {
                ns_of(&p.metadata) == ns
                    && !is_terminal(p)
                    && map_matches(&svc.spec.selector, &p.metadata.labels)
            })
            .filter_map(|p| {
                let node_name = p.spec.node_name.as_deref()?;
                let node = nodes.get(node_name)?;
                Some(EndpointAddress {
                    pod: p.metadata.name.clone(),
                    pod_uid: p.metadata.uid.clone().unwrap_or_default(),
                    node: node_name.to_owned(),
                    address: node.status.address.clone(),
                    ready: serving_on(p, node.status.ready),
                })
            })
            .collect();
        addrs.sort();
        let current = existing.get(&(ns, svc.metadata.name.as_str()));
        if current.is_some_and(|e| e.endpoints == addrs) {
            continue;
        }
        let mut meta = ObjectMeta::named(svc.metadata.name.clone(), Some(ns));
        meta.owner_references = vec![OwnerReference {
            kind: "Service".into(),
            name: svc.metadata.name.clone(),
            uid: svc.metadata.uid.clone().unwrap_or_default(),
            controller: true,
        }];
        let object = Object::Endpoints(Endpoints {
            api_version: Default::default(),
            metadata: meta,
            endpoints: addrs,
        });
        ops.push(Op::Apply {
            object,
            uid: crate::ids::uid(),
        });
    }
    ops
}

/// Deletes objects whose controlling owner no longer exists (matched by uid, so a re-created owner
/// with the same name does not adopt them).
pub fn garbage(s: &Snapshot) -> Vec<Op> {
    let owners: BTreeSet<&str> = s
        .deployments
        .iter()
        .filter_map(|d| d.metadata.uid.as_deref())
        .chain(s.services.iter().filter_map(|v| v.metadata.uid.as_deref()))
        .collect();
    let orphan = |m: &ObjectMeta| m.controller().is_some_and(|o| !owners.contains(o.uid.as_str()));
    let mut ops: Vec<Op> = s
        .pods
        .iter()
        .filter(|p| orphan(&p.metadata))
        .map(|p| delete_op(Kind::Pod, &p.metadata))
        .collect();
    ops.extend(
        s.endpoints
            .iter()
            .filter(|e| orphan(&e.metadata))
            .map(|e| delete_op(Kind::Endpoints, &e.metadata)),
    );
    ops
}

/// The `source.component` of the events the scheduler records.
pub const SCHEDULER: &str = "scheduler";

/// Binds unscheduled pods to nodes through the scheduler pipeline, all in one command. A pod no
/// node can take gets `Unschedulable` with the reason for every node. Each decision is recorded as
/// a `Scheduled` or `FailedScheduling` event in the same command (a failure only when its reasons
/// change, as the status).
pub fn schedule(s: &Snapshot, seed: u64) -> Vec<Op> {
    let pending: Vec<Pod> = s
        .pods
        .iter()
        .filter(|p| p.spec.node_name.is_none() && !is_terminal(p))
        .cloned()
        .collect();
    if pending.is_empty() {
        return Vec::new();
    }
    // Terminal pods hold nothing (from_cluster leaves them out), in one pass over the pods.
    let infos = skiff_scheduler::NodeInfo::from_cluster(&s.nodes, &s.pods);
    let decisions = skiff_scheduler::schedule_batch_owned(&pending, infos, seed);
    let mut ops = Vec::new();
    let recorder = s.now.map(|now| Recorder {
        component: SCHEDULER,
        now,
    });
    for (pod, (_, d)) in pending.iter().zip(decisions) {
        let scheduling = d.to_status();
        match d.node {
            Some(node) => {
                if let Some(r) = &recorder {
                    ops.push(r.record(
                        s,
                        Kind::Pod,
                        &pod.metadata,
                        EventSeverity::Normal,
                        SCHEDULED,
                        format!(
                            "assigned {}/{} to {node}",
                            ns_of(&pod.metadata),
                            pod.metadata.name
                        ),
                    ));
                }
                let mut bound = pod.clone();
                bound.spec.node_name = Some(node);
                ops.push(Op::Replace {
                    object: Object::Pod(bound.clone()),
                });
                bound.status.scheduling = Some(scheduling);
                bound.status.reason = None;
                bound.status.message = None;
                bound.metadata.resource_version = None;
                ops.push(Op::UpdateStatus {
                    object: Object::Pod(bound),
                });
            }
            None => {
                if pod.status.scheduling.as_ref() == Some(&scheduling) {
                    continue;
                }
                if let Some(r) = &recorder {
                    ops.push(r.record(
                        s,
                        Kind::Pod,
                        &pod.metadata,
                        EventSeverity::Warning,
                        FAILED_SCHEDULING,
                        d.message.clone(),
                    ));
                }
                let mut next = pod.clone();
                next.status.reason = Some("Unschedulable".into());
                next.status.message = Some(d.message);
                next.status.scheduling = Some(scheduling);
                next.metadata.resource_version = None;
                ops.push(Op::UpdateStatus {
                    object: Object::Pod(next),
                });
            }
        }
    }
    ops
}
