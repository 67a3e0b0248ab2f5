//! Controllers as pure functions: state in, exact ops out.
use std::time::{Duration, SystemTime};

use serde_json::json;
use skiff_api::{Deployment, Node, Object, Pod, PodPhase, Service};
use skiff_control::reconcile::{self, Ids, Snapshot, TEMPLATE_HASH_LABEL};
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

fn deployment(replicas: i64) -> Deployment {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"web","namespace":"default","uid":"d1","generation":1},
        "spec":{"replicas":replicas,"selector":{"matchLabels":{"app":"web"}},
        "template":{"metadata":{"labels":{"app":"web"}},"spec":{"components":[{"name":"c","wasm":{"digest":format!("sha256:{}", "a".repeat(64))}}]}}}}))
    .unwrap()
}

fn pod_of(d: &Deployment, name: &str, hash: &str, ready: bool, node: Option<&str>) -> Pod {
    let mut p: Pod = serde_json::from_value(json!({"apiVersion":"skiff.dev/v1",
        "metadata":{"name":name,"namespace":"default","uid":format!("u-{name}"),"labels":{"app":"web", TEMPLATE_HASH_LABEL: hash},
            "ownerReferences":[{"kind":"Deployment","name":"web","uid":"d1","controller":true}]},
        "spec": d.spec.template.spec.clone()}))
    .unwrap();
    p.spec.node_name = node.map(str::to_owned);
    if ready {
        p.status.phase = PodPhase::Running;
        p.status.ready = true;
    }
    p
}

fn node(name: &str, ready: bool) -> Node {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":name},
        "status":{"address":format!("http://{name}:7071"),"ready":ready,"capacity":{"memory":"1Gi","pods":10},"runtimes":["wasm"]}}))
    .unwrap()
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
fn deployment_creates_missing_replicas_with_owner_and_hash() {
    let d = deployment(3);
    let s = Snapshot {
        now: Some(SystemTime::now()),
        deployments: vec![d.clone()],
        ..Default::default()
    };
    let cmds = reconcile::deployments(&s, &mut Counted(0));
    assert_eq!(cmds.len(), 1);
    assert_eq!(creates(&cmds[0]), 3);
    let Op::Create {
        object: Object::Pod(p),
        ..
    } = &cmds[0][0]
    else {
        panic!("a pod create first")
    };
    assert_eq!(p.metadata.name, "web-s1");
    assert_eq!(p.metadata.controller().map(|o| o.uid.as_str()), Some("d1"));
    assert_eq!(
        p.metadata.labels.get(TEMPLATE_HASH_LABEL),
        Some(&reconcile::template_hash(&d))
    );
}

#[test]
fn scale_down_removes_least_valuable_pods_first() {
    let d = deployment(1);
    let h = reconcile::template_hash(&d);
    let pods = vec![
        pod_of(&d, "ready", &h, true, Some("n")),
        pod_of(&d, "unscheduled", &h, false, None),
    ];
    let s = Snapshot {
        now: Some(SystemTime::now()),
        deployments: vec![d],
        pods,
        ..Default::default()
    };
    let cmds = reconcile::deployments(&s, &mut Counted(0));
    assert_eq!(deleted(&cmds[0]), ["unscheduled"]);
    assert_eq!(creates(&cmds[0]), 0);
}

#[test]
fn failed_pods_are_replaced_after_their_backoff() {
    let d = deployment(1);
    let h = reconcile::template_hash(&d);
    let now = SystemTime::now();
    let mut failed = pod_of(&d, "failed", &h, false, Some("n"));
    failed.status.phase = PodPhase::Failed;
    failed.status.finished_at = Some(humantime::format_rfc3339_seconds(now).to_string());
    let mut s = Snapshot {
        now: Some(now),
        deployments: vec![d],
        pods: vec![failed],
        ..Default::default()
    };
    // Within the backoff: nothing but status.
    let cmds = reconcile::deployments(&s, &mut Counted(0));
    assert!(
        cmds.iter()
            .flatten()
            .all(|o| matches!(o, Op::UpdateStatus { .. })),
        "{cmds:?}"
    );
    // After it: the failed pod goes and a new one comes.
    s.now = Some(now + reconcile::FAILED_POD_BACKOFF + Duration::from_secs(1));
    let cmds = reconcile::deployments(&s, &mut Counted(0));
    assert_eq!(deleted(&cmds[0]), ["failed"]);
    assert_eq!(creates(&cmds[0]), 1);
}

#[test]
fn template_change_keeps_old_pods_until_new_ones_are_ready() {
    let d = deployment(2);
    let old = vec![
        pod_of(&d, "old-1", "oldhash", true, Some("n")),
        pod_of(&d, "old-2", "oldhash", true, Some("n")),
    ];
    let s = Snapshot {
        now: Some(SystemTime::now()),
        deployments: vec![d.clone()],
        pods: old.clone(),
        ..Default::default()
    };
    let cmds = reconcile::deployments(&s, &mut Counted(0));
    assert_eq!(creates(&cmds[0]), 2);
    assert!(
        deleted(&cmds[0]).is_empty(),
        "no old pod goes before a new one is ready"
    );
    // One new pod ready → one old pod goes.
    let h = reconcile::template_hash(&d);
    let mut pods = old;
    pods.push(pod_of(&d, "new-1", &h, true, Some("n")));
    pods.push(pod_of(&d, "new-2", &h, false, Some("n")));
    let s = Snapshot {
        now: Some(SystemTime::now()),
        deployments: vec![d],
        pods,
        ..Default::default()
    };
    let cmds = reconcile::deployments(&s, &mut Counted(0));
    assert_eq!(deleted(&cmds[0]).len(), 1);
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
    let ops = reconcile::endpoints(&s);
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
    let ops = reconcile::schedule(&s, 7);
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
    let ops = reconcile::schedule(&s, 7);
    let [
        Op::UpdateStatus {
            object: Object::Pod(st),
        },
    ] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
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
    let ops = reconcile::node_health(&s, Duration::from_secs(40));
    let [
        Op::UpdateStatus {
            object: Object::Node(n),
        },
    ] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    assert!(!n.status.ready);
}
