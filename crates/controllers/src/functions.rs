//! Function → Pods, Endpoints and status: the scaler.
//!
//! A function's pods are sized by its load: `ceil(concurrency / targetConcurrency)` pods, the
//! concurrency being the average number of calls in flight over the last sample (all pods
//! together, as the agents measure it). At least one pod while its topics hold undelivered events
//! or shortly after an activation (a request that found no pod); within `minScale..=maxScale`.
//! The count only drops once the load has been lower for `scaleDownDelay`. Pods spread over
//! nodes (one per node first), so more load means more workers. A template change replaces pods
//! once the new ones are ready.
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use skiff_api::{
    EndpointAddress, Endpoints, FUNCTION_LABEL, Function, FunctionStatus, Kind, Object, ObjectMeta,
    OwnerReference, Pod, TopologySpreadConstraint, WhenUnsatisfiable, function_endpoints_name,
};
use skiff_state::Op;

use super::replicasets::{owned_by, serving_fn};
use super::{Ids, Snapshot, delete_op, endpoint_of, is_terminal, ns_of, rfc3339};

/// The `source.component` of the function controller.
pub const FUNCTION_CONTROLLER: &str = "function-controller";

/// What the controller loop measured for one function (`namespace/name` → load).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FunctionLoad {
    /// Average calls in flight over the last sample, all pods together.
    pub concurrency: f64,
    /// Events waiting in its topics (undelivered or waiting for a retry).
    pub backlog: u64,
}

fn parse_time(t: Option<&str>) -> Option<SystemTime> {
    t.and_then(|t| humantime::parse_rfc3339_weak(t).ok())
}

/// How many pods the function should have now, and whether the load asks for that many (which
/// renews `lastScaleUp`).
pub fn desired_replicas(f: &Function, load: FunctionLoad, now: SystemTime) -> (u32, bool) {
    let spec = &f.spec;
    let (min, max) = (spec.min_scale, spec.max_scale_or_default().max(1));
    let delay = spec.scale_down_delay_or_default();
    let recent =
        |t: Option<&str>| parse_time(t).is_some_and(|t| now.duration_since(t).unwrap_or_default() < delay);
    let by_load = (load.concurrency / f64::from(spec.target_concurrency_or_default())).ceil();
    let mut wanted = if by_load.is_finite() && by_load > 0.0 {
        by_load.min(f64::from(max)) as u32
    } else {
        0
    };
    if load.backlog > 0 || recent(f.status.last_activation.as_deref()) {
        wanted = wanted.max(1);
    }
    let wanted = wanted.clamp(min, max);
    let current = f.status.desired_replicas;
    if wanted >= current {
        return (wanted, wanted > 0 && wanted > min);
    }
    // Lower: only once the higher level has not been needed for the delay.
    if recent(f.status.last_scale_up.as_deref()) {
        (current.min(max), false)
    } else {
        (wanted, false)
    }
}

/// The label carrying the hash of the pod spec a function's pod was made from.
pub const FUNCTION_SPEC_HASH_LABEL: &str = "skiff.dev/function-spec-hash";

fn pod_for(f: &Function, uid: &str, hash: &str, ids: &mut dyn Ids) -> Op {
    let ns = ns_of(&f.metadata);
    let mut spec = f.spec.pod_spec();
    let mut labels = BTreeMap::new();
    labels.insert(FUNCTION_LABEL.to_owned(), f.metadata.name.clone());
    spec.topology_spread_constraints = vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: skiff_api::HOSTNAME_LABEL.into(),
        when_unsatisfiable: WhenUnsatisfiable::ScheduleAnyway,
        label_selector: labels.clone(),
    }];
    labels.insert(FUNCTION_SPEC_HASH_LABEL.to_owned(), hash.to_owned());
    let name = format!("{}-{}", truncate(&f.metadata.name, 57), ids.suffix());
    let mut meta = ObjectMeta::named(name, Some(ns));
    meta.labels = labels;
    meta.owner_references = vec![OwnerReference {
        kind: "Function".into(),
        name: f.metadata.name.clone(),
        uid: uid.to_owned(),
        controller: true,
    }];
    Op::Create {
        object: Object::Pod(Pod {
            api_version: Default::default(),
            metadata: meta,
            spec,
            status: Default::default(),
        }),
        uid: ids.uid(),
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => s[..i].trim_end_matches('-'),
        None => s,
    }
}

