//! Table-driven cases of the controllers: each row a state in, the decision out.
use std::time::{Duration, SystemTime};

use serde_json::json;
use skiff_api::{Deployment, Function, Object};
use skiff_controllers::{self as reconcile, FunctionLoad, Snapshot};
use skiff_state::Op;

#[path = "support/sim.rs"]
mod sim;
use sim::{Counted, pod_in, rs_for};

fn deployment() -> Deployment {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"web","namespace":"default","uid":"d1","generation":1},
        "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},
        "template":{"metadata":{"labels":{"app":"web"}},"spec":{"components":[{"name":"c","wasm":{"digest":format!("sha256:{}", "a".repeat(64))}}]}}}}))
    .unwrap()
}

/// One pod of the table: its name, whether it is bound to a node, whether it is ready.
type PodRow = (&'static str, bool, bool);

#[test]
fn a_replica_set_creates_and_deletes_to_its_size_unscheduled_then_unready_first() {
    // (replicas, pods, pods created, pods deleted)
    let table: [(i64, &[PodRow], usize, &[&str]); 6] = [
        (3, &[], 3, &[]),
        (
            3,
            &[("a", true, true), ("b", true, true), ("c", true, true)],
            0,
            &[],
        ),
        (2, &[("a", true, true)], 1, &[]),
        (1, &[("a", true, true), ("b", false, false)], 0, &["b"]),
        (1, &[("a", true, true), ("b", true, false)], 0, &["b"]),
        (0, &[("a", true, true), ("b", true, true)], 0, &["a", "b"]),
    ];
    let d = deployment();
    for (replicas, pods, want_created, want_deleted) in table {
        let rs = rs_for(&d, "h1", replicas, 1);
        let s = Snapshot {
            now: Some(SystemTime::now()),
            replica_sets: vec![rs.clone()],
            pods: pods
                .iter()
                .map(|(name, bound, ready)| pod_in(&rs, name, *ready, bound.then_some("n1")))
                .collect(),
            ..Default::default()
        };
        let ops: Vec<Op> = reconcile::replica_sets(&s, &mut Counted(0)).concat();
        let created = ops
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Op::Create {
                        object: Object::Pod(_),
                        ..
                    }
                )
            })
            .count();
        let mut deleted: Vec<&str> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        deleted.sort_unstable();
        let case = format!("replicas {replicas}, pods {pods:?}");
        assert_eq!(created, want_created, "{case}: created");
        assert_eq!(deleted, want_deleted, "{case}: deleted");
    }
}

/// A function's scaling settings and state: min, max, target concurrency, current replicas, last
/// scale-up.
type Scale = (u32, u32, u32, u32, Option<SystemTime>);

/// A row: the function, its load (concurrency, backlog), and the decision (replicas, load asks).
type Row = (Scale, (f64, u64), (u32, bool));

fn function(min: u32, max: u32, target: u32, current: u32, last_scale_up: Option<SystemTime>) -> Function {
    let mut f: Function = serde_json::from_value(json!({"apiVersion":"skiff.dev/v1",
        "metadata":{"name":"f","namespace":"default","uid":"f1"},
        "spec":{"component":{"name":"c","wasm":{"digest":format!("sha256:{}", "b".repeat(64)),"world":"function"}},
            "minScale":min,"maxScale":max,"targetConcurrency":target}}))
    .unwrap();
    f.status.desired_replicas = current;
    f.status.last_scale_up = last_scale_up.map(|t| humantime::format_rfc3339_seconds(t).to_string());
    f
}

#[test]
fn a_function_scales_with_its_load_within_its_bounds_and_down_only_after_the_delay() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let just_now = Some(now - Duration::from_secs(1));
    let long_ago = Some(now - Duration::from_secs(3600));
    // (min, max, target, current, last scale-up), (concurrency, backlog) → (replicas, load asks)
    let table: [Row; 8] = [
        ((0, 10, 1, 0, None), (0.0, 0), (0, false)),
        ((0, 10, 1, 0, None), (0.0, 3), (1, true)),
        ((0, 10, 2, 0, None), (5.0, 0), (3, true)),
        ((0, 4, 1, 0, None), (9.0, 0), (4, true)),
        ((2, 10, 1, 0, None), (0.0, 0), (2, false)),
        ((0, 10, 1, 5, just_now), (1.0, 0), (5, false)),
        ((0, 10, 1, 5, long_ago), (1.0, 0), (1, false)),
        ((0, 10, 1, 5, long_ago), (0.0, 0), (0, false)),
    ];
    for ((min, max, target, current, up), (concurrency, backlog), want) in table {
        let f = function(min, max, target, current, up);
        let load = FunctionLoad { concurrency, backlog };
        assert_eq!(
            reconcile::desired_replicas(&f, load, now),
            want,
            "min {min} max {max} target {target} current {current} concurrency {concurrency} backlog {backlog}"
        );
    }
}
