//! # skiff-controllers: the controllers as pure functions
//!
//! A [`Snapshot`] of the state in, the [`Op`]s that move it toward the desired state out. Nothing
//! here does I/O or reads a clock, and no controller draws a random number: the time comes in the
//! snapshot and every new uid or name suffix comes from the [`Ids`] seam ([`RandomIds`] in
//! production, counted in tests), so a test calls a controller and asserts the exact ops. The control plane
//! (`skiff-control`) runs them: on the Raft leader, a level-triggered loop reads a snapshot, calls
//! each controller and proposes what it returns, one command per object.
//!
//! | controller | reads | writes |
//! |---|---|---|
//! | [`deployments`] | Deployments, ReplicaSets, Pods, pod traffic | ReplicaSets (one per template revision, sized by the strategy), Deployment status (incl. canary), Events |
//! | [`replica_sets`] | ReplicaSets, Pods | Pods (create, delete), ReplicaSet status |
//! | [`daemon_sets`] | DaemonSets, Nodes, Pods | Pods bound to each matching node, rolling update, status |
//! | [`jobs`] | Jobs, Pods | Pods until `completions` succeed, failure back-off, Complete/Failed conditions |
//! | [`cron_jobs`] | CronJobs, Jobs | Jobs at scheduled times (time zone, concurrency, deadline, history) |
//! | [`functions`] | Functions, Pods, Nodes, measured load and topic backlog | Pods (scaled between minScale and maxScale), `fn.NAME` Endpoints, Function status |
//! | [`schedule`] | Pods without a node, Nodes | Pod `spec.nodeName`, Pod scheduling status, Events |
//! | [`endpoints`] | Services, Pods, Nodes | Endpoints |
//! | [`garbage`] | owner references | deletes orphans |
//! | [`expire_events`] | Events | deletes events older than [`EVENT_TTL`] |
//! | [`node_health`] | Node heartbeats | Node `ready`, `Ready` condition, Events |
//! | [`evict_pods`] | Node heartbeats and taints, Pods | Pods failed with [`NODE_LOST`] / [`TAINT_EVICTION`] |
mod canary;
mod cronjobs;
mod daemonsets;
mod deployments;
mod events;
mod functions;
mod ids;
mod jobs;
mod nodes;
mod pod_events;
mod replicasets;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use skiff_api::{
    Deployment, DisconnectDelay, EndpointAddress, Endpoints, Event, EventSeverity, Kind, Node, Object,
    ObjectMeta, OwnerReference, Pod, PodPhase, ReplicaSet, Service, map_matches,
};
use skiff_state::Op;

pub use canary::{
    CANARY_PAUSED, CANARY_PROMOTED, CANARY_REVERTED, CANARY_STARTED, CANARY_STEP, splits_traffic,
};
pub use cronjobs::{CRON_JOB_CONTROLLER, MAX_MISSED, SCHEDULED_AT_ANNOTATION, cron_jobs};
pub use daemonsets::{DAEMON_SET_CONTROLLER, daemon_sets};
pub use deployments::{DEPLOYMENT_CONTROLLER, SCALING_REPLICA_SET, deployments};
pub use events::{
    EVENT_TTL, FAILED_SCHEDULING, NODE_NOT_READY, NODE_READY, POD_EVICTED, Recorder, SCHEDULED, event_name,
    expire_events,
};
pub use functions::{
    CRON_TICK_TYPE, FUNCTION_CONTROLLER, FUNCTION_SPEC_HASH_LABEL, FunctionLoad, cron_ticks,
    desired_replicas, functions, spec_hash,
};
pub use ids::{Ids, RandomIds, random_name_suffix, random_uid};
pub use jobs::{
    BACKOFF_LIMIT_EXCEEDED, DEADLINE_EXCEEDED, JOB_CONTROLLER, JOB_NAME_LABEL, MAX_JOB_BACKOFF, jobs,
};
use nodes::rfc3339;
pub use nodes::{
    HEARTBEAT_FRESH, HEARTBEAT_MISSED, HeartbeatClock, NODE_CONTROLLER, NODE_LOST, TAINT_EVICTION,
    evict_pods, eviction_reason, node_health,
};
pub use pod_events::{
    AGENT, BACK_OFF, COMPILING, COMPLETED, FAILED, FUEL_THROTTLED, OUTBOUND_DENIED, RESTARTED, STARTED,
    UNHEALTHY, pod_status_events,
};
pub use replicasets::{REPLICA_SET_CONTROLLER, SUCCESSFUL_CREATE, SUCCESSFUL_DELETE, replica_sets};

/// How long a failed pod of a deployment stays (and holds its slot) before it is replaced, so a pod
/// that cannot start does not spin. Pods failed with [`NODE_LOST`] are replaced at once.
pub const FAILED_POD_BACKOFF: Duration = Duration::from_secs(10);