/// Function → Pods (created and deleted to the scaler's count), its `fn.NAME` Endpoints and
/// its status; one command per function that needs a change.
pub fn functions(s: &Snapshot, load: &BTreeMap<String, FunctionLoad>, ids: &mut dyn Ids) -> Vec<Vec<Op>> {
    let Some(now) = s.now else {
        return Vec::new();
    };
    let serving = serving_fn(s);
    let nodes: BTreeMap<&str, &skiff_api::Node> =
        s.nodes.iter().map(|n| (n.metadata.name.as_str(), n)).collect();
    let mut out = Vec::new();
    for f in &s.functions {
        let Some(uid) = f.metadata.uid.as_deref() else {
            continue;
        };
        let ns = ns_of(&f.metadata);
        let key = format!("{ns}/{}", f.metadata.name);
        let l = load.get(&key).copied().unwrap_or_default();
        let (desired, load_holds) = desired_replicas(f, l, now);
        let hash = spec_hash(f);
        let owned = owned_by(s, ns, uid);
        let mut ops = Vec::new();
        // Failed pods go (a fresh one replaces them).
        let live: Vec<&Pod> = owned
            .iter()
            .copied()
            .filter(|p| {
                if is_terminal(p) {
                    ops.push(delete_op(Kind::Pod, &p.metadata));
                    false
                } else {
                    true
                }
            })
            .collect();
        let (current, old): (Vec<&Pod>, Vec<&Pod>) = live
            .iter()
            .partition(|p| p.metadata.labels.get(FUNCTION_SPEC_HASH_LABEL) == Some(&hash));
        let want = desired as usize;
        for _ in current.len()..want {
            ops.push(pod_for(f, uid, &hash, ids));
        }
        if current.len() > want {
            // Surplus: not-ready pods first, then the newest.
            let mut by_value: Vec<&&Pod> = current.iter().collect();
            by_value.sort_by(|a, b| {
                serving(a)
                    .cmp(&serving(b))
                    .then(b.metadata.creation_timestamp.cmp(&a.metadata.creation_timestamp))
                    .then(a.metadata.name.cmp(&b.metadata.name))
            });
            for p in by_value.into_iter().take(current.len() - want) {
                ops.push(delete_op(Kind::Pod, &p.metadata));
            }
        }
        // Pods of an older spec go once enough current ones serve (at once when scaled to zero).
        let ready_current = current.iter().filter(|p| serving(p)).count();
        if ready_current >= want.min(current.len().max(1)) || want == 0 {
            for p in &old {
                ops.push(delete_op(Kind::Pod, &p.metadata));
            }
        }
        // Endpoints: the ready pods, current spec first served (old ones until they go).
        let mut addrs: Vec<EndpointAddress> = live.iter().filter_map(|p| endpoint_of(p, &nodes)).collect();
        addrs.sort();
        let ep_name = function_endpoints_name(&f.metadata.name);
        let existing = s
            .endpoints
            .iter()
            .find(|e| ns_of(&e.metadata) == ns && e.metadata.name == ep_name);
        if existing.is_none_or(|e| e.endpoints != addrs) {
            let mut meta = ObjectMeta::named(ep_name, Some(ns));
            meta.owner_references = vec![OwnerReference {
                kind: "Function".into(),
                name: f.metadata.name.clone(),
                uid: uid.to_owned(),
                controller: true,
            }];
            ops.push(Op::Apply {
                object: Object::Endpoints(Endpoints {
                    api_version: Default::default(),
                    metadata: meta,
                    endpoints: addrs,
                }),
                uid: ids.uid(),
            });
        }
        let status = FunctionStatus {
            desired_replicas: desired,
            replicas: live.len() as u32,
            ready_replicas: live.iter().filter(|p| serving(p)).count() as u32,
            last_scale_up: if load_holds || (desired > f.status.desired_replicas) {
                Some(rfc3339(now))
            } else {
                f.status.last_scale_up.clone()
            },
            last_activation: f.status.last_activation.clone(),
            observed_concurrency: (l.concurrency * 100.0).round() / 100.0,
            connections: f.status.connections.clone(),
        };
        // Renewing lastScaleUp alone is written at most every few seconds (not every pass).
        let renew_only = status.desired_replicas == f.status.desired_replicas
            && status.replicas == f.status.replicas
            && status.ready_replicas == f.status.ready_replicas
            && (status.observed_concurrency - f.status.observed_concurrency).abs() < 0.5
            && parse_time(f.status.last_scale_up.as_deref())
                .is_some_and(|t| now.duration_since(t).unwrap_or_default() < RENEW_EVERY);
        if status != f.status && !renew_only {
            let mut next = f.clone();
            next.status = status;
            next.metadata.resource_version = None;
            ops.push(Op::UpdateStatus {
                object: Object::Function(next),
            });
        }
        if !ops.is_empty() {
            out.push(ops);
        }
    }
    out
}

