//! The function scaler as a pure function: pods follow the measured load (target concurrency
//! per pod) within minScale..maxScale, spread over workers by the scheduler, scale down only
//! after the delay, stay up while events wait, and keep the function's Endpoints.
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::json;
use skiff_api::{Function, Node, Object, PodPhase};
use skiff_controllers::{self as reconcile, FunctionLoad, Snapshot};
use skiff_state::Op;

#[path = "support/sim.rs"]
mod sim;
use sim::Counted;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn function(min: u32, max: u32) -> Function {
    serde_json::from_value(json!({"metadata":{"name":"agg","namespace":"default","uid":"f1"},
        "spec":{"component":{"wasm":{"digest":format!("sha256:{}", "a".repeat(64)),"world":"function"}},
            "concurrency":20,"targetConcurrency":10,"minScale":min,"maxScale":max,"scaleDownDelay":"30s",
            "triggers":[{"event":{"topic":"readings"}}]}}))
    .unwrap()
}

fn node(name: &str) -> Node {
    serde_json::from_value(json!({"metadata":{"name":name,"labels":{"skiff.dev/hostname":name}},
        "status":{"address":format!("http://{name}:7071"),"ready":true,"capacity":{"memory":"4Gi","pods":50},"runtimes":["wasm"]}}))
    .unwrap()
}

struct World {
    s: Snapshot,
    ids: Counted,
}

impl World {
    fn new(f: Function) -> Self {
        World {
            s: Snapshot {
                now: Some(t0()),
                nodes: vec![node("n1"), node("n2"), node("n3")],
                functions: vec![f],
                ..Default::default()
            },
            ids: Counted(0),
        }
    }

    /// One scaler pass at `at` seconds with `load`, then scheduling, then every pod ready.
    fn pass(&mut self, at: u64, load: FunctionLoad) {
        self.s.now = Some(t0() + Duration::from_secs(at));
        let mut loads = BTreeMap::new();
        loads.insert("default/agg".to_owned(), load);
        for ops in reconcile::functions(&self.s, &loads, &mut self.ids) {
            self.apply(&ops);
        }
        let ops = reconcile::schedule(&self.s, at, &mut reconcile::RandomIds);
        self.apply(&ops);
        for p in &mut self.s.pods {
            p.status.phase = PodPhase::Running;
            p.status.ready = true;
        }
        // Endpoints follow readiness on the next pass.
        for ops in reconcile::functions(&self.s, &loads, &mut self.ids) {
            self.apply(&ops);
        }
    }

    fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Create {
                    object: Object::Pod(p),
                    uid,
                } => {
                    let mut p = p.clone();
                    p.metadata.uid = Some(uid.clone());
                    p.metadata.creation_timestamp =
                        Some(humantime::format_rfc3339(self.s.now.unwrap()).to_string());
                    self.s.pods.push(p);
                }
                Op::Apply {
                    object: Object::Endpoints(e),
                    ..
                } => {
                    self.s.endpoints.retain(|x| x.metadata.name != e.metadata.name);
                    self.s.endpoints.push(e.clone());
                }
                Op::Delete { name, .. } => self.s.pods.retain(|p| &p.metadata.name != name),
                Op::Replace {
                    object: Object::Pod(p),
                } => {
                    if let Some(x) = self
                        .s
                        .pods
                        .iter_mut()
                        .find(|x| x.metadata.name == p.metadata.name)
                    {
                        x.spec = p.spec.clone();
                    }
                }
                Op::UpdateStatus {
                    object: Object::Function(f),
                } => self.s.functions[0].status = f.status.clone(),
                Op::UpdateStatus { .. }
                | Op::Create { .. }
                | Op::Apply {
                    object: Object::Event(_),
                    ..
                } => {}
                other => panic!("unexpected op {other:?}"),
            }
        }
    }

    fn pods(&self) -> usize {
        self.s.pods.len()
    }

    fn nodes_used(&self) -> usize {
        let nodes: std::collections::BTreeSet<_> = self
            .s
            .pods
            .iter()
            .filter_map(|p| p.spec.node_name.clone())
            .collect();
        nodes.len()
    }
}

fn load(concurrency: f64) -> FunctionLoad {
    FunctionLoad {
        concurrency,
        backlog: 0,
    }
}

#[test]
fn pods_follow_load_across_workers_within_min_and_max() {
    let mut w = World::new(function(0, 3));
    w.pass(0, load(0.0));
    assert_eq!(w.pods(), 0, "idle at minScale 0: no pod");

    w.pass(1, load(4.0));
    assert_eq!(w.pods(), 1, "4 calls in flight, target 10 per pod: one pod");
    w.pass(2, load(25.0));
    assert_eq!(w.pods(), 3, "25 in flight: three pods");
    assert_eq!(w.nodes_used(), 3, "spread: one pod per worker");
    let eps = &w.s.endpoints[0];
    assert_eq!(eps.metadata.name, "fn.agg");
    assert_eq!(eps.endpoints.iter().filter(|a| a.ready).count(), 3);
    w.pass(3, load(500.0));
    assert_eq!(w.pods(), 3, "never above maxScale");
    assert_eq!(w.s.functions[0].status.desired_replicas, 3);

    // Lower load: kept for the scale-down delay, then reduced.
    w.pass(10, load(5.0));
    assert_eq!(w.pods(), 3, "within scaleDownDelay of the last high load");
    w.pass(40, load(5.0));
    assert_eq!(w.pods(), 1, "30s later: the load asks for one");
    w.pass(45, load(0.0));
    assert_eq!(w.pods(), 1, "idle, but within the delay");
    w.pass(80, load(0.0));
    assert_eq!(w.pods(), 0, "idle past the delay: back to zero");
    assert!(w.s.endpoints[0].endpoints.is_empty());
}

#[test]
fn waiting_events_and_activations_keep_a_pod_and_min_scale_is_a_floor() {
    let mut w = World::new(function(0, 5));
    w.pass(
        0,
        FunctionLoad {
            concurrency: 0.0,
            backlog: 4,
        },
    );
    assert_eq!(w.pods(), 1, "events waiting: one pod to take them");
    w.pass(100, load(0.0));
    assert_eq!(w.pods(), 0);

    w.s.functions[0].status.last_activation =
        Some(humantime::format_rfc3339(t0() + Duration::from_secs(200)).to_string());
    w.pass(201, load(0.0));
    assert_eq!(w.pods(), 1, "a request found no pod: activated");

    let mut w = World::new(function(2, 5));
    w.pass(0, load(0.0));
    assert_eq!(w.pods(), 2, "minScale 2 even when idle");
    w.pass(500, load(0.0));
    assert_eq!(w.pods(), 2);
}

#[test]
fn a_changed_component_replaces_pods_once_new_ones_serve() {
    let mut w = World::new(function(1, 1));
    w.pass(0, load(0.0));
    let old = w.s.pods[0].metadata.name.clone();
    w.s.functions[0].spec.component.env = vec![skiff_api::EnvVar {
        name: "MODE".into(),
        value: "v2".into(),
        value_from: None,
    }];
    w.pass(1, load(0.0));
    assert_eq!(w.pods(), 1, "the old pod goes once the new one is ready");
    assert_ne!(w.s.pods[0].metadata.name, old);
    assert_eq!(w.s.pods[0].spec.components[0].env[0].value, "v2");
}
