//! Controllers as pure functions: state in, exact ops out.
use std::time::{Duration, SystemTime};

use serde_json::json;
use skiff_api::{ConditionStatus, Deployment, Node, Object, Pod, PodPhase, READY_CONDITION, Service};
use skiff_controllers::{self as reconcile, Snapshot, TEMPLATE_HASH_LABEL};
use skiff_state::Op;

#[path = "support/sim.rs"]
mod sim;
use sim::{Counted, apply, pod_in, rs_for};

fn deployment(replicas: i64) -> Deployment {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"web","namespace":"default","uid":"d1","generation":1},
        "spec":{"replicas":replicas,"selector":{"matchLabels":{"app":"web"}},
        "template":{"metadata":{"labels":{"app":"web"}},"spec":{"components":[{"name":"c","wasm":{"digest":format!("sha256:{}", "a".repeat(64))}}]}}}}))
    .unwrap()
}

/// A pod of `d`'s ReplicaSet for template `hash` (one replica set per hash, revision 1).
fn pod_of(d: &Deployment, name: &str, hash: &str, ready: bool, node: Option<&str>) -> Pod {
    pod_in(&rs_for(d, hash, 1, 1), name, ready, node)
}

fn node(name: &str, ready: bool) -> Node {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":name},
        "status":{"address":format!("http://{name}:7071"),"ready":ready,"capacity":{"memory":"1Gi","pods":10},"runtimes":["wasm"]}}))
    .unwrap()
}

/// The ops without the events recorded with them (the event tests check those).
fn no_events(ops: Vec<Op>) -> Vec<Op> {
    ops.into_iter()
        .filter(|o| {
            !matches!(
                o,
                Op::Apply {
                    object: Object::Event(_),
                    ..
                }
            )
        })
        .collect()
}

fn creates(ops: &[Op]) -> usize {
    ops.iter().filter(|o| matches!(o, Op::Create { .. })).count()
}