/// How often a steady load's `lastScaleUp` is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// A short stable hash of the pod spec a function's pods run.
pub fn spec_hash(f: &Function) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(&f.spec.pod_spec()).unwrap_or_default();
    hex::encode(&sha2::Sha256::digest(&json)[..5])
}

/// Type of the events a cron trigger publishes.
pub const CRON_TICK_TYPE: &str = "dev.skiff.cron.tick";

/// The ticks of `f`'s cron triggers due in `(after, now]` (after: the later of `now` minus the
/// trigger's catch-up window and the function's creation), as `Publish` ops to the triggers'
/// topics. Each carries the idempotency key `cron:TRIGGER:UNIXSECONDS`, so whichever leader
/// publishes a tick, and however often, it is stored once. `since` skips ticks at or before a
/// time already published (per trigger index), to spare the log.
pub fn cron_ticks(
    f: &Function,
    now: SystemTime,
    since: &BTreeMap<usize, SystemTime>,
) -> Vec<(usize, SystemTime, Op)> {
    let ns = ns_of(&f.metadata);
    let created = parse_time(f.metadata.creation_timestamp.as_deref()).unwrap_or(now);
    let mut out = Vec::new();
    for (i, t) in f.spec.triggers.iter().enumerate() {
        let Some(c) = &t.cron else { continue };
        let Ok((cron, tz)) = skiff_api::parse_schedule(&c.schedule, c.timezone.as_deref()) else {
            continue;
        };
        let window = c
            .catch_up_window
            .map(|d| d.0)
            .unwrap_or(skiff_api::CronTrigger::DEFAULT_CATCH_UP);
        let mut after = now.checked_sub(window).unwrap_or(created).max(created);
        if let Some(s) = since.get(&i) {
            after = after.max(*s);
        }
        for at in super::cronjobs::due_times(&cron, tz, after, now) {
            let secs = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let scheduled = rfc3339(at);
            let event = skiff_api::CloudEvent {
                specversion: "1.0".into(),
                id: format!("{}-{i}-{secs}", f.metadata.name),
                source: format!("/functions/{}/cron/{i}", f.metadata.name),
                type_: CRON_TICK_TYPE.into(),
                time: Some(scheduled.clone()),
                datacontenttype: Some("application/json".into()),
                data: Some(serde_json::json!({"scheduled": scheduled, "schedule": c.schedule})),
                ..Default::default()
            };
            out.push((
                i,
                at,
                Op::Publish {
                    namespace: ns.to_owned(),
                    topic: skiff_api::cron_topic(&f.metadata.name, i),
                    event,
                    key: Some(format!("cron:{i}:{secs}")),
                },
            ));
        }
    }
    out
}
