//! Per-workload disconnection policy (issue 4): while a node is not ready, a pod with
//! `disconnect.replaceAfter: never` stays bound and in its service's endpoints, while a pod with the
//! default policy leaves the endpoints at once and is evicted and replaced after the grace.
use std::time::{Duration, SystemTime};

use serde_json::json;
use skiff_api::{Deployment, Node, Object, Pod, PodPhase, Service};
use skiff_controllers::{self as reconcile, Snapshot};
use skiff_state::Op;

#[path = "support/sim.rs"]
mod sim;
use sim::{Counted, apply, pod_in, rs_for};

const GRACE: Duration = Duration::from_secs(10);
const EVICTION: Duration = Duration::from_secs(5);

fn deployment(name: &str, disconnect: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1",
        "metadata":{"name":name,"namespace":"default","uid":format!("d-{name}"),"generation":1},
        "spec":{"replicas":1,"selector":{"matchLabels":{"app":name}},
        "template":{"metadata":{"labels":{"app":name,"tier":"web"}},"spec":{
            "components":[{"name":"c","wasm":{"digest":format!("sha256:{}", "a".repeat(64))}}],
            "disconnect": disconnect}}}}))
    .unwrap()
}

fn running_pod(d: &Deployment, name: &str, node: &str) -> Pod {
    pod_in(
        &rs_for(d, &reconcile::template_hash(d), 1, 1),
        name,
        true,
        Some(node),
    )
}

fn beating(name: &str, now: SystemTime, ago: u64) -> Node {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":name},
        "status":{"address":format!("http://{name}:7071"),"ready":true,"capacity":{"memory":"1Gi","pods":10},
        "runtimes":["wasm"],
        "lastHeartbeat": humantime::format_rfc3339_seconds(now - Duration::from_secs(ago)).to_string()}}))
    .unwrap()
}

fn whole_second_now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn endpoints(s: &Snapshot) -> Vec<(String, bool)> {
    let ops = reconcile::endpoints(s, &mut reconcile::RandomIds);
    let [
        Op::Apply {
            object: Object::Endpoints(e),
            ..
        },
    ] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    e.endpoints.iter().map(|a| (a.pod.clone(), a.ready)).collect()
}

#[test]
fn a_never_pod_stays_bound_and_in_endpoints_while_a_default_pod_is_evicted_and_replaced() {
    let edge = deployment("edge", json!({"replaceAfter": "never", "stopAfter": "10m"}));
    let web = deployment("web", serde_json::Value::Null);
    let svc: Service = serde_json::from_value(json!({"apiVersion":"skiff.dev/v1",
        "metadata":{"name":"all","namespace":"default","uid":"s1"},"spec":{"selector":{"tier":"web"}}}))
    .unwrap();
    let t0 = whole_second_now();
    let mut s = Snapshot {
        now: Some(t0),
        // "far" last heartbeated 11 s ago: just past the grace.
        nodes: vec![beating("near", t0, 1), beating("far", t0, 11)],
        pods: vec![
            running_pod(&edge, "edge-1", "far"),
            running_pod(&web, "web-1", "far"),
        ],
        replica_sets: vec![
            rs_for(&edge, &reconcile::template_hash(&edge), 1, 1),
            rs_for(&web, &reconcile::template_hash(&web), 1, 1),
        ],
        deployments: vec![edge, web],
        services: vec![svc],
        ..Default::default()
    };
    let ops = reconcile::node_health(&s, GRACE, &mut reconcile::RandomIds).concat();
    apply(&mut s, &ops);
    assert!(!s.nodes[1].status.ready);
    // NotReady: the default pod leaves the endpoints at once; the `never` pod keeps serving there.
    assert_eq!(
        endpoints(&s),
        [("edge-1".to_owned(), true), ("web-1".to_owned(), false)]
    );
    // Past the eviction grace only the default pod is failed...
    s.now = Some(t0 + Duration::from_secs(10));
    let ops = reconcile::evict_pods(&s, GRACE, EVICTION, &mut reconcile::RandomIds).concat();
    apply(&mut s, &ops);
    let phase = |s: &Snapshot, name: &str| {
        let p = s.pods.iter().find(|p| p.metadata.name == name).unwrap();
        (p.status.phase, p.status.reason.clone())
    };
    assert_eq!(phase(&s, "edge-1"), (PodPhase::Running, None));
    assert_eq!(
        phase(&s, "web-1"),
        (PodPhase::Failed, Some(reconcile::NODE_LOST.to_owned()))
    );
    // ...and replaced; the `never` pod's deployment counts it ready and makes no replacement.
    sim::workload_pass(&mut s, &mut Counted(0));
    let mut names: Vec<(&str, Option<&str>)> = s
        .pods
        .iter()
        .map(|p| (p.metadata.name.as_str(), p.spec.node_name.as_deref()))
        .collect();
    names.sort();
    let replacement = format!("web-{}-s1", reconcile::template_hash(&s.deployments[1]));
    assert_eq!(names, [("edge-1", Some("far")), (replacement.as_str(), None)]);
    let edge_status = &s.deployments[0].status;
    assert_eq!((edge_status.replicas, edge_status.ready_replicas), (1, 1));
    let ops = reconcile::schedule(&s, 1, &mut reconcile::RandomIds);
    apply(&mut s, &ops);
    let replacement = s.pods.iter().find(|p| p.metadata.name == replacement).unwrap();
    assert_eq!(replacement.spec.node_name.as_deref(), Some("near"));
    // An hour later the `never` pod is still bound and routed to.
    let later = t0 + Duration::from_secs(3600);
    s.now = Some(later);
    s.nodes[0].status = beating("near", later, 1).status;
    assert!(reconcile::evict_pods(&s, GRACE, EVICTION, &mut reconcile::RandomIds).is_empty());
    assert!(endpoints(&s).contains(&("edge-1".to_owned(), true)));
}