fn deleted(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .filter_map(|o| match o {
            Op::Delete { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn deployment_makes_a_replica_set_that_makes_the_pods() {
    let d = deployment(3);
    let mut s = Snapshot {
        now: Some(SystemTime::now()),
        deployments: vec![d.clone()],
        ..Default::default()
    };
    let cmds = reconcile::deployments(&s, &mut Counted(0));
    assert_eq!(cmds.len(), 1);
    let rs = cmds[0]
        .iter()
        .find_map(|o| match o {
            Op::Create {
                object: Object::ReplicaSet(r),
                ..
            } => Some(r.clone()),
            _ => None,
        })
        .expect("a replica set is created");
    let h = reconcile::template_hash(&d);
    assert_eq!(rs.metadata.name, format!("web-{h}"));
    assert_eq!(rs.spec.replicas, 3, "the first revision starts at full size");
    assert_eq!(rs.revision(), 1);
    assert_eq!(rs.metadata.controller().map(|o| o.uid.as_str()), Some("d1"));
    assert_eq!(rs.spec.selector.match_labels.get(TEMPLATE_HASH_LABEL), Some(&h));
    apply(&mut s, &cmds.concat());
    let cmds = reconcile::replica_sets(&s, &mut Counted(0));
    assert_eq!(creates(&cmds[0]), 3);
    let Op::Create {
        object: Object::Pod(p),
        ..
    } = &cmds[0][0]
    else {
        panic!("a pod create first")
    };
    assert_eq!(p.metadata.name, format!("web-{h}-s1"));
    let event = cmds[0]
        .iter()
        .find_map(|o| match o {
            Op::Apply {
                object: Object::Event(e),
                ..
            } => Some(e.clone()),
            _ => None,
        })
        .expect("an event on the replica set");
    assert_eq!(event.reason, reconcile::SUCCESSFUL_CREATE);
    assert_eq!(event.involved_object.kind, "ReplicaSet");
    assert!(
        event.message.starts_with(&format!("created pods web-{h}-s1, ")),
        "{}",
        event.message
    );
    assert_eq!(
        p.metadata.controller().map(|o| o.kind.as_str()),
        Some("ReplicaSet")
    );
    assert_eq!(p.metadata.labels.get(TEMPLATE_HASH_LABEL), Some(&h));
}

#[test]
fn scale_down_removes_least_valuable_pods_first() {
    let d = deployment(1);
    let rs = rs_for(&d, "h", 1, 1);
    let pods = vec![
        pod_in(&rs, "ready", true, Some("n")),
        pod_in(&rs, "unscheduled", false, None),
    ];
    let s = Snapshot {
        now: Some(SystemTime::now()),
        replica_sets: vec![rs],
        pods,
        ..Default::default()
    };
    let cmds = reconcile::replica_sets(&s, &mut Counted(0));
    assert_eq!(deleted(&cmds[0]), ["unscheduled"]);
    assert_eq!(creates(&cmds[0]), 0);
}

#[test]
fn failed_pods_are_replaced_after_their_backoff() {
    let d = deployment(1);
    let rs = rs_for(&d, "h", 1, 1);
    let now = SystemTime::now();
    let mut failed = pod_in(&rs, "failed", false, Some("n"));
    failed.status.phase = PodPhase::Failed;
    failed.status.finished_at = Some(humantime::format_rfc3339_seconds(now).to_string());
    let mut s = Snapshot {
        now: Some(now),
        replica_sets: vec![rs],
        pods: vec![failed],
        ..Default::default()
    };
    // Within the backoff: nothing but status.
    let cmds = reconcile::replica_sets(&s, &mut Counted(0));
    assert!(
        cmds.iter()
            .flatten()
            .all(|o| matches!(o, Op::UpdateStatus { .. })),
        "{cmds:?}"
    );
    // After it: the failed pod goes and a new one comes.
    s.now = Some(now + reconcile::FAILED_POD_BACKOFF + Duration::from_secs(1));
    let cmds = reconcile::replica_sets(&s, &mut Counted(0));
    assert_eq!(deleted(&cmds[0]), ["failed"]);
    assert_eq!(creates(&cmds[0]), 1);
}

#[test]
fn endpoints_list_bound_pods_with_readiness_of_pod_and_node() {
    let d = deployment(2);
    let h = reconcile::template_hash(&d);
    let svc: Service = serde_json::from_value(
        json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"web","namespace":"default","uid":"s1"},
        "spec":{"selector":{"app":"web"}}}),
    )
    .unwrap();
    let pods = vec![
        pod_of(&d, "a", &h, true, Some("good")),
        pod_of(&d, "b", &h, true, Some("down")),
        pod_of(&d, "c", &h, false, None),
    ];
    let s = Snapshot {
        now: Some(SystemTime::now()),
        services: vec![svc],
        pods,
        nodes: vec![node("good", true), node("down", false)],
        ..Default::default()
    };
    let ops = reconcile::endpoints(&s, &mut reconcile::RandomIds);
    let [
        Op::Apply {
            object: Object::Endpoints(e),
            ..
        },
    ] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    let got: Vec<(&str, bool)> = e.endpoints.iter().map(|a| (a.pod.as_str(), a.ready)).collect();
    assert_eq!(got, [("a", true), ("b", false)]);
    assert_eq!(e.endpoints[0].address, "http://good:7071");
}

#[test]
fn scheduler_binds_or_explains() {
    let d = deployment(1);
    let h = reconcile::template_hash(&d);
    let s = Snapshot {
        now: Some(SystemTime::now()),
        pods: vec![pod_of(&d, "p", &h, false, None)],
        nodes: vec![node("n1", true), node("n2", false)],
        ..Default::default()
    };
    let ops = no_events(reconcile::schedule(&s, 7, &mut reconcile::RandomIds));
    let Op::Replace {
        object: Object::Pod(bound),
    } = &ops[0]
    else {
        panic!("{ops:?}")
    };
    assert_eq!(bound.spec.node_name.as_deref(), Some("n1"));
    let Op::UpdateStatus {
        object: Object::Pod(st),
    } = &ops[1]
    else {
        panic!("{ops:?}")
    };
    let sched = st.status.scheduling.as_ref().unwrap();
    assert_eq!(sched.result, "Scheduled");
    assert!(sched.rejected.contains_key("n2"), "{sched:?}");

    let s = Snapshot {
        nodes: vec![node("n2", false)],
        ..s
    };
    let ops = reconcile::schedule(&s, 7, &mut reconcile::RandomIds);
    let [
        Op::Apply {
            object: Object::Event(ev),
            ..
        },
        Op::UpdateStatus {
            object: Object::Pod(st),
        },
    ] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    assert_eq!(
        (
            ev.reason.as_str(),
            ev.message.as_str(),
            ev.involved_object.name.as_str()
        ),
        (
            reconcile::FAILED_SCHEDULING,
            "0/1 nodes are available: 1 node not ready",
            "p"
        )
    );
    assert_eq!(st.status.reason.as_deref(), Some("Unschedulable"));
    assert!(
        st.status
            .message
            .as_deref()
            .unwrap()
            .starts_with("0/1 nodes are available"),
        "{:?}",
        st.status.message
    );
}

#[test]
fn orphans_are_collected_and_stale_nodes_marked_not_ready() {
    let d = deployment(1);
    let orphan = pod_of(&d, "orphan", "h", true, Some("n"));
    let mut stale = node("n", true);
    stale.status.last_heartbeat = Some("2020-01-01T00:00:00Z".into());
    let s = Snapshot {
        now: Some(SystemTime::now()),
        pods: vec![orphan],
        nodes: vec![stale],
        ..Default::default()
    };
    assert_eq!(deleted(&reconcile::garbage(&s)), ["orphan"]);
    let ops =
        no_events(reconcile::node_health(&s, Duration::from_secs(40), &mut reconcile::RandomIds).concat());
    let [
        Op::Replace { .. },
        Op::UpdateStatus {
            object: Object::Node(n),
        },
    ] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    assert!(!n.status.ready);
}

// ---- node lifecycle (issue 4, deliverables 2 and 3) ----

const GRACE: Duration = Duration::from_secs(10);
const EVICTION: Duration = Duration::from_secs(5);

/// Now, on a whole second (heartbeats are stored with second precision).
fn whole_second_now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn beating(name: &str, now: SystemTime, ago: u64) -> Node {
    let mut n = node(name, true);
    n.status.last_heartbeat =
        Some(humantime::format_rfc3339_seconds(now - Duration::from_secs(ago)).to_string());
    n
}

#[test]
fn heartbeat_older_than_grace_marks_node_not_ready_with_reason_once() {
    let now = whole_second_now();
    let mut s = Snapshot {
        now: Some(now),
        nodes: vec![beating("alive", now, 3), beating("dead", now, 12)],
        ..Default::default()
    };
    let ops = reconcile::node_health(&s, GRACE, &mut reconcile::RandomIds).concat();
    apply(&mut s, &ops);
    let dead = &s.nodes[1];
    assert!(!dead.status.ready);
    let c = dead.condition(READY_CONDITION).expect("a Ready condition");
    assert_eq!(c.status, ConditionStatus::False);
    assert_eq!(c.reason, reconcile::HEARTBEAT_MISSED);
    assert_eq!(c.message, "no heartbeat for 12s");
    assert!(c.last_transition_time.is_some());
    let alive = &s.nodes[0];
    assert!(alive.status.ready);
    assert_eq!(
        alive.condition(READY_CONDITION).map(|c| c.status),
        Some(ConditionStatus::True)
    );
    // Level-triggered and quiet: a later pass over the same state writes nothing.
    s.now = Some(now + Duration::from_secs(3));
    assert!(reconcile::node_health(&s, GRACE, &mut reconcile::RandomIds).is_empty());
    // The agent comes back: its heartbeat makes it ready and the condition flips back to True.
    let later = now + Duration::from_secs(20);
    s.now = Some(later);
    s.nodes[1].status = beating("dead", later, 1).status;
    let ops = reconcile::node_health(&s, GRACE, &mut reconcile::RandomIds).concat();
    apply(&mut s, &ops);
    assert_eq!(
        s.nodes[1]
            .condition(READY_CONDITION)
            .map(|c| (c.status, c.reason)),
        Some((ConditionStatus::True, reconcile::HEARTBEAT_FRESH.to_owned()))
    );
}

#[test]
fn pods_of_a_lost_node_are_evicted_after_the_grace_and_replaced_on_a_ready_node() {
    let d = deployment(2);
    let h = reconcile::template_hash(&d);
    let svc: Service = serde_json::from_value(
        json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"web","namespace":"default","uid":"s1"},
        "spec":{"selector":{"app":"web"}}}),
    )
    .unwrap();
    let t0 = whole_second_now();
    // The node "dead" last heartbeated at t0 - 11 s: just past the grace.
    let mut s = Snapshot {
        now: Some(t0),
        nodes: vec![beating("alive", t0, 2), beating("dead", t0, 11)],
        pods: vec![
            pod_of(&d, "on-alive", &h, true, Some("alive")),
            pod_of(&d, "on-dead", &h, true, Some("dead")),
        ],
        replica_sets: vec![rs_for(&d, &h, 2, 1)],
        deployments: vec![d],
        services: vec![svc],
        ..Default::default()
    };
    let ops = reconcile::node_health(&s, GRACE, &mut reconcile::RandomIds).concat();
    apply(&mut s, &ops);
    // NotReady at once → its endpoint is not ready (the gateway stops routing there)...
    let ops = reconcile::endpoints(&s, &mut reconcile::RandomIds);
    let [
        Op::Apply {
            object: Object::Endpoints(e),
            ..
        },
    ] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    let got: Vec<(&str, bool)> = e.endpoints.iter().map(|a| (a.pod.as_str(), a.ready)).collect();
    assert_eq!(got, [("on-alive", true), ("on-dead", false)]);
    // ...but its pods stay during the eviction grace.
    assert!(reconcile::evict_pods(&s, GRACE, EVICTION, &mut reconcile::RandomIds).is_empty());
    s.now = Some(t0 + Duration::from_secs(3));
    assert!(reconcile::evict_pods(&s, GRACE, EVICTION, &mut reconcile::RandomIds).is_empty());
    // NotReady for the eviction grace (since t0 - 1 s): the pod on the dead node fails with NodeLost.
    let t1 = t0 + Duration::from_secs(4);
    s.now = Some(t1);
    let ops = reconcile::evict_pods(&s, GRACE, EVICTION, &mut reconcile::RandomIds).concat();
    assert_eq!(no_events(ops.clone()).len(), 1, "{ops:?}");
    apply(&mut s, &ops);
    // Recorded in the same command: the node went not ready, the pod was evicted.
    let mut events: Vec<(&str, &str, &str)> = s
        .events
        .iter()
        .map(|e| {
            (
                e.involved_object.name.as_str(),
                e.reason.as_str(),
                e.message.as_str(),
            )
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            (
                "alive",
                reconcile::NODE_READY,
                "node alive is ready: the agent heartbeats within 10s"
            ),
            (
                "dead",
                reconcile::NODE_NOT_READY,
                "node dead is not ready: no heartbeat for 11s"
            ),
            (
                "on-dead",
                reconcile::POD_EVICTED,
                "evicted (NodeLost): node dead has had no heartbeat for 15s"
            ),
        ]
    );
    let lost = s.pods.iter().find(|p| p.metadata.name == "on-dead").unwrap();
    assert_eq!(lost.status.phase, PodPhase::Failed);
    assert_eq!(lost.status.reason.as_deref(), Some(reconcile::NODE_LOST));
    assert_eq!(
        lost.status.message.as_deref(),
        Some("node dead has had no heartbeat for 15s")
    );
    // The replica set replaces it at once (no failed-pod backoff for NodeLost)...
    let cmds = reconcile::replica_sets(&s, &mut Counted(0));
    assert_eq!(deleted(&cmds[0]), ["on-dead"]);
    assert_eq!(creates(&cmds[0]), 1);
    apply(&mut s, &cmds.concat());
    // ...and the scheduler puts the replacement on the ready node.
    let ops = reconcile::schedule(&s, 1, &mut reconcile::RandomIds);
    apply(&mut s, &ops);
    let mut placed: Vec<(&str, &str)> = s
        .pods
        .iter()
        .map(|p| {
            (
                p.metadata.name.as_str(),
                p.spec.node_name.as_deref().unwrap_or("-"),
            )
        })
        .collect();
    placed.sort();
    let replacement = format!("web-{h}-s1");
    assert_eq!(placed, [("on-alive", "alive"), (replacement.as_str(), "alive")]);
    // Nothing more to evict: the lost node has no live pods left.
    assert!(reconcile::evict_pods(&s, GRACE, EVICTION, &mut reconcile::RandomIds).is_empty());
}

