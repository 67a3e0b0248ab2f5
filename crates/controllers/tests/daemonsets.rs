//! The DaemonSet controller as a pure function: nodes joining, leaving and relabelled, taints,
//! rolling updates within maxUnavailable, OnDelete, status.
use std::time::{Duration, SystemTime};

use serde_json::json;
use skiff_api::{DaemonSet, Node, Object, Pod, PodPhase};
use skiff_controllers::{self as reconcile, Ids, Snapshot, TEMPLATE_HASH_LABEL};
use skiff_state::Op;

struct Counted(u32);

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

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn daemon_set(strategy: serde_json::Value, greeting: &str) -> DaemonSet {
    serde_json::from_value(
        json!({"metadata":{"name":"agent","namespace":"default","uid":"ds1","generation":1},
        "spec":{"selector":{"matchLabels":{"app":"agent"}},"updateStrategy":strategy,
        "template":{"metadata":{"labels":{"app":"agent"}},"spec":{"nodeSelector":{"role":"edge"},
            "components":[{"name":"c","env":[{"name":"G","value":greeting}],
                "wasm":{"digest":format!("sha256:{}", "a".repeat(64))}}]}}}}),
    )
    .unwrap()
}

fn node(name: &str, role: &str) -> Node {
    serde_json::from_value(json!({"metadata":{"name":name,"labels":{"role":role}},
        "status":{"address":format!("http://{name}:7071"),"ready":true,"capacity":{"memory":"1Gi","pods":10},"runtimes":["wasm"]}}))
    .unwrap()
}

fn daemon_pod(ds: &DaemonSet, node: &str, ready: bool) -> Pod {
    let hash = reconcile::hash_of(&ds.spec.template);
    let mut p: Pod = serde_json::from_value(
        json!({"metadata":{"name":format!("agent-{node}"),"namespace":"default",
        "uid":format!("u-{node}-{hash}"),"labels":{"app":"agent", TEMPLATE_HASH_LABEL: hash},
        "ownerReferences":[{"kind":"DaemonSet","name":"agent","uid":"ds1","controller":true}]},
        "spec": ds.spec.template.spec.clone()}),
    )
    .unwrap();
    p.spec.node_name = Some(node.into());
    p.status.phase = PodPhase::Running;
    p.status.ready = ready;
    p
}

fn snapshot(ds: &DaemonSet, nodes: Vec<Node>, pods: Vec<Pod>) -> Snapshot {
    Snapshot {
        now: Some(t0()),
        daemon_sets: vec![ds.clone()],
        nodes,
        pods,
        ..Default::default()
    }
}

/// (node of each created pod, names of deleted pods), events left out.
fn changes(s: &Snapshot) -> (Vec<String>, Vec<String>) {
    let mut created = Vec::new();
    let mut deleted = Vec::new();
    for op in reconcile::daemon_sets(s, &mut Counted(0)).into_iter().flatten() {
        match op {
            Op::Create {
                object: Object::Pod(p),
                ..
            } => {
                assert_eq!(p.metadata.controller().map(|o| o.uid.as_str()), Some("ds1"));
                created.push(p.spec.node_name.clone().expect("bound by the controller"));
            }
            Op::Delete { name, .. } => deleted.push(name),
            _ => {}
        }
    }
    created.sort();
    deleted.sort();
    (created, deleted)
}

fn status(s: &Snapshot) -> skiff_api::DaemonSetStatus {
    reconcile::daemon_sets(s, &mut Counted(0))
        .into_iter()
        .flatten()
        .find_map(|op| match op {
            Op::UpdateStatus {
                object: Object::DaemonSet(d),
            } => Some(d.status),
            _ => None,
        })
        .expect("a status update")
}