pub use skiff_api::{PodTraffic, TEMPLATE_HASH_LABEL};

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
    /// ReplicaSets.
    pub replica_sets: Vec<ReplicaSet>,
    /// DaemonSets.
    pub daemon_sets: Vec<skiff_api::DaemonSet>,
    /// Jobs.
    pub jobs: Vec<skiff_api::Job>,
    /// CronJobs.
    pub cron_jobs: Vec<skiff_api::CronJob>,
    /// Functions.
    pub functions: Vec<skiff_api::Function>,
    /// Services.
    pub services: Vec<Service>,
    /// Endpoints.
    pub endpoints: Vec<Endpoints>,
    /// Events (to count repeats and expire old ones).
    pub events: Vec<Event>,
    /// When the leader saw each node's heartbeat change (empty: ages come from the timestamps).
    pub heartbeats: HeartbeatClock,
    /// Fingerprints of the data of the ConfigMaps and Secrets deployments with
    /// `rolloutOnConfigChange` read, by [`config_key`] (filled in by the controller loop; Secret
    /// fingerprints are keyed with the cluster's secrets key, so they reveal nothing).
    pub config_hashes: BTreeMap<String, String>,
    /// Requests answered by pods of canary revisions, by pod uid, as their agents count them
    /// (filled in by the controller loop; empty in most tests).
    pub pod_traffic: BTreeMap<String, PodTraffic>,
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
                Object::ReplicaSet(r) => s.replica_sets.push(r),
                Object::DaemonSet(d) => s.daemon_sets.push(d),
                Object::Job(j) => s.jobs.push(j),
                Object::CronJob(c) => s.cron_jobs.push(c),
                Object::Function(f) => s.functions.push(f),
                Object::Service(v) => s.services.push(v),
                Object::Endpoints(e) => s.endpoints.push(e),
                Object::Event(e) => s.events.push(e),
                Object::Namespace(_)
                | Object::HttpRoute(_)
                | Object::JoinToken(_)
                | Object::ApiToken(_)
                | Object::Role(_)
                | Object::Revocation(_)
                | Object::ResourceQuota(_)
                | Object::ConfigMap(_)
                | Object::Secret(_) => {}
            }
        }
        s
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

/// A short stable hash of a deployment's pod template (as written; see [`effective_template`]).
pub fn template_hash(d: &Deployment) -> String {
    hash_of(&d.spec.template)
}

/// A short stable hash of a pod template.
pub fn hash_of(t: &skiff_api::PodTemplate) -> String {
    let json = serde_json::to_vec(t).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..5])
}

/// The key of a ConfigMap or Secret in [`Snapshot::config_hashes`].
pub fn config_key(namespace: &str, kind: Kind, name: &str) -> String {
    format!("{namespace}/{kind}/{name}")
}

/// The template a deployment's pods are made from: its own, plus, with `rolloutOnConfigChange`,
/// a `skiff.dev/config-hash` annotation fingerprinting the ConfigMaps and Secrets it reads, so a
/// change of one of them is a new revision.
pub fn effective_template(d: &Deployment, s: &Snapshot) -> skiff_api::PodTemplate {
    let mut t = d.spec.template.clone();
    if !d.spec.rollout_on_config_change {
        return t;
    }
    let ns = ns_of(&d.metadata);
    let spec = &d.spec.template.spec;
    let mut h = Sha256::new();
    for (kind, names) in [
        (Kind::ConfigMap, spec.config_map_names()),
        (Kind::Secret, spec.secret_names()),
    ] {
        for name in names {
            let key = config_key(ns, kind, name);
            let v = s.config_hashes.get(&key).map_or("missing", String::as_str);
            h.update(format!("{key}={v};").as_bytes());
        }
    }
    t.metadata.annotations.insert(
        skiff_api::CONFIG_HASH_ANNOTATION.into(),
        hex::encode(&h.finalize()[..8]),
    );
    t
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

/// Service → Endpoints: the pods the selector matches that are bound to a node, with the node's
/// data-plane address; `ready` only when the pod is ready and its node is too, or, on a node that
/// is not ready, when the pod's `disconnect.replaceAfter` is `never` (the gateway keeps routing to it
/// and retries a bodyless request on another endpoint when the connection fails).
pub fn endpoints(s: &Snapshot, ids: &mut dyn Ids) -> Vec<Op> {
    let nodes: BTreeMap<&str, &Node> = s.nodes.iter().map(|n| (n.metadata.name.as_str(), n)).collect();
    let existing: BTreeMap<(&str, &str), &Endpoints> = s
        .endpoints
        .iter()
        .map(|e| ((ns_of(&e.metadata), e.metadata.name.as_str()), e))
        .collect();
    let groups = canary_groups(s);
    let mut ops = Vec::new();
    for svc in &s.services {
        let ns = ns_of(&svc.metadata);
        let mut addrs: Vec<EndpointAddress> = s
            .pods
            .iter()
            .filter(|p| {
                ns_of(&p.metadata) == ns
                    && !is_terminal(p)
                    && !jobs::runs_command(p)
                    && map_matches(&svc.spec.selector, &p.metadata.labels)
            })
            .filter_map(|p| endpoint_of(p, &nodes))
            .collect();
        weigh(&mut addrs, &groups);
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
            uid: ids.uid(),
        });
    }
    ops
}