#[test]
fn bare_pods_of_a_lost_node_fail_but_stay_and_a_node_without_heartbeat_counts_from_its_condition() {
    let now = SystemTime::now();
    let mut bare = pod_of(&deployment(1), "bare", "h", true, Some("silent"));
    bare.metadata.owner_references.clear();
    let mut silent = node("silent", false);
    silent.set_condition(skiff_api::NodeCondition {
        type_: READY_CONDITION.into(),
        status: ConditionStatus::False,
        reason: reconcile::HEARTBEAT_MISSED.into(),
        message: "the agent never reported a heartbeat".into(),
        last_transition_time: Some(humantime::format_rfc3339_seconds(now).to_string()),
    });
    let mut s = Snapshot {
        now: Some(now + Duration::from_secs(2)),
        nodes: vec![silent],
        pods: vec![bare],
        ..Default::default()
    };
    assert!(reconcile::evict_pods(&s, GRACE, EVICTION, &mut reconcile::RandomIds).is_empty());
    s.now = Some(now + EVICTION);
    let ops = reconcile::evict_pods(&s, GRACE, EVICTION, &mut reconcile::RandomIds).concat();
    apply(&mut s, &ops);
    assert_eq!(s.pods[0].status.reason.as_deref(), Some(reconcile::NODE_LOST));
    assert!(
        reconcile::garbage(&s).is_empty(),
        "a bare pod is kept, failed, for inspection"
    );
}