#[test]
fn one_pod_bound_to_every_matching_node_and_follows_joins() {
    let ds = daemon_set(json!({}), "hi");
    let nodes = vec![node("n1", "edge"), node("n2", "edge"), node("n3", "core")];
    let s = snapshot(&ds, nodes.clone(), vec![]);
    assert_eq!(changes(&s), (vec!["n1".into(), "n2".into()], vec![]));
    let st = status(&s);
    assert_eq!(
        (
            st.desired_number_scheduled,
            st.current_number_scheduled,
            st.number_ready
        ),
        (2, 0, 0)
    );
    // Both run; a third edge node joins: one more pod, for it only.
    let pods = vec![daemon_pod(&ds, "n1", true), daemon_pod(&ds, "n2", true)];
    let mut more = nodes.clone();
    more.push(node("n4", "edge"));
    assert_eq!(
        changes(&snapshot(&ds, more, pods.clone())),
        (vec!["n4".into()], vec![])
    );
    let st = status(&snapshot(&ds, nodes, pods));
    assert_eq!(
        (
            st.desired_number_scheduled,
            st.current_number_scheduled,
            st.number_ready,
            st.updated_number_scheduled,
            st.observed_generation
        ),
        (2, 2, 2, 2, 1)
    );
}

#[test]
fn a_leaving_or_relabelled_node_loses_its_pod_and_a_relabelled_one_gains_one() {
    let ds = daemon_set(json!({}), "hi");
    let pods = vec![daemon_pod(&ds, "n1", true), daemon_pod(&ds, "n2", true)];
    // n2 is deleted: its pod goes.
    let s = snapshot(&ds, vec![node("n1", "edge")], pods.clone());
    assert_eq!(changes(&s), (vec![], vec!["agent-n2".into()]));
    // n1 stops matching and n3 starts: delete on n1, create on n3.
    let s = snapshot(
        &ds,
        vec![node("n1", "core"), node("n2", "edge"), node("n3", "edge")],
        pods,
    );
    assert_eq!(changes(&s), (vec!["n3".into()], vec!["agent-n1".into()]));
}

#[test]
fn untolerated_taints_and_missing_runtimes_keep_daemon_pods_off() {
    let ds = daemon_set(json!({}), "hi");
    let mut tainted = node("n1", "edge");
    tainted.spec.taints =
        serde_json::from_value(json!([{"key":"dedicated","value":"db","effect":"NoSchedule"}])).unwrap();
    let mut no_wasm = node("n2", "edge");
    no_wasm.status.runtimes.clear();
    let s = snapshot(&ds, vec![tainted.clone(), no_wasm], vec![]);
    assert_eq!(changes(&s), (vec![], vec![]));
    // Tolerating the taint lets it in; a not-ready node gets none until it is back.
    let mut ds = ds;
    ds.spec.template.spec.tolerations =
        serde_json::from_value(json!([{"key":"dedicated","operator":"Exists"}])).unwrap();
    let mut down = node("n3", "edge");
    down.status.ready = false;
    let s = snapshot(&ds, vec![tainted, down], vec![]);
    assert_eq!(changes(&s), (vec!["n1".into()], vec![]));
    assert_eq!(status(&s).desired_number_scheduled, 2);
}