/// A pod bound to a known node as an endpoint: its node's data-plane address, ready when it
/// serves (see [`serving_on`]).
fn endpoint_of(p: &Pod, nodes: &BTreeMap<&str, &Node>) -> Option<EndpointAddress> {
    let node_name = p.spec.node_name.as_deref()?;
    let node = nodes.get(node_name)?;
    Some(EndpointAddress {
        pod: p.metadata.name.clone(),
        pod_uid: p.metadata.uid.clone().unwrap_or_default(),
        node: node_name.to_owned(),
        address: node.status.address.clone(),
        ready: serving_on(p, node.status.ready),
        weight: None,
    })
}

/// A pod's part in a canary rollout: its deployment's uid, whether it runs the canary revision,
/// the canary's traffic share and phase.
type CanaryGroup<'a> = (&'a str, bool, u32, skiff_api::CanaryPhase);

/// Pod uid → its canary group, for the pods of deployments with a canary status.
fn canary_groups(s: &Snapshot) -> BTreeMap<&str, CanaryGroup<'_>> {
    let mut rs_group: BTreeMap<&str, CanaryGroup> = BTreeMap::new();
    for d in &s.deployments {
        let (Some(c), Some(uid)) = (&d.status.canary, d.metadata.uid.as_deref()) else {
            continue;
        };
        for r in &s.replica_sets {
            if let (Some(rs_uid), true) = (
                r.metadata.uid.as_deref(),
                r.metadata.controller().is_some_and(|o| o.uid == uid),
            ) {
                let hash = r.spec.template.metadata.labels.get(TEMPLATE_HASH_LABEL);
                let is_canary = hash == Some(&c.canary_hash);
                rs_group.insert(rs_uid, (uid, is_canary, c.weight, c.phase));
            }
        }
    }
    s.pods
        .iter()
        .filter_map(|p| {
            let g = rs_group.get(p.metadata.controller()?.uid.as_str())?;
            Some((p.metadata.uid.as_deref()?, *g))
        })
        .collect()
}

/// Gives the endpoints of canary rollouts their traffic shares: the canary revision's ready pods
/// share its weight, the stable revision's the rest; after a revert the canary's pods get none.
fn weigh(addrs: &mut [EndpointAddress], groups: &BTreeMap<&str, CanaryGroup>) {
    let mut counts: BTreeMap<(&str, bool), u32> = BTreeMap::new();
    for a in addrs.iter().filter(|a| a.ready) {
        if let Some((d, is_canary, _, _)) = groups.get(a.pod_uid.as_str()) {
            *counts.entry((d, *is_canary)).or_default() += 1;
        }
    }
    for a in addrs.iter_mut() {
        let Some((d, is_canary, weight, phase)) = groups.get(a.pod_uid.as_str()) else {
            continue;
        };
        a.weight = if splits_traffic(*phase) {
            let share = if *is_canary {
                *weight
            } else {
                100 - (*weight).min(100)
            };
            let n = counts.get(&(d, *is_canary)).copied().unwrap_or(1).max(1);
            Some(share * 1000 / n)
        } else if *phase == skiff_api::CanaryPhase::Reverted && *is_canary {
            Some(0)
        } else {
            None
        };
    }
}

/// Deletes objects whose controlling owner no longer exists (matched by uid, so a re-created owner
/// with the same name does not adopt them).
pub fn garbage(s: &Snapshot) -> Vec<Op> {
    let owners: BTreeSet<&str> = s
        .deployments
        .iter()
        .filter_map(|d| d.metadata.uid.as_deref())
        .chain(s.replica_sets.iter().filter_map(|r| r.metadata.uid.as_deref()))
        .chain(s.daemon_sets.iter().filter_map(|r| r.metadata.uid.as_deref()))
        .chain(s.jobs.iter().filter_map(|r| r.metadata.uid.as_deref()))
        .chain(s.cron_jobs.iter().filter_map(|r| r.metadata.uid.as_deref()))
        .chain(s.services.iter().filter_map(|v| v.metadata.uid.as_deref()))
        .chain(s.functions.iter().filter_map(|f| f.metadata.uid.as_deref()))
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
    ops.extend(
        s.replica_sets
            .iter()
            .filter(|r| orphan(&r.metadata))
            .map(|r| delete_op(Kind::ReplicaSet, &r.metadata)),
    );
    ops.extend(
        s.jobs
            .iter()
            .filter(|r| orphan(&r.metadata))
            .map(|r| delete_op(Kind::Job, &r.metadata)),
    );
    ops
}

/// The `source.component` of the events the scheduler records.
pub const SCHEDULER: &str = "scheduler";

/// Binds unscheduled pods to nodes through the scheduler pipeline, all in one command. A pod no
/// node can take gets `Unschedulable` with the reason for every node. Each decision is recorded as
/// a `Scheduled` or `FailedScheduling` event in the same command (a failure only when its reasons
/// change, as the status).
pub fn schedule(s: &Snapshot, seed: u64, ids: &mut dyn Ids) -> Vec<Op> {
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
                        ids,
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
                        ids,
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