#[test]
fn cordoned_node_gets_no_new_pods() {
    let d = deployment(3);
    let now = SystemTime::now();
    let mut cordoned = beating("cordoned", now, 1);
    cordoned.spec.unschedulable = true;
    let mut s = Snapshot {
        now: Some(now),
        nodes: vec![cordoned.clone(), beating("open", now, 1)],
        deployments: vec![d],
        ..Default::default()
    };
    sim::settle(&mut s, &mut Counted(0));
    for seed in 0..4 {
        let ops = reconcile::schedule(&s, seed, &mut reconcile::RandomIds);
        let bound: Vec<&str> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Replace {
                    object: Object::Pod(p),
                } => p.spec.node_name.as_deref(),
                _ => None,
            })
            .collect();
        assert_eq!(bound, ["open", "open", "open"], "seed {seed}");
    }
    // Only the cordoned node: nothing is bound, and the reason says why.
    s.nodes = vec![cordoned];
    let ops = no_events(reconcile::schedule(&s, 0, &mut reconcile::RandomIds));
    assert!(
        ops.iter().all(|o| matches!(o, Op::UpdateStatus { .. })),
        "{ops:?}"
    );
    let Op::UpdateStatus {
        object: Object::Pod(p),
    } = &ops[0]
    else {
        panic!("{ops:?}")
    };
    let why = &p.status.scheduling.as_ref().unwrap().rejected["cordoned"];
    assert!(why.contains("cordoned"), "{why}");
}