#[test]
fn rolling_update_replaces_at_most_max_unavailable_pods_at_a_time() {
    let old = daemon_set(json!({}), "v1");
    let nodes = vec![node("n1", "edge"), node("n2", "edge"), node("n3", "edge")];
    let old_pods: Vec<Pod> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| daemon_pod(&old, n, true))
        .collect();
    let new = daemon_set(json!({}), "v2");
    // Default maxUnavailable 1: exactly one old pod goes.
    let (created, deleted) = changes(&snapshot(&new, nodes.clone(), old_pods.clone()));
    assert!(created.is_empty());
    assert_eq!(deleted.len(), 1);
    // Its node is empty next pass: a new pod there, and no other old pod goes meanwhile.
    let rest: Vec<Pod> = old_pods[1..].to_vec();
    assert_eq!(
        changes(&snapshot(&new, nodes.clone(), rest.clone())),
        (vec!["n1".into()], vec![])
    );
    // The new pod is not ready yet: still nothing goes.
    let mut pods = rest.clone();
    pods.push(daemon_pod(&new, "n1", false));
    assert_eq!(
        changes(&snapshot(&new, nodes.clone(), pods.clone())),
        (vec![], vec![])
    );
    let st = status(&snapshot(&new, nodes.clone(), pods.clone()));
    assert_eq!((st.updated_number_scheduled, st.number_ready), (1, 2));
    // Ready: the next old pod goes.
    pods.pop();
    pods.push(daemon_pod(&new, "n1", true));
    let (_, deleted) = changes(&snapshot(&new, nodes.clone(), pods));
    assert_eq!(deleted.len(), 1);
    // maxUnavailable 2: two at once.
    let wide = daemon_set(
        json!({"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":2}}),
        "v2",
    );
    let (_, deleted) = changes(&snapshot(&wide, nodes.clone(), old_pods.clone()));
    assert_eq!(deleted.len(), 2);
    // An old pod that is not ready goes at once, without using the budget.
    let mut sick = old_pods.clone();
    sick[0].status.ready = false;
    let (_, deleted) = changes(&snapshot(&new, nodes.clone(), sick));
    assert_eq!(deleted, ["agent-n1"]);
    // OnDelete: nothing is replaced by the controller.
    let on_delete = daemon_set(json!({"type":"OnDelete"}), "v2");
    assert_eq!(changes(&snapshot(&on_delete, nodes, old_pods)), (vec![], vec![]));
}

#[test]
fn two_pods_on_one_node_keep_the_best_and_failed_pods_are_replaced_after_backoff() {
    let ds = daemon_set(json!({}), "hi");
    let mut dup = daemon_pod(&ds, "n1", false);
    dup.metadata.name = "agent-dup".into();
    dup.metadata.uid = Some("u-dup".into());
    let s = snapshot(
        &ds,
        vec![node("n1", "edge")],
        vec![daemon_pod(&ds, "n1", true), dup],
    );
    assert_eq!(changes(&s), (vec![], vec!["agent-dup".into()]));
    let mut failed = daemon_pod(&ds, "n1", false);
    failed.status.phase = PodPhase::Failed;
    failed.status.finished_at = Some(humantime::format_rfc3339_seconds(t0()).to_string());
    let mut s = snapshot(&ds, vec![node("n1", "edge")], vec![failed]);
    assert_eq!(changes(&s), (vec![], vec![]), "held during the back-off");
    s.now = Some(t0() + reconcile::FAILED_POD_BACKOFF);
    // Deleted and made again in the same pass.
    assert_eq!(changes(&s), (vec!["n1".into()], vec!["agent-n1".into()]));
}

#[test]
fn a_lost_node_does_not_get_a_new_daemon_pod_every_pass() {
    // n1 has been without a heartbeat for an hour: the node controller fails every pod bound to
    // it (NodeLost). Were the daemon set to make a pod for it, each pass would create one, see it
    // evicted, delete it and create another.
    let ds = daemon_set(json!({}), "hi");
    let mut lost = node("n1", "edge");
    lost.status.ready = false;
    lost.status.last_heartbeat =
        Some(humantime::format_rfc3339_seconds(t0() - Duration::from_secs(3600)).to_string());
    let mut evicted = daemon_pod(&ds, "n1", false);
    evicted.status.phase = PodPhase::Failed;
    evicted.status.reason = Some(reconcile::NODE_LOST.into());
    let s = snapshot(&ds, vec![lost.clone()], vec![evicted]);
    assert_eq!(
        changes(&s),
        (vec![], vec!["agent-n1".into()]),
        "the lost pod goes, no new one"
    );
    // Proof of the loop it avoids: a fresh pod there is evicted at once.
    let s = snapshot(&ds, vec![lost], vec![daemon_pod(&ds, "n1", false)]);
    let evictions = reconcile::evict_pods(
        &s,
        Duration::from_secs(10),
        Duration::from_secs(5),
        &mut reconcile::RandomIds,
    );
    assert_eq!(evictions.len(), 1);
    // Back: it gets its pod.
    let s = snapshot(&ds, vec![node("n1", "edge")], vec![]);
    assert_eq!(changes(&s), (vec!["n1".into()], vec![]));
}
