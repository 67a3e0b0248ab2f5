//! A pod that waits on its node for a start it cannot make (`CompileError`, `InvalidComponent`,
//! … with the agent's back-off) is not replaced: the controllers make no new pods and delete
//! none, however long it waits; and the agent's reports of it become `BackOff` / `Compiling`
//! events once per change.
use std::time::{Duration, SystemTime};

use serde_json::json;
use skiff_api::{Deployment, Kind, Object, PodPhase, PodStatus};
use skiff_controllers::{self as reconcile, Snapshot, TEMPLATE_HASH_LABEL};
use skiff_state::Op;

#[path = "support/sim.rs"]
mod sim;
use sim::{Counted, settle, workload_pass};

fn deployment(replicas: i64) -> Deployment {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"web","namespace":"default","uid":"d1","generation":1},
        "spec":{"replicas":replicas,"selector":{"matchLabels":{"app":"web"}},
        "template":{"metadata":{"labels":{"app":"web"}},"spec":{"components":[{"name":"c","wasm":{"digest":format!("sha256:{}", "a".repeat(64))}}]}}}}))
    .unwrap()
}

/// What the agent reports for a start that waits: `reason` with the back-off in the message.
fn waiting(reason: &str) -> PodStatus {
    PodStatus {
        phase: PodPhase::Pending,
        reason: Some(reason.into()),
        message: Some(format!(
            "back-off 10s before trying to start again (next try at 2030-01-01T00:00:10.000Z): component c: {reason}"
        )),
        ..Default::default()
    }
}

fn pod_ops(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .filter_map(|o| match o {
            Op::Create {
                object: Object::Pod(p),
                ..
            } => Some(format!("create {}", p.metadata.name)),
            Op::Delete {
                kind: Kind::Pod,
                name,
                ..
            } => Some(format!("delete {name}")),
            _ => None,
        })
        .collect()
}

#[test]
fn pods_waiting_for_a_start_are_not_replaced() {
    let start = SystemTime::now();
    let mut s = Snapshot {
        now: Some(start),
        deployments: vec![deployment(2)],
        ..Default::default()
    };
    let mut ids = Counted(0);
    settle(&mut s, &mut ids);
    assert_eq!(s.pods.len(), 2);
    for (p, reason) in s.pods.iter_mut().zip(["CompileError", "InvalidComponent"]) {
        p.spec.node_name = Some("n1".into());
        p.status = waiting(reason);
    }
    let names: Vec<String> = s.pods.iter().map(|p| p.metadata.name.clone()).collect();
    // Ten minutes of passes, one every 10 s: the same two pods, no create, no delete.
    for tick in 1..=60u64 {
        s.now = Some(start + Duration::from_secs(10 * tick));
        let ops = workload_pass(&mut s, &mut ids);
        assert_eq!(pod_ops(&ops), Vec::<String>::new(), "pass {tick}");
    }
    let now: Vec<String> = s.pods.iter().map(|p| p.metadata.name.clone()).collect();
    assert_eq!(now, names);
    assert!(
        s.pods
            .iter()
            .all(|p| p.metadata.labels.contains_key(TEMPLATE_HASH_LABEL))
    );
}

#[test]
fn a_start_back_off_and_a_compile_are_events_once_per_change() {
    let d = deployment(1);
    let mut s = Snapshot {
        now: Some(SystemTime::now()),
        deployments: vec![d],
        ..Default::default()
    };
    settle(&mut s, &mut Counted(0));
    let mut pod = s.pods[0].clone();
    pod.spec.node_name = Some("n1".into());
    let now = SystemTime::now();
    let events = |old: &skiff_api::Pod, new: &PodStatus| -> Vec<(String, String)> {
        reconcile::pod_status_events(Vec::new(), old, new, now, &mut Counted(100))
            .into_iter()
            .filter_map(|op| match op {
                Op::Apply {
                    object: Object::Event(e),
                    ..
                }
                | Op::Create {
                    object: Object::Event(e),
                    ..
                } => Some((e.reason, e.message)),
                _ => None,
            })
            .collect()
    };
    let compiling = PodStatus {
        reason: Some("Compiling".into()),
        message: Some(
            "compiling component c (its first start on this node); the pod starts once it is compiled".into(),
        ),
        ..Default::default()
    };
    let got = events(&pod, &compiling);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, reconcile::COMPILING);
    assert!(
        got[0].1.starts_with("on node n1: compiling component c"),
        "{got:?}"
    );
    // The same report again records nothing.
    pod.status = compiling.clone();
    assert_eq!(events(&pod, &compiling), Vec::new());

    let wait = waiting("CompileError");
    let got = events(&pod, &wait);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, reconcile::BACK_OFF);
    assert!(got[0].1.contains("CompileError"), "{got:?}");
    pod.status = wait.clone();
    assert_eq!(events(&pod, &wait), Vec::new(), "unchanged: no event");
    // A longer wait is a new event; failing for good is a Failed one, not a back-off.
    let mut longer = wait.clone();
    longer.message = Some(longer.message.unwrap().replace("10s", "20s"));
    assert_eq!(events(&pod, &longer)[0].0, reconcile::BACK_OFF);
    let failed = PodStatus {
        phase: PodPhase::Failed,
        reason: Some("CompileError".into()),
        message: Some("back-off is not a thing here".into()),
        ..Default::default()
    };
    let got = events(&pod, &failed);
    assert_eq!(
        got.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        [reconcile::FAILED]
    );
}