#[test]
fn pods_on_a_not_ready_node_do_not_count_as_ready_for_a_rollout() {
    let d = deployment(1);
    let h = reconcile::template_hash(&d);
    // The new pod reported ready, but its node is down: the old pod must stay.
    let s = Snapshot {
        now: Some(SystemTime::now()),
        nodes: vec![node("up", true), node("down", false)],
        pods: vec![
            pod_of(&d, "old", "oldhash", true, Some("up")),
            pod_of(&d, "new", &h, true, Some("down")),
        ],
        replica_sets: vec![rs_for(&d, "oldhash", 1, 1), rs_for(&d, &h, 1, 2)],
        deployments: vec![d],
        ..Default::default()
    };
    let cmds = reconcile::deployments(&s, &mut Counted(0));
    assert!(deleted(&cmds.concat()).is_empty(), "{cmds:?}");
    let status = cmds.concat().into_iter().find_map(|o| match o {
        Op::UpdateStatus {
            object: Object::Deployment(d),
        } => Some(d.status),
        _ => None,
    });
    assert_eq!(status.map(|s| s.ready_replicas), Some(1));
}

#[test]
fn heartbeat_ages_run_on_the_leaders_clock_from_when_a_beat_was_seen() {
    let t0 = whole_second_now();
    // The agent's clock is an hour behind, and the leader is new (e.g. back from an outage).
    let mut skewed = beating("skewed", t0, 3600);
    let mut clock = reconcile::HeartbeatClock::default();
    clock.observe(std::slice::from_ref(&skewed), t0);
    let mut s = Snapshot {
        now: Some(t0),
        nodes: vec![skewed.clone()],
        heartbeats: clock.clone(),
        ..Default::default()
    };
    // A full grace from the first sighting, not "an hour without heartbeat".
    s.now = Some(t0 + GRACE);
    assert!(
        no_events(reconcile::node_health(&s, GRACE, &mut reconcile::RandomIds).concat())
            .iter()
            .all(|o| matches!(o, Op::Replace { .. }))
    );
    assert!(reconcile::evict_pods(&s, GRACE, EVICTION, &mut reconcile::RandomIds).is_empty());
    // The agent keeps beating (its timestamps change): still ready, however old they look.
    let t1 = t0 + Duration::from_secs(8);
    skewed.status.last_heartbeat =
        Some(humantime::format_rfc3339_seconds(t1 - Duration::from_secs(3600)).to_string());
    clock.observe(std::slice::from_ref(&skewed), t1);
    s.nodes = vec![skewed.clone()];
    s.heartbeats = clock.clone();
    s.now = Some(t1 + GRACE);
    let ops = reconcile::node_health(&s, GRACE, &mut reconcile::RandomIds).concat();
    apply(&mut s, &ops);
    assert!(s.nodes[0].status.ready);
    // It stops: NotReady once the grace has passed since the last change was seen.
    s.now = Some(t1 + GRACE + Duration::from_secs(1));
    let ops = reconcile::node_health(&s, GRACE, &mut reconcile::RandomIds).concat();
    apply(&mut s, &ops);
    assert!(!s.nodes[0].status.ready);
    assert_eq!(
        s.nodes[0].condition(READY_CONDITION).map(|c| c.message),
        Some("no heartbeat for 11s".to_owned())
    );
}
